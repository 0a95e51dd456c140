"""Tests for the light rigs, screen-space shadows, ambient occlusion and multi-light rendering.

References are closed forms re-derived here in float64 (Lambert and Blinn-Phong on planes, the
shadow length of a step, the horizon-based occlusion of a step), the Ramamoorthi-Hanrahan
polynomial of `tests.numpy_reference` and its float64 per-pixel renderer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bioface_jax import physics
from data.synth import light_render, lighting, shadows
from tests import numpy_reference as ref


def _unit(v):
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v)


def _step(size=64, wall=20, height=10.0):
  """Depth of a raised block (columns < wall at `height`) on a ground plane at 0."""
  depth = np.zeros((size, size), np.float32)
  depth[:, :wall] = height
  return depth


@pytest.mark.parametrize("azimuth, elevation", [(180, 45), (180, 20), (150, 30), (210, 60),
                                                (165, 25)])
def test_step_casts_shadow_of_closed_form_length(azimuth, elevation):
  """A light toward the block (image direction e, rising k = tan(elevation) per pixel of
  travel): a ground pixel whose ray travels u pixels to reach the block top (column index 19)
  is shadowed iff u k < height - bias, away from a 1.5-pixel band at the boundary."""
  size, wall, height, bias = 64, 20, 10.0, 0.5
  l = _unit([np.cos(np.deg2rad(elevation)) * np.cos(np.deg2rad(azimuth)),
             np.cos(np.deg2rad(elevation)) * np.sin(np.deg2rad(azimuth)),
             np.sin(np.deg2rad(elevation))])
  vis = shadows.cast_shadow(_step(size, wall, height), None, l, bias=bias, slope_bias=0.0)
  e_col, e_row = l[0] / np.hypot(l[0], l[1]), -l[1] / np.hypot(l[0], l[1])
  k = l[2] / np.hypot(l[0], l[1])
  rows, cols = np.mgrid[0:size, 0:size]
  u = (cols - (wall - 1)) / -e_col  # travel to the block's last column
  hit_row = rows + u * e_row
  usable = (cols >= wall) & (hit_row >= 1) & (hit_row <= size - 2)
  margin = 1.5 * k
  dark = usable & (u * k < height - bias - margin)
  bright = usable & (u * k > height - bias + margin)
  assert dark.sum() > 20 and bright.sum() > 20
  np.testing.assert_array_equal(vis[dark], 0.0)
  np.testing.assert_array_equal(vis[bright], 1.0)
  np.testing.assert_array_equal(vis[:, :wall - 1], 1.0)  # the block's top is lit


def test_soft_shadow_spans_the_penumbra_of_the_light_disc():
  size, wall, height, el, radius = 64, 20, 10.0, 30.0, 10.0
  l = _unit([-np.cos(np.deg2rad(el)), 0.0, np.sin(np.deg2rad(el))])
  vis = shadows.cast_shadow(_step(size, wall, height), None, l, angular_radius=radius,
                            samples=5, bias=0.0, slope_bias=0.0)
  row = vis[size // 2, wall:].astype(np.float64)
  u = np.arange(wall, size) - (wall - 1)
  umbra = u * np.tan(np.deg2rad(el + radius)) < height - 1.5
  lit = u * np.tan(np.deg2rad(el - radius)) > height + 1.5
  np.testing.assert_array_equal(row[umbra], 0.0)
  np.testing.assert_array_equal(row[lit], 1.0)
  assert np.all(np.diff(row) >= -1e-6)  # brightens monotonically away from the block
  partial = (row > 0) & (row < 1)
  assert partial.sum() >= 3


def test_convex_sphere_has_no_shadow_acne():
  size, radius = 64, 28.0
  yy, xx = np.mgrid[0:size, 0:size] + 0.5 - size / 2
  inside = xx**2 + yy**2 < radius**2
  depth = np.sqrt(np.maximum(radius**2 - xx**2 - yy**2, 0)).astype(np.float32)
  normals = np.stack([xx, -yy, depth], -1) / radius
  for l in ([0.8, 0.3, 0.5], [-0.2, -0.9, 0.4], [0.95, 0.0, 0.1]):
    vis = shadows.cast_shadow(depth, inside, l)
    lit = inside & (normals @ _unit(l) > 0.15)
    assert vis[lit].min() == 1.0


def test_lights_behind_or_on_the_view_axis_cast_no_shadow():
  depth = _step()
  for l in ([-0.5, 0.2, -0.3], [0.0, 0.0, 1.0]):
    np.testing.assert_array_equal(shadows.cast_shadow(depth, None, l), 1.0)
  with pytest.raises(ValueError, match="direction"):
    shadows.cast_shadow(depth, None, [0, 0, 0])


def test_large_images_are_shadowed_at_a_stride():
  big = shadows.cast_shadow(_step(512, 160, 80.0), None, _unit([-1, 0, 1]), max_size=256)
  row = big[256]
  # Block top at column 159 (stride-2 samples: within 2 px), shadow length (80 - 0.5) / 1.
  assert row[:158].min() == 1.0 and row[162:236].max() == 0.0 and row[244:].min() == 1.0


def test_ambient_occlusion_of_a_step_matches_the_horizon_closed_form():
  """Four axis directions, a sample at every pixel out to the radius: only the direction
  toward the wall sees a horizon, at elevation atan(height / d); ground normals are +z, so the
  visibility is 1 - (1/4) sin(atan(height / d)) for d <= radius."""
  size, wall, height, radius = 48, 20, 6.0, 12
  depth = _step(size, wall, height)
  normals = np.zeros((size, size, 3), np.float32)
  normals[..., 2] = 1.0
  ao = shadows.ambient_occlusion(depth, None, normals, radius=radius, directions=4,
                                 steps=radius, max_size=size)
  d = np.arange(wall, size) - (wall - 1)
  expected = np.where(d <= radius, 1 - 0.25 * height / np.sqrt(height**2 + d**2), 1.0)
  np.testing.assert_allclose(ao[size // 2, wall:], expected, atol=1e-5)


def test_ambient_occlusion_of_a_tilted_plane_is_one():
  size = 32
  rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
  p, q = 0.4, -0.3  # z = p X + q Y with X = column, Y = -row
  depth = (p * cols - q * rows).astype(np.float32)
  n = _unit([-p, -q, 1.0])
  normals = np.broadcast_to(n.astype(np.float32), (size, size, 3))
  ao = shadows.ambient_occlusion(depth, None, normals, radius=6, max_size=size)
  inner = ao[8:-8, 8:-8]
  np.testing.assert_allclose(inner, 1.0, atol=1e-5)


def _plane(size=32, p=0.3, q=0.2):
  rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
  depth = (p * cols - q * rows).astype(np.float32)
  n = _unit([-p, -q, 1.0])
  return np.broadcast_to(n.astype(np.float32), (size, size, 3)).copy(), depth, n


def _rig(lights, ao=0.0):
  return dict(kind="test", mixed=False, ao_strength=ao, shadows=True,
              groups=[dict(source="sun", weights=[0, 1] + [0] * 12, t=3.0)], lights=lights)


def test_flat_plane_under_a_directional_light_is_lambert_and_blinn_phong():
  normals, depth, n = _plane()
  mask = np.ones(depth.shape, bool)
  l = _unit([0.5, 0.4, 0.8])
  rig = _rig([dict(type="directional", group=0, intensity=1.7, direction=l.tolist(),
                   angular_radius=0.0)])
  out = lighting.shade(rig, normals, depth, mask, shininess=25.0)["groups"][0]
  h = _unit(l + [0, 0, 1])
  np.testing.assert_allclose(out["diffuse"], 1.7 * (n @ l), rtol=1e-5)
  np.testing.assert_allclose(out["specular"], 1.7 * (n @ h) ** 25.0, rtol=1e-4)
  shininess = np.where(np.arange(32)[None, :] < 16, 25.0, 8.0) * np.ones((32, 1))
  mixed = lighting.shade(rig, normals, depth, mask, shininess=shininess)["groups"][0]
  np.testing.assert_allclose(mixed["specular"], 1.7 * (n @ h) ** shininess, rtol=1e-4)


def test_area_light_widens_the_highlight_and_keeps_its_energy():
  s, radius = 30.0, 20.0
  s2, peak = lighting.widened(s, radius)
  a = np.deg2rad(radius)
  assert s2 == pytest.approx(1 / (1 / s + a * a / 16))
  assert peak == pytest.approx(s2 / s)
  # Energy of the lobe ~ peak * 2 pi / s' (Gaussian approximation) stays 2 pi / s.
  assert peak * 2 * np.pi / s2 == pytest.approx(2 * np.pi / s)


def test_point_light_falls_off_with_the_inverse_square_of_distance():
  size = 32
  normals = np.zeros((size, size, 3), np.float32)
  normals[..., 2] = 1.0
  depth = np.zeros((size, size), np.float32)
  pos = np.array([0.3, 0.2, 0.8])
  rig = _rig([dict(type="point", group=0, intensity=2.0, position=pos.tolist(),
                   angular_radius=0.0)])
  out = lighting.shade(rig, normals, depth, np.ones_like(depth, bool))["groups"][0]
  x = (np.arange(size) + 0.5 - size / 2) / size
  y = (size / 2 - np.arange(size) - 0.5) / size
  points = np.stack(np.broadcast_arrays(x[None], y[:, None], 0 * x[None]), -1)
  to = pos - points
  dist = np.linalg.norm(to, axis=-1)
  expected = 2.0 * (pos @ pos) / dist**2 * to[..., 2] / dist
  np.testing.assert_allclose(out["diffuse"], expected, rtol=1e-5)


def test_environment_shading_is_the_sh_irradiance():
  rng = np.random.default_rng(0)
  n = rng.normal(size=(16, 16, 3))
  n[..., 2] = np.abs(n[..., 2])
  n = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
  sh = lighting.sample_environment(rng, 0.3, 0.8)
  mask = rng.uniform(size=(16, 16)) < 0.8
  rig = _rig([dict(type="environment", group=0, intensity=1.3, sh=sh.tolist())])
  out = lighting.shade(rig, n, np.zeros((16, 16), np.float32), mask)
  expected = np.maximum(ref.sh_irradiance(n.astype(np.float64), 1.3 * sh), 0) * mask
  np.testing.assert_allclose(out["groups"][0]["diffuse"], expected, atol=2e-6 * abs(sh).max())
  jax_e = np.maximum(np.asarray(physics.sh_irradiance(n, (1.3 * sh).astype(np.float32))), 0)
  np.testing.assert_allclose(out["groups"][0]["diffuse"], jax_e * mask, atol=1e-5)


def test_sampled_rigs_are_valid_json_and_deterministic():
  kinds, multi = set(), 0
  for i in range(60):
    rig = lighting.sample_rig(np.random.default_rng([1, i]),
                              lighting.LightOptions(mixed_probability=0.5))
    assert json.loads(json.dumps(rig)) == rig
    assert rig == lighting.sample_rig(np.random.default_rng([1, i]),
                                      lighting.LightOptions(mixed_probability=0.5))
    kinds.add(rig["kind"])
    for grp in rig["groups"]:
      w = np.asarray(grp["weights"])
      assert w.shape == (14,) and w.min() >= 0 and abs(w.sum() - 1) < 1e-9
      assert 1 <= grp["t"] <= 22
    assert {l["group"] for l in rig["lights"]} <= set(range(len(rig["groups"])))
    assert rig["mixed"] == (len(rig["groups"]) > 1)
    assert len(rig["b"]) == 2 and max(map(abs, rig["b"])) <= 3
    d = lighting.dominant_direction(rig)
    assert abs(np.linalg.norm(d) - 1) < 1e-6
    multi += rig["mixed"]
  assert kinds == set(lighting.KINDS)
  assert 5 < multi < 45
  single = lighting.sample_rig(np.random.default_rng(3), lighting.LightOptions(
      mixed_probability=0.0))
  assert len(single["groups"]) == 1
  with pytest.raises(ValueError, match="kinds"):
    lighting.LightOptions(kinds=(1.0,))


def test_shade_on_a_face_shape_is_bounded_and_zero_off_the_mask():
  size = 32
  yy, xx = np.mgrid[0:size, 0:size] + 0.5 - size / 2
  mask = xx**2 + yy**2 < 14**2
  depth = np.where(mask, np.sqrt(np.maximum(14**2 - xx**2 - yy**2, 0)), 0).astype(np.float32)
  normals = (np.stack([xx, -yy, depth], -1) / 14 * mask[..., None]).astype(np.float32)
  for i in range(12):
    rig = lighting.sample_rig(np.random.default_rng([2, i]),
                              lighting.LightOptions(mixed_probability=1.0))
    out = lighting.shade(rig, normals, depth, mask, 20.0)
    for g in out["groups"]:
      assert np.isfinite(g["diffuse"]).all() and g["diffuse"].min() >= 0
      assert g["specular"].min() >= 0
      assert not g["diffuse"][~mask].any() and not g["specular"][~mask].any()
    share = lighting.main_share(out["groups"])
    assert share.min() >= 0 and share.max() <= 1 + 1e-6


def test_render_skin_white_balances_every_group_for_the_main_light(spectra):
  rng = np.random.default_rng(4)
  size, lut_size = 3, 16
  table = ref.lut(lut_size)
  fmel = rng.uniform(-0.9, 0.9, (size, size))
  fblood = rng.uniform(-0.9, 0.9, (size, size))
  diffuse = rng.uniform(0.0, 1.0, (2, size, size))
  specular = rng.uniform(0.0, 0.2, (2, size, size))
  weights = np.zeros((2, 14))
  weights[0, 1] = 1.0  # daylight
  weights[1, 0] = 1.0  # CIE A
  t = np.array([3.0, 10.0])
  b = np.array([0.5, -0.3])
  refs = [ref.render(table, fmel, fblood, diffuse[g], specular[g], weights[g], t[g], b)
          for g in range(2)]
  raw = refs[0]["raw"] + refs[1]["raw"]
  lc = [ref.sensitivity(b) @ ref.illuminant(weights[g], t[g]) for g in range(2)]
  tm = ref.t_matrix(b)
  expected = np.maximum(0, np.einsum("ij,hwj->hwi", ref.M_SRGB @ tm, raw / lc[0]))
  lut = physics.skin_lut(spectra, lut_size)
  f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
  out = light_render.render_skin(spectra, lut, f32(fmel), f32(fblood), f32(diffuse),
                                 f32(specular), f32(weights), f32(t), f32(b))
  np.testing.assert_allclose(np.asarray(out["linear_srgb"]), expected, rtol=2e-3, atol=1e-5)
  albedo = np.maximum(0, np.einsum("ij,hwj->hwi", ref.M_SRGB @ tm,
                                   refs[0]["diffuse_albedo"] / lc[0]))
  np.testing.assert_allclose(np.asarray(out["albedo"]), albedo, rtol=2e-3, atol=1e-5)
  colours = np.asarray(light_render.light_colours(spectra, f32(weights), f32(t), f32(b)))
  np.testing.assert_allclose(colours, np.asarray(out["colours"]), rtol=1e-5)
  np.testing.assert_allclose(colours[1], np.maximum(0, ref.M_SRGB @ tm @ (lc[1] / lc[0])),
                             rtol=2e-3)
  assert colours[1, 0] > colours[1, 2]  # tungsten under daylight balance looks warm
