"""A camera's processing chain from linear scene colour to a stored 8-bit (JPEG) photograph.

`sample_camera(rng, options)` draws the knobs of one shot as a JSON-able dict (stored with the
sample); `apply_camera(linear_rgb, knobs, rng, out_size)` runs the chain on a linear-sRGB image
rendered at any resolution (the scene renders above the output size, e.g. 2x, and the chain
integrates it down as a sensor does). Order, as in a camera:

1. **Optics** at the render resolution (sizes given in output pixels, scaled by the render /
   output ratio): defocus (a uniform disc of radius ``defocus``), motion blur (a line of
   ``motion_length`` at ``motion_angle`` degrees), combined into one kernel and applied by FFT
   with reflected borders.
2. **Sensor**: area (box) downsampling to ``out_size`` in linear light; vignetting
   ``1 - vignette r^2`` (r = 1 at the corners; smooth, so applied here); exposure error
   ``2^exposure_ev`` and white-balance error (per-channel gains ``wb_gains``, luminance kept;
   the camera misjudging the illuminant), both linear; shot and read noise
   ``x + sqrt(shot * max(x, 0) + read^2) * N(0, 1)`` per channel; clipping at saturation (1).
3. **Rendering** (the camera's picture style): saturation about Rec. 709 luminance in linear
   light (``saturation``, 1 = unchanged); a tone curve ``tone``: ``srgb`` (exact IEC 61966-2-1),
   ``gamma`` (x^(1/gamma)), ``filmic`` (a highlight shoulder: the camera exposes
   ``1 / (1 + 0.82 k)`` lower to keep highlights, k = ``filmic_shoulder``, and Reinhard's curve
   ``(1 + k) x / (1 + k x)`` maps mid grey back to 0.18 and saturation to 1; then sRGB); lifted
   blacks
   ``black`` (y -> black + (1 - black) y); an S-curve ``contrast`` (y + c (3y^2 - 2y^3 - y):
   > 0 more contrast, < 0 flatter); unsharp-mask sharpening ``sharpen`` (amount, sigma 1
   output pixel) on the encoded image.
4. **Storage**: 8-bit rounding, then JPEG (Pillow) at ``jpeg_quality`` with chroma subsampling
   ``jpeg_subsampling`` ("4:2:0" or "4:4:4"), or no JPEG when the quality is None.

`neutral_camera()` is the identity of every stage: with it (and out_size = the input size) the
chain returns ``round(255 clip(srgb_encode(x), 0, 1))``, the generator's exact-sRGB path so far
(`data.synth.faces`). Linear stages (optics, exposure, white balance) act on the image only:
multiply a linear shading truth by ``2^exposure_ev`` to match the stored exposure; the tone and
colour stages make the stored image a non-linear function of scene colour, which BioFaceNet's
model (a fixed 2.2 gamma at its input) does not invert. NumPy, SciPy and Pillow on the host.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from scipy import ndimage, signal

TONES = ("srgb", "gamma", "filmic")
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclasses.dataclass(frozen=True)
class CameraOptions:
  """What `sample_camera` draws from (probabilities p_*, ranges (low, high)).

  Attributes:
    exposure_sd: standard deviation of the exposure error in stops (clipped at 2.5 sd).
    wb_temperature_sd, wb_tint_sd: white-balance error, standard deviations of the log gain
      along blue-amber (R up, B down) and green-magenta (G against R and B).
    tones: probabilities of the tone curves in `TONES` order.
    gamma: range of the plain gamma; filmic_shoulder: range of the filmic shoulder k.
    saturation: range of the saturation (drawn uniformly).
    p_contrast, contrast: chance and range of the S-curve strength.
    p_black, black: chance and range of the black lift.
    p_sharpen, sharpen: chance and range of the unsharp-mask amount.
    p_vignette, vignette: chance and range of the vignetting strength.
    p_defocus, defocus: chance and range of the defocus radius (output pixels).
    p_motion, motion: chance and range of the motion-blur length (output pixels).
    p_noise, shot, read: chance of sensor noise; log-uniform ranges of the shot-noise gain and
      read-noise standard deviation (linear units, 1 = saturation).
    p_jpeg, jpeg_quality, p_420: chance of JPEG, quality range, chance of 4:2:0 subsampling.
  """
  exposure_sd: float = 0.3
  wb_temperature_sd: float = 0.06
  wb_tint_sd: float = 0.025
  tones: tuple[float, float, float] = (0.4, 0.25, 0.35)
  gamma: tuple[float, float] = (1.8, 2.6)
  filmic_shoulder: tuple[float, float] = (0.5, 4.0)
  saturation: tuple[float, float] = (0.75, 1.25)
  p_contrast: float = 0.6
  contrast: tuple[float, float] = (-0.2, 0.5)
  p_black: float = 0.3
  black: tuple[float, float] = (0.0, 0.04)
  p_sharpen: float = 0.5
  sharpen: tuple[float, float] = (0.2, 1.2)
  p_vignette: float = 0.4
  vignette: tuple[float, float] = (0.05, 0.4)
  p_defocus: float = 0.3
  defocus: tuple[float, float] = (0.4, 1.5)
  p_motion: float = 0.15
  motion: tuple[float, float] = (0.5, 3.0)
  p_noise: float = 0.9
  shot: tuple[float, float] = (5e-5, 1e-3)
  read: tuple[float, float] = (3e-4, 4e-3)
  p_jpeg: float = 0.85
  jpeg_quality: tuple[int, int] = (45, 97)
  p_420: float = 0.7

  def __post_init__(self):
    p = np.asarray(self.tones, np.float64)
    if p.shape != (len(TONES),) or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
      raise ValueError(f"CameraOptions.tones must be {len(TONES)} probabilities for {TONES} "
                       f"summing to 1, got {self.tones}")
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name.startswith("p_") and not 0 <= value <= 1:
        raise ValueError(f"CameraOptions.{f.name} must be a probability, got {value}")
      if isinstance(value, tuple) and f.name != "tones" and not value[0] <= value[1]:
        raise ValueError(f"CameraOptions.{f.name} must be a range (low <= high), got {value}")
    if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
      raise ValueError(f"CameraOptions.jpeg_quality must lie in [1, 100], got "
                       f"{self.jpeg_quality}")


def neutral_camera() -> dict:
  """Knobs at which every stage is the identity: exact sRGB, 8 bits, no JPEG."""
  return dict(exposure_ev=0.0, wb_gains=[1.0, 1.0, 1.0], defocus=0.0, motion_length=0.0,
              motion_angle=0.0, vignette=0.0, shot=0.0, read=0.0, saturation=1.0,
              tone="srgb", gamma=2.2, filmic_shoulder=1.0, black=0.0, contrast=0.0, sharpen=0.0,
              jpeg_quality=None, jpeg_subsampling="4:4:4")


def sample_camera(rng: np.random.Generator, options: CameraOptions = CameraOptions()) -> dict:
  """Draws the knobs of one shot (JSON-able; keys as `neutral_camera`)."""
  o = options
  maybe = lambda p, lo_hi: float(rng.uniform(*lo_hi)) if rng.uniform() < p else 0.0  # noqa: E731
  log_uniform = lambda lo_hi: float(np.exp(rng.uniform(*np.log(lo_hi))))  # noqa: E731
  temperature = np.clip(rng.normal(0.0, o.wb_temperature_sd), -2.5 * o.wb_temperature_sd,
                        2.5 * o.wb_temperature_sd)
  tint = np.clip(rng.normal(0.0, o.wb_tint_sd), -2.5 * o.wb_tint_sd, 2.5 * o.wb_tint_sd)
  gains = np.exp(temperature * np.array([1.0, 0.0, -1.0]) + tint * np.array([-0.5, 1.0, -0.5]))
  gains /= gains @ _LUMA  # Keep the luminance of a grey.
  noisy = rng.uniform() < o.p_noise
  jpeg = rng.uniform() < o.p_jpeg
  return dict(
      exposure_ev=float(np.clip(rng.normal(0.0, o.exposure_sd), -2.5 * o.exposure_sd,
                                2.5 * o.exposure_sd)),
      wb_gains=gains.tolist(),
      defocus=maybe(o.p_defocus, o.defocus),
      motion_length=maybe(o.p_motion, o.motion), motion_angle=float(rng.uniform(0, 180)),
      vignette=maybe(o.p_vignette, o.vignette),
      shot=log_uniform(o.shot) if noisy else 0.0, read=log_uniform(o.read) if noisy else 0.0,
      saturation=float(rng.uniform(*o.saturation)),
      tone=TONES[int(rng.choice(len(TONES), p=np.asarray(o.tones, np.float64)))],
      gamma=float(rng.uniform(*o.gamma)),
      filmic_shoulder=float(rng.uniform(*o.filmic_shoulder)),
      black=maybe(o.p_black, o.black), contrast=maybe(o.p_contrast, o.contrast),
      sharpen=maybe(o.p_sharpen, o.sharpen),
      jpeg_quality=int(rng.integers(o.jpeg_quality[0], o.jpeg_quality[1] + 1)) if jpeg else None,
      jpeg_subsampling="4:2:0" if rng.uniform() < o.p_420 else "4:4:4")


def blur_kernel(defocus: float, motion_length: float, motion_angle: float) -> np.ndarray | None:
  """(k, k) unit-sum kernel: a disc of radius `defocus` convolved with a line of
  `motion_length` at `motion_angle` degrees (pixels); None when both are below 0.05 px."""
  kernel = None
  if defocus >= 0.05:
    r = int(np.ceil(defocus)) + 1
    sub = (np.arange(4 * (2 * r + 1)) + 0.5) / 4 - (r + 0.5)  # 4 x 4 samples per pixel
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2 <= defocus**2).astype(np.float64)
    kernel = inside.reshape(2 * r + 1, 4, 2 * r + 1, 4).sum((1, 3))
    if kernel.sum() == 0:
      kernel[r, r] = 1.0
  if motion_length >= 0.05:
    r = int(np.ceil(motion_length / 2)) + 1
    line = np.zeros((2 * r + 1, 2 * r + 1))
    a = np.deg2rad(motion_angle)
    u = np.linspace(-motion_length / 2, motion_length / 2, 32 * int(np.ceil(motion_length)) + 1)
    x, y = r + u * np.cos(a), r - u * np.sin(a)  # (column, row), angle counter-clockwise
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                       (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):  # bilinear splat
      np.add.at(line, (np.minimum(y0 + dy, 2 * r), np.minimum(x0 + dx, 2 * r)), wt)
    kernel = line if kernel is None else signal.convolve2d(kernel, line)
  return None if kernel is None else (kernel / kernel.sum()).astype(np.float32)


def area_downsample(image: np.ndarray, out_size: int | tuple[int, int]) -> np.ndarray:
  """Box (area) average of an (H, W, C) image to `out_size`: exact block means for integer
  factors, Pillow's BOX filter otherwise."""
  h, w = image.shape[:2]
  oh, ow = (out_size, out_size) if np.isscalar(out_size) else out_size
  if (oh, ow) == (h, w):
    return image
  if h % oh == 0 and w % ow == 0:
    fh, fw = h // oh, w // ow
    total = np.zeros((oh, ow) + image.shape[2:], np.float32)
    for i in range(fh):  # strided sums: much faster than a mean over two axes of a 5-D view
      for j in range(fw):
        total += image[i::fh, j::fw]
    return total * np.float32(1.0 / (fh * fw))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F")
                      .resize((ow, oh), Image.Resampling.BOX)) for c in range(image.shape[2])]
  return np.stack(chans, -1).astype(np.float32)


