"""Square crops of a photo, framed from a face box the way each system's training faces are.

Every photo command takes the face's box in photo pixels (``--box L T R B``, or the largest face
that `bioface_jax.photo.detect.detect_faces` finds) and frames its own square crop from it,
because each network was trained on faces framed its own way. Photos are never stretched: a
crop is a square of the photo, resized.

* **BioFaceNet** (`biofacenet_crop`): `detect.training_frame` (the detector's box measured on
  the synthetic training faces); the square is kept inside the photo (shrunk to its shorter
  side, shifted inside), no made-up pixels.
* **face VAE** (`face_vae_crop`): the VAE's synthetic portraits (`data.synth_vae`,
  `data.vae_scenes`) place the same rendered synthetic face, a BioFaceNet-framed square, at
  ``VAE_FACE_SCALE`` = 0.72 of the frame, centred horizontally and ``VAE_FACE_TOP`` = 0.09 of
  the frame from the top (the mean of its uniform 0.04-0.14 jitter). So the VAE square is the
  BioFaceNet square grown by 1 / 0.72 around the same column, its top 0.09 / 0.72 BioFaceNet
  sides higher: side ``w / (BOX_TO_CROP * 0.72)``, the box centre at
  ``0.09 + 0.72 * BOX_CENTRE_Y`` of it. Kept inside the photo like BioFaceNet's. (For a VAE
  trained on CelebA's aligned crops this framing is only approximate.)
* **PRNet** (`prnet_transform`): the framing of our synthetic training faces
  (`face3d.face_box_transform`: the 68-landmark box estimated from the face box by the relation
  measured for the detector, then a square of 1.5 x its side, as `data.prnet.synth` crops; the
  authors' 1.58 x with a 0.14 shift was for their detector's boxes, not ours); the crop may
  leave the photo and is then padded with zeros, as in PRNet's training (`prnet_crop`).
* **central square** (`central_square`): the fallback without a face (``--crop center``, or
  no face found under ``--crop auto``).

`find_faces` applies the ``--crop`` policy: ``auto`` = detected faces, else the central square
with a note saying why; ``face`` = detected faces or an error; ``center`` = the central square.
`largest_face` and `frame_photo` put it together for a photo, e.g.::

    photo = read.read_photo("me.jpg")
    framed = framing.frame_photo("biofacenet", photo.pixels, model.input_size)  # detected face
    out = model.apply(framed.image[None])
"""

from __future__ import annotations

import dataclasses

import numpy as np

CROP_MODES = ("auto", "face", "center")
SYSTEMS = ("biofacenet", "face_vae", "prnet")
VAE_FACE_SCALE = 0.72   # data.vae_scenes.compose: face square side / frame side
VAE_FACE_TOP = 0.09     # its top row / frame side (mean of U(0.04, 0.14))

Box = tuple[int, int, int, int]


def face_box(box, width: int, height: int) -> tuple[float, float, float, float]:
  """A face box (left, top, right, bottom) in photo pixels -> (x, y, w, h), checked.

  Raises:
    ValueError: not four finite numbers, empty (right <= left or bottom <= top), or not
      overlapping the width x height photo; the message names the box and the photo size.
  """
  values = np.asarray(box, np.float64).ravel()
  if values.shape != (4,) or not np.isfinite(values).all():
    raise ValueError(f"a box is four numbers LEFT TOP RIGHT BOTTOM, got {box!r}")
  left, top, right, bottom = (float(v) for v in values)
  shown = f"{left:g} {top:g} {right:g} {bottom:g}"
  if right <= left or bottom <= top:
    raise ValueError(f"box {shown} is empty: need LEFT < RIGHT and TOP < BOTTOM")
  if right <= 0 or bottom <= 0 or left >= width or top >= height:
    raise ValueError(f"box {shown} lies outside the {width}x{height} photo")
  return left, top, right - left, bottom - top


def central_square(width: int, height: int) -> Box:
  """The largest centred square (left, top, right, bottom) of a width x height photo."""
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  return left, top, left + side, top + side


