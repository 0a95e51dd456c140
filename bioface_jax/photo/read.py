"""Photos read as an image viewer shows them: upright, in colour, on white, at a sane size.

`read_photo(path)` returns the picture a person sees when opening the file, as float32
gamma-encoded RGB in [0, 1] (`Photo.pixels`, (H, W, 3)):

* **orientation**: the EXIF ``Orientation`` tag (phone photos are stored sideways and tagged)
  is applied, so the rows and columns are the viewer's; boxes and landmarks are in these
  pixels;
* **bit depth**: 8-bit images are divided by 255, 16-bit ones by 65535 (a 16-bit greyscale PNG
  stays grey instead of turning white, as Pillow's ``convert("RGB")`` would make it: it clips the
  16-bit values at 255). 16-bit colour PNGs are read at full depth with ``pypng`` when it is
  installed (Pillow keeps only their high byte), otherwise at 8 bits with a note;
* **greyscale** (L, I;16, ...) is repeated into three equal channels; palette, CMYK and YCbCr
  images are converted to RGB by Pillow;
* **transparency** (RGBA, LA, palette with a transparent colour) is composited on white with
  straight (non-premultiplied) alpha, as viewers show it on a white page;
* **size**: an image of more than ``max_pixels`` (default 64 megapixels, e.g. 8000 x 8000) is
  never decoded at full size (Pillow's decompression-bomb check would stop it with a
  traceback, or it would take gigabytes). A JPEG is decoded at 1/2, 1/4 or 1/8 scale by the
  JPEG decoder itself (``Image.draft``), then box-reduced further if needed, with a note;
  any other format is refused with a message naming its size. ``Photo.scale`` (pixels of the
  original per pixel read) and `Photo.to_original` / `Photo.from_original` convert
  coordinates between the two;
* **too small**: a side under ``min_side`` pixels (default 16) is refused.

Errors name the file: `FileNotFoundError` (missing, or a folder), `ValueError` (not an image,
a truncated or corrupt file, an unsupported pixel format, too large, too small).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import warnings

import numpy as np

MAX_PIXELS = 64_000_000
MIN_SIDE = 16
ORIENTATION_TAG = 0x0112


@dataclasses.dataclass(frozen=True)
class Photo:
  """A photo as a viewer shows it (module docstring).

  Attributes:
    pixels: (H, W, 3) float32 gamma-encoded RGB in [0, 1].
    path: the file it was read from.
    original_size: (width, height) of the full-size upright image.
    scale: pixels of the full-size image per pixel of `pixels` (1.0 unless it was reduced).
    notes: what was done that a user should know (rotation, reduction, compositing).
    bits: bits per channel stored in the file (8 or 16; 32 for float and integer images).
  """
  pixels: np.ndarray
  path: pathlib.Path
  original_size: tuple[int, int]
  scale: float = 1.0
  notes: tuple[str, ...] = ()
  bits: int = 8

  @property
  def width(self) -> int:
    return int(self.pixels.shape[1])

  @property
  def height(self) -> int:
    return int(self.pixels.shape[0])

  def uint8(self) -> np.ndarray:
    """(H, W, 3) uint8 RGB (rounded), e.g. for a face detector."""
    return np.round(np.clip(self.pixels, 0.0, 1.0) * 255.0).astype(np.uint8)

  def to_original(self, points: np.ndarray) -> np.ndarray:
    """(..., 2+) pixel coordinates (x, y, ...) of `pixels` -> those of the full-size image.

    Pixel centres: pixel i of a reduction by s covers originals s*i .. s*i + s - 1, so its
    centre is s*i + (s - 1)/2. Further coordinates (e.g. PRNet's depth) are scaled by s.
    """
    p = np.asarray(points, np.float64).copy()
    s = self.scale
    p[..., :2] = p[..., :2] * s + (s - 1.0) / 2.0
    p[..., 2:] *= s
    return p

  def from_original(self, box) -> tuple[float, float, float, float]:
    """A box (left, top, right, bottom) in full-size pixels -> in the pixels read (edges / s)."""
    return tuple(float(v) / self.scale for v in box)


@contextlib.contextmanager
def _no_pillow_size_limit():
  """Lets Pillow open any size: `read_photo` applies its own limit before decoding."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  saved = Image.MAX_IMAGE_PIXELS
  Image.MAX_IMAGE_PIXELS = None
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      yield
  finally:
    Image.MAX_IMAGE_PIXELS = saved


# EXIF orientation -> the NumPy steps that make the stored pixels upright (as Pillow's
# ImageOps.exif_transpose): np.rot90 turns counter-clockwise; "T" swaps rows and columns.
_ORIENT = {2: ("flip_lr",), 3: ("rot180",), 4: ("flip_ud",), 5: ("T",), 6: ("rot270",),
           7: ("T", "rot180"), 8: ("rot90",)}


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
  """The stored (H, W, ...) pixels turned upright for an EXIF orientation 1..8 (others: as is)."""
  a = pixels
  for op in _ORIENT.get(int(orientation), ()):
    if op == "flip_lr":
      a = a[:, ::-1]
    elif op == "flip_ud":
      a = a[::-1]
    elif op == "rot180":
      a = a[::-1, ::-1]
    elif op == "T":
      a = np.swapaxes(a, 0, 1)
    elif op == "rot90":
      a = np.rot90(a, 1)
    elif op == "rot270":
      a = np.rot90(a, -1)
  return np.ascontiguousarray(a)


def _orientation(image) -> int:
  """The EXIF orientation 1..8 of an opened image (1 when absent or malformed)."""
  try:
    value = int(image.getexif().get(ORIENTATION_TAG, 1))
  except (TypeError, ValueError, OSError, SyntaxError):
    return 1
  return value if value in range(1, 9) else 1


def _on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """Straight-alpha compositing of colour (H, W, 3) in [0, 1] over white."""
  return colour * alpha[..., None] + (1.0 - alpha[..., None])


def _check_size(path, width: int, height: int, fmt: str | None, max_pixels: int) -> None:
  """Refuses a non-JPEG image of more than `max_pixels` (JPEGs are decoded reduced)."""
  if width * height > max_pixels and fmt != "JPEG":
    raise ValueError(f"{path}: {width}x{height} pixels ({width * height / 1e6:.1f} megapixels) "
                     f"is more than the {max_pixels / 1e6:g} megapixels read from a "
                     f"{fmt or 'non-JPEG'} file; shrink it first (e.g. with Pillow: "
                     "Image.open(p).reduce(4).save(q))")


def _png_header(path: pathlib.Path) -> tuple[int, int] | None:
  """(bit depth, colour type) of a PNG from its IHDR chunk, None if not a PNG."""
  with open(path, "rb") as f:
    head = f.read(26)
  if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
    return None
  return head[24], head[25]


def _read_png16(path: pathlib.Path) -> np.ndarray | None:
  """Full-depth float pixels of a 16-bit PNG via pypng, or None when pypng is missing."""
  try:
    import png  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  try:
    with open(path, "rb") as f:
      width, height, rows, info = png.Reader(file=f).asDirect()
      data = np.vstack([np.asarray(r, np.uint16) for r in rows])
  except png.Error as error:
    raise ValueError(f"not a readable PNG ({error})") from error
  return data.reshape(height, width, info["planes"]).astype(np.float32) / 65535.0


def _to_rgb(values: np.ndarray) -> tuple[np.ndarray, bool]:
  """(H, W) / (H, W, 1..4) floats in [0, 1] -> ((H, W, 3) on white, had transparency)."""
  if values.ndim == 2:
    values = values[..., None]
  channels = values.shape[-1]
  alpha = None
  if channels in (2, 4):
    values, alpha = values[..., :-1], values[..., -1]
  if values.shape[-1] == 1:
    values = np.repeat(values, 3, axis=-1)
  if alpha is not None and float(alpha.min()) < 1.0:
    return _on_white(values, alpha), True
  return values, False


def _pillow_pixels(image) -> tuple[np.ndarray, bool]:
  """Float pixels in [0, 1] (before orientation) of an opened Pillow image; errors: ValueError."""
  mode = image.mode
  if mode.startswith("I;16"):
    return _to_rgb(np.asarray(image).astype(np.float32) / 65535.0)
  if mode == "I":
    a = np.asarray(image)
    if a.size and (a.min() < 0 or a.max() > 65535):
      raise ValueError(f"32-bit integer pixels outside 0..65535 (range {a.min()}..{a.max()}); "
                       "save the image as 8- or 16-bit")
    return _to_rgb(a.astype(np.float32) / 65535.0)
  if mode == "F":
    a = np.asarray(image, np.float32)
    if a.size and not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
      raise ValueError(f"floating-point pixels outside [0, 1] (range {np.nanmin(a):.4g}.."
                       f"{np.nanmax(a):.4g}); save the image as 8- or 16-bit")
    return _to_rgb(a)
  if mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  elif mode in ("LA", "La", "PA", "RGBa"):
    image = image.convert("RGBA" if mode != "LA" else "LA")
  elif mode not in ("L", "RGB", "RGBA"):
    image = image.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV
  return _to_rgb(np.asarray(image).astype(np.float32) / 255.0)


def read_photo(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS,
               min_side: int = MIN_SIDE) -> Photo:
  """The photo at `path` as a viewer shows it (module docstring).

  Raises:
    FileNotFoundError: `path` does not exist or is a folder.
    ValueError: not a readable image, an unsupported pixel format, more than `max_pixels`
      (non-JPEG), or a side under `min_side` pixels; the message names the file.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such file")
  if path.is_dir():
    raise FileNotFoundError(f"{path} is a folder, not an image file")
  notes = []
  try:
    with _no_pillow_size_limit(), Image.open(path) as image:
      width, height = image.size
      orientation = _orientation(image)
      scale = 1
      if width * height > max_pixels:
        _check_size(path, width, height, image.format, max_pixels)
        scale = math.ceil(math.sqrt(width * height / max_pixels))
        image.draft(image.mode, (math.ceil(width / scale), math.ceil(height / scale)))
      depth = _png_header(path) if image.format == "PNG" else None
      pixels = None
      if depth is not None and depth[0] == 16 and depth[1] in (2, 6):  # 16-bit RGB(A)
        pixels = _read_png16(path)
        if pixels is None:
          notes.append("16-bit colour PNG read at 8 bits (pip install pypng for full depth)")
        else:
          pixels, transparent = _to_rgb(pixels)
      if pixels is None:
        image.load()
        if scale > 1:  # the JPEG decoder reduced by at most 8; box-reduce what is left
          rest = math.ceil(math.sqrt(image.size[0] * image.size[1] / max_pixels))
          if rest > 1:
            image = image.reduce(rest)
          scale = width / image.size[0]
        pixels, transparent = _pillow_pixels(image)
        bits = 16 if image.mode.startswith("I;16") else 32 if image.mode in ("I", "F") else 8
      else:
        bits = 16
  except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
    raise ValueError(f"{path}: not a readable image ({error})") from error
  except ValueError as error:
    if str(path) in str(error):
      raise
    raise ValueError(f"{path}: {error}") from error
  if orientation in _ORIENT:
    pixels = apply_orientation(pixels, orientation)
    notes.append(f"EXIF orientation {orientation} applied (turned upright)")
  if orientation in (5, 6, 7, 8):
    width, height = height, width
  if transparent:
    notes.append("transparent pixels composited on white")
  if scale != 1:
    notes.append(f"{width}x{height} pixels ({width * height / 1e6:.1f} megapixels) read at "
                 f"1/{scale:g} scale ({pixels.shape[1]}x{pixels.shape[0]})")
  if min(pixels.shape[:2]) < min_side:
    raise ValueError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels is too small (need at "
                     f"least {min_side}x{min_side})")
  pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
  return Photo(pixels, path, (int(width), int(height)), float(scale), tuple(notes), bits)


def probe(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
  """(width, height) from the file's header, without decoding it: a cheap check that a file
  is an image `read_photo` will accept (size rule included) before any work starts.

  Raises:
    FileNotFoundError, ValueError: as `read_photo` (a corrupt body is found only on reading).
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such file")
  if path.is_dir():
    raise FileNotFoundError(f"{path} is a folder, not an image file")
  try:
    with _no_pillow_size_limit(), Image.open(path) as image:
      width, height = image.size
      fmt = image.format
  except (UnidentifiedImageError, OSError, SyntaxError) as error:
    raise ValueError(f"{path}: not a readable image ({error})") from error
  _check_size(path, width, height, fmt, max_pixels)
  return int(width), int(height)


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
  """(H, W) float32 {0, 1} mask from an image file: more than 50 % grey (on white) is inside.

  Args:
    path: any image `read_photo` reads (8- or 16-bit, grey or colour; colour is averaged).
    shape: the (H, W) the mask must have (e.g. the photos it belongs to), checked if given.

  Raises:
    FileNotFoundError, ValueError: as `read_photo`; a mask of another size than `shape`.
  """
  photo = read_photo(path, min_side=1)
  mask = (photo.pixels.mean(axis=-1) > 0.5).astype(np.float32)
  if shape is not None and mask.shape != tuple(shape):
    raise ValueError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but the images are "
                     f"{shape[1]}x{shape[0]}")
  return mask


__all__ = ["MAX_PIXELS", "MIN_SIDE", "Photo", "apply_orientation", "probe", "read_mask",
           "read_photo"]
