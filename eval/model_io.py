"""Restores a trained BioFaceNet from a run directory and runs it on batches of images.

Shared by the evaluation commands (`eval.recovery`, `eval.iset_table1`): `load_model` restores the
latest checkpoint (with a clear error and a training hint when there is none) and `Predictor`
runs the network in evaluation mode in fixed-size jitted batches, returning NumPy arrays.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

OUTPUT_KEYS = ("fmel", "fblood", "shading", "specular", "weights", "t", "b", "linear_input")
RENDER_KEYS = ("linear_srgb", "albedo_linear_srgb", "illuminant")


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


def load_model(workdir: str | pathlib.Path, how_to_train: str | None = None) -> Restored:
  """Restores the latest checkpoint of a training run directory, or an inference export.

  Raises:
    CheckpointNotFoundError: `workdir` has no ``checkpoints/<step>`` and is no inference
      export (``variables.msgpack``, `python -m train.export`); nothing is created.
  """
  workdir = pathlib.Path(workdir)
  ckpt = workdir / "checkpoints"
  steps = [p for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []
  if not steps and not (workdir / "variables.msgpack").is_file():
    hint = how_to_train or ("python -m train.biofacenet --config train/configs/biofacenet.py "
                            f"--workdir {workdir}")
    raise CheckpointNotFoundError(f"no BioFaceNet checkpoint in {ckpt}; train one with: {hint}")
  from train.biofacenet_task import restore_for_inference  # pylint: disable=g-import-not-at-top
  try:
    params, batch_stats, model, config, step = restore_for_inference(workdir)
  except FileNotFoundError as error:
    raise CheckpointNotFoundError(str(error)) from error
  return Restored(params, batch_stats, model, config, int(step), workdir)


class Predictor:
  """Runs a restored BioFaceNet (evaluation mode) on images in fixed-size jitted batches."""

  def __init__(self, restored: Restored, spectra, lut, batch_size: int = 32):
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
    self.restored, self.batch_size = restored, int(batch_size)
    model = restored.model

    def run(params, batch_stats, image, spectra, lut):
      out = biofacenet.predict(params, batch_stats, image, model, spectra=spectra, lut=lut)
      return ({k: out[k] for k in OUTPUT_KEYS}
              | {k: out["render"][k] for k in RENDER_KEYS})

    self._run = jax.jit(run)
    self._args = (spectra, lut)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """(N, H, W, 3) gamma-encoded sRGB in [0, 1] -> dict of NumPy outputs with N rows."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    if not (np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1):
      raise ValueError("images must hold finite gamma-encoded sRGB values in [0, 1]")
    n, b = len(images), self.batch_size
    parts = []
    for start in range(0, n, b):
      chunk = images[start:start + b]
      pad = b - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
      out = self._run(self.restored.params, self.restored.batch_stats, chunk, *self._args)
      parts.append({k: np.asarray(v)[:b - pad] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
