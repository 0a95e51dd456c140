"""Tests for bioface_jax.physics.shading against independent references.

References: (1) the 4x4 matrix form E = n~^T K(L) n~ (spec §9.3) in float64 NumPy; (2) direct
quadrature of the irradiance integral E(n) = int L(w) max(0, n.w) dw for radiance built from the
real SH basis, which checks the coefficient order and the constants from first principles;
(3) closed forms for single coefficients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from bioface_jax.physics import shading

C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708


def k_matrix_irradiance(normals: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
  """E = n~^T K(L) n~ in float64, n~ = (x, y, z, 1); broadcasts leading dims."""
  n = np.asarray(normals, np.float64)
  l = np.asarray(coeffs, np.float64)
  L = [l[..., k] for k in range(9)]
  K = np.stack([
      np.stack([C1 * L[8], C1 * L[4], C1 * L[7], C2 * L[3]], -1),
      np.stack([C1 * L[4], -C1 * L[8], C1 * L[5], C2 * L[1]], -1),
      np.stack([C1 * L[7], C1 * L[5], C3 * L[6], C2 * L[2]], -1),
      np.stack([C2 * L[3], C2 * L[1], C2 * L[2], C4 * L[0] - C5 * L[6]], -1),
  ], -2)
  nt = np.concatenate([n, np.ones(n.shape[:-1] + (1,))], -1)
  return np.einsum("...i,...ij,...j->...", nt, K, nt)


EPS32 = float(np.finfo(np.float32).eps)
# Tolerance rule for float32 irradiance vs a float64 reference: |error| <= K_ROUND * eps32 *
# sum|terms| per pixel. Any term's path has <= ~20 float32 roundings (3 for rounding n, n, L to
# float32, <= 4 products, <= 3 for the mean over colours, <= 9 additions); K_ROUND = 24 covers it.
K_ROUND = 24


def abs_terms(normals: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
  """sum over the polynomial's terms of |term|, in float64 (the scale of float32 rounding)."""
  n = np.abs(np.asarray(normals, np.float64))
  l = np.abs(np.asarray(coeffs, np.float64))
  x, y, z = n[..., 0], n[..., 1], n[..., 2]
  L = [l[..., k] for k in range(9)]
  return (C1 * L[8] * (x * x + y * y) + C3 * L[6] * z * z + C4 * L[0] + C5 * L[6]
          + 2 * C1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
          + 2 * C2 * (L[3] * x + L[1] * y + L[2] * z))


def real_sh_basis(w: np.ndarray) -> np.ndarray:
  """Real SH basis up to order 2 in NFE order, Ramamoorthi-Hanrahan normalisation."""
  x, y, z = w[..., 0], w[..., 1], w[..., 2]
  return np.stack([
      0.282095 * np.ones_like(x), 0.488603 * y, 0.488603 * z, 0.488603 * x,
      1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
      0.546274 * (x * x - y * y)], -1)


def quadrature_irradiance(n: np.ndarray, coeffs: np.ndarray) -> float:
  """int_{hemisphere about n} (sum_k L_k Y_k(w)) (n.w) dw, exact for this polynomial integrand."""
  # Orthonormal frame (t1, t2, n).
  a = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
  t1 = np.cross(n, a)
  t1 /= np.linalg.norm(t1)
  t2 = np.cross(n, t1)
  u, wu = np.polynomial.legendre.leggauss(8)  # cos(theta) in [0, 1]
  u, wu = 0.5 * (u + 1), 0.5 * wu
  phi = np.arange(16) * 2 * np.pi / 16
  uu, pp = np.meshgrid(u, phi, indexing="ij")
  s = np.sqrt(1 - uu**2)
  w = (s * np.cos(pp))[..., None] * t1 + (s * np.sin(pp))[..., None] * t2 + uu[..., None] * n
  radiance = real_sh_basis(w) @ coeffs
  integrand = radiance * uu
  return float(np.sum(integrand * wu[:, None]) * (2 * np.pi / 16))


