"""PRNet's face crop (api.py): a box -> a similarity onto the R x R network input, and back.

``old = (r - l + b - t) / 2``, centre = box centre, ``size = int(old * scale)`` (1.6 for
landmark / ground-truth boxes; detector boxes use 1.58 and move the centre down by 0.14 old);
the square ``(cx - size/2, cy - size/2) .. (cx + size/2, cy + size/2)`` maps to ``[0, R - 1]``
(integer pixel centres), i.e. x' = (x - x0) * (R - 1) / size. Uncropping inverts x, y and
divides z by the same scale (the z offset is not recoverable; prnet-spec.md §1, §6).

`face_box_transform` frames a face found by `bioface_jax.photo.detect.detect_faces` (its
face-box convention) the way the synthetic training faces are framed (`data.prnet.synth`: a
square of 1.5 x the mean side of the 68-landmark box, centred on that box): the landmark box is
estimated from the face box by the relation measured on synthetic faces with known landmarks
(`LANDMARK_SIDE`, `LANDMARK_SHIFT_Y`). Photos are never stretched: the crop is a square of the
photo, padded with zeros where it leaves the photo (`bioface_jax.photo.framing.prnet_transform`
uses it for every photo command).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def crop_transform(box, size: int, *, scale: float = 1.6, detector: bool = False) -> np.ndarray:
  """The 3x3 similarity (image pixels -> crop pixels) for a box (left, top, right, bottom)."""
  box = np.asarray(box, np.float64)
  if box.shape != (4,) or not np.isfinite(box).all():
    raise ValueError(f"box must be 4 finite numbers (left, top, right, bottom), got {box}")
  left, top, right, bottom = box
  if right <= left or bottom <= top:
    raise ValueError(f"box must have right > left and bottom > top, got {box.tolist()}")
  old = (right - left + bottom - top) / 2.0
  cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
  if detector:
    scale, cy = 1.58, cy + 0.14 * old
  side = float(int(old * scale))
  if side <= 0:
    raise ValueError(f"box {box.tolist()} is too small to crop")
  k = (size - 1) / side
  return np.array([[k, 0, -k * (cx - side / 2)], [0, k, -k * (cy - side / 2)], [0, 0, 1.0]])


# Face box (detect_faces) -> 68-landmark box, measured with BlazeFace on 150 synthetic faces
# (seed 7, yaw U(+-90)): the face-box side is 0.988 (median) of the landmark box's mean side and
# the landmark box's centre lies 0.046 landmark-box sides below the face box's centre.
# (`python -m eval.detect_survey --world faces`.) On whole face-scene portraits (``--world
# scenes``: hair, body and background around the face) BlazeFace's box is larger, 1.046 / 0.078,
# as on real photos against dlib's points (1.050 / 0.051); framing with those constants made the
# shipped PRNet worse against dlib (13.3 against 12.5 % on the 29 real faces: worse placed,
# though its size then matched dlib's; docs/prnet.md), so these are kept.
LANDMARK_SIDE = 1 / 0.988     # landmark-box mean side / face-box side
LANDMARK_SHIFT_Y = 0.046 / 0.988  # (landmark centre - face-box centre) / face-box side, y down
TRAINING_CROP = 1.5           # synthetic training crop side / landmark-box mean side


def face_box_transform(face, size: int, *, crop: float = TRAINING_CROP) -> np.ndarray:
  """The 3x3 similarity (image -> R x R crop) framing a face box (x, y, w, h) as in training.

  Raises:
    ValueError: the box is not 4 finite numbers with positive width and height.
  """
  face = np.asarray(face, np.float64)
  if face.shape != (4,) or not np.isfinite(face).all() or face[2] <= 0 or face[3] <= 0:
    raise ValueError(f"face box must be 4 finite numbers (x, y, w, h) with w, h > 0, got {face}")
  x, y, w, h = face
  side_box = 0.5 * (w + h)
  cx, cy = x + w / 2.0, y + h / 2.0 + LANDMARK_SHIFT_Y * side_box
  side = crop * LANDMARK_SIDE * side_box
  k = (size - 1) / side
  return np.array([[k, 0, -k * (cx - side / 2)], [0, k, -k * (cy - side / 2)], [0, 0, 1.0]])


def warp_image(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
  """Bilinear crop of an (H, W, C) image by `transform` (image -> crop); zero outside."""
  img = np.asarray(image, np.float64)
  inv = np.linalg.inv(transform)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
  sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
  return np.stack([ndimage.map_coordinates(img[..., c], [sy, sx], order=1, mode="constant",
                                           cval=0.0) for c in range(img.shape[-1])], -1)


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
  """Applies the similarity to (..., 2+) points: x, y transformed, z multiplied by its scale."""
  p = np.asarray(points, np.float64).copy()
  xy = p[..., :2] @ transform[:2, :2].T + transform[:2, 2]
  p[..., :2] = xy
  if p.shape[-1] > 2:
    p[..., 2:3] *= np.sqrt(abs(np.linalg.det(transform[:2, :2])))
  return p


def uncrop_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
  """Crop-pixel points (..., 2+) back to the original image (z divided by the crop scale)."""
  return transform_points(points, np.linalg.inv(transform))


__all__ = ["crop_transform", "face_box_transform", "transform_points",
           "uncrop_points", "warp_image"]
