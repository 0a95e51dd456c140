"""Dense 300W-LP truth from the Basel Face Model (data.prnet.bfm) on a tiny fake BFM written in
exactly face3d's BFM.mat / BFM_UV.mat layout: closed forms (zero parameters -> mean shape; a
pure rotation / translation / scale -> hand-computed vertices; a flat mesh whose positions are an
affine function of UV -> an affine position map), the 300W-LP reader and task with dense truth,
and errors for missing keys / wrong shapes."""

import math

import numpy as np
import pytest
from scipy import io as sio

from data.prnet import bfm
from data.prnet import readers

M = 11          # fake mesh: M x M grid of vertices
KS, KE = 4, 3   # shape / expression components
EPS32 = float(np.finfo(np.float32).eps)


def _grid():
  a = np.linspace(0.1, 0.9, M)
  u, v = np.meshgrid(a, a, indexing="xy")
  return u.ravel(), v.ravel()


def _affine_xyz(u, v):
  """Model-space positions, an affine function of UV (in the BFM's units, y up)."""
  return np.stack([100 * u - 50, 100 * v - 50, 20 * u + 10 * v], -1)


def _write_fake_bfm(root, *, drop=None, bad_shape=None, flat=False, seed=0):
  rng = np.random.default_rng(seed)
  u, v = _grid()
  n = u.size
  mean = _affine_xyz(u, v)
  shape_mu = mean.reshape(-1, 1) - 0.25                 # shapeMU + expMU = mean
  exp_mu = np.full((3 * n, 1), 0.25)
  # Components that are themselves affine in UV, so maps stay affine with nonzero parameters.
  coef = rng.normal(size=(KS + KE, 3, 3))
  pcs = np.stack([(np.stack([u, v, np.ones(n)], -1) @ c).reshape(-1) for c in coef], 1)
  tris = []
  for r in range(M - 1):
    for c in range(M - 1):
      a, b, d, e = r * M + c, r * M + c + 1, (r + 1) * M + c, (r + 1) * M + c + 1
      tris += [(a, b, e), (a, e, d)] if (r + c) % 2 else [(a, d, b), (b, d, e)]  # mixed winding
  tri = np.array(tris[:-2]).T + 1                        # 1-based, 3 x T
  tri_mouth = np.array(tris[-2:]).T + 1
  kpt = rng.choice(n, 68, replace=False)[None] + 1       # 1 x 68, 1-based
  model = dict(shapeMU=shape_mu, shapePC=pcs[:, :KS], shapeEV=np.ones((KS, 1)), expMU=exp_mu,
               expPC=pcs[:, KS:], expEV=np.ones((KE, 1)), tri=tri.astype(float),
               tri_mouth=tri_mouth.astype(float), kpt_ind=kpt.astype(float))
  if drop:
    model.pop(drop)
  if bad_shape:
    model[bad_shape] = model[bad_shape][:-3]
  path = root / "BFM.mat"
  sio.savemat(path, model if flat else {"model": model})
  sio.savemat(root / "BFM_UV.mat", {"UV": np.stack([u, v], -1)})
  return path, kpt.ravel() - 1


def test_loader_reads_face3d_layout(tmp_path):
  path, kpt = _write_fake_bfm(tmp_path)
  m = bfm.load_bfm(path)
  u, v = _grid()
  np.testing.assert_array_equal(m.mean, _affine_xyz(u, v))   # shapeMU + expMU, x y z per vertex
  np.testing.assert_array_equal(m.kpt_ind, kpt)
  assert m.triangles.shape == (2 * (M - 1) ** 2, 3) and m.triangles.min() == 0
  assert m.shape_pc.shape == (3 * M * M, KS) and m.exp_pc.shape == (3 * M * M, KE)
  flat_dir = tmp_path / "flat"
  flat_dir.mkdir()
  np.testing.assert_array_equal(bfm.load_bfm(_write_fake_bfm(flat_dir, flat=True)[0]).mean,
                                m.mean)


def test_zero_parameters_give_the_mean_shape(tmp_path):
  m = bfm.load_bfm(_write_fake_bfm(tmp_path)[0])
  np.testing.assert_array_equal(bfm.vertices(m, np.zeros((KS, 1)), np.zeros((KE, 1))), m.mean)
  # Identity pose: only the y flip y <- h - 1 - y.
  out = bfm.image_vertices(m.mean, [0, 0, 0, 0, 0, 0, 1], height=450)
  np.testing.assert_allclose(out, m.mean * [1, -1, 1] + [0, 449, 0], rtol=0, atol=1e-12)


