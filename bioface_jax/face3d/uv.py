"""UV position maps (PRNet): assets at any resolution, landmarks, dense vertices, mesh, `.obj`.

A position map ``P`` is an ``(R, R, 3)`` image whose pixel ``(v, u)`` stores the 3-D position
``(x, y, z)`` of the face-template point with UV coordinates ``(u, v)``, in image pixels of the
(cropped) input: x right, y down, pixel centres at integers (PRNet's convention), z = depth in
pixels, larger = closer to the camera (prnet-spec.md §1).

Resolution ``R = 256 / f`` (f in {1, 2, 4, ...}; prnet-spec.md §4): a map pixel is the mean of
the valid 256-grid pixels of its f x f block; the mask is "any valid"; the loss weight is the
block maximum; landmarks are read bilinearly at ``((u + 1/2) / f - 1/2, (v + 1/2) / f - 1/2)``
(the exact gather at f = 1); the mesh is built with the same grid rule at R.

Everything here is pure (NumPy for the constant tables, jnp for maps), except `write_obj`,
which writes the file it is asked to write.
"""

from __future__ import annotations

import functools
import os
import pathlib

import jax.numpy as jnp
import numpy as np

from bioface_jax import assets

UV_SIZE = 256
NUM_LANDMARKS = 68
_DIR = "faces/prnet_uv/"


def _read_png(name: str) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = assets.asset_path(_DIR + name)
  with Image.open(path) as img:
    a = np.asarray(img)
  if a.shape[:2] != (UV_SIZE, UV_SIZE):
    raise ValueError(f"face asset {path} must be {UV_SIZE}x{UV_SIZE}, got {a.shape}")
  return a if a.ndim == 2 else a[..., 0]


@functools.lru_cache(maxsize=4)
def _base_assets(root: str) -> dict[str, np.ndarray]:
  del root  # Cache key only: a changed $BIOFACE_ASSETS reloads.
  path = assets.asset_path(_DIR + "uv_kpt_ind.txt")
  try:
    kpt = np.loadtxt(path)
  except ValueError as err:
    raise ValueError(f"cannot parse {path}: {err}") from err
  if kpt.shape != (2, NUM_LANDMARKS):
    raise ValueError(f"{path} must hold a (2, 68) array, got {kpt.shape}")
  kpt = kpt.astype(np.int32)
  mask = _read_png("uv_face_mask.png") > 0
  png = _read_png("uv_weight_mask.png").astype(np.int64)
  q = png // 16
  q = np.where(q == 15, 16, np.where(q == 7, 8, q))  # 255 -> 16, 117..128 -> 8 (spec §4).
  weight = (q * mask).astype(np.float32)
  out = dict(kpt_ind=kpt, face_mask=mask, weight=weight, weight_png=q.astype(np.float32))
  for a in out.values():
    a.setflags(write=False)
  return out


def base_assets() -> dict[str, np.ndarray]:
  """The 256-grid tables: ``kpt_ind`` (2, 68) int32 (row 0 = column u, row 1 = row v),
  ``face_mask`` (256, 256) bool, ``weight`` (256, 256) float32 = q(png) * face_mask with values
  {0, 3, 4, 8, 16} (the paper's 16:4:3:0), ``weight_png`` = q(png) without the face mask."""
  return _base_assets(str(assets.assets_dir()))


