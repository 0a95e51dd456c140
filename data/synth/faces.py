"""Physics-based synthetic faces: exact ground truth rendered through BioFaceNet's own renderer.

A face is a pure function of ``(seed, index)``: all its random draws come from
``np.random.default_rng([seed, index])`` (and its sensor noise from ``[seed, index, 1]``), so a
face does not depend on which other faces are generated with it, on the batch size or on the
number of worker processes.

Per face (NumPy, on the host; `sample_face`):

* geometry: a randomly deformed and posed mean face, z-buffered at ``size`` x ``size``
  (`data.synth.geometry`): camera-space normals (z toward the camera), mask, depth, UV;
* skin: UV-space melanin / haemoglobin / specular-strength maps (`data.synth.appearance`),
  blurred by ``uv_blur`` texels (each 64 x 64 pixel covers ~4 x 4 texels, so point sampling
  unblurred maps would alias freckles) and sampled bilinearly at the pixels' UV;
* light: 9 second-order SH coefficients L (NFE order). The diffuse shading is
  ``i_d = max(0, E(n; L))`` on the mask (E = Ramamoorthi-Hanrahan irradiance), which is exactly
  ``physics.shading_target(normals, lights)`` for the NFE lights array made of three identical
  rows; the specular shading is ``i_s = exposure * scale * strength(uv) * BlinnPhong(n,
  dominant SH direction, view (0, 0, 1))``. An automatic exposure (applied after a first
  render, since the image is linear in i_d and i_s) scales L, i_d and i_s so that the face's
  mean luminance hits a random target, as a camera's metering would;
* illuminant and camera from the model's priors: weights on the [A, D, F1..F12] simplex (a
  dominant kind - daylight most often, else A or one fluorescent - plus a sparse Dirichlet
  mixture), daylight index t ~ U(1, 22), camera b ~ N(0, I) clipped to [-3, 3];
* a background that is not a face: smooth colour gradients and low-frequency noise.

Then, batched on the accelerator (one jitted call per fixed-shape batch; `FaceGenerator`):
``physics.render`` -> linear sRGB, composited over the background, optional Gaussian sensor
noise in linear space, the exact sRGB curve (``physics.srgb_encode``) as a camera stores
images, clipping to [0, 1], 8-bit quantisation and optionally a real JPEG round trip (Pillow).

`spectral_radiance` gives the same face as a 33-band radiance cube for ISET scene files.
Outside the mask, every per-pixel ground-truth map is 0 (use ``mask``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import multiprocessing
from collections.abc import Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from bioface_jax import physics
from bioface_jax.physics.shading import shading_target_numpy
from bioface_jax.physics.spectra import N_ILLUMINANTS
from data.synth import appearance, geometry

# Bump when the generated faces change for the same options, so that caches are regenerated.
GENERATOR_VERSION = 1
_DAYLIGHT, _ILLUM_A = 1, 0  # Positions in the weight vector [A, D, F1..F12].


@dataclasses.dataclass(frozen=True)
class FaceOptions:
  """What the generator draws from (every field has a sensible default).

  Attributes:
    uv_blur: Gaussian blur of the UV maps in texels before point sampling; None = 1.25 at 64 x
      64, scaled as 64 / size.
    shape_amplitude: `geometry.sample_shape` amplitude.
    max_yaw, max_pitch, max_roll: pose ranges in degrees (`geometry.sample_pose`).
    face_luminance: range of the mean linear-sRGB luminance of the face that the automatic
      exposure aims at (drawn log-uniformly), as a camera's metering would.
    specular_scale: range of the per-face specular scale.
    shininess: range of the Blinn-Phong exponent.
    illuminant_kinds: probabilities of the dominant illuminant (daylight, A, fluorescent).
    max_extra_illuminants: up to this many other components mixed in (Dirichlet 0.5 each
      against 4 for the dominant one).
    noise: standard deviation of Gaussian sensor noise in linear sRGB (0 = off).
    quantise: round the stored image to 8 bits.
    jpeg_quality: if set (1-100), also round trip through a real JPEG at this quality.
  """
  uv_blur: float | None = None
  shape_amplitude: float = 0.03
  max_yaw: float = 45.0
  max_pitch: float = 20.0
  max_roll: float = 15.0
  face_luminance: tuple[float, float] = (0.05, 0.25)
  specular_scale: tuple[float, float] = (0.05, 0.5)
  shininess: tuple[float, float] = (10.0, 40.0)
  illuminant_kinds: tuple[float, float, float] = (0.6, 0.2, 0.2)
  max_extra_illuminants: int = 2
  noise: float = 0.0
  quantise: bool = True
  jpeg_quality: int | None = None

  def __post_init__(self):
    for name in ("face_luminance", "specular_scale", "shininess"):
      lo, hi = getattr(self, name)
      log_uniform = name == "face_luminance"
      if not (np.isfinite(lo) and np.isfinite(hi) and (lo > 0 if log_uniform else lo >= 0)
              and lo <= hi):
        raise ValueError(f"FaceOptions.{name} must be a range 0 {'<' if log_uniform else '<='} "
                         f"low <= high, got {(lo, hi)}")
    p = np.asarray(self.illuminant_kinds, np.float64)
    if p.shape != (3,) or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
      raise ValueError("FaceOptions.illuminant_kinds must be 3 probabilities (daylight, A, "
                       f"fluorescent) summing to 1, got {self.illuminant_kinds}")
    if not 0 <= self.max_extra_illuminants <= N_ILLUMINANTS - 1:
      raise ValueError(f"FaceOptions.max_extra_illuminants must be in [0, {N_ILLUMINANTS - 1}], "
                       f"got {self.max_extra_illuminants}")
    if not (np.isfinite(self.noise) and self.noise >= 0):
      raise ValueError(f"FaceOptions.noise must be >= 0, got {self.noise}")
    if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
      raise ValueError(f"FaceOptions.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
    if self.uv_blur is not None and not self.uv_blur >= 0:
      raise ValueError(f"FaceOptions.uv_blur must be >= 0 texels, got {self.uv_blur}")

  def blur_for(self, size: int) -> float:
    return 1.25 * 64.0 / size if self.uv_blur is None else float(self.uv_blur)


def sample_illuminant(rng: np.random.Generator, options: FaceOptions
                      ) -> tuple[np.ndarray, float, np.ndarray]:
  """Illuminant weights (14,) on the simplex, daylight index t and camera b (2,), float32."""
  kind = rng.choice(3, p=np.asarray(options.illuminant_kinds, np.float64))
  main = (_DAYLIGHT, _ILLUM_A, 2 + int(rng.integers(12)))[kind]
  extra = int(rng.integers(0, options.max_extra_illuminants + 1))
  others = rng.choice([j for j in range(N_ILLUMINANTS) if j != main], extra, replace=False)
  support = np.concatenate([[main], others]).astype(np.int64)
  weights = np.zeros(N_ILLUMINANTS)
  weights[support] = rng.dirichlet([4.0] + [0.5] * extra)
  weights /= weights.sum()
  t = rng.uniform(1.0, 22.0)
  b = np.clip(rng.normal(size=2), -3.0, 3.0)
  return weights.astype(np.float32), np.float32(t), b.astype(np.float32)


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
  """(size, size, 3) float32 linear sRGB: a colour gradient with low-frequency noise."""
  g = (np.arange(size) + 0.5) / size * 2.0 - 1.0
  yy, xx = np.meshgrid(g, g, indexing="ij")
  base = rng.uniform(0.02, 0.5) * rng.uniform(0.4, 1.0, 3)
  slope = rng.normal(0.0, 0.05, (2, 3))
  bg = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
  lum = appearance.smooth_noise(rng, cells=int(rng.integers(2, 6)), size=size)
  bg = bg * (1.0 + rng.uniform(0.05, 0.3) * lum[..., None])
  colour = np.stack([appearance.smooth_noise(rng, cells=3, size=size) for _ in range(3)], -1)
  bg = bg + rng.uniform(0.0, 0.03) * colour
  return np.clip(bg, 0.0, 1.0).astype(np.float32)


def sample_skin_and_lighting(rng: np.random.Generator, template, geo: dict[str, np.ndarray],
                             size: int, options: FaceOptions):
  """Pigment maps, SH diffuse shading and a Blinn-Phong specular for one rasterised face.

  Shared by every generator that renders the project's faces (here and `data.prnet.synth`),
  so they draw from `rng` in the same order and agree on the skin model.

  Args:
    rng: the face's generator (advanced by the appearance, lighting and specular draws).
    template: `geometry.load_template()`.
    geo: `geometry.rasterise(...)` output (`mask`, `normals`, `uv`).
    size: image side in pixels (sets the UV-map blur).
    options: the generator options.

  Returns:
    `(fmel, fblood, diffuse, specular, sh, specular_scale, shininess)`; maps are (size, size)
    at unit exposure, zero off the mask.
  """
  mask, normals = geo["mask"], geo["normals"]
  skin = appearance.sample_appearance(rng, template)
  blur = options.blur_for(size)
  maps = {k: ndimage.gaussian_filter(v, blur, mode="nearest") if blur > 0 else v
          for k, v in skin.items()}
  fmel = appearance.sample_uv(maps["fmel_uv"], geo["uv"], mask)
  fblood = appearance.sample_uv(maps["fblood_uv"], geo["uv"], mask)
  strength = appearance.sample_uv(maps["spec_uv"], geo["uv"], mask)
  sh = appearance.sample_sh_lighting(rng)
  diffuse = shading_target_numpy(normals, np.tile(sh, (3, 1))) * mask
  scale = rng.uniform(*options.specular_scale)
  shininess = rng.uniform(*options.shininess)
  lobe = appearance.blinn_phong(normals, appearance.dominant_direction(sh), geometry.VIEW_DIR,
                                shininess)
  specular = scale * strength * lobe * mask
  return fmel, fblood, diffuse, specular, sh, scale, shininess


def sample_face(seed: int, index: int, size: int = 64,
                options: FaceOptions = FaceOptions()) -> dict[str, np.ndarray]:
  """Draws face `index` of `seed`: everything but the rendered image (NumPy, host only).

  Returns:
    dict of float32 arrays (bool mask): per pixel fmel, fblood (network coordinates), diffuse,
    specular, mask (H, W); normals (H, W, 3); coord (H, W, 3) (x / size, y / size,
    0.5 + depth / size on the mask); background, noise (H, W, 3); per face sh (9,), weights
    (14,), t (), b (2,), luminance (the exposure target), specular_scale, shininess (), pose
    (6,) (yaw, pitch, roll, scale, tx, ty), landmarks (68, 2), landmarks_visible (68,); index ().
    Shading and sh are at unit exposure: `FaceGenerator.render` scales them.
  """
  template = geometry.load_template()
  rng = np.random.default_rng([seed, index])
  vertices = geometry.sample_shape(rng, template, options.shape_amplitude)
  pose = geometry.sample_pose(rng, options.max_yaw, options.max_pitch, options.max_roll)
  geo = geometry.rasterise(vertices, template, pose, size)
  mask, normals = geo["mask"], geo["normals"]
  fmel, fblood, diffuse, specular, sh, scale, shininess = sample_skin_and_lighting(
      rng, template, geo, size, options)
  lo, hi = np.log(options.face_luminance)
  luminance = np.exp(rng.uniform(lo, hi))
  weights, t, b = sample_illuminant(rng, options)
  background = sample_background(rng, size)
  noise = np.zeros((size, size, 3), np.float32)
  if options.noise > 0:
    noise = (np.random.default_rng([seed, index, 1]).normal(size=(size, size, 3))
             * options.noise).astype(np.float32)
  centres = (np.arange(size, dtype=np.float32) + 0.5) / size
  coord = np.stack([np.broadcast_to(centres[None, :], (size, size)),
                    np.broadcast_to(centres[:, None], (size, size)),
                    np.clip(0.5 + geo["depth"] / size, 0.0, 1.0)], -1) * mask[..., None]
  f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
  return dict(
      index=np.int64(index), fmel=f32(fmel), fblood=f32(fblood), diffuse=f32(diffuse),
      specular=f32(specular), mask=mask, normals=f32(normals), coord=f32(coord),
      background=background, noise=noise, sh=sh, weights=weights, t=t, b=b,
      luminance=np.float32(luminance), specular_scale=np.float32(scale),
      shininess=np.float32(shininess),
      pose=f32([pose.yaw, pose.pitch, pose.roll, pose.scale, pose.tx, pose.ty]),
      landmarks=f32(geo["landmarks"]), landmarks_visible=geo["landmarks_visible"])


def _sample_task(args: tuple[int, int, int, FaceOptions]) -> dict[str, np.ndarray]:
  return sample_face(*args)


@jax.jit
def _render_batch(spectra, lut, fmel, fblood, diffuse, specular, weights, t, b, mask):
  out = physics.render(spectra, lut, fmel, fblood, diffuse, specular, weights, t, b)
  melanin, haemoglobin = physics.network_to_fractions(fmel, fblood)
  m = mask[..., None]
  return dict(linear_image=jnp.where(m, out["linear_srgb"], 0.0),
              albedo=jnp.where(m, out["albedo_linear_srgb"], 0.0),
              melanin=jnp.where(mask, melanin, 0.0), haemoglobin=jnp.where(mask, haemoglobin, 0.0))


@jax.jit
def _encode(linear, noise):
  return jnp.clip(physics.srgb_encode(linear + noise), 0.0, 1.0)


def exposure_factor(linear: np.ndarray, mask: np.ndarray, luminance: float) -> np.float32:
  """Automatic exposure: the factor that brings the face's mean luminance to `luminance`.

  Args:
    linear: (H, W, 3) linear sRGB face rendered at unit exposure.
    mask: (H, W) bool face mask.
    luminance: target mean luminance (Rec. 709 / sRGB weights) over the mask.
  """
  y = np.asarray(linear, np.float64)[mask] @ np.array([0.2126, 0.7152, 0.0722])
  mean = y.mean() if y.size else 0.0
  return np.float32(luminance / mean if mean > 1e-8 else 1.0)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
  """(H, W, 3) values in [0, 1] -> 8-bit JPEG at `quality` (Pillow) -> float32 in [0, 1]."""
  from PIL import Image  # Imported lazily: only needed for the JPEG option.
  buf = io.BytesIO()
  Image.fromarray(np.round(image * 255.0).astype(np.uint8)).save(buf, "JPEG", quality=int(quality))
  buf.seek(0)
  with Image.open(buf) as img:
    return (np.asarray(img.convert("RGB"), np.float32) / 255.0)


def _stack(faces: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.stack([f[k] for f in faces]) for k in faces[0]}


class FaceGenerator:
  """Generates batches of synthetic faces (see the module docstring) for given indices.

  Args:
    size: image height = width.
    seed: dataset seed.
    options: `FaceOptions`.
    batch_size: faces per render call; the last batch is padded, so XLA compiles once.
    workers: 0 = sample geometry in this process; > 0 = that many spawned worker processes.
  """

  def __init__(self, size: int = 64, seed: int = 0, options: FaceOptions | None = None,
               batch_size: int = 32, workers: int = 0):
    if not (isinstance(size, (int, np.integer)) and size >= 8):
      raise ValueError(f"size must be an int >= 8, got {size!r}")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
      raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not (isinstance(workers, (int, np.integer)) and workers >= 0):
      raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    self.size, self.seed, self.batch_size, self.workers = int(size), int(seed), batch_size, workers
    self.options = FaceOptions() if options is None else options
    self.spectra = physics.load_spectra()
    self.lut = physics.skin_lut(self.spectra)

  def _samples(self, indices: Sequence[int]) -> Iterator[dict[str, np.ndarray]]:
    tasks = ((self.seed, int(i), self.size, self.options) for i in indices)
    if not self.workers:
      yield from map(_sample_task, tasks)
      return
    context = multiprocessing.get_context("spawn")  # Never fork a process that runs JAX.
    with concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
      pending = collections.deque()
      for task in tasks:  # Keep a bounded window of faces in flight, in order.
        pending.append(pool.submit(_sample_task, task))
        if len(pending) >= 2 * self.batch_size + 2 * self.workers:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()

  def render(self, faces: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Renders a stacked batch from `sample_face`, applying the automatic exposure.

    The light is scaled per face by ``exposure = luminance / (mean face luminance at unit
    exposure)``: the returned diffuse, specular and sh are multiplied by it (the image is
    linear in them). Added keys: exposure (B,); image (B, H, W, 3) the stored image in [0, 1];
    linear_image (composited over the background, before noise) and albedo (linear sRGB, 0 off
    the mask) (B, H, W, 3); melanin, haemoglobin (volume fractions, 0 off the mask) (B, H, W).
    """
    n = len(faces["index"])
    pad = self.batch_size - n if n < self.batch_size else 0
    padded = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) if pad else v
              for k, v in faces.items()}
    keys = ("fmel", "fblood", "diffuse", "specular", "weights", "t", "b", "mask")
    out = _render_batch(self.spectra, self.lut, *(padded[k] for k in keys))
    out = {k: np.asarray(v)[:n] for k, v in out.items()}
    mask = faces["mask"]
    k = np.stack([exposure_factor(x, m, y) for x, m, y in
                  zip(out["linear_image"], mask, faces["luminance"])])
    sh = (faces["sh"] * k[:, None]).astype(np.float32)
    diffuse = shading_target_numpy(faces["normals"], np.repeat(sh[:, None], 3, 1)) * mask
    faces = dict(faces, exposure=k, sh=sh, diffuse=diffuse.astype(np.float32),
                 specular=(faces["specular"] * k[:, None, None]).astype(np.float32))
    linear = np.where(mask[..., None], out.pop("linear_image") * k[:, None, None, None],
                      faces["background"]).astype(np.float32)
    image = np.asarray(_encode(np.concatenate([linear, np.repeat(linear[-1:], pad, 0)]),
                               padded["noise"]))[:n]
    if self.options.quantise or self.options.jpeg_quality is not None:
      image = np.round(image * 255.0) / 255.0
    if self.options.jpeg_quality is not None:
      image = np.stack([jpeg_round_trip(x, self.options.jpeg_quality) for x in image])
    return dict(faces, image=image.astype(np.float32), linear_image=linear, **out)

  def batches(self, indices: Iterable[int]) -> Iterator[dict[str, np.ndarray]]:
    """Yields rendered batches (dicts of arrays with a leading batch axis) for `indices`."""
    chunk = []
    for face in self._samples(list(indices)):
      chunk.append(face)
      if len(chunk) == self.batch_size:
        yield self.render(_stack(chunk))
        chunk = []
    if chunk:
      yield self.render(_stack(chunk))


