"""2x2 max pooling: forward bitwise equal to flax's max_pool, gradient equal to reduce_window's
(select_and_scatter: the first maximum of each window, ties included)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax.models import pooling


def _ref(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


@jax.jit
def _both(x, g):
  out = []
  for fn in (pooling.max_pool_2x2, _ref):
    y, vjp = jax.vjp(fn, x)
    out.append((y, vjp(g)[0]))
  return out


@pytest.mark.parametrize("hw", [(4, 6), (9, 9), (2, 3)])
def test_equal_to_reduce_window_with_ties(hw):
  rng = np.random.default_rng(0)
  # Coarse values make ties within windows common; the gradient must still match exactly.
  x = rng.integers(-2, 3, size=(3,) + hw + (5,)).astype(np.float32)
  g = jax.eval_shape(_ref, x)
  g = rng.normal(size=g.shape).astype(np.float32)
  (y, dx), (y_ref, dx_ref) = _both(x, g)
  np.testing.assert_array_equal(y, y_ref)
  np.testing.assert_array_equal(dx, dx_ref)
  assert np.count_nonzero(dx) == g.size  # one element per window receives its gradient


def test_bad_shapes_name_the_problem():
  with pytest.raises(ValueError, match="B, H, W, C"):
    pooling.max_pool_2x2(jnp.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match="2x2"):
    pooling.max_pool_2x2(jnp.zeros((1, 1, 4, 3)))
