"""What a model gives the trainer (`Task`), and what the trainer reads from a config.

`Task` is the whole model-specific interface of `train_lib.train`; `LoopConfig` lists the
config fields the loop itself uses; `NonFiniteLossError` is what the non-finite-loss guard
raises. Kept apart from the loop so a model author reads the contract without the machinery.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

Batch = Mapping[str, np.ndarray]
State = Any
Metrics = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Task:
  """What a model provides to the trainer. All functions see global batches.

  Attributes:
    init: `(rng, example_batch) -> state`. Builds the train state pytree (params, batch
      statistics, optimiser state, step counters, ...; every leaf an array). Jitted, output
      replicated. `example_batch` is the first (sharded) batch of the run.
    train_step: `(state, batch, rng) -> (state, metrics)`, pure; `rng` is a typed key
      (`jax.random.key`) different for every step. Jitted with the state and `rng`
      replicated, the batch sharded over `'data'` and the input state donated. `metrics` is
      a dict of scalars; entries whose name contains "loss" are checked for NaN/Inf.
    make_batches: `(start) -> iterator of dict-of-NumPy batches`, yielding batch numbers
      `start, start + 1, ...` of a deterministic stream (so resume continues it exactly).
      Each batch has `config.batch_size` rows (in a multi-process run: this process's
      `batch_size // process_count` rows).
    eval_step: optional `(state, batch) -> metrics` (jitted), averaged over
      `make_eval_batches()` every `config.eval_every_steps` and logged as `eval/<name>`.
    make_eval_batches: optional `() -> iterable of batches` for `eval_step`, or a dict
      `{set_name: iterable of batches}` for several eval sets (e.g. different numbers of
      images per sample), logged as `eval/<set_name>/<name>`. Batches may differ in shape
      between sets (each new shape compiles `eval_step` once); in a multi-process run each
      process yields its own `1 / process_count` of every batch's rows, like `make_batches`.
    make_figure: optional `(state, numpy_batch) -> image` where image is an (H, W, 3) array
      (uint8, or float in [0, 1]) or a matplotlib Figure; called every
      `config.figure_every_steps` on process 0 only, with the state copied to one local
      device (eager code may mix it with NumPy/local arrays) and that process's rows of the
      step's batch; saved to `workdir/figures/step_XXXXXX.png` and TensorBoard.

  Batches are dicts of arrays sharing a leading batch axis; the other axes are the model's
  (e.g. `(B, N, H, W, 3)` for N images per sample). Their shapes may change between steps;
  each new shape compiles `train_step` once.
  """

  init: Callable[[jax.Array, Batch], State]
  train_step: Callable[[State, Batch, jax.Array], tuple[State, Metrics]]
  make_batches: Callable[[int], Iterable[Batch]]
  eval_step: Callable[[State, Batch], Metrics] | None = None
  make_eval_batches: Callable[[], Iterable[Batch]] | None = None
  make_figure: Callable[[State, Batch], Any] | None = None


_REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """The config fields the loop reads (any other fields are ignored; a value of 0 = never).

  Attributes:
    num_train_steps: train until this step.
    batch_size: global batch size; must divide by the number of devices.
    seed: seeds the base RNG key.
    log_every_steps: write averaged metrics (JSONL + TensorBoard) every this many steps.
    checkpoint_every_steps: save a checkpoint every this many steps (one is always saved
      at the end).
    figure_every_steps: call `task.make_figure` every this many steps.
    eval_every_steps: run `task.eval_step` over `task.make_eval_batches()` every this many
      steps and at the end.
    max_to_keep: checkpoints kept on disk.
    async_checkpointing: write checkpoints in a background thread.
  """

  num_train_steps: int
  batch_size: int
  seed: int = 0
  log_every_steps: int = 50
  checkpoint_every_steps: int = 1000
  figure_every_steps: int = 0
  eval_every_steps: int = 0
  max_to_keep: int = 3
  async_checkpointing: bool = True

  @classmethod
  def from_config(cls, config: Any) -> LoopConfig:
    """Reads the fields from an `ml_collections.ConfigDict`, a dict or any attribute object."""
    values = {}
    for field in dataclasses.fields(cls):
      if isinstance(config, Mapping):
        value = config.get(field.name, _REQUIRED)
      else:
        value = getattr(config, field.name, _REQUIRED)
      if value is _REQUIRED:
        if field.default is dataclasses.MISSING:
          raise KeyError(f"train config is missing the required field '{field.name}'.")
        continue
      values[field.name] = bool(value) if field.type == "bool" else int(value)
    out = cls(**values)
    if out.num_train_steps < 0:
      raise ValueError(f"config.num_train_steps must be >= 0, got {out.num_train_steps}.")
    return out


class NonFiniteLossError(FloatingPointError):
  """Raised when a loss metric becomes NaN or Inf; nothing is checkpointed from that state.

  Attributes:
    step: the step whose loss was not finite.
    last_checkpoint_step: the newest checkpoint on disk (None if none).
  """

  def __init__(self, message: str, step: int, last_checkpoint_step: int | None):
    super().__init__(message)
    self.step = step
    self.last_checkpoint_step = last_checkpoint_step


def config_to_json(config: Any) -> Any:
  """A JSON-serialisable copy of `config` (ConfigDict, dataclass or dict; others as str)."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  elif dataclasses.is_dataclass(config) and not isinstance(config, type):
    config = dataclasses.asdict(config)
  return json.loads(json.dumps(config, default=str))
