"""CelebA aligned images + face-parsing label maps from the manual directory, without TensorFlow.

Layout of the directory (TFDS ``celeb_a``'s files plus the authors' masks):

* ``img_align_celeba.zip`` holding ``img_align_celeba/<id>.jpg`` (or that directory unzipped);
* ``list_eval_partition.txt``: lines ``<id>.jpg <0|1|2>`` (0 train, 1 validation, 2 test);
* ``mask_faceparsing.zip`` holding ``mask_faceparsing/<id>.png`` (or that directory): uint8
  face-parsing.PyTorch label maps (0..18) at any resolution, covering the full frame.

`read_partition` / `pair_files` are shared with the TFDS builder; `DirectSplit` reads one split
behind the `data.pipeline.Dataset` protocol and applies the authors' preprocessing
(`data.face_masks.preprocess`). Every error names the file and the problem.
"""

from __future__ import annotations

import io
import os
import pathlib
import zipfile

import numpy as np
from PIL import Image

from data import face_masks

PARTITION_FILE = "list_eval_partition.txt"
IMAGES = "img_align_celeba"
MASKS = "mask_faceparsing"
SPLITS = {"0": "train", "1": "validation", "2": "test"}


def read_partition(path: str | os.PathLike) -> dict[str, list[str]]:
  """{"train": [ids], "validation": [...], "test": [...]} from ``list_eval_partition.txt``."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"missing split file {path} (CelebA's {PARTITION_FILE}); put "
                            "it in the manual directory")
  out = {name: [] for name in SPLITS.values()}
  for number, line in enumerate(path.read_text().splitlines(), 1):
    if not line.strip():
      continue
    parts = line.split()
    if len(parts) != 2 or parts[1] not in SPLITS or not parts[0].endswith(".jpg"):
      raise ValueError(f"{path}:{number}: expected '<id>.jpg <0|1|2>', got {line!r}")
    out[SPLITS[parts[1]]].append(parts[0][:-4])
  return out


class _Source:
  """Files <member>/<id>.<ext> in ``<root>/<member>.zip`` or ``<root>/<member>/``."""

  def __init__(self, root: pathlib.Path, member: str, ext: str):
    self.zip_path, self.dir_path, self.member, self.ext = (root / f"{member}.zip",
                                                           root / member, member, ext)
    self._zip = None
    if self.zip_path.is_file():
      try:
        self._zip = zipfile.ZipFile(self.zip_path)
      except zipfile.BadZipFile as error:
        raise ValueError(f"{self.zip_path}: not a readable zip file ({error})") from error
      names = self._zip.namelist()
      self.ids = {pathlib.PurePosixPath(n).stem for n in names if n.endswith(f".{ext}")}
    elif self.dir_path.is_dir():
      self.ids = {p.stem for p in self.dir_path.glob(f"*.{ext}")}
    else:
      raise FileNotFoundError(f"missing {self.zip_path} (or the directory {self.dir_path})")

  def name(self, ident: str) -> str:
    if self._zip is not None:
      return f"{self.zip_path}:{self.member}/{ident}.{self.ext}"
    return str(self.dir_path / f"{ident}.{self.ext}")

  def read(self, ident: str) -> bytes:
    if self._zip is not None:
      return self._zip.read(f"{self.member}/{ident}.{self.ext}")
    return (self.dir_path / f"{ident}.{self.ext}").read_bytes()


def decode_image(data: bytes, source: str) -> np.ndarray:
  """JPEG bytes -> (H, W, 3) uint8 RGB; ValueError naming `source` if corrupt."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      return np.asarray(im.convert("RGB"))
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise ValueError(f"{source}: corrupt or unreadable image ({error})") from error


