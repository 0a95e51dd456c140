"""The scene generator's fast paths give the same samples as the straightforward forms they
replaced (issue 18: 64-px face crops at >= 20/s without changing what is drawn).

Every shortcut performs the same floating-point operations in the same order on the pixels or
vertices it keeps (or only skips work whose result is provably unused), so the tolerance is
zero: outputs are compared bit for bit (`assert_array_equal`, which counts -0 == 0). The
references are the previous implementations, kept here (or in the library where they are
still the general form: `geometry.grid_normals`, `raster._rasterise_flat` without candidates).
"""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax.face3d import raster
from data.synth import (geometry, grid_raster, head, light_camera, raycast, scene, scene_render,
                        shape_space)
from data.synth import appearance
from bioface_jax.physics.shading import shading_target_numpy


@pytest.fixture(scope="module")
def template():
  return geometry.load_template()


def _posed(template, seed, size):
  rng = np.random.default_rng(seed)
  vertices, *_ = shape_space.sample_shape(rng, template)
  angles = rng.uniform(-1, 1, 3) * [45.0, 20.0, 15.0]
  pose = scene.framing_pose(rng, scene.SceneOptions(size=size // 2), vertices, template, angles)
  frame = raycast.Frame(*geometry.screen_transform(vertices, template, pose, size))
  return vertices, pose, frame, frame.to_screen(vertices)


@pytest.mark.parametrize("seed,size", [(0, 32), (1, 64), (2, 128)])
def test_grid_candidates_and_normals_match_full_mesh(template, seed, size):
  _, _, _, screen = _posed(template, seed, size)
  tris = template.triangles
  full = raster._rasterise_flat(screen, tris, size, size)
  cand = grid_raster.candidates(screen, template, size, size)
  assert np.all(np.diff(cand) > 0) and len(cand) < len(tris)
  for a, b in zip(full, raster._rasterise_flat(screen, tris, size, size, cand)):
    np.testing.assert_array_equal(a, b)
  at = np.unique(np.concatenate([tris[full[1]].ravel(), template.landmark_vertices]))
  flipped = screen * np.array([1.0, -1.0, 1.0])
  np.testing.assert_array_equal(grid_raster.normals_at(flipped, template, at),
                                geometry.grid_normals(flipped, template)[at])


# --- truth reduction: the previous _blocks-based forms ----------------------------------------


def _old_mean_over(x, where, k):
  w = scene_render._blocks(where.astype(np.float32), k)
  xb = scene_render._blocks(x, k)
  w_ = w.reshape(w.shape + (1,) * (xb.ndim - w.ndim))
  total = (xb * w_).sum(3)
  count = w.sum(3).reshape(w.shape[:3] + (1,) * (xb.ndim - w.ndim))
  return np.where(count > 0, total / np.maximum(count, 1e-9), 0.0).astype(np.float32)


def _old_mode(labels, k):
  lb = scene_render._blocks(labels, k)
  counts = (lb[..., :, None] == lb[..., None, :]).sum(-1)
  return np.take_along_axis(lb, np.argmax(counts, -1)[..., None], -1)[..., 0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_footprint_reductions_match_blocks(k):
  rng = np.random.default_rng(k)
  r = 12 * k
  x3 = rng.normal(size=(3, r, r)).astype(np.float32)
  x4 = rng.normal(size=(3, r, r, 3)).astype(np.float32)
  where = rng.uniform(size=(3, r, r)) < 0.6
  np.testing.assert_array_equal(scene_render._footprint_mean(x3, k),
                                scene_render._blocks(x3, k).mean(3))
  np.testing.assert_array_equal(scene_render._footprint_mean(x4, k),
                                scene_render._blocks(x4, k).mean(3))
  weights = scene_render._Weights(where, k)
  for x in (x3, x4):
    np.testing.assert_array_equal(scene_render._mean_over(x, weights, k),
                                  _old_mean_over(x, where, k))
  labels = rng.integers(0, 4, (3, r, r)).astype(np.uint8)  # Few labels: many ties.
  np.testing.assert_array_equal(scene_render._mode(labels, k), _old_mode(labels, k))


# --- ray casting: boxes, nearest, shading on the mask -------------------------------------------


def _old_nearest(*hits):
  depth = np.stack([h.depth for h in hits])
  idx = np.argmax(depth, 0)
  best = np.take_along_axis(depth, idx[None], 0)[0]
  pick = lambda attr: np.take_along_axis(  # noqa: E731
      np.stack([getattr(h, attr) for h in hits]), idx[None, ..., None], 0)[0]
  margin = np.take_along_axis(np.stack([h.margin for h in hits]), idx[None], 0)[0]
  return np.where(np.isfinite(best), idx, -1), raycast.Hit(best, pick("point"),
                                                           pick("normal"), margin)


def _assert_same_hit(a, b):
  for name in ("depth", "point", "normal", "margin"):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxed_casts_and_nearest_match_full_image(template, seed):
  size = 48
  _, pose, frame, _ = _posed(template, seed, size)
  rng = np.random.default_rng(seed)
  params = head.sample_head(rng, bool(seed % 2))
  keep = rng.uniform(size=(size, size)) < 0.8
  r = raycast.rays(frame, size)
  full = raycast.expand(raycast.ellipsoid(raycast.subset(r, keep), frame, head.SKULL_CENTRE,
                                          params.skull_radii), keep)
  radii = np.asarray(params.skull_radii)
  box = raycast.screen_box(frame, head.SKULL_CENTRE - radii, head.SKULL_CENTRE + radii, size)
  assert box.sum() < box.size
  boxed = raycast.cast_in(lambda q: raycast.ellipsoid(q, frame, head.SKULL_CENTRE, radii), r,
                          keep & box)
  _assert_same_hit(full, boxed)
  y_range = (-150.0, 40.0)
  cyl = raycast.cylinder_y(r, frame, (0.0, 0.0), (60.0, 50.0), y_range)
  cyl_box = raycast.screen_box(frame, [-60.0, y_range[0], -50.0], [60.0, y_range[1], 50.0],
                               size)
  _assert_same_hit(cyl, raycast.cast_in(
      lambda q: raycast.cylinder_y(q, frame, (0.0, 0.0), (60.0, 50.0), y_range), r, cyl_box))
  # Every public entry point at once against the previous implementation's outputs.
  hits = head.skull_hits(params, frame, size, keep)
  old_r = raycast.subset(r, keep)
  old_skull = raycast.ellipsoid(old_r, frame, head.SKULL_CENTRE, params.skull_radii)
  old_skull = raycast.expand(old_skull.where(old_skull.point[..., 1] > -25.0), keep)
  _assert_same_hit(hits["skull"], old_skull)
  a = raycast.ellipsoid(r, frame, [0.0, -50.0, 0.0], [70.0, 60.0, 60.0])
  idx_new, new = raycast.nearest(cyl, full, a)
  idx_old, old = _old_nearest(cyl, full, a)
  np.testing.assert_array_equal(idx_new, idx_old)
  _assert_same_hit(new, old)


def test_sh_shading_on_mask_matches_full_image():
  rng = np.random.default_rng(3)
  rig = light_camera.sample_rig(rng, scene.SceneOptions().face)
  n = rng.normal(size=(40, 40, 3)).astype(np.float32)
  n /= np.linalg.norm(n, axis=-1, keepdims=True)
  mask = rng.uniform(size=(40, 40)) < 0.5
  out = light_camera.shade(rig, n, np.zeros((40, 40), np.float32), mask, 30.0)["groups"][0]
  sh = np.asarray(rig["lights"][0]["sh"], np.float32)
  diffuse = (shading_target_numpy(n, np.tile(sh, (3, 1))) * mask).astype(np.float32)
  lobe = (appearance.blinn_phong(n, light_camera.dominant_direction(rig), shininess=30.0)
          * mask).astype(np.float32)
  np.testing.assert_array_equal(out["diffuse"], diffuse)
  np.testing.assert_array_equal(out["specular"], lobe)


def _old_pick(index, values, fill=0.0):
  stack = np.stack(values)
  idx = np.clip(index, 0, len(values) - 1)
  extra = stack.ndim - 3
  out = np.take_along_axis(stack, idx[None, ..., None] if extra else idx[None], 0)[0]
  cond = (index >= 0)[..., None] if extra else index >= 0
  return np.where(cond, out, fill)


def test_pick_matches_stacked_gather():
  rng = np.random.default_rng(4)
  index = rng.integers(-1, 3, (20, 20))
  maps = [rng.normal(size=(20, 20)), rng.normal(size=(20, 20)).astype(np.float32),
          np.full((20, 20), -np.inf)]
  normals = [rng.normal(size=(20, 20, 3)).astype(np.float32) for _ in range(3)]
  labels = [np.broadcast_to(np.uint8(i + 1), (20, 20)) for i in range(3)]
  for values, fill in ((maps, -np.inf), (normals, 0.0), (labels, 0)):
    new, old = scene._pick(index, values, fill), _old_pick(index, values, fill)
    assert new.dtype == old.dtype
    np.testing.assert_array_equal(new, old)


def test_batches_overlapping_render_equal_render_per_chunk():
  """`batches` finishes each batch after laying out the next (its render runs meanwhile):
  the same batches, in order, as rendering each chunk on its own (the last one padded)."""
  opts = scene.SceneOptions(size=16)
  gen = scene_render.SceneGenerator(opts, 0, batch_size=2)
  got = list(gen.batches(range(3)))
  chunks = [[scene.sample_scene(0, i, opts) for i in c] for c in ((0, 1), (2,))]
  assert len(got) == 2
  for out, chunk in zip(got, chunks):
    want = gen.render(chunk)
    assert out.keys() == want.keys()
    for key in want:
      np.testing.assert_array_equal(out[key], want[key], err_msg=key)