def factor_for(size: int) -> int:
  """``256 // size``, checking that size is 256 / 2^k (k >= 0) and at least 8."""
  if not (isinstance(size, (int, np.integer)) and 8 <= size <= UV_SIZE
          and UV_SIZE % size == 0 and (UV_SIZE // size) & (UV_SIZE // size - 1) == 0):
    raise ValueError(f"UV map size must be 256 / 2^k (256, 128, 64, ...), got {size!r}")
  return UV_SIZE // int(size)


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
  """(256, 256, ...) -> (256/f, 256/f, f*f, ...)."""
  r = UV_SIZE // f
  return a.reshape((r, f, r, f) + a.shape[2:]).swapaxes(1, 2).reshape((r, r, f * f) + a.shape[2:])


@functools.lru_cache(maxsize=16)
def _at_size(root: str, size: int) -> dict[str, np.ndarray]:
  del root
  base = base_assets()
  f = factor_for(size)
  mask = _blocks(base["face_mask"], f).any(-1)
  weight = _blocks(base["weight"], f).max(-1)
  out = dict(face_mask=mask, weight=weight.astype(np.float32),
             face_ind=np.flatnonzero(mask).astype(np.int64),
             triangles=grid_triangles(mask))
  for a in out.values():
    a.setflags(write=False)
  return out


def face_mask(size: int = UV_SIZE) -> np.ndarray:
  """(R, R) bool face region at resolution R (any valid pixel in the block)."""
  return _at_size(str(assets.assets_dir()), size)["face_mask"]


def weight_mask(size: int = UV_SIZE) -> np.ndarray:
  """(R, R) float32 loss weights 16:4:3:0 (landmarks : eyes/nose/mouth : face : rest), block max."""
  return _at_size(str(assets.assets_dir()), size)["weight"]


def face_indices(size: int = UV_SIZE) -> np.ndarray:
  """Flat row-major indices of the face pixels at R (= ``face_ind.txt`` at 256, 43,867)."""
  return _at_size(str(assets.assets_dir()), size)["face_ind"]


def mesh_triangles(size: int = UV_SIZE) -> np.ndarray:
  """(T, 3) int32 triangles over `face_indices(size)` (86,850 at 256); see `grid_triangles`."""
  return _at_size(str(assets.assets_dir()), size)["triangles"]


def grid_triangles(valid: np.ndarray) -> np.ndarray:
  """Two triangles per 2x2 block of valid grid pixels, indexing the valid pixels in row-major order.

  Triangles are [(r,c), (r+1,c), (r,c+1)] and [(r,c+1), (r+1,c), (r+1,c+1)]: counter-clockwise
  in (x = column, -y = -row), so for an upright face in image coordinates (x right, y down,
  z toward the camera) their normals (b - a) x (c - a) point at the camera. The same rule as
  `data.synth.geometry.grid_triangles` (which indexes its own vertex table).
  """
  valid = np.asarray(valid, bool)
  index = np.full(valid.shape, -1, np.int64)
  index[valid] = np.arange(int(valid.sum()))
  block = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & valid[1:, 1:]
  r, c = np.nonzero(block)
  a, b, d, e = index[r, c], index[r + 1, c], index[r, c + 1], index[r + 1, c + 1]
  tris = np.stack([np.stack([a, b, d], 1), np.stack([d, b, e], 1)], 1).reshape(-1, 3)
  return tris.astype(np.int32)


def resize_uv_map(values: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
  """A 256-grid map -> resolution R: mean of the valid pixels of each f x f block (0 if none).

  Args:
    values: (256, 256, C) map (NumPy).
    valid: (256, 256) bool pixels that carry values.
    size: R.
  """
  values = np.asarray(values)
  if values.shape[:2] != (UV_SIZE, UV_SIZE) or np.shape(valid) != (UV_SIZE, UV_SIZE):
    raise ValueError(f"resize_uv_map needs (256, 256, C) values and a (256, 256) mask, got "
                     f"{values.shape} and {np.shape(valid)}")
  f = factor_for(size)
  if f == 1:
    return np.where(np.asarray(valid)[..., None], values, 0).astype(values.dtype)
  w = _blocks(np.asarray(valid, np.float64), f)
  s = (_blocks(values.astype(np.float64), f) * w[..., None]).sum(2)
  n = w.sum(2)[..., None]
  return np.where(n > 0, s / np.maximum(n, 1), 0.0).astype(values.dtype)


def _check_map(position_map, what: str = "position_map") -> int:
  shape = tuple(np.shape(position_map))
  if len(shape) < 3 or shape[-1] != 3 or shape[-2] != shape[-3]:
    raise ValueError(f"{what} must have shape (..., R, R, 3), got {shape}")
  factor_for(shape[-2])
  return shape[-2]


def landmarks_from_position_map(position_map, kpt_ind=None):
  """The 68 landmarks of a position map (the contract of architecture.md / prnet-spec.md §9).

  Args:
    position_map: (..., R, R, 3), R = 256 / 2^k, in image pixels.
    kpt_ind: (2, 68) int UV pixel of each landmark on the 256 grid (row 0 = column, row 1 =
      row); None = ``uv_kpt_ind.txt`` from the assets.

  Returns:
    (..., 68, 3): ``position_map[..., kpt_ind[1], kpt_ind[0], :]`` at R = 256; at smaller R the
    bilinear read at ((u + 1/2) / f - 1/2, (v + 1/2) / f - 1/2). jit-safe.
  """
  r = _check_map(position_map)
  pm = jnp.asarray(position_map)
  kpt = base_assets()["kpt_ind"] if kpt_ind is None else kpt_ind
  if tuple(np.shape(kpt)) != (2, NUM_LANDMARKS):
    raise ValueError(f"kpt_ind must have shape (2, 68), got {np.shape(kpt)}")
  kpt = jnp.asarray(kpt)
  u, v = kpt[0], kpt[1]
  if r == UV_SIZE:
    return pm[..., v, u, :]
  f = UV_SIZE // r
  x = (u.astype(pm.dtype) + 0.5) / f - 0.5
  y = (v.astype(pm.dtype) + 0.5) / f - 0.5
  x0 = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, r - 2)
  y0 = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, r - 2)
  ax, ay = (x - x0)[:, None], (y - y0)[:, None]
  g = lambda yy, xx: pm[..., yy, xx, :]  # noqa: E731
  return ((1 - ay) * ((1 - ax) * g(y0, x0) + ax * g(y0, x0 + 1))
          + ay * ((1 - ax) * g(y0 + 1, x0) + ax * g(y0 + 1, x0 + 1)))


def vertices_from_position_map(position_map, face_ind=None):
  """Dense vertices (..., N, 3): the face pixels of the map (N = 43,867 at R = 256).

  Args:
    position_map: (..., R, R, 3).
    face_ind: flat row-major pixel indices; None = `face_indices(R)` (``face_ind.txt`` at 256).
  """
  r = _check_map(position_map)
  ind = face_indices(r) if face_ind is None else np.asarray(face_ind)
  pm = jnp.asarray(position_map)
  return pm.reshape(pm.shape[:-3] + (r * r, 3))[..., ind, :]


def sample_colors(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
  """Bilinear colours of (H, W, C) `image` at (N, 2) (x, y) pixel positions (integer centres),
  clamped to the image border. Returns (N, C) float64."""
  img = np.asarray(image, np.float64)
  if img.ndim != 3:
    raise ValueError(f"image must be (H, W, C), got shape {img.shape}")
  h, w = img.shape[:2]
  x = np.clip(np.asarray(xy[:, 0], np.float64), 0, w - 1)
  y = np.clip(np.asarray(xy[:, 1], np.float64), 0, h - 1)
  x0 = np.clip(np.floor(x).astype(np.int64), 0, max(w - 2, 0))
  y0 = np.clip(np.floor(y).astype(np.int64), 0, max(h - 2, 0))
  x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
  ax, ay = (x - x0)[:, None], (y - y0)[:, None]
  return ((1 - ay) * ((1 - ax) * img[y0, x0] + ax * img[y0, x1])
          + ay * ((1 - ax) * img[y1, x0] + ax * img[y1, x1]))


def write_obj(path: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray,
              image: np.ndarray | None = None, image_height: int | None = None) -> pathlib.Path:
  """Writes a Wavefront ``.obj`` mesh (atomically: a temporary file renamed when complete).

  Vertices are in image pixels (x right, y down, z toward the camera); the file stores
  (x, h - 1 - y, z) so that y is up (as PRNet's utils/write.py), faces 1-based and
  counter-clockwise seen from the camera (viewer-facing normals with `mesh_triangles`).

  Args:
    path: output file.
    vertices: (N, 3) float.
    triangles: (T, 3) int indices into vertices.
    image: optional (H, W, 3) image in [0, 1] (float) or uint8; vertex colours are sampled
      bilinearly at (x, y).
    image_height: h for the y flip; default the image's height, else max(y) + 1 rounded up.
  """
  v = np.asarray(vertices, np.float64)
  t = np.asarray(triangles)
  if v.ndim != 2 or v.shape[1] != 3:
    raise ValueError(f"vertices must be (N, 3), got {v.shape}")
  if t.ndim != 2 or t.shape[1] != 3 or (t.size and (t.min() < 0 or t.max() >= len(v))):
    raise ValueError(f"triangles must be (T, 3) indices into {len(v)} vertices, got shape "
                     f"{t.shape}")
  if not np.isfinite(v).all():
    raise ValueError("vertices contain non-finite values")
  colours = None
  if image is not None:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
      raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    img = img[..., :3].astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
    colours = np.clip(sample_colors(img, v[:, :2]), 0.0, 1.0)
    h = img.shape[0] if image_height is None else image_height
  else:
    h = image_height if image_height is not None else int(np.ceil(v[:, 1].max())) + 1
  out = v.copy()
  out[:, 1] = h - 1 - out[:, 1]
  path = pathlib.Path(path)
  lines = []
  if colours is None:
    lines.extend(f"v {a:.4f} {b:.4f} {c:.4f}" for a, b, c in out)
  else:
    lines.extend(f"v {a:.4f} {b:.4f} {c:.4f} {r:.4f} {g:.4f} {bb:.4f}"
                 for (a, b, c), (r, g, bb) in zip(out, colours))
  lines.extend(f"f {a} {b} {c}" for a, b, c in (t.astype(np.int64) + 1))
  tmp = path.with_name(path.name + ".partial")
  tmp.write_text("\n".join(lines) + "\n")
  os.replace(tmp, path)
  return path


__all__ = ["NUM_LANDMARKS", "UV_SIZE", "base_assets", "face_indices", "face_mask",
           "factor_for", "grid_triangles", "landmarks_from_position_map", "mesh_triangles",
           "resize_uv_map", "sample_colors", "vertices_from_position_map", "weight_mask",
           "write_obj"]
