"""Tests for the synthetic face generator, its on-disk dataset, the ISET export and the CLI.

References are independent of the generator: the Ramamoorthi-Hanrahan polynomial and the sRGB
curve are re-typed here in float64, the renderer is checked against the float64 per-pixel
transcription in `tests.numpy_reference`, the NFE files are read back with the real
`data.nfe.NFEDataset` and the ISET files with `data.iset.read_scene`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import physics
from bioface_jax.physics.render import LIGHT_COLOUR_FLOOR
from data import iset, nfe, synth_faces
from data.synth import dataset as sd
from data.synth import faces as sf
from tests import numpy_reference as ref

SIZE, BATCH, SEED = 32, 4, 7
def _srgb(x):
  return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0) ** (1 / 2.4) - 0.055)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """6 faces (shards of 4 + 2) and 2 ISET scenes written by the CLI, plus its stdout."""
  out = tmp_path_factory.mktemp("synth")
  argv = ["--out", str(out), "--n", "6", "--size", str(SIZE), "--seed", str(SEED),
          "--shard-size", "4", "--batch-size", str(BATCH), "--iset", "2",
          "--figure", str(out / "fig.png")]
  return out, argv


@pytest.fixture(scope="module")
def cli_run(written):
  out, argv = written
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    assert synth_faces.main(argv) == 0
  return out, buf.getvalue()


@pytest.fixture(scope="module")
def truth(cli_run):
  out, _ = cli_run
  return sd.load_truth(out, np.arange(6))


# --- the generator ---------------------------------------------------------------------------


def test_diffuse_is_sh_shading_target(truth):
  lights = np.repeat(truth["sh"][:, None], 3, 1)
  target = np.asarray(physics.shading_target(truth["normals"], lights)) * truth["mask"]
  # Each float32 evaluation of the SH polynomial is within 24 eps32 * sum|terms| of the exact
  # value (test_shading's rule); the stored one (NumPy) and this one (XLA) may round differently.
  bound = 24 * EPS32 * _sh_abs_terms(truth["normals"], truth["sh"]) * truth["mask"] + 1e-30
  np.testing.assert_array_less(np.abs(truth["diffuse"] - target), 2 * bound)
  n = truth["normals"].astype(np.float64)
  mine = np.maximum(0, ref.sh_irradiance(n, truth["sh"].astype(np.float64).T[:, :, None, None]))
  np.testing.assert_array_less(np.abs(truth["diffuse"] - mine * truth["mask"]), bound)
  assert truth["diffuse"][truth["mask"]].mean() > 0.1


def test_priors_and_ranges(truth):
  w = truth["weights"].astype(np.float64)
  assert (w >= 0).all() and np.allclose(w.sum(1), 1, atol=1e-6)
  assert ((truth["t"] >= 1) & (truth["t"] <= 22)).all()
  assert (np.abs(truth["b"]) <= 3).all()
  m = truth["mask"]
  for key in ("fmel", "fblood", "diffuse", "specular", "melanin", "haemoglobin"):
    assert (truth[key][~m] == 0).all(), key
  assert (np.abs(truth["fmel"]) <= 1).all() and (truth["specular"] >= 0).all()
  mel, hb = physics.network_to_fractions(truth["fmel"], truth["fblood"])
  np.testing.assert_allclose(truth["melanin"][m], np.asarray(mel)[m], rtol=1e-6)
  np.testing.assert_allclose(truth["haemoglobin"][m], np.asarray(hb)[m], rtol=1e-6)
  # The illuminant mixture over many faces: daylight dominates most often, all kinds occur.
  rng = np.random.default_rng(0)
  main = np.array([sf.sample_illuminant(rng, sf.FaceOptions())[0].argmax() for _ in range(400)])
  assert 0.5 < (main == 1).mean() < 0.7 and (main == 0).mean() > 0.1 and (main >= 2).mean() > 0.1


EPS32 = float(np.finfo(np.float32).eps)


def _sh_abs_terms(normals, sh):
  """float64 sum over the SH irradiance polynomial's terms of |term|; sh (N, 9) per face."""
  c1, c2, c3, c4, c5 = ref.SH_C
  x, y, z = (np.abs(normals[..., i].astype(np.float64)) for i in range(3))
  L = [np.abs(sh[:, k].astype(np.float64))[:, None, None] for k in range(9)]
  return (c1 * L[8] * (x * x + y * y) + c3 * L[6] * z * z + c4 * L[0] + c5 * L[6]
          + 2 * c1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
          + 2 * c2 * (L[3] * x + L[1] * y + L[2] * z))


