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

Damaged checkpoints. Orbax's atomic rename protects against a kill *during* a save, not
against files damaged afterwards (a truncated copy, a lost array file, a full disk). So once a
save has committed, this module writes `<step>/MANIFEST.bioface.json` (size and CRC-32 of
every file of the step, written to a temporary name and renamed, so it exists complete or
not at all). `latest_valid_step()` checks the newest checkpoints against their manifests;
a checkpoint without one (the process was killed between Orbax's commit and the manifest,
or an older checkpoint) is checked by restoring it in full and then gets its manifest. A
damaged checkpoint is moved to `<directory>/../damaged_checkpoints/<step>` (nothing is
deleted) with a `DamagedCheckpointWarning` naming it, and the previous sound checkpoint is
used instead; when none is left, the trainer says so and starts from step 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath


class NonFiniteStateError(FloatingPointError):
  """Raised when asked to checkpoint a state holding NaN or Inf values."""


class DamagedCheckpointWarning(UserWarning):
  """A checkpoint's files do not match its manifest or cannot be restored; it was set aside."""


class StateMismatchError(ValueError):
  """A checkpoint's stored state does not have the requested structure or shapes (typically
  a run of another model or of another configuration): the checkpoint is sound, the request
  is not."""


MANIFEST = "MANIFEST.bioface.json"


@contextlib.contextmanager
def _absl_level(level: int | None):
  """Sets the level of the absl logger (through which Orbax logs) for a block; None: unchanged."""
  logger = logging.getLogger("absl")
  previous = logger.level
  if level is not None:
    logger.setLevel(level)
  try:
    yield
  finally:
    logger.setLevel(previous)


def _crc32(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      crc = zlib.crc32(chunk, crc)
  return crc


def _list_files(step_dir: str) -> dict[str, str]:
  """{relative path: absolute path} of every file under `step_dir` except the manifest."""
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      full = os.path.join(root, name)
      rel = os.path.relpath(full, step_dir)
      if rel != MANIFEST and not rel.startswith(MANIFEST + "."):
        out[rel] = full
  return out


def write_manifest(step_dir: str) -> None:
  """Records size and CRC-32 of every file of a committed checkpoint (atomic: tmp + rename)."""
  files = {rel: {"size": os.path.getsize(full), "crc32": _crc32(full)}
           for rel, full in sorted(_list_files(step_dir).items())}
  tmp = os.path.join(step_dir, f"{MANIFEST}.tmp-{os.getpid()}")
  with open(tmp, "w") as f:
    json.dump({"files": files}, f, indent=0)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, MANIFEST))


def manifest_problems(step_dir: str) -> list[str] | None:
  """What is wrong with a checkpoint's files: [] if they match the manifest, None if no manifest.

  Args:
    step_dir: a checkpoint step directory (`<directory>/<step>`).

  Returns:
    None when there is no (readable) manifest; otherwise a list of problems (missing,
    truncated or changed files, each naming the file), empty when every file matches.
  """
  try:
    with open(os.path.join(step_dir, MANIFEST)) as f:
      expected = json.load(f)["files"]
  except (OSError, ValueError, KeyError):
    return None
  problems = []
  present = _list_files(step_dir)
  for rel, want in expected.items():
    full = present.get(rel)
    if full is None:
      problems.append(f"missing file {rel}")
    elif os.path.getsize(full) != want["size"]:
      problems.append(f"{rel} has {os.path.getsize(full)} bytes, expected {want['size']}")
    elif _crc32(full) != want["crc32"]:
      problems.append(f"{rel} has changed (CRC-32 mismatch)")
  return problems


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


def peek_meta(directory: str | os.PathLike) -> tuple[int, dict[str, Any]] | None:
  """(step, metadata) of the newest checkpoint whose metadata reads as JSON, or None.

  Read straight from the files (Orbax's `JsonSave` layout, `<step>/meta/metadata`), with no
  checkpoint manager: nothing is created or cleaned up, no JAX backend is started (so it is
  safe before `jax.distributed.initialize` and beside a run that is training). For a quick
  look (which model a run holds); restores go through `Checkpointer`.
  """
  directory = os.fspath(directory)
  try:
    steps = sorted((int(n) for n in os.listdir(directory) if n.isdigit()), reverse=True)
  except OSError:
    return None
  for step in steps:
    try:
      with open(os.path.join(directory, str(step), "meta", "metadata")) as f:
        meta = json.load(f)
    except (OSError, ValueError):
      continue
    if isinstance(meta, dict):
      return step, meta
  return None


