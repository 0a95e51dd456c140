"""Illuminant model: a convex mixture of CIE A, daylight D(t) and FL1..FL12 (spec section 2).

The network predicts 14 softmax weights (order A, D, F1..F12) and a colour-temperature index
t in [1, 22]; D(t) interpolates linearly between the 22 unit-sum daylight rows at
4000, 5000, ..., 25000 K (CCT = 1000 (t + 3) K). This is the authors' table convention
(their ``vl_nnillumD`` layer is not public; linear interpolation keeps unit sum and is
differentiable in t).

As an option, ``daylight="cie"`` evaluates the CIE daylight formula continuously from the
S0/S1/S2 basis at the same CCT instead of interpolating the table.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bioface_jax.physics.spectra import N_DAYLIGHT, Spectra

T_MIN, T_MAX = 1.0, float(N_DAYLIGHT)


def index_to_cct(t: jax.Array) -> jax.Array:
  """Colour temperature in kelvin of daylight index t (t = 1 -> 4000 K, 22 -> 25000 K)."""
  return 1000.0 * (jnp.asarray(t) + 3.0)


def cct_to_index(cct: jax.Array) -> jax.Array:
  """Daylight index t for a colour temperature in kelvin."""
  return jnp.asarray(cct) / 1000.0 - 3.0


def daylight_table(spectra: Spectra, t: jax.Array) -> jax.Array:
  """Linear interpolation of the 22 unit-sum daylight rows at fractional index t.

  Args:
    spectra: the fixed spectra.
    t: (...) index in [1, 22] (1-based, as in MATLAB); clamped to that range.

  Returns:
    (..., 33) unit-sum daylight spectrum.
  """
  t = jnp.clip(jnp.asarray(t, spectra.illum_d.dtype), T_MIN, T_MAX)
  lower = jnp.clip(jnp.floor(t), T_MIN, T_MAX - 1.0)
  alpha = (t - lower)[..., None]
  i0 = lower.astype(jnp.int32) - 1  # 0-based row.
  return (1.0 - alpha) * spectra.illum_d[i0] + alpha * spectra.illum_d[i0 + 1]


def daylight_chromaticity(cct: jax.Array) -> tuple[jax.Array, jax.Array]:
  """CIE daylight locus (x_D, y_D) at a correlated colour temperature (CIE 15:2004 eq. 3.3).

  Valid from 4000 K to 25000 K; the two branches meet continuously at 7000 K.
  """
  cct = jnp.asarray(cct)
  inv = 1.0 / cct
  x_low = 0.244063 + 0.09911e3 * inv + 2.9678e6 * inv**2 - 4.6070e9 * inv**3
  x_high = 0.237040 + 0.24748e3 * inv + 1.9018e6 * inv**2 - 2.0064e9 * inv**3
  x = jnp.where(cct <= 7000.0, x_low, x_high)
  y = -3.000 * x**2 + 2.870 * x - 0.275
  return x, y


def daylight_cie(spectra: Spectra, cct: jax.Array) -> jax.Array:
  """CIE daylight SPD as a smooth function of colour temperature, from S0 + M1 S1 + M2 S2.

  Args:
    spectra: the fixed spectra (for the S0/S1/S2 basis).
    cct: (...) colour temperature in kelvin, 4000..25000.

  Returns:
    (..., 33) unit-sum spectrum.
  """
  x, y = daylight_chromaticity(cct)
  m = 0.0241 + 0.2562 * x - 0.7341 * y
  m1 = (-1.3515 - 1.7703 * x + 5.9114 * y) / m
  m2 = (0.0300 - 31.4424 * x + 30.0717 * y) / m
  s0, s1, s2 = spectra.daylight_basis
  spd = s0 + m1[..., None] * s1 + m2[..., None] * s2
  return spd / jnp.sum(spd, axis=-1, keepdims=True)


def illuminant(spectra: Spectra, weights: jax.Array, t: jax.Array,
               daylight: str = "table") -> jax.Array:
  """Illuminant SPD e = w_A e_A + w_D e_D(t) + sum_j w_Fj e_Fj, renormalised to unit sum.

  Args:
    spectra: the fixed spectra.
    weights: (..., 14) convex weights in the order [A, D, F1..F12] (a softmax output).
    t: (...) daylight index in [1, 22] (CCT = 1000 (t + 3) K).
    daylight: "table" (authors: linear interpolation of the 22 rows) or "cie" (the CIE
      formula evaluated continuously at that CCT).

  Returns:
    (..., 33) unit-sum spectrum.
  """
  weights = jnp.asarray(weights)
  if weights.shape[-1:] != (14,):
    raise ValueError(f"illuminant weights must have shape (..., 14) [A, D, F1..F12], "
                     f"got {weights.shape}.")
  if daylight == "table":
    e_d = daylight_table(spectra, t)
  elif daylight == "cie":
    e_d = daylight_cie(spectra, index_to_cct(jnp.clip(t, T_MIN, T_MAX)))
  else:
    raise ValueError(f"daylight must be 'table' or 'cie', got {daylight!r}.")
  e = (weights[..., :1] * spectra.illum_a
       + weights[..., 1:2] * e_d
       + jnp.einsum("...j,jl->...l", weights[..., 2:], spectra.illum_f))
  return e / jnp.sum(e, axis=-1, keepdims=True)
