"""Stride-2 transposed convolutions as sub-pixel convolutions: the same function, faster on CPUs.

A transposed convolution with stride 2 is, by definition (`lax.conv_transpose`), a stride-1
convolution over the input dilated with zeros (x_d[2m] = x[m], zeros between). Three quarters
of the products are with those zeros, and XLA:CPU runs the weight gradient of a
base-dilated convolution on a slow generic path (0.4-4 GFLOP/s on the face VAE's 72->144
layers, measured in docs/performance.md). Splitting the output by parity ("sub-pixel"
convolution, Shi et al. 2016) removes both problems: output row p = 2q + r only ever meets
the kernel taps k with p + k - pad_lo even, at input rows q + d with d = (r + k - pad_lo) / 2.
So all four output phases (r_y, r_x) are one ordinary stride-1 convolution of the (padded)
input with a kernel of T = d_max - d_min + 1 taps per axis and 4 x C_out output channels (the
taps a phase does not use are zeros), followed by a depth-to-space interleave and a crop.
Forward, input gradient and kernel gradient are then plain convolutions that every backend
runs on its fast path, on GPUs as well.

It is the same linear map: every output is the same sum of the same products x[m] w[k]; only
the summation order (and added exact zeros) differ, so results agree with `lax.conv_transpose`
to float32 rounding (tests/test_subpixel.py compares both in float64 and float32, forward and
both gradients).

`conv_transpose` is a drop-in for ``lax.conv_transpose`` in NHWC / HWIO layout, and
`ConvTranspose` a drop-in for ``flax.linen.ConvTranspose`` (same parameter names, shapes,
initialisation and auto-name), used by the face VAE, NENet and PRNet decoders.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


def transpose_padding(kernel: int, stride: int, padding: str) -> tuple[int, int]:
  """``lax.conv_transpose``'s padding of the dilated input for "SAME" / "VALID"."""
  if padding == "SAME":
    total = kernel + stride - 2
    lo = kernel - 1 if stride > kernel - 1 else int(np.ceil(total / 2))
  elif padding == "VALID":
    total = kernel + stride - 2 + max(kernel - stride, 0)
    lo = kernel - 1
  else:
    raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}")
  return lo, total - lo


