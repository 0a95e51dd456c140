"""Surface normals from a PRNet position map: mesh normals on the UV grid, rasterised into an image.

A position map ``P`` (R, R, 3) holds the 3-D point of every UV pixel in image pixels, PRNet's
convention: x right, y down, pixel centres at integers, z toward the viewer (larger = closer),
x, y and z in the same pixel units (`face3d.uv`). Its mesh is the UV grid: two triangles per
2 x 2 block of valid pixels (`uv.grid_triangles`), counter-clockwise seen from the camera.

Normals are returned in the **camera frame** of the rest of the project (SDPS-Net, the synthetic
faces): x right, y up, z toward the camera, i.e. computed from (x, -y, z). A vertex normal is
the area-weighted sum of its triangles' normals (b - a) x (c - a), normalised (the same rule
as `data.synth.geometry.vertex_normals`). To get normals in an original photo instead of the
network's crop, uncrop the map first (`face3d.uncrop_points`: x, y by the inverse similarity,
z by its scale); normals follow from positions, so any similarity is handled.

A network's position map is noisy at the scale of one UV pixel, and normals are derivatives of
positions: `smooth_position_map` (a Gaussian over the UV grid, normalised over the valid
pixels) regularises it first; `rasterise_position_map(smooth=sigma)` applies it. Any weighted
mean of coplanar points stays on their plane, so smoothing leaves a plane's normals exact.

Pure NumPy (float64 inside), no I/O beyond the UV face mask when ``valid`` is not given.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from bioface_jax.face3d import raster
from bioface_jax.face3d import uv as uv_lib


def _check(position_map) -> np.ndarray:
  p = np.asarray(position_map, np.float64)
  if p.ndim != 3 or p.shape[-1] != 3 or p.shape[0] != p.shape[1]:
    raise ValueError(f"position_map must have shape (R, R, 3), got {p.shape}")
  if not np.isfinite(p).all():
    raise ValueError("position_map contains non-finite values")
  return p


def _valid(valid, size: int) -> np.ndarray:
  v = uv_lib.face_mask(size) if valid is None else np.asarray(valid, bool)
  if v.shape != (size, size):
    raise ValueError(f"valid must have shape ({size}, {size}), got {v.shape}")
  return v


def smooth_position_map(position_map, sigma: float, valid=None) -> np.ndarray:
  """Gaussian smoothing (sigma in UV pixels) of the positions over the valid UV region.

  Normalised convolution: each valid pixel becomes the Gaussian-weighted mean of the valid
  pixels around it; invalid pixels stay 0. ``sigma = 0`` returns the map unchanged.
  """
  p = _check(position_map)
  v = _valid(valid, p.shape[0])
  if sigma < 0:
    raise ValueError(f"sigma must be >= 0, got {sigma}")
  if sigma == 0:
    return np.where(v[..., None], p, 0.0)
  w = ndimage.gaussian_filter(v.astype(np.float64), sigma, mode="constant")
  out = np.stack([ndimage.gaussian_filter(np.where(v, p[..., k], 0.0), sigma, mode="constant")
                  for k in range(3)], -1)
  return np.where(v[..., None], out / np.maximum(w, 1e-12)[..., None], 0.0)


def position_map_normals(position_map, valid=None) -> np.ndarray:
  """Unit mesh normals at every UV pixel, camera frame (x right, y up, z toward the camera).

  Args:
    position_map: (R, R, 3) positions, PRNet's convention (module docstring).
    valid: (R, R) bool pixels that are mesh vertices; None = the UV face mask at R.

  Returns:
    (R, R, 3) float32 unit normals; 0 at invalid pixels and at valid pixels that belong to no
    complete 2 x 2 block (they carry no triangle).
  """
  p = _check(position_map) * np.array([1.0, -1.0, 1.0])  # camera frame
  v = _valid(valid, p.shape[0])
  block = (v[:-1, :-1] & v[1:, :-1] & v[:-1, 1:] & v[1:, 1:])[..., None]
  a, b, d, e = p[:-1, :-1], p[1:, :-1], p[:-1, 1:], p[1:, 1:]
  n1 = np.cross(b - a, d - a) * block  # triangle (a, b, d)
  n2 = np.cross(b - d, e - d) * block  # triangle (d, b, e)
  n = np.zeros_like(p)
  n[:-1, :-1] += n1
  n[1:, :-1] += n1 + n2
  n[:-1, 1:] += n1 + n2
  n[1:, 1:] += n2
  norm = np.linalg.norm(n, axis=-1, keepdims=True)
  return np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def rasterise_position_map(position_map, shape, valid=None, smooth: float = 0.0
                           ) -> dict[str, np.ndarray]:
  """The mesh of a position map drawn into an image: normals, face mask and depth per pixel.

  Z-buffered and point-sampled at pixel centres (`face3d.raster`); triangles facing away from
  the camera are culled; a pixel's normal interpolates the vertex normals barycentrically and
  is renormalised.

  Args:
    position_map: (R, R, 3) positions in the target image's pixels (PRNet's convention).
    shape: (H, W) of the image (or an int for a square one).
    valid: (R, R) bool mesh vertices; None = the UV face mask at R.
    smooth: `smooth_position_map` sigma in UV pixels applied first (0 = none).

  Returns:
    dict: ``normals`` (H, W, 3) float32 unit, camera frame, 0 off the face; ``mask`` (H, W)
    bool pixels covered by the face mesh; ``depth`` (H, W) float32 z (larger = closer, 0 off).
  """
  p = _check(position_map)
  h, w = (int(shape), int(shape)) if np.isscalar(shape) else (int(shape[0]), int(shape[1]))
  if h < 1 or w < 1:
    raise ValueError(f"shape must be positive, got {(h, w)}")
  v = _valid(valid, p.shape[0])
  if smooth:
    p = smooth_position_map(p, smooth, v)
  vertex_normals = position_map_normals(p, v)[v].astype(np.float64)
  screen = p[v] + np.array([0.5, 0.5, 0.0])  # integer pixel centres -> the rasteriser's
  triangles = uv_lib.grid_triangles(v)
  tri, bary = raster.rasterise_triangles(screen, triangles, (h, w))
  mask = tri >= 0
  ids = triangles[np.maximum(tri, 0)]  # (H, W, 3) vertex indices
  n = np.einsum("hwk,hwkc->hwc", bary, vertex_normals[ids])
  norm = np.linalg.norm(n, axis=-1, keepdims=True)
  n = np.where(mask[..., None] & (norm > 1e-12), n / np.maximum(norm, 1e-12), 0.0)
  depth = np.where(mask, np.einsum("hwk,hwk->hw", bary, screen[ids, 2]), 0.0)
  return {"normals": n.astype(np.float32), "mask": mask & (norm[..., 0] > 1e-12),
          "depth": depth.astype(np.float32)}


__all__ = ["position_map_normals", "rasterise_position_map", "smooth_position_map"]
