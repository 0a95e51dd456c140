"""bioface_jax.face3d against independent references (hand-computed cases, NumPy transcriptions,
the asset files' published counts)."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from bioface_jax import assets, face3d

EPS32 = float(np.finfo(np.float32).eps)
ASSET_DIR = assets.assets_dir() / "faces" / "prnet_uv"


def test_landmarks_gather_matches_numpy_at_256():
  rng = np.random.default_rng(0)
  pm = rng.uniform(0, 280, (2, 256, 256, 3)).astype(np.float32)
  kpt = np.loadtxt(ASSET_DIR / "uv_kpt_ind.txt").astype(np.int64)
  want = pm[:, kpt[1], kpt[0], :]  # Independent: the spec's indexing written out.
  got = np.asarray(face3d.landmarks_from_position_map(pm))
  assert got.shape == (2, 68, 3)
  np.testing.assert_array_equal(got, want)  # A gather: exact.
  custom = np.stack([np.arange(68), np.arange(68)[::-1] + 100])
  np.testing.assert_array_equal(
      np.asarray(jax.jit(face3d.landmarks_from_position_map)(pm, custom)),
      pm[:, custom[1], custom[0], :])


def test_landmarks_at_128_reproduce_an_affine_map():
  # Block means of an affine function are its values at the block centres, and the bilinear
  # read at ((u + 1/2)/2 - 1/2) lands back on the 256-grid point, so landmarks of a downsampled
  # affine map (all pixels valid) equal the affine function at the 256 landmark pixels.
  # Tolerance: float32 rounding of values <= ~600: 8 eps32 * 600.
  rows, cols = np.mgrid[0:256, 0:256].astype(np.float64)
  affine = np.stack([0.9 * cols + 0.2 * rows + 3, -0.1 * cols + 1.1 * rows + 7,
                     0.3 * cols + 0.5 * rows], -1)
  small = face3d.resize_uv_map(affine.astype(np.float32), np.ones((256, 256), bool), 128)
  got = np.asarray(face3d.landmarks_from_position_map(small))
  kpt = np.loadtxt(ASSET_DIR / "uv_kpt_ind.txt").astype(np.int64)
  want = affine[kpt[1], kpt[0]]
  np.testing.assert_allclose(got, want, atol=8 * EPS32 * 600)
  # With the real face mask, the 4 neighbours read for every landmark are face pixels at 128.
  m = face3d.face_mask(128)
  x0 = np.floor((kpt[0] + 0.5) / 2 - 0.5).astype(int)
  y0 = np.floor((kpt[1] + 0.5) / 2 - 0.5).astype(int)
  assert m[y0, x0].all() and m[y0 + 1, x0].all() and m[y0, x0 + 1].all() and m[y0 + 1, x0 + 1].all()


def test_nme_hand_cases():
  gt = np.array([[0, 0], [10, 0], [10, 40], [0, 40]], np.float32)  # Box 10 x 40: sqrt = 20.
  pred = gt + np.array([3, 4], np.float32)                            # Every error is 5.
  np.testing.assert_allclose(float(face3d.nme(pred, gt)), 5 / 20, rtol=4 * EPS32)
  pred2 = gt.copy()
  pred2[0] += [6, 8]                                                  # One error of 10.
  np.testing.assert_allclose(float(face3d.nme(pred2, gt)), 10 / 4 / 20, rtol=4 * EPS32)
  # 3-D: z offsets are removed (both sets to mean z 0); a per-point z error counts.
  gt3 = np.concatenate([gt, np.array([[1], [2], [3], [6]], np.float32)], 1)
  pred3 = gt3.copy()
  pred3[:, 2] += 100.0
  assert float(face3d.nme(pred3, gt3, dims=3)) == pytest.approx(0.0, abs=1e-6)
  pred3[:, 2] += np.array([2, -2, 2, -2])                             # Mean 0 already.
  np.testing.assert_allclose(float(face3d.nme(pred3, gt3, dims=3)), 2 / 20, rtol=1e-5)
  batch = face3d.nme(np.stack([pred, pred2]), np.stack([gt, gt]))
  np.testing.assert_allclose(np.asarray(batch), [0.25, 0.125], rtol=4 * EPS32)


def test_nme_matches_float64_numpy_on_random_points():
  rng = np.random.default_rng(1)
  gt = rng.uniform(0, 200, (5, 68, 3))
  pred = gt + rng.normal(0, 3, gt.shape)
  box = gt[..., :2].max(1) - gt[..., :2].min(1)
  norm = np.sqrt(box[:, 0] * box[:, 1])
  want2 = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1).mean(-1) / norm
  pz = pred - np.array([0, 0, 1]) * pred[..., 2:].mean(1, keepdims=True)
  gz = gt - np.array([0, 0, 1]) * gt[..., 2:].mean(1, keepdims=True)
  want3 = np.linalg.norm(pz - gz, axis=-1).mean(-1) / norm
  with jax.enable_x64(True):
    np.testing.assert_allclose(np.asarray(face3d.nme(pred, gt)), want2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(face3d.nme(pred, gt, dims=3)), want3, rtol=1e-12)


def test_nme_components_recover_an_exact_similarity_and_a_translation():
  rng = np.random.default_rng(2)
  gt = rng.uniform(0, 200, (4, 68, 2))
  angle = np.radians(-12.0)
  rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  centre = gt.mean(1, keepdims=True)
  pred = 1.1 * (gt - centre) @ rot.T + centre + np.array([3.0, -4.0])
  c = face3d.nme_components(pred, gt)
  norm = np.sqrt(np.prod(gt.max(1) - gt.min(1), -1))
  np.testing.assert_allclose(c["raw"], np.linalg.norm(pred - gt, axis=-1).mean(-1) / norm,
                             rtol=1e-12)
  assert np.all(c["raw"] > 0.05)
  np.testing.assert_allclose(c["similarity_free"], 0.0, atol=1e-12)   # float64 throughout
  np.testing.assert_allclose(c["scale"], 1 / 1.1, rtol=1e-12)
  np.testing.assert_allclose(c["rotation_deg"], 12.0, rtol=1e-12)
  np.testing.assert_allclose(c["offset_x"], -3.0 / norm, rtol=1e-12)
  np.testing.assert_allclose(c["offset_y"], 4.0 / norm, rtol=1e-12)
  moved = face3d.nme_components(gt + np.array([5.0, 1.0]), gt)
  np.testing.assert_allclose(moved["raw"], np.hypot(5, 1) / norm, rtol=1e-12)
  for key in ("translation_free", "scale_free", "similarity_free"):
    np.testing.assert_allclose(moved[key], 0.0, atol=1e-12)


def test_nme_components_fit_matches_a_general_least_squares_solve():
  # The closed form against np.linalg.lstsq of x' = a x - b y + tx, y' = b x + a y + ty.
  rng = np.random.default_rng(3)
  gt = rng.uniform(0, 100, (68, 2))
  pred = gt @ np.array([[0.9, 0.2], [-0.1, 1.05]]) + rng.normal(0, 4, gt.shape) + 7.0
  x, y = pred[:, 0], pred[:, 1]
  one, zero = np.ones_like(x), np.zeros_like(x)
  design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
  (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([gt[:, 0], gt[:, 1]]), rcond=None)
  fitted = np.stack([a * x - b * y + tx, b * x + a * y + ty], 1)
  norm = np.sqrt(np.prod(gt.max(0) - gt.min(0)))
  c = face3d.nme_components(pred, gt)
  np.testing.assert_allclose(c["scale"], np.hypot(a, b), rtol=1e-10)
  np.testing.assert_allclose(c["rotation_deg"], np.degrees(np.arctan2(b, a)), rtol=1e-10)
  np.testing.assert_allclose(c["similarity_free"],
                             np.linalg.norm(fitted - gt, axis=1).mean() / norm, rtol=1e-10)
  assert c["raw"] > c["translation_free"] > c["similarity_free"] > 0


def test_yaw_bins_edges_and_errors():
  np.testing.assert_array_equal(face3d.yaw_bins([0, 30, 30.001, -45, 60, 60.5, 90, 120, -351]),
                                [0, 0, 1, 1, 1, 2, 2, 2, 2])
  with pytest.raises(ValueError, match="non-finite"):
    face3d.yaw_bins([10.0, np.nan])


def test_nme_table_mean_of_bins_differs_from_image_mean():
  t = face3d.nme_table([1.0, 1.0, 1.0, 2.0, 6.0], [0, 10, 20, 45, 80])
  assert t["counts"] == (3, 1, 1)
  assert (t["0-30"], t["30-60"], t["60-90"]) == (1.0, 2.0, 6.0)
  assert t["mean"] == pytest.approx(3.0)
  assert t["all_images"] == pytest.approx(11.0 / 5)
  empty = face3d.nme_table([1.0, 2.0], [0, 45])
  assert np.isnan(empty["60-90"]) and np.isnan(empty["mean"])


def test_asset_tables_match_the_spec_counts():
  w = face3d.weight_mask(256)
  values, counts = np.unique(w, return_counts=True)
  assert dict(zip(values.tolist(), counts.tolist())) == {0: 21669, 3: 33223, 4: 10429, 8: 147,
                                                         16: 68}
  kpt = np.loadtxt(ASSET_DIR / "uv_kpt_ind.txt").astype(np.int64)
  assert (w[kpt[1], kpt[0]] == 16).all()
  face_ind = np.loadtxt(ASSET_DIR / "face_ind.txt").astype(np.int64)
  np.testing.assert_array_equal(face3d.face_indices(256), face_ind)
  assert face3d.face_mask(128).sum() == 11138
  assert face3d.mesh_triangles(256).shape == (86850, 3)


def test_vertices_from_position_map():
  rng = np.random.default_rng(2)
  pm = rng.uniform(0, 1, (256, 256, 3)).astype(np.float32)
  face_ind = np.loadtxt(ASSET_DIR / "face_ind.txt").astype(np.int64)
  np.testing.assert_array_equal(np.asarray(face3d.vertices_from_position_map(pm)),
                                pm.reshape(-1, 3)[face_ind])


def _frontal_map():
  # A frontal face: the mean face placed in a 256 crop, y down, z toward the camera.
  v = np.load(ASSET_DIR / "canonical_vertices.npy")  # x right, y down, z toward the viewer.
  face_ind = np.loadtxt(ASSET_DIR / "face_ind.txt").astype(np.int64)
  pm = np.zeros((256 * 256, 3))
  p = v - v.min(0)
  pm[face_ind] = p * np.array([1.0, 1.0, 1.0]) + np.array([20.0, 10.0, 0.0])
  return pm.reshape(256, 256, 3), face_ind


def test_obj_export_vertices_colours_and_viewer_facing_normals(tmp_path):
  pm, face_ind = _frontal_map()
  image = np.zeros((300, 300, 3))
  image[..., 0] = 1.0  # Red everywhere: every vertex colour must be (1, 0, 0).
  verts = np.asarray(face3d.vertices_from_position_map(pm))
  path = face3d.write_obj(tmp_path / "face.obj", verts, face3d.mesh_triangles(), image)
  lines = path.read_text().splitlines()
  v = np.array([[float(x) for x in l.split()[1:]] for l in lines if l.startswith("v ")])
  f = np.array([[int(x) for x in l.split()[1:]] for l in lines if l.startswith("f ")]) - 1
  assert v.shape == (43867, 6) and f.shape == (86850, 3) and f.min() == 0
  np.testing.assert_allclose(v[:, 3:], np.tile([1.0, 0.0, 0.0], (len(v), 1)))
  np.testing.assert_allclose(v[:, 1], 299 - verts[:, 1], atol=1e-4)  # y -> h - 1 - y.
  a, b, c = (v[f[:, k], :3] for k in range(3))
  n = np.cross(b - a, c - a)
  area = np.linalg.norm(n, axis=1)
  # Seen from the camera (+z in the file), the area-weighted normal points at the viewer.
  assert (n[:, 2].sum() / area.sum()) > 0.5
  assert (n[:, 2] > 0).mean() > 0.8


def test_crop_corners_and_exact_uncrop():
  t = face3d.crop_transform([100, 50, 300, 350], 256)
  old = (200 + 300) / 2
  side = int(old * 1.6)
  cx, cy = 200, 200
  corners = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2]])
  np.testing.assert_allclose(face3d.transform_points(corners, t), [[0, 0], [255, 255]],
                             atol=1e-9)
  pts = np.random.default_rng(3).uniform(0, 400, (10, 3))
  back = face3d.uncrop_points(face3d.transform_points(pts, t), t)
  np.testing.assert_allclose(back, pts, rtol=1e-12, atol=1e-10)
  image = np.random.default_rng(4).uniform(0, 1, (400, 400, 3))
  crop = face3d.warp_image(image, t, 256)
  assert crop.shape == (256, 256, 3)
  np.testing.assert_allclose(crop[0, 0], image[int(cy - side / 2), int(cx - side / 2)],
                             atol=1e-9)


def test_bad_inputs_name_the_problem(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match=r"\(\.\.\., R, R, 3\)"):
    face3d.landmarks_from_position_map(np.zeros((256, 256, 2)))
  with pytest.raises(ValueError, match="256 / 2"):
    face3d.landmarks_from_position_map(np.zeros((100, 100, 3)))
  with pytest.raises(ValueError, match="kpt_ind"):
    face3d.landmarks_from_position_map(np.zeros((256, 256, 3)), np.zeros((2, 5), int))
  with pytest.raises(ValueError, match="same N"):
    face3d.nme(np.zeros((68, 2)), np.zeros((67, 2)))
  with pytest.raises(ValueError, match="box"):
    face3d.crop_transform([10, 10, 5, 20], 256)
  with pytest.raises(ValueError, match="triangles"):
    face3d.write_obj(tmp_path / "x.obj", np.zeros((3, 3)), np.array([[0, 1, 5]]))
  assert not (tmp_path / "x.obj").exists()
  monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
  with pytest.raises(assets.MissingAssetError, match="uv_kpt_ind.txt"):
    face3d.landmarks_from_position_map(np.zeros((256, 256, 3)))


def test_dense_nme_uses_the_given_box():
  gt = np.array([[0, 0, 0], [10, 0, 0], [10, 40, 0], [0, 40, 0]], np.float32)
  pred = gt + np.array([3, 4, 0], np.float32)
  box = np.array([[0, 0], [20, 80]], np.float32)  # sqrt(20 * 80) = 40.
  np.testing.assert_allclose(float(face3d.dense_nme(pred, gt)), 5 / 20, rtol=4 * EPS32)
  np.testing.assert_allclose(float(face3d.dense_nme(pred, gt, box_points=box)), 5 / 40,
                             rtol=4 * EPS32)
