"""Head context painted around (and into) a rendered synthetic face: hair, neck, clothes, eyes.

The synthetic PRNet faces (`data.prnet.synth`) are a skin mask floating on a smooth background:
no hair, neck, shoulders or open eyes. Real photos always have them, and a network trained
without them has nothing to tell a face's outline from a head's (issue 19: on real photos the
models were no better than the mean face). This paints, on the final sRGB image, a cheap
version of that context from the face's own 2-D landmarks, never moving the truth:

* behind the face (only off the face mask): background clutter (a few ellipses and boxes), a
  head-shaped hair mass (short or long, dark to blond, strand texture, set back opposite to the
  face's turn), an ear on the far side, a neck in a darker shade of the face's skin, and
  clothes from a collar line down;
* on the face: open eyes inside the eyelid landmark polygons (sclera, iris with pupil and
  highlight; the far eye is left closed beyond 55 degrees of yaw, where the nose hides it), a
  dark mouth interior inside the inner-lip polygon when the lips part, darker brows, and
  sometimes a fringe over the forehead (an occluder: the truth stays the skin under it).

A pure function of ``(image, face mask, landmarks, yaw, rng)``; `data.prnet.synth` draws the rng
from ``(seed, index)`` so a face is the same every time. The s16/synth "face world" will
replace this with rendered hair, expressions and occluders.
"""

from __future__ import annotations

import numpy as np
from matplotlib import path as mpath
from scipy import ndimage

HAIR_COLOURS = np.array([[0.05, 0.04, 0.03], [0.16, 0.10, 0.06], [0.32, 0.20, 0.10],
                         [0.62, 0.48, 0.28], [0.55, 0.53, 0.50], [0.40, 0.14, 0.06]])
IRIS_COLOURS = np.array([[0.22, 0.12, 0.05], [0.35, 0.22, 0.10], [0.25, 0.35, 0.45],
                         [0.30, 0.38, 0.25], [0.08, 0.06, 0.05]])


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
  """(size, size) bool: pixel centres (integer coordinates) inside the polygon (x, y) points."""
  yy, xx = np.mgrid[0:size, 0:size]
  inside = mpath.Path(np.asarray(points, np.float64)[:, :2]).contains_points(
      np.stack([xx.ravel(), yy.ravel()], -1))
  return inside.reshape(size, size)


