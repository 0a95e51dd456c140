"""Image-quality metrics with TensorFlow's exact definitions: SSIM, MS-SSIM, l1 and l2 (RMSE).

`ssim` is `tf.image.ssim` and `ms_ssim` is `tf.image.ssim_multiscale`, transcribed operation by
operation (so the float32 results agree to rounding):

* window: the normalised Gaussian on ``arange(f) - (f - 1) / 2`` with standard deviation
  ``filter_sigma``, applied per channel with VALID padding (separably here, as one matrix
  product per axis with a band matrix; TF convolves with the equal 2-D outer product);
* ``l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)``,
  ``cs = (2 (E[xy] - mu_x mu_y) + C2) / (E[x^2] + E[y^2] - mu_x^2 - mu_y^2 + C2)``
  with ``C1 = (k1 max_val)^2``, ``C2 = (k2 max_val)^2`` (no clamping);
* SSIM = mean over the VALID map and the channels of ``l * cs``;
* MS-SSIM: at scale k > 0 both images (and the mask) are padded by one row / column at the end
  (SYMMETRIC) where a side is odd, then 2x2 average pooled; per channel the product of
  ``relu(mean cs)^p_k`` over scales 1..K-1 and ``relu(mean l*cs)^p_K`` at the last scale, then
  the mean over channels. `power_factors` are used as given (not renormalised).

`l1` is the mean absolute error and `l2` the root-mean-square error (the VAE paper's "l2").

Optional ``mask`` (shape ``(..., H, W)``, weights in [0, 1]) restricts every metric to the
weighted pixels: l1 = sum m|x-y| / (C sum m), l2 = sqrt(sum m (x-y)^2 / (C sum m)); SSIM is the
mask-weighted mean of its map, map position (i, j) being centred on pixel (i + r, j + r),
r = (f - 1) / 2, so it weighs ``m[..., r:H-r, r:W-r]`` (f must then be odd). An all-zero mask
gives NaN; a mask of ones equals no mask.

Images are ``(..., H, W, C)`` floats in [0, max_val], batched over the leading dimensions;
results have shape ``(...)``. Everything is jit-able and differentiable; float32 by default,
float64 under ``jax_enable_x64``. Filters run at ``lax.Precision.HIGHEST`` (the default TPU/GPU
precision would break parity with TF at 1e-6).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

__all__ = ["MS_SSIM_POWER_FACTORS", "band_matrix", "gaussian_window", "l1", "l2", "ms_ssim", "ssim",
           "ssim_maps"]


def _float(x) -> jax.Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _check_pair(x: jax.Array, y: jax.Array, mask: jax.Array | None, what: str) -> None:
  if x.ndim < 3:
    raise ValueError(f"{what}: images must be (..., H, W, C), got shape {x.shape}")
  if x.shape != y.shape:
    raise ValueError(f"{what}: the two images differ in shape: {x.shape} vs {y.shape}")
  if mask is not None and mask.shape != x.shape[:-1]:
    raise ValueError(f"{what}: mask must have shape (..., H, W) = {x.shape[:-1]}, got "
                     f"{mask.shape}")


def gaussian_window(filter_size: int, filter_sigma: float, dtype=jnp.float32) -> jax.Array:
  """The normalised 1-D Gaussian of ``tf.image.ssim`` (its 2-D kernel is the outer product)."""
  coords = jnp.arange(filter_size, dtype=dtype) - (filter_size - 1) / 2.0
  g = -0.5 * coords**2 / jnp.asarray(filter_sigma, dtype) ** 2
  return jax.nn.softmax(g)


def band_matrix(size: int, window: jax.Array) -> jax.Array:
  """(size - f + 1, size) matrix whose row i holds ``window`` at columns i .. i + f - 1.

  Multiplying by it is VALID correlation with ``window`` along one axis: the same products as
  a convolution, plus exact zeros.
  """
  f = window.shape[0]
  offsets = jnp.arange(size)[None, :] - jnp.arange(size - f + 1)[:, None]
  inside = (offsets >= 0) & (offsets < f)
  return jnp.where(inside, window[jnp.clip(offsets, 0, f - 1)], 0).astype(window.dtype)


def _filter(x: jax.Array, window: jax.Array) -> jax.Array:
  """VALID separable filtering of (N, H, W, C) per channel, as two matrix products.

  One product per axis with the band matrix keeps the NHWC layout (no transposes) and gives
  XLA two large dot operations instead of per-channel 1-channel convolutions, whose gradients
  ran as slow kernel-gradient convolutions (docs/performance.md).
  """
  h, w = x.shape[1:3]
  rows, cols = band_matrix(h, window), band_matrix(w, window)
  x = jnp.einsum("ih,nhwc->niwc", rows, x, precision=lax.Precision.HIGHEST)
  return jnp.einsum("jw,niwc->nijc", cols, x, precision=lax.Precision.HIGHEST)


def ssim_maps(x, y, *, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03
              ) -> tuple[jax.Array, jax.Array]:
  """(luminance, contrast-structure) maps ``(..., H-f+1, W-f+1, C)`` exactly as TF's helper."""
  x, y = _float(x), _float(y)
  _check_pair(x, y, None, "ssim")
  h, w = x.shape[-3:-1]
  if h < filter_size or w < filter_size:
    raise ValueError(f"ssim: image sides {h}x{w} are smaller than filter_size={filter_size}")
  lead = x.shape[:-3]
  flat = lambda a: a.reshape((-1,) + a.shape[-3:])  # noqa: E731
  window = gaussian_window(filter_size, filter_sigma, x.dtype)
  reducer = lambda a: _filter(a, window)  # noqa: E731
  x, y = flat(x), flat(y)
  c1 = (k1 * max_val) ** 2
  c2 = (k2 * max_val) ** 2
  mean0, mean1 = reducer(x), reducer(y)
  num0 = mean0 * mean1 * 2.0
  den0 = jnp.square(mean0) + jnp.square(mean1)
  luminance = (num0 + c1) / (den0 + c1)
  num1 = reducer(x * y) * 2.0
  den1 = reducer(jnp.square(x) + jnp.square(y))
  cs = (num1 - num0 + c2) / (den1 - den0 + c2)
  unflat = lambda a: a.reshape(lead + a.shape[1:])  # noqa: E731
  return unflat(luminance), unflat(cs)


