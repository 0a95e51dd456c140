"""Tests for the face-scene world: shape space, face parts, ray casting, labels, scene truth.

References are independent of the code under test: landmark positions are read off the
vertex array and projected with explicit matrices, ray-cast spheres are compared with the
closed form, the face-VAE mask with `data.face_masks`, the skin pixels of a rendered scene
with a direct `physics.render` of its stored truth, and the position map round trip with
`bioface_jax.face3d`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bioface_jax import face3d, physics
from data import face_masks, synth_vae
from data.prnet import synth as prnet_synth
from data.synth import dataset as sd
from data.synth import (face_parts, geometry, labels as L, raycast, scene, scene_render,
                        shape_space as ss)


@pytest.fixture(scope="module")
def template():
  return geometry.load_template()


# --- shape space -----------------------------------------------------------------------------


def test_identity_modes_are_zero_mean(template):
  rng = np.random.default_rng(0)
  n = 4000
  c = np.stack([ss.sample_identity(rng) for _ in range(n)])
  assert c.shape == (n, len(ss.IDENTITY_MODES)) and np.abs(c).max() <= ss.IDENTITY_CLIP
  # Symmetric truncation: each mean is 0 within 5 standard errors (sd <= 1).
  assert np.abs(c.mean(0)).max() < 5.0 / np.sqrt(n)
  # The mean displacement of the sampled faces is that of the mean coefficients (linearity),
  # so the mean face is the template within the same bound times the largest field.
  basis = ss.identity_basis(template)
  mean_face = ss.apply_identity(template, c.mean(0))
  bound = 5.0 / np.sqrt(n) * np.abs(basis).sum(0).max()
  assert np.abs(mean_face - template.vertices).max() <= bound
  for k, name in enumerate(ss.IDENTITY_MODES):  # Every mode moves the face visibly.
    assert np.abs(basis[k]).max() > 0.005 * template.ref_size, name


def _flipped_fraction(template, v):
  tri = template.triangles

  def normals(p):
    n = np.cross(p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
  return np.mean((normals(v) * normals(template.vertices)).sum(1) < 0)


def test_shapes_and_expressions_do_not_fold(template):
  rng = np.random.default_rng(1)
  for _ in range(3):
    assert _flipped_fraction(template, ss.sample_shape(rng, template)[0]) < 0.005
  basis = ss.identity_basis(template)
  for k in range(len(basis)):
    for sign in (-1, 1):
      v = template.vertices + sign * ss.IDENTITY_CLIP * basis[k]
      assert _flipped_fraction(template, v) < 0.005, ss.IDENTITY_MODES[k]
  full = ss.Expression(1.0, 1.0, (1.0, 1.0), 1.0, 1.0)
  v = template.vertices + ss.expression_displacement(template, template.vertices, full)
  assert _flipped_fraction(template, v) < 0.005


def test_closed_eyes_put_the_upper_lid_on_the_lower_lid_line(template):
  v = template.vertices + ss.expression_displacement(
      template, template.vertices, ss.Expression(eye_close=(1.0, 1.0)))
  lmk = v[template.landmark_vertices]
  k = template.landmarks_uv
  for outer, up, inner, low in ss.EYES:
    line = sorted([outer, inner, *low], key=lambda i: k[i, 0])
    cols = k[line, 0]
    for i in up:  # Interpolate the lower lid of the *closed* face at the landmark's column.
      expected = [np.interp(k[i, 0], cols, lmk[line, j]) for j in range(3)]
      np.testing.assert_allclose(lmk[i], expected, atol=1e-9)
  # Open eyes are untouched; a frontal render shows eye pixels only when they are open.
  pose = geometry.Pose(0, 0, 0, 0.8)
  for closed, check in ((0.0, lambda n: n > 20), (1.0, lambda n: n < 3)):
    verts = template.vertices + ss.expression_displacement(
        template, template.vertices, ss.Expression(eye_close=(closed, closed)))
    geo = geometry.rasterise(verts, template, pose, 128)
    lab = face_parts.surface_labels(template, geo["triangle"])
    assert check(np.isin(lab, (L.EYE_LEFT, L.EYE_RIGHT)).sum()), closed


def test_open_mouth_is_a_recessed_opening(template):
  pose = geometry.Pose(0, 0, 0, 0.8)
  counts = []
  for amount in (0.0, 0.5, 1.0):
    v = template.vertices + ss.expression_displacement(template, template.vertices,
                                                       ss.Expression(mouth_open=amount))
    geo = geometry.rasterise(v, template, pose, 128)
    lab = face_parts.surface_labels(template, geo["triangle"])
    mouth = lab == L.MOUTH
    counts.append(mouth.sum())
    if amount == 1.0:  # The opening lies behind the lips around it.
      lips = np.isin(lab, (L.UPPER_LIP, L.LOWER_LIP))
      assert np.median(geo["depth"][mouth]) < np.median(geo["depth"][lips])
  assert counts[0] < counts[1] < counts[2] and counts[2] > 100


def test_landmarks_and_position_map_follow_the_shape_exactly(template):
  rng = np.random.default_rng(2)
  vertices, _, expression, _ = ss.sample_shape(
      rng, template, expression=ss.Expression(0.5, 0.7, (0.9, 0.2), 0.4, 0.0))
  pose = geometry.Pose(25.0, -10.0, 5.0, 0.7, 0.03, -0.02)
  geo = geometry.rasterise(vertices, template, pose, 256)
  # Independent projection of the landmark vertices: R = Rz Rx Ry, orthographic, scaled.
  a, b, c = np.deg2rad([25.0, -10.0, 5.0])
  ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
  rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
  cam = vertices @ (rz @ rx @ ry).T
  k = 0.7 * 256 / template.ref_size
  centre = 0.5 * (cam[:, :2].min(0) + cam[:, :2].max(0))
  lmk = cam[template.landmark_vertices]
  expected = np.stack([(lmk[:, 0] - centre[0]) * k + 256 * 0.53,
                       (centre[1] - lmk[:, 1]) * k + 256 * 0.48], -1)
  np.testing.assert_allclose(geo["landmarks"], expected, atol=1e-3)
  # Position map round trip: the map read at the UV landmark pixels gives the landmarks.
  screen = geometry.project(vertices, template, pose, 256)
  posmap = prnet_synth.position_map(screen, template, 256)
  got = face3d.landmarks_from_position_map(posmap[None])[0]
  np.testing.assert_allclose(got[:, :2], expected - 0.5, atol=1e-3)
  # The screen transform used by every non-mesh part agrees with the projection.
  a_, t_ = geometry.screen_transform(vertices, template, pose, 256)
  np.testing.assert_allclose(vertices @ a_.T + t_, screen, atol=1e-6)


# --- ray casting and labels ------------------------------------------------------------------


def test_ray_cast_sphere_matches_closed_form():
  frame = raycast.Frame(np.diag([2.0, -2.0, 2.0]), np.array([32.0, 32.0, 0.0]))
  hit = raycast.ellipsoid(raycast.rays(frame, 64), frame, [1.0, -2.0, 3.0], [10.0] * 3)
  yy, xx = np.mgrid[0:64, 0:64] + 0.5
  cx, cy, r = 32 + 2.0, 32 + 4.0, 20.0  # Centre and radius on screen.
  d2 = (xx - cx) ** 2 + (yy - cy) ** 2
  inside = d2 < r * r
  np.testing.assert_array_equal(hit.mask, inside)
  np.testing.assert_allclose(hit.depth[inside], 6.0 + np.sqrt(r * r - d2[inside]), rtol=1e-9)
  n = np.stack([(xx - cx) / r, -(yy - cy) / r, np.sqrt(np.maximum(1 - d2 / r / r, 0))], -1)
  np.testing.assert_allclose(hit.normal[inside], n[inside], atol=1e-5)


def test_label_maps_match_face_parsing():
  labels = np.arange(L.NUM_LABELS, dtype=np.uint8)[None]
  fp = L.to_faceparsing(labels)
  assert fp.max() < face_masks.NUM_LABELS
  np.testing.assert_array_equal(L.vae_mask(labels), face_masks.labels_to_mask(fp))
  with pytest.raises(ValueError, match="labels must lie"):
    L.vae_mask(np.array([L.NUM_LABELS]))


# --- rendered scenes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
  options = scene.SceneOptions(framing="portrait", size=32, supersample=1)
  gen = scene_render.SceneGenerator(options, seed=3, batch_size=4)
  return gen, gen.render([scene.sample_scene(3, i, options) for i in range(4)])


def test_skin_truth_reproduces_the_skin_pixels(rendered):
  gen, out = rendered
  mask = out["mask"]
  assert mask.any(axis=(1, 2)).all()
  ref = physics.render(gen.spectra, gen.lut, out["fmel"], out["fblood"], out["diffuse"],
                       out["specular"], out["weights"], out["t"], out["b"])["linear_srgb"]
  np.testing.assert_allclose(np.asarray(ref)[mask], out["linear_image"][mask], rtol=2e-4,
                             atol=2e-6)
  for key in ("fmel", "fblood", "diffuse", "specular", "melanin"):  # Nothing off the mask.
    assert not out[key][~mask].any(), key
  assert np.isin(out["labels"][mask], L.SKIN_LABELS).all()
  assert (mask & (out["face"] == 0)).any()  # Neck and scalp skin carry truth too.
  # The face VAE's mask is the share of its classes: 0 / 1 at supersample 1.
  np.testing.assert_array_equal(out["vae_mask"], L.vae_mask(out["labels"]))


def test_scene_depends_only_on_seed_and_index(rendered):
  gen, out = rendered
  again = gen.render([scene.sample_scene(3, 2, gen.options)])
  for key in ("image", "labels", "fmel", "normals", "landmarks"):
    np.testing.assert_array_equal(again[key][0], out[key][2], err_msg=key)


def test_prnet_framing_and_position_map(template):
  options = scene.SceneOptions(framing="prnet", size=32, supersample=1)  # Shapes as `rendered`.
  s = scene.sample_scene(0, 5, options)
  lmk = s["landmarks3d"]
  box = lmk[:, :2].max(0) - lmk[:, :2].min(0)
  side = options.render_size
  assert 0.9 / 1.5 * 0.99 <= box.mean() / side <= 1.1 / 1.5 / 0.9 * 1.01
  out = scene_render.SceneGenerator(options, 0, 4).render([s])
  posmap = out["posmap"][0]
  assert posmap.shape == (32, 32, 3)
  # At R = 256 the map at the landmark texels holds the landmarks; here the output map is
  # the block mean, so compare the full-resolution map built from the same screen.
  full = prnet_synth.position_map(s["screen"] / options.factor, template, 256)
  got = face3d.landmarks_from_position_map(full[None])[0]
  np.testing.assert_allclose(got, out["landmarks3d"][0], atol=1e-3)


def test_scene_dataset_cache_round_trip(tmp_path):
  train, hold = sd.synthetic_dataset(tmp_path, 6, 32, 1, holdout_fraction=1 / 3,
                                     world="scenes", batch_size=4, progress=False,
                                     supersample=1)
  assert len(train) == 4 and len(hold) == 2
  batch = train.get(np.arange(4))
  truth = train.truth(np.arange(4), ("diffuse", "mask", "labels", "identity"))
  np.testing.assert_array_equal(batch["shading"], truth["diffuse"])
  np.testing.assert_array_equal(batch["mask"] > 0.5, truth["mask"])
  assert truth["labels"].dtype == np.uint8 and truth["identity"].shape == (4, len(ss.IDENTITY_MODES))
  # Lazy views of an uncached set generate the same rows in memory.
  lazy_train, _ = sd.synthetic_dataset(tmp_path / "lazy", 6, 32, 1, holdout_fraction=1 / 3,
                                       world="scenes", batch_size=4, progress=False,
                                       supersample=1, lazy=True)
  assert isinstance(lazy_train, sd.GeneratedSubset)
  got = lazy_train.get(np.array([3, 1]))
  want = train.get(np.array([3, 1]))
  for key in ("image", "mask", "shading"):
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  np.testing.assert_array_equal(lazy_train.truth([1], ("labels",))["labels"],
                                train.truth([1], ("labels",))["labels"])
  faces_name = sd.cache_name(6, 32, 1, sd.synth_faces.FaceOptions(), 4096)
  scenes_name = sd.cache_name(6, 32, 1, scene.SceneOptions(size=32), 4096, "scenes")
  assert faces_name != scenes_name
  with pytest.raises(ValueError, match="unknown synthetic face options"):
    sd.synthetic_dataset(tmp_path, 6, 32, 1, world="scenes", contxt=False)


def test_vae_scene_world_soft_masks():
  images, masks = synth_vae.generate(np.array([4, 7]), 16, seed=2, world="scenes",
                                     batch_size=4)  # Renders at 32 px, as `rendered`.
  assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(masks * 4, np.round(masks * 4))  # 2x2 footprint shares.
  assert (masks > 0).mean() > 0.1 and (masks < 1).mean() > 0.1
  again_img, again_mask = synth_vae.generate(np.array([7]), 16, seed=2, world="scenes",
                                             batch_size=4)
  np.testing.assert_array_equal(again_img[0], images[1])
  np.testing.assert_array_equal(again_mask[0], masks[1])


def test_bad_options():
  with pytest.raises(ValueError, match="framing"):
    scene.SceneOptions(framing="selfie")
  with pytest.raises(ValueError, match="size"):
    scene.SceneOptions(size=8)
  with pytest.raises(ValueError, match="mouth_open"):
    ss.expression_displacement(geometry.load_template(), geometry.load_template().vertices,
                               ss.Expression(mouth_open=1.5))
  assert dataclasses.replace(scene.SceneOptions(), size=300).factor == 1


def test_prnet_pairs_and_photometric_scenes_one_call_each():
  pairs = next(scene_render.prnet_pairs(0, range(2), size=32, batch_size=4, supersample=1))
  assert pairs["image"].shape == (2, 32, 32, 3) and pairs["image"].dtype == np.uint8
  assert pairs["posmap"].shape == (2, 32, 32, 3) and pairs["landmarks"].shape == (2, 68, 3)
  np.testing.assert_array_equal(pairs["index"], [0, 1])
  objects = scene_render.photometric_scenes(0, [0, 1], 32, batch_size=4)
  mask = objects["mask"] > 0
  assert mask.any(axis=(1, 2)).all()
  n = np.linalg.norm(objects["normals"], axis=-1)
  np.testing.assert_allclose(n[mask], 1.0, atol=1e-4)
  assert (objects["normals"][..., 2][mask] >= -1e-6).mean() > 0.99  # Facing the camera.
  assert (objects["depth"][mask] >= 0).all() and not objects["depth"][~mask].any()
  assert (objects["albedo"][mask] >= 0).all() and objects["albedo"][mask].max() <= 1.5


def test_value_noise_is_periodic_bilinear_interpolation():
  from scipy import ndimage
  from data.synth import textures
  rng = np.random.default_rng(0)
  table = rng.standard_normal((16, 24)).astype(np.float32)
  x, y = rng.uniform(-50, 50, (2, 4000)).astype(np.float32)
  ref = ndimage.map_coordinates(table, np.stack([y, x]), order=1, mode="grid-wrap",
                                prefilter=False)
  np.testing.assert_allclose(textures.value_noise(table, x, y), ref, atol=1e-5)
