"""Vertex normals and rasteriser shortcuts on the mesh's UV grid (same results, faster).

The mean-face mesh (`geometry.FaceTemplate`) has two triangles per valid 2x2 block of the
256x256 UV grid, in the order of `geometry.grid_triangles`: block k of ``np.nonzero(blocks)``
(row-major) carries triangle 2k = (a, b, d) and 2k + 1 = (d, b, e), with a = (r, c),
b = (r + 1, c), d = (r, c + 1), e = (r + 1, c + 1). Two facts make per-frame work on all 87k
triangles unnecessary at the small render sizes of the scene world, where most triangles are
smaller than a pixel and cover no pixel centre:

* `candidates`: a triangle's pixel bounding box (`bioface_jax.face3d.raster._rasterise_flat`:
  ceil(min x - 1/2) .. floor(max x - 1/2)) is the min / max over its corners of the same
  per-vertex values (ceil and floor are monotone), so it comes from array slices of the grid
  instead of per-triangle gathers; only triangles whose box holds a pixel centre are passed
  on, and the rasteriser computes everything else as before (identical output).
* `grid_normals` (re-exported by `geometry`) computes every vertex normal on the grid;
  `normals_at`: `grid_normals` at chosen vertices only (those of the drawn triangles),
  with the same float32 operations in the same order (identical up to the sign of zeros).
"""

from __future__ import annotations

import functools

import numpy as np

UV_SIZE = 256


@functools.lru_cache(maxsize=4)
def _triangle_ids(blocks_bytes: bytes, shape: tuple[int, int]) -> np.ndarray:
  """(255, 255, 2) int64 triangle index of each block's (a, b, d) and (d, b, e), -1 off blocks."""
  blocks = np.frombuffer(blocks_bytes, bool).reshape(shape)
  ids = np.full(shape + (2,), -1, np.int64)
  rank = np.cumsum(blocks.ravel()).reshape(shape) - 1
  ids[blocks, 0] = 2 * rank[blocks]
  ids[blocks, 1] = 2 * rank[blocks] + 1
  ids.setflags(write=False)
  return ids


def triangle_ids(template) -> np.ndarray:
  """`_triangle_ids` of a template (cached per blocks mask)."""
  return _triangle_ids(template.blocks.tobytes(), template.blocks.shape)


@functools.lru_cache(maxsize=4)
def _flat_index(template) -> np.ndarray:
  """(N,) index of each vertex's UV pixel in the flattened 256 x 256 grid."""
  flat = template.rows * UV_SIZE + template.cols
  flat.setflags(write=False)
  return flat


def _on_grid(values: np.ndarray, template, dtype=np.float64) -> np.ndarray:
  """(256, 256) grid of per-vertex values (0 elsewhere), by a one-dimensional scatter."""
  grid = np.zeros(UV_SIZE * UV_SIZE, dtype)
  grid[_flat_index(template)] = values
  return grid.reshape(UV_SIZE, UV_SIZE)


def candidates(screen: np.ndarray, template, h: int, w: int) -> np.ndarray:
  """Ascending indices of the template's triangles whose pixel bounding box in an (h, w) image
  is not empty (a superset of the triangles that can cover a pixel centre)."""
  boxes = []
  for axis, limit in ((0, w), (1, h)):
    coord = np.clip(_on_grid(screen[:, axis], template) - 0.5, -2.0**20, 2.0**20)
    # Whole numbers: exact in float32 (|x| < 2^24), which halves the memory traffic below.
    lo, hi = np.ceil(coord).astype(np.float32), np.floor(coord).astype(np.float32)
    a, b, d, e = (lambda g: (g[:-1, :-1], g[1:, :-1], g[:-1, 1:], g[1:, 1:]))(lo)
    lo_abd = np.maximum(np.minimum(np.minimum(a, b), d), 0)
    lo_dbe = np.maximum(np.minimum(np.minimum(d, b), e), 0)
    a, b, d, e = (lambda g: (g[:-1, :-1], g[1:, :-1], g[:-1, 1:], g[1:, 1:]))(hi)
    hi_abd = np.minimum(np.maximum(np.maximum(a, b), d), limit - 1)
    hi_dbe = np.minimum(np.maximum(np.maximum(d, b), e), limit - 1)
    boxes.append((hi_abd >= lo_abd, hi_dbe >= lo_dbe))
  keep = np.stack([boxes[0][0] & boxes[1][0], boxes[0][1] & boxes[1][1]], -1)
  keep &= template.blocks[..., None]
  return triangle_ids(template)[keep]


