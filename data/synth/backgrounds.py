"""Procedural photographic backgrounds: rooms, shelves, streets, foliage, studio backdrops.

`sample_background(rng, size, options)` draws one background as linear sRGB radiance and a
depth map, entirely procedurally (no photographs as textures), vectorised NumPy + Pillow:

* ``wall``: painted wall with light fall-off from a lamp or window, plaster texture, a floor
  band, and some of: a door, a window onto sky and foliage, picture frames (with painted
  content), a light switch, a lamp glow, out-of-focus highlights;
* ``shelves``: a bookcase: boards, rows of books of random widths, heights and colours, and
  objects (boxes, plants as leaf blobs);
* ``nature``: sky with clouds, tree and shrub foliage in several depth layers, ground;
* ``city``: sky, building facades with window grids, bricks or panels, a street level;
* ``studio``: a seamless paper backdrop with a radial light spot and vignette;
* ``night``: a dark scene with many bright out-of-focus lights (bokeh).

Scenes are drawn on a canvas 20 % larger than the output and most are seen through a random
mild perspective (Pillow's PERSPECTIVE transform), so lines converge as in photographs. Depth is in
pixels with the conventions of `data.synth.geometry` (larger = closer; the face sits around
0): every background element lies behind the subject, at -size * distance with distance
(in image sides) from ~0.8 (a wall just behind the head) to 40 (sky: 1e4). Depth of field:
each pixel is blurred with a Gaussian whose width grows with its distance behind the focused
subject, ``sigma = aperture * size * (1 - focus / (focus + distance))`` (a thin lens' circle of
confusion, focus = camera-subject distance in image sides), by blending the two nearest levels
of a blur pyramid (level k ~ a 2^k-pixel blur).
Radiance: linear sRGB, mean luminance ~0.02-0.5 in the units of an exposed face (the scene's
automatic exposure targets face luminances of 0.05-0.25); skies and lights may exceed 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from scipy import ndimage

KINDS = ("wall", "shelves", "nature", "city", "studio", "night")
SKY_DEPTH = 1e4  # image sides
PAINTS = np.array([[0.80, 0.78, 0.72], [0.85, 0.85, 0.85], [0.70, 0.66, 0.58],
                   [0.55, 0.60, 0.62], [0.62, 0.55, 0.48], [0.40, 0.45, 0.50],
                   [0.75, 0.70, 0.55], [0.50, 0.58, 0.50], [0.78, 0.62, 0.55],
                   [0.30, 0.30, 0.32], [0.60, 0.65, 0.75]])
WOODS = np.array([[0.45, 0.30, 0.18], [0.30, 0.20, 0.12], [0.60, 0.45, 0.30],
                  [0.20, 0.14, 0.10], [0.70, 0.62, 0.50]])


@dataclasses.dataclass(frozen=True)
class BackgroundOptions:
  """What `sample_background` draws from.

  Attributes:
    kinds: probabilities of `KINDS`.
    aperture: range of the depth-of-field strength (blur sigma of infinitely far things, as a
      fraction of the image side); p_sharp: chance of no depth-of-field blur.
    p_perspective, perspective: chance of a perspective warp and the largest displacement of
      its corners (fraction of the side).
  """
  kinds: tuple[float, ...] = (0.3, 0.15, 0.17, 0.15, 0.15, 0.08)
  aperture: tuple[float, float] = (0.003, 0.03)
  p_sharp: float = 0.2
  p_perspective: float = 0.6
  perspective: float = 0.08

  def __post_init__(self):
    p = np.asarray(self.kinds, np.float64)
    if p.shape != (len(KINDS),) or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
      raise ValueError(f"BackgroundOptions.kinds must be {len(KINDS)} probabilities for "
                       f"{KINDS} summing to 1, got {self.kinds}")


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of a float (h, w) map with Pillow."""
  return np.asarray(Image.fromarray(np.asarray(a, np.float32), "F").resize(
      (shape[1], shape[0]), Image.Resampling.BILINEAR))


