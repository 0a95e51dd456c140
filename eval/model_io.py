"""A trained BioFaceNet for the evaluation commands (`eval.recovery`, `eval.iset_table1`).

A thin adapter over the library: `load_model` is ``pretrained.load("biofacenet", workdir)``
(training runs read-only, a damaged newest checkpoint skipped with a warning, or an inference
export) with the run's config as an ``ml_collections.ConfigDict``, and a clear error with a
training hint when there is no model; `Predictor` runs it in fixed-size batches
(`bioface_jax.photo.biofacenet_fit.outputs_in_batches`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from bioface_jax.photo.biofacenet_fit import OUTPUT_KEYS, RENDER_KEYS  # noqa: F401


class CheckpointNotFoundError(FileNotFoundError):
  """The work directory holds no BioFaceNet checkpoint."""


@dataclasses.dataclass
class Restored:
  """A restored BioFaceNet: parameters, model config, run config and checkpoint step."""
  params: Any
  batch_stats: Any
  model: Any
  config: Any
  step: int
  workdir: pathlib.Path
  pretrained: Any = None


def load_model(workdir: str | pathlib.Path, how_to_train: str | None = None) -> Restored:
  """The newest sound checkpoint of a training run directory, or an inference export.

  Raises:
    CheckpointNotFoundError: `workdir` has no ``checkpoints/<step>`` and is no inference
      export (``variables.msgpack``, `python -m train.export`); nothing is created.
    ValueError: a run or export of another model, or every checkpoint damaged.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(workdir)
  ckpt = workdir / "checkpoints"
  steps = [p for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []
  hint = how_to_train or ("python -m train.biofacenet --config train/configs/biofacenet.py "
                          f"--workdir {workdir}")
  if not steps and not (workdir / "variables.msgpack").is_file():
    raise CheckpointNotFoundError(f"no BioFaceNet checkpoint in {ckpt}; train one with: {hint}")
  try:
    model = pretrained.load("biofacenet", workdir)
  except FileNotFoundError as error:
    raise CheckpointNotFoundError(f"{error}; train one with: {hint}") from error
  return Restored(model.variables["params"], model.variables["batch_stats"], model.config,
                  ml_collections.ConfigDict(model.run_config or {}), int(model.step), workdir,
                  model)


class Predictor:
  """Runs a restored BioFaceNet (evaluation mode) on images in fixed-size jitted batches."""

  def __init__(self, restored: Restored, spectra, lut, batch_size: int = 32):
    self.restored, self.batch_size = restored, int(batch_size)
    self._assets = (spectra, lut)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """(N, H, W, 3) gamma-encoded sRGB in [0, 1] -> dict of NumPy outputs with N rows."""
    from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
    return biofacenet_fit.outputs_in_batches(self.restored.pretrained, images, self.batch_size,
                                             *self._assets)