def srgb_encode(x: np.ndarray) -> np.ndarray:
  """Exact sRGB curve (IEC 61966-2-1), NumPy; negative values through the linear toe."""
  return np.where(x <= 0.0031308, 12.92 * x,
                  1.055 * np.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055).astype(x.dtype)


def filmic_headroom(shoulder: float) -> float:
  """Exposure reduction 1 + 0.82 k of the filmic style: the curve (1 + k) x / (1 + k x) maps
  0.18 / (1 + 0.82 k) back to 0.18."""
  return 1.0 + 0.82 * shoulder


def tone_curve(x: np.ndarray, knobs: dict) -> np.ndarray:
  """Linear [0, 1] -> encoded [0, 1] by the knobs' tone curve, black lift and S-curve."""
  tone = knobs["tone"]
  if tone == "srgb":
    y = srgb_encode(x)
  elif tone == "gamma":
    y = np.maximum(x, 0) ** np.float32(1.0 / knobs["gamma"])
  elif tone == "filmic":
    k = np.float32(knobs["filmic_shoulder"])
    y = srgb_encode((1 + k) * np.maximum(x, 0) / (1 + k * np.maximum(x, 0)))
  else:
    raise ValueError(f"unknown tone curve {tone!r}; known: {TONES}")
  if knobs["black"]:
    y = np.float32(knobs["black"]) + np.float32(1 - knobs["black"]) * y
  if knobs["contrast"]:
    yc = np.clip(y, 0, 1)
    y = y + np.float32(knobs["contrast"]) * (yc * yc * (3 - 2 * yc) - yc)
  return y


