"""PRNet on a photo: its face crop, the position map, and the 3-D face in photo pixels.

`reconstruct(model, pixels, face)` frames PRNet's crop from a face box (x, y, w, h) with
`framing.prnet_transform` (or the central square for ``face=None``), runs
``model.apply`` (a PRNet `pretrained.Pretrained`) on it and maps the 68 landmarks and the
dense vertices back to the photo: x, y in photo pixels (x right, y down), z toward the viewer
in the same pixel units up to an unknown offset (PRNet's convention; `face3d.uncrop_points`
divides the crop's z by the crop scale).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Reconstruction:
  """PRNet's result on one photo.

  Attributes:
    crop: (R, R, 3) float32 in [0, 1], the image fed to the network.
    transform: (3, 3) similarity, photo pixels -> crop pixels.
    position_map: (R, R, 3) the network's output, in crop pixels.
    landmarks: (68, 3) in photo pixels.
    vertices: (N, 3) dense face vertices in photo pixels.
  """
  crop: np.ndarray
  transform: np.ndarray
  position_map: np.ndarray
  landmarks: np.ndarray
  vertices: np.ndarray

  def view(self) -> tuple[float, float, float, float]:
    """The crop's square in photo pixels (x0, y0, x1, y1), for figures."""
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    r = self.crop.shape[0] - 1
    corners = face3d.uncrop_points(np.array([[0.0, 0.0], [r, r]]), self.transform)
    return tuple(float(v) for v in corners.ravel())


def crop(pixels: np.ndarray, face, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(crop (R, R, 3), transform) of a photo for a face box (x, y, w, h), or its central square
  for ``face=None``."""
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  h, w = np.shape(pixels)[:2]
  transform = (framing.prnet_central_transform(w, h, size) if face is None
               else framing.prnet_transform(face, size))
  return framing.prnet_crop(pixels, transform, size), transform


def reconstruct(model, pixels: np.ndarray, face=None) -> Reconstruction:
  """PRNet's 3-D face of a photo (module docstring).

  Args:
    model: a PRNet `pretrained.Pretrained`.
    pixels: (H, W, 3) float RGB in [0, 1] (`read.Photo.pixels`).
    face: the face box (x, y, w, h) in photo pixels; None: the photo's central square.

  Raises:
    ValueError: not a PRNet model; an image that is not (H, W, 3) in [0, 1].
  """
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  if getattr(model, "name", None) != "prnet":
    raise ValueError(f"a PRNet model is needed (pretrained.load('prnet', ...)), got "
                     f"{getattr(model, 'name', type(model).__name__)!r}")
  pixels = np.asarray(pixels, np.float32)
  if pixels.ndim != 3 or pixels.shape[-1] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {pixels.shape}")
  image, transform = crop(pixels, face, model.input_size)
  position_map = model.apply(image[None])["position_map"][0]
  landmarks = face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(position_map)),
                                   transform)
  vertices = face3d.uncrop_points(np.asarray(face3d.vertices_from_position_map(position_map)),
                                  transform)
  return Reconstruction(image, transform, position_map, landmarks, vertices)


__all__ = ["Reconstruction", "crop", "reconstruct"]
