"""Tests for the synthetic-face geometry (mesh, pose, z-buffer) and appearance (UV maps, lighting).

References are independent: the mesh is recounted from the raw PRNet files, the rasteriser is
checked against analytic spheres and a per-pixel brute-force loop, SH constants against
numerical integration, and the UV convention against exact pixel-centre positions.
"""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import assets
from data.synth import appearance as ap
from data.synth import geometry as geo
from tests import numpy_reference as ref

def _fibonacci_sphere(n):
  i = np.arange(n) + 0.5
  z = 1 - 2 * i / n
  phi = np.pi * (1 + 5**0.5) * i
  r = np.sqrt(1 - z * z)
  return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


@pytest.fixture(scope="module")
def template():
  return geo.load_template()


# --- mesh ------------------------------------------------------------------------------------


def test_mesh_matches_raw_files(template):
  ind = np.loadtxt(assets.asset_path("faces/prnet_uv/face_ind.txt")).astype(int)
  raw = np.load(assets.asset_path("faces/prnet_uv/canonical_vertices.npy"))
  valid = np.zeros(256 * 256, bool)
  valid[ind] = True
  valid = valid.reshape(256, 256)
  blocks = sum(1 for r in range(255) for c in range(255)
               if valid[r, c] and valid[r + 1, c] and valid[r, c + 1] and valid[r + 1, c + 1])
  tris = template.triangles
  assert tris.shape == (2 * blocks, 3)
  assert tris.min() >= 0 and tris.max() < len(ind) == len(template.vertices)
  # Every triangle is half of a unit UV square: its UV pixels span exactly 1 row and 1 column.
  r, c = template.rows[tris], template.cols[tris]
  assert (np.ptp(r, 1) == 1).all() and (np.ptp(c, 1) == 1).all()
  # Vertices are the raw ones (y flipped, centred), moved only slightly by the smoothing.
  shift = template.vertices - raw * [1, -1, 1]
  shift -= np.median(shift, 0)
  assert np.median(np.linalg.norm(shift, axis=1)) < 0.01 * template.ref_size
  kpt = np.loadtxt(assets.asset_path("faces/prnet_uv/uv_kpt_ind.txt")).astype(int)
  np.testing.assert_array_equal(ind[template.landmark_vertices], kpt[1] * 256 + kpt[0])


def test_mesh_winding_and_no_folds(template):
  v, tris = template.vertices, template.triangles
  fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
  area = np.linalg.norm(fn, axis=1)
  assert area.min() > 0  # No degenerate triangles after smoothing.
  # Consistent winding: most of the face area faces the camera (+z) in the frontal pose.
  assert area[fn[:, 2] > 0].sum() > 0.85 * area.sum()
  # No triangle folds over its neighbours.
  vn = geo.vertex_normals(v, tris)[tris].mean(1)
  assert ((fn * vn).sum(1) > 0).all()


def test_grid_normals_equal_mesh_normals(template):
  v = geo.sample_shape(np.random.default_rng(3), template)
  np.testing.assert_allclose(geo.grid_normals(v, template),
                             geo.vertex_normals(v, template.triangles), atol=1e-4)


# --- rasteriser on analytic shapes -----------------------------------------------------------


def _sphere(centre, radius, n_lat=48, n_lon=96):
  """Closed UV-sphere mesh, triangles counter-clockwise seen from outside."""
  th = np.linspace(0, np.pi, n_lat + 1)
  ph = np.linspace(0, 2 * np.pi, n_lon + 1)[:-1]
  th, ph = np.meshgrid(th, ph, indexing="ij")
  d = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
  idx = np.arange((n_lat + 1) * n_lon).reshape(n_lat + 1, n_lon)
  a, b = idx[:-1], np.roll(idx[:-1], -1, 1)
  c, e = idx[1:], np.roll(idx[1:], -1, 1)
  tris = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                         np.stack([b, c, e], -1).reshape(-1, 3)])
  # Screen frame: x = column, y = row (down), z toward the camera.
  pts = centre + radius * d * [1, -1, 1]
  # Orient every triangle outward (away from the centre) in the (x, -y, z) frame.
  p = pts * [1, -1, 1]
  fn = np.cross(p[tris[:, 1]] - p[tris[:, 0]], p[tris[:, 2]] - p[tris[:, 0]])
  out = (fn * (p[tris].mean(1) - np.asarray(centre) * [1, -1, 1])).sum(1) < 0
  tris[out] = tris[out][:, ::-1]
  return pts, tris