def grid_normals(vertices: np.ndarray, template) -> np.ndarray:
  """`vertex_normals(vertices, template.triangles)` computed on the UV grid, in float32.

  The same area-weighted sum, but with array slices of the 256x256 position map instead of
  gathers and scatters over 87k triangles (several times faster; float32 halves the memory
  traffic and agrees with the float64 mesh normals to ~1e-5).

  Returns:
    (N, 3) float32 unit normals.
  """
  p = np.zeros((3, UV_SIZE, UV_SIZE), np.float32)  # Planar: every slice below is contiguous.
  p[:, template.rows, template.cols] = vertices.T
  a, b, d, e = p[:, :-1, :-1], p[:, 1:, :-1], p[:, :-1, 1:], p[:, 1:, 1:]

  def cross(u, w):
    return np.stack([u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
                     u[0] * w[1] - u[1] * w[0]])

  blocks = template.blocks.astype(np.float32)
  n1 = cross(b - a, d - a) * blocks  # Triangle (a, b, d).
  # Triangles (a, b, d) + (d, b, e) = the quad a -> b -> e -> d, whose doubled vector area is
  # (e - a) x (d - b).
  n12 = cross(e - a, d - b) * blocks
  n = np.zeros_like(p)
  n[:, :-1, :-1] += n1
  n[:, 1:, :-1] += n12
  n[:, :-1, 1:] += n12
  n[:, 1:, 1:] += n12 - n1
  n = n[:, template.rows, template.cols].T
  return n / np.maximum(np.sqrt((n * n).sum(-1, keepdims=True)), 1e-12)


def normals_at(vertices: np.ndarray, template, at: np.ndarray) -> np.ndarray:
  """`grid_normals(vertices, template)[at]`, computed on the UV rows and columns
  around `at` only, with the same float32 operations in the same order.

  Returns:
    (len(at), 3) float32 unit normals.
  """
  r, c = template.rows[at], template.cols[at]
  r0, r1 = max(int(r.min()) - 1, 0), min(int(r.max()) + 2, UV_SIZE)
  c0, c1 = max(int(c.min()) - 1, 0), min(int(c.max()) + 2, UV_SIZE)
  # Planar (every slice below is contiguous), cast to float32 as grid_normals' assignment does.
  p = np.stack([_on_grid(vertices[:, k], template, np.float32)[r0:r1, c0:c1] for k in range(3)])
  a, b, d, e = p[:, :-1, :-1], p[:, 1:, :-1], p[:, :-1, 1:], p[:, 1:, 1:]

  def cross(u, w):
    return np.stack([u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
                     u[0] * w[1] - u[1] * w[0]])

  blocks = template.blocks[r0:r1 - 1, c0:c1 - 1].astype(np.float32)
  n1 = cross(b - a, d - a) * blocks  # Triangle (a, b, d).
  n12 = cross(e - a, d - b) * blocks  # Quad a -> b -> e -> d (see geometry.grid_normals).
  n = np.zeros_like(p)
  n[:, :-1, :-1] += n1
  n[:, 1:, :-1] += n12
  n[:, :-1, 1:] += n12
  n[:, 1:, 1:] += n12 - n1
  n = n[:, r - r0, c - c0].T
  return n / np.maximum(np.sqrt((n * n).sum(-1, keepdims=True)), 1e-12)
