"""One synthetic face world: a scene is a pure function of (seed, index, options).

`sample_scene` draws and lays out everything on the host (vectorised NumPy) at the render
size R = size x supersample; `data.synth.scene_render.SceneGenerator` renders batches through
BioFaceNet's spectral skin model, exposes, runs the camera and reduces every truth map to the
output size. Draws come from ``np.random.default_rng([seed, index, 18])``.

A scene, back to front (every part optional through `SceneOptions`):

* face: the mean-face mesh with identity modes and an expression (`shape_space`), posed and
  framed for the system that uses it (``framing``: ``face`` = BioFaceNet's crop, ``portrait``
  = the face VAE's head-and-shoulders frame, ``prnet`` = PRNet's 1.5x landmark-box crop with
  jitter), z-buffered with exact barycentrics (`geometry.rasterise`); regions and parts from
  UV (`face_parts`): eyes with eyeballs, a mouth interior with teeth, lips, nose, ears;
* head and body (``context``): skull, jaw underside, neck, shoulders in clothing with a
  neckline, hair in seven styles (`head`), a textured background;
* occluders (``occluders``): beards and stubble, glasses, a hand or object at the frame
  edge, other people partly in frame (`occluders`);
* overlays on the skin: brows and lashes (``parts``), beard; hair and glasses composite over
  whatever is behind them with their coverage alpha.

Light (`light_camera`): a rig of light groups gives grey diffuse and specular shading of every
surface; skin goes through `physics.render` per group, other materials are albedo x light
colour. Truth (`scene_render`) is exact per pixel at the render size and averaged over each
output pixel's footprint: ``mask`` is where the output pixel is entirely the subject's bare
skin (face, ears, scalp, neck, chest; no overlay), the only place skin truth (pigments,
shading, albedo) is claimed; ``face`` tells the face mesh's share.
"""

from __future__ import annotations

import numpy as np

from data.synth import (appearance, face_parts, faces, geometry, head, labels as L, light_camera,
                        occluders, raycast, shape_space, skin_detail, textures)
from data.synth.scene_options import FRAMINGS, SceneOptions, framing_pose  # noqa: F401

SCENE_VERSION = 1


def _pick(index, values, fill=0.0):
  """values[index[p]][p] per pixel from a list of (H, W[, C]) arrays (index -1 -> fill)."""
  out = np.array(values[0], dtype=np.result_type(*values))  # Index 0 (and -1, filled below).
  for i, v in enumerate(values[1:], 1):  # Each array's pixels copied where it is chosen.
    chosen = index == i
    out[chosen] = v[chosen]
  cond = (index >= 0)[..., None] if out.ndim == 3 else index >= 0
  return np.where(cond, out, fill)


