"""Things in front of or beside the face that are not skin: glasses, hands and objects at the
frame edge, other people partly in frame. Each carries its own label and no skin truth.

* glasses (`glasses`): two lens outlines (rounded rectangles or ellipses) in a plane ~18
  units in front of the eyes in the head frame, a bridge and temples that run back to the
  ears along the head's sides; the frame is opaque, the lens a tinted, reflective film
  (sunglasses are nearly opaque), both overlays with their own depth;
* hand or object (`edge_occluder`): a hand (palm and fingers as rounded tubes) or an object
  (phone, cup, microphone: rounded boxes) entering from an image edge in front of everything,
  with tube normals; opaque;
* other people (`other_person`): a second head (skull and hair shells) and shoulders at the
  side of the frame and behind the subject, opaque, with flat skin and hair colours.

All shapes are closed-form per pixel (planes, ellipses, capsules, ray-cast ellipsoids).
`composite` lays the coverage layers (these, hair, facial hair) over the opaque surfaces.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.synth import labels as L, raycast, textures

SKIN_TONES = np.array([[0.62, 0.42, 0.32], [0.50, 0.32, 0.22], [0.36, 0.21, 0.13],
                       [0.20, 0.11, 0.07], [0.09, 0.05, 0.035]], np.float32)


@dataclasses.dataclass
class Opaque:
  """An opaque surface: depth (-inf where absent), camera normal, label, albedo, specular."""
  depth: np.ndarray
  normal: np.ndarray
  label: np.ndarray
  albedo: np.ndarray
  specular: float


@dataclasses.dataclass
class Overlay:
  """A coverage layer composited over what lies behind it (`data.synth.scene`).

  normal None = lies on the visible surface and takes its shading (brows, beard); `gloss` is
  an extra specular strength map (lens reflections, hair highlights) added to the colour.
  """
  alpha: np.ndarray
  depth: np.ndarray
  albedo: np.ndarray
  label: int
  normal: np.ndarray | None = None
  specular: float = 0.0
  gloss: np.ndarray | None = None


def composite(overlays, rig: dict, front_depth: np.ndarray, depth_filled: np.ndarray,
              diffuse: np.ndarray, specular: np.ndarray, shininess: float, label: np.ndarray,
              gbuf: dict[str, np.ndarray]):
  """Composites (overlay, depth tolerance) pairs front to back over the opaque surfaces.

  Returns:
    (over (G, H, W, 3) premultiplied colour per light group, alpha (H, W), labels with each
    overlay's label where it covers >= 1/2, `gbuf` updated as an opaque stand-in of the scene
    for photometric stereo: the first overlay that covers a pixel at least half replaces its
    normal, depth, albedo and specular strength; "claimed" marks those pixels).
  """
  from data.synth import light_camera  # pylint: disable=g-import-not-at-top
  g = dict(gbuf, normal=gbuf["normal"].copy(), depth=gbuf["depth"].copy(),
           skin=gbuf["skin"].copy())
  over = np.zeros(diffuse.shape + (3,), np.float32)
  alpha = np.zeros(front_depth.shape, np.float32)
  claimed = np.zeros(front_depth.shape, bool)
  for ov, tolerance in overlays:
    a = ov.alpha * (ov.depth >= front_depth - tolerance)
    if not a.any():
      continue
    if ov.normal is None:   # On the visible surface: its shading.
      dif, spc = diffuse, specular * ov.specular
    else:
      sh = light_camera.shade(rig, ov.normal, depth_filled, a > 0, shininess)["groups"]
      dif = np.stack([x["diffuse"] for x in sh])
      spc = np.stack([x["specular"] for x in sh]) * ov.specular
    colour = dif[..., None] * ov.albedo + spc[..., None]
    if ov.gloss is not None:
      colour = colour + (ov.gloss * dif.sum(0, keepdims=True))[..., None]
    over += ((1.0 - alpha) * a)[..., None] * colour
    alpha = alpha + (1.0 - alpha) * a
    label = np.where(a >= 0.5, ov.label, label).astype(np.uint8)
    take = (a >= 0.5) & ~claimed
    claimed |= take
    g["skin"] &= ~take
    g["albedo"] = np.where(take[..., None], ov.albedo, g["albedo"])
    g["spec"] = np.where(take, ov.specular, g["spec"])
    if ov.normal is not None:
      g["normal"] = np.where(take[..., None], ov.normal, g["normal"])
      g["depth"] = np.where(take, ov.depth, g["depth"])
  g["claimed"] = claimed
  return over, alpha, label, g


def glasses(rng: np.random.Generator, head: raycast.Frame, eye_centres: np.ndarray,
            size: int) -> list[Overlay]:
  """Frame and lens overlays of a pair of glasses (head frame: x right, y up, z forward)."""
  r = raycast.rays(head, size)
  z_plane = float(eye_centres[:, 2].mean() + rng.uniform(14, 22))
  y0 = float(eye_centres[:, 1].mean() + rng.uniform(-3, 2))
  # The ray meets the plane z = z_plane at v = o + s d.
  s = (z_plane - r.origin[..., 2]) / r.direction[2]
  p = r.origin + s[..., None] * r.direction
  depth = s  # Screen depth of the plane along each ray.
  half_w, half_h = rng.uniform(22, 31), rng.uniform(13, 22)
  rounded = rng.uniform(0.3, 1.0)
  gap = float(np.abs(eye_centres[:, 0]).mean() + rng.uniform(-3, 3))
  rim = rng.uniform(1.2, 3.5)
  sdf = np.full(s.shape, np.inf)
  for cx in (-gap, gap):
    q = np.stack([np.abs(p[..., 0] - cx) / half_w, np.abs(p[..., 1] - y0) / half_h], -1)
    k = 2.0 + 6.0 * (1.0 - rounded)  # Superellipse: 2 = ellipse, larger = rounded rectangle.
    d = ((q ** k).sum(-1)) ** (1.0 / k) - 1.0
    sdf = np.minimum(sdf, d * min(half_w, half_h))
  bridge = (np.abs(p[..., 0]) < gap - half_w + 2) & (np.abs(p[..., 1] - (y0 + 0.4 * half_h))
                                                      < rim * 0.8)
  frame_px = (np.abs(sdf) < rim) | bridge
  lens_px = (sdf < 0) & ~frame_px
  # Temples: along the head's sides, from the outer rims back to the ears.
  x_t = gap + half_w
  temples = np.zeros(s.shape, bool)
  t_depth = np.full(s.shape, -np.inf)
  for side in (-1.0, 1.0):
    st = (side * x_t - r.origin[..., 0]) / r.direction[0] if abs(r.direction[0]) > 1e-9 else \
        np.full(s.shape, np.nan)
    pt = r.origin + np.nan_to_num(st)[..., None] * r.direction
    on = (np.abs(pt[..., 1] - (y0 + 0.3 * half_h)) < rim) & (pt[..., 2] < z_plane) & (
        pt[..., 2] > z_plane - 110) & np.isfinite(st)
    t_depth = np.where(on & (st > t_depth), st, t_depth)
    temples |= on
  colour = (np.full(3, rng.uniform(0.01, 0.05), np.float32) if rng.uniform() < 0.5 else
            textures.pick(rng, textures.HAIR_COLOURS, textures.HAIR_WEIGHTS, 0.3))
  metal = rng.uniform() < 0.3
  normal = np.broadcast_to((np.array([0.0, 0.0, 1.0]) @ head.rotation.T).astype(np.float32),
                           s.shape + (3,))
  frame_alpha = frame_px.astype(np.float32)
  out = [Overlay(np.where(temples & ~frame_px, 1.0, frame_alpha).astype(np.float32),
                 np.where(frame_px, depth, t_depth).astype(np.float32),
                 np.broadcast_to(colour, s.shape + (3,)).astype(np.float32), L.GLASSES,
                 normal, 0.6 if metal else 0.2)]
  sun = rng.uniform() < 0.15
  tint = (rng.uniform(0.02, 0.08, 3) if sun else rng.uniform(0.6, 1.0, 3)).astype(np.float32)
  lens_alpha = rng.uniform(0.85, 0.97) if sun else rng.uniform(0.04, 0.2)
  # A soft reflection of the room: a tilted gradient across each lens.
  refl = np.clip(0.5 + 0.5 * np.sin(0.05 * (p[..., 0] * rng.normal() + p[..., 1] * 2.0)
                                    + rng.uniform(0, 6)), 0, 1) * rng.uniform(0.02, 0.25)
  out.append(Overlay(np.where(lens_px, lens_alpha, 0.0).astype(np.float32),
                     depth.astype(np.float32),
                     np.broadcast_to(tint * 0.3, s.shape + (3,)).astype(np.float32),
                     L.GLASSES, normal, 0.0, np.where(lens_px, refl, 0.0).astype(np.float32)))
  return out


def _capsule(x, y, a, b, radius):
  """Distance-based tube: (inside (H, W) bool, height above the plane in units of radius,
  2-D gradient direction) of the capsule from a to b."""
  ab = np.asarray(b, np.float64) - a
  t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / (ab @ ab), 0.0, 1.0)
  dx, dy = x - (a[0] + t * ab[0]), y - (a[1] + t * ab[1])
  d = np.sqrt(dx * dx + dy * dy)
  return d < radius, np.sqrt(np.maximum(1.0 - (d / radius) ** 2, 0.0)), dx / radius, dy / radius


def edge_occluder(rng: np.random.Generator, size: int, front: float) -> Opaque:
  """A hand (70 %) or an object entering from a random edge, in front of depth `front`."""
  yy, xx = np.mgrid[0:size, 0:size] + 0.5
  edge = rng.integers(4)
  along = rng.uniform(0.15, 0.85) * size
  reach = rng.uniform(0.12, 0.3) * size
  # Work in a frame where the occluder enters from the bottom edge, then rotate.
  u, v = [(xx, yy), (size - yy, xx), (size - xx, size - yy), (yy, size - xx)][edge]
  h = np.zeros((size, size))
  nx, ny = np.zeros((size, size)), np.zeros((size, size))
  inside = np.zeros((size, size), bool)
  hand = rng.uniform() < 0.7
  tilt = rng.uniform(-0.5, 0.5)
  unit = size * rng.uniform(0.035, 0.06)
  if hand:
    base = np.array([along, size + unit])
    tip = base + reach * np.array([np.sin(tilt), -np.cos(tilt)])
    parts = [(base, tip - 0.3 * (tip - base), 2.2 * unit)]
    for f in range(4):
      off = (f - 1.5) * 1.05 * unit
      start = tip - 0.35 * (tip - base) + off * np.array([np.cos(tilt), np.sin(tilt)])
      length = reach * rng.uniform(0.35, 0.55) * (1 - 0.15 * abs(f - 1.5))
      end = start + length * np.array([np.sin(tilt), -np.cos(tilt)])
      parts.append((start, end, 0.5 * unit))
    albedo = textures.pick(rng, SKIN_TONES, np.ones(len(SKIN_TONES)), 0.1)
    label, spec = L.HAND, 0.15
  else:
    width = rng.uniform(1.2, 3.0) * unit
    base = np.array([along, size + width])
    tip = base + reach * np.array([np.sin(tilt), -np.cos(tilt)])
    parts = [(base, tip, width)]
    albedo = rng.uniform(0.02, 0.6, 3).astype(np.float32)
    label, spec = L.OBJECT, rng.uniform(0.1, 0.8)
  for a, b, radius in parts:
    ins, hh, gx, gy = _capsule(u, v, a, b, radius)
    take = ins & (hh * radius > h)
    h = np.where(take, hh * radius, h)
    nx, ny = np.where(take, gx, nx), np.where(take, gy, ny)
    inside |= ins
  # Normals in the rotated frame -> image frame (x right, y up).
  gx, gy = [(nx, ny), (ny, -nx), (-nx, -ny), (-ny, nx)][edge]
  n = np.stack([gx, -gy, np.sqrt(np.maximum(1 - gx * gx - gy * gy, 0.0))], -1)
  depth = np.where(inside, front + 2 * size * 0.05 + h, -np.inf)
  return Opaque(depth, n.astype(np.float32), np.where(inside, label, L.BACKGROUND).astype(
      np.uint8), np.broadcast_to(albedo, (size, size, 3)).astype(np.float32), float(spec))


def other_person(rng: np.random.Generator, head_frame: raycast.Frame, size: int
                 ) -> list[Opaque]:
  """Another person at the side of the frame, behind the subject: a face mesh of its own
  identity (eyes, brows and lips coloured by region), skull, hair cap and shoulders, in flat
  colours (no skin truth)."""
  from data.synth import face_parts, geometry, head, shape_space  # pylint: disable=g-import-not-at-top
  template = geometry.load_template()
  side = 1.0 if rng.uniform() < 0.5 else -1.0
  scale = rng.uniform(0.6, 1.1)
  shift = np.array([side * rng.uniform(0.45, 0.75) * size, rng.uniform(-0.1, 0.25) * size,
                    -rng.uniform(0.4, 0.9) * size])
  yaw, pitch = np.deg2rad(rng.uniform(-60, 60)), np.deg2rad(rng.uniform(-15, 15))
  ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
  rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)],
                 [0, np.sin(pitch), np.cos(pitch)]])
  a = head_frame.scale * scale * np.diag([1.0, -1.0, 1.0]) @ rx @ ry
  frame = raycast.Frame(a, head_frame.to_screen(np.zeros(3)) + shift)
  vertices = shape_space.apply_identity(template, shape_space.sample_identity(rng, 0.8))
  geo = geometry.rasterise(vertices, template, geometry.Pose(scale=0.5), size,
                           screen=frame.to_screen(vertices))
  skin = textures.pick(rng, SKIN_TONES, np.ones(len(SKIN_TONES)), 0.1)
  hair = textures.pick(rng, textures.HAIR_COLOURS, textures.HAIR_WEIGHTS)
  cloth = rng.uniform(0.02, 0.5, 3).astype(np.float32)
  region = face_parts.surface_labels(template, geo["triangle"])
  face_albedo = np.where(np.isin(region, (L.EYE_LEFT, L.EYE_RIGHT, L.MOUTH))[..., None],
                         0.04, np.where(np.isin(region, (L.UPPER_LIP, L.LOWER_LIP))[..., None],
                                        skin * [1.15, 0.7, 0.7], skin))
  r = raycast.rays(frame, size)
  free = ~geo["mask"]
  skull = raycast.ellipsoid(r, frame, head.SKULL_CENTRE, head.SKULL_RADII).where(free)
  cap = raycast.ellipsoid(r, frame, head.SKULL_CENTRE + [0, 4, 0], head.SKULL_RADII + 8)
  u = (cap.point - head.SKULL_CENTRE) / head.SKULL_RADII
  el = np.degrees(np.arcsin(np.clip(u[..., 1] / np.maximum(np.linalg.norm(u, axis=-1), 1e-9),
                                    -1, 1)))
  az = np.degrees(np.abs(np.arctan2(u[..., 0], u[..., 2])))
  cap = cap.where((el > rng.uniform(20, 35)) | ((az > 80) & (el > -20)))
  body = raycast.ellipsoid(r, frame, [0, -330, -20], [220, 170, 100])
  face = raycast.Hit(np.where(geo["mask"], geo["depth"], -np.inf), np.zeros(free.shape + (3,)),
                     geo["normals"], np.ones(free.shape))
  out = []
  for hit, colour, spec in ((face, face_albedo, 0.1), (skull, skin, 0.1), (cap, hair, 0.1),
                            (body, cloth, 0.02)):
    out.append(Opaque(hit.depth, hit.normal, np.where(hit.mask, L.OTHER_PERSON, 0).astype(
        np.uint8), np.broadcast_to(colour, (size, size, 3)).astype(np.float32), spec))
  return out
