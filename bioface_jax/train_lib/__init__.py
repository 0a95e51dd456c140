"""The model-agnostic, data-parallel trainer.

A model provides a `Task` (init, train_step, make_batches; optionally eval and figures) and a
config; `train(task, config, workdir)` does the rest: a `('data',)` mesh over all devices
(`parallel`), Orbax checkpoints with automatic resume (`checkpoint`), JSONL + TensorBoard
metrics (`metrics`), a progress display (`progress`) and the non-finite-loss guard (`loop`); the model's side of the contract is `task.Task`.
"""

from __future__ import annotations

from bioface_jax.train_lib.checkpoint import Checkpointer
from bioface_jax.train_lib.checkpoint import DamagedCheckpointWarning
from bioface_jax.train_lib.checkpoint import NonFiniteStateError
from bioface_jax.train_lib.checkpoint import StateMismatchError
from bioface_jax.train_lib.checkpoint import load_state
from bioface_jax.train_lib.checkpoint import nonfinite_leaves
from bioface_jax.train_lib.loop import train
from bioface_jax.train_lib.task import LoopConfig
from bioface_jax.train_lib.task import NonFiniteLossError
from bioface_jax.train_lib.task import Task
from bioface_jax.train_lib.metrics import MetricWriter
from bioface_jax.train_lib.metrics import read_jsonl
from bioface_jax.train_lib.parallel import data_sharding
from bioface_jax.train_lib.parallel import make_mesh
from bioface_jax.train_lib.parallel import maybe_initialize_distributed
from bioface_jax.train_lib.parallel import replicate
from bioface_jax.train_lib.parallel import replicated_sharding
from bioface_jax.train_lib.parallel import shard_batch
from bioface_jax.train_lib.progress import Progress

__all__ = [
    "Checkpointer",
    "DamagedCheckpointWarning",
    "LoopConfig",
    "MetricWriter",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "Progress",
    "StateMismatchError",
    "Task",
    "data_sharding",
    "load_state",
    "make_mesh",
    "maybe_initialize_distributed",
    "nonfinite_leaves",
    "read_jsonl",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "train",
]