def _map_weights(mask: jax.Array, filter_size: int) -> jax.Array:
  if filter_size % 2 == 0:
    raise ValueError(f"ssim with a mask needs an odd filter_size, got {filter_size}")
  r = (filter_size - 1) // 2
  h, w = mask.shape[-2:]
  return mask[..., r:h - r, r:w - r]


def _weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Mean of (..., h, w, C) over h, w (per channel) with optional (..., h, w) weights."""
  if weights is None:
    return jnp.mean(values, axis=(-3, -2))
  weights = weights.astype(values.dtype)[..., None]
  return jnp.sum(values * weights, axis=(-3, -2)) / jnp.sum(weights, axis=(-3, -2))


def ssim(x, y, *, mask=None, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03
         ) -> jax.Array:
  """``tf.image.ssim``: the mean SSIM of ``(..., H, W, C)`` images -> ``(...)``."""
  return _ssim(x, y, mask, max_val=float(max_val), filter_size=int(filter_size),
               filter_sigma=float(filter_sigma), k1=float(k1), k2=float(k2))


_STATIC = ("max_val", "filter_size", "filter_sigma", "k1", "k2")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _ssim(x, y, mask, *, max_val, filter_size, filter_sigma, k1, k2):
  x, y = _float(x), _float(y)
  mask = None if mask is None else _float(mask)
  _check_pair(x, y, mask, "ssim")
  lum, cs = ssim_maps(x, y, max_val=max_val, filter_size=filter_size,
                      filter_sigma=filter_sigma, k1=k1, k2=k2)
  weights = None if mask is None else _map_weights(mask, filter_size)
  return jnp.mean(_weighted_mean(lum * cs, weights), axis=-1)


def _downsample(a: jax.Array, has_channels: bool) -> jax.Array:
  """TF's MS-SSIM step: SYMMETRIC pad of odd sides at the end, then 2x2/2 VALID mean."""
  h_axis = a.ndim - 3 if has_channels else a.ndim - 2
  h, w = a.shape[h_axis], a.shape[h_axis + 1]
  pad = [(0, 0)] * a.ndim
  pad[h_axis], pad[h_axis + 1] = (0, h % 2), (0, w % 2)
  if h % 2 or w % 2:
    a = jnp.pad(a, pad, mode="symmetric")
  h2, w2 = (h + h % 2) // 2, (w + w % 2) // 2
  shape = a.shape[:h_axis] + (h2, 2, w2, 2) + a.shape[h_axis + 2:]
  return jnp.mean(a.reshape(shape), axis=(h_axis + 1, h_axis + 3))


