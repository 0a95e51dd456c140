"""SDPS-Net models (parameter counts, any N, fusion, variants) and the photometric data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import photometric as ps
from bioface_jax.models import sdps
from data.photometric import diligent, shapes, synth

SPEC_COUNTS = {  # sdps-spec.md §5, exact
    (1.0, "standard"): (4_409_692, 2_210_048, 6_619_740),
    (1.0, "depthwise_separable"): (564_188, 235_136, 799_324),
    (0.5, "standard"): (1_105_116, 554_112, 1_659_228),
    (0.25, "standard"): (277_660, 139_328, 416_988),
    (0.25, "depthwise_separable"): (41_276, 18_848, 60_124),
}


@pytest.mark.parametrize("alpha,conv", list(SPEC_COUNTS))
def test_parameter_counts(alpha, conv):
  got = []
  for net in sdps.NETS:
    cfg = sdps.SDPSConfig(net=net, conv=conv, width_multiplier=alpha, input_size=128)
    shapes_ = jax.eval_shape(lambda c=cfg: sdps.init(jax.random.key(0), (1, 2, 128, 128, 3), c)[0])
    got.append(sdps.param_count(shapes_))
  assert tuple(got) == SPEC_COUNTS[(alpha, conv)]
  # Residual blocks add no parameters.
  cfg = sdps.SDPSConfig(net="nenet", conv=conv, width_multiplier=alpha, residual=True)
  assert sdps.param_count(jax.eval_shape(
      lambda: sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), cfg)[0])) == got[1]


def _batch(n, size=16, b=1, seed=0):
  rng = np.random.default_rng(seed)
  dirs = np.asarray(ps.sample_light_directions(jax.random.key(seed), (b, n)))
  return {"images": rng.uniform(0, 1, (b, n, size, size, 3)).astype(np.float32),
          "mask": np.ones((b, size, size), np.float32), "dirs": dirs,
          "intensities": rng.uniform(0.2, 2, (b, n)).astype(np.float32),
          "normals": np.tile(np.asarray([0, 0, 1.0], np.float32), (b, size, size, 1))}


@pytest.mark.parametrize("conv,residual,counts", [
    ("standard", False, (1, 2, 64)), ("depthwise_separable", True, (2,))])
def test_any_number_of_images_and_order_invariance(conv, residual, counts):
  """N = 1, 2 and 64 work with the same weights; max fusion makes both nets order-invariant."""
  kw = dict(conv=conv, residual=residual, width_multiplier=1 / 16, input_size=16)
  lc = sdps.SDPSConfig(net="lcnet", **kw)
  ne = sdps.SDPSConfig(net="nenet", **kw)
  lp, _ = sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), lc)
  npar, _ = sdps.init(jax.random.key(1), (1, 2, 12, 12, 3), ne)
  run_lc = jax.jit(lambda p, b: sdps.apply(p, b, lc))
  run_ne = jax.jit(lambda p, b: sdps.apply(p, b, ne)["normals"])
  for n in counts:
    b = _batch(n, size=12)
    out = run_lc(lp, b)
    assert out["dir_x_logits"].shape == (1, n, 36) and out["int_logits"].shape == (1, n, 20)
    normals = run_ne(npar, _batch(n, size=10))
    assert normals.shape == (1, 10, 10, 3)  # 10 is zero-padded to 12 and cropped back
    np.testing.assert_allclose(np.linalg.norm(np.asarray(normals), axis=-1), 1, atol=1e-5)
  b = _batch(5, size=12)
  perm = np.asarray([3, 0, 4, 1, 2])
  pb = {**b, "images": b["images"][:, perm], "dirs": b["dirs"][:, perm],
        "intensities": b["intensities"][:, perm]}
  np.testing.assert_allclose(np.asarray(run_ne(npar, b)), np.asarray(run_ne(npar, pb)),
                             atol=1e-5)
  # LCNet: each image's logits depend on the others only through the max (order-invariant).
  np.testing.assert_allclose(np.asarray(run_lc(lp, b)["dir_x_logits"])[:, perm],
                             np.asarray(run_lc(lp, pb)["dir_x_logits"]), atol=1e-4)


def test_lcnet_rejects_bad_sizes_and_shapes():
  cfg = sdps.SDPSConfig(net="lcnet", width_multiplier=1 / 16, input_size=256)
  with pytest.raises(ValueError, match="input_size 256"):
    sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), cfg)
  ok = sdps.SDPSConfig(net="lcnet", width_multiplier=1 / 16, input_size=16)
  params, _ = sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), ok)
  b = _batch(2)
  with pytest.raises(ValueError, match="mask must be"):
    sdps.apply(params, {**b, "mask": b["mask"][:, :8]}, ok)
  with pytest.raises(ValueError, match="images must be"):
    sdps.apply(params, {**b, "images": b["images"][0]}, ok)
  with pytest.raises(ValueError, match="conv"):
    sdps.SDPSConfig(conv="mystery")


def test_fused_normal_loss_trains_the_lcnet_part_and_lcnet_loss_decreases():
  cfg = sdps.SDPSConfig(net="fused", width_multiplier=1 / 16, input_size=16)
  params, _ = sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), cfg)
  b3 = _batch(3)
  grads = jax.jit(jax.grad(lambda p: sdps.compute_loss(p, b3, cfg)[0]))(params)
  lc_norm = sum(float(jnp.sum(g ** 2)) for g in jax.tree.leaves(grads["lcnet"]))
  assert lc_norm > 0  # the soft decode is differentiable: no stop_gradient between the parts
  lc = sdps.SDPSConfig(net="lcnet", width_multiplier=1 / 16, input_size=16, learning_rate=2e-3)
  p, _ = sdps.init(jax.random.key(0), (2, 4, 16, 16, 3), lc)
  b = _batch(4, b=2)
  tx = sdps.optimizer(lc)
  opt = tx.init(p)
  step = jax.jit(lambda p, o: (lambda lg: (lg, tx.update(lg[1], o, p)))(
      jax.value_and_grad(lambda q: sdps.compute_loss(q, b, lc)[0])(p)))
  first = None
  for _ in range(8):
    (loss, g), (upd, opt) = step(p, opt)
    p = jax.tree.map(lambda a, u: a + u, p, upd)
    first = float(loss) if first is None else first
  assert float(loss) < first  # overfits one batch: the losses are wired to the labels


def test_lcnet_loss_labels_follow_the_spec_encoding():
  cfg = sdps.SDPSConfig()
  az, el, k = sdps.light_labels(np.asarray([[[0.0, 0.0, 1.0]]]), np.asarray([[1.1]]), cfg)
  assert (int(az[0, 0]), int(el[0, 0]), int(k[0, 0])) == (18, 18, 10)


def test_shapes_have_exact_normals():
  rng = np.random.default_rng(0)
  s = shapes.sphere(rng, 32)
  m = s["mask"]
  np.testing.assert_allclose(np.linalg.norm(s["normals"][m], axis=-1), 1, atol=1e-6)
  b = shapes.blob(np.random.default_rng(1), 48)
  m = b["mask"]
  assert 0.15 <= m.mean() and not m[0].any() and not m[:, -1].any()
  # Normals agree with the depth map's finite differences (x = column, y = −row) on the
  # interior: n ∝ (−∂z/∂x, −∂z/∂y, 1).
  z = b["depth"].astype(np.float64)
  dzdx = (z[1:-1, 2:] - z[1:-1, :-2]) / 2
  dzdy = -(z[2:, 1:-1] - z[:-2, 1:-1]) / 2
  fd = np.stack([-dzdx, -dzdy, np.ones_like(dzdx)], -1)
  inner = m[1:-1, 1:-1] & m[2:, 1:-1] & m[:-2, 1:-1] & m[1:-1, 2:] & m[1:-1, :-2]
  inner &= b["normals"][1:-1, 1:-1, 2] > 0.5  # away from steep silhouettes
  err = np.asarray(ps.angular_error(fd, b["normals"][1:-1, 1:-1]))[inner]
  assert np.median(err) < 2.0


def test_face_scene_and_test_sets():
  face = synth.make_scene(0, 5, 32, {"face": 1.0})
  assert face["kind"] == 2 and 0.1 < face["mask"].mean() < 0.9
  lam = synth.test_set("lambertian", 2, 32)
  images = synth.render_test_scene(lam, 0)
  assert images.shape == (64, 32, 32, 3)
  est, _ = ps.woodham(images, lam["dirs"][0], lam["intensities"][0], lam["mask"][0])
  lit = np.sum(np.einsum("hwc,nc->nhw", lam["normals"][0], lam["dirs"][0]) > 0, 0) >= 3
  m = (lam["mask"][0] > 0) & lit
  assert float(ps.mean_angular_error(est, lam["normals"][0], m)) < 0.05  # goal §12.1


def test_face_scene_world_kind_in_the_bank_and_the_scenes_test_set(tmp_path):
  """Kind "scene" (the face-scene world's portraits) mixes into the bank like any kind: the
  same kind draws, batched rows equal to one-at-a-time scenes, the cache read back unchanged;
  the "scenes" test set uses the "faces" set's lights."""
  mix = {"blob": 1.0, "scene": 1.0}
  kinds = [synth.scene_kind(3, i, mix) for i in range(6)]
  assert {"blob", "scene"} <= set(kinds), kinds
  bank = synth.scene_bank(6, 32, 3, mix, tmp_path)
  assert [synth.KINDS[k] for k in bank["kind"]] == kinds
  for kind in ("scene", "blob"):
    i = kinds.index(kind)
    one = synth.make_scene(3, i, 32, mix)
    # Geometry is host NumPy (exact); albedo goes through the jitted spectral skin model, whose
    # ~33-band sums may be reordered with the batch size: <= 33 roundings of values <= 1.
    for key in synth.SCENE_KEYS:
      tol = 0 if key != "albedo" else 64 * np.finfo(np.float32).eps
      np.testing.assert_allclose(one[key], bank[key][i], rtol=0, atol=tol, err_msg=key)
  world = np.asarray(kinds) == "scene"
  m = bank["mask"][world] > 0
  assert 0.2 < m.mean() < 0.9
  np.testing.assert_allclose(np.linalg.norm(bank["normals"][world][m], axis=-1), 1, atol=1e-5)
  assert (bank["depth"][world] >= 0).all() and (bank["albedo"][world][m] <= 1).all()
  again = synth.scene_bank(6, 32, 3, mix, tmp_path)
  for key in bank:
    np.testing.assert_array_equal(again[key], bank[key])
  scenes, faces = synth.test_set("scenes", 2, 32), synth.test_set("faces", 2, 32)
  np.testing.assert_array_equal(scenes["dirs"], faces["dirs"])
  assert scenes["name"] == "scenes" and scenes["normals"].shape == (2, 32, 32, 3)
  images = synth.render_test_scene(scenes, 0, subset=np.arange(4))
  assert images.shape == (4, 32, 32, 3) and np.isfinite(images).all()
  with pytest.raises(ValueError, match="unknown kinds"):
    synth.make_scene(0, 0, 32, {"cube": 1.0})


def _fixture_object(tmp_path, h=20, w=24, n=5):
  rng = np.random.default_rng(0)
  mask = np.zeros((h, w), bool)
  mask[5:15, 6:20] = True
  normals = np.zeros((h, w, 3))
  normals[mask] = [0, 0, 1]
  lights = ps.diligent_like_lights()[:n]
  ints = rng.uniform(0.5, 2, (n, 3))
  images = rng.integers(0, 65536, (n, h, w, 3), dtype=np.uint16) * mask[..., None]
  d = diligent.write_object(tmp_path, "ball", images, mask, normals * 2.0, lights, ints)
  return d, images, mask, lights, ints


def test_diligent_reader_round_trip(tmp_path):
  d, images, mask, lights, ints = _fixture_object(tmp_path)
  full = diligent.load_object(tmp_path, "ball", crop=False, emulate_8bit=False)
  np.testing.assert_array_equal(full["images"], images.astype(np.float32) / 65535)
  np.testing.assert_array_equal(full["mask"], mask)
  np.testing.assert_allclose(full["lights"], lights, atol=1e-6)  # 6 printed digits
  np.testing.assert_allclose(full["intensities"], ints, atol=1e-6)
  assert np.all(full["normals"][mask] == [0, 0, 1])  # renormalised
  eight = diligent.load_object(tmp_path, "ball", crop=False)
  np.testing.assert_array_equal(eight["images"], (images >> 8).astype(np.float32) / 255)
  cropped = diligent.load_object(tmp_path, "ball")
  # bbox rows 5..14, cols 6..19: h = 14 − 5 + 30 = 39 -> 40, w = 43 -> 44, t = l = 0;
  # the 20 × 24 image is sliced and zero-padded to multiples of 4.
  assert diligent.crop_box(mask) == (0, 0, 40, 44)
  assert cropped["images"].shape == (5, 20, 24, 3) and cropped["mask"].shape == (20, 24)


_MALFORMED = {  # file -> (content, what the error must say besides the file's path)
    "light_directions.txt": ("0 0 1\n0 0 x\n", "could not convert"),
    "light_intensities.txt": ("1 1 1\n1 1\n", "rows of 3 numbers"),
    "filenames.txt": ("\n", "lists no image"),
    "mask.png": (b"not a png", "not a readable PNG"),
    "Normal_gt.mat": (b"", "not a readable MAT-file"),
    "003.png": (b"\x89PNG garbage", "not a readable PNG"),
}


@pytest.mark.parametrize("name", sorted(_MALFORMED))
def test_diligent_malformed_files_are_named(tmp_path, name):
  d, *_ = _fixture_object(tmp_path)
  content, message = _MALFORMED[name]
  if isinstance(content, bytes):
    (d / name).write_bytes(content)
  else:
    (d / name).write_text(content)
  with pytest.raises(ValueError) as caught:
    diligent.load_object(tmp_path, "ball")
  assert str(d / name) in str(caught.value) and message in str(caught.value), caught.value


def test_diligent_bad_values_are_named(tmp_path):
  d, _, mask, lights, ints = _fixture_object(tmp_path)
  bad = ints.copy()
  bad[2, 1] = -1.0
  np.savetxt(d / "light_intensities.txt", bad)
  with pytest.raises(ValueError, match=r"light_intensities.txt: intensities must be positive "
                                       r"\(row 3"):
    diligent.load_object(tmp_path, "ball")
  np.savetxt(d / "light_intensities.txt", ints)
  diligent.write_png(d / "mask.png", np.zeros(mask.shape + (3,), np.uint8))
  with pytest.raises(ValueError, match=r"mask.png: the mask is empty"):
    diligent.load_object(tmp_path, "ball")
  diligent.write_png(d / "mask.png", np.full((4, 4, 3), 255, np.uint8))
  with pytest.raises(ValueError, match=r"mask.png is 4x4 but Normal_gt .* has shape"):
    diligent.load_object(tmp_path, "ball")


def test_diligent_missing_and_bad_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    diligent.load_object(tmp_path, "cat")
  d, *_ = _fixture_object(tmp_path)
  (d / "002.png").unlink()
  with pytest.raises(FileNotFoundError, match="002.png"):
    diligent.load_object(tmp_path, "ball")
  np.savetxt(d / "light_directions.txt", np.ones((5, 3)))
  with pytest.raises(ValueError, match="unit"):
    diligent.load_object(tmp_path, "ball")
  (d / "Normal_gt.mat").unlink()
  with pytest.raises(FileNotFoundError, match="Normal_gt.mat"):
    diligent.load_object(tmp_path, "ball")


def test_benchmark_accepts_every_test_set_and_shares_the_faces_light_subsets():
  """`eval.ps_benchmark.evaluate_set` knows every synthetic set; faces_lit and scenes draw the
  faces set's light subsets (same data in, same least-squares numbers out)."""
  from eval import ps_benchmark
  lam = synth.test_set("lambertian", 2, 32)
  data = [{"images": synth.render_test_scene(lam, i), "mask": lam["mask"][i],
           "normals": lam["normals"][i], "dirs": lam["dirs"][i],
           "intensities": np.asarray(lam["intensities"][i])} for i in range(2)]
  scores = {name: ps_benchmark.evaluate_set(name, data, [], ["4"], 1, 0)[0]["woodham"]["4"]
            for name in synth.TEST_SETS}
  assert scores["faces_lit"] == scores["faces"] == scores["scenes"]
  assert scores["objects"] != scores["faces"]  # another stream of subsets
