"""Face geometry for physics-based synthetic faces: mean-face mesh, random shape and pose, z-buffer.

Synthetic training/benchmark faces need exact per-pixel normals, masks and UV coordinates, so they
are rendered from the PRNet mean face (Basel Face Model, `faces/prnet_uv` in the assets
directory): 43,867 vertices placed on the pixels of a 256x256 UV map, meshed with two triangles
per 2x2 block of valid UV pixels. Everything here is vectorised NumPy (float64 positions and
barycentrics, float32 normals and outputs) so that a data pipeline can make faces on the host
without an accelerator. The triangle rasteriser itself is `data.synth.raster`.

Conventions (all documented here once):

* Model/camera frame: right-handed, x to the image right, y up, z toward the camera. The camera
  is orthographic and looks along -z, so the view vector (surface -> camera) is (0, 0, 1)
  everywhere (`VIEW_DIR`). A frontal face's nose points along +z. The PRNet file stores
  (x right, y down, z toward viewer); `load_template` flips y and centres the face.
* Unit normals are in camera space and face the camera: n_z >= 0 on every visible pixel.
* Image: row 0 is the top; pixel (i, j) covers [j, j+1) x [i, i+1) in continuous (x=col, y=row)
  image coordinates, so its centre is (j + 0.5, i + 0.5). Landmarks use the same coordinates.
* Depth is camera-space z in pixel units (same scale as image x/y, so normals agree with depth
  finite differences); larger = closer; z = 0 at the template's bounding-box centre.
  Background pixels hold depth 0, normals 0, uv 0 and mask False.
* UV: u = (column + 0.5) / 256, v = (row + 0.5) / 256 of the 256x256 UV map (pixel-centre
  convention), so `uv * 256 - 0.5` are (column, row) indices into UV-space maps.
* Pose (degrees), rotations applied as R = Rz(roll) @ Rx(pitch) @ Ry(yaw) about camera axes,
  each right-handed: yaw > 0 turns the nose toward the image right (+x; the subject turns to
  their own left), pitch > 0 turns the nose down (-y), roll > 0 rotates the face
  counter-clockwise as seen in the image.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from bioface_jax import assets
from data.synth import grid_raster
from data.synth.grid_raster import grid_normals  # noqa: F401 (re-export)
from data.synth.raster import _rasterise_flat, rasterise_triangles  # noqa: F401 (re-export)

UV_SIZE = 256
NUM_LANDMARKS = 68
VIEW_DIR = np.array([0.0, 0.0, 1.0])
VIEW_DIR.setflags(write=False)
_PRNET = "faces/prnet_uv/"


@dataclasses.dataclass(frozen=True, eq=False)
class FaceTemplate:
  """The mean-face mesh (read-only arrays; one cached instance per process and assets dir).

  Attributes:
    vertices: (N, 3) float64 model-frame positions (x right, y up, z toward viewer), centred on
      their bounding box; the PRNet mean face lightly smoothed (`_smooth_on_grid`).
    normals: (N, 3) float64 unit vertex normals of `vertices`.
    smooth_normals: (N, 3) float64 unit normals blurred over 10 UV pixels: the displacement
      direction of `sample_shape`, smooth across creases (lips, eyelids, nostrils) so that
      displacing along them does not fold the mesh.
    uv: (N, 2) float64 (u, v) UV coordinates in [0, 1] (pixel-centre convention).
    uv_index: (256, 256) int32 vertex index at each UV pixel, -1 outside the face.
    triangles: (T, 3) int32 vertex indices, counter-clockwise seen from +z (front faces).
    landmark_vertices: (68,) int32 vertex indices of the iBUG-68 landmarks.
    landmarks_uv: (68, 2) float64 landmark UV pixel coordinates (column, row).
    ref_size: face height (y extent) in model units; `Pose.scale` is relative to it.
    rows, cols: (N,) int64 UV pixel of each vertex.
    blocks: (255, 255) bool, the 2x2 UV blocks that carry two triangles (for `grid_normals`).
  """
  vertices: np.ndarray
  normals: np.ndarray
  smooth_normals: np.ndarray
  uv: np.ndarray
  uv_index: np.ndarray
  triangles: np.ndarray
  landmark_vertices: np.ndarray
  landmarks_uv: np.ndarray
  ref_size: float
  rows: np.ndarray
  cols: np.ndarray
  blocks: np.ndarray


@dataclasses.dataclass(frozen=True)
class Pose:
  """Head pose and framing. Angles in degrees (conventions in the module docstring).

  Attributes:
    yaw, pitch, roll: rotation angles in degrees.
    scale: face height (template `ref_size`) as a fraction of the image size.
    tx, ty: offset of the projected face's bounding-box centre from the image centre, as a
      fraction of the image size (tx to the right, ty downward).
  """
  yaw: float = 0.0
  pitch: float = 0.0
  roll: float = 0.0
  scale: float = 0.75
  tx: float = 0.0
  ty: float = 0.0

  def rotation(self) -> np.ndarray:
    """Returns the (3, 3) rotation Rz(roll) @ Rx(pitch) @ Ry(yaw) (camera frame)."""
    a, b, c = np.deg2rad([self.yaw, self.pitch, self.roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def grid_triangles(valid: np.ndarray, index: np.ndarray) -> np.ndarray:
  """Two triangles per 2x2 block of valid grid pixels, counter-clockwise for (x=col, y=-row).

  Args:
    valid: (H, W) bool grid of pixels that carry a vertex.
    index: (H, W) int vertex index of each valid pixel.

  Returns:
    (T, 3) int32 triangles [(r,c), (r+1,c), (r,c+1)] and [(r,c+1), (r+1,c), (r+1,c+1)].
  """
  block = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & valid[1:, 1:]
  r, c = np.nonzero(block)
  a, b, d, e = index[r, c], index[r + 1, c], index[r, c + 1], index[r + 1, c + 1]
  tris = np.stack([np.stack([a, b, d], 1), np.stack([d, b, e], 1)], 1).reshape(-1, 3)
  return tris.astype(np.int32)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Area-weighted unit vertex normals; a triangle's normal is (v1 - v0) x (v2 - v0)."""
  v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
  a, b = v1 - v0, v2 - v0
  fn = [a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
        a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]]
  n = np.zeros((len(vertices), 3))
  for k in range(3):
    idx = triangles[:, k]
    for c in range(3):
      n[:, c] += np.bincount(idx, fn[c], len(vertices))
  return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _read(name: str, loader) -> np.ndarray:
  path = assets.asset_path(_PRNET + name)
  try:
    return loader(path)
  except ValueError as err:
    raise ValueError(f"cannot parse face asset {path}: {err}") from err