def test_render_matches_stored_truth(lut, truth):
  """The stored float32 linear image equals a float64 render of the stored maps (noise off)."""
  keys = ("fmel", "fblood", "diffuse", "specular", "weights", "t", "b")
  with jax.enable_x64(True):
    out = physics.render(physics.load_spectra(), jnp.asarray(np.asarray(lut), jnp.float64),
                         *(truth[k].astype(np.float64) for k in keys))
    out = {k: np.asarray(v) for k, v in out.items()}
  assert out["linear_srgb"].dtype == np.float64
  # Tolerance rule. The stored image was rendered in float32 (33-band sums, 3x3 products, the
  # exposure factor: <= ~50 roundings, k = 64) from the *unscaled* shading, while the stored
  # `diffuse` is the SH target recomputed from the exposure-scaled SH; the two shadings differ by
  # float32 rounding of the SH polynomial, <= 2 * 24 eps32 * sum|terms| (see test_shading). So
  # |diff| <= |M||T| (64 eps32 (a d + s) + a dd), a = white-balanced albedo, d, s = shadings.
  m_abs = np.abs(physics.display.XYZ_TO_LINEAR_SRGB)
  t_abs = np.abs(out["raw_to_xyz"])
  lc = np.maximum(out["light_colour"], LIGHT_COLOUR_FLOOR)
  albedo_wb = out["diffuse_albedo"] / lc[:, None, None, :]
  dd = 2 * 24 * EPS32 * _sh_abs_terms(truth["normals"], truth["sh"])
  wb = albedo_wb * (truth["diffuse"][..., None] + dd[..., None]) + truth["specular"][..., None]
  to_srgb = lambda v: np.einsum("ij,njk,nhwk->nhwi", m_abs, t_abs, v)  # noqa: E731
  bound = to_srgb(64 * EPS32 * wb + albedo_wb * dd[..., None])
  m = truth["mask"]
  np.testing.assert_array_less(np.abs(truth["linear_image"] - out["linear_srgb"])[m], bound[m])
  # Independent float64 per-pixel reference for one face (image and albedo), same bound.
  i = 0
  table = np.asarray(lut, np.float64)
  args = [truth[k][i].astype(np.float64) for k in ("fmel", "fblood")]
  full = ref.render(table, *args, truth["diffuse"][i], truth["specular"][i],
                    truth["weights"][i].astype(np.float64), float(truth["t"][i]),
                    truth["b"][i].astype(np.float64))
  np.testing.assert_array_less(np.abs(truth["linear_image"][i] - full["linear_srgb"])[m[i]],
                               bound[i][m[i]])
  unlit = ref.render(table, *args, np.ones((SIZE, SIZE)), np.zeros((SIZE, SIZE)),
                     truth["weights"][i].astype(np.float64), float(truth["t"][i]),
                     truth["b"][i].astype(np.float64))
  albedo_bound = to_srgb(64 * EPS32 * albedo_wb)[i]
  np.testing.assert_array_less(np.abs(truth["albedo"][i] - unlit["linear_srgb"])[m[i]],
                               albedo_bound[m[i]])


def test_exposure_hits_target_luminance(truth, cli_run):
  y = truth["linear_image"] @ np.array([0.2126, 0.7152, 0.0722])
  face_mean = (y * truth["mask"]).sum((1, 2)) / truth["mask"].sum((1, 2))
  lo, hi = sf.FaceOptions().face_luminance
  assert ((face_mean > lo * 0.999) & (face_mean < hi * 1.001)).all()


