"""DiLiGenT main-dataset reader (and a writer of the same layout for test fixtures).

Layout (Shi et al., DiLiGenT; sdps-spec.md §8): per object ``<root>/<obj>PNG/`` (also
``<root>/pmsData/<obj>PNG/`` or ``<root>/<obj>/``) holding ``filenames.txt`` (one image name per
line, in light order), ``light_directions.txt`` (rows ``x y z``), ``light_intensities.txt``
(rows ``r g b``), ``mask.png`` (8-bit; channel 0 > 127 is the object), ``Normal_gt.mat`` (key
``Normal_gt``, H×W×3, renormalised here) and the 16-bit RGB PNG images. The directions are in
the SDPS frame (x right, y up, z toward the camera).

16-bit PNGs are decoded with `pypng` (Pillow keeps only the high byte of 48-bit RGB).
``emulate_8bit=True`` returns (v16 >> 8)/255, how the original loaders effectively read them;
False returns v16/65535. ``crop=True`` applies SDPS's crop protocol (`crop_box`).
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

OBJECTS = ("ball", "cat", "pot1", "bear", "pot2", "buddha", "goblet", "reading", "cow", "harvest")
FILES = ("filenames.txt", "light_directions.txt", "light_intensities.txt", "mask.png",
         "Normal_gt.mat")


def _png():
  try:
    import png  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("reading DiLiGenT's 16-bit PNGs needs pypng: pip install pypng "
                      "(or pip install 'bioface_jax[diligent]')") from e
  return png


def read_png(path: pathlib.Path) -> np.ndarray:
  """A PNG as an (H, W, C) integer array at its stored bit depth (8 or 16).

  Raises:
    ValueError: the file is not a readable PNG (the message names it).
  """
  png = _png()
  try:
    with open(path, "rb") as f:
      width, height, rows, info = png.Reader(file=f).asDirect()
      dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
      data = np.vstack([np.asarray(r, dtype) for r in rows])
    return data.reshape(height, width, info["planes"])
  except (png.Error, ValueError, EOFError) as error:
    raise ValueError(f"{path}: not a readable PNG ({error})") from error


def write_png(path: pathlib.Path, image: np.ndarray) -> None:
  """Writes an (H, W, C) uint8 or uint16 array (C = 1 or 3) as a PNG of that bit depth."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  h, w, c = image.shape
  depth = 16 if image.dtype == np.uint16 else 8
  writer = _png().Writer(w, h, greyscale=c == 1, bitdepth=depth)
  with open(path, "wb") as f:
    writer.write(f, image.reshape(h, w * c))


def object_dir(root: str | pathlib.Path, name: str) -> pathlib.Path:
  root = pathlib.Path(root)
  for cand in (root / f"{name}PNG", root / "pmsData" / f"{name}PNG", root / name):
    if cand.is_dir():
      return cand
  raise FileNotFoundError(f"DiLiGenT object {name!r} not found under {root} (looked for "
                          f"{name}PNG/, pmsData/{name}PNG/, {name}/)")


def _read_table(path: pathlib.Path, n: int | None, cols: int, what: str) -> np.ndarray:
  """A text table of `n` rows of `cols` numbers (`what` names them); errors name the file."""
  want = f"{n if n is not None else 'N'} rows of {cols} numbers ({what}), one per image"
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # numpy warns about an empty file; the check below reports
      a = np.loadtxt(path, dtype=np.float64, ndmin=2)
  except ValueError as error:  # text that is not numbers, rows of different lengths
    raise ValueError(f"{path}: expected {want}; {error}") from error
  if a.size == 0 or a.shape[1] != cols or (n is not None and a.shape[0] != n):
    got = "no numbers" if a.size == 0 else f"{a.shape[0]} rows of {a.shape[1]} numbers"
    raise ValueError(f"{path}: expected {want}, got {got}")
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{path} holds non-finite values")
  return a


