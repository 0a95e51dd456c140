"""Error measures shared by the evaluation commands (pure NumPy, computed in float64).

Every map measure works on a batch: maps are ``(B, H, W)`` or ``(B, H, W, C)`` and masks
``(B, H, W)`` (any dtype; nonzero = inside); each returns one value per image ``(B,)``, which
the commands then summarise over images with `summarise` (mean over images of the per-image
values, so every face counts equally whatever its mask size).

Scale conventions (the eval commands print the ones they use next to their tables):

* `masked_rmse`: sqrt of the mean over the mask's pixels *and* channels of the squared error.
  No rescaling: used for pigment maps (network coordinates in [-1, 1] or volume fractions)
  and for the reconstruction (linear sRGB).
* `scaled_rmse`: BioFaceNet's shading maps are only defined up to a global scale (the same
  image results from a brighter shading and a darker albedo or light), so the prediction is
  first multiplied by the least-squares scale ``k = sum m t p / sum m p^2`` (`best_scale`,
  over the mask's pixels and channels) that brings it closest to the target, then
  `masked_rmse` applies. A constant prediction then scores the target's standard deviation
  over the mask. Targets are often divided first by a per-image reference value
  (`mask_max`), so that errors read as fractions of, e.g., the brightest diffuse shading.
* `spectrum_rmse`: spectra are compared in shape only: each is divided by its mean over bands
  (so a flat spectrum is 1 everywhere) before the RMSE over bands. `spectral_angle` is the
  angle in degrees between the two spectra as vectors (also scale invariant).
* `vector_distance`: the Euclidean distance between parameter vectors (e.g. camera ``b``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _as_float(x, name: str) -> np.ndarray:
  a = np.asarray(x, np.float64)
  if a.ndim == 0:
    raise ValueError(f"{name} must be an array with a batch axis, got a scalar")
  return a


def _maps_and_mask(pred, target, mask, caller: str):
  """Validated float64 (B, H, W, C) maps and (B, H, W, 1) mask weights."""
  p, t = _as_float(pred, "pred"), _as_float(target, "target")
  if p.shape != t.shape:
    raise ValueError(f"{caller}: pred has shape {p.shape} but target has {t.shape}")
  if p.ndim not in (3, 4):
    raise ValueError(f"{caller}: maps must be (B, H, W) or (B, H, W, C), got {p.shape}")
  if p.ndim == 3:
    p, t = p[..., None], t[..., None]
  if mask is None:
    m = np.ones(p.shape[:3], np.float64)
  else:
    m = np.asarray(mask)
    if m.ndim == 4 and m.shape[-1] == 1:
      m = m[..., 0]
    if m.shape != p.shape[:3]:
      raise ValueError(f"{caller}: mask must have shape {p.shape[:3]}, got {m.shape}")
    m = (m != 0).astype(np.float64)
  counts = m.sum(axis=(1, 2))
  empty = np.flatnonzero(counts == 0)
  if empty.size:
    raise ValueError(f"{caller}: the mask of image(s) {empty.tolist()} is empty")
  inside = m[..., None] > 0
  for name, a in (("pred", p), ("target", t)):
    bad = inside & ~np.isfinite(a)
    if bad.any():
      image = int(np.argwhere(bad)[0][0])
      raise ValueError(f"{caller}: {name} has {int(bad.sum())} non-finite value(s) inside the "
                       f"mask (first in image {image})")
  # Zero the outside so NaN there (e.g. unfitted pixels) cannot leak into the sums.
  p = np.where(inside, p, 0.0)
  t = np.where(inside, t, 0.0)
  return p, t, m[..., None]


def masked_rmse(pred, target, mask=None) -> np.ndarray:
  """Per-image RMSE over the mask's pixels and the channels.

  Args:
    pred, target: (B, H, W) or (B, H, W, C) maps; values outside the mask are ignored (they
      may be NaN).
    mask: (B, H, W) (or with a trailing 1), nonzero inside; None = every pixel.

  Returns:
    (B,) float64: sqrt(sum_x m(x) sum_c (p - t)^2 / (C sum_x m(x))).

  Raises:
    ValueError: shape mismatch, an empty mask, or non-finite values inside the mask.
  """
  p, t, m = _maps_and_mask(pred, target, mask, "masked_rmse")
  channels = p.shape[-1]
  sse = np.sum(m * (p - t)**2, axis=(1, 2, 3))
  return np.sqrt(sse / (channels * m.sum(axis=(1, 2, 3))))


def best_scale(pred, target, mask=None) -> np.ndarray:
  """Per-image least-squares scale ``k = sum m t p / sum m p^2`` (0 where ``p`` is 0 on the mask).

  Minimises ``sum_x m sum_c (t - k p)^2`` over k. Args as in `masked_rmse`; returns (B,).
  """
  p, t, m = _maps_and_mask(pred, target, mask, "best_scale")
  num = np.sum(m * t * p, axis=(1, 2, 3))
  den = np.sum(m * p * p, axis=(1, 2, 3))
  return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def scaled_rmse(pred, target, mask=None) -> tuple[np.ndarray, np.ndarray]:
  """`masked_rmse` of ``k pred`` against ``target`` with k from `best_scale`.

  Returns:
    (rmse (B,), k (B,)).
  """
  k = best_scale(pred, target, mask)
  p = np.asarray(pred, np.float64)
  scaled = p * k.reshape((-1,) + (1,) * (p.ndim - 1))
  return masked_rmse(scaled, target, mask), k


def mask_max(x, mask=None) -> np.ndarray:
  """Per-image maximum of a (B, H, W[, C]) map over the mask (and channels); (B,).

  Used to normalise a target before `scaled_rmse`; callers must guard maxima <= 0 (a map
  with no positive value on the mask cannot be normalised by it).
  """
  _, t, m = _maps_and_mask(x, x, mask, "mask_max")
  return np.max(np.where(m > 0, t, -np.inf), axis=(1, 2, 3))


def _spectra(pred, true, caller: str):
  p, t = _as_float(pred, "pred"), _as_float(true, "true")
  if p.shape != t.shape:
    raise ValueError(f"{caller}: pred has shape {p.shape} but true has {t.shape}")
  if p.ndim == 1:
    p, t = p[None], t[None]
  for name, a in (("pred", p), ("true", t)):
    if not np.all(np.isfinite(a)):
      raise ValueError(f"{caller}: {name} has non-finite values")
    if np.any(a.sum(-1) <= 0):
      raise ValueError(f"{caller}: every {name} spectrum must have a positive sum")
  return p, t


def spectrum_rmse(pred, true) -> np.ndarray:
  """RMSE over bands between spectra each divided by its band mean; (B,) for (B, n) inputs.

  A (n,) pair gives a (1,) result. Scale invariant: only the spectral shape is compared.
  """
  p, t = _spectra(pred, true, "spectrum_rmse")
  p = p / p.mean(-1, keepdims=True)
  t = t / t.mean(-1, keepdims=True)
  return np.sqrt(np.mean((p - t)**2, -1))


def spectral_angle(pred, true) -> np.ndarray:
  """Angle in degrees between spectra as vectors, (B,); 0 for spectra of the same shape."""
  p, t = _spectra(pred, true, "spectral_angle")
  cos = np.sum(p * t, -1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1))
  return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def vector_distance(pred, true) -> np.ndarray:
  """Euclidean distance between (B, d) parameter vectors (e.g. camera b); (B,)."""
  p, t = _as_float(pred, "pred"), _as_float(true, "true")
  if p.shape != t.shape or p.ndim != 2:
    raise ValueError(f"vector_distance: pred and true must both be (B, d), got {p.shape} and "
                     f"{t.shape}")
  if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
    raise ValueError("vector_distance: non-finite values")
  return np.linalg.norm(p - t, axis=-1)


def masked_mean(x, mask=None) -> np.ndarray:
  """Per-image mean over the mask (and channels) of a (B, H, W[, C]) map; (B,)."""
  _, t, m = _maps_and_mask(x, x, mask, "masked_mean")
  return np.sum(m * t, axis=(1, 2, 3)) / (t.shape[-1] * m.sum(axis=(1, 2, 3)))


def pearson(x, y) -> float:
  """Pearson correlation of two 1-D samples; NaN when either is constant or has < 2 values."""
  x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
  if x.shape != y.shape:
    raise ValueError(f"pearson: samples of different lengths {x.size} and {y.size}")
  if x.size < 2:
    return float("nan")
  dx, dy = x - x.mean(), y - y.mean()
  den = math.sqrt(float(np.sum(dx * dx) * np.sum(dy * dy)))
  return float(np.sum(dx * dy) / den) if den > 0 else float("nan")


def summarise(values: Sequence[float] | np.ndarray) -> dict[str, float]:
  """mean, std (population), median, min, max and n of per-image values.

  Raises:
    ValueError: no values, or non-finite ones (an error measure must never be NaN silently).
  """
  v = np.asarray(values, np.float64).ravel()
  if v.size == 0:
    raise ValueError("summarise: no values")
  if not np.all(np.isfinite(v)):
    raise ValueError(f"summarise: {int((~np.isfinite(v)).sum())} of {v.size} values are "
                     "non-finite")
  return dict(mean=float(v.mean()), std=float(v.std()), median=float(np.median(v)),
              min=float(v.min()), max=float(v.max()), n=int(v.size))


__all__ = ["best_scale", "mask_max", "masked_mean", "masked_rmse", "pearson", "scaled_rmse",
           "spectral_angle", "spectrum_rmse", "summarise", "vector_distance"]
