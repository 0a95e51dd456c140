"""Convolutions that XLA:CPU runs on slow paths, as matrix products: the same function.

When an input has no more pixels than the kernel has taps (the face VAE's 2 x 2 and 1 x 1
stages), every output pixel meets every input pixel, so the convolution is exactly the product
of the flattened image (B, H*W*C_in) with one matrix (H*W*C_in, H_out*W_out*C_out) whose block
(input pixel q, output pixel p) is the kernel tap w[q - p + pad] (zero where that tap is
outside the kernel), and no more multiplications than the convolution's. XLA:CPU runs such
convolutions (padding wider than the image) on a slow generic path: 116 ms for the face VAE's
2 x 2, 256 -> 512 layer at batch 16, against 5 ms as a matrix product (docs/performance.md).

The matrix is assembled from static slices of the kernel (data movement only, exact), so the
products and their sums are the convolution's; only the summation order differs (float32
rounding).

Strided convolutions with a tiny output (no more output pixels than kernel taps: LCNet's
classifier, 4 x 4 -> 2 x 2 -> 1 x 1 at stride 2) have the same problem in the backward pass:
XLA:CPU takes the input gradient of a stride-2 convolution of a 4 x 4 image (written as a
convolution with a dilated window) on a generic path, 36 ms of LCNet's ~190 ms train step at
batch 32 (docs/performance.md). `patch_conv` writes them as the product of the image's patches
(im2col: kh*kw static strided slices of the padded image, concatenated) with the kernel
reshaped to (kh*kw*C_in, C_out): the convolution's products plus products with the padding's
exact zeros, so again the same function up to summation order, and both gradients are plain
matrix products.

Stride-1 convolutions with a thin output (kh*kw*C_out <= C_in: the face VAE's 3- and
1-channel sigmoid heads at 144 px) run at ~15 GFLOP/s in XLA:CPU's convolution (77 ms for
the 32 -> 3 head at batch 32). `tap_sum_conv` first multiplies every pixel by all
kh*kw taps at once, one matrix product (B*H*W, C_in) x (C_in, kh*kw*C_out) whose output is no
larger than the input, then adds the taps' planes at their offsets (a static pad and kh*kw
slices): the same products and sums, another order (30 ms for that head).

`conv_general_dilated` is a drop-in for ``lax.conv_general_dilated`` (and the
``conv_general_dilated`` field of ``flax.linen.Conv``): it takes the matrix paths for NHWC /
HWIO, undilated, ungrouped convolutions of tiny images or with thin outputs (stride 1) or
with tiny outputs (stride > 1) and calls lax otherwise.
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
  (ylo, _), (xlo, _) = _pads(x.shape, kernel.shape, (1, 1), padding)
  ho, wo = _checked_output_size(x.shape, kernel.shape, (1, 1), padding)
  zero = jnp.zeros((c_in, c_out), kernel.dtype)

  def tap(qy, qx, py, px):  # input pixel q meets kernel tap q - p + lo at output pixel p
    ky, kx = qy - py + ylo, qx - px + xlo
    return kernel[ky, kx] if 0 <= ky < kh and 0 <= kx < kw else zero

  matrix = jnp.stack([
      jnp.stack([tap(qy, qx, py, px) for py in range(ho) for px in range(wo)], axis=1)
      for qy in range(h) for qx in range(w)])  # (H*W, C_in, Ho*Wo, C_out)
  y = x.reshape(b, h * w * c_in) @ matrix.reshape(h * w * c_in, ho * wo * c_out)
  return y.reshape(b, ho, wo, c_out)


def is_small_output(x_shape, k_shape, strides, padding) -> bool:
  """Whether the patch form applies to a strided convolution: Ho*Wo <= kh*kw."""
  ho, wo = _output_size(x_shape, k_shape, strides, padding)
  return ho * wo <= k_shape[0] * k_shape[1]


def _pads(x_shape, k_shape, strides, padding):
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(x_shape[1:3], k_shape[:2], strides, padding))
  return tuple(tuple(p) for p in padding)


def _output_size(x_shape, k_shape, strides, padding):
  (ylo, yhi), (xlo, xhi) = _pads(x_shape, k_shape, strides, padding)
  return ((x_shape[1] + ylo + yhi - k_shape[0]) // strides[0] + 1,
          (x_shape[2] + xlo + xhi - k_shape[1]) // strides[1] + 1)


def _checked_output_size(x_shape, k_shape, strides, padding):
  ho, wo = _output_size(x_shape, k_shape, strides, padding)
  if ho <= 0 or wo <= 0:
    raise ValueError(f"convolution of a {x_shape[1]}x{x_shape[2]} image with a "
                     f"{k_shape[0]}x{k_shape[1]} kernel, strides {tuple(strides)} and padding "
                     f"{padding} has no output")
  return ho, wo


def patch_conv(x: jax.Array, kernel: jax.Array, strides, padding) -> jax.Array:
  """Strided NHWC / HWIO convolution as one matrix product of the image's patches (im2col).

  Args:
    x: (B, H, W, C_in). kernel: (kh, kw, C_in, C_out).
    strides: (sy, sx). padding: "SAME", "VALID" or ((lo, hi), (lo, hi)), as lax (negative
      padding crops).
  """
  b, _, _, c_in = x.shape
  kh, kw, _, c_out = kernel.shape
  sy, sx = strides
  (ylo, yhi), (xlo, xhi) = _pads(x.shape, kernel.shape, strides, padding)
  ho, wo = _checked_output_size(x.shape, kernel.shape, strides, padding)
  xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (ylo, yhi, 0), (xlo, xhi, 0), (0, 0, 0)))
  patches = jnp.concatenate([
      lax.slice(xp, (0, ky, kx, 0), (b, ky + sy * (ho - 1) + 1, kx + sx * (wo - 1) + 1, c_in),
                (1, sy, sx, 1))
      for ky in range(kh) for kx in range(kw)], axis=-1)  # (B, Ho, Wo, kh*kw*C_in), HWIO order
  y = patches.reshape(b * ho * wo, kh * kw * c_in) @ kernel.reshape(kh * kw * c_in, c_out)
  return y.reshape(b, ho, wo, c_out)


def is_thin_output(k_shape) -> bool:
  """Whether the tap-sum form applies: kh*kw*C_out <= C_in (taps' planes no larger than x)."""
  return k_shape[0] * k_shape[1] * k_shape[3] <= k_shape[2]


def tap_sum_conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1 NHWC / HWIO convolution as one matrix product, then the taps' planes summed.

  z[b, q, k, :] = x[b, q, :] @ kernel[k] for every pixel q and tap k; the output pixel p sums
  z[b, p + k - lo, k, :] over the taps k (zero where p + k - lo is outside the image).

  Args:
    x: (B, H, W, C_in). kernel: (kh, kw, C_in, C_out).
    padding: "SAME", "VALID" or ((lo, hi), (lo, hi)), as lax (negative padding crops).
  """
  b, h, w, c_in = x.shape
  kh, kw, _, c_out = kernel.shape
  (ylo, yhi), (xlo, xhi) = _pads(x.shape, kernel.shape, (1, 1), padding)
  ho, wo = _checked_output_size(x.shape, kernel.shape, (1, 1), padding)
  taps = kernel.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out)  # (C_in, (ky, kx, o))
  z = (x.reshape(b * h * w, c_in) @ taps).reshape(b, h, w, kh, kw, c_out)
  zp = lax.pad(z, jnp.zeros((), z.dtype),
               ((0, 0, 0), (ylo, yhi, 0), (xlo, xhi, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)))
  return sum(zp[:, ky:ky + ho, kx:kx + wo, ky, kx, :] for ky in range(kh) for kx in range(kw))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated`` with the matrix paths for tiny images and thin outputs."""
  strides = tuple(window_strides)
  plain = (lhs.ndim == 4 and len(strides) == 2
           and all(d in (None, 1, (1, 1)) for d in (lhs_dilation, rhs_dilation))
           and feature_group_count == 1 and batch_group_count == 1
           and preferred_element_type is None and precision is None
           and (isinstance(padding, str) or len(padding) == 2))
  if plain:
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    plain = dn == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  if plain and strides == (1, 1) and is_small(lhs.shape, rhs.shape):
    return small_conv(lhs, rhs, _pads(lhs.shape, rhs.shape, strides, padding))
  if plain and strides == (1, 1) and is_thin_output(rhs.shape):
    return tap_sum_conv(lhs, rhs, _pads(lhs.shape, rhs.shape, strides, padding))
  if plain and strides != (1, 1) and is_small_output(lhs.shape, rhs.shape, strides, padding):
    return patch_conv(lhs, rhs, strides, padding)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, batch_group_count,
                                  precision, preferred_element_type)
