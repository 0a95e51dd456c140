"""Camera model, RAW->XYZ and illuminant mixture against the authors' table and references."""

import colour
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import physics
from tests import numpy_reference as ref


def test_exact_raw_to_xyz_reproduces_authors_tmatrix_at_every_node(spectra):
  grid = np.linspace(-3, 3, 128)
  b = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1)
  # In float64 the closed form reproduces the (float32-stored) table to the README's printed
  # max 2.5e-7 (< 2.55e-7 at 2 digits); float64 rounding of the closed form adds < 1e-12.
  with jax.enable_x64(True):
    exact = np.asarray(physics.raw_to_xyz(physics.load_spectra(), b, mode="exact"))
  assert exact.dtype == np.float64
  table = np.asarray(spectra.tmatrix).reshape(128, 128, 3, 3).transpose(0, 1, 3, 2)
  np.testing.assert_allclose(exact, table, rtol=0, atol=2.55e-7 + 1e-12)


def test_raw_to_xyz_float64_reference_and_table_lookup(spectra):
  rng = np.random.default_rng(1)
  eps32 = float(np.finfo(np.float32).eps)
  grid = np.linspace(-3, 3, 128)
  with jax.enable_x64(True):
    spectra64 = physics.load_spectra()
  for b in rng.uniform(-3, 3, size=(5, 2)):
    expected = ref.t_matrix(b)
    s = ref.sensitivity(b)
    cond = np.linalg.cond(s @ s.T)
    # Normal equations: a relative perturbation d of S S^T and S C moves T by <= cond * d |T|;
    # 33-term float32 sums, the 3x3 solve and the row rescaling give d <= 48 eps (float32 path)
    # and the same rule with eps64 for the float64 path (the real check of the formula).
    with jax.enable_x64(True):
      np.testing.assert_allclose(physics.raw_to_xyz(spectra64, b), expected, rtol=0,
                                 atol=48 * cond * np.finfo(np.float64).eps * np.abs(expected).max())
    np.testing.assert_allclose(physics.raw_to_xyz(spectra, b), expected, rtol=0,
                               atol=48 * cond * eps32 * np.abs(expected).max())
    # The lookup equals float64 bilinear interpolation of the closed form at the 4 corner nodes,
    # to the table's float32 storage error (README: 2.5e-7 vs the closed form) + 8 eps32 |T|.
    r, c = (np.clip(np.floor((b + 3) / 6 * 127), 0, 126)).astype(int)
    fr, fc = (b + 3) / 6 * 127 - np.array([r, c])
    nodes = [[ref.t_matrix(np.array([grid[i], grid[j]])) for j in (c, c + 1)] for i in (r, r + 1)]
    bilinear = ((1 - fr) * ((1 - fc) * nodes[0][0] + fc * nodes[0][1])
                + fr * ((1 - fc) * nodes[1][0] + fc * nodes[1][1]))
    table = physics.raw_to_xyz(spectra, b, mode="table")
    np.testing.assert_allclose(table, bilinear, rtol=0,
                               atol=2.5e-7 + 8 * eps32 * np.abs(expected).max())
    # Against the exact T the difference is the interpolation error, whose maximum the README
    # prints as 3.7e-5 (so < 3.75e-5), plus the lookup bound above.
    np.testing.assert_allclose(table, expected, rtol=0, atol=3.75e-5 + 2.5e-7 + 8 * eps32 * np.abs(expected).max())
  # Swapped b axes would be far off (spec: 0.24 max).
  b = np.array([2.5, -2.0])
  assert np.abs(ref.t_matrix(b[::-1]) - np.asarray(physics.raw_to_xyz(spectra, b, "table"))).max() > 0.01


def test_white_point(spectra):
  t = physics.raw_to_xyz(spectra, jnp.zeros(2))
  # Rows are rescaled to these sums: float32 rescale + 3-term sum, <= 8 eps32 of values < 1.
  eps32 = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(t.sum(axis=-1), [0.3253, 0.3425, 0.3723], rtol=0, atol=8 * eps32)
  srgb = physics.xyz_to_linear_srgb(t @ jnp.ones(3))
  # The spec prints the white as (0.342, 0.343, 0.342): half a unit of the 3rd decimal.
  np.testing.assert_allclose(srgb, [0.342, 0.343, 0.342], rtol=0, atol=5e-4 + 16 * eps32)