def _on_pixels(where: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
  """The image ``np.where(where, v, fill)`` of per-pixel values v given only on `where`
  (`values` = v[where]), in the values' dtype."""
  out = np.full(where.shape, fill, values.dtype)
  out[where] = values
  return out


def background(rng: np.random.Generator, options: SceneOptions, size: int) -> np.ndarray:
  """(size, size, 3) linear-sRGB background: photographic (`data.synth.backgrounds`) or
  textured (gradients, noise, stripes, blurred shapes; `data.vae_scenes.background`) with
  context, else the old smooth gradient."""
  if not options.context:
    return faces.sample_background(rng, size)
  if options.background == "photo":
    from data.synth import backgrounds  # pylint: disable=g-import-not-at-top
    return backgrounds.sample_background(rng, size)["linear"]
  from data import vae_scenes  # pylint: disable=g-import-not-at-top
  encoded = vae_scenes.background(rng, size) * rng.uniform(0.3, 1.0)
  return light_camera.srgb_decode(encoded)


def sample_scene(seed: int, index: int, options: SceneOptions = SceneOptions()
                 ) -> dict[str, np.ndarray]:
  """Lays out scene `index` of `seed` at the render size (host; see the module docstring).

  Returns a dict for `scene_render.SceneGenerator.render`: render-size maps (prefix-free):
  fmel, fblood, skin (spectral pixels), diffuse / specular (G, R, R) skin shading, lit and
  over (G, R, R, 3) non-skin and overlay colour per light group (albedo x shading), alpha
  (R, R) overlay coverage, emission (R, R, 3) background, expose (R, R) the face skin the
  exposure meters on; truth at render size: labels, truth (skin-truth pixels), normals, depth,
  uv, face; and per-scene values (weights (G, 14), t (G,), b, luminance, pose, landmarks,
  identity, expression, record codes).
  """
  o = options
  size = o.render_size
  template = geometry.load_template()
  rng = np.random.default_rng([seed, index, 18])
  masculine = bool(rng.uniform() < 0.5)
  expression = None if o.expressions else shape_space.Expression()
  vertices, identity, expression, neutral = shape_space.sample_shape(
      rng, template, identity_scale=o.identity_scale, expression=expression)
  angles = rng.uniform(-1, 1, 3) * np.array([o.yaw_range, o.max_pitch, o.max_roll])
  pose = framing_pose(rng, o, vertices, template, angles)
  frame = raycast.Frame(*geometry.screen_transform(vertices, template, pose, size))
  screen = frame.to_screen(vertices)
  geo = geometry.rasterise(vertices, template, pose, size, attributes=vertices, screen=screen)
  face_mask = geo["mask"]
  if o.parts:  # Wrinkles (with the age-like mode) and fine relief on the face's normals.
    age = identity[shape_space.IDENTITY_MODES.index("sagging")]
    h = np.zeros((size, size))
    h[face_mask] = frame.scale * skin_detail.height(rng, template, geo["uv"][face_mask], age,
                                                    rng.uniform(0.01, 0.05))
    geo["normals"] = skin_detail.bumped_normals(geo["normals"], face_mask, h)
  skin_maps = appearance.sample_appearance(rng, template, brow_pigment=not o.parts,
                                           melanin_range=o.melanin_range,
                                           haemoglobin_range=o.haemoglobin_range)
  blur = o.face.blur_for(size)
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  maps = {k: ndimage.gaussian_filter(v, blur, mode="nearest") if blur > 0 else v
          for k, v in skin_maps.items()}
  base_mel = float(np.median(skin_maps["fmel_uv"][template.uv_index >= 0]))
  base_blood = float(np.median(skin_maps["fblood_uv"][template.uv_index >= 0]))
  rig = light_camera.sample_rig(rng, o.face, o.light)
  spec_scale = float(rng.uniform(*o.face.specular_scale))
  shininess = float(rng.uniform(*o.face.shininess))
  luminance = float(np.exp(rng.uniform(*np.log(o.face.face_luminance))))

  # --- opaque surfaces: candidates (depth, normal, label, material) -----------------------
  face_labels = (face_parts.surface_labels(template, geo["triangle"]) if o.parts
                 else np.where(face_mask, L.SKIN, L.BACKGROUND).astype(np.uint8))
  cands = [dict(depth=np.where(face_mask, geo["depth"], -np.inf), normal=geo["normals"],
                label=face_labels, material="face")]
  head_params = head.sample_head(rng, masculine, 1.0 + 0.05 * identity[0] / 2.5)
  if o.context:
    body = head.body_frame(frame, pose.yaw, pose.roll, head_params.body_turn)
    free = ~face_mask  # The mesh is the head's skin wherever it is drawn.
    hits = head.skull_hits(head_params, frame, size, free)
    body_hits, torso_skin = head.body_hits(head_params, body, size, free)
    hits.update(body_hits)
    for name, hit in hits.items():
      if name == "torso":
        lab = np.where(torso_skin, L.NECK, L.CLOTH)
        alb = head.cloth_albedo(rng, head_params, hit)
        material = ("mixed", alb, 0.03)
      else:
        lab, material = head.SKIN_PARTS[name], "skin"
      cands.append(dict(depth=hit.depth, normal=hit.normal, label=np.broadcast_to(
          np.asarray(lab, np.uint8), (size, size)), material=material))
  record = dict(glasses=np.int32(0), edge_occluder=np.int32(0), other_person=np.int32(0),
                beard=np.int32(0))
  if o.occluders and o.context and rng.uniform() < 0.15:
    record["other_person"] = np.int32(1)
    for part in occluders.other_person(rng, frame, size):
      cands.append(dict(depth=part.depth, normal=part.normal, label=part.label,
                        material=("albedo", part.albedo, part.specular)))
  if o.occluders and rng.uniform() < 0.12:
    top = max(float(np.max(np.where(np.isfinite(c["depth"]), c["depth"], -1e9)))
              for c in cands)
    part = occluders.edge_occluder(rng, size, top)
    record["edge_occluder"] = np.int32(1 + (part.label.max() == L.OBJECT))
    cands.append(dict(depth=part.depth, normal=part.normal, label=part.label,
                      material=("albedo", part.albedo, part.specular)))
  depth_stack = np.stack([c["depth"] for c in cands])
  winner = np.where(np.isfinite(depth_stack).any(0), np.argmax(depth_stack, 0), -1)
  front_depth = _pick(winner, [c["depth"] for c in cands], -np.inf)
  front_normal = _pick(winner, [c["normal"] for c in cands]).astype(np.float32)
  label = _pick(winner, [c["label"] for c in cands], L.BACKGROUND).astype(np.uint8)
  surface = winner >= 0
  on_face = winner == 0

  # --- materials --------------------------------------------------------------------------
  skin = np.zeros((size, size), bool)
  albedo = np.zeros((size, size, 3), np.float32)
  spec_strength = np.zeros((size, size), np.float32)
  for i, c in enumerate(cands):
    mine = winner == i
    m = c["material"]
    if m in ("face", "skin"):
      skin |= mine & np.isin(label, L.SKIN_LABELS)
    elif m[0] == "mixed":
      skin |= mine & np.isin(label, L.SKIN_LABELS)
      albedo = np.where((mine & ~np.isin(label, L.SKIN_LABELS))[..., None], m[1], albedo)
      spec_strength = np.where(mine, m[2], spec_strength)
    else:
      albedo = np.where(mine[..., None], m[1], albedo)
      spec_strength = np.where(mine, m[2], spec_strength)
  face_uv = geo["uv"][on_face]  # UV maps are looked up on the face's pixels only.
  mottle = rng.uniform(0.005, 0.03) * textures.fbm(rng, face_uv[:, 0] * 64,
                                                   face_uv[:, 1] * 64, 2)  # Fine blotches.
  fmel = _on_pixels(on_face, appearance.sample_uv(maps["fmel_uv"], face_uv) + mottle, base_mel)
  fblood = _on_pixels(on_face, appearance.sample_uv(maps["fblood_uv"], face_uv), base_blood)
  other_skin = skin & ~on_face   # Scalp, jaw, neck, chest: the face's median tone, less red.
  fmel = np.where(other_skin, base_mel + rng.uniform(-0.02, 0.05), fmel)
  fblood = np.where(other_skin, base_blood - rng.uniform(0.0, 0.08), fblood)
  strength = _on_pixels(on_face, appearance.sample_uv(maps["spec_uv"], face_uv), 0.15)
  eye_normal = None
  if o.parts:
    eyes = face_parts.sample_eyes(rng)
    centres = face_parts.eyeball_centres(template, neutral)
    face_only = np.where(on_face, label, 0)
    e_alb, eye_normal = face_parts.eye_albedo(rng, eyes, geo["attributes"], face_only, centres,
                                              geo["uv"], template)
    m_alb, mouth_lab = face_parts.mouth_albedo(
        rng, geo["uv"], face_only,
        expression.mouth_open * shape_space.MAX_JAW_DROP * template.ref_size, template)
    label = np.where(on_face & (label == L.MOUTH), mouth_lab, label)
    albedo = albedo + e_alb + m_alb
    spec_strength = np.where(label == L.TEETH, 0.3, np.where(label == L.MOUTH, 0.15,
                                                              spec_strength))

  # --- light ------------------------------------------------------------------------------
  floor = float(np.min(front_depth[surface])) if surface.any() else 0.0
  depth_filled = np.where(surface, front_depth, floor).astype(np.float32)
  groups = light_camera.shade(rig, front_normal, depth_filled, surface, shininess)["groups"]
  diffuse = np.stack([g["diffuse"] for g in groups])
  specular = np.stack([g["specular"] for g in groups])
  skin_spec = specular * np.where(skin, spec_scale * strength, 0.0)
  lit = (diffuse[..., None] * albedo + (specular * spec_strength)[..., None]) * ~skin[..., None]
  light_dir = light_camera.dominant_direction(rig)
  if eye_normal is not None:
    eye_px = np.isin(label, (L.EYE_LEFT, L.EYE_RIGHT)) & on_face
    gloss = face_parts.eye_gloss(eye_normal @ frame.rotation.T, light_dir, eye_px)
    lit[0] += 2.0 * gloss[..., None]

  # --- overlays, front to back: hair, glasses, beard, brows, lashes -------------------------
  overlays = []
  if o.context and head_params.style != "bald":
    hair = head.hair_layer(rng, head_params, frame, size)
    kk = head.kajiya_kay(hair.tangent, light_dir, head_params.hair_shine)
    overlays.append((occluders.Overlay(hair.alpha, hair.depth, hair.albedo, L.HAIR, hair.normal,
                                       0.0, kk), 0.5))
  if o.occluders and rng.uniform() < 0.2:
    record["glasses"] = np.int32(1)
    centres = face_parts.eyeball_centres(template, vertices)
    overlays += [(g, 0.5) for g in occluders.glasses(rng, frame, centres, size)]
  on_skin = lambda a: np.where(on_face, a, 0.0).astype(np.float32)  # noqa: E731
  face_depth = np.where(on_face, front_depth, -np.inf)
  if o.parts or o.occluders:
    hair_colour = head_params.hair_colour
    facial = face_parts.sample_overlays(rng, hair_colour, masculine and o.occluders)
    if facial.beard != "none":
      record["beard"] = np.int32(("stubble", "moustache", "goatee", "chinstrap",
                                  "full").index(facial.beard) + 1)
      a = face_parts.beard_alpha(rng, facial, geo["uv"], face_mask, template)
      overlays.append((occluders.Overlay(on_skin(a), face_depth, np.broadcast_to(
          facial.colour, (size, size, 3)), L.BEARD), np.inf))
    if o.parts:
      a, which = face_parts.brow_alpha(rng, facial, geo["uv"], face_mask, template)
      brow_colour = np.broadcast_to(facial.colour, (size, size, 3))
      for side, lab in ((1, L.BROW_LEFT), (2, L.BROW_RIGHT)):
        overlays.append((occluders.Overlay(on_skin(a * (which == side)), face_depth,
                                           brow_colour, lab), np.inf))
      a = face_parts.lash_alpha(facial, geo["uv"], face_mask, expression.eye_close, template)
      lash = np.broadcast_to(np.float32(0.01), (size, size, 3))
      eye_lab = np.where(geo["uv"][..., 0] < 0.5, L.EYE_LEFT, L.EYE_RIGHT)
      overlays.append((occluders.Overlay(on_skin(a), face_depth, lash, eye_lab), np.inf))
  gbuf = dict(normal=front_normal, depth=depth_filled, albedo=albedo, skin=skin,
              spec=np.where(skin, spec_scale * strength, spec_strength).astype(np.float32))
  over, alpha, label, gbuf = occluders.composite(overlays, rig, front_depth, depth_filled,
                                                 diffuse, specular, shininess, label, gbuf)
  g_normal, g_depth, g_albedo, g_skin, g_spec, claimed = (
      gbuf[k] for k in ("normal", "depth", "albedo", "skin", "spec", "claimed"))

  # Pad the light groups to the batch's fixed count (dark groups with the main illuminant).
  pad = light_camera.MAX_GROUPS[o.light] - len(groups)
  weights = np.stack([g["weights"] for g in groups] + [groups[0]["weights"]] * pad)
  t_groups = np.stack([g["t"] for g in groups] + [groups[0]["t"]] * pad)
  grow = lambda a: np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)])  # noqa: E731
  diffuse, specular, skin_spec, lit, over = (grow(a) for a in (diffuse, specular, skin_spec,
                                                                  lit, over))
  camera = light_camera.sample_camera(rng, o.face, o.camera)
  # Skin truth: all of the subject's bare skin (face, ears, scalp, neck, chest) under no
  # overlay; the exposure meters on the face's.
  truth = skin & (alpha == 0) & np.isin(label, L.SKIN_LABELS)
  emission = background(rng, o, size)
  emission = np.where(surface[..., None], 0.0, emission).astype(np.float32)
  lmk3 = screen[template.landmark_vertices] - np.array([0.5, 0.5, 0.0])
  lmk3[:, 2] -= screen[:, 2].min()
  out = dict(
      index=np.int64(index), fmel=np.where(skin, np.clip(fmel, -0.99, 0.99), 0.0),
      fblood=np.where(skin, np.clip(fblood, -0.99, 0.99), 0.0), skin=skin,
      diffuse=np.where(skin, diffuse, 0.0), specular=np.where(skin, skin_spec, 0.0),
      lit=lit, over=over, alpha=alpha, emission=emission, expose=truth & on_face,
      g_normal=g_normal, g_depth=np.where(surface | claimed, g_depth, 0.0), g_albedo=g_albedo,
      g_skin=g_skin, g_mask=surface | claimed, g_spec=g_spec,
      labels=label, truth=truth, normals=front_normal, depth=np.where(surface, front_depth, 0.0),
      uv=np.where(on_face[..., None], geo["uv"], 0.0), face=on_face,
      weights=weights, t=t_groups, b=np.asarray(rig["b"], np.float32),
      sh=_environment(rig),
      luminance=np.float32(luminance), albedo_power=np.float32(o.exposure_albedo_power),
      specular_scale=np.float32(spec_scale),
      shininess=np.float32(shininess),
      pose=np.float32([pose.yaw, pose.pitch, pose.roll, pose.scale, pose.tx, pose.ty]),
      landmarks=geo["landmarks"], landmarks_visible=geo["landmarks_visible"],
      landmarks3d=lmk3.astype(np.float32), identity=identity.astype(np.float32),
      expression=expression.as_array(), masculine=np.bool_(masculine),
      hair_style=np.int32(head.STYLES.index(head_params.style) if o.context else -1),
      **record)
  if o.framing == "prnet":
    out["screen"] = screen.astype(np.float32)
  out = {k: (np.asarray(v, np.float32) if np.asarray(v).dtype == np.float64 else np.asarray(v))
         for k, v in out.items()}
  out["camera"], out["rig"] = camera, rig  # JSON-able records (not stacked in batches).
  return out


def _environment(rig: dict) -> np.ndarray:
  """(9,) SH coefficients of the rig's main-group environment (zeros if it has none)."""
  env = [l for l in rig["lights"] if l["type"] == "environment" and l["group"] == 0]
  return (np.asarray(env[0]["sh"], np.float32) * np.float32(env[0].get("intensity", 1.0))
          if env else np.zeros(9, np.float32))