def _axis_plan(size: int, kernel: int, lo: int, hi: int):
  """Per-axis plan: output length, phase count Q, first offset d0, taps T, input padding and
  for each (phase r, tap t) the kernel index k it takes (or -1)."""
  out = 2 * (size - 1) + 1 + lo + hi - kernel + 1
  if out <= 0:
    raise ValueError(f"transposed convolution of a side-{size} input with kernel {kernel} and "
                     f"padding ({lo}, {hi}) has no output")
  q = -(-out // 2)
  offsets = {(r, k): (r + k - lo) // 2 for r in (0, 1) for k in range(kernel)
             if (r + k - lo) % 2 == 0}
  d0, d1 = min(offsets.values()), max(offsets.values())
  taps = d1 - d0 + 1
  index = -np.ones((2, taps), np.int64)
  for (r, k), d in offsets.items():
    index[r, d - d0] = k
  # z[q] = sum_t S[t] x[q + d0 + t] for q in [0, Q): pad so that every read is in range.
  pad_lo = max(0, -d0)
  pad_hi = max(0, q - 1 + d1 - (size - 1))
  start = d0 + pad_lo  # where the first window begins in the padded input (>= 0)
  return out, q, taps, (pad_lo, pad_hi), start, index


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (2, 2),
                   padding: str | Sequence[tuple[int, int]] = "SAME",
                   transpose_kernel: bool = False) -> jax.Array:
  """``lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=NHWC/HWIO,
  transpose_kernel=...)`` for 2-D stride-2 transposed convolutions, computed as a sub-pixel
  convolution (module docstring). Other strides fall back to ``lax.conv_transpose``.

  Args:
    x: (B, H, W, C_in).
    kernel: (kh, kw, C_in, C_out), or (kh, kw, C_out, C_in) with ``transpose_kernel``
      (Keras' Conv2DTranspose layout), exactly as ``lax.conv_transpose`` reads it.
    strides: (2, 2) for the sub-pixel path.
    padding: "SAME", "VALID" or ((lo, hi), (lo, hi)) of the dilated input, as lax.
    transpose_kernel: flip the spatial axes and swap the channel axes (lax's meaning).
  """
  if tuple(strides) != (2, 2) or x.ndim != 4:
    return lax.conv_transpose(x, kernel, tuple(strides), padding, dimension_numbers=_DN,
                              transpose_kernel=transpose_kernel)
  if transpose_kernel:
    kernel = jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3)
  kh, kw, c_in, c_out = kernel.shape
  if x.shape[-1] != c_in:
    raise ValueError(f"input has {x.shape[-1]} channels, the kernel expects {c_in}")
  if isinstance(padding, str):
    pads = (transpose_padding(kh, 2, padding), transpose_padding(kw, 2, padding))
  else:
    pads = tuple((int(a), int(b)) for a, b in padding)
  plan_y = _axis_plan(x.shape[1], kh, *pads[0])
  plan_x = _axis_plan(x.shape[2], kw, *pads[1])
  (out_h, qh, th, pad_y, start_y, idx_y) = plan_y
  (out_w, qw, tw, pad_x, start_x, idx_x) = plan_x
  # Sub-pixel kernel S[ty, tx, i, (ry, rx, o)]: zeros where a phase has no tap. Built from
  # static slices (pure data movement: exact, cheap to compile, no matmul precision modes).
  zero = jnp.zeros((c_in, c_out), kernel.dtype)
  sub = jnp.stack([
      jnp.stack([
          jnp.stack([kernel[ky, kx] if ky >= 0 and kx >= 0 else zero
                     for ky in idx_y[:, ty] for kx in idx_x[:, tx]], axis=1)
          for tx in range(tw)]) for ty in range(th)])  # (th, tw, Ci, 4, Co)
  sub = sub.reshape(th, tw, c_in, 4 * c_out)
  xp = jnp.pad(x, ((0, 0), pad_y, pad_x, (0, 0)))
  xp = xp[:, start_y:start_y + qh + th - 1, start_x:start_x + qw + tw - 1]
  z = lax.conv_general_dilated(xp, sub, (1, 1), "VALID", dimension_numbers=_DN)
  b = x.shape[0]
  y = z.reshape(b, qh, qw, 2, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, 2 * qh, 2 * qw, c_out)[:, :out_h, :out_w]


class ConvTranspose(nn.ConvTranspose):
  """``flax.linen.ConvTranspose`` computed by `conv_transpose` (same parameters, names and
  initialisation; the class name keeps Flax's auto-name ``ConvTranspose_<i>``).

  Only the options our networks use are supported: 2-D, "SAME" / "VALID" / explicit padding,
  no kernel dilation, mask, or circular padding; anything else is an error.
  """

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    kernel_size = ((self.kernel_size,) * 2 if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    strides = (1, 1) if self.strides is None else (
        (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides))
    if (len(kernel_size) != 2 or inputs.ndim != 4 or self.mask is not None
        or self.kernel_dilation not in (None, 1, (1, 1))
        or (isinstance(self.padding, str) and self.padding not in ("SAME", "VALID"))):
      raise NotImplementedError("subpixel.ConvTranspose supports 2-D NHWC inputs with SAME / "
                                "VALID / explicit padding and no mask or kernel dilation")
    c_in = inputs.shape[-1]
    shape = kernel_size + ((self.features, c_in) if self.transpose_kernel
                           else (c_in, self.features))
    kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    padding = self.padding if isinstance(self.padding, str) else tuple(
        tuple(p) for p in self.padding)
    y = conv_transpose(inputs, kernel, strides, padding, self.transpose_kernel)
    if bias is not None:
      y = y + bias.reshape((1,) * (y.ndim - 1) + (-1,))
    return y
