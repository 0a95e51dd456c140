"""The head and body around the face mesh: skull, jaw, neck, shoulders and clothing, hair.

All parts are quadrics ray cast in closed form (`raycast`), in two frames: the head's model
frame (the face mesh's: x right, y up, z toward the viewer; the skull, the jaw underside,
the hair) and a body frame that turns less than the head (neck, shoulders, clothing), whose
origin is the neck point of the head. Sizes are in face-mesh units (the mean face is ~206
units from forehead to chin, ~0.85 mm each).

Hair (`hair_layer`) is a shell around the skull (plus a hanging cylinder for long hair) whose
coverage is a region of head directions (elevation, azimuth): a hairline on the forehead
(lower for a fringe, higher when receding), sideburns in front of the ears and a cut at the
nape or, for long hair, a hem below the shoulders. Its edges are broken by strand noise, its
texture is a field of strands along the meridians, and its highlight is the anisotropic
Kajiya-Kay lobe of the strand tangents. Coverage is an alpha in [0, 1] (soft, strand-broken
edges) composited over whatever lies behind.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.synth import labels as L, raycast, textures

SKULL_CENTRE = np.array([0.0, 34.0, -50.0])
SKULL_RADII = np.array([97.0, 128.0, 110.0])
NECK_POINT = np.array([0.0, -70.0, -62.0])   # Head-frame origin of the body frame.
STYLES = ("bald", "buzz", "short", "medium", "long", "bun", "afro")


@dataclasses.dataclass(frozen=True)
class HeadParams:
  """Everything drawn around the face (sampled by `sample_head`)."""
  skull_radii: np.ndarray
  style: str
  hair_colour: np.ndarray
  hair_thickness: float
  hairline_deg: float       # Elevation of the front hairline (lower = fringe over the forehead).
  sideburn_deg: float       # Azimuth beyond which hair covers the sides.
  long_azimuth_deg: float   # Long hair: azimuth beyond which it hangs beside the face.
  hair_length: float        # Long hair: head-frame y of the hem.
  hair_shine: float
  parting_deg: float        # Sideways tilt of the strands' pole (0 = crown / middle parting).
  neck_radii: np.ndarray
  torso_radii: np.ndarray
  torso_top: float          # Body-frame y of the top of the shoulders at the neck.
  body_turn: float          # Fraction of the head's yaw and roll that the body follows.
  cloth_colour: np.ndarray
  cloth_colour2: np.ndarray
  cloth_pattern: str        # solid, stripes, checks, print, two_tone
  neckline: str             # crew, v, scoop, collar, high
  neckline_depth: float


def sample_head(rng: np.random.Generator, masculine: bool, width_scale: float = 1.0
                ) -> HeadParams:
  """Draws hair, head and body (`width_scale` widens the skull with the face)."""
  p = ([0.06, 0.10, 0.40, 0.22, 0.12, 0.03, 0.07] if masculine
       else [0.01, 0.01, 0.10, 0.25, 0.43, 0.12, 0.08])
  style = str(rng.choice(STYLES, p=p))
  colour = textures.pick(rng, textures.HAIR_COLOURS, textures.HAIR_WEIGHTS)
  thick = {"bald": 0.0, "buzz": rng.uniform(2, 4), "short": rng.uniform(6, 14),
           "medium": rng.uniform(9, 20), "long": rng.uniform(8, 20), "bun": rng.uniform(4, 10),
           "afro": rng.uniform(30, 60)}[style]
  fringe = rng.uniform() < (0.2 if style in ("short", "medium", "long") else 0.05)
  receding = masculine and rng.uniform() < 0.25
  hairline = (rng.uniform(-4, 10) if fringe else rng.uniform(22, 34)
              + (rng.uniform(8, 25) if receding else 0))
  skull = SKULL_RADII * width_scale * np.exp(rng.normal(0, [0.03, 0.03, 0.03]))
  shoulders = rng.uniform(215, 255) if masculine else rng.uniform(185, 225)
  return HeadParams(
      skull_radii=skull, style=style, hair_colour=colour, hair_thickness=float(thick),
      hairline_deg=float(hairline), sideburn_deg=float(rng.uniform(72, 86)),
      long_azimuth_deg=float(rng.uniform(62, 82)),
      hair_length=float(rng.uniform(-420, -160)), hair_shine=float(rng.uniform(0.05, 0.35)),
      parting_deg=float(rng.choice([-1.0, 0.0, 1.0]) * rng.uniform(12.0, 35.0)),
      neck_radii=np.array([rng.uniform(70, 82) if masculine else rng.uniform(62, 72),
                           rng.uniform(52, 62)]),
      torso_radii=np.array([shoulders, rng.uniform(110, 145), rng.uniform(95, 120)]),
      torso_top=float(rng.uniform(-60, -35)), body_turn=float(rng.uniform(0.1, 0.5)),
      cloth_colour=_cloth_colour(rng), cloth_colour2=_cloth_colour(rng),
      cloth_pattern=str(rng.choice(["solid", "stripes", "checks", "print", "two_tone"],
                                   p=[0.45, 0.15, 0.1, 0.15, 0.15])),
      neckline=str(rng.choice(["crew", "v", "scoop", "collar", "high"],
                              p=[0.3, 0.2, 0.15, 0.25, 0.1])),
      neckline_depth=float(rng.uniform(10, 60)))


def _cloth_colour(rng):
  if rng.uniform() < 0.35:  # Neutrals: black, white, greys.
    return np.full(3, rng.uniform(0.01, 0.7) ** 1.3, np.float32)
  hsv_v = rng.uniform(0.03, 0.6)
  c = rng.uniform(0.0, 1.0, 3) ** 2
  return (hsv_v * c / max(c.max(), 1e-3)).astype(np.float32)


def body_frame(head: raycast.Frame, yaw: float, roll: float, turn: float) -> raycast.Frame:
  """The body's frame: origin at the head's neck point, yawed and rolled `turn` as much."""
  a, c = np.deg2rad([yaw * turn, roll * turn])
  ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
  return head.moved(NECK_POINT, rz @ ry)


def skull_hits(params: HeadParams, head: raycast.Frame, size: int, keep: np.ndarray
               ) -> dict[str, raycast.Hit]:
  """Opaque skin surfaces of the head, cast on the pixels in `keep` (those the face mesh
  leaves free: inside the head the mesh is its skin): `skull` (label SKIN, above the ears'
  lower edge) and `jaw` (the underside of the jaw, label NECK)."""
  r = raycast.rays(head, size)
  radii = np.asarray(params.skull_radii, np.float64)
  jaw_centre, jaw_radii = np.array([0.0, -55.0, -45.0]), radii * [0.73, 0.33, 0.55]
  # Each quadric is cast only on the pixels of its screen box (the others miss it).
  skull = raycast.cast_in(lambda q: raycast.ellipsoid(q, head, SKULL_CENTRE, radii), r,
                          keep & raycast.screen_box(head, SKULL_CENTRE - radii,
                                                    SKULL_CENTRE + radii, size))
  skull = skull.where(skull.point[..., 1] > -25.0)
  jaw = raycast.cast_in(lambda q: raycast.ellipsoid(q, head, jaw_centre, jaw_radii), r,
                        keep & raycast.screen_box(head, jaw_centre - jaw_radii,
                                                  jaw_centre + jaw_radii, size))
  jaw = jaw.where(jaw.point[..., 1] < -15.0)
  return {"skull": skull, "jaw": jaw}


def body_hits(params: HeadParams, body: raycast.Frame, size: int, keep: np.ndarray
              ) -> tuple[dict[str, raycast.Hit], np.ndarray]:
  """Neck and torso hits in the body frame on the pixels in `keep` (the face mesh wins over
  them), and the torso's skin (neckline) mask."""
  r = raycast.rays(body, size)
  neck_radii = np.asarray(params.neck_radii, np.float64)
  y_range = (params.torso_top - 60.0, 40.0)
  # Each quadric is cast only on the pixels of its screen box (the others miss it).
  neck = raycast.cast_in(
      lambda q: raycast.cylinder_y(q, body, (0.0, 0.0), params.neck_radii, y_range), r,
      keep & raycast.screen_box(body, [-neck_radii[0], y_range[0], -neck_radii[1]],
                                [neck_radii[0], y_range[1], neck_radii[1]], size))
  # The torso: a chest whose top slopes from the neck like the trapezius, and two shoulder
  # caps (deltoids and upper arms) lower down at its sides.
  sw, ry, rz = params.torso_radii
  top = params.torso_top
  shapes = [(np.array([0.0, top - 1.6 * ry, 8.0]), np.array([0.8 * sw, 1.6 * ry, rz]))]
  for side in (-1.0, 1.0):
    shapes.append((np.array([side * 0.72 * sw, top - 60.0 - 1.5 * ry, 0.0]),
                   np.array([0.34 * sw, 1.5 * ry, 0.62 * rz])))
  parts = [raycast.cast_in(lambda q, c=c, rad=rad: raycast.ellipsoid(q, body, c, rad), r,
                           keep & raycast.screen_box(body, c - rad, c + rad, size))
           for c, rad in shapes]
  _, torso = raycast.nearest(*parts)
  x, y = torso.point[..., 0], torso.point[..., 1]
  ax = np.abs(x) / params.neck_radii[0]
  depth = params.neckline_depth
  line = {"crew": params.torso_top - 8 - 10 * ax ** 2,
          "v": params.torso_top - depth + depth * np.clip(ax / 1.6, 0, 1),
          "scoop": params.torso_top - depth * np.sqrt(np.clip(1 - (ax / 2.2) ** 2, 0, 1)),
          "collar": params.torso_top - 0.6 * depth + 0.6 * depth * np.clip(ax / 1.3, 0, 1),
          "high": params.torso_top + 30 + 0 * ax}[params.neckline]
  skin = torso.mask & (y > line)
  return {"neck": neck, "torso": torso}, skin


