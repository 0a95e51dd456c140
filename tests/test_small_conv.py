"""Tiny-image convolution as one matrix product == lax.conv_general_dilated (value, gradients),
for stride 1 (`small_conv`) and for strided convolutions with tiny outputs (`patch_conv`).

Reference: XLA's convolution, an independent formulation. float64 must agree to ~1e-12 (the
same products, another summation order); the float32 bound is 4 n eps max(sum |terms|) with n
the products per entry (docstring of tests/test_subpixel.py).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bioface_jax.models import small_conv

_DN = ("NHWC", "HWIO", "NHWC")


def _lax(x, k, pad):
  return lax.conv_general_dilated(x, k, (1, 1), pad, dimension_numbers=_DN)


def _ours(x, k, pad):
  return small_conv.conv_general_dilated(x, k, (1, 1), pad, dimension_numbers=_DN)


@jax.jit(static_argnames=("fn", "pad"))
def _with_grads(fn, x, k, g, pad):
  y, vjp = jax.vjp(lambda a, b: fn(a, b, pad), x, k)
  return (y,) + vjp(g)


def _assert_within_rounding(fn, ref, x, kern, g, pad, counts):
  """fn's value and both gradients equal ref's in float32 within 4 n eps max(sum |terms|),
  n = counts[i] products per entry (forward, input gradient, kernel gradient)."""
  got = _with_grads(fn, x, kern, g, pad)
  want = _with_grads(ref, x, kern, g, pad)
  abs_terms = _with_grads(ref, np.abs(x), np.abs(kern), np.abs(g), pad)
  for a, b, n, t in zip(got, want, counts, abs_terms):
    bound = 4 * n * 2.0 ** -24 * float(np.max(t))
    np.testing.assert_allclose(a, b, rtol=0, atol=bound)
    assert bound < 1e-3 * float(np.max(np.abs(b)))


# The face VAE's 2x2 and 1x1 stages (3x3 SAME), a 3x3 image, VALID / asymmetric padding.
CASES = [((2, 2), 3, "SAME"), ((1, 1), 3, "SAME"), ((3, 3), 3, "SAME"),
         ((2, 2), 2, "VALID"), ((2, 3), 3, ((2, 0), (1, 1)))]


@pytest.mark.parametrize("hw,k,pad", CASES)
def test_float64_equals_lax(hw, k, pad):
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    x = rng.normal(size=(3,) + hw + (4,))
    kern = rng.normal(size=(k, k, 4, 5))
    assert small_conv.is_small(x.shape, kern.shape)
    g = rng.normal(size=jax.eval_shape(lambda: _lax(x, kern, pad)).shape)
    for a, b in zip(_with_grads(_ours, x, kern, g, pad), _with_grads(_lax, x, kern, g, pad)):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_float32_within_rounding_and_flax_hook():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 2, 2, 8)).astype(np.float32)
  kern = rng.normal(size=(3, 3, 8, 6)).astype(np.float32)
  g = rng.normal(size=(4, 2, 2, 6)).astype(np.float32)
  _assert_within_rounding(_ours, _lax, x, kern, g, "SAME", (9 * 8, 9 * 6, 4 * 4))
  # As flax's conv_general_dilated: same parameters, same outputs as the plain nn.Conv.
  ref_conv = nn.Conv(6, (3, 3), padding="SAME")
  our_conv = nn.Conv(6, (3, 3), padding="SAME",
                     conv_general_dilated=small_conv.conv_general_dilated)
  params = {"params": {"kernel": kern, "bias": rng.normal(size=6).astype(np.float32)}}
  np.testing.assert_allclose(jax.jit(our_conv.apply)(params, x),
                             jax.jit(ref_conv.apply)(params, x), rtol=0, atol=1e-5)


# LCNet's classifier (3x3, stride 2, PyTorch padding 1: 4x4 -> 2x2 -> 1x1 -> 1x1), SAME with
# unequal strides, VALID, a 4x4 kernel at stride 3, and negative (cropping) padding.
_PT1 = ((1, 1), (1, 1))
STRIDED = [((4, 4), 3, (2, 2), _PT1), ((2, 2), 3, (2, 2), _PT1), ((1, 1), 3, (2, 2), _PT1),
           ((5, 3), 3, (2, 3), "SAME"), ((4, 4), 2, (2, 2), "VALID"),
           ((6, 6), 4, (3, 3), ((1, 2), (0, 1))), ((3, 5), 3, (2, 1), ((2, 0), (-1, 1)))]


def _strided(fn, strides):
  return lambda a, b, pad: fn(a, b, strides, pad)


def _lax_strided(x, k, strides, pad):
  return lax.conv_general_dilated(x, k, strides, pad, dimension_numbers=_DN)


def _ours_strided(x, k, strides, pad):
  return small_conv.conv_general_dilated(x, k, strides, pad, dimension_numbers=_DN)


@pytest.mark.parametrize("hw,k,strides,pad", STRIDED)
def test_strided_float64_equals_lax(hw, k, strides, pad):
  rng = np.random.default_rng(2)
  with jax.enable_x64(True):
    x = rng.normal(size=(3,) + hw + (4,))
    kern = rng.normal(size=(k, k, 4, 5))
    assert small_conv.is_small_output(x.shape, kern.shape, strides, pad)
    ours, ref = _strided(_ours_strided, strides), _strided(_lax_strided, strides)
    g = rng.normal(size=jax.eval_shape(lambda: ref(x, kern, pad)).shape)
    for a, b in zip(_with_grads(ours, x, kern, g, pad), _with_grads(ref, x, kern, g, pad)):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_strided_float32_within_rounding_and_no_xla_convolution():
  """LCNet's k2 layer shape (channels scaled down): float32 within the summation-order bound,
  and the drop-in really takes the patch path (no convolution left in the program)."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(4, 4, 4, 16)).astype(np.float32)
  kern = rng.normal(size=(3, 3, 16, 8)).astype(np.float32)
  g = rng.normal(size=(4, 2, 2, 8)).astype(np.float32)
  ours, ref = _strided(_ours_strided, (2, 2)), _strided(_lax_strided, (2, 2))
  # products per entry: forward 9 taps x 16 channels; input grad <= 4 taps x 8; kernel grad
  # 4 images x 2 x 2 output pixels.
  _assert_within_rounding(ours, ref, x, kern, g, _PT1, (9 * 16, 4 * 8, 4 * 4))
  jaxpr = str(jax.make_jaxpr(lambda a, b: ours(a, b, _PT1))(x, kern))
  assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr


