"""bioface_jax.photometric against closed forms and float64 NumPy references (sdps-spec.md §2-6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


from bioface_jax import photometric as ps

EPS32 = float(np.finfo(np.float32).eps)


def sphere(size=64, centre=32.0, radius=28.0):
  """Analytic sphere normals at pixel centres (float64) and its mask (spec §4 reference)."""
  i, j = np.mgrid[0:size, 0:size]
  x, y = (j + 0.5 - centre) / radius, -(i + 0.5 - centre) / radius
  r2 = x * x + y * y
  mask = r2 < 1
  n = np.stack([x, y, np.sqrt(np.clip(1 - r2, 0, None))], -1) * mask[..., None]
  return n, mask


def subset(k):
  return ps.diligent_like_lights()[np.round(np.linspace(0, 95, k)).astype(int)]


def test_render_lambertian_closed_form():
  n, _ = sphere(16, 8, 7)
  rng = np.random.default_rng(0)
  lights = subset(5)
  ints = rng.uniform(0.2, 2, (5, 3))
  albedo = rng.uniform(0, 1, (16, 16))
  out = np.asarray(ps.render_lambertian(n.astype(np.float32), lights.astype(np.float32),
                                        ints.astype(np.float32), albedo.astype(np.float32)))
  ref = (albedo[None, :, :, None] * ints[:, None, None, :]
         * np.maximum(0, np.einsum("hwc,nc->nhw", n, lights))[..., None])
  assert out.shape == (5, 16, 16, 3)
  # float32: a 3-term dot product and 2 products, each |term| <= max value.
  np.testing.assert_allclose(out, ref, rtol=0, atol=8 * EPS32 * ref.max())
  assert np.all(out[:, 0, 0] == 0)  # background (zero normal) renders 0


@pytest.mark.parametrize("intensities", ["none", "grey", "rgb"])
def test_render_grey_albedo_gives_three_channels(intensities):
  """A grey (H, W) albedo renders (N, H, W, 3), the same in every channel (the contract)."""
  n, _ = sphere(8, 4, 3.5)
  lights = subset(3)
  albedo = np.random.default_rng(2).uniform(0, 1, (8, 8))
  ints = {"none": None, "grey": np.array([0.5, 1.0, 2.0]),
          "rgb": np.tile([[0.5], [1.0], [2.0]], (1, 3))}[intensities]
  with jax.enable_x64(True):
    out = np.asarray(ps.render_lambertian(n, lights, ints, albedo))
    full = np.asarray(ps.render(n, lights, ints, albedo, blinn_phong=(albedo * 0, 1.0)))
  assert out.shape == full.shape == (3, 8, 8, 3)
  scale = np.ones(3) if ints is None else np.array([0.5, 1.0, 2.0])
  ref = (scale[:, None, None] * albedo * np.maximum(0, np.einsum("hwc,nc->nhw", n, lights)))
  for c in range(3):
    np.testing.assert_allclose(out[..., c], ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(full[..., c], ref, rtol=0, atol=1e-15)


def test_render_batched_and_x64_dtype():
  n, _ = sphere(8, 4, 3.5)
  lights = np.stack([subset(3), subset(4)[:3]])  # (2, 3, 3)
  with jax.enable_x64(True):
    out = ps.render_lambertian(jnp.asarray(np.stack([n, n])), jnp.asarray(lights))
    assert out.dtype == jnp.float64 and out.shape == (2, 3, 8, 8, 3)
    ref = np.maximum(0, np.einsum("hwc,bnc->bnhw", n, lights))[..., None]
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to(ref, out.shape), atol=1e-15)


def test_specular_closed_forms():
  n = np.zeros((1, 1, 3), np.float32)
  n[..., 2] = 1
  l = np.asarray([[0.0, 0.0, 1.0]], np.float32)  # n = l = v = h
  k = np.full((1, 1), 0.5, np.float32)
  bp = ps.render(n, l, albedo=np.zeros((1, 1)), blinn_phong=(k, 30.0))
  np.testing.assert_allclose(np.asarray(bp)[0, 0, 0], 0.5, rtol=4 * EPS32)
  r, f0 = 0.3, 0.05
  ct = ps.render(n, l, albedo=np.zeros((1, 1)), cook_torrance=(k, r, f0))
  # n·h = v·h = 1: D = 1/(π α²), F = F0, G = 1 -> k·π·D·F/4 = k F0 / (4 α²), α = r².
  # float32: (n·h)²(α²−1) + 1 = α² is formed by cancellation (absolute error ~eps) and then
  # squared, so the relative error is ~4·eps/α⁴ on top of a few roundings.
  np.testing.assert_allclose(np.asarray(ct)[0, 0, 0], 0.5 * f0 / (4 * r ** 4),
                             rtol=4 * EPS32 / r ** 8 + 32 * EPS32)


def test_cast_shadow_of_a_pillar():
  depth = np.zeros((5, 20), np.float32)
  depth[:, 10] = 10.0  # a 10-px-high wall at column 10
  mask = np.ones_like(depth)
  l = np.asarray([[np.sqrt(0.5), 0.0, np.sqrt(0.5)]], np.float32)  # 45° from +x
  v = np.asarray(ps.cast_shadows(depth, mask, l, num_steps=15))[0]
  # p at column j < 10 reaches the wall at t = 10 − j; shadowed iff t + 0.5 < 10.
  expected = np.ones(20)
  expected[1:10] = 0
  np.testing.assert_array_equal(v[2], expected)
  overhead = np.asarray(ps.cast_shadows(depth, mask, np.asarray([[0, 0, 1.0]]), 15))
  assert np.all(overhead == 1)


@pytest.mark.parametrize("k,l2,default", [(3, 3.61, 16.2), (4, 3.04, 7.32), (8, 1.81, 0.0),
                                          (16, 1.66, 0.0), (96, 1.54, 0.0)])
def test_woodham_reference_table(k, l2, default):
  """Spec §4 table (independent NumPy float64 values, printed to 0.01 / 3 significant digits)."""
  n, mask = sphere()
  lights = subset(k).astype(np.float32)
  images = ps.render_lambertian(n.astype(np.float32), lights)
  got_l2 = float(ps.mean_angular_error(ps.woodham(images, lights, shadow_threshold=None)[0],
                                       n, mask))
  got = float(ps.mean_angular_error(ps.woodham(images, lights)[0], n, mask))
  assert abs(got_l2 - l2) <= 0.006
  assert abs(got - default) <= (0.06 if default else 0.05)  # goal: < 0.05° in float32


def test_woodham_exact_in_float64_with_intensities_and_albedo():
  n, mask = sphere(32, 16, 14)
  rng = np.random.default_rng(1)
  lights = subset(12)
  ints = rng.uniform(0.2, 2, (12, 3))
  albedo = rng.uniform(0.2, 1, (32, 32))
  with jax.enable_x64(True):
    images = ps.render_lambertian(jnp.asarray(n), jnp.asarray(lights), jnp.asarray(ints),
                                  jnp.asarray(albedo))
    est, rho = ps.woodham(images, jnp.asarray(lights), jnp.asarray(ints), mask=mask)
    e = ps.angular_error(est, jnp.asarray(n), mask)
    lit = np.sum(np.einsum("hwc,nc->nhw", n, lights) > 0, 0) >= 3
    assert float(jnp.max(jnp.where(lit & mask, e, 0))) < 1e-4  # goal: < 1e-4° in float64
    np.testing.assert_allclose(np.asarray(rho)[lit & mask], albedo[lit & mask], rtol=1e-10)
    assert np.all(np.asarray(est)[~mask] == 0)


def test_woodham_discard_ranks():
  n, mask = sphere(16, 8, 7)
  lights = subset(16).astype(np.float32)
  images = ps.render_lambertian(n.astype(np.float32), lights)
  est, _ = ps.woodham(images, lights, shadow_threshold=None, discard_dark=0.25,
                      discard_bright=0.1)
  assert float(ps.mean_angular_error(est, n, mask)) < 5.0


def test_encode_decode_round_trip_and_floor():
  az, el = np.meshgrid(np.arange(36), np.arange(36), indexing="ij")
  dirs = ps.decode_light_direction(az, el)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(dirs), axis=-1), 1, atol=4 * EPS32)
  a2, e2 = ps.encode_light_direction(dirs)
  np.testing.assert_array_equal(np.asarray(a2), az)
  np.testing.assert_array_equal(np.asarray(e2), el)
  assert a2.dtype == jnp.int32
  # θ = (k + .5)·5° − 90°: class 18 at θ = 2.5°, φ = 0.
  c, s = np.cos(np.radians(2.5)), np.sin(np.radians(2.5))
  np.testing.assert_allclose(np.asarray(dirs[18, 18]), [c * s, s, c * c], atol=4 * EPS32)
  e = np.arange(20)
  centres = np.asarray(ps.decode_light_intensity(e))
  np.testing.assert_allclose(centres, 0.2 + (e + 0.5) * 0.09, atol=4 * EPS32)
  np.testing.assert_array_equal(np.asarray(ps.encode_light_intensity(centres)), e)
  np.testing.assert_array_equal(np.asarray(ps.encode_light_intensity([0.0, 5.0])), [0, 19])


def test_quantisation_floor_matches_spec():
  dirs = ps.sample_light_directions(jax.random.key(0), (200_000,))
  err = np.asarray(ps.light_direction_error(ps.decode_light_direction(
      *ps.encode_light_direction(dirs)), dirs))
  assert abs(err.mean() - 1.73) < 0.02 and 3.3 < err.max() < 3.6  # spec §3: 1.73° / 3.5°
  dl = ps.diligent_like_lights()
  assert dl.shape == (96, 3) and np.degrees(np.arccos(dl[:, 2])).max() < 44.0  # DiLiGenT: <= 43°
  e = np.asarray(ps.sample_light_intensities(jax.random.key(1), (100_000,)))
  rel = np.abs(np.asarray(ps.decode_light_intensity(ps.encode_light_intensity(e))) - e) / e
  assert abs(rel.mean() - 0.029) < 0.002  # spec §3: 2.9 %


def test_sampling_strategies():
  key = jax.random.key(3)
  d = np.asarray(ps.sample_light_directions(key, (4, 1000), max_polar_deg=60))
  np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1, atol=4 * EPS32)
  assert d[..., 2].min() >= np.cos(np.radians(60)) - 1e-6
  hi = np.asarray(ps.sample_light_intensities(key, (8, 32), "high"))
  assert hi.min() >= 1 and hi.max() <= 2
  st = np.asarray(ps.sample_light_intensities(key, (8, 32), "stratified", num_strata=4))
  counts = np.stack([np.sum((st >= 0.2 + s * 0.45) & (st < 0.2 + (s + 1) * 0.45), -1)
                     for s in range(4)], -1)
  np.testing.assert_array_equal(counts, 8)
  with pytest.raises(ValueError, match="strategy"):
    ps.sample_light_intensities(key, (2,), "bogus")


def test_expected_decode_is_soft_argmax():
  logits = jnp.full((36,), -1e4).at[10].set(0.0)
  d = ps.expected_light_direction(logits, logits)
  np.testing.assert_allclose(np.asarray(d), np.asarray(ps.decode_light_direction(10, 10)),
                             atol=8 * EPS32)


def test_angular_error_closed_forms():
  a = np.asarray([[[1.0, 0, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]]], np.float32)
  t = np.radians(1e-3)
  b = np.asarray([[[0.0, 1, 0], [np.sin(t), 0, np.cos(t)], [0, 0, 1], [2, 2, 0]]], np.float32)
  e = np.asarray(ps.angular_error(a, b))
  np.testing.assert_allclose(e[0, :3], [90, 1e-3, 90], rtol=1e-4)  # no arccos floor near 0°
  assert e[0, 3] < 1e-5
  mask = np.asarray([[1, 1, 0, 0]], np.float32)
  assert np.asarray(ps.angular_error(a, b, mask))[0, 2] == 0
  np.testing.assert_allclose(float(ps.mean_angular_error(a, b, mask)), 45.0005, rtol=1e-5)
  assert np.isnan(float(ps.mean_angular_error(a, b, np.zeros((1, 4)))))
  stats = ps.normal_error_stats(a, b, np.ones((1, 4)))
  np.testing.assert_allclose(float(stats["median"]), (90 + 1e-3) / 2, rtol=1e-4)
  np.testing.assert_allclose(float(stats["pct_under_11.25"]), 50.0)


def test_intensity_error_is_scale_invariant():
  g = np.asarray([[1.0, 0.5, 2.0, 1.5]])
  assert float(ps.intensity_error(3 * g, g)[0]) < 1e-6
  p = g * np.asarray([[1.0, 1.1, 1.0, 1.0]])
  assert float(ps.intensity_error(p, g)[0]) > 0.01


def test_bad_inputs_name_the_problem():
  n, _ = sphere(8, 4, 3.5)
  n = n.astype(np.float32)
  lights = subset(4).astype(np.float32)
  images = ps.render_lambertian(n, lights)
  with pytest.raises(ValueError, match="4 images but lights has 3"):
    ps.woodham(images, lights[:3])
  with pytest.raises(ValueError, match="unit vectors"):
    ps.render_lambertian(n, lights * 1.1)
  with pytest.raises(ValueError, match="upper hemisphere"):
    ps.encode_light_direction(lights * np.asarray([1, 1, -1], np.float32))
  with pytest.raises(ValueError, match="NaN"):
    ps.woodham(np.where(np.asarray(images) > 0.5, np.nan, images), lights)
  with pytest.raises(ValueError, match="normals must have shape"):
    ps.render_lambertian(n[..., :2], lights)
  with pytest.raises(ValueError, match="intensities must have shape"):
    ps.render_lambertian(n, lights, np.ones(5))
  with pytest.raises(ValueError, match="albedo"):
    ps.render_lambertian(n, lights, albedo=np.ones((4, 4)))
  with pytest.raises(ValueError, match="must match"):
    ps.angular_error(n, n[..., :4, :])
  # Inside jit only shapes are checked (values are the caller's responsibility).
  jax.jit(ps.render_lambertian)(n, lights)
