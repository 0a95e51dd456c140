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
The forward pass and the kernel gradient are then plain convolutions that every backend runs
on its fast path, on GPUs as well. The input gradient is taken from lax's formulation through
a custom VJP: it is a strided convolution of the output gradient, which XLA already runs fast,
where the sub-pixel form's would multiply the phases' zero taps.

It is the same linear map: every output is the same sum of the same products x[m] w[k]; only
the summation order (and added exact zeros) differ, so results agree with `lax.conv_transpose`
to float32 rounding (tests/test_subpixel.py compares both in float64 and float32, forward and
both gradients).

`conv_transpose` is a drop-in for ``lax.conv_transpose`` in NHWC / HWIO layout, and
`ConvTranspose` a drop-in for ``flax.linen.ConvTranspose`` (same parameter names, shapes,
initialisation and auto-name), used by the face VAE, NENet and PRNet decoders.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bioface_jax.models import small_conv

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
  """One axis of the sub-pixel form.

  Output p = 2q + r meets kernel taps k with r + k - lo even, at input q + d, d = (r+k-lo)/2.
  Each phase r gets its own first offset d0[r], so both phases share T taps without padding
  the kernel (a 4-tap kernel: 2 taps per phase, none wasted). The convolution computes
  z[j] = sum_t S[t] x[j + dmin + t] for j < Q + max(shift); phase r of the output is
  z_r[q + shift[r]] with shift[r] = d0[r] - dmin.

  Returns:
    (output length, Q = phases' length, T, (pad_lo, pad_hi) of x, start of the window in the
    padded x, length J of z, shift (2,), index (2, T) of the kernel tap of (phase, t) or -1).
  """
  out = 2 * (size - 1) + 1 + lo + hi - kernel + 1
  if out <= 0:
    raise ValueError(f"transposed convolution of a side-{size} input with kernel {kernel} and "
                     f"padding ({lo}, {hi}) has no output")
  q = -(-out // 2)
  taps_of = {r: {(r + k - lo) // 2: k for k in range(kernel) if (r + k - lo) % 2 == 0}
             for r in (0, 1)}
  d0 = [min(taps_of[r]) if taps_of[r] else 0 for r in (0, 1)]
  taps = max(max(taps_of[r]) - d0[r] + 1 if taps_of[r] else 1 for r in (0, 1))
  index = -np.ones((2, taps), np.int64)
  for r in (0, 1):
    for d, k in taps_of[r].items():
      index[r, d - d0[r]] = k
  dmin = min(d0)
  shift = [d - dmin for d in d0]
  length = q + max(shift)
  # Reads x[j + dmin + t] for j < length, t < T: pad so that every read is in range.
  pad_lo = max(0, -dmin)
  pad_hi = max(0, length - 1 + dmin + taps - 1 - (size - 1))
  start = dmin + pad_lo  # where the first window begins in the padded x (>= 0)
  return out, q, taps, (pad_lo, pad_hi), start, length, shift, index


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (2, 2),
                   padding: str | Sequence[tuple[int, int]] = "SAME",
                   transpose_kernel: bool = False) -> jax.Array:
  """``lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=NHWC/HWIO,
  transpose_kernel=...)`` for 2-D stride-2 transposed convolutions: the forward pass and the
  kernel gradient as a sub-pixel convolution (module docstring), the input gradient as lax's
  (a strided convolution, which XLA runs fast; the sub-pixel form's would multiply zeros).
  Other strides fall back to ``lax.conv_transpose``.

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
  padding = padding if isinstance(padding, str) else tuple(
      (int(a), int(b)) for a, b in padding)
  return _conv_transpose2(x, kernel, padding, transpose_kernel)


def _lax_conv_transpose2(x, kernel, padding, transpose_kernel):
  return lax.conv_transpose(x, kernel, (2, 2), padding, dimension_numbers=_DN,
                            transpose_kernel=transpose_kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_transpose2(x, kernel, padding, transpose_kernel):
  return subpixel_conv_transpose(x, kernel, padding, transpose_kernel)


def _conv_transpose2_fwd(x, kernel, padding, transpose_kernel):
  return subpixel_conv_transpose(x, kernel, padding, transpose_kernel), (x, kernel)


def _conv_transpose2_bwd(padding, transpose_kernel, residuals, g):
  x, kernel = residuals
  # Both are linear maps; their transposes are the exact gradients.
  (dx,) = jax.linear_transpose(
      lambda a: _lax_conv_transpose2(a, kernel, padding, transpose_kernel), x)(g)
  kh, kw, c_in, c_out = (kernel.shape[0], kernel.shape[1]) + (
      kernel.shape[2:][::-1] if transpose_kernel else kernel.shape[2:])  # oriented, as lax
  plan = _plan(x.shape, (kh, kw, c_in, c_out), padding)
  sub = jax.ShapeDtypeStruct((plan[0][2], plan[1][2], c_in, 4 * c_out), kernel.dtype)
  (dsub,) = jax.linear_transpose(lambda s: _apply_sub_kernel(x, s, plan), sub)(g)
  # Every kernel tap sits at exactly one place of the sub-pixel kernel (its phase, its
  # offset), so the kernel gradient is a gather of dsub: no sum. (Autodiff of the stack of
  # taps would pad each tap's gradient to the kernel's shape and add them, which XLA:CPU
  # fused into the optimiser's update as one slow pass per tap: 79 ms per decoder layer of
  # PRNet's 256-px step, docs/performance.md.)
  dk = _kernel_from_sub(dsub, plan)
  return dx, (jnp.flip(jnp.swapaxes(dk, 2, 3), (0, 1)) if transpose_kernel else dk)


_conv_transpose2.defvjp(_conv_transpose2_fwd, _conv_transpose2_bwd)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array,
                            padding: str | tuple[tuple[int, int], ...],
                            transpose_kernel: bool) -> jax.Array:
  """The stride-2 transposed convolution as one sub-pixel convolution (its own autodiff)."""
  kernel = _oriented(kernel, transpose_kernel)
  plan = _plan(x.shape, kernel.shape, padding)
  return _apply_sub_kernel(x, _sub_kernel(kernel, plan), plan)


def _oriented(kernel, transpose_kernel):
  """The (kh, kw, C_in, C_out) kernel lax applies (``transpose_kernel``: flipped, swapped)."""
  return jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3) if transpose_kernel else kernel


def _plan(x_shape, kernel_shape, padding):
  """Both axes' `_axis_plan` for an input and an oriented (kh, kw, C_in, C_out) kernel."""
  kh, kw, c_in, _ = kernel_shape
  if x_shape[-1] != c_in:
    raise ValueError(f"input has {x_shape[-1]} channels, the kernel expects {c_in}")
  if isinstance(padding, str):
    pads = (transpose_padding(kh, 2, padding), transpose_padding(kw, 2, padding))
  else:
    pads = tuple((int(a), int(b)) for a, b in padding)
  return (_axis_plan(x_shape[1], kh, *pads[0]), _axis_plan(x_shape[2], kw, *pads[1]))


def _sub_kernel(kernel, plan):
  """Sub-pixel kernel S[ty, tx, i, (ry, rx, o)] of the oriented kernel: zeros where a phase
  has no tap. Built from static slices (pure data movement: exact, cheap to compile, no matmul
  precision modes)."""
  _, c_in, c_out = kernel.shape[1:]
  (_, _, th, _, _, _, _, idx_y), (_, _, tw, _, _, _, _, idx_x) = plan
  zero = jnp.zeros((c_in, c_out), kernel.dtype)
  sub = jnp.stack([
      jnp.stack([
          jnp.stack([kernel[ky, kx] if ky >= 0 and kx >= 0 else zero
                     for ky in idx_y[:, ty] for kx in idx_x[:, tx]], axis=1)
          for tx in range(tw)]) for ty in range(th)])  # (th, tw, Ci, 4, Co)
  return sub.reshape(th, tw, c_in, 4 * c_out)


def _kernel_from_sub(sub, plan):
  """The inverse gather of `_sub_kernel`: kernel tap (ky, kx) = S[ty, tx, :, (ry, rx), :] at
  its one place (used for the kernel gradient)."""
  (_, _, th, _, _, _, _, idx_y), (_, _, tw, _, _, _, _, idx_x) = plan
  sub = sub.reshape(th, tw, sub.shape[2], 4, sub.shape[3] // 4)
  where_y = {int(k): (r, t) for r in (0, 1) for t, k in enumerate(idx_y[r]) if k >= 0}
  where_x = {int(k): (r, t) for r in (0, 1) for t, k in enumerate(idx_x[r]) if k >= 0}
  return jnp.stack([
      jnp.stack([sub[where_y[ky][1], where_x[kx][1], :, 2 * where_y[ky][0] + where_x[kx][0]]
                 for kx in range(len(where_x))]) for ky in range(len(where_y))])


def _apply_sub_kernel(x, sub, plan):
  """The sub-pixel convolution of x with S and the interleave of its four phases."""
  c_out = sub.shape[-1] // 4
  (out_h, qh, th, pad_y, start_y, jh, shift_y, _), (out_w, qw, tw, pad_x, start_x, jw,
                                                    shift_x, _) = plan
  xp = jnp.pad(x, ((0, 0), pad_y, pad_x, (0, 0)))
  xp = xp[:, start_y:start_y + jh + th - 1, start_x:start_x + jw + tw - 1]
  z = small_conv.conv_general_dilated(xp, sub, (1, 1), "VALID", dimension_numbers=_DN)
  z = z.reshape(x.shape[0], jh, jw, 2, 2, c_out)
  phases = jnp.stack([
      jnp.stack([z[:, shift_y[ry]:shift_y[ry] + qh, shift_x[rx]:shift_x[rx] + qw, ry, rx]
                 for rx in (0, 1)], axis=3) for ry in (0, 1)], axis=2)  # (B, Qh, 2, Qw, 2, Co)
  y = phases.reshape(x.shape[0], 2 * qh, 2 * qw, c_out)
  return y[:, :out_h, :out_w]


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