def _smooth_on_grid(v: np.ndarray, rows: np.ndarray, cols: np.ndarray, valid: np.ndarray,
                    sigma: float) -> np.ndarray:
  """Gaussian smoothing of per-vertex values (sigma in UV pixels) over the valid UV region.

  Used with sigma 1 on the vertex positions: 
  the PRNet mean face is resampled from the BFM onto the UV grid with many repeated positions:
  as read, ~8k of its 87k triangles have zero area and ~1.8k are folded over, which flips
  vertex normals in spots all over the face. Normalised convolution with a 1-pixel Gaussian
  removes every fold and degenerate triangle while moving vertices by a median 0.3 units
  (0.15 % of the face height; at most ~6 units, inside the nostrils).
  """
  w = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="constant")
  out = np.empty_like(v)
  grid = np.zeros(valid.shape)
  for k in range(3):
    grid[rows, cols] = v[:, k]
    out[:, k] = (ndimage.gaussian_filter(grid, sigma, mode="constant")[rows, cols]
                 / w[rows, cols])
  return out


@functools.lru_cache(maxsize=4)
def _load_template(root: str) -> FaceTemplate:
  del root  # Only the cache key: a changed $BIOFACE_ASSETS reloads.
  verts = _read("canonical_vertices.npy", np.load).astype(np.float64)
  ind = _read("face_ind.txt", np.loadtxt)
  kpt = _read("uv_kpt_ind.txt", np.loadtxt)
  if verts.ndim != 2 or verts.shape[1] != 3 or ind.shape != (len(verts),):
    raise ValueError(f"canonical_vertices.npy {verts.shape} and face_ind.txt {ind.shape} must be "
                     "(N, 3) and (N,)")
  if kpt.shape != (2, NUM_LANDMARKS):
    raise ValueError(f"uv_kpt_ind.txt must be (2, 68), got {kpt.shape}")
  ind = ind.astype(np.int64)
  if ind.min() < 0 or ind.max() >= UV_SIZE * UV_SIZE:
    raise ValueError(f"face_ind.txt indices must lie in [0, {UV_SIZE**2}), got "
                     f"[{ind.min()}, {ind.max()}]")
  rows, cols = ind // UV_SIZE, ind % UV_SIZE
  uv_index = np.full((UV_SIZE, UV_SIZE), -1, np.int32)
  uv_index[rows, cols] = np.arange(len(ind))
  kc, kr = kpt.astype(np.int64)
  lmk = uv_index[kr, kc]
  if (lmk < 0).any():
    raise ValueError("uv_kpt_ind.txt: landmarks outside the face region of face_ind.txt")
  valid = uv_index >= 0
  v = _smooth_on_grid(verts * np.array([1.0, -1.0, 1.0]), rows, cols, valid, 1.0)  # y up.
  v -= 0.5 * (v.min(0) + v.max(0))
  tris = grid_triangles(valid, uv_index)
  blocks = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & valid[1:, 1:]
  uv = np.stack([(cols + 0.5) / UV_SIZE, (rows + 0.5) / UV_SIZE], -1)
  normals = vertex_normals(v, tris)
  smooth = _smooth_on_grid(normals, rows, cols, valid, 10.0)
  smooth /= np.linalg.norm(smooth, axis=1, keepdims=True)
  arrays = dict(vertices=v, normals=normals, smooth_normals=smooth, uv=uv, uv_index=uv_index,
                triangles=tris, landmark_vertices=lmk.astype(np.int32),
                landmarks_uv=kpt.T.astype(np.float64), rows=rows, cols=cols, blocks=blocks)
  for a in arrays.values():
    a.setflags(write=False)
  return FaceTemplate(**arrays, ref_size=float(np.ptp(v[:, 1])))