def random_unit(rng, shape):
  v = rng.normal(size=shape + (3,))
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_sh_irradiance_matches_k_matrix_form():
  rng = np.random.default_rng(0)
  n = random_unit(rng, (5, 7))
  coeffs = rng.normal(size=(5, 7, 9))
  got = np.asarray(shading.sh_irradiance(n.astype(np.float32), coeffs.astype(np.float32)))
  want = k_matrix_irradiance(n, coeffs)
  assert got.shape == (5, 7)
  bound = K_ROUND * EPS32 * abs_terms(n, coeffs)
  np.testing.assert_array_less(np.abs(got - want), bound)


def test_sh_irradiance_broadcasts_coeffs_over_pixels():
  rng = np.random.default_rng(1)
  n = random_unit(rng, (2, 4, 6))
  coeffs = rng.normal(size=(2, 1, 1, 9))
  got = np.asarray(shading.sh_irradiance(n, coeffs))  # float32 (x64 off)
  bound = K_ROUND * EPS32 * abs_terms(n, coeffs)
  np.testing.assert_array_less(np.abs(got - k_matrix_irradiance(n, coeffs)), bound)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sh_irradiance_matches_irradiance_integral(seed):
  """Funk-Hecke: the closed form equals the integral for radiance band-limited to order 2."""
  rng = np.random.default_rng(seed)
  coeffs = rng.normal(size=9)
  normals = random_unit(rng, (6,))
  got = np.asarray(shading.sh_irradiance(jnp.asarray(normals), jnp.asarray(coeffs)))
  want = np.array([quadrature_irradiance(n, coeffs) for n in normals])
  # Independent cause besides float32 rounding: C1..C5 and the basis constants of the quadrature
  # are each published to 6 digits, so every term of the closed form differs from the integral's
  # by at most max_k |C_k - C_k(basis)| / C_k relative (quadrature itself is exact in float64).
  consts = {C1: np.pi / 4 * 0.546274, C2: 2 * np.pi / 3 * 0.488603 / 2, C3: 3 * np.pi / 4 * 0.315392,
            C4: np.pi * 0.282095, C5: np.pi / 4 * 0.315392}
  rel_const = max(abs(c - exact) / c for c, exact in consts.items())
  assert rel_const < 5e-6  # 6-digit constants
  bound = (rel_const + K_ROUND * EPS32) * abs_terms(normals, coeffs)
  np.testing.assert_array_less(np.abs(got - want), bound)


def test_closed_forms_for_single_coefficients():
  rng = np.random.default_rng(3)
  n = random_unit(rng, (50,)).astype(np.float32)
  x, y, z = n[:, 0], n[:, 1], n[:, 2]

  def only(k, value=1.7):
    c = np.zeros(9, np.float32)
    c[k] = value
    return np.asarray(shading.sh_irradiance(n, c))

  # Both sides are float32; each single-coefficient term has |term| <= 1.7 * 2 * C2 < 4 for unit
  # n and <= 4 roundings on each side, so |difference| <= 8 eps32 * 4 (absolute; z*z - 1/3 and
  # x*x - y*y cancel, so no relative bound).
  tol = dict(rtol=0, atol=8 * EPS32 * 4)

  np.testing.assert_allclose(only(0), np.full(50, C4 * 1.7), **tol)
  np.testing.assert_allclose(only(1), 2 * C2 * 1.7 * y, **tol)
  np.testing.assert_allclose(only(2), 2 * C2 * 1.7 * z, **tol)
  np.testing.assert_allclose(only(3), 2 * C2 * 1.7 * x, **tol)
  np.testing.assert_allclose(only(4), 2 * C1 * 1.7 * x * y, **tol)
  np.testing.assert_allclose(only(5), 2 * C1 * 1.7 * y * z, **tol)
  np.testing.assert_allclose(only(6), 1.7 * (C3 * z * z - C5), **tol)
  np.testing.assert_allclose(only(7), 2 * C1 * 1.7 * x * z, **tol)
  np.testing.assert_allclose(only(8), C1 * 1.7 * (x * x - y * y), **tol)


