"""Cast shadows and ambient occlusion from a depth buffer (screen space, vectorised NumPy).

Conventions are those of `data.synth.geometry`: image rows go down, columns right; the camera
frame is x right, y up, z toward the (orthographic) camera; depth is camera-space z in pixel
units (larger = closer), so a light direction ``l = (lx, ly, lz)`` (unit, toward the light)
moves across the image along ``(column, row) = (lx, -ly)``. Pixels outside ``valid`` hold no
surface: they never occlude and are returned fully visible.

The depth buffer is read as a height field (every pixel a column reaching infinitely far back),
the usual assumption of screen-space shadows:

* `cast_shadow`: a pixel p is in shadow when a shadow ray from it toward the light passes below
  the height field. Following the ray, each image pixel of travel raises it by
  ``k = lz / |(lx, ly)|`` depth units, so p (at distance s along the light's image direction)
  is shadowed iff ``max_{s' > s} (D(s') - k s') > D(s) - k s + bias``: one reverse running
  maximum per image line parallel to the light, which is exact for the whole line at once
  (no step count, no missed thin occluders). The depth is resampled bilinearly onto a grid
  rotated to the light's image direction and the result is resampled back. A light of angular
  radius ``alpha`` (an area light or the sun) is sampled at several elevations across its disc
  (Gauss-Chebyshev nodes weighted by the disc's chord length), which gives a penumbra in the
  light's elevation direction; the azimuthal extent of the disc is not sampled.
  Lights behind the image plane (``lz <= 0``, rim and back lights) cast no shadow here: the
  surfaces that would shadow them are behind the visible ones and not in the buffer. A light
  on the view axis casts no visible shadow under an orthographic camera (everything in shadow
  is hidden behind its occluder), so it returns all ones too.
* `ambient_occlusion`: horizon-based ambient occlusion (Bavoil, Sainz and Dimitrov, "Image-space
  horizon-based ambient occlusion", SIGGRAPH 2008 talk): along each of ``directions`` image
  directions the horizon elevation h is the steepest rise of the depth within ``radius``
  pixels, the tangent elevation t comes from the normal, and the visibility is
  ``1 - mean over directions of max(0, sin h - sin t)`` (no distance falloff). Large images are
  processed at a stride (at most ``max_size`` samples per side) and the result upsampled
  bilinearly: ambient occlusion is smooth.
"""

from __future__ import annotations

import numpy as np