def cloth_albedo(rng: np.random.Generator, params: HeadParams, hit: raycast.Hit) -> np.ndarray:
  """(h, w, 3) clothing albedo from the torso's body-frame surface coordinates (0 where the
  torso is not hit)."""
  m = hit.mask
  out = np.zeros(m.shape + (3,), np.float32)
  x, y = hit.point[m, 0], hit.point[m, 1]
  c1, c2 = params.cloth_colour, params.cloth_colour2
  kind = params.cloth_pattern
  if kind == "stripes":
    period = rng.uniform(8, 40)
    t = (np.sin(2 * np.pi * (y if rng.uniform() < 0.7 else x) / period) > rng.uniform(-0.5, 0.5))
  elif kind == "checks":
    period = rng.uniform(15, 50)
    t = (np.floor(x / period) + np.floor(y / period)) % 2 == 0
  elif kind == "print":
    t = textures.fbm(rng, x / rng.uniform(10, 60), y / rng.uniform(10, 60), 3) > 0.3
  elif kind == "two_tone":
    t = x * rng.choice([-1, 1]) > rng.uniform(-60, 60)
  else:
    t = np.zeros(x.shape, bool)
  base = np.where(t[..., None], c2, c1)
  weave = 1.0 + 0.08 * textures.fbm(rng, x / 3.0, y / 3.0, 2)
  folds = 1.0 + 0.12 * textures.fbm(rng, x / 80.0, y / 40.0, 2)
  out[m] = base * (weave * folds)[..., None]
  return out