def jpeg(image: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
  """Round trip of a uint8 (H, W, 3) image through Pillow's JPEG encoder."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  codes = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
  if subsampling not in codes:
    raise ValueError(f"jpeg_subsampling must be one of {sorted(codes)}, got {subsampling!r}")
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "JPEG", quality=int(quality), subsampling=codes[subsampling])
  buf.seek(0)
  with Image.open(buf) as img:
    return np.asarray(img.convert("RGB"))


def apply_camera(linear_rgb: np.ndarray, knobs: dict, rng: np.random.Generator | None,
                 out_size: int | tuple[int, int] | None = None) -> np.ndarray:
  """Runs the chain (module docstring) on one linear-sRGB image.

  Args:
    linear_rgb: (H, W, 3) linear sRGB at the render resolution (>= 0 expected).
    knobs: from `sample_camera` or `neutral_camera`.
    rng: draws the sensor noise (unused when shot = read = 0; may then be None).
    out_size: output side (int) or (height, width); None = the input size. The render size
      should be a multiple of it (else Pillow's box filter is used).

  Returns:
    (out_h, out_w, 3) uint8 stored image.
  """
  x = np.asarray(linear_rgb, np.float32)
  if x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f"linear_rgb must be (H, W, 3), got shape {x.shape}")
  if not np.isfinite(x).all():
    raise ValueError("linear_rgb contains NaN or inf")
  missing = set(neutral_camera()) - set(knobs)
  if missing:
    raise ValueError(f"camera knobs lack {sorted(missing)}")
  h, w = x.shape[:2]
  oh, ow = (h, w) if out_size is None else ((out_size, out_size) if np.isscalar(out_size)
                                            else tuple(out_size))
  if not (0 < oh <= h and 0 < ow <= w):
    raise ValueError(f"out_size {(oh, ow)} must be positive and at most the render size {(h, w)}")
  scale = 0.5 * (h / oh + w / ow)  # render pixels per output pixel
  kernel = blur_kernel(knobs["defocus"] * scale, knobs["motion_length"] * scale,
                       knobs["motion_angle"])
  if kernel is not None:
    r = kernel.shape[0] // 2
    padded = np.pad(x, ((r, r), (r, r), (0, 0)), mode="reflect" if min(h, w) > r else "edge")
    x = signal.fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1)).astype(
        np.float32)
  x = area_downsample(x, (oh, ow))
  if knobs["vignette"]:  # Smooth: applied at the output size (commutes with the box filter).
    yy = (np.arange(oh) + 0.5 - oh / 2) / (oh / 2)
    xx = (np.arange(ow) + 0.5 - ow / 2) / (ow / 2)
    r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 2.0
    x = x * (1.0 - np.float32(knobs["vignette"]) * r2.astype(np.float32))[..., None]
  gain = 2.0 ** knobs["exposure_ev"]
  if knobs["tone"] == "filmic":
    gain /= filmic_headroom(knobs["filmic_shoulder"])
  gains = np.float32(gain) * np.asarray(knobs["wb_gains"], np.float32)
  if not np.all(gains == 1):
    x = x * gains
  if knobs["shot"] or knobs["read"]:
    if rng is None:
      raise ValueError("apply_camera needs an rng for sensor noise (shot or read > 0)")
    sd = np.sqrt(np.float32(knobs["shot"]) * np.maximum(x, 0) + np.float32(knobs["read"]) ** 2)
    x = x + sd * rng.standard_normal(x.shape, np.float32)
    x = np.minimum(x, 1.0)  # Sensor saturation.
  if knobs["saturation"] != 1:
    lum = (x @ _LUMA)[..., None]
    x = np.maximum(lum + np.float32(knobs["saturation"]) * (x - lum), 0)
  y = tone_curve(x, knobs)
  if knobs["sharpen"]:
    y = y + np.float32(knobs["sharpen"]) * (y - ndimage.gaussian_filter(y, (1.0, 1.0, 0.0)))
  out = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)
  if knobs["jpeg_quality"] is not None:
    out = jpeg(out, knobs["jpeg_quality"], knobs["jpeg_subsampling"])
  return out
