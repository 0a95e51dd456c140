"""Woodham's least-squares photometric stereo (calibrated: known lights and intensities).

For each pixel, intensity-normalised grey observations m_i = ρ n·l_i are fitted by b = ρ n in
the weighted normal equations A b = Σ w_i m_i l_i, A = Σ w_i l_i l_iᵀ (sdps-spec.md §4). The
default weights drop attached shadows (m_i ≤ 0, exactly 0 for Lambertian data), which makes the
solution exact on noiseless Lambertian pixels lit by ≥ 3 non-coplanar lights; the published
"L2" baseline keeps every observation (``shadow_threshold=None``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bioface_jax.photometric import _checks


def _grey_observations(images, lights, intensities):
  """Images (..., N, H, W[, 3]) / intensities, averaged to grey: (..., N, H, W)."""
  images = jnp.asarray(images)
  if not jnp.issubdtype(images.dtype, jnp.floating):
    images = images.astype(jnp.float32)
  n = lights.shape[-2]
  rgb = images.ndim == lights.ndim + 2 and images.shape[-1] == 3
  if not rgb and images.ndim != lights.ndim + 1:
    raise ValueError(f"images must be (..., N, H, W) or (..., N, H, W, 3) with the leading "
                     f"dims of lights {tuple(lights.shape)}, got {tuple(images.shape)}")
  count = images.shape[-4] if rgb else images.shape[-3]
  if count != n:
    raise ValueError(f"images hold {count} images but lights has {n} directions "
                     f"(images {tuple(images.shape)}, lights {tuple(lights.shape)})")
  if intensities is not None:
    e = jnp.asarray(intensities, images.dtype)
    if e.shape[-1:] == (3,) and e.ndim == lights.ndim:
      e = e[..., None, None, :] if rgb else jnp.mean(e, -1)[..., None, None]
    elif e.shape[-1:] == (n,):
      e = e[..., None, None, None] if rgb else e[..., None, None]
    else:
      raise ValueError(f"intensities must be (..., {n}) or (..., {n}, 3), got {tuple(e.shape)}")
    images = images / e
  return jnp.mean(images, -1) if rgb else images


def woodham(images, lights, intensities=None, mask=None, *, shadow_threshold=0.0,
            discard_dark: float = 0.0, discard_bright: float = 0.0):
  """Per-pixel least-squares normals and albedo.

  Args:
    images: (..., N, H, W) or (..., N, H, W, 3), linear.
    lights: (..., N, 3) unit directions, z > 0.
    intensities: None, (..., N) or (..., N, 3); images are divided by them first (per channel
      for RGB; grey images use the channel mean of RGB intensities).
    mask: None or (..., H, W); pixels outside get n = 0, albedo 0.
    shadow_threshold: keep observations m_i > threshold (None keeps all: the "L2" baseline).
    discard_dark, discard_bright: also drop the ⌊f·N⌋ darkest / brightest observations
      (stable per-pixel ranking).

  Returns:
    (normals (..., H, W, 3), albedo (..., H, W)); invalid pixels (fewer than 3 kept lights or
    λ_min(A) ≤ 1e-6·λ_max(A)) get zeros.
  """
  _checks.check_lights("lights", lights)
  _checks.check_finite("images", images)
  if intensities is not None:
    _checks.check_finite("intensities", intensities)
  lights_a = jnp.asarray(lights)
  m = _grey_observations(images, lights_a, intensities)
  dtype = m.dtype
  lights_a = lights_a.astype(dtype)
  n = lights_a.shape[-2]
  w = jnp.ones_like(m) if shadow_threshold is None else (m > shadow_threshold).astype(dtype)
  n_dark, n_bright = int(np.floor(discard_dark * n)), int(np.floor(discard_bright * n))
  if n_dark or n_bright:
    rank = jnp.argsort(jnp.argsort(m, axis=-3, stable=True), axis=-3, stable=True)
    w = w * ((rank >= n_dark) & (rank < n - n_bright)).astype(dtype)
  a = jnp.einsum("...nhw,...ni,...nj->...hwij", w, lights_a, lights_a)
  rhs = jnp.einsum("...nhw,...ni->...hwi", w * m, lights_a)
  eig = jnp.linalg.eigvalsh(a)
  valid = (jnp.sum(w, -3) >= 3) & (eig[..., 0] > 1e-6 * eig[..., -1])
  if mask is not None:
    if np.shape(mask) != m.shape[:-3] + m.shape[-2:] and np.shape(mask) != m.shape[-2:]:
      raise ValueError(f"mask must be (..., H, W) = {m.shape[:-3] + m.shape[-2:]}, "
                       f"got {tuple(np.shape(mask))}")
    valid = valid & (jnp.asarray(mask) > 0.5)
  eye = jnp.eye(3, dtype=dtype)
  a_safe = jnp.where(valid[..., None, None], a, eye)
  b = jnp.linalg.solve(a_safe, rhs[..., None])[..., 0]
  b = jnp.where(valid[..., None], b, 0.0)
  albedo = jnp.linalg.norm(b, axis=-1)
  normals = b / jnp.where(albedo > 0, albedo, 1.0)[..., None]
  return normals, albedo
