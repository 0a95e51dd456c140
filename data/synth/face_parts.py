"""Face parts on the mesh: UV regions, eyes, mouth interior and teeth, and hair drawn in UV.

Regions are polygons of the template's UV landmarks (`uv_labels`): eyes (the apertures 36-41,
42-47), nose, upper / lower lip, the mouth seam between the inner lip lines (it stretches into
the opening when the jaw drops, `shape_space`) and the ears (the lateral flaps of the mesh).
A rendered pixel takes the label of its mesh triangle (`triangle_labels`), so regions follow
every shape, expression and pose exactly.

Appearance of the non-skin parts (linear-sRGB albedos, lit later like every surface):

* eyes (`eye_albedo`): an eyeball sphere behind each aperture; a pixel's model-frame position
  seen from the eyeball centre gives its angle to the gaze, hence sclera, iris (radial
  fibres, darker limbal ring) or pupil; the lids shadow the upper sclera; `eye_gloss` is the
  catch-light (a sharp Phong lobe of the eyeball's own normal);
* mouth (`mouth_albedo`): a dark red interior, upper (and sometimes lower) teeth with gaps,
  placed by the pixel's position across the seam;
* overlays (`brow_alpha`, `lash_alpha`, `beard_alpha`): coverage in [0, 1] of hair on the skin,
  evaluated at each pixel's continuous UV (sharp at any size); the skin under them keeps its
  label below coverage 1/2 but loses its skin truth wherever coverage > 0.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from matplotlib import path as mpath

from data.synth import geometry, labels as L, shape_space, textures

UV = geometry.UV_SIZE
EYE_RADIUS = 12.0    # Model units (~10 mm).


def _inside(points: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
  """Pixels whose (col, row) lie inside the polygon `points` (K, 2)."""
  q = np.stack([np.ravel(col), np.ravel(row)], -1)
  return mpath.Path(points).contains_points(q).reshape(np.shape(col))


@functools.lru_cache(maxsize=2)
def uv_labels(template: geometry.FaceTemplate) -> np.ndarray:
  """(256, 256) uint8 labels of the mesh surface on the UV grid (0 outside the face)."""
  k = template.landmarks_uv
  row, col = np.mgrid[0:UV, 0:UV].astype(np.float64)
  out = np.where(template.uv_index >= 0, L.SKIN, L.BACKGROUND).astype(np.uint8)
  nose = np.array([k[27] + [-7, 0], k[29] + [-9, 0], k[31] + [-6, 1], k[32] + [0, 2],
                   k[33] + [0, 3], k[34] + [0, 2], k[35] + [6, 1], k[29] + [9, 0],
                   k[27] + [7, 0]])
  out[_inside(nose, col, row)] = L.NOSE
  out[_inside(k[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]], col, row)] = L.UPPER_LIP
  out[_inside(k[[48, 60, 67, 66, 65, 64, 54, 55, 56, 57, 58, 59]], col, row)] = L.LOWER_LIP
  out[_inside(k[60:68], col, row)] = L.MOUTH
  out[_inside(k[36:42], col, row)] = L.EYE_LEFT
  out[_inside(k[42:48], col, row)] = L.EYE_RIGHT
  v = np.zeros((UV, UV, 3))
  v[template.rows, template.cols] = template.vertices
  ear = (np.abs(v[..., 0]) > 86) & (v[..., 2] < -42) & (v[..., 1] > -12) & (v[..., 1] < 66)
  ear &= template.uv_index >= 0
  out[ear & (v[..., 0] < 0)] = L.EAR_LEFT
  out[ear & (v[..., 0] > 0)] = L.EAR_RIGHT
  out.setflags(write=False)
  return out


@functools.lru_cache(maxsize=2)
def triangle_labels(template: geometry.FaceTemplate) -> np.ndarray:
  """(T,) uint8 label of each mesh triangle: the label its three vertices share; a triangle
  that straddles a border takes the most common label of its vertices, except that eyes and
  the mouth seam claim only triangles entirely inside them (so a closed eye or mouth, whose
  inner triangles collapse, leaves no sliver)."""
  vert = uv_labels(template)[template.rows, template.cols][template.triangles]  # (T, 3)
  a, b, c = vert[:, 0], vert[:, 1], vert[:, 2]
  mode = np.where((a == b) | (a == c), a, np.where(b == c, b, a))
  inner = (L.EYE_LEFT, L.EYE_RIGHT, L.MOUTH)
  straddle = np.isin(vert, inner).any(1) & ~((a == b) & (b == c))
  # Straddling triangles: the most common label among their vertices outside eyes / mouth.
  other = np.where(np.isin(vert, inner), 255, vert)
  o0, o1, o2 = other[:, 0], other[:, 1], other[:, 2]
  fallback = np.where(o0 != 255, o0, np.where(o1 != 255, o1, o2))
  fallback = np.where((o1 == o2) & (o1 != 255), o1, fallback)
  out = np.where(straddle, fallback, mode).astype(np.uint8)
  out = np.where(out == 255, L.SKIN, out).astype(np.uint8)
  out.setflags(write=False)
  return out


def surface_labels(template: geometry.FaceTemplate, triangle: np.ndarray) -> np.ndarray:
  """(H, W) uint8 label of each rendered face pixel from its triangle (-1 = none -> 0)."""
  lab = triangle_labels(template)
  return np.where(triangle >= 0, lab[np.maximum(triangle, 0)], L.BACKGROUND).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class EyeParams:
  """Per-face eye appearance: iris colour (3,), iris and pupil angular radii (degrees),
  gaze (yaw, pitch) in degrees in the head frame, sclera albedo (3,)."""
  iris: np.ndarray
  iris_deg: float
  pupil_deg: float
  gaze: tuple[float, float]
  sclera: np.ndarray


def sample_eyes(rng: np.random.Generator) -> EyeParams:
  iris = textures.pick(rng, textures.IRIS_COLOURS, textures.IRIS_WEIGHTS, 0.1)
  sclera = np.array([0.62, 0.55, 0.50], np.float32) * rng.uniform(0.75, 1.1)
  return EyeParams(iris, float(rng.uniform(28.0, 33.0)), float(rng.uniform(8.0, 15.0)),
                   (float(rng.normal(0, 8)), float(rng.normal(0, 5))), sclera)


def eyeball_centres(template: geometry.FaceTemplate, vertices: np.ndarray) -> np.ndarray:
  """(2, 3) model-frame eyeball centres: behind the aperture centroid of each eye."""
  lmk = vertices[template.landmark_vertices]
  out = []
  for outer, up, inner, low in shape_space.EYES:
    ring = lmk[[outer, *up, inner, *low]]
    centre = ring.mean(0)
    out.append(centre - np.array([0.0, 0.0, 0.75 * EYE_RADIUS]))
  return np.stack(out)


def _gaze(params: EyeParams) -> np.ndarray:
  yaw, pitch = np.deg2rad(params.gaze)
  return np.array([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)])


def eye_albedo(rng: np.random.Generator, params: EyeParams, position: np.ndarray,
               label: np.ndarray, centres: np.ndarray, uv: np.ndarray,
               template: geometry.FaceTemplate) -> tuple[np.ndarray, np.ndarray]:
  """Albedo (H, W, 3) of the eye pixels and their eyeball normals (H, W, 3, model frame).

  Args:
    position: (H, W, 3) model-frame surface positions of the rendered pixels.
    label: (H, W) surface labels (`surface_labels`).
    centres: `eyeball_centres` of the face.
    uv: (H, W, 2) per-pixel UV (for the lid shadow).
  """
  albedo = np.zeros(label.shape + (3,), np.float32)
  normal = np.zeros(label.shape + (3,), np.float32)
  gaze = _gaze(params)
  fibres = textures.lattice(rng, 32)
  col, row = uv[..., 0] * UV - 0.5, uv[..., 1] * UV - 0.5
  for eye, lab in enumerate((L.EYE_LEFT, L.EYE_RIGHT)):
    m = label == lab
    if not m.any():
      continue
    d = position[m] - centres[eye]
    q = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    ang = np.degrees(np.arccos(np.clip(q @ gaze, -1.0, 1.0)))
    # Azimuth around the gaze for the radial iris fibres.
    ref = np.cross(gaze, [0.0, 1.0, 0.0])
    ref /= np.linalg.norm(ref)
    az = np.arctan2(q @ np.cross(gaze, ref), q @ ref)
    fib = 0.75 + 0.25 * textures.value_noise(fibres, (az / np.pi + 1) * 16, ang / 4.0)
    r = ang / params.iris_deg
    iris = params.iris * fib[:, None] * (1.0 - 0.55 * textures.smoothstep(0.75, 1.0, r))[:, None]
    a = np.where((r < 1.0)[:, None], iris, params.sclera)
    a = np.where((ang < params.pupil_deg)[:, None], 0.01, a)
    up, low, _, _ = shape_space.lid_lines(template, eye, col[m])
    s = np.clip((row[m] - up) / np.maximum(low - up, 1e-3), 0.0, 1.0)
    lid = 1.0 - 0.6 * np.exp(-s / 0.3) - 0.3 * np.exp(-(1.0 - s) / 0.15)
    albedo[m] = a * lid[:, None]
    normal[m] = q
  return albedo, normal


def eye_gloss(normal_cam: np.ndarray, light_dir: np.ndarray, mask: np.ndarray,
              shininess: float = 400.0) -> np.ndarray:
  """Catch-light: Blinn-Phong lobe of the eyeball normals (camera frame) toward `light_dir`."""
  h = np.asarray(light_dir, np.float64) + geometry.VIEW_DIR
  h = h / np.linalg.norm(h)
  return np.where(mask, np.maximum(normal_cam @ h, 0.0) ** shininess, 0.0).astype(np.float32)


def mouth_albedo(rng: np.random.Generator, uv: np.ndarray, label: np.ndarray, drop: float,
                 template: geometry.FaceTemplate) -> tuple[np.ndarray, np.ndarray]:
  """Albedo (H, W, 3) of the mouth-seam pixels and their labels (MOUTH or TEETH).

  A pixel's position across the seam (0 at the inner upper lip, 1 at the inner lower lip)
  times the opening at its column (`drop` model units times the lip profile, plus the closed
  seam) places the upper teeth (about 9 units tall), the lower teeth (sometimes) and the dark
  interior with a reddish tongue.
  """
  m = label == L.MOUTH
  albedo = np.zeros(label.shape + (3,), np.float32)
  out = label.copy()
  if not m.any():
    return albedo, out
  k = template.landmarks_uv
  col, row = uv[m, 0] * UV - 0.5, uv[m, 1] * UV - 0.5
  c0, c1 = k[60, 0], k[64, 0]
  mid, half = 0.5 * (c0 + c1), 0.5 * (c1 - c0)
  up, low = shape_space.lip_lines(template, np.clip(col, c0, c1))
  frac = np.clip((row - up) / np.maximum(low - up, 1e-6), 0.0, 1.0)
  t = np.clip((col - mid) / half, -1.0, 1.0)
  profile = np.cos(0.5 * np.pi * t) ** 2
  gap = 3.0 + drop * profile
  teeth_width = rng.uniform(0.6, 0.85)
  upper = frac * gap < rng.uniform(7.0, 10.0) * np.sqrt(np.maximum(1 - (t / teeth_width) ** 2,
                                                                    0.0))
  lower = ((1.0 - frac) * gap < rng.uniform(3.0, 7.0) * (rng.uniform() < 0.5)
           * np.sqrt(np.maximum(1 - (t / (0.8 * teeth_width)) ** 2, 0.0)))
  teeth = (upper | lower) & (drop > 0.5)
  # Teeth about 8 units (7 mm) wide, the central incisors centred: t spans the mouth's
  # ~55 units, so a tooth is ~0.3 of t; the gaps are thin dark lines.
  tooth_w = rng.uniform(0.26, 0.34)
  edge = np.abs((t / tooth_w) % 1.0 - 0.5) > 0.46
  enamel = np.array([0.55, 0.50, 0.40], np.float32) * rng.uniform(0.6, 1.0)
  tooth = enamel * np.where(edge, 0.45, 1.0)[:, None] * (1.0 - 0.5 * np.abs(t))[:, None]
  tongue = np.array([0.20, 0.04, 0.04], np.float32) * rng.uniform(0.5, 1.2)
  cavity = np.array([0.03, 0.008, 0.008], np.float32)
  inner = cavity + (tongue - cavity) * (textures.smoothstep(0.55, 0.95, frac)
                                        * profile)[:, None]
  albedo[m] = np.where(teeth[:, None], tooth, inner)
  out[m] = np.where(teeth, L.TEETH, L.MOUTH)
  return albedo, out


@dataclasses.dataclass(frozen=True)
class HairOverlays:
  """Per-face facial hair: brow thickness and density, lash length, beard style."""
  brow_thickness: float
  brow_density: float
  lash_length: float
  beard: str           # none, stubble, moustache, goatee, chinstrap, full
  beard_density: float
  colour: np.ndarray   # Linear albedo of brows and beard.


def sample_overlays(rng: np.random.Generator, hair_colour: np.ndarray,
                    masculine: bool) -> HairOverlays:
  styles = ("none", "stubble", "moustache", "goatee", "chinstrap", "full")
  p = [0.45, 0.2, 0.06, 0.09, 0.05, 0.15] if masculine else [1, 0, 0, 0, 0, 0]
  beard = str(rng.choice(styles, p=p))
  colour = hair_colour * rng.uniform(0.6, 1.0)
  return HairOverlays(float(rng.uniform(6.0, 11.0)), float(rng.uniform(0.55, 1.0)),
                      float(rng.uniform(1.2, 2.5)), beard, float(rng.uniform(0.5, 1.0)),
                      colour.astype(np.float32))


def _polyline_distance(points: np.ndarray, col: np.ndarray, row: np.ndarray):
  """Distance to a polyline and the arc-length fraction (0..1) of the closest point."""
  q = np.stack([col, row], -1)[..., None, :]
  a, b = points[:-1], points[1:]
  ab = b - a
  s = np.clip(((q - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
  dist = np.linalg.norm(q - (a + s[..., None] * ab), axis=-1)
  j = dist.argmin(-1)
  seg = np.linalg.norm(ab, axis=-1)
  cum = np.concatenate([[0.0], np.cumsum(seg)])
  along = (cum[j] + np.take_along_axis(s, j[..., None], -1)[..., 0] * seg[j]) / cum[-1]
  return dist.min(-1), along


def _near(uv: np.ndarray, mask: np.ndarray, points: np.ndarray, margin: float) -> np.ndarray:
  """Mask pixels whose UV lies in the bounding box of `points` (UV pixels) grown by `margin`."""
  lo, hi = points.min(0) - margin, points.max(0) + margin
  col, row = uv[..., 0] * UV - 0.5, uv[..., 1] * UV - 0.5
  return mask & (col >= lo[0]) & (col <= hi[0]) & (row >= lo[1]) & (row <= hi[1])


def brow_alpha(rng: np.random.Generator, p: HairOverlays, uv: np.ndarray, mask: np.ndarray,
               template: geometry.FaceTemplate) -> tuple[np.ndarray, np.ndarray]:
  """Brow coverage (H, W) in [0, 1] and which brow (0 none, 1 left, 2 right)."""
  k = template.landmarks_uv
  alpha = np.zeros(mask.shape, np.float32)
  which = np.zeros(mask.shape, np.uint8)
  sel = _near(uv, mask, k[17:27], 12.0)
  if not sel.any():
    return alpha, which
  col, row = uv[sel, 0] * UV - 0.5, uv[sel, 1] * UV - 0.5
  a_sel = np.zeros(col.shape, np.float32)
  w_sel = np.zeros(col.shape, np.uint8)
  for side, idx in ((1, [17, 18, 19, 20, 21]), (2, [26, 25, 24, 23, 22])):
    pts = k[idx] + [0.0, 1.0]
    dist, along = _polyline_distance(pts, col, row)
    head = 1.0 - along  # 0 at the tail (17 / 26), 1 at the inner end.
    half = p.brow_thickness * (0.35 + 0.65 * np.clip(0.3 + along, 0, 1)) * 0.5
    band = 1.0 - textures.smoothstep(0.6, 1.0, dist / np.maximum(half, 0.5))
    ends = textures.smoothstep(-0.02, 0.06, along) * textures.smoothstep(-0.03, 0.05, head)
    tilt = np.where(side == 1, 1.0, -1.0) * (0.25 + 1.1 * textures.smoothstep(0.75, 1.0, along))
    across = col * np.sin(tilt) - row * np.cos(tilt)
    hairs = textures.strands(rng, across * 2.5, col * np.cos(tilt) + row * np.sin(tilt), 1.0)
    a = band * ends * p.brow_density * (0.45 + 0.8 * hairs)
    better = a > a_sel
    a_sel = np.where(better, a, a_sel)
    w_sel = np.where(better & (a > 0), side, w_sel)
  alpha[sel] = np.clip(a_sel, 0.0, 1.0)
  which[sel] = w_sel
  return alpha, which


def lash_alpha(p: HairOverlays, uv: np.ndarray, mask: np.ndarray, eye_closed: tuple,
               template: geometry.FaceTemplate) -> np.ndarray:
  """Upper and lower lash coverage (H, W): a dark fringe on the lid lines."""
  k = template.landmarks_uv
  out = np.zeros(mask.shape, np.float32)
  sel = _near(uv, mask, k[36:48], 6.0)
  if not sel.any():
    return out
  col, row = uv[sel, 0] * UV - 0.5, uv[sel, 1] * UV - 0.5
  alpha = np.zeros(col.shape, np.float32)
  for eye, (outer, _, inner, _) in enumerate(shape_space.EYES):
    c0, c1 = sorted((k[outer, 0], k[inner, 0]))
    inside = (col > c0 - 1) & (col < c1 + 1)
    up, low, _, _ = shape_space.lid_lines(template, eye, col)
    taper = np.clip(np.minimum(col - c0, c1 - col) / 4.0 + 0.3, 0.0, 1.0)
    comb = 0.6 + 0.4 * np.cos(col * 2.7) ** 2
    upper = (1.0 - textures.smoothstep(0.0, p.lash_length, up - row)) * (row < up + 0.6)
    lower = 0.35 * (1.0 - textures.smoothstep(0.0, 0.8, row - low)) * (row > low - 0.4)
    alpha = np.maximum(alpha, np.where(inside, (upper * comb + lower) * taper, 0.0))
  out[sel] = np.clip(alpha, 0.0, 1.0)
  return out


def beard_alpha(rng: np.random.Generator, p: HairOverlays, uv: np.ndarray, mask: np.ndarray,
                template: geometry.FaceTemplate) -> np.ndarray:
  """Beard / moustache / stubble coverage (H, W) in [0, 1] on the lower face (not the lips)."""
  alpha = np.zeros(mask.shape, np.float32)
  if p.beard == "none":
    return alpha
  k = template.landmarks_uv
  sel = mask & (uv[..., 1] * UV - 0.5 > k[2, 1] - 10)
  if not sel.any():
    return alpha
  col, row = uv[sel, 0] * UV - 0.5, uv[sel, 1] * UV - 0.5
  mid = k[33, 0]
  x = np.abs(col - mid) / max(k[54, 0] - mid, 1.0)        # 1 at the mouth corners.
  lips = np.isin(uv_labels(template)[np.clip(np.round(row).astype(int), 0, UV - 1),
                                     np.clip(np.round(col).astype(int), 0, UV - 1)],
                 (L.UPPER_LIP, L.LOWER_LIP, L.MOUTH))
  edge = 3.0 * textures.fbm(rng, col / 10.0, row / 10.0, 2)
  mous = (row > k[33, 1] + 3 + 0.5 * edge) & (row < k[51, 1] + 1) & (x < 1.15 + 0.05 * edge)
  chin = (row > k[57, 1] + 2 + 0.5 * edge) & (x < 0.9 + 0.1 * edge)
  cheek_line = k[2, 1] + (k[48, 1] - k[2, 1]) * np.clip((k[2, 0] - col) / (k[2, 0] - k[48, 0]),
                                                         0, 1)
  cheek_line_r = k[14, 1] + (k[54, 1] - k[14, 1]) * np.clip((col - k[14, 0]) / (k[54, 0]
                                                                                - k[14, 0]), 0, 1)
  jaw = row > np.where(col < mid, cheek_line, cheek_line_r) + 4 + edge
  strap = jaw & (x > 1.2) | (row > k[8, 1] - 12 + edge)
  region = {"stubble": jaw | mous | chin, "moustache": mous, "goatee": mous | chin,
            "chinstrap": strap, "full": jaw | mous | chin}[p.beard]
  region &= ~lips
  fine = textures.value_noise(textures.lattice(rng, 128), col * 1.3, row * 1.3)
  if p.beard == "stubble":
    a = 0.55 * p.beard_density * (fine > 0.3)
  else:
    a = np.clip(0.75 + 0.35 * fine, 0.0, 1.0) * (0.6 + 0.4 * p.beard_density)
  alpha[sel] = np.where(region, a, 0.0)
  return alpha