def crop_box(mask: np.ndarray) -> tuple[int, int, int, int]:
  """SDPS's crop (cropDiLiGenTData.py): (top, left, h, w) from the mask bounding box
  (t, b, l, r): h = b − t + 30, w = r − l + 30 (SDPS's formula, no +1), t, l moved up/left by
  15 (≥ 0), h, w rounded up to multiples of 4."""
  rows, cols = np.nonzero(mask)
  if rows.size == 0:
    raise ValueError("the mask is empty: cannot crop")
  t, b, l, r = rows.min(), rows.max(), cols.min(), cols.max()
  h, w = b - t + 30, r - l + 30
  t, l = max(0, t - 15), max(0, l - 15)
  return int(t), int(l), int(-(-h // 4) * 4), int(-(-w // 4) * 4)


def _crop(a: np.ndarray, box, axis0: int) -> np.ndarray:
  t, l, h, w = box
  sl = [slice(None)] * a.ndim
  sl[axis0], sl[axis0 + 1] = slice(t, t + h), slice(l, l + w)
  a = a[tuple(sl)]
  pad = [(0, 0)] * a.ndim
  pad[axis0] = (0, (-a.shape[axis0]) % 4)
  pad[axis0 + 1] = (0, (-a.shape[axis0 + 1]) % 4)
  return np.pad(a, pad)


def load_object(root: str | pathlib.Path, name: str, *, crop: bool = True,
                emulate_8bit: bool = True) -> dict[str, np.ndarray]:
  """One DiLiGenT object: images (N, H, W, 3) float32 × mask, mask (H, W) float32,
  normals (H, W, 3), lights (N, 3), intensities (N, 3), names (N,)."""
  d = object_dir(root, name)
  missing = [f for f in FILES if not (d / f).is_file()]
  if missing:
    raise FileNotFoundError(f"DiLiGenT object {d} is missing {', '.join(missing)}")
  try:
    names = [s.strip() for s in (d / "filenames.txt").read_text().splitlines() if s.strip()]
  except UnicodeDecodeError as error:
    raise ValueError(f"{d / 'filenames.txt'}: not a text file of image names ({error})") from error
  if not names:
    raise ValueError(f"{d / 'filenames.txt'} lists no image")
  lights = _read_table(d / "light_directions.txt", len(names), 3, "x y z")
  ints = _read_table(d / "light_intensities.txt", len(names), 3, "r g b")
  norm = np.linalg.norm(lights, axis=1)
  bad = np.flatnonzero((np.abs(norm - 1) > 1e-3) | (lights[:, 2] <= 0))
  if bad.size:
    raise ValueError(f"{d / 'light_directions.txt'}: directions must be unit with z > 0 "
                     f"(row {bad[0] + 1}: {lights[bad[0]].tolist()})")
  bad = np.flatnonzero(np.any(ints <= 0, axis=1))
  if bad.size:
    raise ValueError(f"{d / 'light_intensities.txt'}: intensities must be positive (row "
                     f"{bad[0] + 1}: {ints[bad[0]].tolist()})")
  mask_png = read_png(d / "mask.png")
  mask = mask_png[..., 0] > (127 if mask_png.dtype == np.uint8 else 127 * 257)
  if not mask.any():
    raise ValueError(f"{d / 'mask.png'}: the mask is empty (no pixel above 127 in channel 0)")
  from data import matfile  # pylint: disable=g-import-not-at-top
  try:
    mat, _ = matfile.load_mat(d / "Normal_gt.mat")
  except matfile.READ_ERRORS as error:
    raise ValueError(f"{d / 'Normal_gt.mat'}: not a readable MAT-file ({error})") from error
  if "Normal_gt" not in mat:
    raise ValueError(f"{d / 'Normal_gt.mat'} has no variable 'Normal_gt' (has {sorted(mat)})")
  normals = np.asarray(mat["Normal_gt"], np.float64)
  if normals.shape != mask.shape + (3,):
    raise ValueError(f"{d / 'mask.png'} is {mask.shape[0]}x{mask.shape[1]} but Normal_gt in "
                     f"{d / 'Normal_gt.mat'} has shape {normals.shape}; they must agree "
                     "(H x W and H x W x 3)")
  if not np.all(np.isfinite(normals)):
    raise ValueError(f"{d / 'Normal_gt.mat'}: Normal_gt holds non-finite values")
  nn = np.linalg.norm(normals, axis=-1, keepdims=True)
  normals = np.where((nn > 0) & mask[..., None], normals / np.where(nn > 0, nn, 1), 0)
  images = []
  for fname in names:
    p = d / fname
    if not p.is_file():
      raise FileNotFoundError(f"DiLiGenT image {p} (listed in filenames.txt) is missing")
    v = read_png(p)
    if v.shape[:2] != mask.shape or v.shape[2] < 3:
      raise ValueError(f"{p}: image is {v.shape}, expected {mask.shape + (3,)}")
    v = v[..., :3]
    if v.dtype == np.uint16:
      v = (v >> 8).astype(np.float32) / 255.0 if emulate_8bit else v.astype(np.float32) / 65535.0
    else:
      v = v.astype(np.float32) / 255.0
    images.append(v * mask[..., None])
  images = np.stack(images)
  mask_f = mask.astype(np.float32)
  if crop:
    box = crop_box(mask)
    images, mask_f, normals = _crop(images, box, 1), _crop(mask_f, box, 0), _crop(normals, box, 0)
  return {"images": images.astype(np.float32), "mask": mask_f,
          "normals": normals.astype(np.float32), "lights": lights.astype(np.float32),
          "intensities": ints.astype(np.float32), "names": np.asarray(names)}


def write_object(root: str | pathlib.Path, name: str, images16: np.ndarray, mask: np.ndarray,
                 normals: np.ndarray, lights: np.ndarray, intensities: np.ndarray) -> pathlib.Path:
  """Writes one object in the exact DiLiGenT layout (16-bit PNGs, v5 .mat): test fixtures."""
  from data import matfile  # pylint: disable=g-import-not-at-top
  d = pathlib.Path(root) / f"{name}PNG"
  d.mkdir(parents=True, exist_ok=True)
  names = [f"{i + 1:03d}.png" for i in range(len(images16))]
  for fname, im in zip(names, images16):
    write_png(d / fname, np.asarray(im, np.uint16))
  (d / "filenames.txt").write_text("\n".join(names) + "\n")
  np.savetxt(d / "light_directions.txt", lights, fmt="%.6f")
  np.savetxt(d / "light_intensities.txt", intensities, fmt="%.6f")
  write_png(d / "mask.png", (np.asarray(mask) > 0).astype(np.uint8)[..., None].repeat(3, -1) * 255)
  matfile.save_mat(d / "Normal_gt.mat", {"Normal_gt": np.asarray(normals, np.float64)})
  return d
