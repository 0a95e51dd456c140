"""CelebA-like portrait scenes around the project's synthetic faces, with exact label maps.

A scene is drawn at ``2 * size`` in encoded sRGB, back to front (every draw a function of
(seed, index) through ``np.random.default_rng([seed, index, 7])``):

1. a textured background: a colour gradient, multi-octave noise, stripes or checks at a random
   angle and frequency, or blurred rectangles;
2. clothing (label 16): shoulders rising from the bottom edge, a textured colour;
3. a neck (label 14) in the face's skin colour, a little darker;
4. hair (label 17) around the upper face outline: a noisy band (short or long, sometimes
   none), oriented strand texture, a palette colour, sometimes a fringe over the forehead;
5. the rendered face (label 1) from `data.synth.faces.FaceGenerator`, scaled to ``face_scale``
   of the frame and placed a little above centre with random jitter.

The image and the mask (labels_to_mask of the label map: face + hair) are then 2x2 box
averaged, so the mask is the exact coverage fraction of each pixel (soft edges, as the authors'
bilinearly resized masks). Deviation: layers are composed in encoded sRGB (the face renderer's
output), not in linear light.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data import face_masks

HAIR_PALETTE = np.array([[0.06, 0.05, 0.05], [0.20, 0.12, 0.07], [0.35, 0.22, 0.12],
                         [0.62, 0.48, 0.30], [0.80, 0.68, 0.45], [0.55, 0.25, 0.12],
                         [0.62, 0.62, 0.60]], np.float32)
LABEL_FACE, LABEL_NECK, LABEL_CLOTH, LABEL_HAIR = 1, 14, 16, 17


def _noise(rng, size, octaves=4):
  """Multi-octave smooth noise in [0, 1], (size, size)."""
  out = np.zeros((size, size), np.float32)
  for o in range(octaves):
    cells = 2 ** (o + 1)
    grid = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    out += ndimage.zoom(grid, size / (cells + 1), order=1)[:size, :size] * 0.5**o
  out -= out.min()
  return out / max(float(out.max()), 1e-6)


def background(rng, size):
  """(size, size, 3) textured background in [0, 1]."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
  kind = rng.integers(4)
  c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
  angle = rng.uniform(0, np.pi)
  u = np.cos(angle) * xx + np.sin(angle) * yy
  if kind == 0:    # gradient
    t = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
  elif kind == 1:  # multi-octave noise
    t = _noise(rng, size)
  elif kind == 2:  # stripes or checks
    freq = rng.uniform(3, 14)
    t = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * u))
    if rng.uniform() < 0.5:
      v = -np.sin(angle) * xx + np.cos(angle) * yy
      t = np.abs(t - (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * v))))
    t = ndimage.gaussian_filter(t, 0.7)
  else:            # blurred rectangles
    t = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(3, 9)):
      y0, x0 = rng.integers(0, size, 2)
      h, w = rng.integers(size // 8, size // 2, 2)
      t[y0:y0 + h, x0:x0 + w] = rng.uniform()
    t = ndimage.gaussian_filter(t, size / 40)
  img = c0 * (1 - t[..., None]) + c1 * t[..., None]
  img = img * (1 + 0.15 * (_noise(rng, size, 3)[..., None] - 0.5))
  return np.clip(img, 0, 1).astype(np.float32)


def _strands(rng, size, colour):
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  angle = rng.uniform(np.pi / 3, 2 * np.pi / 3)  # mostly vertical strands
  u = np.cos(angle) * xx + np.sin(angle) * yy
  wobble = 6 * _noise(rng, size, 2)
  tex = 0.5 + 0.5 * np.sin(2 * np.pi * (u / rng.uniform(2.5, 6) + wobble))
  shade = 0.75 + 0.5 * tex * rng.uniform(0.3, 0.8)
  return np.clip(colour * shade[..., None], 0, 1)


def compose(face_image, face_mask, rng, size, face_scale=0.72):
  """One scene at `size` (= 2 x the model size) from a rendered face (F x F, bool mask).

  Returns:
    (image (size, size, 3) float32 in [0, 1], labels (size, size) uint8).
  """
  f = face_image.shape[0]
  img = background(rng, size)
  labels = np.zeros((size, size), np.uint8)
  # Face placement: a little above centre, random horizontal / vertical jitter.
  top = int(np.clip(round(size * rng.uniform(0.04, 0.14)), 0, size - f))
  left = int(np.clip(round((size - f) / 2 + size * rng.uniform(-0.06, 0.06)), 0, size - f))
  face = np.zeros((size, size), bool)
  face[top:top + f, left:left + f] = face_mask
  ys, xs = np.nonzero(face)
  cy, cx = ys.mean(), xs.mean()
  chin, head_top = ys.max(), ys.min()
  half_w = (xs.max() - xs.min()) / 2
  yy, xx = np.mgrid[0:size, 0:size]
  skin = face_image[face_mask].mean(0)

  # Clothing: an ellipse of shoulders from the bottom edge.
  sh_y = chin + rng.uniform(0.05, 0.15) * size
  cloth = ((xx - cx) / (half_w * rng.uniform(1.6, 2.4))) ** 2 + ((yy - size * 1.25) / (
      size * 1.25 - sh_y)) ** 2 <= 1
  cloth_colour = rng.uniform(0.05, 0.9, 3).astype(np.float32)
  cloth_tex = 1 + 0.2 * (_noise(rng, size, 3) - 0.5)
  img[cloth] = np.clip(cloth_colour * cloth_tex[cloth][:, None], 0, 1)
  labels[cloth] = LABEL_CLOTH

  # Neck: a column under the face, skin coloured.
  neck_w = half_w * rng.uniform(0.45, 0.65)
  neck = (np.abs(xx - cx) <= neck_w) & (yy >= cy) & (yy <= sh_y + 0.04 * size) & ~face
  img[neck] = np.clip(skin * rng.uniform(0.75, 0.9), 0, 1)
  labels[neck] = LABEL_NECK

  # Hair: a noisy band outside the face outline above a cut line; sometimes none (bald).
  style = rng.choice(["short", "long", "none"], p=[0.55, 0.35, 0.1])
  if style != "none":
    dist = ndimage.distance_transform_edt(~face)
    thick = size * rng.uniform(0.03, 0.08) * (1 + 0.8 * (_noise(rng, size, 3) - 0.5))
    cut = cy + (0.05 if style == "short" else 0.9) * (chin - cy) + rng.uniform(-0.05, 0.05) * size
    if style == "long":
      thick = thick * np.where(yy > cy, 1.6, 1.0)
    hair = (dist > 0) & (dist <= thick) & (yy <= cut) & (yy >= head_top - 0.2 * size)
    if style == "long":  # curtains beside the neck
      hair |= (np.abs(xx - cx) <= half_w + thick) & (np.abs(xx - cx) >= neck_w) & (
          yy > cy) & (yy <= cut) & ~face
    colour = HAIR_PALETTE[rng.integers(len(HAIR_PALETTE))] * rng.uniform(0.85, 1.15)
    tex = _strands(rng, size, colour)
    img[hair] = tex[hair]
    labels[hair] = LABEL_HAIR
  else:
    hair, tex = None, None

  img[face] = face_image[face_mask]
  labels[face] = LABEL_FACE
  if hair is not None and rng.uniform() < 0.3:  # fringe over the forehead
    fringe = face & (yy <= head_top + rng.uniform(0.1, 0.2) * (chin - head_top))
    img[fringe] = tex[fringe]
    labels[fringe] = LABEL_HAIR
  return img.astype(np.float32), labels


def box_downsample(a: np.ndarray) -> np.ndarray:
  """2x2 mean over the two leading axes."""
  return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def scene(face_image, face_mask, seed, index, size):
  """Model-size (image uint8 (size, size, 3), soft mask float32 (size, size)) of one scene."""
  rng = np.random.default_rng([seed, index, 7])
  img, labels = compose(face_image, face_mask, rng, 2 * size)
  mask = box_downsample(face_masks.labels_to_mask(labels))
  image = np.round(box_downsample(img) * 255).astype(np.uint8)
  return image, mask.astype(np.float32)
