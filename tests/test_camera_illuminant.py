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
  exact = np.asarray(physics.raw_to_xyz(spectra, b, mode="exact"))
  table = np.asarray(spectra.tmatrix).reshape(128, 128, 3, 3).transpose(0, 1, 3, 2)
  np.testing.assert_allclose(exact, table, atol=1e-6)  # spec: 2.5e-7 in float64


def test_raw_to_xyz_float64_reference_and_table_lookup(spectra):
  rng = np.random.default_rng(1)
  for b in rng.uniform(-3, 3, size=(5, 2)):
    expected = ref.t_matrix(b)
    np.testing.assert_allclose(physics.raw_to_xyz(spectra, b), expected, atol=2e-5)
    # Table interpolation error between nodes (spec: 3.7e-5 corner-aligned).
    np.testing.assert_allclose(physics.raw_to_xyz(spectra, b, mode="table"), expected, atol=2e-4)
  # Swapped b axes would be far off (spec: 0.24 max).
  b = np.array([2.5, -2.0])
  assert np.abs(ref.t_matrix(b[::-1]) - np.asarray(physics.raw_to_xyz(spectra, b, "table"))).max() > 0.01


def test_white_point(spectra):
  t = physics.raw_to_xyz(spectra, jnp.zeros(2))
  np.testing.assert_allclose(t.sum(axis=-1), [0.3253, 0.3425, 0.3723], atol=1e-6)
  srgb = physics.xyz_to_linear_srgb(t @ jnp.ones(3))
  np.testing.assert_allclose(srgb, [0.342, 0.343, 0.342], atol=1e-3)


def test_sensitivity_relu_and_reference(spectra):
  s = np.asarray(physics.camera_sensitivity(spectra, jnp.array([2.9, -2.9])))
  np.testing.assert_allclose(s, ref.sensitivity([2.9, -2.9]), atol=1e-7)
  assert s.min() == 0.0  # the ReLU is active somewhere at this extreme
  with pytest.raises(ValueError, match=r"b must have shape \(..., 2\)"):
    physics.camera_sensitivity(spectra, jnp.zeros(3))


def test_illuminant_mixture_and_interpolation(spectra):
  rng = np.random.default_rng(2)
  w = rng.dirichlet(np.ones(14))
  for t in (1.0, 4.3, 21.7, 22.0):
    np.testing.assert_allclose(physics.illuminant(spectra, w, t), ref.illuminant(w, t),
                               rtol=1e-5, atol=1e-8)
  e = physics.illuminant(spectra, w, 7.5)
  np.testing.assert_allclose(float(e.sum()), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match=r"\(\.\.\., 14\)"):
    physics.illuminant(spectra, np.ones(15) / 15, 3.0)


def test_every_illuminant_has_red_light(spectra):
  # bznick98's bug left bands 620..720 nm of every D illuminant at zero.
  assert float(spectra.illum_d[:, 22:].min()) > 0.01


def test_continuous_daylight_matches_colour_science(spectra):
  lam = np.arange(400, 721, 10)
  for cct in (4000.0, 5003.0, 6504.0, 7000.0, 9300.0, 25000.0):
    xy = colour.temperature.CCT_to_xy_CIE_D(cct)
    sd = colour.sd_CIE_illuminant_D_series(xy)
    expected = np.interp(lam, sd.wavelengths, sd.values)
    got = np.asarray(physics.daylight_cie(spectra, cct))
    np.testing.assert_allclose(got, expected / expected.sum(), rtol=2e-3, atol=1e-6)
  # And it agrees with the table at the table's nodes (to the table's own CIE error).
  np.testing.assert_allclose(physics.daylight_cie(spectra, 6000.0),
                             physics.daylight_table(spectra, 3.0), rtol=3e-3, atol=3e-5)


def test_continuous_daylight_is_smooth_in_t(spectra):
  g = jax.grad(lambda t: physics.illuminant(spectra, jnp.eye(14)[1], t, daylight="cie")[25])
  values = [float(g(t)) for t in np.linspace(1.2, 21.8, 9)]
  assert all(np.isfinite(values))
