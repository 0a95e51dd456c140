"""Skin model and lookup table against the published spot values and a float64 transcription."""

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics
from tests import numpy_reference as ref

BANDS = [0, 10, 15, 20, 30]  # 400, 500, 550, 600, 700 nm
EPS32 = float(np.finfo(np.float32).eps)

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
    # The README prints these to 3 decimals (half a unit: 5e-4); the float32 table adds
    # <= 64 eps32 (rounding of the float32 skin model, values <= 1). One exception: README
    # (255, 0) at 550 nm prints 0.003, but the float64 transcription (tests/numpy_reference.py
    # reflectance(0.43e-6, 0.07)) gives 0.002459, which rounds to 0.002: the README entry is off
    # by one unit of its last digit, so that entry gets a whole unit (1e-3).
    atol = np.full(len(BANDS), 5e-4 + 64 * EPS32)
    if (r, c) == (255, 0):
      atol[BANDS.index(15)] = 1e-3 + 64 * EPS32
    np.testing.assert_array_less(np.abs(np.asarray(lut[r, c, BANDS]) - expected), atol)
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
  # -1 and +1 are the first and last nodes exactly: positions 0 and 255 and weights 0 and 1 are
  # exact in float32, and (1 - w) a + w b with w in {0, 1} is exact, so equality is bitwise.
  np.testing.assert_array_equal(physics.skin_reflectance(lut, -1.0, -1.0), lut[0, 0])
  np.testing.assert_array_equal(physics.skin_reflectance(lut, 1.0, 1.0), lut[255, 255])
  np.testing.assert_array_equal(physics.skin_reflectance(lut, 1.0, -1.0), lut[0, 255])
  # Midway between nodes 3 and 4 of melanin, on blood node 7.
  fmel = (3.5 / 255) * 2 - 1
  fblood = (7 / 255) * 2 - 1
  # fmel rounded to float32 and (f + 1) / 2 * 255 move the column by <= 4 * 255 eps32 (4
  # roundings of a value <= 255), i.e. the weight 0.5 by that much; plus 8 eps32 of the values.
  a, b = np.asarray(lut[7, 3]), np.asarray(lut[7, 4])
  bound = 4 * 255 * EPS32 * (np.abs(a - b) + np.abs(np.asarray(lut[8, 4]) - b)) + 8 * EPS32 * (a + b)
  np.testing.assert_array_less(
      np.abs(physics.skin_reflectance(lut, fmel, fblood) - 0.5 * (a + b)), bound)


def test_bilinear_matches_reference_at_random_points(lut):
  rng = np.random.default_rng(0)
  f = rng.uniform(-1, 1, size=(20, 2))
  got = np.asarray(physics.skin_reflectance(lut, f[:, 0], f[:, 1]))
  table = np.asarray(lut, dtype=np.float64)
  for k, (fm, fb) in enumerate(f):
    # float32 vs float64 coordinates: the float32 position (f rounded, then (f + 1) / 2 * 255)
    # is off by <= 4 * 255 eps32 along each axis, which moves the sample by that times the
    # table's step across the cell; the 6 float32 operations of the blend add 8 eps32 |values|.
    r, c = ((np.array([fb, fm]) + 1) / 2 * 255)
    r0, c0 = min(int(r), 254), min(int(c), 254)
    cell = table[r0:r0 + 2, c0:c0 + 2]
    step = np.abs(np.diff(cell, axis=0)).max((0, 1)) + np.abs(np.diff(cell, axis=1)).max((0, 1))
    bound = 4 * 255 * EPS32 * step + 8 * EPS32 * np.abs(cell).max((0, 1))
    np.testing.assert_array_less(np.abs(got[k] - ref.bilinear(table, fb, fm)), bound)


def test_out_of_range_coordinates_clamp(lut):
  # Clamped to the corner node exactly (see test_bilinear_is_corner_aligned): bitwise.
  np.testing.assert_array_equal(physics.skin_reflectance(lut, 3.0, -7.0), lut[0, 255])


def test_network_fraction_mapping_matches_spec_table():
  # spec 1.6: f = 0 -> 5.5 % melanin, 0.90 % blood; f = 0.5 -> 18.3 %, 2.98 %; f = 1 -> 43 %, 7 %.
  mel, hb = physics.network_to_fractions(jnp.array([-1.0, 0.0, 0.5, 1.0]),
                                         jnp.array([-1.0, 0.0, 0.5, 1.0]))
  # Against the spec's numbers at their printed precision (half a unit of the last digit) ...
  half_unit = np.array([[0.005e-6, 0.0005, 0.0005, 0.005], [0.005e-6, 0.00005, 0.00005, 0.005]])
  np.testing.assert_array_less(np.abs(np.asarray(mel) - [0.43e-6, 0.055, 0.183, 0.43]),
                               half_unit[0])
  np.testing.assert_array_less(np.abs(np.asarray(hb) - [0.07e-6, 0.0090, 0.0298, 0.07]),
                               half_unit[1])
  # ... and against the closed form in float64: positive terms, <= 8 float32 roundings.
  u = 0.01 + 0.99 * (np.array([-1.0, 0.0, 0.5, 1.0]) + 1) / 2
  np.testing.assert_allclose(mel, 0.43 * u**3, rtol=8 * EPS32)
  np.testing.assert_allclose(hb, 0.07 * u**3, rtol=8 * EPS32)
  # Round trip: the fractions carry <= 8 eps32 relative error, the cube root divides it by 3
  # and adds 2 roundings, and f = 2 (u - 0.01) / 0.99 - 1 amplifies u's error by 2 / 0.99 and
  # adds <= 4 roundings of values <= 2: |df| <= 32 eps32.
  fm, fb = physics.fractions_to_network(mel, hb)
  np.testing.assert_allclose(fm, [-1, 0, 0.5, 1], rtol=0, atol=32 * EPS32)
  np.testing.assert_allclose(fb, [-1, 0, 0.5, 1], rtol=0, atol=32 * EPS32)