def test_rasterise_sphere_depth_normals_and_coverage():
  centre, radius = np.array([32.3, 31.7, 0.0]), 20.0
  pts, tris = _sphere(centre, radius)
  tri, bary = geo.rasterise_triangles(pts, tris, 64)
  mask = tri >= 0
  yy, xx = np.mgrid[0:64, 0:64] + 0.5
  r = np.hypot(xx - centre[0], yy - centre[1])
  assert mask[r < radius - 0.6].all() and not mask[r > radius + 1e-6].any()
  depth = (bary * pts[tris[tri], 2]).sum(-1)
  inner = r < 0.9 * radius
  expect = np.sqrt(np.maximum(radius**2 - r**2, 0))
  np.testing.assert_allclose(depth[inner], expect[inner], atol=0.15)  # Chord sag only.
  vn = geo.vertex_normals(pts * [1, -1, 1], tris)
  n = (bary[..., None] * vn[tris[tri]]).sum(-2)[inner]
  n /= np.linalg.norm(n, axis=-1, keepdims=True)
  analytic = np.stack([xx - centre[0], centre[1] - yy, expect], -1) / radius
  assert np.abs(n - analytic[inner]).max() < 0.03
  # Exact barycentrics: interpolated screen x, y are the pixel centres.
  np.testing.assert_allclose((bary * pts[tris[tri], 0]).sum(-1)[mask], xx[mask], atol=1e-9)
  np.testing.assert_allclose((bary * pts[tris[tri], 1]).sum(-1)[mask], yy[mask], atol=1e-9)


@pytest.mark.parametrize("front_z", [30.0, -30.0])
def test_zbuffer_keeps_nearest_surface(front_z):
  small, stris = _sphere(np.array([32.0, 32.0, 0.0]), 10.0)
  big, btris = _sphere(np.array([32.0, 32.0, front_z]), 20.0)
  pts = np.concatenate([small, big])
  tris = np.concatenate([stris, btris + len(small)])
  tri, _ = geo.rasterise_triangles(pts, tris, 64)
  yy, xx = np.mgrid[0:64, 0:64] + 0.5
  centre = np.hypot(xx - 32, yy - 32) < 8
  from_small = tri[centre] < len(stris)
  # front_z = +30: the big sphere's cap (z >= 30 + ...) is in front; -30: it is behind (z <= -10).
  assert (from_small == (front_z < 0)).all()


def test_backface_culling():
  pts = np.array([[2.0, 2.0, 0.0], [2.0, 14.0, 0.0], [14.0, 2.0, 0.0]])
  # (x, -y): (2,-2) -> (2,-14) -> (14,-2) is counter-clockwise, so it faces the camera.
  tri, _ = geo.rasterise_triangles(pts, np.array([[0, 1, 2]]), 16)
  assert (tri >= 0).sum() > 50
  tri, _ = geo.rasterise_triangles(pts, np.array([[0, 2, 1]]), 16)
  assert (tri < 0).all()


def test_rasteriser_matches_brute_force():
  rng = np.random.default_rng(0)
  pts = np.concatenate([rng.uniform(-2, 14, (60, 2)), rng.uniform(-5, 5, (60, 1))], 1)
  tris = rng.integers(0, 60, (20, 3))
  tri, bary = geo.rasterise_triangles(pts, tris, (12, 10))
  for i in range(12):
    for j in range(10):
      best, best_z, best_w = -1, -np.inf, np.zeros(3)
      for k, (a, b, c) in enumerate(tris):
        m = np.array([[pts[a, 0] - pts[c, 0], pts[b, 0] - pts[c, 0]],
                      [pts[a, 1] - pts[c, 1], pts[b, 1] - pts[c, 1]]])
        if np.linalg.det(m) >= 0:  # Back-facing (clockwise in x, -y) or degenerate.
          continue
        wa, wb = np.linalg.solve(m, [j + 0.5 - pts[c, 0], i + 0.5 - pts[c, 1]])
        w = np.array([wa, wb, 1 - wa - wb])
        z = w @ pts[[a, b, c], 2]
        if (w >= -1e-9).all() and z > best_z:
          best, best_z, best_w = k, z, w
      assert tri[i, j] == best, (i, j)
      np.testing.assert_allclose(bary[i, j], best_w, atol=1e-9)