def test_pose_closed_forms():
  """3DDFA's transposed rotations, written out for single angles by hand."""
  p = np.array([[1.0, 2.0, 3.0]])
  h = 100
  # yaw 90 deg: Ry^T gives x' = -z, z' = x; then scale 2, shift (5, 6, 7), y flip.
  out = bfm.image_vertices(p, [0, math.pi / 2, 0, 5, 6, 7, 2], height=h)
  np.testing.assert_allclose(out, [[2 * -3 + 5, h - 1 - (2 * 2 + 6), 2 * 1 + 7]], atol=1e-12)
  # roll 90 deg: x' = y, y' = -x.
  out = bfm.image_vertices(p, [0, 0, math.pi / 2, 0, 0, 0, 1], height=h)
  np.testing.assert_allclose(out, [[2, h - 1 + 1, 3]], atol=1e-12)
  # pitch 90 deg: y' = z, z' = -y.
  out = bfm.image_vertices(p, [math.pi / 2, 0, 0, 0, 0, 0, 1], height=h)
  np.testing.assert_allclose(out, [[1, h - 1 - 3, -2]], atol=1e-12)
  r = bfm.rotation_3ddfa([0.3, -0.7, 1.1])
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
  assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


def test_dense_truth_is_the_affine_map_in_crop_pixels(tmp_path):
  """Every vertex value is affine in UV, so barycentric interpolation reproduces it exactly at
  every drawn UV pixel; compare with the closed form at the pixel's (u, v)."""
  m = bfm.load_bfm(_write_fake_bfm(tmp_path)[0])
  a = np.array([0.5, -1.0, 0.2, 0.0])
  b = np.array([0.3, 0.0, -0.4])
  pose = np.array([0.1, 0.4, -0.2, 225.0, 210.0, 5.0, 1.3])
  t, posmap, lmk = bfm.dense_truth(m, a, b, pose, 450, 256)
  img = bfm.image_vertices(bfm.vertices(m, a, b), pose, 450)
  # Independent transcription of the crop: 1.5 x the int-cast keypoint box onto [0, 255].
  kpt = img[m.kpt_ind, :2].astype(np.int32)
  lo, hi = kpt.min(0), kpt.max(0)
  side = int(1.5 * (hi - lo).sum() / 2)
  k = 255 / side
  origin = (lo + hi) / 2 - side / 2
  to_crop = lambda p: np.concatenate([(p[:, :2] - origin) * k, p[:, 2:] * k], 1)  # noqa: E731
  z0 = to_crop(img)[:, 2].min()
  # float32 outputs of values <= ~300 px: 4 eps32 * 300 (float64 arithmetic before rounding).
  tol = 4 * EPS32 * 300
  np.testing.assert_allclose(lmk, to_crop(img[m.kpt_ind]) - [0, 0, z0], rtol=0, atol=tol)
  # Closed form at each drawn pixel: its (u, v) -> model point (affine) -> pose -> crop.
  rows, cols = np.nonzero(np.any(posmap != 0, -1))
  assert rows.size > 0.5 * (0.8 * 255) ** 2             # the grid covers most of [0.1, 0.9]^2
  u, v = cols / 255.0, 1.0 - rows / 255.0
  coef_pts = np.stack([u, v, np.ones_like(u)], -1)
  # Fit the (exactly affine) vertex -> UV relation of this model, then evaluate per pixel.
  verts = bfm.vertices(m, a, b)
  uv1 = np.concatenate([m.uv, np.ones((m.num_vertices, 1))], 1)
  w, *_ = np.linalg.lstsq(uv1, verts, rcond=None)
  np.testing.assert_allclose(uv1 @ w, verts, atol=1e-9)   # affine indeed
  want = to_crop(bfm.image_vertices(coef_pts @ w, pose, 450)) - [0, 0, z0]
  # Barycentrics and the fit are float64 (~1e-12 px); the map is float32: the same rule.
  np.testing.assert_allclose(posmap[rows, cols], want, rtol=0, atol=tol)
  assert t.shape == (3, 3) and posmap.dtype == np.float32