def test_image_is_quantised_srgb_of_linear(cli_run, truth):
  out, _ = cli_run
  image = nfe.NFEDataset(out).get(np.arange(6))["image"]
  expected = np.clip(_srgb(truth["linear_image"].astype(np.float64)), 0, 1)
  assert np.abs(image - expected).max() <= 0.5 / 255 + 1e-4
  np.testing.assert_array_equal(np.round(image * 255), image * 255)  # 8-bit values.


def test_noise_and_jpeg_options():
  base = sf.generate_faces(2, SIZE, SEED, options=sf.FaceOptions(), batch_size=BATCH)
  noisy = sf.generate_faces(2, SIZE, SEED, options=sf.FaceOptions(noise=0.02),
                            batch_size=BATCH)
  jpeg = sf.generate_faces(2, SIZE, SEED, options=sf.FaceOptions(jpeg_quality=75),
                           batch_size=BATCH)
  np.testing.assert_array_equal(base["linear_image"], noisy["linear_image"])
  np.testing.assert_array_equal(base["diffuse"], jpeg["diffuse"])
  d_noise = np.abs(noisy["image"] - base["image"])
  d_jpeg = np.abs(jpeg["image"] - base["image"])
  assert 0.005 < d_noise.mean() < 0.1 and 0.001 < d_jpeg.mean() < 0.05


# --- determinism -----------------------------------------------------------------------------


def test_face_depends_only_on_seed_and_index(truth):
  one = sf.generate_faces(2, SIZE, SEED, start=3, batch_size=3)  # Other batch shape and split.
  for key in sd.TRUTH_KEYS:
    np.testing.assert_array_equal(one[key], truth[key][3:5], err_msg=key)
  other = sf.generate_faces(1, SIZE, SEED + 1, start=3, batch_size=BATCH)
  assert not np.array_equal(other["fmel"][0], truth["fmel"][3])


def test_worker_processes_give_the_same_faces(truth):
  got = sf.generate_faces(3, SIZE, SEED, batch_size=BATCH, workers=2)
  for key in sd.TRUTH_KEYS:
    np.testing.assert_array_equal(got[key], truth[key][:3], err_msg=key)


def test_same_seed_same_bytes(cli_run, tmp_path):
  out, _ = cli_run
  sd.write_dataset(tmp_path, 6, SIZE, SEED, shard_size=4, batch_size=6, progress=False)
  for name in ("zx_7_d10_inmc_celebA_00.hdf5", "zx_7_d3_lrgb_celebA_01.hdf5",
               "synth_truth_01.hdf5"):
    with h5py.File(out / name) as a, h5py.File(tmp_path / name) as b:
      for key in a:
        assert a[key][()].tobytes() == b[key][()].tobytes(), (name, key)


# --- on-disk layout ---------------------------------------------------------------------------


def test_nfe_round_trip(cli_run, truth):
  out, stdout = cli_run
  ds = nfe.NFEDataset(out)
  assert len(ds) == 6 and ds.shard_sizes == (4, 2) and ds.image_shape == (SIZE, SIZE)
  got = ds.get(np.arange(6))
  m = truth["mask"]
  np.testing.assert_array_equal(got["mask"], m.astype(np.float32))
  # Normals are stored as (n + 1) / 2 and decoded as 2 x - 1 in float32: 2 roundings of values
  # <= 1, |dn| <= 2 eps32. The float32 SH coefficients are stored without arithmetic: exact.
  np.testing.assert_allclose(got["normals"], truth["normals"], rtol=0, atol=2 * EPS32)
  np.testing.assert_array_equal(got["lights"], np.repeat(truth["sh"][:, None], 3, 1))
  # The reader recomputes the shading from the decoded normals: two float32 evaluations (2 x 24
  # eps32 sum|terms|) plus the effect of |dn| <= 2 eps32 on terms of degree <= 2 in |n| <= 1
  # (each changes by <= 8 eps32 |coefficient|, i.e. sum|terms| at n = (1, 1, 1)).
  ones = np.ones_like(truth["normals"])
  bound = (48 * _sh_abs_terms(truth["normals"], truth["sh"])
           + 8 * _sh_abs_terms(ones, truth["sh"])) * EPS32
  np.testing.assert_array_less(np.abs(got["shading"] - truth["diffuse"])[m], bound[m])
  np.testing.assert_array_equal(truth["index"], np.arange(6))
  meta = json.loads((out / sd.META_NAME).read_text())
  assert meta["n"] == 6 and meta["seed"] == SEED and meta["shards"] == ["00", "01"]
  assert "faces" in stdout and "ETA" in stdout and "img/s" in stdout
  assert (out / "fig.png").stat().st_size > 10_000


