"""A compact inference export: model variables (no optimiser state) + JSON metadata.

A training checkpoint holds the optimiser state too (Adam: twice the parameters), which is
needed to resume but not to predict. `save_inference` writes only the variables, stored as
float16 by default (half the size; the network computes in float32 after loading), to
``variables.msgpack`` beside ``meta.json``. Both are written under temporary names and renamed,
so a directory never holds a half-written export.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import serialization

VARIABLES = "variables.msgpack"
META = "meta.json"


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
  tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def save_inference(directory: str | os.PathLike, variables: dict[str, Any],
                   meta: dict[str, Any], dtype=np.float16) -> pathlib.Path:
  """Writes ``variables`` (a dict of pytrees of arrays) and ``meta`` to ``directory``.

  Raises:
    ValueError: a floating-point leaf is not finite, or does not fit in ``dtype``.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)

  def convert(path, leaf):
    array = np.asarray(leaf)
    if np.issubdtype(array.dtype, np.floating):
      if not np.all(np.isfinite(array)):
        raise ValueError(f"save_inference: {jax.tree_util.keystr(path)} is not finite")
      if dtype is not None and np.abs(array).max(initial=0.0) > np.finfo(dtype).max:
        raise ValueError(f"save_inference: {jax.tree_util.keystr(path)} overflows {dtype}")
      array = array.astype(dtype or array.dtype)
    return array

  host = jax.tree_util.tree_map_with_path(convert, jax.device_get(variables))
  _atomic_write(directory / VARIABLES, serialization.msgpack_serialize(host))
  _atomic_write(directory / META, json.dumps(meta, indent=1, sort_keys=True).encode())
  return directory


def load_inference(directory: str | os.PathLike, dtype=np.float32
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Reads an export: ``(variables with float leaves cast to dtype, meta)``.

  Raises:
    FileNotFoundError: a file of the export is missing.
    ValueError: a file is unreadable (named in the message).
  """
  directory = pathlib.Path(directory)
  for name in (VARIABLES, META):
    if not (directory / name).is_file():
      raise FileNotFoundError(f"no inference export in {directory}: {name} is missing")
  try:
    variables = serialization.msgpack_restore((directory / VARIABLES).read_bytes())
  except Exception as error:  # msgpack raises several unrelated types
    raise ValueError(f"{directory / VARIABLES}: not a readable export ({error})") from error
  try:
    meta = json.loads((directory / META).read_text())
  except json.JSONDecodeError as error:
    raise ValueError(f"{directory / META}: not valid JSON ({error})") from error
  cast = lambda x: x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x  # noqa: E731
  return jax.tree.map(cast, variables), meta


def has_export(directory: str | os.PathLike) -> bool:
  return (pathlib.Path(directory) / VARIABLES).is_file()


def restore_latest(workdir: str | os.PathLike, abstract_state: Callable[[Any], Any],
                   train_command: str, make_config: Callable[[dict], Any] = dict
                   ) -> tuple[Any, Any, int]:
  """The newest sound checkpoint of a training run, restored read-only for inference.

  Every model's `restore_for_inference` does the same three things: find the newest
  checkpoint, rebuild the state's structure from the run's stored config, restore into it.
  Only the middle step is model-specific, so the model passes it in. Nothing in the run is
  created, moved or cleaned up (a run still training there is not disturbed). A damaged
  checkpoint (files that do not match its manifest, or unreadable) is skipped with a
  `DamagedCheckpointWarning` naming it and the step used instead, as the trainer does.

  Args:
    workdir: a training run directory (checkpoints in ``workdir/checkpoints``).
    abstract_state: `(run config) -> pytree of arrays / ShapeDtypeStructs` of the saved state.
    train_command: how to make a run, for the error message (e.g. "python -m train.prnet").
    make_config: turns the stored JSON config into the object `abstract_state` expects
      (e.g. `ml_collections.ConfigDict`).

  Returns:
    `(state, run config, step)`.

  Raises:
    FileNotFoundError: no checkpoint in the run directory (the message says how to train).
    ValueError: every checkpoint is damaged (each named), or the stored state is not the one
      `abstract_state` describes (`StateMismatchError`: a run of another model).
  """
  import warnings  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  ckpt_dir = pathlib.Path(workdir) / "checkpoints"
  missing = FileNotFoundError(f"no checkpoint in {ckpt_dir}; train first with "
                              f"{train_command} --workdir {workdir}")
  if not ckpt_dir.is_dir():
    raise missing
  with ckpt_lib.Checkpointer(ckpt_dir, async_save=False, read_only=True) as checkpointer:
    steps = sorted(checkpointer.all_steps(), reverse=True)
    if not steps:
      raise missing
    skipped = []
    for step in steps:
      problems = ckpt_lib.manifest_problems(str(ckpt_dir / str(step)))
      if problems:
        skipped.append(f"{step} ({'; '.join(problems[:3])})")
        continue
      try:
        config = make_config(checkpointer.read_meta(step)["config"])
        target = abstract_state(config)
      except Exception as error:  # noqa: BLE001 - unreadable metadata means damaged
        skipped.append(f"{step} (metadata unreadable: {type(error).__name__}: {error})")
        continue
      try:
        state, _ = checkpointer.restore(step, target)
      except ckpt_lib.StateMismatchError:
        raise
      except Exception as error:  # noqa: BLE001 - any failure to read means damaged
        skipped.append(f"{step} ({type(error).__name__}: {str(error)[:200]})")
        continue
      if skipped:
        warnings.warn(ckpt_lib.DamagedCheckpointWarning(
            f"{ckpt_dir}: damaged checkpoint(s) {', '.join(skipped)} skipped (left in place); "
            f"using checkpoint {step}"), stacklevel=3)
      return state, config, int(step)
  raise ValueError(f"every checkpoint in {ckpt_dir} is damaged: {', '.join(skipped)}")
