"""face3d.normals against closed forms: planes and a sphere as position maps."""

import numpy as np
import pytest

from bioface_jax import face3d


def _grid(size):
  r, c = np.mgrid[0:size, 0:size].astype(np.float64)
  return r, c


def _angle_deg(a, b):
  a = a / np.linalg.norm(a, axis=-1, keepdims=True)
  b = b / np.linalg.norm(b, axis=-1, keepdims=True)
  return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


def test_plane_normals_depth_and_coverage():
  # PRNet frame (x right, y down, z toward the viewer): z = 5 + 0.5 x + 0.3 y. In the camera
  # frame (y up) that is z = 5 + 0.5 x - 0.3 y_up, whose normal is (-0.5, 0.3, 1) / norm.
  size, x0, y0 = 16, 7.0, 11.0
  r, c = _grid(size)
  x, y = x0 + c, y0 + r
  pm = np.stack([x, y, 5 + 0.5 * x + 0.3 * y], -1)
  valid = np.ones((size, size), bool)
  want = np.array([-0.5, 0.3, 1.0]) / np.sqrt(1.34)
  n = face3d.position_map_normals(pm, valid)
  np.testing.assert_allclose(n, np.broadcast_to(want, n.shape), atol=1e-6)
  out = face3d.rasterise_position_map(pm, (40, 50), valid)
  # The grid spans integer pixel centres x0..x0+15, y0..y0+15, edges inclusive.
  expect = np.zeros((40, 50), bool)
  expect[11:27, 7:23] = True
  np.testing.assert_array_equal(out["mask"], expect)
  np.testing.assert_allclose(out["normals"][expect], np.broadcast_to(want, (256, 3)), atol=1e-6)
  assert not out["normals"][~expect].any()
  i, j = np.nonzero(expect)
  np.testing.assert_allclose(out["depth"][expect], 5 + 0.5 * j + 0.3 * i, rtol=1e-6)


def test_sphere_normals_match_the_analytic_sphere():
  # A cap of a sphere of radius 24 px centred at (32, 30): P = (cx + rho u, cy + rho v,
  # rho w), w = sqrt(1 - u^2 - v^2); camera-frame normal (u, -v, w).
  size, rho, cx, cy = 64, 24.0, 32.0, 30.0
  r, c = _grid(size)
  u, v = (c - 31.5) / 32, (r - 31.5) / 32
  valid = u * u + v * v < 0.8**2
  w = np.sqrt(np.clip(1 - u * u - v * v, 0, None))
  pm = np.stack([cx + rho * u, cy + rho * v, rho * w], -1) * valid[..., None]
  n = face3d.position_map_normals(pm, valid)
  inner = u * u + v * v < 0.75**2  # vertices with all their neighbours
  err = _angle_deg(n[inner], np.stack([u, -v, w], -1)[inner])
  # Area-weighted normals of a sampled sphere are exact up to O(h^2 / w^3) (h = 1/32 of the
  # parameter range, w >= 0.66 here: 3e-3 rad = 0.2 deg); the centre is far better.
  assert err.max() < 0.2 and np.median(err) < 0.1
  out = face3d.rasterise_position_map(pm, (64, 64), valid)
  i, j = np.nonzero(out["mask"])
  px, py = (j - cx) / rho, (i - cy) / rho  # pixel centres at integer positions
  keep = px * px + py * py < 0.7**2
  want = np.stack([px, -py, np.sqrt(1 - px * px - py * py)], -1)[keep]
  err = _angle_deg(out["normals"][i[keep], j[keep]], want)
  assert err.max() < 0.2  # linear interpolation of normals across 0.75-px triangles
  np.testing.assert_allclose(out["depth"][i[keep], j[keep]], rho * want[:, 2], atol=0.05)


def test_normals_are_invariant_to_the_uncrop_similarity():
  size = 16
  r, c = _grid(size)
  pm = np.stack([c, r, 3 * np.sin(c / 5) + 0.1 * r * r], -1)
  valid = np.ones((size, size), bool)
  t = face3d.crop_transform((10, 20, 90, 110), 128)
  moved = face3d.uncrop_points(pm, t)
  np.testing.assert_allclose(face3d.position_map_normals(moved, valid),
                             face3d.position_map_normals(pm, valid), atol=1e-6)


