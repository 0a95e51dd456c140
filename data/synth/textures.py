"""Procedural textures evaluated at arbitrary coordinates (vectorised NumPy), and colour palettes.

Textures are functions of continuous surface coordinates (UV of the face, angles on the head,
image coordinates of a cloth), not images, so they are sharp at any render size. Every random
choice comes from the caller's generator. Colours are linear-sRGB albedos relative to a white
reflector (a surface of albedo 1 reflects like the renderer's spectrally flat white).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

# Hair albedos (linear sRGB): black, dark brown, brown, light brown, dark blonde, blonde,
# auburn, red, grey, white. Weights: how often each is drawn.
HAIR_COLOURS = np.array([
    [0.012, 0.010, 0.009], [0.030, 0.020, 0.014], [0.060, 0.038, 0.024], [0.12, 0.080, 0.050],
    [0.22, 0.16, 0.09], [0.42, 0.33, 0.19], [0.10, 0.040, 0.020], [0.26, 0.09, 0.035],
    [0.20, 0.19, 0.18], [0.50, 0.48, 0.45]], np.float32)
HAIR_WEIGHTS = np.array([0.22, 0.22, 0.16, 0.10, 0.07, 0.07, 0.05, 0.03, 0.05, 0.03])
IRIS_COLOURS = np.array([
    [0.030, 0.015, 0.008], [0.06, 0.030, 0.012], [0.10, 0.07, 0.03], [0.07, 0.09, 0.05],
    [0.08, 0.12, 0.18], [0.12, 0.14, 0.16]], np.float32)
IRIS_WEIGHTS = np.array([0.35, 0.25, 0.12, 0.08, 0.14, 0.06])


def lattice(rng: np.random.Generator, cells: int) -> np.ndarray:
  """A (cells, cells) table of N(0, 1) values for `value_noise` (periodic)."""
  return rng.standard_normal((cells, cells)).astype(np.float32)


def value_noise(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Smooth periodic noise: the table bilinearly interpolated at (x, y) in table cells (wraps;
  `scipy.ndimage.map_coordinates(order=1, mode="grid-wrap")`, in plain NumPy for speed)."""
  h, w = table.shape
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.float32)
  x0, y0 = np.floor(x), np.floor(y)
  fx, fy = x - x0, y - y0
  if h & (h - 1) or w & (w - 1):  # Any size: wrap by modulo.
    c0 = x0.astype(np.int64) % w
    r0 = y0.astype(np.int64) % h
    c1, r1 = (c0 + 1) % w, (r0 + 1) % h
  else:  # Powers of two (every table here): the same indices by a cheaper bit mask.
    c0 = x0.astype(np.int64) & (w - 1)
    r0 = y0.astype(np.int64) & (h - 1)
    c1, r1 = (c0 + 1) & (w - 1), (r0 + 1) & (h - 1)
  flat = table.ravel()  # One-dimensional gathers (row * w + column): the same texels.
  r0, r1 = r0 * w, r1 * w
  top = flat[r0 + c0] * (1.0 - fx) + flat[r0 + c1] * fx
  bottom = flat[r1 + c0] * (1.0 - fx) + flat[r1 + c1] * fx
  return (top * (1.0 - fy) + bottom * fy).astype(np.float32)


_BANK = 256            # Side of each fixed noise texture, in texels.
_TEXELS_PER_UNIT = 16  # The coarsest octave has features of about one unit.


@functools.lru_cache(maxsize=8)
def _bank(octaves: int, gain: float) -> np.ndarray:
  """A fixed periodic fractal-noise texture (unit std), the same in every process."""
  rng = np.random.default_rng(1_000_003 + 17 * octaves)
  out = np.zeros((_BANK, _BANK), np.float32)
  for o in range(octaves):
    cells = _BANK // _TEXELS_PER_UNIT * 2 ** o
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    out += gain ** o * ndimage.zoom(grid, _BANK / cells, order=3, mode="grid-wrap",
                                    grid_mode=True)
  out -= out.mean()
  out /= out.std()
  out.setflags(write=False)
  return out


def fbm(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, octaves: int = 4,
        gain: float = 0.5) -> np.ndarray:
  """Fractal noise of unit standard deviation at (x, y), in units of its coarsest features.

  One bilinear lookup in a fixed periodic texture (`_bank`) at a random offset and rotation
  drawn from `rng` (so a scene's noise is a function of its generator, and cheap).
  """
  ox, oy = rng.uniform(0.0, _BANK, 2)
  angle = rng.uniform(0.0, 2.0 * np.pi)
  c, s_ = np.cos(angle), np.sin(angle)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.float32)
  u = (c * x - s_ * y) * _TEXELS_PER_UNIT + ox
  v = (s_ * x + c * y) * _TEXELS_PER_UNIT + oy
  return value_noise(_bank(int(octaves), float(gain)), u, v)


def strands(rng: np.random.Generator, across: np.ndarray, along: np.ndarray,
            width: float, wobble: float = 0.5) -> np.ndarray:
  """Hair-strand texture in [0, 1]: thin stripes across `across` (units of `width`) that
  wander slowly along `along`, with random per-strand brightness."""
  table = lattice(rng, 64)
  phase = across / width + wobble * value_noise(table, across / (8 * width), along / 20.0)
  strand = np.floor(phase)
  frac = phase - strand
  brightness = 0.5 + 0.5 * np.sin(strand * 12.9898 + 78.233 * np.sin(strand * 4.1414))
  profile = np.sin(np.pi * frac) ** 2
  return np.clip(0.35 + 0.45 * profile * (0.5 + brightness), 0.0, 1.0).astype(np.float32)


def pick(rng: np.random.Generator, colours: np.ndarray, weights: np.ndarray,
         jitter: float = 0.15) -> np.ndarray:
  """A palette colour drawn with `weights`, scaled by exp(N(0, jitter)) per channel."""
  c = colours[rng.choice(len(colours), p=weights / weights.sum())]
  return (c * np.exp(rng.normal(0.0, jitter, 3))).astype(np.float32)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
  """Hermite step from 0 at e0 to 1 at e1."""
  t = np.clip((np.asarray(x, np.float32) - e0) / (e1 - e0), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)