def _check(depth: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
  depth = np.asarray(depth, np.float32)
  if depth.ndim != 2:
    raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
  valid = np.isfinite(depth) if valid is None else np.asarray(valid, bool)
  if valid.shape != depth.shape:
    raise ValueError(f"valid {valid.shape} and depth {depth.shape} must have the same shape")
  if not np.isfinite(depth[valid]).all():
    raise ValueError("depth must be finite on the valid pixels")
  return depth, valid


def _floor(depth: np.ndarray, valid: np.ndarray) -> float:
  """A depth far below every surface: no ray from a valid pixel can pass under it."""
  lowest = float(depth[valid].min()) if valid.any() else 0.0
  return lowest - 8.0 * float(sum(depth.shape)) - 1.0


def upsample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of a float (h, w) map to `shape` (pixel-centre aligned; Pillow)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  resized = Image.fromarray(np.asarray(image, np.float32), mode="F").resize(
      (shape[1], shape[0]), Image.Resampling.BILINEAR)
  return np.asarray(resized, np.float32)


def depth_slope(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """(H, W) largest absolute depth difference to a valid 4-neighbour (0 where none)."""
  out = np.zeros(depth.shape, np.float32)
  for axis in (0, 1):
    diff = np.abs(np.diff(depth, axis=axis))
    both = valid[1:] & valid[:-1] if axis == 0 else valid[:, 1:] & valid[:, :-1]
    diff = np.where(both, diff, 0.0)
    lo = [slice(None)] * 2
    hi = [slice(None)] * 2
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    out[tuple(lo)] = np.maximum(out[tuple(lo)], diff)
    out[tuple(hi)] = np.maximum(out[tuple(hi)], diff)
  return out


def disc_samples(count: int) -> tuple[np.ndarray, np.ndarray]:
  """Nodes in (-1, 1) and weights (sum 1) for averaging over a disc's diameter: Gauss-Chebyshev
  of the second kind, x_j = cos(j pi / (n + 1)), weight ~ sin^2 (the disc's chord length)."""
  j = np.arange(1, count + 1)
  x = np.cos(j * np.pi / (count + 1))
  w = np.sin(j * np.pi / (count + 1)) ** 2
  return x, w / w.sum()


def cast_shadow(depth: np.ndarray, valid: np.ndarray | None, direction, angular_radius: float = 0.0,
                samples: int = 3, bias: float = 0.5, slope_bias: float = 0.5,
                max_size: int = 256) -> np.ndarray:
  """Visibility of a distant light through the depth buffer (1 = lit, 0 = in shadow).

  Args:
    depth: (H, W) depth in pixels, larger = closer to the camera.
    valid: (H, W) bool pixels holding a surface (None: the finite depths).
    direction: (3,) direction toward the light in the camera frame (normalised here).
    angular_radius: the light's angular radius in degrees (0 = a point / a sharp sun).
    samples: elevations sampled across the light's disc when angular_radius > 0.
    bias: depth margin in pixels an occluder must clear (suppresses self-shadowing from the
      bilinear resampling of curved surfaces).
    slope_bias: plus this times the pixel's largest depth step to a neighbour
      (`depth_slope`): the slope-scaled bias of shadow mapping, which keeps the staircase of
      steep, point-sampled surfaces (silhouettes) from shadowing itself.
    max_size: images larger than this per side are processed at an integer stride (depth and
      bias scaled with it) and the visibility upsampled bilinearly.

  Returns:
    (H, W) float32 visibility in [0, 1]; 1 off `valid`.
  """
  depth, valid = _check(depth, valid)
  l = np.asarray(direction, np.float64).reshape(-1)
  if l.shape != (3,) or not np.isfinite(l).all() or np.linalg.norm(l) == 0:
    raise ValueError(f"direction must be a finite non-zero 3-vector, got {direction!r}")
  if not (np.isfinite(angular_radius) and 0 <= angular_radius < 90):
    raise ValueError(f"angular_radius must be in [0, 90) degrees, got {angular_radius}")
  l = l / np.linalg.norm(l)
  planar = float(np.hypot(l[0], l[1]))
  h, w = depth.shape
  ones = np.ones((h, w), np.float32)
  if l[2] <= 0 or planar < 1e-6 or not valid.any():
    return ones
  stride = max(1, int(np.ceil(max(h, w) / max_size)))
  if stride > 1:
    small = cast_shadow(depth[::stride, ::stride] / stride, valid[::stride, ::stride], l,
                        angular_radius, samples, bias / stride, slope_bias, max_size)
    up = upsample(small, (h, w))
    return np.where(valid, up, 1.0).astype(np.float32)
  elevation = np.arctan2(l[2], planar)
  if angular_radius > 0 and samples > 1:
    x, weights = disc_samples(int(samples))
    elevations = elevation + np.deg2rad(angular_radius) * x
  else:
    elevations, weights = np.array([elevation]), np.ones(1)
  low = _floor(depth, valid)
  filled = np.where(valid, depth, low).astype(np.float32)
  e_row, e_col = -l[1] / planar, l[0] / planar  # image step toward the light
  transpose = abs(e_col) < abs(e_row)  # March along the image axis closer to the light's.
  cover = valid.astype(np.float32)
  margin = (bias + slope_bias * depth_slope(depth, valid)).astype(np.float32)
  if transpose:
    filled, cover, margin, e_row, e_col = filled.T, cover.T, margin.T, e_col, e_row
  flip = e_col < 0
  if flip:
    filled, cover, margin, e_col = filled[:, ::-1], cover[:, ::-1], margin[:, ::-1], -e_col
  visible = _march(filled, cover, margin, low, e_row / e_col, 1.0 / e_col, elevations, weights)
  if flip:
    visible = visible[:, ::-1]
  if transpose:
    visible = visible.T
  return np.where(valid, visible, 1.0).astype(np.float32)


def _march(depth: np.ndarray, cover: np.ndarray, margin: np.ndarray, low: float, slope: float,
           step: float, elevations: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """`cast_shadow` for a light whose image direction advances one column per `step` pixels of
  travel and `slope` rows per column (|slope| <= 1), toward increasing columns.

  The image is sheared so that each line toward the light becomes one line of the sheared
  grid: line i samples the depth at (row q_min + i + slope * column, column), linearly
  interpolated between rows (columns are exact). The fractional part of the row offset is the
  same for every line at a given column, so shearing and unshearing are per-column shifts of
  contiguous runs (strided views, no gathers). Work is done column-major: axis 0 = column.
  Samples interpolate the depth of valid pixels only (`cover`, 1 = valid), and unshearing
  averages the two nearest lines weighted by their samples' coverage, so lines that run
  outside the surface or the image (floor-depth samples, which look shadowed) do not darken
  the pixels beside them.
  """
  h, w = depth.shape
  cols = np.arange(w)
  offset = slope * cols
  q_min = int(np.floor(min(0.0, -offset.max())))
  n = int(np.ceil(h - 1 + max(0.0, -offset.min()))) - q_min + 2
  base = np.floor(q_min + offset).astype(np.int64)  # row of line 0 at each column (<= 0)
  frac = (q_min + offset - base).astype(np.float32)[:, None]
  pad = n + 2

  def shear(image, fill):
    columns = np.full((w, h + 2 * pad), fill, np.float32)
    columns[:, pad:pad + h] = image.T
    window = np.lib.stride_tricks.sliding_window_view(columns, n + 1, axis=1)[cols, base + pad]
    return (1.0 - frac) * window[:, :-1] + frac * window[:, 1:]  # (w, n)

  # Depth of the valid part of each sample (coverage-weighted), the floor where none is valid.
  coverage = shear(cover, 0.0)
  sheared = np.where(coverage > 1e-6, shear(np.where(cover > 0, depth, 0.0), 0.0)
                     / np.maximum(coverage, 1e-6), low)
  bias = shear(margin, 0.0)
  distance = (cols * step).astype(np.float32)[:, None]
  visible = np.zeros((w, n), np.float32)
  for elevation, weight in zip(elevations, weights):
    if elevation >= np.deg2rad(89.9):
      visible += weight  # Light along the view axis: every shadow is hidden.
      continue
    g = sheared - np.float32(np.tan(max(elevation, 0.0))) * distance
    ahead = np.maximum.accumulate(g[::-1], axis=0)[::-1]  # max over columns >= c
    lit = np.ones_like(g, bool)
    lit[:-1] = ahead[1:] <= g[:-1] + bias[:-1]
    visible += np.float32(weight) * lit
  # Back to the image: pixel (r, c) lies on sheared line u = r - base_c - frac_c, between
  # lines r - j_c and r - j_c + 1 with j_c = base_c + (frac_c > 0), weight b_c on the second.
  j = base + (frac[:, 0] > 0)
  b = (j - base - frac[:, 0]).astype(np.float32)[:, None]

  def unshear(lines):
    padded = np.zeros((w, n + 2 * pad), np.float32)
    padded[:, pad:pad + n] = lines
    window = np.lib.stride_tricks.sliding_window_view(padded, h + 1, axis=1)[cols, pad - j]
    return (1.0 - b) * window[:, :-1] + b * window[:, 1:]  # (w, h)

  total = unshear(coverage)
  out = np.where(total > 1e-6, unshear(visible * coverage) / np.maximum(total, 1e-6), 1.0)
  return np.clip(out.T, 0.0, 1.0)


def ambient_occlusion(depth: np.ndarray, valid: np.ndarray | None, normals: np.ndarray,
                      radius: float, directions: int = 8, steps: int = 6,
                      max_size: int = 64) -> np.ndarray:
  """Horizon-based ambient occlusion: the fraction of the sky a pixel sees (1 = open).

  Args:
    depth: (H, W) depth in pixels, larger = closer.
    valid: (H, W) bool pixels holding a surface (None: the finite depths).
    normals: (H, W, 3) unit camera-space normals (n_z >= 0 on visible surfaces).
    radius: search radius in pixels of the full-resolution image.
    directions: image directions (evenly spaced from the +column axis).
    steps: samples per direction at distances spread evenly over (0, radius], rounded to whole
      pixels (duplicates dropped).
    max_size: images larger than this per side are processed at an integer stride.

  Returns:
    (H, W) float32 visibility in [0, 1]; 1 off `valid`.
  """
  depth, valid = _check(depth, valid)
  normals = np.asarray(normals, np.float32)
  if normals.shape != depth.shape + (3,):
    raise ValueError(f"normals must be {depth.shape + (3,)}, got {normals.shape}")
  if not (radius > 0 and directions >= 1 and steps >= 1):
    raise ValueError(f"need radius > 0, directions >= 1, steps >= 1; got {radius}, "
                     f"{directions}, {steps}")
  h, w = depth.shape
  stride = max(1, int(np.ceil(max(h, w) / max_size)))
  d, v, nrm = depth[::stride, ::stride], valid[::stride, ::stride], normals[::stride, ::stride]
  d = d / stride  # Depth in units of the strided pixels, so slopes stay the same.
  hs, ws = d.shape
  low = _floor(d, v)
  padded_r = int(np.ceil(radius / stride)) + 1
  pad = np.pad(np.where(v, d, low), padded_r, constant_values=low)
  nz = np.maximum(nrm[..., 2], 0.05)
  occlusion = np.zeros((hs, ws), np.float32)
  for a in 2 * np.pi * np.arange(directions) / directions:
    ec, er = np.cos(a), np.sin(a)  # image step (column, row)
    offsets = {(int(round(er * r)), int(round(ec * r)))
               for r in np.linspace(radius / stride / steps, radius / stride, steps)}
    offsets.discard((0, 0))
    rise = np.full((hs, ws), -1e6, np.float32)  # steepest slope toward the horizon
    for dr, dc in offsets:
      shifted = pad[padded_r + dr:padded_r + dr + hs, padded_r + dc:padded_r + dc + ws]
      rise = np.maximum(rise, (shifted - d) * np.float32(1.0 / np.hypot(dr, dc)))
    sin_h = rise / np.sqrt(1.0 + rise * rise)
    # Tangent-plane rise along the image step (column ec, row er) = camera (ec, -er, 0).
    tangent = -(nrm[..., 0] * ec - nrm[..., 1] * er) / nz
    sin_t = tangent / np.sqrt(1.0 + tangent * tangent)
    occlusion += np.maximum(sin_h - sin_t, 0.0)
  ao = np.clip(1.0 - occlusion / directions, 0.0, 1.0)
  if stride > 1:
    ao = upsample(ao, (h, w))
  return np.where(valid, ao, 1.0).astype(np.float32)
