"""Sub-pixel transposed convolution == lax.conv_transpose (forward and both gradients).

The reference is XLA's own transposed convolution (convolution of the zero-dilated input), an
independent formulation of the same linear map. In float64 both must agree to ~1e-12; in
float32 to a bound derived from rounding: each output (or gradient entry) is a sum of n
products, and two summation orders of the same terms differ by at most ~2 n eps sum|terms|
(eps = 2^-24); the bound used is 4 n eps max(sum|terms|), computed with |x| and |w|.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bioface_jax.models import subpixel

_DN = ("NHWC", "HWIO", "NHWC")

# (H, W, kernel, padding, transpose_kernel): the face VAE's 3x3 SAME / VALID (Keras layout),
# SDPS' 4x4 with PyTorch padding 1 (explicit (2, 2) on the dilated input), PRNet's 4x4 SAME,
# and odd cases (1x1 input, asymmetric padding, kernel 2 and 5).
CASES = [(4, 5, 3, "VALID", True), (2, 2, 3, "SAME", True), (5, 3, 4, ((2, 2), (2, 2)), False),
         (1, 1, 3, "SAME", True), (6, 6, 4, "SAME", True), (6, 5, 4, ((1, 2), (0, 3)), False),
         (5, 5, 2, "SAME", False), (4, 4, 5, "VALID", False)]


def _pair(h, w, k, tk, dtype, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(2, h, w, 3)).astype(dtype)
  kern = rng.normal(size=(k, k, 5, 3) if tk else (k, k, 3, 5)).astype(dtype)
  return x, kern


def _ref(x, kern, pad, tk):
  return lax.conv_transpose(x, kern, (2, 2), pad, dimension_numbers=_DN, transpose_kernel=tk)


def _ours(x, kern, pad, tk):
  return subpixel.conv_transpose(x, kern, (2, 2), pad, tk)


@jax.jit(static_argnames=("fn", "pad", "tk"))
def _with_grads(fn, x, kern, g, pad, tk):
  """(output, d<output, g>/dx, d<output, g>/dkernel), one jitted call."""
  y, vjp = jax.vjp(lambda a, b: fn(a, b, pad, tk), x, kern)
  return (y,) + vjp(g)


@pytest.mark.parametrize("h,w,k,pad,tk", CASES)
def test_float64_forward_and_gradients_equal_lax(h, w, k, pad, tk):
  with jax.enable_x64(True):
    x, kern = _pair(h, w, k, tk, np.float64)
    g = np.random.default_rng(1).normal(size=jax.eval_shape(
        lambda: _ref(x, kern, pad, tk)).shape)
    ref = _with_grads(_ref, x, kern, g, pad, tk)
    got = _with_grads(_ours, x, kern, g, pad, tk)
    for a, b in zip(got, ref):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("h,w,k,pad,tk", CASES[:3])
def test_float32_within_rounding_of_lax(h, w, k, pad, tk):
  x, kern = _pair(h, w, k, tk, np.float32)
  g = np.random.default_rng(1).normal(size=jax.eval_shape(
      lambda: _ref(x, kern, pad, tk)).shape).astype(np.float32)
  eps = 2.0 ** -24
  got = _with_grads(_ours, x, kern, g, pad, tk)
  ref = _with_grads(_ref, x, kern, g, pad, tk)
  # Sum of |terms| of every entry: the same linear maps applied to absolute values.
  abs_terms = _with_grads(_ref, np.abs(x), np.abs(kern), np.abs(g), pad, tk)
  # Terms per entry: output <= k*k*C_in, input gradient <= k*k*C_out, kernel gradient <= B*H*W.
  for a, b, n, t in zip(got, ref, (k * k * 3, k * k * 5, x.size // 3), abs_terms):
    bound = 4 * n * eps * float(np.max(t))
    np.testing.assert_allclose(a, b, rtol=0, atol=bound)
    assert bound < 1e-3 * float(np.max(np.abs(b)))  # the test can fail


def test_flax_module_is_a_drop_in_for_conv_transpose():
  """Same parameter tree, shapes and initial values as nn.ConvTranspose; same outputs."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 3)), jnp.float32)
  for kw in (dict(features=4, kernel_size=(3, 3), strides=(2, 2), padding="VALID",
                  transpose_kernel=True),
             dict(features=4, kernel_size=(4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                  use_bias=False),
             dict(features=4, kernel_size=(4, 4), strides=(1, 1), padding="SAME",
                  transpose_kernel=True)):
    ref, ours = nn.ConvTranspose(**kw), subpixel.ConvTranspose(**kw)
    p_ref = jax.jit(ref.init)(jax.random.key(0, impl="rbg"), x)
    p_ours = jax.jit(ours.init)(jax.random.key(0, impl="rbg"), x)
    assert jax.tree.map(jnp.shape, p_ref) == jax.tree.map(jnp.shape, p_ours)
    jax.tree.map(np.testing.assert_array_equal, p_ref, p_ours)
    p = jax.tree.map(lambda a: a + 0.1, p_ref)  # non-zero bias
    np.testing.assert_allclose(jax.jit(ours.apply)(p, x), jax.jit(ref.apply)(p, x), rtol=0,
                               atol=1e-5)

  class Auto(nn.Module):  # auto-naming must give ConvTranspose_0 as with flax's class
    @nn.compact
    def __call__(self, x):
      return subpixel.ConvTranspose(2, (3, 3), (2, 2))(x)
  assert list(jax.eval_shape(Auto().init, jax.random.key(0), x)["params"]) == [
      "ConvTranspose_0"]


def test_unsupported_options_are_an_error():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(NotImplementedError, match="subpixel"):
    jax.eval_shape(subpixel.ConvTranspose(2, (3, 3), (2, 2), padding="CIRCULAR").init,
                   jax.random.key(0, impl="rbg"), x)
  with pytest.raises(ValueError, match="channels"):
    subpixel.conv_transpose(x, jnp.zeros((3, 3, 5, 2)), (2, 2), "SAME")