# --- face rasterisation ------------------------------------------------------------------------


def test_frontal_face_buffers(template):
  out = geo.rasterise(template.vertices, template, geo.Pose(), 64)
  m, n = out["mask"], out["normals"]
  assert 0.3 < m.mean() < 0.6
  # Unit normals stored in float32: normalisation + storage, |norm - 1| <= 8 eps32.
  np.testing.assert_allclose(np.linalg.norm(n[m], axis=-1), 1.0, rtol=0,
                             atol=8 * np.finfo(np.float32).eps)
  assert (n[m][:, 2] >= 0).all() and (n[~m] == 0).all()
  assert np.median(n[m][:, 2]) > 0.7
  # Glabella (between the inner brow ends) faces the camera.
  lm = out["landmarks"]
  col, row = np.floor(0.5 * (lm[21] + lm[22])).astype(int)
  assert n[row, col, 2] > 0.98 and abs(n[row, col, 0]) < 0.06
  # Left-right symmetry of the mean face: mean normal x is ~0.
  assert abs(n[m][:, 0].mean()) < 0.02
  # Eyes above the mouth, nose between (image rows grow downward).
  assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:60, 1].mean()
  assert out["landmarks_visible"][17:68].all()


def test_uv_and_depth_agree_with_pixel_centres(template):
  v = geo.sample_shape(np.random.default_rng(1), template)
  pose = geo.Pose(yaw=20.0, pitch=-10.0, roll=5.0, scale=0.8)
  out = geo.rasterise(v, template, pose, 256)
  m = out["mask"]
  screen = geo.project(v, template, pose, 256)
  yy, xx = np.mgrid[0:256, 0:256] + 0.5
  # A UV map holding each vertex's screen x, read back through rasterised uv, gives the pixel
  # centre x; a half-texel error in the uv convention would shift it by ~0.4 px.
  x_uv = np.zeros((256, 256))
  x_uv[template.rows, template.cols] = screen[:, 0]
  inner = m.copy()
  for axis in (0, 1):
    inner &= np.roll(m, 3, axis) & np.roll(m, -3, axis)
  err = ap.sample_uv(x_uv, out["uv"], m)[inner] - xx[inner]
  assert np.median(np.abs(err)) < 0.05
  assert (out["depth"][m] <= screen[:, 2].max() + 1e-3).all()
  assert (out["uv"][m] > 0).all() and (out["uv"][m] < 1).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pose_conventions(template, sign):
  def lmk(pose):
    return geo.rasterise(template.vertices, template, pose, 64)

  yawed = lmk(geo.Pose(yaw=30 * sign))
  eyes_x = 0.5 * (yawed["landmarks"][36, 0] + yawed["landmarks"][45, 0])
  assert np.sign(yawed["landmarks"][30, 0] - eyes_x) == sign  # Nose toward +x for yaw > 0.
  col, row = np.floor(0.5 * (yawed["landmarks"][21] + yawed["landmarks"][22])).astype(int)
  assert np.sign(yawed["normals"][row, col, 0]) == sign  # The glabella turns the same way.
  front = lmk(geo.Pose())["landmarks"]
  pitched = lmk(geo.Pose(pitch=20 * sign))["landmarks"]

  def nose_below_eyes(lm):
    return lm[30, 1] - 0.5 * (lm[36, 1] + lm[45, 1])

  assert np.sign(nose_below_eyes(pitched) - nose_below_eyes(front)) == sign  # Pitch > 0: down.
  rolled = lmk(geo.Pose(roll=15 * sign))["landmarks"]
  assert np.sign(rolled[36, 1] - rolled[45, 1]) == sign  # Roll > 0: counter-clockwise.