def load_template() -> FaceTemplate:
  """Returns the PRNet mean-face template, loaded once per process (per assets directory)."""
  return _load_template(str(assets.assets_dir()))


@functools.lru_cache(maxsize=4)
def _warp_basis(template: FaceTemplate) -> np.ndarray:
  """(N, 5) second-order polynomial basis over UV of `sample_shape`'s warp (template only)."""
  u = template.uv * 2.0 - 1.0
  basis = np.stack([u[:, 0], u[:, 1], u[:, 0]**2 - 0.3, u[:, 0] * u[:, 1], u[:, 1]**2 - 0.3], 1)
  basis.setflags(write=False)
  return basis


def sample_shape(rng: np.random.Generator, template: FaceTemplate,
                 amplitude: float = 0.03) -> np.ndarray:
  """Draws a smoothly deformed copy of the mean face.

  Three smooth components, each a few per cent of the face size: an anisotropic global scale
  (sd 4 % in x, y; 6 % in z), a second-order polynomial warp of all three coordinates over UV,
  and 3-7 Gaussian bumps in UV (radius 8-20 % of the UV map) displacing along the (smoothed)
  vertex normals.

  Args:
    rng: NumPy random generator.
    template: from `load_template`.
    amplitude: displacement scale of the warp and bumps, as a fraction of `ref_size`.

  Returns:
    (N, 3) float64 deformed vertices in the model frame.
  """
  ref = template.ref_size
  v = template.vertices * (1.0 + np.clip(rng.normal(0, [0.04, 0.04, 0.06]), -0.1, 0.1))
  v = v + _warp_basis(template) @ rng.normal(0.0, 0.5 * amplitude * ref, (5, 3))
  k = int(rng.integers(3, 8))
  centres = template.uv[rng.integers(0, len(v), k)]
  radius = rng.uniform(0.08, 0.2, k)
  heights = rng.normal(0.0, amplitude * ref, k)
  grid = (np.arange(UV_SIZE) + 0.5) / UV_SIZE  # The Gaussians are separable in (u, v).
  gu = np.exp(-0.5 * ((grid[None] - centres[:, :1]) / radius[:, None]) ** 2)
  gv = np.exp(-0.5 * ((grid[None] - centres[:, 1:]) / radius[:, None]) ** 2)
  bump = (gv.T * heights) @ gu  # (v, u) map.
  return v + bump[template.rows, template.cols, None] * template.smooth_normals