def test_other_convolutions_fall_back_to_lax():
  x = jnp.ones((1, 7, 7, 2))
  k = jnp.ones((3, 3, 2, 3))
  assert not small_conv.is_small(x.shape, k.shape)
  assert not small_conv.is_small_output(x.shape, k.shape, (2, 2), "SAME")  # 4x4 > 9 taps
  for kw in (dict(window_strides=(1, 1), padding="SAME"),
             dict(window_strides=(2, 2), padding="SAME"),
             dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2))):
    np.testing.assert_array_equal(
        small_conv.conv_general_dilated(x, k, dimension_numbers=_DN, **kw),
        lax.conv_general_dilated(x, k, dimension_numbers=_DN, **kw))
  with pytest.raises(ValueError, match="no output"):
    small_conv.small_conv(jnp.ones((1, 1, 1, 2)), k, "VALID")


# Thin outputs (kh*kw*C_out <= C_in: the face VAE's 3- and 1-channel heads), stride 1: 3x3
# SAME, VALID, a 2x2 kernel, asymmetric and cropping padding, a 1x1 kernel.
THIN = [((6, 7), 3, 2, "SAME"), ((5, 5), 3, 1, "VALID"), ((4, 6), 2, 4, "SAME"),
        ((6, 5), 3, 2, ((2, 0), (-1, 1))), ((3, 4), 1, 9, "SAME")]


@pytest.mark.parametrize("hw,k,c_out,pad", THIN)
def test_thin_output_float64_equals_lax(hw, k, c_out, pad):
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    x = rng.normal(size=(3,) + hw + (18,))
    kern = rng.normal(size=(k, k, 18, c_out))
    assert small_conv.is_thin_output(kern.shape) and not small_conv.is_small(x.shape, kern.shape)
    g = rng.normal(size=jax.eval_shape(lambda: _lax(x, kern, pad)).shape)
    for a, b in zip(_with_grads(_ours, x, kern, g, pad), _with_grads(_lax, x, kern, g, pad)):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_thin_output_float32_within_rounding_and_no_xla_convolution():
  """The face VAE's image head (3x3 SAME, 32 -> 3) on a small image: float32 within the
  summation-order bound, and the drop-in takes the tap-sum path (no convolution left)."""
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 9, 8, 32)).astype(np.float32)
  kern = rng.normal(size=(3, 3, 32, 3)).astype(np.float32)
  g = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
  # products per entry: forward 9 taps x 32 channels; input grad 9 taps x 3; kernel grad
  # 2 images x 9 x 8 pixels.
  _assert_within_rounding(_ours, _lax, x, kern, g, "SAME", (9 * 32, 9 * 3, 2 * 9 * 8))
  for fn in (_ours, jax.grad(lambda a, b, pad: jnp.sum(_ours(a, b, pad) ** 2), argnums=(0, 1))):
    jaxpr = str(jax.make_jaxpr(lambda a, b, fn=fn: fn(a, b, "SAME"))(x, kern))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr
