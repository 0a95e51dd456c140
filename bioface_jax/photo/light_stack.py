"""Photometric stereo on a folder of photos: one object or face under different lights.

A folder holds one scene: every image file except ``mask.png``, in the order of ``names.txt``
(one file name per line) when that file exists (DiLiGenT's ``filenames.txt`` is read the
same way), else sorted by name; and an optional ``mask.png`` (more than 50 % grey = the
object; without it, the whole image). All images must have the same size (as shown, after EXIF
orientation).

`read_light_stack` reads it (`read.read_photo` for each file); `estimate` runs SDPS-Net
(``model.apply``, a `pretrained.Pretrained` of ``sdps``) and returns the contract's arrays:
``normals`` (H, W, 3) unit in the camera frame (x right, y up, z toward the camera; zero
outside the mask) at the images' size, ``mask`` (H, W), ``light_directions`` (N, 3) unit in
the same frame, ``light_intensities`` (N,) relative.

Values: SDPS-Net expects linear intensities. ``encoding="auto"`` keeps 16-bit (and float)
files as linear (as DiLiGenT's captures are) and decodes 8-bit files from sRGB
(IEC 61966-2-1), as a camera's JPEG is encoded; ``"linear"`` / ``"srgb"`` force one.
Size: SDPS-Net's normal network runs at the images' resolution (LCNet resizes inside, as the
authors' code). Images larger than ``max_side`` on their longer side are area-reduced for the
network and the normals bilinearly resized back to the images' size and renormalised (the
detail of the full resolution is then interpolated, not estimated); 0 keeps full size.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

MASK_FILE = "mask.png"
ORDER_FILES = ("names.txt", "filenames.txt")
ENCODINGS = ("auto", "linear", "srgb")
MAX_SIDE = 640


@dataclasses.dataclass
class LightStack:
  """One scene's photos: images (N, H, W, 3) in [0, 1] as stored, mask (H, W), file names."""
  folder: pathlib.Path
  images: np.ndarray
  mask: np.ndarray
  names: tuple[str, ...]
  bits: tuple[int, ...]
  notes: tuple[str, ...] = ()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".webp")


def scene_files(folder: str | os.PathLike, image_suffixes=IMAGE_SUFFIXES) -> list[pathlib.Path]:
  """The photos of a scene folder in light order (module docstring), without reading them.

  Raises:
    FileNotFoundError: not a folder; a name in names.txt that is not there.
    ValueError: no image.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"{folder} is not a folder")
  files = _order(folder, image_suffixes)
  if not files:
    raise ValueError(f"{folder}: no image file (looked for {', '.join(image_suffixes)}, "
                     f"except {MASK_FILE})")
  return files


def _order(folder: pathlib.Path, image_suffixes) -> list[pathlib.Path]:
  for order_file in ORDER_FILES:
    listing = folder / order_file
    if listing.is_file():
      names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
      missing = [n for n in names if not (folder / n).is_file()]
      if missing:
        raise FileNotFoundError(f"{listing} names {len(missing)} file(s) that are not in the "
                                f"folder: {', '.join(missing[:5])}")
      files = [folder / n for n in names if n != MASK_FILE]
      if not files:
        raise ValueError(f"{listing} lists no image")
      return files
  return sorted(p for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in image_suffixes and p.name != MASK_FILE)


def read_light_stack(folder: str | os.PathLike, image_suffixes=IMAGE_SUFFIXES) -> LightStack:
  """The scene in `folder` (module docstring).

  Raises:
    FileNotFoundError: not a folder; a name in names.txt that is not there.
    ValueError: no image; images of different sizes; an unreadable image or mask; a mask of
      another size or with no pixel inside (each names the file).
  """
  from bioface_jax.photo import read  # pylint: disable=g-import-not-at-top
  folder = pathlib.Path(folder)
  files = scene_files(folder, image_suffixes)
  photos = [read.read_photo(f) for f in files]
  shape = photos[0].pixels.shape
  for photo in photos[1:]:
    if photo.pixels.shape != shape:
      raise ValueError(f"{photo.path}: {photo.width}x{photo.height} pixels, but "
                       f"{photos[0].path.name} is {shape[1]}x{shape[0]}; all images of a scene "
                       "must have the same size")
  notes = sorted({n for p in photos for n in p.notes})
  if (folder / MASK_FILE).is_file():
    mask = read.read_mask(folder / MASK_FILE, shape[:2])
    if not mask.any():
      raise ValueError(f"{folder / MASK_FILE}: no pixel is inside the mask (all dark)")
  else:
    mask = np.ones(shape[:2], np.float32)
    notes.append(f"no {MASK_FILE}: the whole image is the object")
  return LightStack(folder, np.stack([p.pixels for p in photos]), mask,
                    tuple(f.name for f in files), tuple(p.bits for p in photos), tuple(notes))


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
  """IEC 61966-2-1 decoding of encoded sRGB values in [0, 1] (computed in float64)."""
  v = np.asarray(values, np.float64)
  return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055)**2.4).astype(np.float32)


def linear_images(stack: LightStack, encoding: str = "auto") -> np.ndarray:
  """The stack's images as linear intensities (module docstring, "Values")."""
  if encoding not in ENCODINGS:
    raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
  out = stack.images.copy()
  for i, bits in enumerate(stack.bits):
    if encoding == "srgb" or (encoding == "auto" and bits == 8):
      out[i] = srgb_to_linear(out[i])
  return out


