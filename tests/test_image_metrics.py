"""`bioface_jax.image_metrics` against independent references.

References: the spec's float64 reference values (face-vae-spec.md section 8), a float64 NumPy
transcription of the published SSIM / MS-SSIM formulas (2-D kernel, sliding windows), and,
where importable, TensorFlow's `tf.image.ssim` / `ssim_multiscale` and dm-pix's SSIM.

Tolerance rule for float32 results: each windowed mean is a sum of 2f + 1 rounded products
(separable filter, nonnegative weights summing to 1) of values <= 2 max_val^2, so its absolute
error is at most delta = (2f + 3) u 2 max_val^2 (u = 2^-24 unit roundoff). A first-order
propagation through l = A / B and cs = N / D (A, B, N, D each an affine combination with
absolute error <= 8 delta) bounds the map error per pixel by
|l cs| (8 delta (1/|A| + 1/|B| + 1/|N| + 1/|D|) + 4u); the mean adds log2(n) u |mean|. The bound
is computed from the float64 reference itself (`_ssim64`). Two float32 implementations may
differ by twice it. MS-SSIM: relative errors add with the power factors as weights. The filter
runs as matrix products with a band matrix (`band_matrix`); the extra terms are exact zeros,
which add no rounding, so the bound is that of the f-tap sums.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bioface_jax import image_metrics as im

U32 = 2.0**-24


def _sinusoids(n, batch=()):
  i, j, c = np.meshgrid(np.arange(n), np.arange(n), np.arange(3), indexing="ij")
  x = 0.5 + 0.4 * np.sin(0.31 * i + 0.17 * j + 0.5 * c)
  y = 0.5 + 0.35 * np.sin(0.29 * i + 0.19 * j + 0.5 * c + 0.3)
  return x, y


def _random_pair(shape, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, shape)
  y = np.clip(x + rng.normal(0, 0.15, shape), 0, 1)
  return x, y


# ---------------------------------------------------------------- float64 NumPy transcription
def _window2d(f, sigma):
  coords = np.arange(f, dtype=np.float64) - (f - 1) / 2.0
  g = np.exp(-0.5 * coords**2 / sigma**2)
  g /= g.sum()
  return np.outer(g, g)


def _filt(a, kernel):
  """VALID 2-D correlation of (..., H, W, C) with a (f, f) kernel, per channel."""
  win = np.lib.stride_tricks.sliding_window_view(a, kernel.shape, axis=(-3, -2))
  return np.einsum("...cij,ij->...c", win, kernel)


def _ssim64(x, y, f=11, sigma=1.5, k1=0.01, k2=0.03, max_val=1.0, weights=None):
  """(per-channel mean of l*cs, per-channel mean cs, error bound of each) in float64."""
  kernel = _window2d(f, sigma)
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  mx, my = _filt(x, kernel), _filt(y, kernel)
  sxy = _filt(x * y, kernel) - mx * my
  sxx, syy = _filt(x * x, kernel) - mx**2, _filt(y * y, kernel) - my**2
  a, b = 2 * mx * my + c1, mx**2 + my**2 + c1
  n, d = 2 * sxy + c2, sxx + syy + c2
  lum, cs = a / b, n / d
  delta = (2 * f + 3) * U32 * 2 * max_val**2
  rel_l = 8 * delta * (1 / abs(a) + 1 / abs(b)) + 2 * U32
  rel_cs = 8 * delta * (1 / abs(n) + 1 / abs(d)) + 2 * U32
  w = np.ones(lum.shape[:-1]) if weights is None else weights
  w = w[..., None]
  mean = lambda v: (v * w).sum((-3, -2)) / w.sum((-3, -2))  # noqa: E731
  npix = math.log2(lum[..., 0].size)
  ssim_c, cs_c = mean(lum * cs), mean(cs)
  bound_ssim = mean(abs(lum * cs) * (rel_l + rel_cs)) + npix * U32 * abs(ssim_c)
  bound_cs = mean(abs(cs) * rel_cs) + npix * U32 * abs(cs_c)
  return ssim_c, cs_c, bound_ssim, bound_cs


def _np_ssim(x, y, f=11, mask=None, **kw):
  w = None
  if mask is not None:
    r = (f - 1) // 2
    w = mask[..., r:mask.shape[-2] - r, r:mask.shape[-1] - r]
  s, _, bound, _ = _ssim64(x, y, f=f, weights=w, **kw)
  return s.mean(-1), bound.mean(-1)


def _np_pool(a):
  """SYMMETRIC end-padding of odd sides, then 2x2 mean; (..., H, W[, C]) with spatial at -3/-2
  (images) handled by the caller passing the spatial axes first."""
  h, w = a.shape[0], a.shape[1]
  if h % 2:
    a = np.concatenate([a, a[-1:]], 0)
  if w % 2:
    a = np.concatenate([a, a[:, -1:]], 1)
  return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _np_ms_ssim(x, y, f=11, power=im.MS_SSIM_POWER_FACTORS, mask=None):
  """Single image (H, W, C): float64 MS-SSIM and its float32 error bound."""
  values, rels = [], []
  for k, p in enumerate(power):
    if k:
      x, y = _np_pool(x), _np_pool(y)
      mask = None if mask is None else _np_pool(mask)
    w = None
    if mask is not None:
      r = (f - 1) // 2
      w = mask[r:mask.shape[0] - r, r:mask.shape[1] - r]
    s, cs, bs, bcs = _ssim64(x, y, f=f, weights=w)
    last = k == len(power) - 1
    v, b = (s, bs) if last else (cs, bcs)
    # Pooling rounds the inputs (relative u per level): counted as 2 more taps per level.
    b = b * (1 + 2 * k / (2 * f + 3))
    values.append(np.maximum(v, 0))
    rels.append(p * b / np.maximum(abs(v), 1e-30))
  out = np.prod([v**p for v, p in zip(values, power)], axis=0)
  bound = np.mean(out * (np.sum(rels, 0) + len(power) * 2 * U32))
  return out.mean(-1), bound


# ---------------------------------------------------------------- published reference values
def test_spec_reference_values_in_float64():
  # face-vae-spec.md section 8: 7 printed digits -> |error| <= 5e-8 (+ float64 rounding).
  with jax.enable_x64(True):
    x, y = _sinusoids(48)
    assert abs(float(im.ssim(x, y)) - 0.8253637) <= 6e-8
    assert abs(float(im.ssim(x, y, filter_size=9)) - 0.8168308) <= 6e-8
    assert abs(float(im.l1(x, y)) - 0.1031694) <= 6e-8
    assert abs(float(im.l2(x, y)) - 0.1325295) <= 6e-8
    x, y = _sinusoids(144)
    assert abs(float(im.ms_ssim(x, y, filter_size=9)) - 0.6215320) <= 6e-8
    four = im.MS_SSIM_POWER_FACTORS[:4]
    assert abs(float(im.ms_ssim(x, y, power_factors=four)) - 0.6724715) <= 6e-8
    assert abs(float(im.l1(x, y)) - 0.2157231) <= 6e-8
    assert abs(float(im.l2(x, y)) - 0.2790019) <= 6e-8
    x, y = _sinusoids(176)
    assert abs(float(im.ms_ssim(x, y)) - 0.5137037) <= 6e-8
    assert im.ssim(x, y).dtype == jnp.float64


def test_ms_ssim_at_144_with_tf_defaults_is_an_error():
  x, y = _sinusoids(144)
  with pytest.raises(ValueError, match="9x9, smaller than filter_size=11"):
    im.ms_ssim(x.astype(np.float32), y.astype(np.float32))
  with pytest.raises(ValueError, match="smaller than filter_size"):
    im.ssim(x[:8, :8], y[:8, :8])


# ---------------------------------------------------------------- float32 vs float64 NumPy
@pytest.mark.parametrize("size,f", [(12, 5), (9, 9), (48, 9)])
def test_band_matrix_product_is_valid_correlation(size, f):
  window = np.asarray(im.gaussian_window(f, 1.5, jnp.float32), np.float64)
  rng = np.random.default_rng(size)
  v = rng.uniform(-1, 1, size)
  band = np.asarray(im.band_matrix(size, jnp.asarray(window, jnp.float32)), np.float64)
  assert band.shape == (size - f + 1, size)
  # Exactly the window on the band, exact zeros elsewhere.
  assert np.count_nonzero(band) == (size - f + 1) * f
  np.testing.assert_allclose(band @ v, np.correlate(v, window, mode="valid"), rtol=0,
                             atol=1e-15)


@pytest.mark.parametrize("f", [11, 9, 7])
def test_ssim_float32_within_rounding_bound_of_numpy(f):
  x, y = _random_pair((2, 3, 40, 36, 3))
  ours = np.asarray(im.ssim(x.astype(np.float32), y.astype(np.float32), filter_size=f))
  assert ours.shape == (2, 3) and ours.dtype == np.float32
  ref, bound = _np_ssim(x.astype(np.float32).astype(np.float64),
                        y.astype(np.float32).astype(np.float64), f=f)
  assert np.all(np.abs(ours - ref) <= bound), (np.abs(ours - ref).max(), bound.min())


def test_ms_ssim_float32_within_rounding_bound_of_numpy():
  x, y = _sinusoids(67)  # odd sides at every scale -> the SYMMETRIC padding is exercised
  x32, y32 = x.astype(np.float32), y.astype(np.float32)
  ref, bound = _np_ms_ssim(x32.astype(np.float64), y32.astype(np.float64), f=5)
  ours = float(im.ms_ssim(x32, y32, filter_size=5))
  assert abs(ours - ref) <= bound


def test_masked_metrics_against_numpy_and_identities():
  x, y = _random_pair((2, 33, 33, 3), seed=1)
  rng = np.random.default_rng(2)
  mask = rng.uniform(0, 1, (2, 33, 33)) * (rng.uniform(0, 1, (2, 33, 33)) > 0.3)
  with jax.enable_x64(True):
    ours = np.asarray(im.ssim(x, y, mask=mask, filter_size=7))
    ref, _ = _np_ssim(x, y, f=7, mask=mask)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)  # float64 vs float64: rounding only
    for b in range(2):
      ref_ms, _ = _np_ms_ssim(x[b], y[b], f=3, power=(0.2, 0.3, 0.5), mask=mask[b])
      got = float(im.ms_ssim(x[b], y[b], mask=mask[b], filter_size=3,
                             power_factors=(0.2, 0.3, 0.5)))
      assert abs(got - ref_ms) <= 1e-12
    m = mask[..., None]
    np.testing.assert_allclose(im.l1(x, y, mask=mask),
                               (m * abs(x - y)).sum((1, 2, 3)) / (3 * mask.sum((1, 2))),
                               rtol=1e-12)
    np.testing.assert_allclose(im.l2(x, y, mask=mask),
                               np.sqrt((m * (x - y) ** 2).sum((1, 2, 3)) / (3 * mask.sum((1, 2)))),
                               rtol=1e-12)
    ones = np.ones(x.shape[:-1])
    for fn in (im.ssim, im.ms_ssim, im.l1, im.l2):
      kw = dict(filter_size=3) if fn in (im.ssim, im.ms_ssim) else {}
      np.testing.assert_allclose(fn(x, y, mask=ones, **kw), fn(x, y, **kw), rtol=1e-12)
      assert np.all(np.isnan(fn(x, y, mask=np.zeros_like(ones), **kw)))


def test_bad_shapes_and_masks_raise():
  x = np.zeros((4, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match="differ in shape"):
    im.ssim(x, x[:, :15])
  with pytest.raises(ValueError, match="mask must have shape"):
    im.l1(x, x, mask=np.ones((4, 16, 16, 1)))
  with pytest.raises(ValueError, match="odd filter_size"):
    im.ssim(x, x, mask=np.ones((4, 16, 16)), filter_size=4)
  with pytest.raises(ValueError, match=r"\(\.\.\., H, W, C\)"):
    im.l2(x[0, 0], x[0, 0])


def test_jit_and_gradient_are_finite_and_match_finite_differences():
  x, y = _random_pair((1, 24, 24, 3), seed=3)
  with jax.enable_x64(True):
    fn = jax.jit(lambda a: im.ms_ssim(a, y, filter_size=5, power_factors=(0.5, 0.5))[0])
    check_grads(fn, (x,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- second implementations
def test_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  x, y = _random_pair((3, 48, 44, 3), seed=4)
  x32, y32 = x.astype(np.float32), y.astype(np.float32)
  for f in (11, 9):
    ref, bound = _np_ssim(x32.astype(np.float64), y32.astype(np.float64), f=f)
    tf_val = tf.image.ssim(x32, y32, max_val=1.0, filter_size=f).numpy()
    ours = np.asarray(im.ssim(x32, y32, filter_size=f))
    assert np.all(np.abs(ours - tf_val) <= 2 * bound)
    assert np.all(np.abs(tf_val - ref) <= bound)
  xs, ys = _sinusoids(176)
  xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)
  _, bound = _np_ms_ssim(xs32.astype(np.float64), ys32.astype(np.float64))
  tf_ms = float(tf.image.ssim_multiscale(xs32, ys32, max_val=1.0).numpy())
  assert abs(float(im.ms_ssim(xs32, ys32)) - tf_ms) <= 2 * bound
  xs, ys = _sinusoids(144)
  xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)
  _, bound = _np_ms_ssim(xs32.astype(np.float64), ys32.astype(np.float64), f=9)
  tf_ms = float(tf.image.ssim_multiscale(xs32, ys32, max_val=1.0, filter_size=9).numpy())
  assert abs(float(im.ms_ssim(xs32, ys32, filter_size=9)) - tf_ms) <= 2 * bound


def test_matches_dm_pix_ssim():
  pix = pytest.importorskip("dm_pix")
  x, y = _random_pair((2, 40, 40, 3), seed=5)
  x32, y32 = x.astype(np.float32), y.astype(np.float32)
  _, bound = _np_ssim(x32.astype(np.float64), y32.astype(np.float64))
  # dm-pix clamps negative variances to 0 (TF does not); on noise the variances are far above
  # rounding, so the clamp is inactive and the float32 bound applies.
  theirs = np.asarray(pix.ssim(x32, y32, max_val=1.0))
  assert np.all(np.abs(np.asarray(im.ssim(x32, y32)) - theirs) <= 2 * bound)