def noise(rng: np.random.Generator, shape: tuple[int, int], cells: float,
          octaves: int = 4, persistence: float = 0.5) -> np.ndarray:
  """Fractal value noise of zero mean and unit standard deviation: `octaves` random grids
  of cells, 2 cells, ... across the larger side, bilinearly upsampled and summed. The sum is
  formed at 8 pixels per finest cell (at most the output size) and upsampled once."""
  h, w = shape
  side = max(h, w)
  inner = min(side, int(8 * cells * 2 ** (octaves - 1)))
  ih, iw = max(2, round(h * inner / side)), max(2, round(w * inner / side))
  out = np.zeros((ih, iw), np.float32)
  for o in range(octaves):
    c = cells * 2**o
    grid = rng.standard_normal((int(np.ceil(c * h / side)) + 2,
                                int(np.ceil(c * w / side)) + 2)).astype(np.float32)
    out += persistence**o * _resize(grid, (ih, iw))
  if (ih, iw) != (h, w):
    out = _resize(out, shape)
  return (out - out.mean()) / max(float(out.std()), 1e-6)


def _jitter(rng, colour, amount=0.08):
  """A colour varied by a log-normal factor per channel, float32."""
  return np.clip(np.asarray(colour) * np.exp(rng.normal(0, amount, 3)), 0, 1).astype(np.float32)


class _Canvas:
  """A linear-RGB image with depth, painted back to front; rectangles are painted through
  slices (cost proportional to their area), textures come from shared noise fields."""

  def __init__(self, rng: np.random.Generator, size: int):
    self.size = size
    self.rgb = np.zeros((size, size, 3), np.float32)
    self.depth = np.full((size, size), -SKY_DEPTH * size, np.float32)
    g = ((np.arange(size) + 0.5) / size).astype(np.float32)
    self.y, self.x = g[:, None], g[None, :]
    self._rng, self._fields = rng, {}

  def _field(self, name: str, cells: float, octaves: int) -> np.ndarray:
    if name not in self._fields:  # drawn on first use, so unused fields cost nothing
      self._fields[name] = noise(self._rng, (self.size, self.size), cells, octaves)
    return self._fields[name]

  coarse = property(lambda self: self._field("coarse", 3, 3))  # large-scale variation
  medium = property(lambda self: self._field("medium", 12, 3))  # leaves, paintings
  fine = property(lambda self: self._field("fine", 48, 2))  # plaster, grain

  def fill(self, colour, distance) -> None:
    self.rgb[:] = colour
    self.depth[:] = -np.asarray(distance, np.float32) * self.size

  def slices(self, top, left, height, width):
    """Row and column slices of a rectangle in image-side units, None if empty."""
    r0, r1 = (int(np.clip(round(v * self.size), 0, self.size)) for v in (top, top + height))
    c0, c1 = (int(np.clip(round(v * self.size), 0, self.size)) for v in (left, left + width))
    return (slice(r0, r1), slice(c0, c1)) if r1 > r0 and c1 > c0 else None

  def rect(self, top, left, height, width, colour, distance, mask=None) -> None:
    """Paints a rectangle; colour (3,) or f(y (h, 1), x (1, w), (rows, cols)) -> (h, w, 3);
    mask None or f(y, x) -> (h, w) bool."""
    box = self.slices(top, left, height, width)
    if box is None:
      return
    rows, cols = box
    y, x = self.y[rows], self.x[:, cols]
    value = colour(y, x, box) if callable(colour) else np.asarray(colour, np.float32)
    m = np.ones((rows.stop - rows.start, cols.stop - cols.start), bool) if mask is None \
        else mask(y, x)
    self.rgb[rows, cols][m] = np.broadcast_to(value, m.shape + (3,))[m]
    self.depth[rows, cols][m] = -np.float32(distance) * self.size


def _sky(rng, c: _Canvas, horizon: float) -> None:
  zenith = _jitter(rng, [0.25, 0.45, 0.95], 0.15) * rng.uniform(0.6, 1.6)
  haze = _jitter(rng, [0.85, 0.9, 1.0], 0.05) * rng.uniform(0.8, 1.8)
  t = np.clip((horizon - c.y) / max(horizon, 1e-3), 0, 1)[..., None]
  sky = haze * (1 - t) ** 2 + zenith * (1 - (1 - t) ** 2)
  cover = np.tanh(np.clip(0.7 * c.coarse + 0.5 * c.medium - rng.uniform(-0.5, 1.2), 0, None))
  c.fill(sky * (1 - cover[..., None]) + cover[..., None] * haze * rng.uniform(0.9, 1.3),
         SKY_DEPTH)


