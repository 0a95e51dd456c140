"""PRNet's mean face as a position map, similarity alignment, and a mean-face-regularised map.

A network's position map carries the face's pose and proportions in its low frequencies and
mostly noise at the scale of a UV pixel (its normals, derivatives of the positions, suffer
most). `regularise` keeps what is reliable: the mean face (`mean_position_map`, PRNet's
``canonical_vertices.npy`` in the assets, smoothed over 1 UV pixel at 256 to remove its folded
triangles as `data.synth.geometry` does) is aligned to the map by the least-squares similarity
(`align`, Umeyama 1991: rotation, isotropic scale, translation, over the valid pixels), and only
the residual map - aligned mean face is low-passed (Gaussian, ``sigma`` UV pixels):
``sigma = 0`` returns the map, ``sigma = inf`` the posed mean face.

Frames are PRNet's (x right, y down, z toward the viewer, pixels); the alignment is a proper
rotation in that frame, so the result is again a position map of the same convention.
"""

from __future__ import annotations

import functools

import numpy as np

from bioface_jax import assets
from bioface_jax.face3d import normals as normals_lib
from bioface_jax.face3d import uv as uv_lib


@functools.lru_cache(maxsize=8)
def _mean_map(root: str, size: int) -> np.ndarray:
  del root
  verts = np.load(assets.asset_path("faces/prnet_uv/canonical_vertices.npy")).astype(np.float64)
  ind = uv_lib.face_indices(uv_lib.UV_SIZE)
  if verts.shape != (len(ind), 3):
    raise ValueError(f"canonical_vertices.npy must be ({len(ind)}, 3), got {verts.shape}")
  grid = np.zeros((uv_lib.UV_SIZE * uv_lib.UV_SIZE, 3))
  grid[ind] = verts
  valid = uv_lib.face_mask(uv_lib.UV_SIZE)
  grid = normals_lib.smooth_position_map(grid.reshape(uv_lib.UV_SIZE, uv_lib.UV_SIZE, 3), 1.0,
                                         valid)
  out = uv_lib.resize_uv_map(grid, valid, size)
  out.setflags(write=False)
  return out


def mean_position_map(size: int = uv_lib.UV_SIZE) -> np.ndarray:
  """(R, R, 3) float64 PRNet's mean face (its own frame and scale), 0 off the face mask."""
  return _mean_map(str(assets.assets_dir()), int(size))


def align(source, target, valid) -> tuple[float, np.ndarray, np.ndarray]:
  """Least-squares similarity (s, R, t) with s R source + t ≈ target over the valid pixels.

  Args:
    source, target: (..., 3) point sets of the same shape (e.g. two (R, R, 3) maps).
    valid: boolean mask over the leading axes.

  Returns:
    (scale, rotation (3, 3) with det +1, translation (3,)) (Umeyama 1991).
  """
  a = np.asarray(source, np.float64)[np.asarray(valid, bool)]
  b = np.asarray(target, np.float64)[np.asarray(valid, bool)]
  if len(a) < 3:
    raise ValueError(f"need at least 3 valid points to align, got {len(a)}")
  ma, mb = a.mean(0), b.mean(0)
  a0, b0 = a - ma, b - mb
  u, d, vt = np.linalg.svd(b0.T @ a0 / len(a))
  sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
  rot = u @ sign @ vt
  var = (a0 * a0).sum() / len(a)
  scale = float(np.trace(np.diag(d) @ sign) / var) if var > 0 else 1.0
  return scale, rot, mb - scale * rot @ ma


def regularise(position_map, sigma: float, valid=None) -> np.ndarray:
  """The aligned mean face plus the residual low-passed by ``sigma`` UV pixels (module
  docstring); ``np.inf`` gives the posed mean face alone."""
  p = np.asarray(position_map, np.float64)
  size = p.shape[0]
  v = uv_lib.face_mask(size) if valid is None else np.asarray(valid, bool)
  mean = mean_position_map(size)
  scale, rot, t = align(mean, p, v)
  posed = np.where(v[..., None], scale * mean @ rot.T + t, 0.0)
  if np.isinf(sigma):
    return posed
  residual = normals_lib.smooth_position_map(p - posed, sigma, v) if sigma > 0 else p - posed
  return np.where(v[..., None], posed + residual, 0.0)


__all__ = ["align", "mean_position_map", "regularise"]