def sample_pose(rng: np.random.Generator, max_yaw: float = 45.0, max_pitch: float = 20.0,
                max_roll: float = 15.0, scale_range: tuple[float, float] = (0.6, 0.85),
                max_shift: float = 0.04) -> Pose:
  """Draws a pose: angles uniform in +-max (degrees), scale and shift uniform."""
  yaw, pitch, roll = rng.uniform(-1.0, 1.0, 3) * np.array([max_yaw, max_pitch, max_roll])
  tx, ty = rng.uniform(-max_shift, max_shift, 2)
  return Pose(float(yaw), float(pitch), float(roll), float(rng.uniform(*scale_range)),
              float(tx), float(ty))


def _box_centre(cam: np.ndarray) -> np.ndarray:
  """(2,) centre of the (x, y) bounding box of (N, 3) points: ``0.5 (min(0) + max(0))`` of the
  first two columns, reduced column by column (the same values; NumPy's axis-0 reduction of
  a narrow strided array is ~10x slower)."""
  x, y = cam[:, 0], cam[:, 1]
  return 0.5 * (np.array([x.min(), y.min()]) + np.array([x.max(), y.max()]))


def project(vertices: np.ndarray, template: FaceTemplate, pose: Pose, size: int) -> np.ndarray:
  """Poses and projects vertices orthographically into the image.

  Returns:
    (N, 3) float64 screen positions (x = column, y = row, z = depth toward the camera), all in
    pixels, the projected bounding box centred at the image centre plus (tx, ty) * size.
  """
  if not (np.isfinite(pose.scale) and pose.scale > 0):
    raise ValueError(f"Pose.scale must be a positive number, got {pose.scale}")
  cam = np.asarray(vertices, np.float64) @ pose.rotation().T
  if not np.isfinite(cam).all():
    raise ValueError("vertices or pose angles contain non-finite values")
  k = pose.scale * size / template.ref_size
  centre = _box_centre(cam)
  return np.stack([(cam[:, 0] - centre[0]) * k + size * (0.5 + pose.tx),
                   (centre[1] - cam[:, 1]) * k + size * (0.5 + pose.ty),
                   cam[:, 2] * k], -1)


def screen_transform(vertices: np.ndarray, template: FaceTemplate, pose: Pose,
                     size: int) -> tuple[np.ndarray, np.ndarray]:
  """The affine map of `project`: screen = vertices @ A.T + t, as (A (3, 3), t (3,)).

  A = k diag(1, -1, 1) R with k = pose.scale * size / ref_size, so any point of the model
  frame (a skull, hair, glasses) lands where `project` would put a vertex there.
  """
  rot = pose.rotation()
  cam = np.asarray(vertices, np.float64) @ rot.T
  k = pose.scale * size / template.ref_size
  centre = _box_centre(cam)
  a = k * np.diag([1.0, -1.0, 1.0]) @ rot
  t = np.array([-centre[0] * k + size * (0.5 + pose.tx), centre[1] * k + size * (0.5 + pose.ty),
                0.0])
  return a, t