def generate_faces(n: int, size: int = 64, seed: int = 0, *, start: int = 0,
                   options: FaceOptions | None = None, batch_size: int = 32,
                   workers: int = 0) -> dict[str, np.ndarray]:
  """Faces `start .. start + n - 1` of `seed`, all in memory (see `FaceGenerator.render`)."""
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  gen = FaceGenerator(size, seed, options, batch_size, workers)
  parts = list(gen.batches(range(start, start + n)))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@jax.jit
def _illuminant_and_reflectance(spectra, lut, weights, t, fmel, fblood):
  return physics.illuminant(spectra, weights, t), physics.skin_reflectance(lut, fmel, fblood)


def spectral_radiance(spectra: physics.Spectra, lut: jax.Array, face: dict[str, np.ndarray],
                      scale: float = 33.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A face as a 33-band radiance cube: l = e (i_d R(fmel, fblood) + i_s) on the mask.

  R is sampled from the skin table exactly as the renderer does (`physics.skin_reflectance`),
  e is the face's illuminant (unit sum) times `scale` (arbitrary radiometric units; 33 makes
  the mean band 1). Off the mask the scene is a spectrally flat grey: l = e rho with rho the
  mean of the linear sRGB background.

  Args:
    spectra, lut: from `physics.load_spectra` / `physics.skin_lut`.
    face: one face from `sample_face` (or one row of a rendered batch).
    scale: radiometric scale of the illuminant.

  Returns:
    (radiance (H, W, 33), illuminant (33,), background reflectance rho (H, W), 0 on the
    mask), float64.
  """
  e, refl = _illuminant_and_reflectance(spectra, lut, face["weights"], face["t"], face["fmel"],
                                        face["fblood"])
  e = np.asarray(e, np.float64) * scale
  refl = np.asarray(refl, np.float64)
  mask = np.asarray(face["mask"], bool)
  rho = np.where(mask, 0.0, np.asarray(face["background"], np.float64).mean(-1))
  skin = (np.asarray(face["diffuse"], np.float64)[..., None] * refl
          + np.asarray(face["specular"], np.float64)[..., None])
  radiance = e * np.where(mask[..., None], skin, rho[..., None])
  return radiance, e, rho
