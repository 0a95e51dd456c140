"""Second-order SH lighting fitted to a photo from known normals: a shading prior for one photo.

Given per-pixel normals n(x) (e.g. PRNet's mesh normals drawn into the photo) and the photo's
linear luminance Y(x), the lighting L (9 coefficients, NFE order) that best explains the
photo as Y(x) ≈ E(n(x); L) is a linear least-squares problem, because the Ramamoorthi-Hanrahan
irradiance `shading.sh_irradiance` is linear in L. The skin's mean albedo is absorbed into L, so
max(0, E(n; L)) is the diffuse shading up to a scale (BioFaceNet's shading loss fits that
scale, `models.biofacenet_loss.shading_loss`). Pixels whose luminance lies outside the given
quantiles of the masked values are left out of the fit (dark brows, eyes, hair and nostrils;
specular highlights), since they are not skin of the mean albedo.

Pure NumPy in float64 (host side, one small solve per photo).
"""

from __future__ import annotations

import numpy as np

from bioface_jax.physics.shading import NUM_SH_COEFFS
from bioface_jax.physics.shading import _irradiance


def sh_basis(normals) -> np.ndarray:
  """(..., 9) irradiance of each unit SH coefficient: E(n; L) = sh_basis(n) @ L."""
  n = np.asarray(normals, np.float64)
  if n.shape[-1:] != (3,):
    raise ValueError(f"normals must have a trailing axis of size 3, got shape {n.shape}")
  return _irradiance(n[..., None, :], np.eye(NUM_SH_COEFFS))


def fit_sh_lighting(normals, values, mask, trim: tuple[float, float] = (0.05, 0.95)
                    ) -> np.ndarray:
  """Least-squares SH lighting (9,) with values ≈ E(n; L) on the mask (module docstring).

  Args:
    normals: (H, W, 3) unit normals (any fixed frame; E is evaluated in the same frame).
    values: (H, W) linear luminance of the photo.
    mask: (H, W) pixels to fit (e.g. the face mesh's coverage).
    trim: lower and upper quantile of the masked values kept for the fit ((0, 1) keeps all).

  Raises:
    ValueError: shapes differ, non-finite inputs, a bad trim, or fewer than 9 usable pixels.
  """
  n = np.asarray(normals, np.float64)
  y = np.asarray(values, np.float64)
  m = np.asarray(mask) > 0.5
  if n.shape != y.shape + (3,) or m.shape != y.shape:
    raise ValueError(f"normals (H, W, 3), values (H, W) and mask (H, W) must agree, got "
                     f"{n.shape}, {y.shape}, {m.shape}")
  if not (np.isfinite(n).all() and np.isfinite(y).all()):
    raise ValueError("normals and values must be finite")
  lo, hi = trim
  if not 0 <= lo < hi <= 1:
    raise ValueError(f"trim must be quantiles 0 <= low < high <= 1, got {trim}")
  m &= np.linalg.norm(n, axis=-1) > 0.5
  if m.sum() >= NUM_SH_COEFFS:
    q = np.quantile(y[m], [lo, hi])
    m &= (y >= q[0]) & (y <= q[1])
  if m.sum() < NUM_SH_COEFFS:
    raise ValueError(f"need at least {NUM_SH_COEFFS} masked pixels with normals to fit SH "
                     f"lighting, got {int(m.sum())}")
  coeffs, *_ = np.linalg.lstsq(sh_basis(n[m]), y[m], rcond=None)
  return coeffs


def sh_shading(normals, coeffs) -> np.ndarray:
  """max(0, E(n; L)) (H, W) in float64, 0 where the normal is zero (no surface)."""
  n = np.asarray(normals, np.float64)
  e = sh_basis(n) @ np.asarray(coeffs, np.float64)
  return np.where(np.linalg.norm(n, axis=-1) > 0.5, np.maximum(e, 0.0), 0.0)


__all__ = ["fit_sh_lighting", "sh_basis", "sh_shading"]