def rasterise(vertices: np.ndarray, template: FaceTemplate, pose: Pose,
              size: int = 64, attributes: np.ndarray | None = None,
              screen: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Renders the geometry buffers of a posed face (orthographic, z-buffered, exact barycentrics).

  Args:
    vertices: (N, 3) model-frame vertices (`template.vertices` or `sample_shape`).
    template: from `load_template`.
    pose: head pose and framing.
    size: output height = width in pixels.
    attributes: optional (N, C) per-vertex values to interpolate like the normals (e.g. the
      model-frame positions), returned as ``attributes`` (H, W, C) float32, 0 off the mask.
    screen: optional `project(vertices, template, pose, size)` when the caller has it already.

  Returns:
    dict of float32 arrays (conventions in the module docstring):
      normals (H, W, 3) camera-space unit normals with n_z >= 0; mask (H, W) bool;
      depth (H, W) pixels; uv (H, W, 2); view_dir (3,) = (0, 0, 1);
      triangle (H, W) int32 (-1 = background); landmarks (68, 2) (x = col, y = row);
      landmarks_depth (68,); landmarks_visible (68,) bool (not hidden by the z-buffer and
      inside the image).
  """
  vertices = np.asarray(vertices, np.float64)
  if vertices.shape != template.vertices.shape:
    raise ValueError(f"vertices must have shape {template.vertices.shape}, got {vertices.shape}")
  if not (isinstance(size, (int, np.integer)) and size > 0):
    raise ValueError(f"size must be a positive int, got {size!r}")
  if screen is None:
    screen = project(vertices, template, pose, size)
  tris = template.triangles
  pix, t, wts = _rasterise_flat(screen, tris, size, size,
                                grid_raster.candidates(screen, template, size, size))
  # Per-vertex values are needed only at the drawn triangles' vertices and the landmarks.
  used = np.zeros(len(vertices), bool)
  used[tris[t]] = True
  used[template.landmark_vertices] = True
  at = np.nonzero(used)[0]
  compact = np.cumsum(used) - 1
  vid = compact[tris[t]]  # (M, 3) rows of `at` of the triangle drawn at each covered pixel.

  def interp(attr):
    return (wts[:, 0:1] * attr[vid[:, 0]] + wts[:, 1:2] * attr[vid[:, 1]]
            + wts[:, 2:3] * attr[vid[:, 2]])

  def to_image(values, fill=0.0):
    out = np.full((size * size,) + values.shape[1:], fill, values.dtype)
    out[pix] = values
    return out.reshape((size, size) + values.shape[1:])

  # Camera-frame normals (x right, y up, z to camera): `grid_normals` at the used vertices.
  cam_n = grid_raster.normals_at(screen * np.array([1.0, -1.0, 1.0]), template, at)
  # One gather of all per-vertex attributes: normal (3), depth (1), uv (2).
  extra = [] if attributes is None else [np.asarray(attributes, np.float64)]
  if extra and (extra[0].ndim != 2 or len(extra[0]) != len(vertices)):
    raise ValueError(f"attributes must be (N, C) with N = {len(vertices)}, got "
                     f"{extra[0].shape}")
  values = interp(np.concatenate([cam_n, screen[at, 2:3], template.uv[at]]
                                 + [e[at] for e in extra], 1))
  n = values[:, :3]
  # At silhouettes interpolated vertex normals can tilt slightly away from the camera: drop the
  # away-facing component so that every visible normal has n_z >= 0.
  n[:, 2] = np.maximum(n[:, 2], 0.0)
  n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
  mask = to_image(np.ones(len(pix), bool), False)
  depth = to_image(values[:, 3])
  lmk = screen[template.landmark_vertices]
  col = np.floor(lmk[:, 0]).astype(np.int64)
  row = np.floor(lmk[:, 1]).astype(np.int64)
  inb = (col >= 0) & (col < size) & (row >= 0) & (row < size)
  cc, rr = np.clip(col, 0, size - 1), np.clip(row, 0, size - 1)
  # Approximate visibility: the landmark faces the camera and the surface drawn at its pixel is
  # not clearly in front of it. The tolerance covers point sampling (up to 0.75 px along the
  # local depth slope) plus 5 % of the face height; real occluders (the nose at large yaw) are
  # much closer to the camera than that.
  ln = cam_n[compact[template.landmark_vertices]]
  slope = np.minimum(np.linalg.norm(ln[:, :2], axis=-1) / np.maximum(ln[:, 2], 1e-6), 4.0)
  tol = 0.75 * slope + 0.05 * pose.scale * size
  visible = inb & mask[rr, cc] & (ln[:, 2] > 0) & (depth[rr, cc] - lmk[:, 2] <= tol)
  out = {} if attributes is None else {"attributes": to_image(values[:, 6:].astype(np.float32))}
  return dict(**out, normals=to_image(n.astype(np.float32)), mask=mask,
              depth=depth.astype(np.float32), uv=to_image(values[:, 4:6].astype(np.float32)),
              view_dir=VIEW_DIR.astype(np.float32), triangle=to_image(t.astype(np.int32), -1),
              landmarks=lmk[:, :2].astype(np.float32),
              landmarks_depth=lmk[:, 2].astype(np.float32), landmarks_visible=visible)
