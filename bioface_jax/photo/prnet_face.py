"""PRNet on a photo: its face crop, the position map, and the 3-D face in photo pixels.

`reconstruct(model, pixels, face)` frames PRNet's crop from a face box (x, y, w, h) with
`framing.prnet_transform` (or the central square for ``face=None``), runs
``model.apply`` (a PRNet `pretrained.Pretrained`) on it and maps the 68 landmarks and the
dense vertices back to the photo: x, y in photo pixels (x right, y down), z toward the viewer
in the same pixel units up to an unknown offset (PRNet's convention; `face3d.uncrop_points`
divides the crop's z by the crop scale).

The landmarks and vertices are read from one of two maps (``readout``):

* ``"network"``: the network's position map as it is;
* ``"posed_mean_face"``: PRNet's mean face aligned to that map by a similarity
  (`face3d.mean_face.regularise` with sigma = inf): the network's pose, position and size with
  the mean shape. For a network whose shape is noisier than its pose this is the better
  read-out. The shipped 64-px model (trained on the face-scene world) recommends it: on its
  256 held-out face scenes the 2-D NME is 12.5 % against 13.6 % for the raw map and 24.8 % for
  the mean face; on 29 real faces, against dlib, 12.0 % against 12.5 % and 15.8 %
  (flip-averaged; docs/prnet.md).

The default is the model's own recommendation (``meta["readout"]`` of an export, set for the
shipped model), else ``"network"``.

With ``flip=True`` (the default) the map is the average of the network's map of the crop and
the mirrored map of the mirrored crop (`face3d.flip_averaged`): a network trained without
flips has left-right biases, and on 29 real faces the average lowers the 2-D NME against
dlib's points for every model measured (docs/prnet.md, "Flip averaging"). ``flip=False``
gives the single pass.
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
    landmarks: (68, 3) in photo pixels, from the read-out map.
    vertices: (N, 3) dense face vertices in photo pixels, from the read-out map.
    readout: which map they come from (`READOUTS`).
    flip: whether `position_map` is the flip average (module docstring).
  """
  crop: np.ndarray
  transform: np.ndarray
  position_map: np.ndarray
  landmarks: np.ndarray
  vertices: np.ndarray
  readout: str = "network"
  flip: bool = False

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


READOUTS = ("network", "posed_mean_face")


def default_readout(model) -> str:
  """The read-out a model recommends (``meta["readout"]``), else ``"network"``."""
  readout = (getattr(model, "meta", None) or {}).get("readout", "network")
  if readout not in READOUTS:
    raise ValueError(f"{getattr(model, 'path', 'the model')}: meta readout must be one of "
                     f"{READOUTS}, got {readout!r}")
  return readout


def read_out(position_map: np.ndarray, readout: str) -> np.ndarray:
  """The map the landmarks and vertices are read from (module docstring)."""
  from bioface_jax.face3d import mean_face  # pylint: disable=g-import-not-at-top
  if readout == "network":
    return np.asarray(position_map)
  if readout == "posed_mean_face":
    return mean_face.regularise(position_map, np.inf)
  raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")


def reconstruct(model, pixels: np.ndarray, face=None, readout: str | None = None,
                flip: bool = True) -> Reconstruction:
  """PRNet's 3-D face of a photo (module docstring).

  Args:
    model: a PRNet `pretrained.Pretrained`.
    pixels: (H, W, 3) float RGB in [0, 1] (`read.Photo.pixels`).
    face: the face box (x, y, w, h) in photo pixels; None: the photo's central square.
    readout: ``"network"`` or ``"posed_mean_face"``; None: the model's recommendation
      (`default_readout`).
    flip: average the map with the mirrored map of the mirrored crop (module docstring).

  Raises:
    ValueError: not a PRNet model; an image that is not (H, W, 3) in [0, 1]; an unknown
      read-out.
  """
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  if getattr(model, "name", None) != "prnet":
    raise ValueError(f"a PRNet model is needed (pretrained.load('prnet', ...)), got "
                     f"{getattr(model, 'name', type(model).__name__)!r}")
  readout = default_readout(model) if readout is None else readout
  if readout not in READOUTS:
    raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
  pixels = np.asarray(pixels, np.float32)
  if pixels.ndim != 3 or pixels.shape[-1] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {pixels.shape}")
  image, transform = crop(pixels, face, model.input_size)
  position_map = face3d.position_maps(lambda x: model.apply(x)["position_map"], image[None],
                                      flip=flip)[0]
  shape = read_out(position_map, readout)
  landmarks = face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(shape)),
                                   transform)
  vertices = face3d.uncrop_points(np.asarray(face3d.vertices_from_position_map(shape)),
                                  transform)
  return Reconstruction(image, transform, position_map, landmarks, vertices, readout,
                        bool(flip))


__all__ = ["READOUTS", "Reconstruction", "crop", "default_readout", "read_out", "reconstruct"]
