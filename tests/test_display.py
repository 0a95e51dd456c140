"""Display conversions against colour-science and closed forms."""

import colour
import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics

EPS32 = float(np.finfo(np.float32).eps)


def _pow_bound(base, exponent, scale):
  """float32 base**exponent = exp(exponent log base) vs float64: log's ulp error is amplified by
  |exponent log base|, exp, the product and the input rounding add a few ulp: times `scale`."""
  log = np.abs(np.log(np.maximum(np.asarray(base, np.float64), 1e-30)))
  return (16 + 2 * abs(exponent) * log) * EPS32 * scale


def test_srgb_curve_matches_colour_science_including_toe():
  x = np.concatenate([np.linspace(0, 0.01, 50), np.linspace(0.01, 1, 200)])
  # float32 vs colour-science's float64: the power branch 1.055 p - 0.055 with p = x**(1/2.4)
  # (bound from _pow_bound, plus the product and difference: scale 1.055 p + 0.055); the linear
  # toe 12.92 x (2 roundings) is far inside that bound.
  enc_bound = _pow_bound(x, 1 / 2.4, 1.055 * x ** (1 / 2.4) + 0.055)
  np.testing.assert_array_less(np.abs(physics.srgb_encode(x) - colour.models.eotf_inverse_sRGB(x)),
                               enc_bound)
  v = np.linspace(0, 1, 200)
  decoded = colour.models.eotf_sRGB(v)
  dec_bound = _pow_bound((v + 0.055) / 1.055, 2.4, np.maximum(decoded, v / 12.92)) + 1e-30
  np.testing.assert_array_less(np.abs(physics.srgb_decode(v) - decoded), dec_bound)
  # Round trip: the encode error passes through decode's slope (<= 2.4 / 1.055 < 2.3).
  round_trip = _pow_bound((np.asarray(physics.srgb_encode(x)) + 0.055) / 1.055, 2.4,
                          np.maximum(x, 1e-3 / 12.92)) + 2.3 * enc_bound
  np.testing.assert_array_less(np.abs(physics.srgb_decode(physics.srgb_encode(x)) - x), round_trip)
  assert float(physics.srgb_encode(0.0)) == 0.0  # bznick98's curve gives -0.055 here


def test_gradients_finite_at_zero():
  for f in (physics.srgb_encode, physics.srgb_decode, physics.gamma_encode, physics.gamma_decode):
    g = jax.grad(lambda x, f=f: f(x))(0.0)
    assert np.isfinite(float(g))
  # The toe slope 12.92 as a float32 constant: <= eps32 / 2 relative.
  np.testing.assert_allclose(jax.grad(physics.srgb_encode)(0.0), 12.92, rtol=EPS32)


def test_power_gamma_and_uint8():
  x = np.linspace(0, 1, 11)
  np.testing.assert_array_less(np.abs(physics.gamma_decode(x) - x**2.2),
                               _pow_bound(x, 2.2, x**2.2) + 1e-30)
  np.testing.assert_array_less(np.abs(physics.gamma_encode(x**2.2) - x),
                               _pow_bound(x**2.2, 1 / 2.2, x) + 1e-30)
  codes = np.arange(256)
  linear = colour.models.eotf_sRGB(codes / 255.0)  # independent decoder
  np.testing.assert_array_equal(physics.to_uint8(linear), codes)
  np.testing.assert_array_equal(physics.to_uint8(np.array([-1.0, 2.0])), [0, 255])


def test_xyz_to_srgb_row_layout_and_relu():
  # R = 3.2406 X - 1.5372 Y - 0.4986 Z (the usual row layout, not the transpose).
  xyz = jnp.array([1.0, 0.0, 0.0])
  # Products with 1 and 0 and sums with 0 are exact: only the float32 constants round.
  np.testing.assert_allclose(physics.xyz_to_linear_srgb(xyz), [3.2406, 0.0, 0.0557], rtol=EPS32)