def test_300wlp_reader_and_task_with_dense_truth(tmp_path):
  from PIL import Image
  path, _ = _write_fake_bfm(tmp_path)
  m = bfm.load_bfm(path)
  root = tmp_path / "300W_LP"
  (root / "IBUG").mkdir(parents=True)
  rng = np.random.default_rng(1)
  pose = np.array([[0.05, 0.3, 0.1, 225.0, 220.0, 0.0, 1.2]])
  for name in ("IBUG_image_001_1_0", "IBUG_image_002_1_0"):
    Image.fromarray(rng.integers(0, 255, (450, 450, 3), dtype=np.uint8)).save(
        root / "IBUG" / f"{name}.jpg")
    sio.savemat(root / "IBUG" / f"{name}.mat", dict(
        Pose_Para=pose, Shape_Para=rng.normal(size=(KS, 1)) * 0.1,
        Exp_Para=rng.normal(size=(KE, 1)) * 0.1, pt2d=rng.uniform(150, 300, (2, 68))))
  ds = readers.W300LPDataset(root, size=64, bfm=m)
  ex = ds.example(0)
  assert ex["has_dense"] == 1 and ex["posmap"].shape == (64, 64, 3)
  assert ex["yaw"] == pytest.approx(np.rad2deg(0.3), rel=1e-6)
  meta = sio.loadmat(root / "IBUG" / "IBUG_image_001_1_0.mat")
  _, want_map, want_lmk = bfm.dense_truth(m, meta["Shape_Para"], meta["Exp_Para"],
                                          meta["Pose_Para"], 450, 64)
  np.testing.assert_array_equal(ex["posmap"], want_map)
  np.testing.assert_array_equal(ex["landmarks"], want_lmk)
  assert np.abs(ex["posmap"]).max() > 0 and ex["landmarks"][:, 2].min() >= 0
  # The training task picks the dense path from config.data.bfm_path.
  from train import prnet_task
  from train.configs import prnet as prnet_configs
  cfg = prnet_configs.get_config("smoke")
  cfg.data.source, cfg.data.dir, cfg.data.bfm_path = "300wlp", str(root), str(path)
  cfg.batch_size = 2
  train_set, _ = prnet_task.load_datasets(cfg, stream=None)
  assert train_set.get(np.array([0, 1]))["has_dense"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("drop", ["expPC", "kpt_ind", "tri_mouth"])
def test_missing_keys_are_named(tmp_path, drop):
  path, _ = _write_fake_bfm(tmp_path, drop=drop)
  with pytest.raises(ValueError, match=drop):
    bfm.load_bfm(path)


@pytest.mark.parametrize("key", ["shapePC", "expMU"])
def test_wrong_shapes_are_named(tmp_path, key):
  path, _ = _write_fake_bfm(tmp_path, bad_shape=key)
  with pytest.raises(ValueError, match=key):
    bfm.load_bfm(path)


def test_other_bad_inputs(tmp_path):
  with pytest.raises(FileNotFoundError, match="BFM.mat"):
    bfm.load_bfm(tmp_path / "BFM.mat")
  path, _ = _write_fake_bfm(tmp_path)
  sio.savemat(tmp_path / "BFM_UV.mat", {"UV": np.zeros((5, 2))})
  with pytest.raises(ValueError, match="'UV' must be"):
    bfm.load_bfm(path)
  sio.savemat(tmp_path / "BFM_UV.mat", {"uv": np.zeros((M * M, 2))})
  with pytest.raises(ValueError, match="UV"):
    bfm.load_bfm(path)
  sio.savemat(tmp_path / "BFM_UV.mat", {"UV": np.stack(_grid(), -1)})
  m = bfm.load_bfm(path)
  with pytest.raises(ValueError, match="Exp_Para"):
    bfm.vertices(m, np.zeros(KS), np.zeros(KE + 1), where="x.mat")
  with pytest.raises(ValueError, match="Pose_Para"):
    bfm.image_vertices(m.mean, np.zeros(6), 450)
  struct = sio.loadmat(path)["model"][0, 0]
  model = {k: struct[k] for k in struct.dtype.names}
  model["tri"] = model["tri"] * 0                     # 0 is not a 1-based index
  sio.savemat(path, {"model": model})
  with pytest.raises(ValueError, match="1-based"):
    bfm.load_bfm(path)
