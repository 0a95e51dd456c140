"""2 x 2 / stride-2 max pooling with a fast, exact gradient.

``flax.linen.max_pool`` is ``lax.reduce_window(max)``, whose gradient XLA:CPU expands into
iotas, a scatter and concatenations over the whole activation: at the face VAE's 144 px that
gradient costs more than the convolution next to it (docs/performance.md). Here the forward is
the maximum of the four strided quarter-images (bitwise the same values), and the custom VJP
hands each output gradient to the first maximum of its window in row-major order, the element
`select_and_scatter` (reduce_window's gradient) and TensorFlow's MaxPoolGrad choose: the same
gradient, ties included, computed with elementwise operations that XLA fuses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _quarters(x):
  """The four window positions (0,0), (0,1), (1,0), (1,1) of every 2x2 window."""
  return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


@jax.custom_vjp
def _pool_even(x):
  a, b, c, d = _quarters(x)
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


def _pool_even_fwd(x):
  y = _pool_even(x)
  return y, (x, y)


def _pool_even_bwd(residuals, g):
  x, y = residuals
  zero = jnp.zeros_like(g)
  taken = jnp.zeros(g.shape, bool)
  grads = []
  for q in _quarters(x):  # the first maximum in row-major window order gets the gradient
    here = jnp.logical_and(jnp.logical_not(taken), q == y)
    grads.append(jnp.where(here, g, zero))
    taken = jnp.logical_or(taken, here)
  ga, gb, gc, gd = grads
  b, h, w, c = g.shape
  top = jnp.stack([ga, gb], axis=3)  # (B, h, w, 2, C): columns 2j, 2j+1 of row 2i
  bottom = jnp.stack([gc, gd], axis=3)
  dx = jnp.stack([top, bottom], axis=2)  # (B, h, 2, w, 2, C)
  return (dx.reshape(b, 2 * h, 2 * w, c),)


_pool_even.defvjp(_pool_even_fwd, _pool_even_bwd)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """``flax.linen.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")`` for NHWC `x`.

  An odd last row or column is dropped (VALID), as there.
  """
  if x.ndim != 4:
    raise ValueError(f"max_pool_2x2 expects (B, H, W, C), got shape {tuple(x.shape)}")
  h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  if h == 0 or w == 0:
    raise ValueError(f"max_pool_2x2 needs at least 2x2 pixels, got {x.shape[1]}x{x.shape[2]}")
  return _pool_even(x[:, :h, :w])
