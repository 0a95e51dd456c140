"""Editing (eval.edit), per-photo refinement and the photo RMSE (biofacenet_fit, eval.photo_rmse).

The edits are checked on hand-made maps against what they claim, with references computed
independently of `eval.edit` (the renderer's XYZ output and its matrices, or simple physical
orderings); the commands run end to end on a tiny untrained BioFaceNet checkpoint (16x16) on
a random photo.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

from bioface_jax import physics
from bioface_jax.models import biofacenet
from bioface_jax import pretrained
from bioface_jax.photo import biofacenet_fit as photo_fit
from bioface_jax.photo import read
from eval import edit, photo_rmse, predict

SIZE = 16
EPS32 = float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------------- the RMSE metric


def test_central_srgb_rmse_hand_values():
  x = np.zeros((4, 4, 3))
  y = np.zeros((4, 4, 3))
  y[1:3, 1:3] = 0.25**2.2        # displays as 0.25 inside the central 2x2 square
  y[0, 0] = 1.0                  # outside: ignored
  assert photo_fit.central_srgb_rmse(x, y) == pytest.approx(0.25, rel=1e-12)
  y[1, 1, 0] = 4.0               # clipped to 1 before encoding
  expected = np.sqrt((11 * 0.25**2 + 1.0) / 12)
  assert photo_fit.central_srgb_rmse(x, y) == pytest.approx(expected, rel=1e-12)
  # The whole image: 12 channel values of 0.25 and 2 of 1 (clipped 4 and the corner) of 48.
  whole = np.sqrt((11 * 0.25**2 + 1.0 + 3 * 1.0) / 48)
  assert photo_fit.central_srgb_rmse(x, y, fraction=1.0) == pytest.approx(whole, rel=1e-12)
  with pytest.raises(ValueError, match="same shape"):
    photo_fit.central_srgb_rmse(x, y[:3])
  with pytest.raises(ValueError, match="non-finite"):
    photo_fit.central_srgb_rmse(x, np.full_like(y, np.nan))
  with pytest.raises(ValueError, match="fraction"):
    photo_fit.central_srgb_rmse(x, y, fraction=0.0)


# ------------------------------------------------------------------------------- edits


@pytest.fixture(scope="module")
def maps():
  """Hand-made maps of a 6x6 'skin' patch under daylight 6500 K, camera b = (0.3, -0.2)."""
  rng = np.random.default_rng(0)
  shape = (1, 6, 6)
  return dict(fmel=rng.uniform(-0.5, 0.3, shape).astype(np.float32),
              fblood=rng.uniform(-0.5, 0.3, shape).astype(np.float32),
              shading=rng.uniform(0.5, 1.5, shape).astype(np.float32),
              specular=rng.uniform(0.0, 0.2, shape).astype(np.float32),
              weights=np.eye(14, dtype=np.float32)[1][None], t=np.array([3.5], np.float32),
              b=np.array([[0.3, -0.2]], np.float32))


@pytest.fixture(scope="module")
def edited(maps, spectra, lut):
  return edit.edits(maps, spectra, lut, biofacenet.BioFaceNetConfig(), melanin=0.3,
                    haemoglobin=0.3, lights=("A", "D65"))


def test_zero_shift_and_own_light_reproduce_the_reconstruction(maps, spectra, lut):
  model = biofacenet.BioFaceNetConfig()
  ref = np.asarray(physics.render(spectra, lut, **maps)["linear_srgb"])
  out = edit.edits(maps, spectra, lut, model, melanin=0.0, haemoglobin=0.0, lights=())
  assert set(out) == {"reconstruction", "melanin -0", "melanin +0", "haemoglobin -0",
                      "haemoglobin +0", "no specular"}
  for label, image in out.items():
    if label == "no specular":
      continue
    # Same float32 computation: equal to rounding (a few eps32 of the value).
    np.testing.assert_allclose(image, ref, rtol=8 * EPS32, atol=8 * EPS32, err_msg=label)
  own = edit.relit_linear_srgb(maps, spectra, lut, model, maps["weights"][0], maps["t"][0])
  # Relit under its own light: raw / lc is the render's own white balance; rounding of one
  # division and the 3x3 products of magnitude <= ~4 each: 64 eps32 of the image's max.
  np.testing.assert_allclose(own, ref, rtol=0, atol=64 * EPS32 * float(ref.max()))


def test_more_melanin_darkens_red_and_green_more_haemoglobin_reddens(edited):
  rec = edited["reconstruction"].mean(axis=(0, 1, 2))
  up, down = edited["melanin +0.3"].mean(axis=(0, 1, 2)), edited["melanin -0.3"].mean(
      axis=(0, 1, 2))
  assert up[0] < rec[0] < down[0] and up[1] < rec[1] < down[1]
  hb_up, hb_down = (edited[f"haemoglobin {s}0.3"].mean(axis=(0, 1, 2)) for s in "+-")
  assert hb_up[1] < rec[1] < hb_down[1]                       # haemoglobin absorbs green
  assert hb_up[0] / hb_up[1] > rec[0] / rec[1] > hb_down[0] / hb_down[1]


def test_removing_specular_equals_rendering_with_zero_specular(maps, edited, spectra, lut):
  """Independent reference: the white-balanced specular term is i_s (1, 1, 1), so in XYZ it is
  i_s T(b) 1; subtract it from the full render's XYZ and apply the sRGB matrix and ReLU."""
  from bioface_jax.physics import display
  full = physics.render(spectra, lut, **maps)
  xyz = np.asarray(full["xyz"], np.float64)
  t_matrix = np.asarray(full["raw_to_xyz"], np.float64)[0]
  xyz_diffuse = xyz - maps["specular"][..., None] * t_matrix.sum(axis=1)
  m = np.asarray(display.XYZ_TO_LINEAR_SRGB, np.float64)
  expected = np.maximum(0.0, np.einsum("ij,...j->...i", m, xyz_diffuse))
  # float32 rounding of the XYZ values and of the products: k eps32 sum |M| |xyz| per channel.
  bound = 16 * EPS32 * np.einsum("ij,...j->...i", np.abs(m), np.abs(xyz) + np.abs(xyz_diffuse))
  assert np.all(np.abs(edited["no specular"] - expected) <= bound)
  assert np.all(edited["no specular"] <= edited["reconstruction"] + bound)


