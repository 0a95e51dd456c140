"""Skin appearance for synthetic faces: UV-space chromophore and specular maps, and lighting.

The maps live on the 256x256 UV map of the mean face (`data.synth.geometry`), so they move with
the face under any shape and pose; `sample_uv` reads them at the per-pixel UV coordinates that
`geometry.rasterise` returns. Melanin and haemoglobin are in BioFaceNet's network coordinates
f in [-1, 1] (biofacenet-spec.md 1.6: f = -1 ~ 0 %, 0 ~ 5.5 % melanin / 0.9 % blood, +1 = 43 % /
7 %), which is what `bioface_jax.physics.skin_reflectance` takes.

Facial regions are placed with the 68 iBUG landmarks of the UV map (17-21 / 22-26 brows, 36-47
eyes, 48-67 mouth, 27-35 nose, 0-16 jaw) and given smooth falloff, so no map has edges that the
network could latch onto. Region weights depend only on the template and are cached.

Lighting: `sample_sh_lighting` gives second-order SH coefficients in the NFE order (L00, L1-1 [y],
L10 [z], L11 [x], L2-2, L2-1, L20, L21, L22) in the camera frame of `geometry` (x right, y up, z
toward the camera), for `bioface_jax.physics.shading.sh_irradiance`. `blinn_phong` is the
specular lobe; with the orthographic camera the view direction is `geometry.VIEW_DIR`.
"""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import path as mpath
from scipy import ndimage

from data.synth import geometry

UV = geometry.UV_SIZE
# Real SH basis constants: Y00, Y1m, Y2-2/Y2-1/Y21, Y20 (times 3z^2 - 1), Y22 (times x^2 - y^2).
_SH_K = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)


def _polygon(points: np.ndarray) -> np.ndarray:
  """(256, 256) float mask of the UV pixels whose centres lie inside the (column, row) polygon."""
  yy, xx = np.mgrid[0:UV, 0:UV] + 0.5
  inside = mpath.Path(points).contains_points(np.stack([xx.ravel(), yy.ravel()], -1))
  return inside.reshape(UV, UV).astype(np.float64)


