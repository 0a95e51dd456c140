"""CelebA + face-parsing masks for the face VAE: a TFDS builder (`builder`, optional extra
``tfds``) and a TensorFlow-free reader of the same manual directory (`reader`).

`load_splits(size)` reads the prepared TFDS dataset (``tfds.data_source``, array_record) and
returns (train, validation, test) objects behind the `data.pipeline.Dataset` protocol with the
authors' preprocessing; `reader.DirectSplit(manual_dir, split, size)` needs no TensorFlow.
"""

from __future__ import annotations

import numpy as np

from data import face_masks

NAME = "celeba_faceparsing"


class TFDSSplit:
  """A `tfds.data_source` split -> {"image", "mask"} float32 at the model size."""

  def __init__(self, source, size: int, split: str):
    self.source, self.size, self.split = source, int(size), split

  def __len__(self) -> int:
    return len(self.source)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    pairs = []
    for k in np.asarray(indices).reshape(-1):
      ex = self.source[int(k)]
      ident = ex["id"].decode() if isinstance(ex["id"], bytes) else str(ex["id"])
      pairs.append(face_masks.preprocess(np.asarray(ex["image"]), np.asarray(ex["labels"])[..., 0],
                                         self.size, source=f"{NAME}/{self.split}/{ident}"))
    return {"image": np.stack([p[0] for p in pairs]), "mask": np.stack([p[1] for p in pairs])}


def load_splits(size: int, data_dir: str | None = None):
  """(train, validation, test) of the prepared ``celeba_faceparsing`` TFDS dataset."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("config.data.source='celeba' needs the optional extra: pip install "
                      "-e '.[tfds]'") from error
  from data.celeba_faceparsing import builder  # noqa: F401  pylint: disable=g-import-not-at-top
  return tuple(TFDSSplit(tfds.data_source(NAME, split=s, data_dir=data_dir), size, s)
               for s in ("train", "validation", "test"))