def _foliage(rng, c: _Canvas, top: float, distance: float, density: float) -> None:
  shift = int(rng.integers(c.size))
  leaves = np.roll(c.medium, shift, axis=1) + 0.5 * np.roll(c.fine, shift, axis=0)
  mask = (leaves > 1.2 - 2.4 * density) & (c.y > top + 0.1 * np.roll(c.coarse, shift, 1))
  green = _jitter(rng, [0.10, 0.22, 0.05], 0.25) * rng.uniform(0.4, 1.5)
  shade = (1 + 0.3 * np.roll(c.fine, shift, axis=1))[..., None]
  c.rgb[mask] = (green * shade)[mask]
  c.depth[mask] = -distance * c.size


def _plain(colour, field, amount):
  """A colour function: `colour` modulated by `amount` times a noise field."""
  colour = np.asarray(colour, np.float32)
  return lambda y, x, box: colour * (1 + amount * field[box])[..., None]


def _wall(rng, c: _Canvas) -> None:
  paint = _jitter(rng, PAINTS[rng.integers(len(PAINTS))])
  distance = rng.uniform(0.8, 6.0)
  light = np.array([rng.uniform(-0.3, 1.3), rng.uniform(-0.3, 0.6)])
  fall = 1.0 / (1.0 + rng.uniform(1, 6) * ((c.x - light[0]) ** 2 + (c.y - light[1]) ** 2))
  level = rng.uniform(0.05, 0.5)
  texture = 1 + rng.uniform(0.01, 0.04) * c.fine + rng.uniform(0.02, 0.1) * c.coarse
  c.fill(paint * (level * (0.4 + fall) * texture)[..., None], distance)
  floor = rng.uniform(0.75, 1.1)
  wood = WOODS[rng.integers(len(WOODS))] * level
  c.rect(floor, 0, 1, 1, _plain(wood, c.fine, 0.1), distance)
  for _ in range(int(rng.integers(0, 4))):
    item = rng.choice(["door", "window", "frame", "frame", "switch"])
    left = rng.uniform(-0.1, 0.9)
    if item == "door":
      w, top = rng.uniform(0.25, 0.45), rng.uniform(0.0, 0.3)
      c.rect(top - 0.03, left - 0.03, 2, w + 0.06, _jitter(rng, paint) * level * 1.1,
             distance - 0.005)
      colour = (WOODS[rng.integers(len(WOODS))] if rng.uniform() < 0.5 else _jitter(rng, paint)
                ) * level
      c.rect(top, left, 2, w, _plain(colour, c.fine, 0.08), distance - 0.01)
      c.rect(top + 0.06, left + 0.05, 0.3, w - 0.1, _plain(colour * 0.88, c.fine, 0.08),
             distance - 0.01)
      c.rect(top + 0.4, left + w * 0.8, 0.02, 0.03, [0.6 * level] * 3, distance - 0.02)
    elif item == "window":
      top, w, h = rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.5), rng.uniform(0.25, 0.6)
      c.rect(top - 0.015, left - 0.015, h + 0.03, w + 0.03,
             _jitter(rng, [0.8, 0.8, 0.78]) * level * 1.3, distance - 0.01)
      view = _Canvas(rng, c.size)
      _sky(rng, view, rng.uniform(0.3, 1.0))
      _foliage(rng, view, rng.uniform(0.2, 0.8), 30.0, rng.uniform(0.3, 0.7))
      gain = rng.uniform(0.8, 2.5)
      bars = lambda y, x: ~((np.abs(x - left - w / 2) < 0.008)  # noqa: E731
                            | (np.abs(y - top - h / 2) < 0.008))
      c.rect(top, left, h, w, lambda y, x, box: view.rgb[box] * gain, 20.0, mask=bars)
    elif item == "frame":
      top, w, h = rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.35)
      c.rect(top, left, h, w, WOODS[rng.integers(len(WOODS))] * level, distance - 0.01)
      palette = rng.uniform(0.05, 0.9, (2, 3)).astype(np.float32) * level
      shift = int(rng.integers(c.size))
      art = np.roll(c.medium, shift, 0) + 0.5 * np.roll(c.coarse, shift, 1)
      c.rect(top + 0.015, left + 0.015, h - 0.03, w - 0.03,
             lambda y, x, box: np.clip(palette[0] + (palette[1] - palette[0])
                                       * (0.5 + 0.25 * art[box])[..., None], 0, None),
             distance - 0.015)
    else:
      c.rect(rng.uniform(0.3, 0.6), left, 0.04, 0.025,
             _jitter(rng, [0.85, 0.85, 0.82]) * level, distance - 0.005)


