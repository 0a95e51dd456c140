"""Spherical-harmonic shading: BioFaceNet's pseudo-ground-truth diffuse shading.

BioFaceNet supervises its shading decoder with a shading map computed from a 3DMM normal map and
second-order spherical-harmonic (SH) lighting, both shipped with the Neural Face Editing (NFE)
augmented-CelebA data (biofacenet-spec.md §9.2-9.3). The irradiance is the Ramamoorthi-Hanrahan
closed form (NFE eq. 4-5):

  E(n; L) = c1 L8 (x^2 - y^2) + c3 L6 z^2 + c4 L0 - c5 L6
            + 2 c1 (L4 xy + L7 xz + L5 yz) + 2 c2 (L3 x + L1 y + L2 z)

with the NFE coefficient order (L00, L1-1 [y], L10 [z], L11 [x], L2-2 [xy], L2-1 [yz], L20,
L21 [xz], L22 [x^2-y^2]). The single-channel target is max(0, mean over R, G, B of E_c) (spec §9.3,
"recommended"). NFE's Lua code has the typo c3 = 0.743152; we use the correct 0.743125.

All public functions are pure `jnp`, jit/vmap/grad-safe and broadcast over leading dimensions.
`shading_target_numpy` evaluates the same formula in NumPy for host-side data pipelines, so the
data loader need not dispatch work to an accelerator.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

# Ramamoorthi & Hanrahan (SIGGRAPH 2001), eq. 13: c1 = pi/4 * 0.546274, c2 = 2pi/3 * 0.488603 / 2,
# c3 = 3 * pi/4 * 0.315392, c4 = pi * 0.282095, c5 = pi/4 * 0.315392.
C1 = 0.429043
C2 = 0.511664
C3 = 0.743125
C4 = 0.886227
C5 = 0.247708

NUM_SH_COEFFS = 9


def _irradiance(normals: Any, coeffs: Any) -> Any:
  """The Ramamoorthi-Hanrahan polynomial in plain arithmetic, so NumPy and jnp arrays both work."""
  x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
  l = [coeffs[..., k] for k in range(NUM_SH_COEFFS)]
  return (C1 * l[8] * (x * x - y * y) + C3 * l[6] * (z * z) + C4 * l[0] - C5 * l[6]
          + 2.0 * C1 * (l[4] * (x * y) + l[7] * (x * z) + l[5] * (y * z))
          + 2.0 * C2 * (l[3] * x + l[1] * y + l[2] * z))


def _check_last_dim(name: str, shape: tuple[int, ...], size: int) -> None:
  if len(shape) < 1 or shape[-1] != size:
    raise ValueError(f"{name} must have a trailing axis of size {size}, got shape {shape}")


def sh_irradiance(normals: jnp.ndarray, coeffs: jnp.ndarray) -> jnp.ndarray:
  """Irradiance of second-order SH lighting on surfaces with the given normals.

  Args:
    normals: (..., 3) normals (x, y, z), normally of unit length. Not renormalised.
    coeffs: (..., 9) SH lighting coefficients of one colour channel in NFE order
      (L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22). Leading dimensions broadcast against those
      of `normals`.

  Returns:
    (...) irradiance E(n; L), not clamped (it can be negative for normals facing away).
  """
  normals = jnp.asarray(normals)
  coeffs = jnp.asarray(coeffs)
  _check_last_dim("normals", normals.shape, 3)
  _check_last_dim("coeffs", coeffs.shape, NUM_SH_COEFFS)
  return _irradiance(normals, coeffs)


def shading_target(normals: jnp.ndarray, lights: jnp.ndarray) -> jnp.ndarray:
  """BioFaceNet's pseudo-ground-truth shading: max(0, mean over R, G, B of the SH irradiance).

  E is linear in the coefficients, so the mean over colours of E_c equals E evaluated with the
  mean coefficient vector; we use that identity (one polynomial evaluation instead of three).

  Args:
    normals: (..., H, W, 3) decoded normals (see `decode_normals`).
    lights: (..., 3, 9) SH coefficients per colour channel (rows R, G, B), NFE order. Leading
      dimensions broadcast against those of `normals`.

  Returns:
    (..., H, W) shading, >= 0.
  """
  normals = jnp.asarray(normals)
  lights = jnp.asarray(lights)
  _check_last_dim("normals", normals.shape, 3)
  if lights.ndim < 2 or lights.shape[-2:] != (3, NUM_SH_COEFFS):
    raise ValueError(f"lights must have shape (..., 3, 9), got {lights.shape}")
  if normals.ndim < 3:
    raise ValueError(f"normals must have shape (..., H, W, 3), got {normals.shape}")
  mean_coeffs = jnp.mean(lights, axis=-2)[..., None, None, :]  # (..., 1, 1, 9)
  return jnp.maximum(_irradiance(normals, mean_coeffs), 0.0)


def shading_target_numpy(normals: np.ndarray, lights: np.ndarray) -> np.ndarray:
  """`shading_target` evaluated in NumPy (float32 unless given float64), for data pipelines.

  Args:
    normals: (..., H, W, 3) decoded normals.
    lights: (..., 3, 9) SH coefficients per colour channel, NFE order.

  Returns:
    (..., H, W) shading, >= 0, in the promoted floating dtype of the inputs (at least float32).
  """
  dtype = np.result_type(normals, lights, np.float32)
  normals = np.asarray(normals, dtype=dtype)
  lights = np.asarray(lights, dtype=dtype)
  _check_last_dim("normals", normals.shape, 3)
  if lights.ndim < 2 or lights.shape[-2:] != (3, NUM_SH_COEFFS):
    raise ValueError(f"lights must have shape (..., 3, 9), got {lights.shape}")
  if normals.ndim < 3:
    raise ValueError(f"normals must have shape (..., H, W, 3), got {normals.shape}")
  mean_coeffs = np.mean(lights, axis=-2)[..., None, None, :]
  return np.maximum(_irradiance(normals, mean_coeffs), 0.0).astype(dtype, copy=False)


def decode_normals(encoded: jnp.ndarray, renormalize: bool = False, eps: float = 1e-6
                   ) -> jnp.ndarray:
  """Decodes NFE normal maps stored as (n + 1) / 2 in [0, 1]: n = 2 v - 1.

  By default the result is not renormalised, as in the NFE trainer: the SH coefficients were
  fitted to these normals, and bicubic resizing only shortens them slightly inside the face.
  Outside the face mask the stored values are arbitrary (often v = 0 -> n = (-1, -1, -1), or
  v = 0.5 -> n = 0); the SH polynomial is finite for any finite vector and the shading loss is
  masked, so nothing needs to be done there. With `renormalize=True` each vector is divided by
  max(|n|, eps): zero-length normals stay exactly zero (no NaN, finite gradients).

  Args:
    encoded: (..., 3) encoded normals.
    renormalize: whether to scale each decoded normal to unit length.
    eps: lower bound on the length used in the division when renormalising.

  Returns:
    (..., 3) decoded normals.
  """
  encoded = jnp.asarray(encoded)
  _check_last_dim("encoded normals", encoded.shape, 3)
  n = 2.0 * encoded - 1.0
  if renormalize:
    sq = jnp.sum(n * n, axis=-1, keepdims=True)
    n = n / jnp.sqrt(jnp.maximum(sq, eps * eps))
  return n