def _polyline_distance(points: np.ndarray) -> np.ndarray:
  """(256, 256) distance in UV pixels from each pixel centre to a (column, row) polyline."""
  yy, xx = np.mgrid[0:UV, 0:UV] + 0.5
  q = np.stack([xx, yy], -1)[..., None, :]
  a, b = points[:-1], points[1:]
  ab = b - a
  s = np.clip(((q - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
  return np.linalg.norm(q - (a + s[..., None] * ab), axis=-1).min(-1)


def _blob(centre: np.ndarray, sigma: float | tuple[float, float]) -> np.ndarray:
  """(256, 256) Gaussian of peak 1 at a (column, row) centre; sigma (column, row) in pixels."""
  su, sv = (sigma, sigma) if np.isscalar(sigma) else sigma
  g = (np.arange(UV) + 0.5)
  return np.outer(np.exp(-0.5 * ((g - centre[1]) / sv) ** 2),
                  np.exp(-0.5 * ((g - centre[0]) / su) ** 2))


def _smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur rescaled to peak 1, so a region keeps full weight at its core."""
  out = ndimage.gaussian_filter(mask, sigma, mode="nearest")
  return out / max(out.max(), 1e-12)


@functools.lru_cache(maxsize=4)
def region_weights(template: geometry.FaceTemplate) -> dict[str, np.ndarray]:
  """Smooth (256, 256) weights in [0, 1] of facial regions, built from the UV landmarks.

  Keys: lips, eyes (periocular), brows, cheeks, cheekbones, nose, forehead, chin, face (the
  UV face region, slightly blurred).

  Args:
    template: from `geometry.load_template` (cached per template object).
  """
  k = template.landmarks_uv  # (68, 2) (column, row)
  face = _smooth((template.uv_index >= 0).astype(np.float64), 2.0)
  eye_l, eye_r = k[36:42], k[42:48]
  eye_w = np.linalg.norm(eye_l[3] - eye_l[0])  # Eye width, the unit of the regions below.
  eyes = _smooth(_polygon(eye_l) + _polygon(eye_r), 0.35 * eye_w)
  brow_d = np.minimum(_polyline_distance(k[17:22]), _polyline_distance(k[22:27]))
  brows = _smooth((brow_d < 0.16 * eye_w).astype(np.float64), 0.06 * eye_w)
  lips = _smooth(_polygon(k[48:60]), 0.05 * eye_w)
  # Nose: inner eye corners down to the nostrils, plus the tip.
  nose = np.maximum(_smooth(_polygon(k[[39, 31, 32, 33, 34, 35, 42]]), 0.2 * eye_w),
                    _blob(k[30], 0.35 * eye_w))
  mouth_c = k[[48, 54]]
  cheeks = sum(_blob(0.4 * k[j] + 0.3 * k[e] + 0.3 * mouth_c[i], 0.6 * eye_w)
               for i, (j, e) in enumerate([(2, 40), (14, 47)]))
  cheekbones = sum(_blob(0.45 * k[j] + 0.55 * k[e], (0.6 * eye_w, 0.35 * eye_w))
                   for j, e in [(1, 41), (15, 46)])
  brow_top = k[17:27, 1].min()
  rows = np.arange(UV)[:, None] + 0.5
  forehead = 1.0 / (1.0 + np.exp((rows - (brow_top - 0.5 * eye_w)) / (0.12 * eye_w)))
  forehead = forehead * np.ones((1, UV)) * face
  chin = _blob(0.5 * (k[8] + k[57]), (0.6 * eye_w, 0.35 * eye_w))
  out = dict(lips=lips, eyes=eyes, brows=brows, cheeks=np.minimum(cheeks, 1.0),
             cheekbones=np.minimum(cheekbones, 1.0), nose=nose, forehead=forehead, chin=chin,
             face=face)
  for v in out.values():
    v.setflags(write=False)
  return out


@functools.lru_cache(maxsize=16)
def _bump_basis(cells: int, size: int) -> np.ndarray:
  """(size, cells) Gaussian bumps of `smooth_noise`, one per cell (computed once)."""
  g = (np.arange(size) + 0.5) / size
  c = (np.arange(cells) + 0.5) / cells
  basis = np.exp(-0.5 * ((g[:, None] - c[None]) * cells) ** 2)
  basis.setflags(write=False)
  return basis


def smooth_noise(rng: np.random.Generator, cells: int = 6, size: int = UV) -> np.ndarray:
  """Low-frequency noise of unit standard deviation: a random (cells x cells) grid of Gaussian
  bumps, width one cell, summed on a (size, size) map."""
  basis = _bump_basis(cells, size)  # (size, cells)
  noise = basis @ rng.normal(size=(cells, cells)) @ basis.T
  return (noise - noise.mean()) / max(noise.std(), 1e-12)


def _freckles(rng: np.random.Generator, where: np.ndarray, count: int) -> np.ndarray:
  """Impulses placed with probability proportional to `where`, blurred to 1-2 px spots."""
  p = where.ravel() / where.sum()
  idx = rng.choice(p.size, size=count, p=p)
  img = np.zeros(UV * UV)
  np.add.at(img, idx, rng.uniform(0.5, 1.0, count))
  sigma = rng.uniform(0.8, 1.6)
  # Unit peak for an isolated spot of weight 1 (the filter spreads it over 2 pi sigma^2).
  return ndimage.gaussian_filter(img.reshape(UV, UV), sigma) * (2 * np.pi * sigma**2)


def sample_appearance(rng: np.random.Generator, template: geometry.FaceTemplate,
                      brow_pigment: bool = True,
                      melanin_range: tuple[float, float] = (-0.6, 0.7),
                      haemoglobin_range: tuple[float, float] = (-0.3, 0.2)
                      ) -> dict[str, np.ndarray]:
  """Draws one face's skin: melanin, haemoglobin and specular maps in UV space.

  Per face: a skin tone (melanin) uniform across light to dark, a base blood level, smooth
  low-frequency variation, optional freckles (30 % of faces), darker brows and eye region,
  redder lips, cheeks and nose, and a specular map strongest on forehead, nose and cheekbones.

  Args:
    rng: NumPy random generator.
    template: from `geometry.load_template`.
    brow_pigment: darken the brows with melanin (the skin-only faces of `data.synth.faces`);
      False when brow hair is drawn over the skin (`data.synth.face_parts`): the same random
      draws, a fifth of the brow melanin.
    melanin_range, haemoglobin_range: ranges of the face's base melanin and haemoglobin
      coordinates (uniform).

  Returns:
    dict of (256, 256) float32 maps: fmel_uv and fblood_uv in [-0.99, 0.99] (network
    coordinates), spec_uv in [0, 1].
  """
  r = region_weights(template)
  mel = (rng.uniform(*melanin_range) + rng.uniform(0.02, 0.08) * smooth_noise(rng)
         + rng.uniform(0.01, 0.03) * smooth_noise(rng, cells=20)
         + rng.uniform(0.25, 0.5) * (1.0 if brow_pigment else 0.2) * r["brows"]
         + rng.uniform(0.05, 0.2) * r["eyes"]
         - rng.uniform(0.0, 0.15) * r["lips"])
  if rng.uniform() < 0.3:
    where = 0.2 + r["cheeks"] + r["nose"] + r["cheekbones"] + 0.5 * r["forehead"]
    where = where * r["face"] * (1.0 - r["eyes"]) * (1.0 - r["lips"])
    mel = mel + rng.uniform(0.1, 0.35) * _freckles(rng, where, int(rng.integers(40, 250)))
  blood = (rng.uniform(*haemoglobin_range) + rng.uniform(0.03, 0.08) * smooth_noise(rng)
           + rng.uniform(0.35, 0.6) * r["lips"] + rng.uniform(0.15, 0.3) * r["cheeks"]
           + rng.uniform(0.05, 0.2) * r["nose"] + rng.uniform(0.0, 0.1) * r["chin"]
           + rng.uniform(0.0, 0.1) * r["eyes"])
  oil = (r["forehead"] + r["nose"] + 0.8 * r["cheekbones"] + 0.3 * r["chin"]
         + 0.4 * r["lips"])
  spec = (rng.uniform(0.1, 0.3) + rng.uniform(0.3, 0.6) * np.minimum(oil, 1.0)
          + 0.05 * smooth_noise(rng, cells=12)) * (1.0 - 0.7 * r["brows"])
  return dict(fmel_uv=np.clip(mel, -0.99, 0.99).astype(np.float32),
              fblood_uv=np.clip(blood, -0.99, 0.99).astype(np.float32),
              spec_uv=np.clip(spec, 0.0, 1.0).astype(np.float32))


def sample_uv(map_uv: np.ndarray, uv: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """Bilinear lookup of a UV-space map at per-pixel UV coordinates (edge-clamped).

  Args:
    map_uv: (S, S) or (S, S, C) map; pixel (row, column) has centre ((column + 0.5) / S,
      (row + 0.5) / S) in (u, v), the convention of `geometry.rasterise`.
    uv: (..., 2) (u, v) coordinates in [0, 1].
    mask: optional (...) bool; pixels outside it are set to 0.

  Returns:
    (...) or (..., C) float32 samples.
  """
  map_uv = np.asarray(map_uv)
  uv = np.asarray(uv, np.float64)
  if map_uv.ndim not in (2, 3) or map_uv.shape[0] != map_uv.shape[1]:
    raise ValueError(f"map_uv must be (S, S) or (S, S, C), got shape {map_uv.shape}")
  if uv.shape[-1:] != (2,):
    raise ValueError(f"uv must have a trailing axis of 2 (u, v), got shape {uv.shape}")
  s = map_uv.shape[0]
  x = np.clip(uv[..., 0] * s - 0.5, 0.0, s - 1.0)
  y = np.clip(uv[..., 1] * s - 0.5, 0.0, s - 1.0)
  x0 = np.minimum(np.floor(x).astype(np.int64), s - 2)
  y0 = np.minimum(np.floor(y).astype(np.int64), s - 2)
  ax, ay = x - x0, y - y0
  if map_uv.ndim == 3:
    ax, ay = ax[..., None], ay[..., None]
  out = ((1 - ay) * ((1 - ax) * map_uv[y0, x0] + ax * map_uv[y0, x0 + 1])
         + ay * ((1 - ax) * map_uv[y0 + 1, x0] + ax * map_uv[y0 + 1, x0 + 1]))
  if mask is not None:
    m = np.asarray(mask, bool)
    out = out * (m[..., None] if map_uv.ndim == 3 else m)
  return out.astype(np.float32)


def blinn_phong(normals: np.ndarray, light_dir: np.ndarray,
                view_dir: np.ndarray = geometry.VIEW_DIR, shininess: float = 20.0) -> np.ndarray:
  """Blinn-Phong specular lobe max(0, n.h)^shininess, zero where the light is behind the surface.

  Args:
    normals: (..., 3) unit normals (zero vectors, e.g. background, give 0).
    light_dir: (3,) or (..., 3) direction toward the light (normalised here).
    view_dir: (3,) or (..., 3) direction toward the camera (normalised here).
    shininess: Phong exponent (> 0).

  Returns:
    (...) float32 lobe in [0, 1].
  """
  if not shininess > 0:
    raise ValueError(f"shininess must be positive, got {shininess}")
  n = np.asarray(normals, np.float64)
  l = np.asarray(light_dir, np.float64)
  v = np.asarray(view_dir, np.float64)
  l = l / np.linalg.norm(l, axis=-1, keepdims=True)
  v = v / np.linalg.norm(v, axis=-1, keepdims=True)
  h = l + v
  h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
  ndh = np.maximum((n * h).sum(-1), 0.0)
  lit = (n * l).sum(-1) > 0
  return np.where(lit, ndh ** shininess, 0.0).astype(np.float32)


def sh_basis(d: np.ndarray) -> np.ndarray:
  """(..., 9) real SH basis values at unit directions (..., 3), NFE coefficient order."""
  x, y, z = d[..., 0], d[..., 1], d[..., 2]
  k0, k1, k2, k3, k4 = _SH_K
  return np.stack([k0 * np.ones_like(x), k1 * y, k1 * z, k1 * x, k2 * x * y, k2 * y * z,
                   k3 * (3 * z * z - 1), k2 * x * z, k4 * (x * x - y * y)], -1)


def sample_sh_lighting(rng: np.random.Generator) -> np.ndarray:
  """Draws plausible frontal-ish second-order SH lighting (one channel).

  An ambient term (irradiance 0.15-0.5) plus a dominant distant light (irradiance 0.6-1.0 at
  normal incidence) within about 60 degrees of the camera axis, biased upward, and half the
  time a weaker fill light from the other side. A distant light of intensity I from direction
  d has coefficients I * Y_lm(d), whose Ramamoorthi-Hanrahan irradiance approximates
  I * max(0, n.d); a uniform irradiance E adds E / (pi Y00) to L00.

  Args:
    rng: NumPy random generator.

  Returns:
    (9,) float32 coefficients in NFE order (camera frame of `geometry`); `dominant_direction`
    recovers the main light direction for `blinn_phong`.
  """
  theta = np.deg2rad(rng.uniform(0.0, 60.0))
  phi = rng.uniform(0.0, 2 * np.pi)
  d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi) + 0.25, np.cos(theta)])
  coeffs = rng.uniform(0.6, 1.0) * sh_basis(d / np.linalg.norm(d))
  coeffs[0] += rng.uniform(0.15, 0.5) / (np.pi * _SH_K[0])
  if rng.uniform() < 0.5:
    fill = np.array([-d[0], d[1], d[2]]) + rng.normal(0.0, 0.2, 3)
    fill[2] = abs(fill[2])
    coeffs += rng.uniform(0.1, 0.3) * sh_basis(fill / np.linalg.norm(fill))
  return coeffs.astype(np.float32)


def dominant_direction(coeffs: np.ndarray) -> np.ndarray:
  """(..., 3) unit direction of the first-order SH band (L11, L1-1, L10) = (x, y, z) of
  (..., 9) NFE-order coefficients: the direction of strongest irradiance gradient."""
  c = np.asarray(coeffs, np.float64)
  d = np.stack([c[..., 3], c[..., 1], c[..., 2]], -1)
  return (d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