def _shelves(rng, c: _Canvas) -> None:
  wood = WOODS[rng.integers(len(WOODS))]
  level = rng.uniform(0.04, 0.35)
  distance = rng.uniform(0.8, 4.0)
  c.fill((wood * 0.5 * level) * (1 + 0.1 * c.fine)[..., None], distance + 0.15)
  spacing = rng.uniform(0.18, 0.35)
  board = 0.025
  for shelf in np.arange(rng.uniform(0, spacing) - spacing, 1.0, spacing):
    box = c.slices(shelf, 0, spacing, 1)
    if box is not None:  # One row of books and boxes, drawn column by column (vectorised).
      n = 80
      kind = rng.uniform(size=n) < 0.85  # True: a book, False: a box followed by a gap
      width = np.where(kind, rng.uniform(0.012, 0.05, n), rng.uniform(0.05, 0.2, n))
      gap = np.where(kind, rng.uniform(0.0, 0.004, n), rng.uniform(0.01, 0.1, n))
      left = rng.uniform(-0.1, 0.05) + np.concatenate([[0], np.cumsum(width + gap)[:-1]])
      height = np.where(kind, rng.uniform(0.55, 0.95, n), rng.uniform(0.2, 0.8, n)) * (
          spacing - board)
      colour = np.exp(rng.normal(0, 0.2, (n, 3))) * rng.uniform(0.03, 0.8, (n, 3)) * level
      band = rng.uniform(0.2, 0.9, n)
      x = c.x[0, box[1]]
      item = np.clip(np.searchsorted(left, x, side="right") - 1, 0, n - 1)
      inside = x < left[item] + width[item]
      y = c.y[box[0], 0][:, None]
      up = (shelf + spacing - y) / height[item]  # 0 at the shelf, 1 at the item's top
      drawn = inside & (up > 0) & (up <= 1)
      shade = np.where(kind[item] & (np.abs(up - band[item]) < 0.05), 0.6, 1.0)
      rgb = (colour[item] * shade[..., None]).astype(np.float32)
      c.rgb[box][drawn] = rgb[drawn]
      c.depth[box][drawn] = -(distance + 0.02) * c.size
    c.rect(shelf + spacing, 0, board, 1, _plain(wood * level * 1.2, c.fine, 0.1), distance)
  if rng.uniform() < 0.4:
    _foliage(rng, c, rng.uniform(0.3, 0.8), distance - 0.1, rng.uniform(0.1, 0.3))


def _nature(rng, c: _Canvas) -> None:
  horizon = rng.uniform(0.2, 0.8)
  _sky(rng, c, horizon)
  for distance, density in ((rng.uniform(30, 100), rng.uniform(0.3, 0.8)),
                            (rng.uniform(5, 30), rng.uniform(0.2, 0.6)),
                            (rng.uniform(1, 5), rng.uniform(0.0, 0.35))):
    _foliage(rng, c, horizon - rng.uniform(0.0, 0.4) * 30 / (30 + distance), distance, density)
  ground = horizon + rng.uniform(0.1, 0.4)
  grass = _jitter(rng, [0.12, 0.18, 0.06] if rng.uniform() < 0.6 else [0.35, 0.3, 0.25], 0.2)
  box = c.slices(ground, 0, 1, 1)
  if box is not None:
    c.rgb[box] = grass * (1 + 0.2 * c.fine[box] + 0.1 * c.medium[box])[..., None]
    c.depth[box] = -np.clip(3.0 / np.maximum(c.y[box[0]] - horizon, 0.05), 1.0, 60.0) * c.size