def load_state(directory: str | os.PathLike, step: int | None = None,
               device: jax.Device | None = None) -> tuple[Any, dict[str, Any], int]:
  """Loads a checkpoint of another run without knowing its state's structure.

  For frozen sub-networks (e.g. a stage-2 model that uses a stage-1 network trained in its own
  work directory) and for inspection. Every array comes back whole on one device, whatever
  sharding it was saved with.

  Args:
    directory: a run's work directory (with `checkpoints/`) or its checkpoint directory.
    step: which checkpoint (default: the newest sound one; damaged ones are skipped with a
      warning and left in place: the other run is only read, never modified).
    device: where the arrays go (default: the first local device).

  Returns:
    `(state, meta, step)`: the saved pytree (dicts of `jax.Array`s), its JSON metadata
    (step, config, ...) and the step loaded.
  """
  directory = os.path.abspath(os.fspath(directory))
  if os.path.isdir(os.path.join(directory, "checkpoints")):
    directory = os.path.join(directory, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"load_state: no checkpoint directory at {directory}.")
  with Checkpointer(directory, async_save=False, read_only=True) as ckpt:
    if step is None:
      step = ckpt.latest_valid_step()
      if step is None:
        raise FileNotFoundError(f"load_state: no sound checkpoint in {directory}.")
    abstract = ckpt.abstract_state(step, device)
    state, meta = ckpt.restore(step, abstract)
  return state, meta, step