def _direction(point: np.ndarray, radii: np.ndarray):
  u = (point - SKULL_CENTRE) / radii
  norm = np.sqrt(np.einsum("...i,...i->...", u, u))
  el = np.degrees(np.arcsin(np.clip(u[..., 1] / np.maximum(norm, 1e-9), -1, 1)))
  az = np.degrees(np.arctan2(u[..., 0], u[..., 2]))
  return el, az


@dataclasses.dataclass
class HairLayer:
  """Hair seen through each pixel: coverage alpha, depth, camera normal and strand tangent,
  albedo; zero alpha where there is none."""
  alpha: np.ndarray
  depth: np.ndarray
  normal: np.ndarray
  tangent: np.ndarray
  albedo: np.ndarray


def hair_layer(rng: np.random.Generator, params: HeadParams, head: raycast.Frame,
               size: int) -> HairLayer:
  """The hair shell (see the module docstring) at `size` x `size` pixels.

  Textures are evaluated only on the pixels whose rays pass near the shell (its bounding
  ellipsoid, grown by the largest relief), then scattered into the image.
  """
  full = raycast.rays(head, size)
  out = HairLayer(np.zeros((size, size), np.float32), np.full((size, size), -np.inf),
                  np.zeros((size, size, 3), np.float32), np.zeros((size, size, 3), np.float32),
                  np.zeros((size, size, 3), np.float32))
  if params.style == "bald":
    return out
  # Hair is fuller on top and at the back than at the temples.
  radii = params.skull_radii + params.hair_thickness * np.array([0.8, 1.2, 1.1])
  if params.style == "afro":
    radii = radii * [1.05, 1.0, 1.0]
  centre = SKULL_CENTRE + [0, 2 + 0.2 * params.hair_thickness, -0.1 * params.hair_thickness]
  long_hair = params.style == "long"
  # Each bound is evaluated only on the pixels of its screen box (the others are outside it).
  bound = np.zeros((size, size), bool)

  def add_bound(test, low, high):
    box = raycast.screen_box(head, low, high, size)
    bound[box] |= test(raycast.subset(full, box))

  grown = radii * 1.12
  add_bound(lambda q: raycast.ellipsoid_mask(q, centre, grown), centre - grown, centre + grown)
  if long_hair:
    y_range = (params.hair_length - 40.0, centre[1])
    add_bound(lambda q: raycast.cylinder_y(q, head, (centre[0], centre[2]), grown[[0, 2]],
                                           y_range).mask,
              [centre[0] - grown[0], y_range[0], centre[2] - grown[2]],
              [centre[0] + grown[0], y_range[1], centre[2] + grown[2]])
  if params.style == "bun":
    bun_centre, bun_radii = SKULL_CENTRE + [0, 110, -60], np.array([45.0, 40.0, 45.0])
    add_bound(lambda q: raycast.ellipsoid_mask(q, bun_centre, bun_radii),
              bun_centre - bun_radii, bun_centre + bun_radii)
  if not bound.any():
    return out
  r = raycast.Rays(full.origin[bound], full.direction)
  base = raycast.ellipsoid(r, head, centre, radii * 1.12, normals=False)
  el0, az0 = _direction(base.point, radii)
  relief = 1.0 + (0.012 + 0.03 * (params.style == "afro")) * textures.fbm(
      rng, az0 / 6.0, el0 / 6.0, 3) + 0.006 * textures.fbm(rng, az0 / 1.2, el0 / 12.0, 2)
  short_nape = -20.0 if params.style in ("buzz", "short", "bun") else -35.0
  breakup = 2.5 * textures.strands(rng, az0 * 3.0, el0, 1.0) + 1.5 * textures.fbm(
      rng, az0 / 8.0, el0 / 8.0, 2)

  def coverage(hit, sel):
    el, az = _direction(hit.point, radii)
    aaz = np.abs(az)
    # Front hairline: an arch from the forehead down to the temples.
    front = params.hairline_deg - 18.0 * textures.smoothstep(25.0, 75.0, aaz) + breakup[sel]
    cover = textures.smoothstep(0.0, 4.0, el - front)
    side = textures.smoothstep(0.0, 5.0, aaz - params.sideburn_deg - breakup[sel])
    ear_gap = np.exp(-0.5 * ((aaz - 100.0) / 14.0) ** 2) * (params.style in ("buzz", "short"))
    side_low = textures.smoothstep(0.0, 4.0, el - (short_nape + 35.0 * ear_gap) + breakup[sel])
    return np.maximum(cover, side * side_low)

  # The outer surface where it has hair, else the inner surface behind (seen around the face).
  shell_radii = radii * relief[..., None]
  shell = raycast.ellipsoid(r, head, centre, shell_radii)
  c_out = coverage(shell, slice(None))
  c_in = np.zeros_like(c_out)
  use_in = c_out <= 0.5
  if use_in.any():
    inner = raycast.ellipsoid(raycast.subset(r, use_in), head, centre, shell_radii[use_in],
                              back=True)
    c_in[use_in] = coverage(inner, use_in)
    shell.depth[use_in], shell.point[use_in] = inner.depth, inner.point
    shell.normal[use_in], shell.margin[use_in] = inner.normal, inner.margin
  use_out = ~use_in
  cover = c_out + (1.0 - c_out) * c_in
  hits, alphas = [shell.where(cover > 0)], [cover]
  if long_hair:
    cyl = raycast.cylinder_y(r, head, (centre[0], centre[2]), (radii[0] * relief,
                                                               radii[2] * relief),
                             (params.hair_length - 40.0, centre[1]))
    caz = np.degrees(np.arctan2(cyl.point[..., 0] / radii[0],
                                (cyl.point[..., 2] - centre[2]) / radii[2]))
    cb = 2.5 * textures.strands(rng, caz * 3.0, cyl.point[..., 1] / 4, 1.0)
    hem = params.hair_length + 25.0 * np.cos(np.deg2rad(caz)) ** 2 + 8 * cb
    c_alpha = (textures.smoothstep(0.0, 5.0, np.abs(caz) - params.long_azimuth_deg - cb)
               * textures.smoothstep(0.0, 12.0, cyl.point[..., 1] - hem))
    hits.append(cyl.where(c_alpha > 0))
    alphas.append(c_alpha)
  if params.style == "bun":
    bun = raycast.ellipsoid(r, head, SKULL_CENTRE + [0, 110, -60], [45, 40, 45])
    hits.append(bun)
    alphas.append(bun.mask.astype(np.float32))
  idx, hit = raycast.nearest(*hits)
  alpha = np.zeros(idx.shape, np.float32)
  for i, a in enumerate(alphas):
    alpha = np.where(idx == i, a, alpha)
  alpha *= textures.smoothstep(0.0, 0.08, hit.margin)  # Thin strands at the silhouette.
  # Strands flow from a parting: meridians around a pole tilted sideways by parting_deg.
  c, s_ = np.cos(np.deg2rad(params.parting_deg)), np.sin(np.deg2rad(params.parting_deg))
  part = np.array([[c, s_, 0.0], [-s_, c, 0.0], [0.0, 0.0, 1.0]])  # Rz(-parting).
  el, az = _direction(SKULL_CENTRE + (hit.point - SKULL_CENTRE) @ part.T, radii)
  afro = params.style == "afro"
  strand = textures.strands(rng, az * (6.0 if afro else 2.0), el, 1.0,
                            wobble=1.5 if afro else 0.4)
  clump = textures.fbm(rng, az / 10.0, el / 25.0, 2)
  inside = (idx == 0) & ~use_out  # The inner surface is in the hair's own shadow.
  albedo = params.hair_colour * ((0.45 + 0.8 * strand) * (1.0 + 0.2 * clump)
                                 * np.where(inside, 0.45, 1.0))[..., None]
  alpha = alpha * (0.85 + 0.15 * strand)
  # Tangent along the meridian (pointing down the head), camera frame.
  e, a_ = np.deg2rad(el), np.deg2rad(az)
  tan_model = np.stack([np.sin(e) * np.sin(a_), -np.cos(e), np.sin(e) * np.cos(a_)], -1)
  out.alpha[bound] = np.where(idx >= 0, alpha, 0.0)
  out.depth[bound] = hit.depth
  tangent = tan_model @ part @ head.rotation.T
  # Strands are little cylinders: tilt the shell normal across the strand with the texture,
  # so the shading has the fine relief of hair instead of a smooth helmet.
  across = np.cross(hit.normal, tangent)
  bump = (strand - 0.55) * 0.8
  normal = hit.normal + bump[..., None] * across
  normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
  out.normal[bound] = np.where((idx >= 0)[..., None], normal, 0.0)
  out.tangent[bound] = tangent
  out.albedo[bound] = np.maximum(albedo, 0.0)
  return out


def kajiya_kay(tangent: np.ndarray, light_dir: np.ndarray, shine: float,
               exponent: float = 60.0, shift: float = 0.12) -> np.ndarray:
  """Anisotropic hair highlight sin(t, h)^p of strand tangents (camera frame), shifted along
  the strand toward the root (the cuticle tilt) so the highlight band sits off-centre."""
  h = np.asarray(light_dir, np.float64) + [0.0, 0.0, 1.0]
  h = h / np.linalg.norm(h)
  th = np.clip(tangent @ h + shift, -1.0, 1.0)
  return (shine * np.sqrt(np.maximum(1.0 - th * th, 0.0)) ** exponent).astype(np.float32)


SKIN_PARTS = {"skull": L.SKIN, "jaw": L.NECK, "neck": L.NECK}