def _inside(left: float, top: float, side: float, width: int, height: int) -> Box:
  """A square shrunk to the photo's shorter side and shifted inside it (integer pixels)."""
  side = int(min(round(side), width, height))
  if side < 1:
    raise ValueError(f"a crop of {side} pixels is empty")
  left = min(max(int(round(left)), 0), width - side)
  top = min(max(int(round(top)), 0), height - side)
  return left, top, left + side, top + side


def biofacenet_crop(face, width: int, height: int) -> Box:
  """BioFaceNet's training framing of a face box (x, y, w, h): `detect.training_frame`."""
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  x, y, w, h = (int(round(v)) for v in face)
  return detect.training_frame((x, y, max(w, 1), max(h, 1)), width, height)


def face_vae_crop(face, width: int, height: int) -> Box:
  """The face VAE's training framing of a face box (x, y, w, h) (module docstring)."""
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  x, y, w, h = (float(v) for v in face)
  if w <= 0 or h <= 0:
    raise ValueError(f"empty face box {tuple(face)}")
  side = w / (detect.BOX_TO_CROP * VAE_FACE_SCALE)
  centre_row = VAE_FACE_TOP + VAE_FACE_SCALE * detect.BOX_CENTRE_Y
  return _inside(x + w / 2 - side / 2, y + h / 2 - centre_row * side, side, width, height)


def crop_for(system: str, face, width: int, height: int) -> Box:
  """The square (left, top, right, bottom) `system` takes for a face box, or the central
  square for ``face=None`` (BioFaceNet and the face VAE; PRNet: `prnet_transform`)."""
  if face is None:
    return central_square(width, height)
  if system == "biofacenet":
    return biofacenet_crop(face, width, height)
  if system == "face_vae":
    return face_vae_crop(face, width, height)
  raise ValueError(f"no square crop for {system!r}; choose biofacenet or face_vae")