def test_nose_occludes_far_side_at_large_yaw(template):
  out = geo.rasterise(template.vertices, template, geo.Pose(yaw=45.0), 128)
  lm, depth = out["landmarks"], out["depth"]
  # The far inner eye corner (42) is hidden behind the nose bridge: the surface drawn there is
  # much closer to the camera than the landmark itself, and the near one (39) is visible.
  col, row = np.floor(lm[42]).astype(int)
  assert depth[row, col] - out["landmarks_depth"][42] > 3.0
  assert not out["landmarks_visible"][42] and out["landmarks_visible"][39]
  # At the nose tip the nose itself is drawn.
  col, row = np.floor(lm[30]).astype(int)
  assert np.abs(out["uv"][row, col] * 256 - template.landmarks_uv[30]).max() < 3


def test_random_faces_fit_in_frame(template):
  rng = np.random.default_rng(5)
  for _ in range(4):
    out = geo.rasterise(geo.sample_shape(rng, template), template, geo.sample_pose(rng), 64)
    m = out["mask"]
    assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    rows = np.nonzero(m.any(1))[0]
    assert 0.45 < (rows[-1] - rows[0] + 1) / 64 < 0.95
    assert (out["normals"][m][:, 2] >= 0).all()


def test_sampling_is_deterministic_and_bounded(template):
  def draw(seed):
    rng = np.random.default_rng(seed)
    return (geo.sample_shape(rng, template), geo.sample_pose(rng),
            ap.sample_appearance(rng, template), ap.sample_sh_lighting(rng))

  a, b, c = draw(7), draw(7), draw(8)
  np.testing.assert_array_equal(a[0], b[0])
  assert a[1] == b[1] and a[1] != c[1]
  for k in a[2]:
    np.testing.assert_array_equal(a[2][k], b[2][k])
  np.testing.assert_array_equal(a[3], b[3])
  assert not np.allclose(a[0], c[0])
  poses = [geo.sample_pose(np.random.default_rng(s)) for s in range(200)]
  yaw = np.array([p.yaw for p in poses])
  assert np.abs(yaw).max() <= 45 and np.abs(yaw).max() > 40
  assert max(abs(p.pitch) for p in poses) <= 20 and max(abs(p.roll) for p in poses) <= 15


def test_shape_deformation_is_smooth_and_small(template):
  rng = np.random.default_rng(11)
  tris = template.triangles
  lo = template.landmarks_uv[48:68].min(0) - 3
  hi = template.landmarks_uv[48:68].max(0) + 3
  in_mouth = ((template.cols[tris[:, 0]] >= lo[0]) & (template.cols[tris[:, 0]] <= hi[0])
              & (template.rows[tris[:, 0]] >= lo[1]) & (template.rows[tris[:, 0]] <= hi[1]))
  for _ in range(6):
    v = geo.sample_shape(rng, template)
    d = v - template.vertices
    rms = np.sqrt((d**2).sum(1).mean()) / template.ref_size
    assert 0.005 < rms < 0.12
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    vn = geo.vertex_normals(v, tris)[tris].mean(1)
    folded = (fn * vn).sum(1) <= 0
    # No folds, except rarely a few triangles in the crease where the lips meet.
    assert not folded[~in_mouth].any() and folded.sum() <= 8
    # Smooth: neighbouring UV vertices move almost together.
    step = np.linalg.norm(d[tris[:, 1]] - d[tris[:, 0]], axis=1)
    assert step.max() < 0.01 * template.ref_size


def test_bad_inputs_raise(template):
  with pytest.raises(ValueError, match="vertices must have shape"):
    geo.rasterise(template.vertices[:10], template, geo.Pose())
  with pytest.raises(ValueError, match="scale"):
    geo.rasterise(template.vertices, template, geo.Pose(scale=0.0))
  with pytest.raises(ValueError, match="non-finite"):
    geo.rasterise(template.vertices, template, geo.Pose(yaw=np.nan))
  with pytest.raises(ValueError, match="uv must have"):
    ap.sample_uv(np.zeros((8, 8)), np.zeros((4, 3)))


# --- appearance ------------------------------------------------------------------------------