def test_sensitivity_relu_and_reference(spectra):
  s = np.asarray(physics.camera_sensitivity(spectra, jnp.array([2.9, -2.9])))
  # float32 ReLU(PC b + mu): 2-term dot product + add, <= 8 eps32 * (|PC| |b| + |mu|).
  mu, pcs, _ = ref.camera_basis()
  scale = (np.abs(pcs) @ np.array([2.9, 2.9]) + np.abs(mu)).reshape(3, 33)
  np.testing.assert_array_less(np.abs(s - ref.sensitivity([2.9, -2.9])),
                               8 * np.finfo(np.float32).eps * scale + 1e-30)
  assert s.min() == 0.0  # the ReLU is active somewhere at this extreme
  with pytest.raises(ValueError, match=r"b must have shape \(..., 2\)"):
    physics.camera_sensitivity(spectra, jnp.zeros(3))


def test_illuminant_mixture_and_interpolation(spectra):
  rng = np.random.default_rng(2)
  w = rng.dirichlet(np.ones(14))
  for t in (1.0, 4.3, 21.7, 22.0):
    # float32 vs float64: all terms are positive (convex mixture of positive spectra), so the
    # error is relative: <= ~50 roundings (table storage, 2 normalisations of 33-term sums, the
    # interpolation, a 14-term mixture), rtol = 64 eps32.
    np.testing.assert_allclose(physics.illuminant(spectra, w, t), ref.illuminant(w, t),
                               rtol=64 * np.finfo(np.float32).eps, atol=0)
  e = physics.illuminant(spectra, w, 7.5)
  # Sum of 33 positive float32 values normalised to 1: <= 40 roundings.
  np.testing.assert_allclose(float(e.sum()), 1.0, rtol=40 * np.finfo(np.float32).eps)
  with pytest.raises(ValueError, match=r"\(\.\.\., 14\)"):
    physics.illuminant(spectra, np.ones(15) / 15, 3.0)


def test_every_illuminant_has_red_light(spectra):
  # bznick98's bug left bands 620..720 nm of every D illuminant at zero.
  assert float(spectra.illum_d[:, 22:].min()) > 0.01


def test_continuous_daylight_matches_colour_science():
  # Compared in float64 against colour-science's D series without its 3-decimal rounding of M1
  # and M2 (that rounding is CIE 015's convention, not ours). Same formula and basis, so the rule
  # is float64 rounding: ~10 operations per band, 1e-12 relative leaves a 1e3 margin.
  lam = np.arange(400, 721, 10)
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    for cct in (4000.0, 5003.0, 6504.0, 7000.0, 9300.0, 25000.0):
      xy = colour.temperature.CCT_to_xy_CIE_D(cct)
      sd = colour.sd_CIE_illuminant_D_series(xy, M1_M2_rounding=False)
      expected = np.interp(lam, sd.wavelengths, sd.values)
      got = np.asarray(physics.daylight_cie(spectra, cct))
      assert got.dtype == np.float64
      np.testing.assert_allclose(got, expected / expected.sum(), rtol=1e-12, atol=0)
    # And it agrees with the authors' table at its nodes (same formula, nominal CCT): the table
    # was computed and stored in float32 (README), so the bound is float32 rounding of
    # S0 + M1 S1 + M2 S2: 32 eps32 (|S0| + |M1 S1| + |M2 S2|) / sum(spd) per band.
    x, y = (float(v) for v in physics.illumination.daylight_chromaticity(6000.0))
    m = 0.0241 + 0.2562 * x - 0.7341 * y
    m1, m2 = (-1.3515 - 1.7703 * x + 5.9114 * y) / m, (0.0300 - 31.4424 * x + 30.0717 * y) / m
    s0, s1, s2 = np.asarray(spectra.daylight_basis)
    scale = (np.abs(s0) + abs(m1) * np.abs(s1) + abs(m2) * np.abs(s2)) / np.sum(s0 + m1 * s1 + m2 * s2)
    np.testing.assert_array_less(
        np.abs(np.asarray(physics.daylight_cie(spectra, 6000.0))
               - np.asarray(physics.daylight_table(spectra, 3.0))),
        32 * np.finfo(np.float32).eps * scale)


def test_continuous_daylight_is_smooth_in_t(spectra):
  g = jax.grad(lambda t: physics.illuminant(spectra, jnp.eye(14)[1], t, daylight="cie")[25])
  values = [float(g(t)) for t in np.linspace(1.2, 21.8, 9)]
  assert all(np.isfinite(values))