def ms_ssim(x, y, *, mask=None, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01,
            k2=0.03, power_factors: Sequence[float] = MS_SSIM_POWER_FACTORS) -> jax.Array:
  """``tf.image.ssim_multiscale`` (one scale per power factor) -> ``(...)``.

  Raises:
    ValueError: bad shapes, or a scale whose side is below `filter_size` (TF raises
      InvalidArgumentError there; e.g. 144 px with 5 scales and f = 11, since the 5th scale is
      9 px). Nothing falls back silently.
  """
  return _ms_ssim(x, y, mask, max_val=float(max_val), filter_size=int(filter_size),
                  filter_sigma=float(filter_sigma), k1=float(k1), k2=float(k2),
                  power_factors=tuple(float(p) for p in power_factors))


@functools.partial(jax.jit, static_argnames=_STATIC + ("power_factors",))
def _ms_ssim(x, y, mask, *, max_val, filter_size, filter_sigma, k1, k2, power_factors):
  x, y = _float(x), _float(y)
  mask = None if mask is None else _float(mask)
  _check_pair(x, y, mask, "ms_ssim")
  if not power_factors:
    raise ValueError("ms_ssim: power_factors must not be empty")
  h, w = x.shape[-3:-1]
  for _ in range(len(power_factors) - 1):
    h, w = (h + 1) // 2, (w + 1) // 2
  if min(h, w) < filter_size:
    raise ValueError(
        f"ms_ssim: the coarsest of {len(power_factors)} scales of a {x.shape[-3]}x{x.shape[-2]} "
        f"image is {h}x{w}, smaller than filter_size={filter_size}; use a smaller filter_size "
        "or fewer power_factors")
  values = []
  for k in range(len(power_factors)):
    if k > 0:
      x, y = _downsample(x, True), _downsample(y, True)
      mask = None if mask is None else _downsample(mask, False)
    lum, cs = ssim_maps(x, y, max_val=max_val, filter_size=filter_size,
                        filter_sigma=filter_sigma, k1=k1, k2=k2)
    weights = None if mask is None else _map_weights(mask, filter_size)
    last = k == len(power_factors) - 1
    values.append(jax.nn.relu(_weighted_mean(lum * cs if last else cs, weights)))
  stacked = jnp.stack(values, axis=-1)  # (..., C, K)
  factors = jnp.asarray(power_factors, stacked.dtype)
  return jnp.mean(jnp.prod(stacked**factors, axis=-1), axis=-1)


@functools.partial(jax.jit, static_argnames=())
def l1(x, y, *, mask=None) -> jax.Array:
  """Mean absolute error over H, W and C (mask-weighted if given) -> ``(...)``."""
  x, y = _float(x), _float(y)
  mask = None if mask is None else _float(mask)
  _check_pair(x, y, mask, "l1")
  err = jnp.abs(x - y)
  if mask is None:
    return jnp.mean(err, axis=(-3, -2, -1))
  m = mask.astype(err.dtype)
  return jnp.sum(err * m[..., None], axis=(-3, -2, -1)) / (x.shape[-1] * jnp.sum(m, (-2, -1)))


@functools.partial(jax.jit, static_argnames=())
def l2(x, y, *, mask=None) -> jax.Array:
  """Root-mean-square error over H, W and C (mask-weighted if given) -> ``(...)``."""
  x, y = _float(x), _float(y)
  mask = None if mask is None else _float(mask)
  _check_pair(x, y, mask, "l2")
  err = jnp.square(x - y)
  if mask is None:
    return jnp.sqrt(jnp.mean(err, axis=(-3, -2, -1)))
  m = mask.astype(err.dtype)
  return jnp.sqrt(jnp.sum(err * m[..., None], axis=(-3, -2, -1))
                  / (x.shape[-1] * jnp.sum(m, (-2, -1))))
