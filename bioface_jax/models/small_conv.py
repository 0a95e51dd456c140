"""Convolutions of tiny images (at most kh x kw pixels) as one matrix product: same function.

When an input has no more pixels than the kernel has taps (the face VAE's 2 x 2 and 1 x 1
stages), every output pixel meets every input pixel, so the convolution is exactly the product
of the flattened image (B, H*W*C_in) with one matrix (H*W*C_in, H_out*W_out*C_out) whose block
(input pixel q, output pixel p) is the kernel tap w[q - p + pad] (zero where that tap is
outside the kernel), and no more multiplications than the convolution's. XLA:CPU runs such
convolutions (padding wider than the image) on a slow generic path: 116 ms for the face VAE's
2 x 2, 256 -> 512 layer at batch 16, against 5 ms as a matrix product (docs/performance.md).

The matrix is assembled from static slices of the kernel (data movement only, exact), so the
products and their sums are the convolution's; only the summation order differs (float32
rounding). `conv_general_dilated` is a drop-in for ``lax.conv_general_dilated`` (and the
``conv_general_dilated`` field of ``flax.linen.Conv``): it takes the matrix path for
NHWC / HWIO, stride 1, undilated, ungrouped convolutions of tiny images and calls lax otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def is_small(x_shape, k_shape) -> bool:
  """Whether the matrix form applies: H*W <= kh*kw (no more products than the conv)."""
  return x_shape[1] * x_shape[2] <= k_shape[0] * k_shape[1]


def small_conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1 NHWC / HWIO convolution of a tiny image as one matrix product.

  Args:
    x: (B, H, W, C_in). kernel: (kh, kw, C_in, C_out).
    padding: "SAME", "VALID" or ((lo, hi), (lo, hi)), as lax.
  """
  b, h, w, c_in = x.shape
  kh, kw, _, c_out = kernel.shape
  if isinstance(padding, str):
    padding = lax.padtype_to_pads((h, w), (kh, kw), (1, 1), padding)
  (ylo, yhi), (xlo, xhi) = padding
  ho, wo = h + ylo + yhi - kh + 1, w + xlo + xhi - kw + 1
  if ho <= 0 or wo <= 0:
    raise ValueError(f"convolution of a {h}x{w} image with a {kh}x{kw} kernel and padding "
                     f"{padding} has no output")
  zero = jnp.zeros((c_in, c_out), kernel.dtype)

  def tap(qy, qx, py, px):  # input pixel q meets kernel tap q - p + lo at output pixel p
    ky, kx = qy - py + ylo, qx - px + xlo
    return kernel[ky, kx] if 0 <= ky < kh and 0 <= kx < kw else zero

  matrix = jnp.stack([
      jnp.stack([tap(qy, qx, py, px) for py in range(ho) for px in range(wo)], axis=1)
      for qy in range(h) for qx in range(w)])  # (H*W, C_in, Ho*Wo, C_out)
  y = x.reshape(b, h * w * c_in) @ matrix.reshape(h * w * c_in, ho * wo * c_out)
  return y.reshape(b, ho, wo, c_out)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated`` with the matrix path for tiny NHWC images (module doc)."""
  plain = (lhs.ndim == 4 and tuple(window_strides) == (1, 1)
           and all(d in (None, 1, (1, 1)) for d in (lhs_dilation, rhs_dilation))
           and feature_group_count == 1 and batch_group_count == 1
           and preferred_element_type is None and precision is None
           and (isinstance(padding, str) or len(padding) == 2))
  if plain:
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = dn == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  if plain and is_small(lhs.shape, rhs.shape):
    pads = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
    return small_conv(lhs, rhs, pads)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, batch_group_count,
                                  precision, preferred_element_type)