def test_load_truth_order_and_errors(cli_run, truth):
  out, _ = cli_run
  got = sd.load_truth(out, [5, 0, 5], keys=("fmel", "t"))
  np.testing.assert_array_equal(got["fmel"], truth["fmel"][[5, 0, 5]])
  np.testing.assert_array_equal(got["t"], truth["t"][[5, 0, 5]])
  with pytest.raises(IndexError, match=r"\[0, 6\)"):
    sd.load_truth(out, [6])
  with pytest.raises(KeyError, match="unknown truth keys"):
    sd.load_truth(out, [0], keys=("albedo_srgb",))


def test_iset_round_trip(cli_run, lut):
  out, _ = cli_run
  table = np.asarray(lut, np.float64)
  for k in range(2):
    scene = iset.read_scene(out / "iset" / f"scene_{k:03d}.mat")
    t = np.load(out / "iset" / f"scene_{k:03d}_truth.npz")
    e = ref.illuminant(t["weights"].astype(np.float64), float(t["t"])) * float(t["scale"])
    np.testing.assert_allclose(scene.illuminant, e, rtol=1e-5)
    # Vectorised corner-aligned bilinear lookup, row = blood, column = melanin.
    r = (t["fblood"].astype(np.float64) + 1) / 2 * 255
    c = (t["fmel"].astype(np.float64) + 1) / 2 * 255
    r0, c0 = np.minimum(np.floor(r), 254).astype(int), np.minimum(np.floor(c), 254).astype(int)
    dr, dc = (r - r0)[..., None], (c - c0)[..., None]
    refl = ((1 - dr) * (1 - dc) * table[r0, c0] + (1 - dr) * dc * table[r0, c0 + 1]
            + dr * (1 - dc) * table[r0 + 1, c0] + dr * dc * table[r0 + 1, c0 + 1])
    m = t["mask"][..., None]
    skin = t["diffuse"][..., None] * refl + t["specular"][..., None]
    expected = e * np.where(m, skin, t["background"][..., None])
    np.testing.assert_allclose(scene.radiance, expected, rtol=1e-5, atol=1e-9)
    assert t["index"] == synth_faces.ISET_INDEX_BASE + k and t["mask"].mean() > 0.2


# --- cache ------------------------------------------------------------------------------------


def test_lazy_views_equal_the_written_dataset_and_write_nothing(cli_run, tmp_path):
  """Uncached + lazy: only the faces read are generated, identical to the stored rows."""
  out, _ = cli_run
  stored = nfe.NFEDataset(out)
  train, hold = sd.synthetic_dataset(tmp_path, 6, SIZE, SEED, shard_size=4, batch_size=BATCH,
                                     progress=False, lazy=True)
  assert isinstance(hold, sd.GeneratedSubset) and (len(train), len(hold)) == (5, 1)
  local = np.array([3, 0, 3])  # any order, repeats
  got, want = train.get(local), stored.get(np.array([0, 3]))
  for key, value in got.items():
    np.testing.assert_array_equal(value, want[key][[1, 0, 1]], err_msg=key)
  truth = train.truth(local)
  for key, value in sd.load_truth(out, local).items():
    np.testing.assert_array_equal(truth[key], value, err_msg=key)
    assert truth[key].dtype == value.dtype, key
  assert sorted(train._rows) == [0, 3]  # pylint: disable=protected-access
  np.testing.assert_array_equal(hold.truth([0], ["index"])["index"], [5])
  np.testing.assert_array_equal(hold.get([0])["image"], stored.get(np.array([5]))["image"])
  assert list(tmp_path.iterdir()) == []


