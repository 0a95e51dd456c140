"""Colour-space conversions at the ends of the pipeline: XYZ -> linear sRGB and display curves.

* `xyz_to_linear_srgb`: the full-precision matrix of the authors' ``fromRawTosRGB.m`` followed
  by their ReLU (spec section 5.3).
* `srgb_encode` / `srgb_decode`: the exact IEC 61966-2-1 sRGB curve, linear toe included,
  with gradients that stay finite at 0.
* `gamma_encode` / `gamma_decode`: the plain power 2.2 the authors use to linearise network
  input (``getBatch.m``: x_lin = x ** 2.2).
* `to_uint8`: linear sRGB -> 8-bit sRGB for saving images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986],
                               [-0.9689, 1.8758, 0.0415],
                               [0.0557, -0.2040, 1.0570]])

_SRGB_TOE = 0.0031308      # linear value where the curve switches to the power law
_SRGB_TOE_CODE = 0.04045   # encoded value at the switch
DISPLAY_GAMMA = 2.2


def xyz_to_linear_srgb(xyz: jax.Array) -> jax.Array:
  """``max(0, M xyz)`` with the full-precision sRGB matrix; xyz (..., 3) -> (..., 3)."""
  xyz = jnp.asarray(xyz)
  matrix = jnp.asarray(XYZ_TO_LINEAR_SRGB, dtype=xyz.dtype)
  return jax.nn.relu(jnp.einsum("ij,...j->...i", matrix, xyz))


def srgb_encode(linear: jax.Array) -> jax.Array:
  """Exact sRGB transfer curve: 12.92 x below 0.0031308, else 1.055 x^(1/2.4) - 0.055.

  Negative input maps through the linear toe (no NaN); the power branch is evaluated at a
  safe argument so its gradient is finite everywhere.
  """
  linear = jnp.asarray(linear)
  safe = jnp.maximum(linear, _SRGB_TOE)
  return jnp.where(linear <= _SRGB_TOE, 12.92 * linear, 1.055 * safe**(1.0 / 2.4) - 0.055)


def srgb_decode(encoded: jax.Array) -> jax.Array:
  """Inverse of `srgb_encode`: x/12.92 below 0.04045, else ((x + 0.055)/1.055)^2.4."""
  encoded = jnp.asarray(encoded)
  safe = jnp.maximum(encoded, _SRGB_TOE_CODE)
  return jnp.where(encoded <= _SRGB_TOE_CODE, encoded / 12.92, ((safe + 0.055) / 1.055)**2.4)


def gamma_decode(encoded: jax.Array, gamma: float = DISPLAY_GAMMA) -> jax.Array:
  """The authors' linearisation of network input: ``max(x, 0) ** 2.2``."""
  return jnp.maximum(jnp.asarray(encoded), 0.0)**gamma


def gamma_encode(linear: jax.Array, gamma: float = DISPLAY_GAMMA) -> jax.Array:
  """``x ** (1/2.2)`` for display, with a finite gradient at 0 (evaluated at x >= 1e-12)."""
  linear = jnp.asarray(linear)
  safe = jnp.maximum(linear, 1e-12)
  return jnp.where(linear > 0, safe**(1.0 / gamma), 0.0)


def to_uint8(linear_srgb: np.ndarray | jax.Array) -> np.ndarray:
  """Linear sRGB -> 8-bit sRGB (exact curve, clipped to [0, 1], rounded), as NumPy."""
  encoded = np.asarray(srgb_encode(jnp.asarray(linear_srgb, dtype=jnp.float32)))
  return np.round(np.clip(encoded, 0.0, 1.0) * 255.0).astype(np.uint8)