def _city(rng, c: _Canvas) -> None:
  _sky(rng, c, rng.uniform(0.2, 0.6))
  x = rng.uniform(-0.3, 0.0)
  while x < 1.0:
    width, top, distance = rng.uniform(0.2, 0.8), rng.uniform(-0.2, 0.5), rng.uniform(3, 60)
    facade = _jitter(rng, PAINTS[rng.integers(len(PAINTS))], 0.15) * rng.uniform(0.1, 0.8)
    if rng.uniform() < 0.4:  # bricks
      course, brick = rng.uniform(0.008, 0.015), rng.uniform(0.02, 0.04)

      def colour(y, xx, box, facade=facade, course=course, brick=brick, top=top, left=x):
        row = np.floor((y - top) / course)
        joint = (((xx - left) + 0.5 * brick * (row % 2)) % brick < 0.15 * brick) | (
            (y - top) % course < 0.18 * course)
        return facade * (1 - 0.3 * joint[..., None]) * (1 + 0.05 * c.fine[box])[..., None]
    else:
      colour = _plain(facade, c.fine, 0.05)
    c.rect(top, x, 2.0, width, colour, distance)
    px, py = rng.uniform(0.04, 0.12), rng.uniform(0.06, 0.14)
    glass = _jitter(rng, [0.15, 0.2, 0.25], 0.2) * rng.uniform(0.2, 1.5)
    c.rect(top, x, 2.0, width, lambda y, xx, box, glass=glass: glass * (
        1 + 0.4 * c.medium[box])[..., None].clip(0.3, None), distance - 0.01,
        mask=lambda y, xx, left=x, top=top, px=px, py=py: (
            (np.abs((xx - left) % px / px - 0.5) < 0.25) & (np.abs((y - top) % py / py - 0.45)
                                                           < 0.25)))
    x += width + rng.uniform(0.0, 0.05)
  c.rect(rng.uniform(0.75, 1.05), 0, 1, 1, _plain(
      _jitter(rng, [0.2, 0.2, 0.2], 0.1) * rng.uniform(0.3, 1.0), c.fine, 0.1), 5.0)


def _studio(rng, c: _Canvas) -> None:
  paper = _jitter(rng, PAINTS[rng.integers(len(PAINTS))], 0.2)
  centre = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)])
  r2 = (c.x - centre[0]) ** 2 + (c.y - centre[1]) ** 2
  spot = rng.uniform(0.05, 0.5) * (0.3 + np.exp(-r2 / rng.uniform(0.05, 0.5)))
  c.fill(paper * (spot * (1 + 0.01 * c.fine + 0.03 * c.coarse))[..., None],
         rng.uniform(1.0, 3.0))


def _night(rng, c: _Canvas) -> None:
  base = _jitter(rng, [0.02, 0.02, 0.03], 0.3)
  c.fill(base * np.clip(1 + 0.5 * c.coarse, 0.2, None)[..., None], 30.0)
  _bokeh(rng, c, int(rng.integers(10, 60)), 30.0)


def _bokeh(rng, c: _Canvas, count: int, distance: float) -> None:
  for _ in range(count):
    cx, cy = rng.uniform(-0.1, 1.1, 2)
    r = rng.uniform(0.003, 0.015)
    colour = _jitter(rng, [1.0, 0.75, 0.45] if rng.uniform() < 0.6 else rng.uniform(0.2, 1, 3),
                     0.2) * rng.uniform(1, 6)
    c.rect(cy - r, cx - r, 2 * r, 2 * r, colour, distance,
           mask=lambda y, x, cx=cx, cy=cy, r=r: (x - cx) ** 2 + (y - cy) ** 2 < r * r)


def _perspective(rng, image: np.ndarray, size: int, canvas: int, amount: float) -> np.ndarray:
  """Crops `size` from a `canvas`-sized image through a random mild perspective."""
  m = (canvas - size) / 2
  corners = np.array([[m, m], [m, m + size], [m + size, m + size], [m + size, m]])
  src = corners + rng.uniform(-amount, amount, (4, 2)) * size
  dst = np.array([[0, 0], [0, size], [size, size], [size, 0]], np.float64)
  rows = []  # Solve the 8 homography coefficients mapping output (x, y) to input (X, Y).
  for (x, y), (xs, ys) in zip(dst, src):
    rows.append([x, y, 1, 0, 0, 0, -xs * x, -xs * y])
    rows.append([0, 0, 0, x, y, 1, -ys * x, -ys * y])
  coeffs = np.linalg.solve(np.array(rows), src.reshape(-1))
  chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., k]), "F").transform(
      (size, size), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR))
      for k in range(image.shape[-1])]
  return np.stack(chans, -1)


