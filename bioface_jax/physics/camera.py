"""Statistical camera model and the RAW->XYZ transform (spec sections 3-5).

Camera sensitivities are a 2-parameter PCA model over 28 measured cameras:
``s = max(0, P b + mu)``, split into R, G, B rows of 33 bands. The ReLU belongs to the model
(the authors' RAW->XYZ table was built with it).

RAW->XYZ: T(b) = M^T with M = argmin ||S(b)^T M - C||_F (C the CIE 1931 CMFs), each row of T
rescaled to sum to the D65 white (0.3253, 0.3425, 0.3723). ``mode="exact"`` evaluates that
closed form (exact gradient); ``mode="table"`` reproduces the authors' corner-aligned bilinear
lookup in their 128x128 table (row from b1, column from b2, column-major 3x3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bioface_jax.physics.skin import bilinear_sample
from bioface_jax.physics.spectra import N_BANDS, Spectra

B_RANGE = 3.0  # b lies in (-3, 3)^2 (6 sigma(beta) - 3).


def camera_sensitivity(spectra: Spectra, b: jax.Array) -> jax.Array:
  """Camera spectral sensitivities for PCA parameters b.

  Args:
    spectra: the fixed spectra.
    b: (..., 2) camera parameters (b = 0 is the mean camera).

  Returns:
    (..., 3, 33) rows R, G, B; ``max(0, P b + mu)``.
  """
  b = jnp.asarray(b)
  if b.shape[-1:] != (2,):
    raise ValueError(f"camera parameters b must have shape (..., 2), got {b.shape}.")
  s = jax.nn.relu(jnp.einsum("...k,pk->...p", b, spectra.camera_pcs) + spectra.camera_mean)
  return s.reshape(*s.shape[:-1], 3, N_BANDS)


def light_colour(e: jax.Array, sensitivity: jax.Array) -> jax.Array:
  """Camera response to the illuminant: ``lc_c = sum_lambda S_c(lambda) e(lambda)``.

  Args:
    e: (..., 33) illuminant.
    sensitivity: (..., 3, 33) camera sensitivities.

  Returns:
    (..., 3) light colour in raw camera RGB.
  """
  return jnp.einsum("...cl,...l->...c", sensitivity, e)


def raw_to_xyz_exact(spectra: Spectra, sensitivity: jax.Array) -> jax.Array:
  """Closed-form RAW->XYZ matrix for given sensitivities (rows X, Y, Z).

  Args:
    spectra: the fixed spectra (CMFs and row-sum targets).
    sensitivity: (..., 3, 33) camera sensitivities.

  Returns:
    (..., 3, 3) T with XYZ = T @ raw.
  """
  gram = jnp.einsum("...cl,...dl->...cd", sensitivity, sensitivity)  # S S^T, (3, 3)
  cross = jnp.einsum("...cl,lx->...cx", sensitivity, spectra.cmf)   # S C, (3, 3)
  m = jnp.linalg.solve(gram, cross)                                  # (S S^T)^-1 S C
  t = jnp.swapaxes(m, -1, -2)
  return t * (spectra.xyz_row_sums / jnp.sum(t, axis=-1))[..., None]


def raw_to_xyz_table(spectra: Spectra, b: jax.Array) -> jax.Array:
  """The authors' lookup: bilinear, corner-aligned, row from b1, column from b2.

  b outside [-3, 3] is clamped to the table's edge.
  """
  b = jnp.asarray(b, spectra.tmatrix.dtype)
  flat = bilinear_sample(spectra.tmatrix, b[..., 0] / B_RANGE, b[..., 1] / B_RANGE)
  # MATLAB column-major vectorisation: T[r, c] = t[r + 3 c].
  return jnp.swapaxes(flat.reshape(*flat.shape[:-1], 3, 3), -1, -2)


def raw_to_xyz(spectra: Spectra, b: jax.Array, mode: str = "exact") -> jax.Array:
  """RAW->XYZ matrix T(b) for camera parameters b.

  Args:
    spectra: the fixed spectra.
    b: (..., 2) camera parameters.
    mode: "exact" (closed form) or "table" (the authors' 128x128 lookup).

  Returns:
    (..., 3, 3) with rows X, Y, Z and columns camera R, G, B: ``xyz = T @ white_balanced``.
  """
  if mode == "exact":
    return raw_to_xyz_exact(spectra, camera_sensitivity(spectra, b))
  if mode == "table":
    return raw_to_xyz_table(spectra, b)
  raise ValueError(f"raw_to_xyz mode must be 'exact' or 'table', got {mode!r}.")