def _resize(a: np.ndarray, width: int, height: int, box: bool) -> np.ndarray:
  """(H, W, C) float32 resized per channel with Pillow (BOX area average or BILINEAR)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  method = Image.Resampling.BOX if box else Image.Resampling.BILINEAR
  return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c], np.float32), "F")
                              .resize((width, height), method)) for c in range(a.shape[-1])], -1)


def estimate(model, stack: LightStack, *, encoding: str = "auto", max_side: int = MAX_SIDE,
             mirror: bool = False) -> dict[str, np.ndarray]:
  """SDPS-Net's normals and lights of a scene (module docstring); ``mirror`` averages them
  with the networks' answers on the mirrored photos (`bioface_jax.models.sdps_mirror`).

  Raises:
    ValueError: not an SDPS-Net model; a bad encoding or max_side.
  """
  if getattr(model, "name", None) != "sdps":
    raise ValueError(f"an SDPS-Net model is needed (pretrained.load('sdps', ...)), got "
                     f"{getattr(model, 'name', type(model).__name__)!r}")
  if max_side < 0:
    raise ValueError(f"max_side must be >= 0, got {max_side}")
  images = linear_images(stack, encoding)
  n, h, w, _ = images.shape
  mask = stack.mask
  side = max(h, w)
  if max_side and side > max_side:
    nh, nw = max(1, round(h * max_side / side)), max(1, round(w * max_side / side))
    images = np.stack([_resize(im, nw, nh, box=True) for im in images])
    mask = (_resize(mask[..., None], nw, nh, box=True)[..., 0] > 0.5).astype(np.float32)
  out = model.apply(np.clip(images, 0.0, 1.0)[None], mask=mask[None], mirror=mirror)
  normals = out["normals"][0]
  if normals.shape[:2] != (h, w):
    normals = _resize(normals, w, h, box=False)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.where(length > 1e-6, normals / np.maximum(length, 1e-6), 0.0)
  normals = (normals * stack.mask[..., None]).astype(np.float32)
  return {"normals": normals, "mask": stack.mask.astype(np.float32),
          "light_directions": out["light_directions"][0].astype(np.float32),
          "light_intensities": out["light_intensities"][0].astype(np.float32)}


def normal_map_rgb(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 picture of unit normals: RGB = (n + 1) / 2 inside the mask, black outside."""
  rgb = (np.asarray(normals, np.float64) + 1.0) / 2.0 * (np.asarray(mask)[..., None] > 0.5)
  return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


__all__ = ["ENCODINGS", "IMAGE_SUFFIXES", "LightStack", "MASK_FILE", "MAX_SIDE", "estimate",
           "linear_images", "normal_map_rgb", "read_light_stack", "scene_files",
           "srgb_to_linear"]