def resize_crop(pixels: np.ndarray, box: Box, size: int) -> np.ndarray:
  """(size, size, C) float32 of the box of (H, W, C) float pixels, area-averaged (Pillow BOX).

  Every channel is resized in floating point (Pillow mode ``F``), so 16-bit precision is kept.

  Raises:
    ValueError: the box is empty or not inside the photo.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  h, w = pixels.shape[:2]
  left, top, right, bottom = (int(v) for v in box)
  if not (0 <= left < right <= w and 0 <= top < bottom <= h):
    raise ValueError(f"crop {tuple(box)} is empty or outside the {w}x{h} photo")
  crop = np.asarray(pixels[top:bottom, left:right], np.float32)
  if crop.ndim == 2:
    crop = crop[..., None]
  channels = [np.asarray(Image.fromarray(np.ascontiguousarray(crop[..., c]), "F").resize(
      (size, size), Image.Resampling.BOX)) for c in range(crop.shape[-1])]
  return np.clip(np.stack(channels, -1), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- PRNet


def prnet_transform(face, size: int) -> np.ndarray:
  """PRNet's 3x3 similarity (photo pixels -> R x R crop pixels) for a face box (x, y, w, h).

  The one place where PRNet's photo framing is decided (module docstring).
  """
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  return face3d.face_box_transform(tuple(float(v) for v in face), size)


def prnet_central_transform(width: int, height: int, size: int) -> np.ndarray:
  """The 3x3 similarity mapping the photo's central square onto the R x R crop (no stretch).

  Pixel centres map to pixel centres: the square's first and last pixel to 0 and R - 1.
  """
  left, top, right, _ = central_square(width, height)
  k = (size - 1) / max(right - left - 1, 1)
  return np.array([[k, 0.0, -k * left], [0.0, k, -k * top], [0.0, 0.0, 1.0]])


def prnet_crop(pixels: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
  """(R, R, 3) float32 crop of a photo by `transform`, bilinear, zero outside the photo.

  When the crop shrinks the photo by 2x or more, the photo is first box-reduced by that
  integer factor (transform adjusted to the reduced pixel centres), so that the bilinear
  sampling does not alias a large photo.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(pixels, np.float32)
  factor = int(1.0 / np.sqrt(abs(np.linalg.det(transform[:2, :2]))))
  if factor >= 2:
    pixels = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c]), "F")
                                  .reduce(factor)) for c in range(pixels.shape[-1])], -1)
    # Reduced pixel i has its centre at original factor * i + (factor - 1) / 2.
    up = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1.0]])
    transform = transform @ up
  return np.clip(face3d.warp_image(pixels, transform, size), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- faces


def find_faces(image_uint8: np.ndarray, crop: str = "auto", max_faces: int | None = 1
               ) -> tuple[list[tuple[int, int, int, int]], str | None]:
  """Face boxes (x, y, w, h) of a photo under a ``--crop`` mode, and a note when none.

  Returns:
    (faces, note): up to `max_faces` detected faces, largest first; an empty list means the
    central square, with ``note`` saying why (``auto`` without a face or without a detector).

  Raises:
    ValueError: unknown mode, or mode ``face`` and no face found (the message says why).
  """
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  if crop not in CROP_MODES:
    raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
  if crop == "center":
    return [], None
  try:
    faces = list(detect.detect_faces(image_uint8))[:max_faces]
    why = "no face found"
  except detect.DetectorUnavailable as error:
    faces, why = [], str(error)
  if faces:
    return faces, None
  if crop == "face":
    raise ValueError(f"{why} (give --box LEFT TOP RIGHT BOTTOM or --crop center)")
  return [], (f"{why}; using the central square (give --box LEFT TOP RIGHT BOTTOM for a "
              "better crop)")


def to_uint8(pixels: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 of float pixels in [0, 1] (rounded), as the face detector takes them."""
  a = np.asarray(pixels)
  if a.dtype == np.uint8:
    return a
  return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def largest_face(pixels: np.ndarray, crop: str = "auto"):
  """(face box (x, y, w, h) or None for the central square, note or None) of a photo.

  Raises:
    ValueError: as `find_faces`.
  """
  faces, note = find_faces(to_uint8(pixels), crop)
  return (faces[0] if faces else None), note


@dataclasses.dataclass(frozen=True)
class Framed:
  """A photo framed for a system: the network's input and where it came from."""
  image: np.ndarray                      # (S, S, 3) float32 in [0, 1]
  box: Box                               # the square crop in photo pixels
  face: tuple[float, ...] | None         # the face box (x, y, w, h); None: central square
  note: str | None                       # why the central square was taken, if it was


def frame_photo(system: str, pixels: np.ndarray, size: int, face=None, crop: str = "auto"
                ) -> Framed:
  """BioFaceNet's or the face VAE's input from a photo (H, W, 3) in [0, 1].

  Args:
    system: ``"biofacenet"`` or ``"face_vae"``.
    pixels: the photo (`read.Photo.pixels`).
    size: the model's input size (`Pretrained.input_size`).
    face: the face box (x, y, w, h) in photo pixels; None: found under `crop`.
    crop: ``auto``, ``face`` or ``center`` (`find_faces`), used when `face` is None.

  Raises:
    ValueError: an unknown system or crop mode; ``crop="face"`` and no face found.
  """
  pixels = np.asarray(pixels, np.float32)
  note = None
  if face is None:
    face, note = largest_face(pixels, crop)
  box = crop_for(system, face, pixels.shape[1], pixels.shape[0])
  return Framed(resize_crop(pixels, box, size), box, face, note)


__all__ = ["CROP_MODES", "Framed", "VAE_FACE_SCALE", "VAE_FACE_TOP", "biofacenet_crop",
           "central_square", "crop_for", "face_box", "face_vae_crop", "find_faces",
           "frame_photo", "largest_face", "prnet_central_transform", "prnet_crop",
           "prnet_transform", "resize_crop", "to_uint8"]