def test_relighting_colours_and_light_names(edited):
  a, d65 = edited["light A"].mean(axis=(0, 1, 2)), edited["light D65"].mean(axis=(0, 1, 2))
  assert a[0] / a[2] > d65[0] / d65[2]                        # tungsten is redder than daylight
  weights, t = edit.light_parameters("D65")
  assert weights[1] == 1 and weights.sum() == 1 and t == pytest.approx(3.5)
  assert edit.light_parameters("f11")[0][12] == 1
  assert edit.light_parameters("A")[0][0] == 1
  for bad in ("X1", "F13", "D30"):
    with pytest.raises(ValueError):
      edit.light_parameters(bad)


# ------------------------------------------------------------ commands on a tiny model


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny untrained BioFaceNet checkpoint (as in tests/test_eval.py) and a random photo."""
  from bioface_jax.train_lib import Checkpointer
  from train import biofacenet_task
  from train.configs import biofacenet as configs
  root = tmp_path_factory.mktemp("photos")
  config = configs.get_config("smoke")
  config.data.size = SIZE
  config.batch_size = 2
  model = biofacenet_task.model_config(config)
  abstract = jax.eval_shape(lambda: biofacenet.init(jax.random.key(0), (2, SIZE, SIZE, 3),
                                                    model))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "kernel":
      return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(leaf.dtype)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, leaf.dtype)

  params, batch_stats = jax.tree_util.tree_map_with_path(fill, abstract)
  state = dict(params=params, batch_stats=batch_stats,
               opt_state=biofacenet.optimizer(model).init(params))
  with Checkpointer(root / "run" / "checkpoints", async_save=False) as ckpt:
    ckpt.save(3, state, {"step": 3, "config": json.loads(config.to_json())})
  yy, xx = np.mgrid[0:40, 0:30]
  photo = np.stack([150 + 60 * np.sin(xx / 7), 110 + 40 * np.cos(yy / 9),
                    90 + 20 * np.sin((xx + yy) / 11)], -1)
  Image.fromarray(photo.astype(np.uint8)).save(root / "face.png")
  return root


def test_refinement_lowers_the_photo_loss(workdir, spectra, lut):
  model = pretrained.load("biofacenet", workdir / "run")
  x = photo_fit.prepare(read.read_photo(workdir / "face.png").pixels, SIZE)
  out, info = photo_fit.decompose(model, x, refine_steps=40, mode="maps", spectra=spectra,
                                  lut=lut)
  assert info.loss_after < info.loss_before
  assert out["fmel"].shape == (1, SIZE, SIZE)
  assert info.rmse_after == pytest.approx(
      photo_fit.central_srgb_rmse(x, out["render"]["linear_srgb"][0]))
  assert info.rmse_before == pytest.approx(photo_fit.central_srgb_rmse(
      x, photo_fit.decompose(model, x)[0]["render"]["linear_srgb"][0]))
  with pytest.raises(ValueError, match="mode"):
    photo_fit.decompose(model, x, refine_steps=1, mode="weights")


@pytest.mark.slow  # ~40 s on a busy 2-core CPU: compiles the network's gradient
def test_network_refinement_lowers_the_photo_loss(workdir, spectra, lut):
  model = pretrained.load("biofacenet", workdir / "run")
  x = photo_fit.prepare(read.read_photo(workdir / "face.png").pixels, SIZE)
  out, info = photo_fit.decompose(model, x, refine_steps=3, mode="network")
  assert info.loss_after < info.loss_before
  assert np.all(np.isfinite(out["render"]["linear_srgb"]))


def test_predict_edit_and_photo_rmse_commands(workdir, capsys):
  run, photo = str(workdir / "run"), str(workdir / "face.png")
  out = workdir / "pred"
  mask = np.zeros((40, 30), np.uint8)
  mask[:, 5:25] = 255                                 # the photo's central square's middle
  Image.fromarray(mask).save(workdir / "mask.png")
  assert predict.main([photo, "--workdir", run, "--out", str(out), "--refine-steps", "5",
                       "--mask", str(workdir / "mask.png")]) == 0
  maps = np.load(out / "face_maps.npz")
  # The mask is cropped like the photo (central 30x30 square, rows 5..34) and area-resized.
  expected = np.zeros(SIZE, np.float32)
  expected[round(5 * SIZE / 30):round(25 * SIZE / 30)] = 1
  np.testing.assert_array_equal(maps["mask"], np.broadcast_to(expected, (SIZE, SIZE)))
  assert maps["input"].shape == maps["reconstruction_linear_srgb"].shape == (SIZE, SIZE, 3)
  assert int(maps["refine_steps"]) == 5
  np.testing.assert_allclose(maps["central_srgb_rmse"], photo_fit.central_srgb_rmse(
      maps["input"], maps["reconstruction_linear_srgb"]))
  assert "central sRGB RMSE" in capsys.readouterr().out

  out = workdir / "edit"
  assert edit.main([photo, "--workdir", run, "--out", str(out), "--melanin", "0.2",
                    "--lights", "A", "F2"]) == 0
  assert (out / "face_edits.png").stat().st_size > 0
  for label in ("reconstruction", "melanin_plus0p2", "melanin_minus0p2", "haemoglobin_plus0p4",
                "no_specular", "light_a", "light_f2"):
    with Image.open(out / f"face_edit_{label}.png") as image:
      assert image.size == (SIZE, SIZE), label
  images = np.load(out / "face_edits.npz")
  assert np.all(np.isfinite(images["light_f2"])) and images["input"].shape == (SIZE, SIZE, 3)
  with pytest.raises(SystemExit) as exit_:
    edit.main([photo, "--workdir", run, "--lights", "Q7"])
  assert exit_.value.code == 2

  photos = workdir / "photos" / "nested"
  photos.mkdir(parents=True)
  (photos / "face.png").write_bytes((workdir / "face.png").read_bytes())
  (workdir / "photos" / "other.png").write_bytes((workdir / "face.png").read_bytes())
  assert photo_rmse.main([str(workdir / "photos"), str(workdir / "face*.png"), "--workdir", run,
                          "--figure", str(workdir / "fig.png"), "--figure-rows", "0", "2",
                          "--refine-steps", "3", "--json", str(workdir / "set.json")]) == 0
  printed = capsys.readouterr().out
  # The random photo has no face: each is cropped to its central square (folder searched
  # recursively, then the glob).
  assert "| 0 | face.png (central square) |" in printed and "median of 3" in printed
  assert "refined maps: Spearman" in printed
  assert (workdir / "fig.png").stat().st_size > 0
  result = json.loads((workdir / "set.json").read_text())
  assert len(result["faces"]) == 3 and result["summary"]["refined"]["faces"] == 3
  assert result["summary"]["median_rmse_refined"] == pytest.approx(
      np.median([f["rmse_refined"] for f in result["faces"]]))
