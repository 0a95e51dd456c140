"""Checkpoints: one thin wrapper around the Orbax V0 `CheckpointManager`.

Every checkpoint is a step directory `<directory>/<step>/` with two items: `state` (the train
state pytree, saved with `StandardSave`) and `meta` (a small JSON dict: step, RNG key, data
position, config). Keeping all Orbax calls in this module means a move to the Orbax V1 API
touches one file.

Atomicity comes from Orbax: a checkpoint is written into `<step>.orbax-checkpoint-tmp-*` and
renamed to `<step>` only when complete (or marked with `commit_success.txt` on filesystems
without atomic rename). A process killed mid-save leaves a temporary directory that
`latest_step()` ignores and that the next `Checkpointer` deletes, so the previous checkpoint
stays the one that is restored (tested in tests/test_train_lib.py).

A state with a non-finite leaf is refused (`NonFiniteStateError` naming the leaf path): a
NaN checkpoint would make every resume start from garbage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class NonFiniteStateError(FloatingPointError):
  """Raised when asked to checkpoint a state holding NaN or Inf values."""


def nonfinite_leaves(tree: Any) -> list[str]:
  """Paths (as `jax.tree_util.keystr`) of the floating-point leaves that hold NaN or Inf.

  Args:
    tree: a pytree of arrays (device or host).

  Returns:
    The offending leaf paths, empty if every floating-point leaf is finite.
  """
  paths, arrays = [], []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.inexact):
      paths.append(jax.tree_util.keystr(path))
      arrays.append(leaf)
  if not arrays:
    return []
  finite = np.asarray(jax.device_get(_all_finite(arrays)))
  return [p for p, ok in zip(paths, finite) if not ok]


@jax.jit
def _all_finite(arrays: list[jax.Array]) -> jax.Array:
  """One boolean per array: are all its entries finite? (One compiled call per tree.)"""
  return jnp.stack([jnp.all(jnp.isfinite(x)) for x in arrays])


class Checkpointer:
  """Saves and restores `(state, meta)` checkpoints in one directory, keeping the newest few.

  Args:
    directory: the checkpoint directory (created if missing), e.g. `workdir/checkpoints`.
    max_to_keep: how many of the newest checkpoints to keep (older ones are deleted).
    async_save: write in a background thread (Orbax's default) so training continues while
      the files are written; `wait()` or `close()` blocks until the write is done.
  """

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3,
               async_save: bool = True):
    if max_to_keep is not None and max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}.")
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None if there is none."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """The steps of every complete checkpoint, ascending."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> bool:
    """Saves `state` and the JSON-serialisable `meta` as checkpoint `step`.

    Args:
      step: the number of completed training steps the state corresponds to.
      state: the train state pytree (arrays; replicated or sharded `jax.Array`s are fine).
      meta: a JSON-serialisable dict (step, RNG key data, data position, config, ...).

    Returns:
      True if written, False if a checkpoint for `step` already exists (nothing is written).

    Raises:
      NonFiniteStateError: if any floating-point leaf holds NaN or Inf.
    """
    bad = nonfinite_leaves(state)
    if bad:
      raise NonFiniteStateError(
          f"Refusing to save checkpoint {step} in {self.directory}: non-finite values in "
          f"{', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}.")
    if step in self._manager.all_steps():
      return False
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(dict(meta))),
        force=True)

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores checkpoint `step` into the structure, shapes, dtypes and shardings of `target`.

    Args:
      step: which checkpoint (see `latest_step()`).
      target: a pytree of arrays or `jax.ShapeDtypeStruct`s; give jax leaves a `sharding`
        (e.g. `jax.eval_shape` output with the replicated sharding attached) to restore
        straight onto the devices; NumPy leaves restore onto the default device.

    Returns:
      `(state, meta)`.
    """
    if step not in self._manager.all_steps():
      raise FileNotFoundError(
          f"No checkpoint for step {step} in {self.directory} (have {self.all_steps()}).")
    target = jax.tree.map(
        lambda x: np.asarray(x) if isinstance(x, (np.generic, int, float)) else x, target)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON metadata of checkpoint `step` alone (e.g. its config, to build a target)."""
    if step not in self._manager.all_steps():
      raise FileNotFoundError(
          f"No checkpoint for step {step} in {self.directory} (have {self.all_steps()}).")
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until any background save has finished (and re-raises its error, if any)."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager's resources."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
