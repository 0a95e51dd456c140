"""Face boxes on real photos, framed the way the synthetic training faces are framed.

BioFaceNet is trained on synthetic 64x64 faces (`data.synth.faces`) that fill a fixed part of
the crop; a photo must be cropped the same way before the network sees it. The central square
of a portrait puts clothing, flags and background in the measured region, so `eval.predict` (and every photo command)
crops to a detected face when it can.

Detector: OpenCV's frontal-face Haar cascade (the XML weights ship inside the
``opencv-python-headless`` wheel up to version 4.x; 5.0 no longer has them), an optional
extra: ``pip install 'opencv-python-headless<5'``. Without it `detect_faces` raises
`DetectorUnavailable` and the callers fall back to the central square with a message.

Framing (`training_frame`): the cascade was run on 96 synthetic training faces of the default
generator (seed 0, faces 0-95, rendered at 128 px and upscaled to 256 px, the same cascade and
parameters as here); on the 30 it found, the box side is a median 0.62 of the crop side
(quartiles 0.57 / 0.69) and its centre sits at 0.495 / 0.431 of the width / height (the
face mask's centre at 0.498 / 0.492). So the crop for a photo is a square of side
box / 0.62, centred on the box horizontally and 0.069 crop sides below its centre vertically
(numbers in docs/biofacenet_edit_and_photos.md, section 2).
"""

from __future__ import annotations

import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
BOX_TO_CROP = 0.62     # detector box side / training-crop side (measured, see above)
BOX_CENTRE_Y = 0.431   # detector box centre row / crop side in the training framing
# A face needs this many overlapping raw detections and, inside the upper 5/8 of its box, at
# least one eye found by the eye cascade. On the portrait set (docs, section 2.2) the votes
# alone did not separate faces from false boxes (a hand had 19, a turned real face 7); with the
# eye check, no false box remained and 4 real faces were lost (two with sunglasses).
MIN_VOTES = 5
EYE_CASCADE = "haarcascade_eye.xml"
EYE_REGION = 5 / 8  # eyes sit in the upper half of a frontal box; a margin for tilted faces
DETECT_MAX_SIDE = 800  # photos are shrunk to at most this many pixels for detection (speed)


class DetectorUnavailable(RuntimeError):
  """OpenCV (with its Haar cascades) is not installed."""


def _cascade():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise DetectorUnavailable(
        "face detection needs OpenCV: pip install 'opencv-python-headless<5'") from error
  cascades = []
  for name in (CASCADE, EYE_CASCADE):
    path = getattr(getattr(cv2, "data", None), "haarcascades", "") + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
      raise DetectorUnavailable(
          f"OpenCV {cv2.__version__} has no {name} (OpenCV 5 dropped the Haar cascades): "
          "pip install 'opencv-python-headless<5'")
    cascades.append(cascade)
  return cv2, *cascades


def _has_eye(cv2, eyes, grey: np.ndarray, box) -> bool:
  """At least one eye in the upper `EYE_REGION` of a face box (resized to 200 px wide)."""
  x, y, w, h = box
  roi = grey[y:y + int(round(h * EYE_REGION)), x:x + w]
  if roi.size == 0:
    return False
  roi = cv2.resize(roi, (200, max(1, round(200 * roi.shape[0] / roi.shape[1]))))
  return len(eyes.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(20, 20))) > 0


def detect_faces(image: np.ndarray, min_side: int = 40, min_votes: int = MIN_VOTES,
                 check_eyes: bool = True) -> list[tuple[int, int, int, int]]:
  """Frontal faces in an RGB photo as (x, y, w, h) pixel boxes, largest first.

  Args:
    image: (H, W, 3) uint8 RGB.
    min_side: smallest face side in pixels of the full-size photo.
    min_votes: overlapping raw detections a face needs (see `MIN_VOTES`).
    check_eyes: keep only boxes with an eye in their upper part (see `MIN_VOTES`).

  Raises:
    DetectorUnavailable: OpenCV or its cascade file is missing.
    ValueError: the image is not (H, W, 3).
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
  cv2, cascade, eyes = _cascade()
  full = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY)
  scale = min(1.0, DETECT_MAX_SIDE / max(full.shape))
  grey = full
  if scale < 1.0:
    grey = cv2.resize(full, (round(full.shape[1] * scale), round(full.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)
  side = max(20, int(min_side * scale))
  found, votes = cascade.detectMultiScale2(grey, scaleFactor=1.1, minNeighbors=3,
                                           minSize=(side, side))
  boxes = [tuple(int(round(v / scale)) for v in box)
           for box, n in zip(np.reshape(found, (-1, 4)), np.ravel(votes)) if n >= min_votes]
  if check_eyes:
    boxes = [box for box in boxes if _has_eye(cv2, eyes, full, box)]
  return sorted(boxes, key=lambda b: -b[2] * b[3])


def training_frame(face: tuple[int, int, int, int], width: int, height: int
                   ) -> tuple[int, int, int, int]:
  """Square crop (left, top, right, bottom) that frames a detected face as in training.

  Side ``w / BOX_TO_CROP``, centred on the box horizontally and so that the box centre lies at
  ``BOX_CENTRE_Y`` of the crop vertically. A crop larger than the photo is shrunk to the
  photo's shorter side; one that sticks out is shifted inside (the face then sits off-centre
  rather than being padded with made-up pixels).

  Raises:
    ValueError: an empty box or photo.
  """
  x, y, w, h = face
  if w <= 0 or h <= 0 or width <= 0 or height <= 0:
    raise ValueError(f"empty face box {face} or photo {width}x{height}")
  side = min(int(round(w / BOX_TO_CROP)), width, height)
  cx = x + w / 2.0
  top_edge = y + h / 2.0 - BOX_CENTRE_Y * side
  left = int(round(cx - side / 2.0))
  top = int(round(top_edge))
  left = min(max(left, 0), width - side)
  top = min(max(top, 0), height - side)
  return left, top, left + side, top + side


def face_crops(image: np.ndarray, max_faces: int | None = 1, min_side: int = 40
               ) -> list[tuple[int, int, int, int]]:
  """Training-framed crops of the (up to ``max_faces``) largest detected faces.

  Raises:
    DetectorUnavailable: as `detect_faces`.
  """
  h, w = np.asarray(image).shape[:2]
  faces = detect_faces(image, min_side=min_side)
  return [training_frame(f, w, h) for f in faces[:max_faces]]
