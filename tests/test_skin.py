"""Skin model and lookup table against the published spot values and a float64 transcription."""

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics
from tests import numpy_reference as ref

BANDS = [0, 10, 15, 20, 30]  # 400, 500, 550, 600, 700 nm

# ../shared/spectra/README.md, "Skin LUT entries".
SPOT_VALUES = {
    (0, 0): [0.587, 0.803, 0.830, 0.831, 0.803],
    (255, 0): [0.000, 0.047, 0.003, 0.386, 0.729],
    (0, 255): [0.000, 0.001, 0.005, 0.020, 0.101],
    (128, 128): [0.0015, 0.204, 0.175, 0.455, 0.605],
}


def test_lut_spot_values_and_orientation(lut):
  assert lut.shape == (256, 256, 33)
  for (r, c), expected in SPOT_VALUES.items():
    np.testing.assert_allclose(np.asarray(lut[r, c, BANDS]), expected, atol=6e-4)
  # Rows are blood: more blood darkens green (550 nm) far more than red (700 nm).
  assert lut[255, 0, 15] < 0.01 < lut[255, 0, 30]


def test_lut_equals_literal_float64_model():
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    table = np.asarray(physics.skin_lut(spectra, size=5))
  expected = ref.lut(5)
  np.testing.assert_allclose(table, expected, rtol=1e-12, atol=1e-15)


def test_no_overflow_far_outside_table_range(spectra):
  r = physics.skin_model(spectra, jnp.array(0.0), jnp.array(1.0))  # all blood
  assert np.all(np.isfinite(np.asarray(r))) and float(r.max()) < 1.0


def test_bilinear_is_corner_aligned(lut):
  # -1 and +1 are the first and last nodes exactly.
  np.testing.assert_allclose(physics.skin_reflectance(lut, -1.0, -1.0), lut[0, 0], rtol=1e-6)
  np.testing.assert_allclose(physics.skin_reflectance(lut, 1.0, 1.0), lut[255, 255], rtol=1e-6)
  np.testing.assert_allclose(physics.skin_reflectance(lut, 1.0, -1.0), lut[0, 255], rtol=1e-6)
  # Midway between nodes 3 and 4 of melanin, on blood node 7.
  fmel = (3.5 / 255) * 2 - 1
  fblood = (7 / 255) * 2 - 1
  np.testing.assert_allclose(physics.skin_reflectance(lut, fmel, fblood),
                             0.5 * (lut[7, 3] + lut[7, 4]), rtol=1e-4)


def test_bilinear_matches_reference_at_random_points(lut):
  rng = np.random.default_rng(0)
  f = rng.uniform(-1, 1, size=(20, 2))
  got = np.asarray(physics.skin_reflectance(lut, f[:, 0], f[:, 1]))
  table = np.asarray(lut, dtype=np.float64)
  for k, (fm, fb) in enumerate(f):
    np.testing.assert_allclose(got[k], ref.bilinear(table, fb, fm), rtol=2e-5, atol=1e-7)


def test_out_of_range_coordinates_clamp(lut):
  np.testing.assert_allclose(physics.skin_reflectance(lut, 3.0, -7.0), lut[0, 255], rtol=1e-6)


def test_network_fraction_mapping_matches_spec_table():
  # spec 1.6: f = 0 -> 5.5 % melanin, 0.90 % blood; f = 0.5 -> 18.3 %, 2.98 %; f = 1 -> 43 %, 7 %.
  mel, hb = physics.network_to_fractions(jnp.array([-1.0, 0.0, 0.5, 1.0]),
                                         jnp.array([-1.0, 0.0, 0.5, 1.0]))
  np.testing.assert_allclose(mel, [0.43e-6, 0.0553, 0.183, 0.43], rtol=0.01)
  np.testing.assert_allclose(hb, [0.07e-6, 0.0090, 0.0298, 0.07], rtol=0.01)
  fm, fb = physics.fractions_to_network(mel, hb)
  np.testing.assert_allclose(fm, [-1, 0, 0.5, 1], atol=1e-5)
  np.testing.assert_allclose(fb, [-1, 0, 0.5, 1], atol=1e-5)
