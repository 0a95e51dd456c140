"""Light rigs for synthetic scenes: SH environments, directional, point and area lights, coloured
by illuminants of BioFaceNet's model, with cast shadows and ambient occlusion from the depth map.

A rig is drawn by `sample_rig(rng, options)` as a JSON-able dict (stored with each sample) and
turned into shading by `shade(rig, normals, depth, mask, shininess)`. Everything is NumPy on
the host; conventions are `data.synth.geometry`'s (camera frame x right, y up, z toward the
orthographic camera, view direction (0, 0, 1); depth in pixels, larger = closer).

**Lights** (``rig["lights"]``, each with a ``group`` and an ``intensity``):

* ``environment``: 9 second-order SH coefficients ``sh`` (one channel, NFE order; a sky above,
  a ground bounce below, an ambient floor and soft blobs). Diffuse shading
  ``max(0, E(n; L)) * AO`` with E the Ramamoorthi-Hanrahan irradiance
  (`bioface_jax.physics.shading.sh_irradiance`) and AO the depth map's ambient occlusion
  (`data.synth.shadows.ambient_occlusion`, strength ``rig["ao_strength"]``). Its specular is a
  broad Blinn-Phong lobe along the first SH band's direction, with the intensity of the single
  directional light that has the same first band (``|L1| / 0.488603``).
* ``directional``: ``direction`` (unit, toward the light), ``angular_radius`` in degrees (the
  sun 0.27, softboxes and windows 5-35). Diffuse ``I max(0, n.l) V``, with V the cast-shadow
  visibility (`data.synth.shadows.cast_shadow`; soft for a wide light).
* ``point``: ``position`` relative to the image centre at depth 0, in units of the image side
  (camera frame). Diffuse ``I (|P| / |P - x|)^2 max(0, n.l(x)) V``: ``intensity`` is the
  irradiance at the origin facing the light. Its shadow is cast along the direction from the
  origin (a distant-light approximation, exact for lights far from the face).
* Specular of directional and point lights: ``I V (s'/s) max(0, n.h)^s'`` where n.l > 0
  (Blinn-Phong as in `data.synth.appearance.blinn_phong`, unnormalised, peak I for a point
  light). A light of angular radius alpha widens the lobe as a Gaussian of the half-vector
  angle: ``1/s' = 1/s + alpha^2 / 16`` (the half vector moves by alpha / 2), and lowers its peak
  by s'/s so the lobe keeps its energy. The scene multiplies the specular by its per-pixel
  specular strength (the skin's oil map).

**Groups and colour.** Lights of one ``group`` share an illuminant of BioFaceNet's model
(``rig["groups"][g]``: ``weights`` on [A, D, F1..F12], daylight index ``t``, and a ``source``
name), so skin is rendered spectrally per group and summed:
``raw = sum_g physics.render(fmel, fblood, diffuse_g, specular_g, e_g, b)["raw"]``, then white
balanced once, for the **main group 0**, the group of the key light (the sun, the window, the
studio key, the flash) that the camera's white balance aims at (`data.synth.light_render`).
Non-skin materials are ``albedo_rgb * sum_g colour_g * diffuse_g`` with ``colour_g`` the light's
colour through that same white balance (`light_render.light_colours`).

With probability ``1 - mixed_probability`` a rig is **single-illuminant**: every light takes
group 0's illuminant, there is one group, and BioFaceNet's model holds exactly (the image is
``physics.render`` of the summed shading). Otherwise the rig's second sources keep their own
colour (sun + bluer sky, window + tungsten lamp, flash + warm room, coloured rim lights): no
single illuminant explains the image. The truth to record then (see
docs/synthetic_light_camera.md) is the main group's illuminant, the total diffuse shading
``sum_g diffuse_g`` (irradiance integrated over wavelength, since every illuminant has unit
sum) and the main group's share of it per pixel (`main_share`).

Rig kinds (``LightOptions.kinds``): ``studio`` (soft key + fill + soft environment),
``sun`` (hard sun + sky), ``overcast`` (environment only), ``side`` (one strong side light,
little ambient), ``rim`` (key + 1-2 lights from behind), ``indoor`` (window + lamp), ``flash``
(on-camera flash + dim room light).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bioface_jax.physics.shading import C1, C2, C3, C4, C5
from bioface_jax.physics.spectra import N_ILLUMINANTS
from data.synth import shadows
from data.synth.appearance import sh_basis

KINDS = ("studio", "sun", "overcast", "side", "rim", "indoor", "flash")
SOURCES = ("sun", "sky", "overcast", "window", "studio", "flash", "tungsten", "fluorescent",
           "led")
_A, _D = 0, 1  # Positions in the weight vector [A, D, F1..F12].
_Y1 = 0.488603  # Real SH constant of the first band: Y1m = 0.488603 (x, y or z).


@dataclasses.dataclass(frozen=True)
class LightOptions:
  """What `sample_rig` draws from.

  Attributes:
    kinds: probabilities of the rig kinds in `KINDS` order.
    mixed_probability: chance that a rig's secondary sources keep their own illuminant
      (several groups); otherwise the whole rig has group 0's illuminant.
    ao_strength: range of the ambient-occlusion strength (0 = none) on environment light.
    shadows: cast shadows from the depth map.
  """
  kinds: tuple[float, ...] = (0.2, 0.15, 0.15, 0.15, 0.1, 0.17, 0.08)
  mixed_probability: float = 0.3
  ao_strength: tuple[float, float] = (0.5, 1.0)
  shadows: bool = True

  def __post_init__(self):
    p = np.asarray(self.kinds, np.float64)
    if p.shape != (len(KINDS),) or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
      raise ValueError(f"LightOptions.kinds must be {len(KINDS)} probabilities for {KINDS} "
                       f"summing to 1, got {self.kinds}")
    if not 0 <= self.mixed_probability <= 1:
      raise ValueError(f"LightOptions.mixed_probability must be in [0, 1], got "
                       f"{self.mixed_probability}")
    lo, hi = self.ao_strength
    if not 0 <= lo <= hi <= 1:
      raise ValueError(f"LightOptions.ao_strength must be 0 <= low <= high <= 1, got "
                       f"{self.ao_strength}")


def direction(azimuth: float, elevation: float) -> np.ndarray:
  """Unit vector toward a light at `azimuth` degrees from the camera axis toward +x (image
  right; beyond +-90 = behind the subject) and `elevation` degrees up (+y)."""
  a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
  return np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])


def sample_illuminant(rng: np.random.Generator, source: str) -> dict:
  """An illuminant of BioFaceNet's model for a named light source.

  Daylight indices t (CCT = 1000 (t + 3) K): sun 1.5-3.5 (4500-6500 K), window 2-6, overcast
  3-6, sky 4-10 (7000-13000 K), studio / flash 2-4 (or, for studio, tungsten 30 % of the time);
  tungsten = CIE A; fluorescent = one of F1..F12; led = a warm mixture of A and daylight, 30 %
  with a tri-band fluorescent (F10-F12) component.

  Returns:
    dict(source, weights (14 floats, simplex), t (float)); t is drawn even when the daylight
    weight is 0 (the renderer ignores it then).
  """
  weights = np.zeros(N_ILLUMINANTS)
  t = float(rng.uniform(1.0, 22.0))
  ranges = dict(sun=(1.5, 3.5), window=(2.0, 6.0), overcast=(3.0, 6.0), sky=(4.0, 10.0),
                studio=(2.0, 4.0), flash=(2.0, 4.0))
  if source == "studio" and rng.uniform() < 0.3:
    source_kind = "tungsten"
  else:
    source_kind = source
  if source_kind in ranges:
    weights[_D] = 1.0
    t = float(rng.uniform(*ranges[source_kind]))
  elif source_kind == "tungsten":
    weights[_A] = 1.0
  elif source_kind == "fluorescent":
    weights[2 + int(rng.integers(12))] = 1.0
  elif source_kind == "led":
    t = float(rng.uniform(1.0, 3.0))
    warm = rng.uniform(0.3, 0.8)
    weights[_A], weights[_D] = warm, 1.0 - warm
    if rng.uniform() < 0.3:
      weights *= 0.7
      weights[2 + int(rng.integers(9, 12))] = 0.3
  else:
    raise ValueError(f"unknown light source {source!r}; known: {SOURCES}")
  return dict(source=source, weights=(weights / weights.sum()).tolist(), t=t)


def band_blur(coeffs: np.ndarray, width: float) -> np.ndarray:
  """Softens SH lighting as a spherical Gaussian of angular `width` (radians) would: band l is
  scaled by exp(-l (l + 1) width^2 / 2)."""
  bands = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
  return coeffs * np.exp(-bands * (bands + 1) * width**2 / 2.0)


def sample_environment(rng: np.random.Generator, ambient: float, sky: float) -> np.ndarray:
  """(9,) SH environment: a uniform `ambient` irradiance, a soft `sky` lobe from above and in
  front, a weaker ground bounce from below and 0-2 soft coloured-neutral blobs in front."""
  coeffs = np.zeros(9)
  coeffs[0] += ambient / (np.pi * 0.282095)  # A uniform irradiance E adds E / (pi Y00) to L00.
  up = direction(rng.uniform(-30, 30), rng.uniform(50, 85))
  coeffs += band_blur(sky * sh_basis(up), rng.uniform(0.4, 0.9))
  ground = direction(rng.uniform(-40, 40), rng.uniform(-80, -40))
  coeffs += band_blur(sky * rng.uniform(0.05, 0.3) * sh_basis(ground), 0.8)
  for _ in range(int(rng.integers(0, 3))):
    blob = direction(rng.uniform(-120, 120), rng.uniform(-20, 60))
    coeffs += band_blur(rng.uniform(0.05, 0.3) * sky * sh_basis(blob), rng.uniform(0.3, 0.8))
  return coeffs


def _light(kind, group, intensity, **fields) -> dict:
  out = dict(type=kind, group=int(group), intensity=float(intensity))
  out.update({k: (np.asarray(v, np.float64).tolist() if isinstance(v, np.ndarray) else float(v))
              for k, v in fields.items()})
  return out


def _side(rng) -> float:
  return 1.0 if rng.uniform() < 0.5 else -1.0


def sample_rig(rng: np.random.Generator, options: LightOptions = LightOptions()) -> dict:
  """Draws a light rig (JSON-able; see the module docstring).

  Returns:
    dict(kind, mixed (bool), ao_strength, shadows (bool), groups [dict(source, weights, t)],
    lights [dict(type, group, intensity, ...)], b (2 floats: the camera's spectral
    sensitivity parameters for `physics.render`, N(0, 1) clipped to [-3, 3] as before, drawn
    here so one dict holds every input of the renderer)). Intensities are relative: the key
    light has intensity 1 (the scene's automatic exposure sets the absolute level).
  """
  kind = KINDS[int(rng.choice(len(KINDS), p=np.asarray(options.kinds, np.float64)))]
  mixed = bool(rng.uniform() < options.mixed_probability)
  sources, lights = [], []

  def group(source):  # Group index of a source: its own group if mixed, else the main one.
    if not sources:
      sources.append(source)
      return 0
    if not mixed:
      return 0
    if source not in sources:
      sources.append(source)
    return sources.index(source)

  s = _side(rng)
  if kind == "studio":
    key = group("studio")
    lights.append(_light("directional", key, 1.0, direction=direction(
        s * rng.uniform(15, 60), rng.uniform(5, 45)), angular_radius=rng.uniform(5, 20)))
    if rng.uniform() < 0.6:
      lights.append(_light("directional", group(str(rng.choice(["studio", "tungsten", "led"]))),
                           rng.uniform(0.1, 0.4), direction=direction(
                               -s * rng.uniform(20, 70), rng.uniform(0, 30)),
                           angular_radius=rng.uniform(10, 30)))
    env = sample_environment(rng, rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.3))
    lights.append(_light("environment", key, 1.0, sh=env))
  elif kind == "sun":
    key = group("sun")
    lights.append(_light("directional", key, 1.0, direction=direction(
        s * rng.uniform(0, 150), rng.uniform(15, 70)), angular_radius=0.27))
    env = sample_environment(rng, rng.uniform(0.15, 0.4), rng.uniform(0.1, 0.5))
    lights.append(_light("environment", group("sky"), 1.0, sh=env))
  elif kind == "overcast":
    env = sample_environment(rng, rng.uniform(0.3, 0.6), rng.uniform(0.4, 1.0))
    lights.append(_light("environment", group("overcast"), 1.0, sh=env))
  elif kind == "side":
    lights.append(_light("directional", group(str(rng.choice(["studio", "window", "sun"]))),
                         1.0, direction=direction(s * rng.uniform(65, 110), rng.uniform(-5, 35)),
                         angular_radius=rng.uniform(1, 10)))
    env = sample_environment(rng, rng.uniform(0.02, 0.12), rng.uniform(0.0, 0.1))
    lights.append(_light("environment", 0, 1.0, sh=env))
  elif kind == "rim":
    key = group("studio")
    lights.append(_light("directional", key, 1.0, direction=direction(
        s * rng.uniform(10, 45), rng.uniform(10, 40)), angular_radius=rng.uniform(5, 20)))
    for _ in range(int(rng.integers(1, 3))):
      lights.append(_light("directional", group(str(rng.choice(["led", "tungsten", "sky",
                                                                "fluorescent"]))),
                           rng.uniform(0.5, 2.0), direction=direction(
                               _side(rng) * rng.uniform(110, 160), rng.uniform(0, 50)),
                           angular_radius=rng.uniform(2, 10)))
    env = sample_environment(rng, rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.15))
    lights.append(_light("environment", key, 1.0, sh=env))
  elif kind == "indoor":
    key = group("window")
    lights.append(_light("directional", key, 1.0, direction=direction(
        s * rng.uniform(30, 90), rng.uniform(0, 30)), angular_radius=rng.uniform(15, 35)))
    distance = rng.uniform(0.8, 2.0)
    lamp = distance * direction(-s * rng.uniform(0, 100), rng.uniform(-10, 60))
    lights.append(_light("point", group(str(rng.choice(["tungsten", "led", "fluorescent"]))),
                         rng.uniform(0.2, 0.8), position=lamp, angular_radius=rng.uniform(2, 8)))
    env = sample_environment(rng, rng.uniform(0.05, 0.25), rng.uniform(0.0, 0.2))
    lights.append(_light("environment", key, 1.0, sh=env))
  else:  # flash
    key = group("flash")
    lights.append(_light("point", key, 1.0, position=rng.uniform(3, 6) * direction(
        s * rng.uniform(0, 8), rng.uniform(0, 10)), angular_radius=1.0))
    env = sample_environment(rng, rng.uniform(0.02, 0.15), rng.uniform(0.0, 0.1))
    lights.append(_light("environment", group(str(rng.choice(["tungsten", "fluorescent",
                                                             "led"]))), 1.0, sh=env))
  groups = [sample_illuminant(rng, src) for src in sources]
  ao_strength = float(rng.uniform(*options.ao_strength))
  b = np.clip(rng.normal(size=2), -3.0, 3.0)  # the camera's spectral sensitivity, as before
  return dict(kind=kind, mixed=mixed and len(groups) > 1, ao_strength=ao_strength,
              shadows=options.shadows, groups=groups, lights=lights, b=b.tolist())


def dominant_direction(rig: dict) -> np.ndarray:
  """(3,) unit direction toward the strongest light of the main group (for catch-lights and
  hair highlights): its brightest directional or point light (a point light's direction from
  the origin), else its environment's first SH band."""
  best, direction_ = -1.0, None
  for light in rig["lights"]:
    if light["group"] != 0:
      continue
    if light["type"] in ("directional", "point") and light["intensity"] > best:
      best = light["intensity"]
      direction_ = np.asarray(light.get("direction", light.get("position")), np.float64)
  if direction_ is None:
    env = [l for l in rig["lights"] if l["type"] == "environment"]
    if not env:
      raise ValueError("the rig has no light in group 0")
    c = np.asarray(env[0]["sh"], np.float64)
    direction_ = np.array([c[3], c[1], c[2]])
  return (direction_ / max(np.linalg.norm(direction_), 1e-12)).astype(np.float32)


def sh_diffuse(normals: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
  """max(0, E(n; L)): the Ramamoorthi-Hanrahan irradiance of (9,) NFE-order coefficients, in
  the dtype of `normals`."""
  x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
  l = np.asarray(coeffs, np.float64)
  k = [normals.dtype.type(v) for v in (
      C4 * l[0] - C5 * l[6], C1 * l[8], C3 * l[6], 2 * C1 * l[4], 2 * C1 * l[7], 2 * C1 * l[5],
      2 * C2 * l[3], 2 * C2 * l[1], 2 * C2 * l[2])]
  e = (k[0] + k[1] * (x * x - y * y) + k[2] * z * z + k[3] * x * y + k[4] * x * z
       + k[5] * y * z + k[6] * x + k[7] * y + k[8] * z)
  return np.maximum(e, 0)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Dot product over the last axis of (..., 3) arrays (no temporary (..., 3) product)."""
  return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def blinn_phong(normals: np.ndarray, light: np.ndarray, shininess) -> np.ndarray:
  """max(0, n.h)^shininess where n.l > 0, view (0, 0, 1); `light` (3,) or (..., 3) unit;
  `shininess` a number or an array broadcasting against the pixels."""
  light = np.asarray(light, normals.dtype)
  h = light + np.array([0.0, 0.0, 1.0], normals.dtype)
  h = h / np.maximum(np.sqrt(_dot(h, h)), 1e-12)[..., None]
  ndh = np.maximum(_dot(normals, h), 0)
  return np.where(_dot(normals, light) > 0, ndh ** np.asarray(shininess, normals.dtype), 0)


def widened(shininess, angular_radius: float):
  """(s', s' / s): a Blinn-Phong exponent (number or array) widened by a light of
  `angular_radius` degrees."""
  a = np.deg2rad(angular_radius)
  s2 = 1.0 / (1.0 / shininess + a * a / 16.0)
  return s2, s2 / shininess


def pixel_positions(depth: np.ndarray) -> np.ndarray:
  """(H, W, 3) camera-frame positions of the pixel centres relative to the image centre at
  depth 0, in units of the image side max(H, W)."""
  h, w = depth.shape
  side = float(max(h, w))
  x = (np.arange(w) + 0.5 - w / 2.0) / side
  y = (h / 2.0 - np.arange(h) - 0.5) / side
  return np.stack(np.broadcast_arrays(x[None, :], y[:, None], depth / side), -1)


def shade(rig: dict, normals: np.ndarray, depth: np.ndarray, mask: np.ndarray,
          shininess: float | np.ndarray = 20.0) -> dict:
  """Per-group diffuse and specular shading of a rig on a rendered surface.

  Args:
    rig: from `sample_rig` (or written by hand with the same keys).
    normals: (H, W, 3) unit camera-space normals.
    depth: (H, W) depth in pixels, larger = closer (occluders for shadows and AO).
    mask: (H, W) bool pixels holding a surface; shading is 0 elsewhere.
    shininess: the surfaces' Blinn-Phong exponent: a number or an (H, W) map (e.g. skin,
      hair and cloth in one call, so shadows and occlusion are computed once).

  Returns:
    dict(groups=[dict(diffuse (H, W), specular (H, W), weights (14,), t (), source)], ao (H, W)
    the ambient-occlusion visibility applied to environment light), float32; group 0 is the
    main group.
  """
  normals = np.asarray(normals, np.float32)
  depth = np.asarray(depth, np.float32)
  mask = np.asarray(mask, bool)
  if normals.shape != depth.shape + (3,) or mask.shape != depth.shape:
    raise ValueError(f"normals {normals.shape}, depth {depth.shape} and mask {mask.shape} must "
                     "be (H, W, 3), (H, W), (H, W)")
  shininess = np.asarray(shininess, np.float32)
  if shininess.ndim == 2:
    if shininess.shape != depth.shape:
      raise ValueError(f"shininess map {shininess.shape} must match depth {depth.shape}")
    shininess = shininess[mask]
  elif shininess.ndim:
    raise ValueError(f"shininess must be a number or an (H, W) map, got {shininess.shape}")
  if not np.all(shininess > 0):
    raise ValueError("shininess must be positive")
  n_groups = len(rig["groups"])
  h, w = depth.shape
  nrm = normals[mask]  # Shading is computed on the surface pixels only: (N, 3).
  diffuse = np.zeros((n_groups, len(nrm)), np.float32)
  specular = np.zeros_like(diffuse)
  ao = np.ones((h, w), np.float32)
  if rig["ao_strength"] > 0 and any(l["type"] == "environment" for l in rig["lights"]):
    ao = 1.0 - np.float32(rig["ao_strength"]) * (1.0 - shadows.ambient_occlusion(
        depth, mask, normals, radius=0.08 * max(h, w)))
  ao_m = ao[mask]
  positions = None
  for light in rig["lights"]:
    g, intensity = light["group"], light["intensity"]
    if not 0 <= g < n_groups:
      raise ValueError(f"light {light} names group {g}; the rig has {n_groups}")
    if light["type"] == "environment":
      coeffs = intensity * np.asarray(light["sh"], np.float64)
      diffuse[g] += sh_diffuse(nrm, coeffs) * ao_m
      first = np.array([coeffs[3], coeffs[1], coeffs[2]])  # (x, y, z) of the first band
      strength = np.linalg.norm(first) / _Y1
      if strength > 0:
        s2, peak = widened(shininess, 60.0)
        specular[g] += np.float32(strength) * peak * blinn_phong(
            nrm, first / np.linalg.norm(first), s2) * ao_m
      continue
    if light["type"] == "directional":
      l = np.asarray(light["direction"], np.float64)
      l = (l / np.linalg.norm(l)).astype(np.float32)
      falloff, shadow_dir = np.float32(1.0), l
    elif light["type"] == "point":
      if positions is None:
        positions = pixel_positions(depth)[mask]
      p = np.asarray(light["position"], np.float32)
      to_light = p - positions
      dist2 = _dot(to_light, to_light)
      l = to_light / np.sqrt(dist2)[..., None]
      falloff, shadow_dir = np.float32(p @ p) / dist2, p
    else:
      raise ValueError(f"unknown light type {light['type']!r} (environment, directional, point)")
    radius = float(light.get("angular_radius", 0.0))
    lit = np.float32(intensity) * falloff
    if rig.get("shadows", True):
      lit = lit * shadows.cast_shadow(depth, mask, shadow_dir, radius)[mask]
    diffuse[g] += lit * np.maximum(_dot(nrm, l), 0.0)
    s2, peak = widened(shininess, radius)
    specular[g] += lit * np.asarray(peak, np.float32) * blinn_phong(nrm, l, s2)

  def image(values):
    out = np.zeros((h, w), np.float32)
    out[mask] = values
    return out
  groups = [dict(diffuse=image(diffuse[g]), specular=image(specular[g]),
                 weights=np.asarray(grp["weights"], np.float32), t=np.float32(grp["t"]),
                 source=grp["source"]) for g, grp in enumerate(rig["groups"])]
  return dict(groups=groups, ao=np.where(mask, ao, 1.0).astype(np.float32))


def total_diffuse(groups: list[dict]) -> np.ndarray:
  """Sum of the groups' diffuse shading: the wavelength-integrated irradiance (every
  illuminant has unit sum), BioFaceNet's shading truth when the rig is single-illuminant."""
  return np.sum([g["diffuse"] for g in groups], axis=0)


def main_share(groups: list[dict]) -> np.ndarray:
  """(H, W) fraction of the diffuse irradiance that comes from the main group (1 where unlit)."""
  total = total_diffuse(groups)
  return np.where(total > 0, groups[0]["diffuse"] / np.maximum(total, 1e-12), 1.0)
