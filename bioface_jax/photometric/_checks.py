"""Input checks shared by the photometric functions: shapes always, values when concrete.

Shape checks run at trace time. Value checks (finite, unit length, upper hemisphere) need the
numbers, so they run only on concrete arrays (not inside `jax.jit`, where the caller's data
pipeline is responsible); that keeps every function jit/vmap/grad-safe.
"""

from __future__ import annotations

import jax
import numpy as np

# Lights read from text files (DiLiGenT prints 6 digits) or normalised in float32 are unit to
# ~1e-6; 1e-3 is far above that rounding yet rejects any unnormalised vector.
UNIT_TOLERANCE = 1e-3


def is_concrete(x) -> bool:
  """True unless `x` is a JAX tracer (inside jit/vmap/grad)."""
  return not isinstance(x, jax.core.Tracer)


def check_last_dim(name: str, x, size: int, min_ndim: int = 1) -> None:
  shape = np.shape(x)
  if len(shape) < min_ndim or shape[-1] != size:
    raise ValueError(f"{name} must have shape (..., {size}) with at least {min_ndim} axes, "
                     f"got {tuple(shape)}")


def check_finite(name: str, x) -> None:
  if is_concrete(x):
    a = np.asarray(x)
    if not np.all(np.isfinite(a)):
      bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
      raise ValueError(f"{name} contains {bad} NaN/Inf values")


def check_lights(name: str, lights, upper: bool = True, min_ndim: int = 2) -> None:
  """(..., N, 3) finite unit vectors (to `UNIT_TOLERANCE`), with z > 0 when `upper`."""
  check_last_dim(name, lights, 3, min_ndim=min_ndim)
  if not is_concrete(lights):
    return
  a = np.asarray(lights, np.float64)
  check_finite(name, a)
  norm = np.linalg.norm(a, axis=-1)
  if np.any(np.abs(norm - 1.0) > UNIT_TOLERANCE):
    worst = float(norm.flat[np.argmax(np.abs(norm - 1.0))])
    raise ValueError(f"{name} must be unit vectors; found a norm of {worst:.6g} "
                     f"(tolerance {UNIT_TOLERANCE})")
  if upper and np.any(a[..., 2] <= 0):
    raise ValueError(f"{name} must lie in the upper hemisphere (z > 0, toward the camera); "
                     f"found z = {float(a[..., 2].min()):.6g}")