def test_appearance_ranges_and_regions(template):
  r = ap.region_weights(template)
  lips, cheeks, fore, brows = (r[k] > 0.6 for k in ("lips", "cheeks", "forehead", "brows"))
  bases = []
  for seed in range(6):
    a = ap.sample_appearance(np.random.default_rng(seed), template)
    for k, lo in (("fmel_uv", -1), ("fblood_uv", -1), ("spec_uv", 0)):
      assert a[k].shape == (256, 256) and a[k].dtype == np.float32
      assert a[k].min() >= lo and a[k].max() <= 1 and np.isfinite(a[k]).all()
    fb, fm, sp = a["fblood_uv"], a["fmel_uv"], a["spec_uv"]
    assert fb[lips].mean() > fb[cheeks].mean() > fb[fore].mean()
    assert fm[brows].mean() > fm[fore].mean() + 0.1
    face = r["face"] > 0.9
    assert sp[fore].mean() > np.median(sp[face]) and sp[r["nose"] > 0.6].mean() > np.median(
        sp[face])
    bases.append(np.median(fm[fore]))
  assert np.ptp(bases) > 0.3  # Skin tones vary from face to face.


def test_sample_uv_is_exact_bilinear():
  s = 16
  rows, cols = np.mgrid[0:s, 0:s]
  ramp = 0.3 * cols - 0.7 * rows + 2.0  # Bilinear interpolation reproduces affine maps exactly.
  uv = np.random.default_rng(0).uniform(0.5 / s, 1 - 0.5 / s, (5, 7, 2))
  got = ap.sample_uv(ramp, uv)
  want = 0.3 * (uv[..., 0] * s - 0.5) - 0.7 * (uv[..., 1] * s - 0.5) + 2.0
  # Interpolated in float64, returned in float32: storage rounding <= eps32 / 2 * |value|.
  tol = dict(rtol=0, atol=np.finfo(np.float32).eps * np.abs(ramp).max())
  np.testing.assert_allclose(got, want, **tol)
  centres = (np.array([[3, 9], [0, 15]]) + 0.5) / s  # (col, row) pixel centres.
  np.testing.assert_allclose(ap.sample_uv(ramp, centres), ramp[[9, 15], [3, 0]], **tol)
  rgb = np.stack([ramp, -ramp], -1)
  out = ap.sample_uv(rgb, uv, mask=np.arange(35).reshape(5, 7) % 2 == 0)
  assert out.shape == (5, 7, 2) and (out[0, 1] == 0).all()
  np.testing.assert_allclose(out[0, 0], [want[0, 0], -want[0, 0]], **tol)


def test_blinn_phong_closed_form():
  l = np.array([0.0, np.sin(0.6), np.cos(0.6)])
  h = (l + [0, 0, 1]) / np.linalg.norm(l + [0, 0, 1])
  n = np.stack([h, [0, 0, 1.0], [0, 0, -1.0]])
  got = ap.blinn_phong(n, l, shininess=10.0)
  np.testing.assert_allclose(got, [1.0, np.cos(0.3)**10, 0.0], rtol=1e-6)


def test_sh_basis_is_orthonormal():
  d = _fibonacci_sphere(40000)
  y = ap.sh_basis(d)
  gram = y.T @ y * (4 * np.pi / len(d))
  np.testing.assert_allclose(gram, np.eye(9), atol=2e-3)


def test_sh_lighting_is_plausible():
  d = _fibonacci_sphere(4000)
  # One distant light: SH irradiance approximates the clamped cosine (R&H: ~10 % of peak).
  light = np.array([0.3, 0.4, np.sqrt(0.75)])
  e = ref.sh_irradiance(d, ap.sh_basis(light))
  assert np.abs(e - np.maximum(d @ light, 0)).max() < 0.12
  np.testing.assert_allclose(ap.dominant_direction(ap.sh_basis(light)), light, atol=1e-6)
  front = d[d[:, 2] > 0.2]
  for seed in range(20):
    coeffs = ap.sample_sh_lighting(np.random.default_rng(seed))
    assert coeffs.shape == (9,) and coeffs.dtype == np.float32
    e = ref.sh_irradiance(front, coeffs.astype(np.float64))
    assert (e > 0).mean() > 0.9 and e.max() < 2.0
    assert ap.dominant_direction(coeffs)[2] > 0.3  # Frontal-ish.