def test_invalid_pixels_and_bad_input():
  pm = np.zeros((8, 8, 3))
  pm[..., 0], pm[..., 1] = np.mgrid[0:8, 0:8][::-1]
  valid = np.zeros((8, 8), bool)
  valid[2:5, 2:5] = True
  valid[7, 7] = True  # isolated: no triangle
  n = face3d.position_map_normals(pm, valid)
  assert not n[~valid].any() and not n[7, 7].any()
  np.testing.assert_allclose(n[2:5, 2:5], np.broadcast_to([0, 0, 1.0], (3, 3, 3)))
  with pytest.raises(ValueError, match="position_map must have shape"):
    face3d.position_map_normals(np.zeros((8, 6, 3)), np.ones((8, 6), bool))
  with pytest.raises(ValueError, match="non-finite"):
    face3d.position_map_normals(np.full((8, 8, 3), np.nan), valid)
  with pytest.raises(ValueError, match="valid must have shape"):
    face3d.rasterise_position_map(pm, 8, np.ones((4, 4), bool))


def test_true_position_map_of_a_synthetic_face_rasterises_to_its_normals():
  """An independent reference: the face generator's own z-buffered normals (data.synth)."""
  from bioface_jax import photometric
  from data.photometric import face_pairs
  d = face_pairs.face_pairs([0, 1], prnet_size=128, scene_size=64)
  for i in range(2):
    out = face3d.rasterise_position_map(d["posmap"][i], 128)
    truth = d["mask_full"][i] > 0
    assert (out["mask"] != truth).sum() <= 0.01 * truth.sum()  # silhouette pixels only
    both = out["mask"] & truth
    # The R = 128 map is the 2 x 2 block mean of the 256 mesh: it smooths the normals by ~1 deg
    # (3 deg at R = 64); a frame or sign error would cost tens of degrees.
    assert float(photometric.mean_angular_error(out["normals"], d["normals_full"][i], both)) < 1.5
  scene = d["mask"] > 0
  np.testing.assert_allclose(np.linalg.norm(d["normals"][scene], axis=-1), 1, atol=1e-5)
  for i in range(2):
    np.testing.assert_allclose(np.percentile(d["albedo"][i][scene[i]], 95),
                               face_pairs.ALBEDO_P95, rtol=1e-5)


def test_similarity_alignment_and_mean_face_regulariser():
  from scipy.spatial.transform import Rotation
  from bioface_jax.face3d import mean_face
  rng = np.random.default_rng(1)
  pts = rng.normal(size=(50, 3))
  rot = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
  moved = 1.7 * pts @ rot.T + [3.0, -2.0, 5.0]
  s, r, t = mean_face.align(pts, moved, np.ones(50, bool))
  np.testing.assert_allclose(s, 1.7, rtol=1e-12)
  np.testing.assert_allclose(r, rot, atol=1e-12)
  np.testing.assert_allclose(t, [3.0, -2.0, 5.0], atol=1e-12)
  # A posed mean face is its own regularisation at every sigma; sigma = 0 returns any map.
  mean = mean_face.mean_position_map(64)
  valid = face3d.face_mask(64)
  posed = np.where(valid[..., None], 0.3 * mean @ rot.T + [30.0, 30.0, 0.0], 0.0)
  for sigma in (0.0, 2.0, np.inf):
    np.testing.assert_allclose(mean_face.regularise(posed, sigma), posed, atol=1e-9)
  noisy = posed + rng.normal(0, 0.5, posed.shape) * valid[..., None]
  np.testing.assert_allclose(mean_face.regularise(noisy, 0.0), noisy, atol=1e-12)
  smooth = mean_face.regularise(noisy, 3.0)
  assert np.abs(smooth - posed)[valid].mean() < 0.5 * np.abs(noisy - posed)[valid].mean()