def ellipse_mask(size: int, cx, cy, ax, ay, angle: float = 0.0) -> np.ndarray:
  """(size, size) float in [0, 1]: a rotated ellipse with a one-pixel soft edge."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  c, s = np.cos(angle), np.sin(angle)
  u = ((xx - cx) * c + (yy - cy) * s) / max(ax, 1e-6)
  v = (-(xx - cx) * s + (yy - cy) * c) / max(ay, 1e-6)
  r = np.sqrt(u * u + v * v)
  return np.clip((1.0 - r) * min(ax, ay) + 0.5, 0.0, 1.0)


def _texture(rng, size: int, scale: float, stretch: float = 1.0, angle: float = 0.0):
  """Unit-variance smooth noise; `stretch` > 1 gives strands along `angle`."""
  n = rng.normal(size=(size, size))
  n = ndimage.gaussian_filter(n, (scale, scale * stretch))
  if angle:
    n = ndimage.rotate(n, np.degrees(angle), reshape=False, mode="reflect")
  return (n - n.mean()) / max(n.std(), 1e-9)


def _blend(image, colour, alpha):
  a = np.clip(alpha, 0.0, 1.0)[..., None]
  return image * (1.0 - a) + np.broadcast_to(colour, image.shape) * a


def paint_context(image: np.ndarray, mask: np.ndarray, landmarks: np.ndarray, yaw: float,
                  rng: np.random.Generator) -> np.ndarray:
  """The image with head context painted (module docstring).

  Args:
    image: (R, R, 3) sRGB in [0, 1], the rendered face on its background.
    mask: (R, R) bool, the face's pixels.
    landmarks: (68, 2+) crop pixels (x, y; integer pixel centres), z (if given) larger = closer.
    yaw: degrees, positive = the face turned towards the image's right (`Pose`).
    rng: the face's generator.

  Returns:
    (R, R, 3) float32 in [0, 1].
  """
  img = np.asarray(image, np.float64).copy()
  size = img.shape[0]
  lmk = np.asarray(landmarks, np.float64)
  off = ~np.asarray(mask, bool)
  soft_off = ndimage.gaussian_filter(off.astype(np.float64), 0.6)
  skin = np.median(img[~off], 0) if (~off).any() else np.array([0.6, 0.45, 0.38])
  lo, hi = lmk[:, :2].min(0), lmk[:, :2].max(0)
  w, h = hi - lo
  hh = max(h, 0.6 * w, 1.0)
  cx = 0.5 * (lo[0] + hi[0])
  brow_y, chin_y = lmk[17:27, 1].min(), lmk[8, 1]
  t = np.sin(np.radians(np.clip(yaw, -90, 90)))
  roll = np.arctan2(lmk[45, 1] - lmk[36, 1], lmk[45, 0] - lmk[36, 0]) if abs(yaw) < 70 else 0.0

  # Background clutter (behind everything).
  for _ in range(rng.integers(0, 4)):
    colour = rng.uniform(0.0, 1.0, 3) * rng.uniform(0.2, 1.0)
    if rng.uniform() < 0.5:
      shape = ellipse_mask(size, *rng.uniform(0, size, 2), *rng.uniform(0.05, 0.4, 2) * size,
                           rng.uniform(0, np.pi))
    else:
      x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
      x1, y1 = np.array([x0, y0]) + rng.uniform(0.1, 0.6, 2) * size
      yy, xx = np.mgrid[0:size, 0:size]
      shape = ((xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)).astype(np.float64)
    img = _blend(img, colour, shape * soft_off * rng.uniform(0.5, 1.0))

  # Clothes from a collar line down, then the neck over them.
  collar = chin_y + rng.uniform(0.25, 0.6) * hh
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  spread = (yy - collar) * rng.uniform(0.8, 2.0) + rng.uniform(0.35, 0.6) * hh
  cloth = ((yy >= collar) & (np.abs(xx - cx - 0.25 * t * hh) <= spread)).astype(np.float64)
  cloth_colour = rng.uniform(0, 1, 3) * rng.uniform(0.1, 0.9)
  shade = 1.0 + 0.15 * _texture(rng, size, 3.0)
  img = _blend(img, np.clip(cloth_colour * shade[..., None], 0, 1), cloth * soft_off)
  neck_w = rng.uniform(0.28, 0.4) * hh
  neck_cx = 0.5 * (lmk[6, 0] + lmk[10, 0]) - 0.3 * t * hh
  top = lmk[4:13, 1].min()
  neck = ((yy >= top) & (yy <= collar + 0.15 * hh) & (np.abs(xx - neck_cx) <= neck_w)).astype(
      np.float64)
  depth = np.clip((yy - chin_y) / (0.3 * hh), 0, 1)
  neck_colour = skin[None, None] * (rng.uniform(0.45, 0.75) + 0.25 * depth[..., None])
  img = _blend(img, np.clip(neck_colour, 0, 1), ndimage.gaussian_filter(neck, 0.7) * soft_off)

  # Ear on the far side (the back of the head), at eye-to-nose height.
  if rng.uniform() < 0.7 and abs(yaw) > 10:
    side = -np.sign(t)
    jaw = lmk[0] if (lmk[0, 0] - cx) * side > 0 else lmk[16]
    ear = ellipse_mask(size, jaw[0] + side * 0.05 * hh, jaw[1] - 0.05 * hh, 0.1 * hh,
                       0.18 * hh)
    img = _blend(img, np.clip(skin * rng.uniform(0.7, 0.95), 0, 1), ear * soft_off)

  # Hair: a head-shaped mass set back opposite to the turn, with strand texture.
  if rng.uniform() < 0.92:
    colour = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.7, 1.3)
    long_hair = rng.uniform() < 0.4
    hx = cx - t * rng.uniform(0.15, 0.3) * hh
    hy = brow_y + rng.uniform(0.0, 0.15) * hh
    ax = rng.uniform(0.48, 0.6) * hh * (1 + 0.2 * abs(t))
    ay = rng.uniform(0.6, 0.75) * hh
    head = ellipse_mask(size, hx, hy, ax, ay, roll)
    if long_hair:
      drop = ellipse_mask(size, hx - 0.1 * t * hh, hy + 0.6 * hh, ax * rng.uniform(0.85, 1.1),
                          0.8 * hh, roll)
      head = np.maximum(head, drop * (yy > brow_y))
    else:
      head = head * np.clip((lmk[30, 1] - yy) / (0.1 * hh) + 0.5, 0, 1)
    strands = _texture(rng, size, 0.6, 3.0, rng.uniform(-0.5, 0.5))
    tex = np.clip(colour * (1.0 + 0.25 * strands[..., None]), 0, 1)
    img = _blend(img, tex, head * soft_off)
    if rng.uniform() < 0.3:  # A fringe over the forehead: an occluder on the face.
      fringe_y = brow_y - rng.uniform(0.0, 0.2) * hh
      fringe = head * np.clip((fringe_y - yy) / 1.5 + 0.5, 0, 1) * (~off)
      img = _blend(img, tex, fringe)

  # Brows darker (towards the hair colour).
  brow_colour = HAIR_COLOURS[rng.integers(3)]
  for a, b in ((17, 22), (22, 27)):
    line = np.zeros((size, size))
    pts = lmk[a:b, :2]
    for p, q in zip(pts[:-1], pts[1:]):
      for s in np.linspace(0, 1, 8):
        x, y = (1 - s) * p + s * q
        if 0 <= x < size and 0 <= y < size:
          line[int(round(y)), int(round(x))] = 1.0
    line = ndimage.gaussian_filter(line, max(0.02 * hh, 0.6)) * 2.5
    line = np.where(line > 0.05, line, 0.0)  # no faint tails over the rest of the face
    img = _blend(img, brow_colour, line * rng.uniform(0.2, 0.7) * (~off))

  # Open eyes inside the eyelid polygons (the far eye is hidden beyond 55 degrees).
  z = lmk[:, 2] if lmk.shape[1] > 2 else np.zeros(68)
  eyes = [(36, 42), (42, 48)]
  far = 0 if z[36:42].mean() < z[42:48].mean() else 1
  iris_colour = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.7, 1.2)
  gaze = rng.uniform(-0.15, 0.15, 2)
  for k, (a, b) in enumerate(eyes):
    if k == far and abs(yaw) > 55:
      continue
    poly = lmk[a:b, :2]
    inside = polygon_mask(poly, size) & ~off
    if inside.sum() < 2:
      continue
    eye_w = np.linalg.norm(poly[3] - poly[0])
    centre = poly.mean(0) + gaze * eye_w
    sclera = np.clip(0.55 * skin + 0.45 * rng.uniform(0.6, 0.9), 0, 1)
    img = np.where(inside[..., None], sclera, img)
    r = rng.uniform(0.2, 0.27) * eye_w
    iris = ellipse_mask(size, centre[0], centre[1], r, r) * inside
    img = _blend(img, iris_colour, iris)
    img = _blend(img, np.zeros(3), ellipse_mask(size, centre[0], centre[1], 0.4 * r, 0.4 * r)
                 * inside)
    glint = ellipse_mask(size, centre[0] + 0.3 * r, centre[1] - 0.3 * r, 0.2 * r, 0.2 * r)
    img = _blend(img, np.ones(3), 0.7 * glint * inside)
    lid = inside ^ ndimage.binary_erosion(inside)
    upper = lid & (yy <= centre[1])
    img = _blend(img, np.full(3, 0.05), 0.6 * upper)

  # Mouth interior when the lips part.
  inner = lmk[60:68, :2]
  gap = np.linalg.norm(inner[2] - inner[6])
  if gap > 0.015 * hh:
    mouth = polygon_mask(inner, size) & ~off
    img = np.where(mouth[..., None], np.array([0.18, 0.05, 0.05]) * rng.uniform(0.3, 1.0), img)
    if rng.uniform() < 0.5:
      teeth = mouth & (yy <= inner[2:5, 1].mean() + rng.uniform(0.2, 0.45) * gap)
      img = np.where(teeth[..., None], rng.uniform(0.7, 0.9) * np.array([1.0, 0.97, 0.9]), img)
  return np.clip(img, 0.0, 1.0).astype(np.float32)


__all__ = ["ellipse_mask", "paint_context", "polygon_mask"]
