"""Angular errors of normals and lights, and SDPS-Net's scale-invariant intensity error.

`angular_error` uses atan2(‖a×b‖, a·b) on normalised vectors: it equals SDPS's
arccos(clamp(a·b)) up to rounding but has no ≈0.02° float32 floor near 0°. A zero vector on
either side scores 90° (= arccos 0). All angles are degrees.
"""

from __future__ import annotations

import jax.numpy as jnp

from bioface_jax.photometric import _checks


def _angle(a, b):
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.float32)
  b = b.astype(a.dtype)
  na = jnp.linalg.norm(a, axis=-1)
  nb = jnp.linalg.norm(b, axis=-1)
  zero = (na == 0) | (nb == 0)
  a = a / jnp.where(na > 0, na, 1.0)[..., None]
  b = b / jnp.where(nb > 0, nb, 1.0)[..., None]
  e = jnp.degrees(jnp.arctan2(jnp.linalg.norm(jnp.cross(a, b), axis=-1), jnp.sum(a * b, -1)))
  return jnp.where(zero, jnp.asarray(90.0, e.dtype), e)


def _check_pair(pred, gt):
  _checks.check_last_dim("pred", pred, 3, min_ndim=1)
  _checks.check_last_dim("gt", gt, 3, min_ndim=1)
  if jnp.shape(pred) != jnp.shape(gt):
    raise ValueError(f"pred {tuple(jnp.shape(pred))} and gt {tuple(jnp.shape(gt))} must match")


def _bool_mask(mask, shape):
  mask = jnp.asarray(mask)
  if mask.ndim < 2 or mask.ndim > len(shape) or mask.shape != tuple(shape[len(shape) - mask.ndim:]):
    raise ValueError(f"mask must be (..., H, W) matching {tuple(shape)}, got {tuple(mask.shape)}")
  return mask > 0.5 if jnp.issubdtype(mask.dtype, jnp.floating) else mask.astype(bool)


def angular_error(pred, gt, mask=None):
  """Per-pixel angle (degrees) between normal maps (..., H, W, 3); 0 outside `mask`."""
  _check_pair(pred, gt)
  e = _angle(pred, gt)
  if mask is not None:
    e = jnp.where(_bool_mask(mask, e.shape), e, 0.0)
  return e


def mean_angular_error(pred, gt, mask=None):
  """Masked mean angular error (...), degrees. Float masks are thresholded at 0.5; an empty
  mask gives NaN; ``mask=None`` averages every pixel."""
  e = angular_error(pred, gt)
  if mask is None:
    return jnp.mean(e, axis=(-2, -1))
  m = jnp.broadcast_to(_bool_mask(mask, e.shape), e.shape).astype(e.dtype)
  return jnp.sum(e * m, axis=(-2, -1)) / jnp.sum(m, axis=(-2, -1))


def normal_error_stats(pred, gt, mask, thresholds=(11.25, 22.5, 30.0)):
  """dict: ``mean``, ``median`` and ``pct_under_<t>`` (percent of mask pixels with e < t)."""
  e = angular_error(pred, gt)
  m = jnp.broadcast_to(_bool_mask(mask, e.shape), e.shape)
  flat_e = e.reshape(e.shape[:-2] + (-1,))
  flat_m = m.reshape(flat_e.shape)
  count = jnp.sum(flat_m, -1)
  srt = jnp.sort(jnp.where(flat_m, flat_e, jnp.inf), -1)
  lo = jnp.clip((count - 1) // 2, 0, flat_e.shape[-1] - 1)
  hi = jnp.clip(count // 2, 0, flat_e.shape[-1] - 1)
  median = 0.5 * (jnp.take_along_axis(srt, lo[..., None], -1)[..., 0]
                  + jnp.take_along_axis(srt, hi[..., None], -1)[..., 0])
  out = {"mean": jnp.sum(jnp.where(flat_m, flat_e, 0.0), -1) / count,
         "median": jnp.where(count > 0, median, jnp.nan)}
  for t in thresholds:
    out[f"pct_under_{t:g}"] = 100.0 * jnp.sum(flat_m & (flat_e < t), -1) / count
  return out


def light_direction_error(pred, gt):
  """Angle (degrees) between predicted and true light directions: (..., N)."""
  _check_pair(pred, gt)
  return _angle(pred, gt)


def intensity_error(pred, gt):
  """Scale-invariant relative intensity error (SDPS ``calIntsAcc``), one scale per sample.

  pred, gt: (..., N) or (..., N, 3). g = gt/gt[image 0] per channel, s = ⟨p, g⟩/⟨p, p⟩ over
  the sample, error = mean |g − s·p| / (g + 1e-8). Returns (...).
  """
  p = jnp.asarray(pred)
  g = jnp.asarray(gt)
  if p.shape != g.shape:
    raise ValueError(f"pred {tuple(p.shape)} and gt {tuple(g.shape)} must match")
  if p.ndim >= 2 and p.shape[-1] == 3:
    axes = (-2, -1)
    g = g / g[..., :1, :]
  else:
    axes = (-1,)
    g = g / g[..., :1]
  s = jnp.sum(p * g, axes, keepdims=True) / jnp.sum(p * p, axes, keepdims=True)
  return jnp.mean(jnp.abs(g - s * p) / (g + 1e-8), axes)