def test_cache_reuses_and_redoes_interrupted(tmp_path, monkeypatch):
  calls = {"n": 0}
  original = sf.FaceGenerator.render

  def interrupted(self, faces):
    calls["n"] += 1
    if calls["n"] == 2:
      raise KeyboardInterrupt
    return original(self, faces)

  monkeypatch.setattr(sf.FaceGenerator, "render", interrupted)
  kw = dict(n=6, size=SIZE, seed=SEED, shard_size=4, batch_size=BATCH, progress=False)
  with pytest.raises(KeyboardInterrupt):
    sd.synthetic_dataset(tmp_path, **kw)
  assert list(tmp_path.iterdir()) == []  # Nothing half-written is left to be used.
  monkeypatch.setattr(sf.FaceGenerator, "render", original)
  name = sd.cache_name(6, SIZE, SEED, sf.FaceOptions(), 4)
  stale = tmp_path / f".{name}.partial-999999999-dead"  # A killed run's leftovers.
  stale.mkdir()
  train, hold = sd.synthetic_dataset(tmp_path, **kw)
  assert not stale.exists() and (tmp_path / name / sd.META_NAME).exists()
  assert len(train) == 5 and len(hold) == 1
  np.testing.assert_array_equal(hold.truth([0], ["index"])["index"], [5])

  def must_not_run(*args, **kwargs):
    raise AssertionError("regenerated a cached dataset")

  monkeypatch.setattr(sd, "write_dataset", must_not_run)
  train2, hold2 = sd.synthetic_dataset(tmp_path, **kw)
  np.testing.assert_array_equal(train2.get(np.arange(2))["image"],
                                train.get(np.arange(2))["image"])
  with pytest.raises(ValueError, match="unknown synthetic face options"):
    sd.synthetic_dataset(tmp_path, **kw, nosie=0.1)
  other = sd.cache_name(6, SIZE, SEED, dataclasses.replace(sf.FaceOptions(), noise=0.01), 4)
  assert other != name


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, message", [
    (["--n", "-1"], "--n must be >= 0"),
    (["--n", "x"], "--n must be an integer"),
    (["--n", "2", "--size", "4"], "--size must be >= 8"),
    (["--n", "2", "--jpeg-quality", "101"], r"--jpeg-quality must be in \[1, 100\]"),
    (["--n", "2", "--noise", "-0.1"], "--noise must be >= 0.0"),
    (["--n", "0"], "nothing to do"),
    (["--n", "2", "--figure", "x.txt"], "--figure must end in"),
])
def test_cli_bad_arguments(tmp_path, capsys, extra, message):
  with pytest.raises(SystemExit) as err:
    synth_faces.main(["--out", str(tmp_path)] + extra)
  assert err.value.code == 2
  assert re.search(message, capsys.readouterr().err)


def test_cli_refuses_existing_output(cli_run, capsys):
  out, _ = cli_run
  with pytest.raises(SystemExit):
    synth_faces.main(["--out", str(out), "--n", "1", "--size", str(SIZE)])
  assert "--overwrite" in capsys.readouterr().err


def test_bad_options():
  with pytest.raises(ValueError, match="noise"):
    sf.FaceOptions(noise=-1.0)
  with pytest.raises(ValueError, match="illuminant_kinds"):
    sf.FaceOptions(illuminant_kinds=(0.5, 0.5, 0.5))
  with pytest.raises(ValueError, match="face_luminance"):
    sf.FaceOptions(face_luminance=(0.0, 0.2))
  with pytest.raises(ValueError, match="size"):
    sf.FaceGenerator(size=4)
