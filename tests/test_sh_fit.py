"""physics.sh_fit: SH lighting recovered from normals and luminance (closed form)."""

import numpy as np
import pytest

from bioface_jax import physics

C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708  # Ramamoorthi-Hanrahan


def _irradiance(n, l):
  x, y, z = n[..., 0], n[..., 1], n[..., 2]
  return (C1 * l[8] * (x * x - y * y) + C3 * l[6] * z * z + C4 * l[0] - C5 * l[6]
          + 2 * C1 * (l[4] * x * y + l[7] * x * z + l[5] * y * z)
          + 2 * C2 * (l[3] * x + l[1] * y + l[2] * z))


def _sphere(size=48):
  i, j = np.mgrid[0:size, 0:size]
  u, v = (j + 0.5 - size / 2) / (0.45 * size), -(i + 0.5 - size / 2) / (0.45 * size)
  mask = u * u + v * v < 1
  n = np.stack([u, v, np.sqrt(np.clip(1 - u * u - v * v, 0, None))], -1) * mask[..., None]
  return n, mask


def test_fit_recovers_the_lighting_times_the_albedo_despite_outliers():
  n, mask = _sphere()
  light = np.array([0.8, 0.2, 0.5, -0.3, 0.05, -0.1, 0.15, 0.1, -0.05])
  y = 0.6 * _irradiance(n, light)
  np.testing.assert_allclose(physics.fit_sh_lighting(n, y, mask, trim=(0, 1)), 0.6 * light,
                             atol=1e-10)
  rng = np.random.default_rng(0)
  dirty = y.copy()
  idx = np.flatnonzero(mask)
  bad = rng.choice(idx, int(0.08 * len(idx)), replace=False)
  dirty.flat[bad[: len(bad) // 2]] = -1.0       # dark hair, eyes
  dirty.flat[bad[len(bad) // 2:]] = 10.0        # highlights
  coeffs = physics.fit_sh_lighting(n, dirty, mask)  # trims 5 % on each side
  np.testing.assert_allclose(coeffs, 0.6 * light, atol=1e-9)
  shading = physics.sh_shading(n, coeffs)
  np.testing.assert_allclose(shading[mask], np.maximum(y[mask], 0), atol=1e-9)
  assert not shading[~mask].any()


def test_fit_errors():
  n, mask = _sphere(8)
  with pytest.raises(ValueError, match="must agree"):
    physics.fit_sh_lighting(n, np.zeros((8, 9)), mask)
  with pytest.raises(ValueError, match="at least 9"):
    physics.fit_sh_lighting(n, np.zeros((8, 8)), np.zeros((8, 8)))
  with pytest.raises(ValueError, match="trim"):
    physics.fit_sh_lighting(n, np.zeros((8, 8)), mask, trim=(0.5, 0.2))
  with pytest.raises(ValueError, match="finite"):
    physics.fit_sh_lighting(n, np.full((8, 8), np.nan), mask)