class Checkpointer:
  """Saves and restores `(state, meta)` checkpoints in one directory, keeping the newest few.

  Args:
    directory: the checkpoint directory (created if missing), e.g. `workdir/checkpoints`.
    max_to_keep: how many of the newest checkpoints to keep (older ones are deleted).
    async_save: write in a background thread (Orbax's default) so training continues while
      the files are written; `wait()` or `close()` blocks until the write is done.
    read_only: only read (inference): nothing is created, cleaned up or deleted, so a run that
      is still training in the directory is not disturbed.
  """

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3,
               async_save: bool = True, read_only: bool = False):
    if max_to_keep is not None and max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}.")
    self.directory = os.path.abspath(os.fspath(directory))
    self.read_only = read_only
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep,
        create=not read_only,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
        enable_async_checkpointing=async_save and not read_only,
    )
    with _absl_level(logging.ERROR if read_only else None):  # "read-only" notices: expected.
      self._manager = ocp.CheckpointManager(
          self.directory, options=options, item_names=("state", "meta"))
    self._manifested: set[int] = set()  # Steps whose manifest exists (written or seen).
    self.set_aside: list[tuple[int, str]] = []  # (step, new place) moved by latest_valid_step.

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
    self._finish_saves()  # Orbax would wait for the previous save here anyway.
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
    self._check_shapes(step, abstract)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def _check_shapes(self, step: int, abstract: Any) -> None:
    """Raises `StateMismatchError` naming the leaves whose stored shape differs from `abstract`'s.

    Checked from the checkpoint's metadata before Orbax restores anything: a failed Orbax
    restore leaves its asynchronous readers behind and reports one leaf in its own terms.
    Unreadable metadata skips the check (the restore itself then reports).
    """
    try:
      with ocp.StandardCheckpointer() as reader:
        info = reader.metadata(os.path.join(self.directory, str(step), "state")).item_metadata
      stored = {leaf.name: tuple(leaf.shape)
                for leaf in jax.tree.leaves(getattr(info, "tree", info))}
    except Exception:  # pylint: disable=broad-except
      return
    # Orbax names a leaf by its keys, attribute names and indices joined by '.'.
    wanted = {jax.tree_util.keystr(path, simple=True, separator="."): tuple(leaf.shape)
              for path, leaf in jax.tree_util.tree_leaves_with_path(abstract)}
    problems = [f"{k}: stored {stored[k]}, requested {v}" for k, v in wanted.items()
                if k in stored and stored[k] != v]
    problems += [f"{k}: not in the checkpoint" for k in wanted if k not in stored]
    problems += [f"{k}: stored but not requested" for k in stored if k not in wanted]
    if problems:
      raise StateMismatchError(
          f"checkpoint {step} in {self.directory} does not match the requested state: "
          + "; ".join(problems[:4])
          + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""))

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON metadata of checkpoint `step` alone (e.g. its config, to build a target)."""
    if step not in self._manager.all_steps():
      raise FileNotFoundError(
          f"No checkpoint for step {step} in {self.directory} (have {self.all_steps()}).")
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until any background save has finished (and re-raises its error, if any)."""
    self._finish_saves()

  def close(self) -> None:
    """Waits for pending saves and releases the manager's resources."""
    self._finish_saves()
    self._manager.close()

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _finish_saves(self) -> None:
    """Waits for the background save, then writes the manifests that are missing (process 0)."""
    self._manager.wait_until_finished()
    if jax.process_index() != 0:
      return
    for step in self._manager.all_steps():
      step_dir = self._step_dir(step)
      if step not in self._manifested and os.path.isdir(step_dir):
        if not os.path.exists(os.path.join(step_dir, MANIFEST)):
          write_manifest(step_dir)
        self._manifested.add(step)

  def abstract_state(self, step: int, device: jax.Device | None = None) -> Any:
    """The saved state's structure as `ShapeDtypeStruct`s placed whole on one device.

    Read from the checkpoint's metadata, so no model code is needed; pass it to `restore`.
    """
    sharding = jax.sharding.SingleDeviceSharding(device or jax.local_devices()[0])
    metadata = ocp.StandardCheckpointHandler().metadata(
        epath.Path(self._step_dir(step)) / "state")
    return jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding)
        if hasattr(m, "shape") and hasattr(m, "dtype") else m,
        getattr(metadata, "tree", metadata))

  def validate(self, step: int) -> list[str]:
    """Problems found in checkpoint `step` ([] = sound): manifest check, else a full restore.

    A checkpoint without a manifest (killed between Orbax's commit and the manifest) that
    restores completely is sound; it gets its manifest now (not in read-only mode).
    """
    step_dir = self._step_dir(step)
    problems = manifest_problems(step_dir)
    if problems is not None:
      return problems
    try:
      abstract = self.abstract_state(step)
      self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 - any failure to read means damaged.
      return [f"cannot be restored ({type(e).__name__}: {str(e)[:300]})"]
    if jax.process_index() == 0 and not self.read_only:
      write_manifest(step_dir)
    return []

  def latest_valid_step(self) -> int | None:
    """The newest checkpoint whose files are intact; damaged newer ones are set aside.

    Each damaged checkpoint is moved to `<directory>/../damaged_checkpoints/<step>[-time]`
    (so that its step can be saved again; nothing is deleted) with a
    `DamagedCheckpointWarning` naming it and saying which checkpoint is used instead, or that
    none is left. `set_aside` lists `(step, new location)` of the checkpoints moved. A
    read-only `Checkpointer` moves nothing: damaged checkpoints are skipped, with the warning,
    and left in place. In a multi-process run every process checks, process 0 decides and the
    others follow.

    Returns:
      The step to resume from, or None if no sound checkpoint is left.
    """
    # Every process checks (a restore may be collective in Orbax); process 0 alone moves
    # damaged checkpoints and writes manifests, and its choice is the one used.
    chosen, damaged = None, []
    for step in sorted(self._manager.all_steps(), reverse=True):
      problems = self.validate(step)
      if not problems:
        chosen = step
        break
      if jax.process_index() == 0:
        damaged.append((step, problems, None if self.read_only else self._set_aside(step)))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      chosen = int(multihost_utils.broadcast_one_to_all(
          np.int64(-1 if chosen is None else chosen)))
      chosen = None if chosen < 0 else chosen
      multihost_utils.sync_global_devices("bioface_latest_valid_step")
    self._manager.reload()
    outcome = (f"checkpoint {chosen} is used instead" if chosen is not None else
               f"no sound checkpoint is left in {self.directory}")
    for step, problems, aside in damaged:
      if aside is None:
        where = "it is left in place (read-only)"
      else:
        self.set_aside.append((step, aside))
        where = f"it was moved to {aside} (nothing was deleted)"
      warnings.warn(DamagedCheckpointWarning(
          f"checkpoint {self._step_dir(step)} is damaged ({'; '.join(problems[:5])}); {where} "
          f"and {outcome}."), stacklevel=2)
    return chosen

  def _set_aside(self, step: int) -> str:
    """Moves checkpoint `step` to `<directory>/../damaged_checkpoints/`; returns where."""
    step_dir = self._step_dir(step)
    aside_root = os.path.join(os.path.dirname(self.directory), "damaged_checkpoints")
    os.makedirs(aside_root, exist_ok=True)
    aside = os.path.join(aside_root, str(step))
    if os.path.exists(aside):
      aside = f"{aside}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    shutil.move(step_dir, aside)
    return aside

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