def test_constants_match_sh_normalisation():
  """c_i from the SH normalisations and the clamped-cosine band factors pi, 2pi/3, pi/4."""
  np.testing.assert_allclose(shading.C1, np.pi / 4 * 0.546274, atol=1e-6)
  np.testing.assert_allclose(shading.C2, 2 * np.pi / 3 * 0.488603 / 2, atol=1e-6)
  np.testing.assert_allclose(shading.C3, 3 * np.pi / 4 * 0.315392, atol=1e-6)
  np.testing.assert_allclose(shading.C4, np.pi * 0.282095, atol=1e-6)
  np.testing.assert_allclose(shading.C5, np.pi / 4 * 0.315392, atol=1e-6)


def test_shading_target_is_clamped_colour_mean():
  rng = np.random.default_rng(4)
  n = random_unit(rng, (3, 4, 5))  # (B, H, W, 3)
  lights = rng.normal(size=(3, 3, 9))
  per_colour = np.stack(
      [k_matrix_irradiance(n, lights[:, None, None, c, :]) for c in range(3)], -1)
  want = np.maximum(per_colour.mean(-1), 0.0)
  assert (want == 0).any() and (want > 0).any()  # Both branches of the clamp are exercised.
  got = np.asarray(jax.jit(shading.shading_target)(n.astype(np.float32),
                                                   lights.astype(np.float32)))
  assert got.shape == (3, 4, 5) and got.dtype == np.float32
  # max(0, .) is 1-Lipschitz, so the float32 rounding bound of the mean irradiance applies.
  bound = K_ROUND * EPS32 * abs_terms(n, np.abs(lights).mean(-2)[:, None, None, :])
  np.testing.assert_array_less(np.abs(got - want), bound)
  got_np = shading.shading_target_numpy(n.astype(np.float32), lights.astype(np.float32))
  assert got_np.dtype == np.float32
  np.testing.assert_array_less(np.abs(got_np - want), bound)


def test_shading_target_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"\(\.\.\., 3, 9\)"):
    shading.shading_target(jnp.zeros((4, 4, 3)), jnp.zeros((3, 8)))
  with pytest.raises(ValueError, match="normals"):
    shading.sh_irradiance(jnp.zeros((4, 2)), jnp.zeros(9))
  with pytest.raises(ValueError, match=r"\(\.\.\., 3, 9\)"):
    shading.shading_target_numpy(np.zeros((4, 4, 3)), np.zeros((9, 3)))


def test_decode_normals():
  v = np.array([[0.5, 0.5, 1.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.5], [0.6, 0.5, 0.5]], np.float32)
  np.testing.assert_allclose(np.asarray(shading.decode_normals(v)),
                             [[0, 0, 1], [-1, 0, 0], [0, 0, 0], [0.2, 0, 0]], atol=1e-6)
  unit = np.asarray(shading.decode_normals(v, renormalize=True))
  np.testing.assert_allclose(unit, [[0, 0, 1], [-1, 0, 0], [0, 0, 0], [1, 0, 0]], atol=1e-6)


def test_gradients_are_finite_and_correct():
  rng = np.random.default_rng(5)
  n = random_unit(rng, (2, 3, 3)).astype(np.float32)
  lights = rng.normal(size=(2, 3, 9)).astype(np.float32)
  jtu.check_grads(jax.jit(shading.sh_irradiance), (n[0, 0], lights[0, 0]), order=1,
                  modes=["fwd", "rev"], atol=2e-2, rtol=2e-2)
  g_n, g_l = jax.jit(jax.grad(lambda a, b: jnp.sum(shading.shading_target(a, b)), (0, 1)))(
      n, lights)
  assert np.isfinite(g_n).all() and np.isfinite(g_l).all()
  assert np.abs(g_l).sum() > 0
  # Renormalised decoding of a zero-length normal (v = 0.5) keeps finite gradients.
  enc = jnp.full((2, 3), 0.5).at[1].set(jnp.array([0.9, 0.2, 0.7]))
  g = jax.jit(jax.grad(lambda e: jnp.sum(shading.decode_normals(e, renormalize=True))))(enc)
  assert np.isfinite(g).all()
