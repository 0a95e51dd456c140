"""Z-buffered, point-sampled triangle rasteriser with exact barycentrics (vectorised NumPy).

`data.synth.geometry` renders the posed mean-face mesh with it and `face3d.normals` rasterises
PRNet's meshes; it is plain geometry, independent of any face template. Screen positions are
(x = column, y = row, z toward the camera) in pixels, pixel (i, j) has its centre at
(j + 0.5, i + 0.5) (PRNet's integer-centre positions need +0.5 first), and front faces are
counter-clockwise in (x, -y) (counter-clockwise seen from +z). `data.synth.raster` and
`data.synth.geometry` re-export it.
"""

from __future__ import annotations

import numpy as np


def _rasterise_flat(screen: np.ndarray, triangles: np.ndarray, h: int, w: int,
                    candidates: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`rasterise_triangles` on the drawn pixels only: (flat pixel index, triangle, weights).

  `candidates`: optional ascending indices of the only triangles to consider (a superset of
  those whose bounding box holds a pixel centre, e.g. `data.synth.grid_raster.candidates`):
  the output is the same as without it, computed on fewer triangles.
  """
  if candidates is not None:
    pix, t, wts = _rasterise_flat(screen, triangles[candidates], h, w)
    return pix, np.asarray(candidates)[t], wts
  cols = [np.ascontiguousarray(triangles[:, k]) for k in range(3)]
  x = [screen[c, 0] for c in cols]
  y = [screen[c, 1] for c in cols]
  # Twice the signed area in (x, -y): positive for counter-clockwise (front-facing) triangles.
  area = (x[2] - x[0]) * (y[1] - y[0]) - (x[1] - x[0]) * (y[2] - y[0])
  x0 = np.maximum(np.ceil(np.minimum(np.minimum(x[0], x[1]), x[2]) - 0.5), 0).astype(np.int64)
  x1 = np.minimum(np.floor(np.maximum(np.maximum(x[0], x[1]), x[2]) - 0.5), w - 1).astype(np.int64)
  y0 = np.maximum(np.ceil(np.minimum(np.minimum(y[0], y[1]), y[2]) - 0.5), 0).astype(np.int64)
  y1 = np.minimum(np.floor(np.maximum(np.maximum(y[0], y[1]), y[2]) - 0.5), h - 1).astype(np.int64)
  nx, ny = x1 - x0 + 1, y1 - y0 + 1
  keep = np.nonzero((area > 1e-12) & (nx > 0) & (ny > 0))[0]
  # Enumerate every (triangle, candidate pixel) pair of the bounding boxes.
  cnt = nx[keep] * ny[keep]
  t = np.repeat(keep, cnt)
  k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
  px = x0[t] + k % nx[t]
  py = y0[t] + k // nx[t]
  cx, cy = px + 0.5, py + 0.5
  xt, yt = [xi[t] for xi in x], [yi[t] for yi in y]

  def edge(i, j):  # Signed area (x, -y convention) of (vertex i, vertex j, pixel centre).
    return (cx - xt[i]) * (yt[j] - yt[i]) - (xt[j] - xt[i]) * (cy - yt[i])

  at = area[t]
  w0, w1 = edge(1, 2) / at, edge(2, 0) / at
  w2 = 1.0 - w0 - w1
  inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
  t, pix = t[inside], (py * w + px)[inside]
  w0, w1, w2 = w0[inside], w1[inside], w2[inside]
  z = w0 * screen[cols[0][t], 2] + w1 * screen[cols[1][t], 2] + w2 * screen[cols[2][t], 2]
  order = np.lexsort((-z, pix))  # Per pixel, closest first.
  first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]] if order.size else order
  return pix[first], t[first], np.stack([w0[first], w1[first], w2[first]], -1)


def rasterise_triangles(screen: np.ndarray, triangles: np.ndarray,
                        size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Z-buffered point-sampled rasterisation of front-facing triangles (vectorised).

  A pixel is covered by a triangle when its centre lies inside it or on its edge; back faces
  (clockwise in (x, -y), i.e. facing away from the camera) are culled; among the covering
  triangles the one with the largest interpolated z (closest) wins. Each triangle's bounding box
  is enumerated, so the cost is O(triangles + covered pixels), with no per-pixel Python loop.

  Args:
    screen: (N, 3) positions (x = column, y = row, z toward camera) in pixels.
    triangles: (T, 3) vertex indices, counter-clockwise seen from +z.
    size: image size, an int or (height, width).

  Returns:
    tri: (H, W) int32 index of the visible triangle, -1 where nothing is drawn.
    bary: (H, W, 3) float64 barycentric weights of its three vertices (zero where tri = -1).
  """
  h, w = (size, size) if np.isscalar(size) else size
  pix, t, wts = _rasterise_flat(np.asarray(screen, np.float64), np.asarray(triangles), h, w)
  tri = np.full(h * w, -1, np.int32)
  bary = np.zeros((h * w, 3))
  tri[pix], bary[pix] = t, wts
  return tri.reshape(h, w), bary.reshape(h, w, 3)


__all__ = ["rasterise_triangles"]