def _resize_rgb(image: np.ndarray, shape: tuple[int, int], box: bool = False) -> np.ndarray:
  """Bilinear (or box, for shrinking) resize of an (h, w, C) float image, per channel."""
  if image.shape[:2] == tuple(shape):
    return image
  method = Image.Resampling.BOX if box else Image.Resampling.BILINEAR
  return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F")
                              .resize((shape[1], shape[0]), method))
                   for c in range(image.shape[2])], -1)


def depth_of_field(rgb: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """Blurs each pixel of (H, W, 3) by about `sigma` (H, W) pixels: level k >= 1 of a pyramid
  (area-downsampled by 2^k, 1-pixel Gaussian there: a ~2^k-pixel blur) is chosen at
  t = log2(sigma) (the sharp image below 1 pixel), blending the two nearest levels. Levels
  >= 1 are blended at half resolution, then upsampled once and mixed with the sharp image."""
  h, w = sigma.shape
  top = int(np.clip(np.ceil(np.log2(max(float(sigma.max()), 1.0))), 1, 6))
  t = np.clip(np.where(sigma < 1, sigma, np.log2(np.maximum(sigma, 1e-3))), 0, top)
  half = (max(1, h // 2), max(1, w // 2))
  t_half = _resize(t, half)[..., None]
  low = np.zeros(half + (rgb.shape[2],), np.float32)
  weight = np.zeros(half + (1,), np.float32)
  small = rgb
  for k in range(1, top + 1):
    small = _resize_rgb(small, (max(1, h >> k), max(1, w >> k)), box=True)
    level = _resize_rgb(ndimage.gaussian_filter(small, (1.0, 1.0, 0), mode="nearest"), half)
    wk = np.maximum(0, 1 - np.abs(t_half - k))
    low += wk * level
    weight += wk
  w0 = np.maximum(0, 1 - t)[..., None]
  blurred = _resize_rgb(low / np.maximum(weight, 1e-6), (h, w))
  return w0 * rgb + (1 - w0) * blurred


def sample_background(rng: np.random.Generator, size: int,
                      options: BackgroundOptions = BackgroundOptions()) -> dict:
  """Draws one background (module docstring).

  Args:
    rng: the scene's generator.
    size: output side in pixels.
    options: `BackgroundOptions`.

  Returns:
    dict: linear (size, size, 3) float32 linear-sRGB radiance; depth (size, size) float32
    pixels (negative: behind the subject); kind (str); aperture (float, 0 = sharp); focus
    (float, camera-subject distance in image sides).
  """
  if not (isinstance(size, (int, np.integer)) and size >= 8):
    raise ValueError(f"size must be an int >= 8, got {size!r}")
  kind = KINDS[int(rng.choice(len(KINDS), p=np.asarray(options.kinds, np.float64)))]
  canvas_size = int(round(size * 1.2))
  c = _Canvas(rng, canvas_size)
  dict(wall=_wall, shelves=_shelves, nature=_nature, city=_city, studio=_studio,
       night=_night)[kind](rng, c)
  if kind in ("wall", "shelves") and rng.uniform() < 0.25:
    _bokeh(rng, c, int(rng.integers(3, 15)), float(-c.depth.max() / canvas_size))
  stack = np.concatenate([c.rgb, c.depth[..., None] / canvas_size], -1)
  if rng.uniform() < options.p_perspective:
    stack = _perspective(rng, stack, size, canvas_size, options.perspective)
  else:
    m = (canvas_size - size) // 2
    stack = stack[m:m + size, m:m + size]
  rgb, distance = stack[..., :3], np.maximum(-stack[..., 3], 0.05)
  aperture = 0.0 if rng.uniform() < options.p_sharp else float(rng.uniform(*options.aperture))
  focus = float(rng.uniform(2.0, 6.0))
  if aperture > 0:
    coc = aperture * size * distance / (focus + distance)  # sigma in pixels
    rgb = depth_of_field(rgb, coc)
  return dict(linear=np.maximum(rgb, 0).astype(np.float32),
              depth=(-distance * size).astype(np.float32), kind=kind, aperture=aperture,
              focus=focus)
