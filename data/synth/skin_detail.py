"""Fine skin relief on the face mesh: wrinkles and roughness as a bump on the shading normals.

A height field h (model units) is evaluated at every face pixel's continuous UV, so it sticks
to the skin under any shape, expression and pose: age wrinkles (horizontal forehead lines,
crow's feet fanning from the outer eye corners, nasolabial folds from the nose wings to the
mouth corners, their depth growing with the face's age-like `sagging` coefficient) and a
fine roughness. The perturbed normal is n' = normalize(n - grad h), with grad h the
screen-space gradient (pixels, camera frame: x right, y up) of the height in pixels, so
foreshortening comes for free. The normals the scene shades with *are* the perturbed ones,
and they are what the truth records, so shading truth stays exact.
"""

from __future__ import annotations

import numpy as np

from data.synth import geometry, textures

UV = geometry.UV_SIZE


def _segment_distance(col, row, a, b):
  """Distance to the segment a-b and the position along it (0..1), UV pixels."""
  ab = np.asarray(b, np.float64) - a
  t = np.clip(((col - a[0]) * ab[0] + (row - a[1]) * ab[1]) / (ab @ ab), 0.0, 1.0)
  return np.hypot(col - a[0] - t * ab[0], row - a[1] - t * ab[1]), t


def height(rng: np.random.Generator, template: geometry.FaceTemplate, uv: np.ndarray,
           age: float, roughness: float) -> np.ndarray:
  """Height (model units, negative = into the skin) at UV coordinates (M, 2).

  Args:
    age: wrinkle depth factor (the face's sagging coefficient; <= 0 gives no wrinkles).
    roughness: amplitude of the fine relief in model units.
  """
  k = template.landmarks_uv
  col, row = uv[:, 0] * UV - 0.5, uv[:, 1] * UV - 0.5
  h = roughness * textures.fbm(rng, col / 3.0, row / 3.0, 2)
  depth = 0.35 * max(float(age), 0.0)
  if depth <= 0:
    return h
  brow_row = k[17:27, 1].min()
  # Forehead lines: a few wavy grooves above the brows.
  period = rng.uniform(5.0, 7.0)
  above = brow_row - row
  wave = above + 1.5 * textures.fbm(rng, col / 12.0, row / 40.0, 1)
  groove = np.exp(-0.5 * ((wave / period - np.round(wave / period)) * period / 0.9) ** 2)
  h -= depth * groove * (above > period * 0.7) * (above < period * 4.5) * np.exp(
      -0.5 * ((col - 128.0) / 45.0) ** 2)
  # Crow's feet and nasolabial folds: grooves along short segments.
  lines = []
  for corner, sign in ((k[36], -1.0), (k[45], 1.0)):
    for angle in (-0.5, 0.0, 0.45):
      d = np.array([sign * np.cos(angle), np.sin(angle)]) * 9.0
      start = corner + [sign * 2.0, 0.0]
      lines.append((start, start + d, 0.6, 0.8))
  for wing, mouth in ((k[31], k[48]), (k[35], k[54])):
    lines.append((wing + [0.0, -1.0], mouth + [0.0, 2.0], 1.2, 2.0))
  for a, b, width, strength in lines:
    dist, t = _segment_distance(col, row, a, b)
    h -= depth * strength * np.exp(-0.5 * (dist / width) ** 2) * np.sin(np.pi * t) ** 0.5
  return h


def bumped_normals(normals: np.ndarray, mask: np.ndarray, height_px: np.ndarray) -> np.ndarray:
  """n' = normalize(n - (dh/dx, dh/dy_up, 0)) on `mask` (heights in pixels, (H, W))."""
  h = np.where(mask, height_px, 0.0)
  hx = np.zeros_like(h)
  hy = np.zeros_like(h)
  both = mask[:, 1:] & mask[:, :-1]
  hx[:, 1:] += np.where(both, h[:, 1:] - h[:, :-1], 0.0) * 0.5
  hx[:, :-1] += np.where(both, h[:, 1:] - h[:, :-1], 0.0) * 0.5
  both = mask[1:, :] & mask[:-1, :]
  hy[1:, :] += np.where(both, h[:-1, :] - h[1:, :], 0.0) * 0.5   # Rows go down; y goes up.
  hy[:-1, :] += np.where(both, h[:-1, :] - h[1:, :], 0.0) * 0.5
  n = normals - np.stack([hx, hy, np.zeros_like(h)], -1)
  n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
  return np.where(mask[..., None], n, normals).astype(np.float32)
