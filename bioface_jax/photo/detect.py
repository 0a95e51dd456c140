"""Face boxes on real photos in one convention, and BioFaceNet's framing of them.

`detect_faces(image)` returns faces as (x, y, w, h) pixel boxes, largest first, always in the
**face-box convention** below, whichever detector ran, so each system frames its own crop from
it (PRNet: `bioface_jax.face3d.crop.face_box_transform`; BioFaceNet: `training_frame`).

Detectors (``detector=``):

* ``"blazeface"``: MediaPipe's BlazeFace (`bioface_jax.photo.blazeface`; optional extra
  ``detect``). Finds turned and profile faces: all 29 faces of the real portraits with no false
  box, 98 % of synthetic faces up to 90 degrees of yaw (docs/prnet.md, "Finding faces").
* ``"haar"``: OpenCV's frontal Haar cascade with an eye check (extra ``photos``; the XML
  weights ship inside ``opencv-python-headless`` < 5). Frontal faces only (20 of the 29).
* ``"auto"`` (default): BlazeFace when installed, else Haar; `DetectorUnavailable` names both
  extras when neither is.

**Face-box convention** (BlazeFace's own box): square; its side is about the mean side of the
box around the 68 iBUG landmarks (chin to brows), measured 0.99 (median; sd 0.13) on 150
synthetic faces with known landmarks, and its centre lies 0.05 side above that box's centre
(sd 0.06). Haar boxes are mapped into it with the median relation of the 20 real faces both
detectors found: the Haar box is 1.163 times larger and its centre 0.125 face-box sides higher.

BioFaceNet framing (`training_frame`): it was measured with the Haar cascade on 96 synthetic
BioFaceNet training faces (seed 0, faces 0-95, rendered at 128 px, upscaled to 256 px): on the
30 found, the Haar box side is a median 0.62 of the crop side and its centre sits at 0.495 /
0.431 of the width / height (the face mask's centre at 0.498 / 0.492; docs/biofacenet_edit_and_
photos.md, section 2). In the face-box convention that is a crop of side box / 0.533
(0.62 / 1.163) with the box centre at 0.498 of its height (0.431 + 0.125 x 0.533), so a
BioFaceNet crop is framed as before whichever detector found the face.
"""

from __future__ import annotations

import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
# Haar box -> face-box convention (median of the 20 real faces both detectors found).
HAAR_SIDE = 1.163      # Haar box side / face-box side
HAAR_SHIFT_Y = -0.125  # (Haar centre - face-box centre) / face-box side (Haar sits higher)
# BioFaceNet framing in the face-box convention (derived from the Haar measurement above).
BOX_TO_CROP = 0.62 / HAAR_SIDE                      # face-box side / training-crop side
BOX_CENTRE_Y = 0.431 - HAAR_SHIFT_Y * BOX_TO_CROP  # face-box centre row / crop side
# A face needs this many overlapping raw detections and, inside the upper 5/8 of its box, at
# least one eye found by the eye cascade. On the portrait set (docs, section 2.2) the votes
# alone did not separate faces from false boxes (a hand had 19, a turned real face 7); with the
# eye check, no false box remained and 4 real faces were lost (two with sunglasses).
MIN_VOTES = 5
EYE_CASCADE = "haarcascade_eye.xml"
EYE_REGION = 5 / 8  # eyes sit in the upper half of a frontal box; a margin for tilted faces
DETECT_MAX_SIDE = 800  # photos are shrunk to at most this many pixels for detection (speed)
DETECTORS = ("auto", "blazeface", "haar")


class DetectorUnavailable(RuntimeError):
  """No face detector is installed (neither BlazeFace nor OpenCV's Haar cascades)."""


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


def haar_faces(image: np.ndarray, min_side: int = 40, min_votes: int = MIN_VOTES,
               check_eyes: bool = True) -> list[tuple[int, int, int, int]]:
  """Frontal faces as raw Haar-cascade boxes (x, y, w, h), largest first (Haar's convention).

  Raises:
    DetectorUnavailable: OpenCV or its cascade file is missing.
  """
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


def haar_to_face_box(box) -> tuple[int, int, int, int]:
  """A Haar box in the face-box convention (`HAAR_SIDE`, `HAAR_SHIFT_Y`; square)."""
  x, y, w, h = box
  side = 0.5 * (w + h) / HAAR_SIDE
  cx, cy = x + w / 2.0, y + h / 2.0 - HAAR_SHIFT_Y * side
  return _int_box(cx - side / 2, cy - side / 2, side, side)


def _int_box(x, y, w, h) -> tuple[int, int, int, int]:
  return int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))


def _check_rgb(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"expected a uint8 RGB image, got dtype {image.dtype}")
  if min(image.shape[:2]) < 8:
    raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} pixels is too small")
  return image


def detect_faces(image: np.ndarray, min_side: int = 40, detector: str = "auto"
                 ) -> list[tuple[int, int, int, int]]:
  """Faces in an RGB photo as (x, y, w, h) pixel boxes in the face-box convention, largest first.

  Args:
    image: (H, W, 3) uint8 RGB.
    min_side: smallest face side in pixels of the full-size photo (smaller boxes are dropped).
    detector: ``"auto"`` (BlazeFace if installed, else Haar), ``"blazeface"`` or ``"haar"``.

  Raises:
    DetectorUnavailable: the requested detector (for ``auto``: both) is not installed; the
      message names the pip command.
    ValueError: the image is not (H, W, 3) uint8, or ``detector`` is unknown.
  """
  from bioface_jax.photo import blazeface  # pylint: disable=g-import-not-at-top
  image = _check_rgb(image)
  if detector not in DETECTORS:
    raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
  if detector in ("auto", "blazeface"):
    try:
      found = [_int_box(*b[:4]) for b in blazeface.detect(image)]
      return sorted([b for b in found if min(b[2], b[3]) >= min_side],
                    key=lambda b: -b[2] * b[3])
    except blazeface.BlazeFaceUnavailable as error:
      if detector == "blazeface":
        raise DetectorUnavailable(str(error)) from error
      why = str(error)
  try:
    raw = haar_faces(image, min_side=int(round(min_side * HAAR_SIDE)))
  except DetectorUnavailable as error:
    if detector == "haar":
      raise
    raise DetectorUnavailable(f"no face detector installed. {why}. Fallback: {error}") from error
  return [haar_to_face_box(b) for b in raw]


def training_frame(face: tuple[int, int, int, int], width: int, height: int
                   ) -> tuple[int, int, int, int]:
  """Square BioFaceNet crop (left, top, right, bottom) framing a face box as in training.

  ``face`` is in the face-box convention (`detect_faces`). Side ``w / BOX_TO_CROP``, centred
  on the box horizontally and so that the box centre lies at ``BOX_CENTRE_Y`` of the crop
  vertically. A crop larger than the photo is shrunk to the
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
