"""Display conversions against colour-science and closed forms."""

import colour
import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics


def test_srgb_curve_matches_colour_science_including_toe():
  x = np.concatenate([np.linspace(0, 0.01, 50), np.linspace(0.01, 1, 200)])
  np.testing.assert_allclose(physics.srgb_encode(x), colour.models.eotf_inverse_sRGB(x), atol=2e-6)
  v = np.linspace(0, 1, 200)
  np.testing.assert_allclose(physics.srgb_decode(v), colour.models.eotf_sRGB(v), atol=2e-6)
  np.testing.assert_allclose(physics.srgb_decode(physics.srgb_encode(x)), x, atol=2e-6)
  assert float(physics.srgb_encode(0.0)) == 0.0  # bznick98's curve gives -0.055 here


def test_gradients_finite_at_zero():
  for f in (physics.srgb_encode, physics.srgb_decode, physics.gamma_encode, physics.gamma_decode):
    g = jax.grad(lambda x, f=f: f(x))(0.0)
    assert np.isfinite(float(g))
  np.testing.assert_allclose(jax.grad(physics.srgb_encode)(0.0), 12.92, rtol=1e-6)


def test_power_gamma_and_uint8():
  x = np.linspace(0, 1, 11)
  np.testing.assert_allclose(physics.gamma_decode(x), x**2.2, rtol=1e-6)
  np.testing.assert_allclose(physics.gamma_encode(x**2.2), x, atol=1e-6)
  codes = np.arange(256)
  linear = colour.models.eotf_sRGB(codes / 255.0)  # independent decoder
  np.testing.assert_array_equal(physics.to_uint8(linear), codes)
  np.testing.assert_array_equal(physics.to_uint8(np.array([-1.0, 2.0])), [0, 255])


def test_xyz_to_srgb_row_layout_and_relu():
  # R = 3.2406 X - 1.5372 Y - 0.4986 Z (the usual row layout, not the transpose).
  xyz = jnp.array([1.0, 0.0, 0.0])
  np.testing.assert_allclose(physics.xyz_to_linear_srgb(xyz), [3.2406, 0.0, 0.0557], rtol=1e-6)