def decode_labels(data: bytes, source: str) -> np.ndarray:
  """PNG bytes -> (H, W) uint8 label map in 0..18; ValueError naming `source` otherwise."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      if im.mode not in ("L", "P"):
        raise ValueError(f"mode {im.mode}, expected a single-channel (L or P) label PNG")
      labels = np.asarray(im)
  except (OSError, ValueError) as error:
    raise ValueError(f"{source}: not a face-parsing label map ({error})") from error
  face_masks.labels_to_mask(labels, source=source)  # range check
  return labels.astype(np.uint8)


def pair_files(manual_dir: str | os.PathLike):
  """(partition, image source, mask source, missing-mask counts per split)."""
  root = pathlib.Path(manual_dir)
  partition = read_partition(root / PARTITION_FILE)
  images, masks = _Source(root, IMAGES, "jpg"), _Source(root, MASKS, "png")
  missing = {}
  for split, ids in partition.items():
    absent = [i for i in ids if i not in images.ids]
    if absent:
      raise FileNotFoundError(f"{len(absent)} {split} images listed in {root / PARTITION_FILE} "
                              f"are missing, e.g. {images.name(absent[0])}")
    missing[split] = sum(i not in masks.ids for i in ids)
    partition[split] = [i for i in ids if i in masks.ids]
  return partition, images, masks, missing


class DirectSplit:
  """One split as a `data.pipeline.Dataset`: {"image" (s, s, 3), "mask" (s, s)} float32.

  Images without a mask are skipped (counted in `missing_masks`).
  """

  def __init__(self, manual_dir: str | os.PathLike, split: str, size: int):
    partition, self._images, self._masks, missing = pair_files(manual_dir)
    if split not in partition:
      raise ValueError(f"unknown split {split!r}; choose one of {sorted(partition)}")
    self.ids, self.size, self.missing_masks = partition[split], int(size), missing[split]

  def __len__(self) -> int:
    return len(self.ids)

  def example(self, k: int) -> tuple[np.ndarray, np.ndarray]:
    ident = self.ids[k]
    image = decode_image(self._images.read(ident), self._images.name(ident))
    labels = decode_labels(self._masks.read(ident), self._masks.name(ident))
    return face_masks.preprocess(image, labels, self.size, source=self._images.name(ident))

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    pairs = [self.example(int(k)) for k in np.asarray(indices).reshape(-1)]
    return {"image": np.stack([p[0] for p in pairs]), "mask": np.stack([p[1] for p in pairs])}


def write_fake_manual_dir(root: str | os.PathLike, ids_per_split=(3, 2, 2), *,
                          image_size=(218, 178), mask_size=64, missing_masks: int = 1,
                          seed: int = 0) -> pathlib.Path:
  """Writes a tiny manual directory in exactly the real layout (for tests and the TFDS fake
  data): random JPEGs in img_align_celeba.zip, label PNGs in mask_faceparsing.zip, and the
  partition file; the last `missing_masks` train images get no mask."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  lines, ident = [], 0
  with zipfile.ZipFile(root / f"{IMAGES}.zip", "w") as zi, \
       zipfile.ZipFile(root / f"{MASKS}.zip", "w") as zm:
    for split, count in enumerate(ids_per_split):
      for k in range(count):
        ident += 1
        name = f"{ident:06d}"
        lines.append(f"{name}.jpg {split}")
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, image_size + (3,), np.uint8)).save(buf, "JPEG")
        zi.writestr(f"{IMAGES}/{name}.jpg", buf.getvalue())
        if split == 0 and k >= count - missing_masks:
          continue
        labels = np.zeros((mask_size, mask_size), np.uint8)
        labels[mask_size // 4:3 * mask_size // 4, mask_size // 4:3 * mask_size // 4] = 1
        labels[: mask_size // 5] = 17
        labels[-mask_size // 6:] = 16
        buf = io.BytesIO()
        Image.fromarray(labels, "L").save(buf, "PNG")
        zm.writestr(f"{MASKS}/{name}.png", buf.getvalue())
  (root / PARTITION_FILE).write_text("\n".join(lines) + "\n")
  return root
