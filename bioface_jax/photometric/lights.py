"""Light directions and intensities: SDPS-Net's discretisation and the training-time sampling.

Conventions (sdps-spec.md §3): x right, y up, z toward the camera; lights are unit vectors with
z > 0. A direction is classified by two angles, θ = atan(x/z) (head ``dir_x``) and
φ = atan(y/√(x²+z²)) (head ``dir_y``), each into `num_bins` bins over [-90°, 90°]; intensities
into `num_bins` bins over [low, high]. Decoding returns the bin centres. All functions are pure
jnp and batched over leading dimensions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax.photometric import _checks

_EPS = 1e-8


def _float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def light_angles(dirs):
  """(θ, φ) in degrees of (..., 3) directions: θ = atan(x/(z+1e-8)), φ = atan(y/(√(x²+z²)+1e-8))."""
  dirs = _float(dirs)
  x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
  theta = jnp.degrees(jnp.arctan(x / (z + _EPS)))
  phi = jnp.degrees(jnp.arctan(y / (jnp.sqrt(x * x + z * z) + _EPS)))
  return theta, phi


def angles_to_direction(theta, phi):
  """Unit (..., 3) direction from degrees: (cos φ sin θ, sin φ, cos φ cos θ)."""
  t, p = jnp.radians(theta), jnp.radians(phi)
  return jnp.stack([jnp.cos(p) * jnp.sin(t), jnp.sin(p), jnp.cos(p) * jnp.cos(t)], -1)


def _angle_class(angle, num_bins):
  return jnp.clip((angle + 90.0) / 180.0 * num_bins, 0, num_bins - 1).astype(jnp.int32)


def bin_centres_deg(num_bins: int = 36) -> np.ndarray:
  """The angle (degrees) decoded from each direction class: (k + 0.5)·180/K − 90."""
  return (np.arange(num_bins) + 0.5) * 180.0 / num_bins - 90.0


def encode_light_direction(dirs, num_bins: int = 36):
  """(..., 3) upper-hemisphere unit directions -> (azimuth class, elevation class), int32.

  Uses atan, not atan2, as SDPS-Net does: valid only for z > 0 (checked on concrete input).
  """
  _checks.check_lights("dirs", dirs, min_ndim=1)
  theta, phi = light_angles(dirs)
  return _angle_class(theta, num_bins), _angle_class(phi, num_bins)


def decode_light_direction(az, el, num_bins: int = 36):
  """Bin-centre unit directions (..., 3) of the classes (az, el)."""
  step = 180.0 / num_bins
  theta = (jnp.asarray(az).astype(jnp.float32) + 0.5) * step - 90.0
  phi = (jnp.asarray(el).astype(jnp.float32) + 0.5) * step - 90.0
  return angles_to_direction(theta, phi)


def encode_light_intensity(e, num_bins: int = 20, low: float = 0.2, high: float = 2.0):
  """Intensities -> class int(clip((e − low)/(high − low)·K, 0, K − 1)), int32."""
  _checks.check_finite("intensities", e)
  e = _float(e)
  return jnp.clip((e - low) / (high - low) * num_bins, 0, num_bins - 1).astype(jnp.int32)


def decode_light_intensity(k, num_bins: int = 20, low: float = 0.2, high: float = 2.0):
  """Class -> bin centre clip((k + 0.5)/K·(high − low) + low, low, high)."""
  k = jnp.asarray(k).astype(jnp.float32)
  return jnp.clip((k + 0.5) / num_bins * (high - low) + low, low, high)


def expected_light_direction(dir_x_logits, dir_y_logits):
  """Differentiable decode (FusedNet): softmax-weighted bin-centre angles -> (..., 3) direction."""
  centres = jnp.asarray(bin_centres_deg(dir_x_logits.shape[-1]), dir_x_logits.dtype)
  centres_y = jnp.asarray(bin_centres_deg(dir_y_logits.shape[-1]), dir_y_logits.dtype)
  theta = jnp.sum(jax.nn.softmax(dir_x_logits, -1) * centres, -1)
  phi = jnp.sum(jax.nn.softmax(dir_y_logits, -1) * centres_y, -1)
  return angles_to_direction(theta, phi)


def expected_light_intensity(int_logits, low: float = 0.2, high: float = 2.0):
  """Differentiable decode (FusedNet): softmax-weighted intensity bin centres, (...)."""
  k = int_logits.shape[-1]
  centres = jnp.asarray((np.arange(k) + 0.5) / k * (high - low) + low, int_logits.dtype)
  return jnp.sum(jax.nn.softmax(int_logits, -1) * centres, -1)


def sample_light_directions(key, shape, max_polar_deg: float = 90.0):
  """Area-uniform directions within `max_polar_deg` of +z: (*shape, 3).

  z ~ U(max(cos θmax, 1e-3), 1), ψ ~ U(0, 2π), l = (√(1−z²) cos ψ, √(1−z²) sin ψ, z).
  """
  kz, kp = jax.random.split(key)
  zmin = max(float(np.cos(np.radians(max_polar_deg))), 1e-3)
  z = jax.random.uniform(kz, tuple(shape), minval=zmin, maxval=1.0)
  psi = jax.random.uniform(kp, tuple(shape), minval=0.0, maxval=2 * np.pi)
  r = jnp.sqrt(jnp.maximum(1.0 - z * z, 0.0))
  return jnp.stack([r * jnp.cos(psi), r * jnp.sin(psi), z], -1)


INTENSITY_STRATEGIES = ("uniform", "high", "stratified")


def sample_light_intensities(key, shape, strategy: str = "uniform", low: float = 0.2,
                             high: float = 2.0, num_strata: int | None = None):
  """Per-image intensities of `shape` (last axis = the N images of one sample).

  * ``uniform``: U(low, high) (SDPS-Net);
  * ``high``: U(1, 2) (the student's variant; labels still binned over [low, high]);
  * ``stratified``: M = num_strata (default N) sub-intervals of [low, high]; a random
    permutation π of the images puts image i in stratum ⌊π(i)·M/N⌋, uniform inside it.
  """
  shape = tuple(shape)
  if strategy == "uniform":
    return jax.random.uniform(key, shape, minval=low, maxval=high)
  if strategy == "high":
    return jax.random.uniform(key, shape, minval=1.0, maxval=2.0)
  if strategy == "stratified":
    n = shape[-1]
    m = n if num_strata is None else int(num_strata)
    kp, ku = jax.random.split(key)
    perm = jnp.argsort(jax.random.uniform(kp, shape), axis=-1)  # a permutation per sample
    stratum = (perm * m) // n
    u = jax.random.uniform(ku, shape)
    return low + (stratum + u) * (high - low) / m
  raise ValueError(f"intensity strategy must be one of {INTENSITY_STRATEGIES}, got {strategy!r}")


_DILIGENT_THETA = (-3.0, -10.8, -18.2, -25.1, -31.4, -37.0, 2.8, 10.4, 17.8, 24.7, 30.9, 36.4)
_DILIGENT_PHI = (-24.1, -17.7, -10.8, -3.7, 3.5, 10.6, 17.3, 23.5)


def diligent_like_lights() -> np.ndarray:
  """(96, 3) float64: DiLiGenT-like 12 × 8 grid in DiLiGenT's image order (index 8c + r)."""
  theta = np.repeat(np.asarray(_DILIGENT_THETA), 8)
  phi = np.tile(np.asarray(_DILIGENT_PHI), 12)
  t, p = np.radians(theta), np.radians(phi)
  return np.stack([np.cos(p) * np.sin(t), np.sin(p), np.cos(p) * np.cos(t)], -1)
