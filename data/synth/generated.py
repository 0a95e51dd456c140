"""Synthetic faces generated on demand with the rows of the cached data set (`dataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import numpy as np

from data import nfe, nfe_writer
from data.synth.dataset import SCENE_TRUTH_KEYS, TRUTH_KEYS, make_generator


class GeneratedSubset:
  """Faces of a synthetic dataset generated when first asked for, instead of read from disk.

  The same `get` and `truth` rows as the `SynthSubset` of the cached dataset of `seed`,
  `size` and `options` (a face is a pure function of ``(seed, index)``, and the rows pass
  through the same float32 storage encoding), for callers that need a few faces of a large
  dataset that is not cached: evaluating 64 held-out faces then generates those 64, not all
  4,096. Nothing is written; generated faces are kept in memory.

  Args:
    indices: the global face indices this view covers, in order (local row i = indices[i]).
    size, seed, options, world: the dataset's (`write_dataset`).
    batch_size: faces per render call.
    progress: a stream told how many faces are generated, or None.
  """

  def __init__(self, indices: Sequence[int] | np.ndarray, size: int, seed: int,
               options, *, batch_size: int = 32, progress: TextIO | None = None,
               world: str = "faces"):
    self.indices = np.asarray(indices, np.int64)
    self.size, self.seed, self.options, self.world = int(size), int(seed), options, world
    self.batch_size, self.progress = batch_size, progress
    self.keys = TRUTH_KEYS + (SCENE_TRUTH_KEYS if world == "scenes" else ())
    self.directory = None
    self._rows: dict[int, dict[str, np.ndarray]] = {}
    self._generator = None

  def __len__(self) -> int:
    return int(self.indices.size)

  def _faces(self, local: Sequence[int] | np.ndarray) -> list[dict[str, np.ndarray]]:
    """The stored rows of local faces `local`, generating the missing ones."""
    wanted = self.indices[np.asarray(local, np.int64).reshape(-1)]
    missing = sorted(set(wanted.tolist()) - set(self._rows))
    if missing:
      if self._generator is None:
        self._generator = make_generator(self.world, self.size, self.seed, self.options,
                                         self.batch_size, 0)
      if self.progress is not None and not self._rows:  # Said once per view.
        print(f"generating synthetic {self.size}x{self.size} faces (seed {self.seed}) in "
              f"memory as they are read ({len(missing)} now)", file=self.progress, flush=True)
      for batch in self._generator.batches(missing):
        # Exactly what write_dataset stores: NFE rows (float32) and the truth arrays.
        inmc = nfe_writer.encode_inmc(batch["image"], batch["normals"], batch["mask"],
                                      batch["coord"]).astype(np.float32)
        lights = np.repeat(batch["sh"][:, None], 3, 1).astype(np.float32)
        for k, index in enumerate(batch["index"]):
          row = {key: np.asarray(batch[key][k]) for key in self.keys}
          row["_inmc"], row["_lights"] = inmc[k], lights[k]
          self._rows[int(index)] = row
    return [self._rows[int(i)] for i in wanted]

  def get(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Examples of local rows `indices`, as `data.nfe.NFEDataset.get` returns them (with the
    true diffuse shading as the target in the scene world, as `SynthSubset.get`)."""
    faces = self._faces(indices)
    batch = nfe.decode_inmc(np.stack([f["_inmc"] for f in faces]),
                            np.stack([f["_lights"] for f in faces]))
    if self.world == "scenes":
      batch["shading"] = np.stack([f["diffuse"] for f in faces]).astype(np.float32)
    return batch

  def truth(self, indices: Sequence[int] | np.ndarray,
            keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Ground truth of local rows `indices` (see `load_truth`)."""
    keys = TRUTH_KEYS if keys is None else tuple(keys)
    bad = [k for k in keys if k not in self.keys]
    if bad:
      raise KeyError(f"unknown truth keys {bad}; available: {self.keys}")
    faces = self._faces(indices)
    return {k: np.stack([f[k] for f in faces]) for k in keys}
