"""Where trained models come from and how they are stored: runs, exports, the shipped models.

A model can be read from three kinds of directory:

* a **training run** (``checkpoints/<step>/`` written by `train_lib`): the newest sound
  checkpoint is restored read-only (nothing in the run is created, moved or cleaned up, so a
  run still training there is not disturbed). A damaged newest checkpoint (its files do not
  match their manifest, or it cannot be restored) is skipped with a
  `train_lib.DamagedCheckpointWarning` naming it and the step used instead, as the trainer
  does when it resumes;
* an **inference export** (``variables.msgpack`` + ``meta.json``, `save`): the variables in
  float16 or float32 and the metadata ``{"model": name, "model_config": {...}, "input_size":
  S, "step": ..., "config": run config or None, "source": ...}``. Exports written before the
  ``model`` key existed (BioFaceNet's first shipped model) are recognised by their config;
* **imported authors' weights** (`python -m train.import_weights`): exports like the above.

The shipped models are exports in ``bioface_jax/pretrained/shipped/<name>/`` (package data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from bioface_jax.pretrained import systems

SHIPPED = pathlib.Path(__file__).resolve().parent / "shipped"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Source:
  """A model read from disk: which system, its config and variables, and where it came from."""
  name: str
  model_config: Any
  variables: dict[str, Any]
  input_size: int
  step: int
  path: pathlib.Path
  kind: str                      # "run" or "export"
  run_config: dict[str, Any] | None
  meta: dict[str, Any]


def shipped_path(name: str) -> pathlib.Path:
  """The directory of the model that ships with the project for system `name`."""
  return SHIPPED / check_name(name)


def check_name(name: str) -> str:
  if name not in systems.SYSTEMS:
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(systems.NAMES)}")
  return name


# ----------------------------------------------------------------------------- reading


def _plain(tree: Any) -> Any:
  """ml_collections / nested mappings -> plain dicts (JSON-able)."""
  if hasattr(tree, "to_dict"):
    tree = tree.to_dict()
  if isinstance(tree, Mapping):
    return {k: _plain(v) for k, v in tree.items()}
  return tree


@contextlib.contextmanager
def _quiet_absl():
  """Orbax logs through absl that a read-only manager is read-only; callers need not see it."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _restore_run(ckpt_dir: pathlib.Path) -> tuple[dict[str, Any], dict[str, Any], int]:
  """(state, meta, step) of the newest sound checkpoint, read-only (module docstring)."""
  from bioface_jax.train_lib import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  with _quiet_absl(), ckpt_lib.Checkpointer(ckpt_dir, async_save=False, read_only=True) as ckpt:
    steps = sorted(ckpt.all_steps(), reverse=True)
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {ckpt_dir}")
    skipped = []
    for step in steps:
      problems = ckpt_lib.manifest_problems(str(ckpt_dir / str(step)))
      if problems:
        skipped.append(f"{step} ({'; '.join(problems[:3])})")
        continue
      try:
        state, meta = ckpt.restore(step, ckpt.abstract_state(step))
      except Exception as error:  # noqa: BLE001 - any failure to read means damaged
        skipped.append(f"{step} ({type(error).__name__}: {str(error)[:200]})")
        continue
      if skipped:
        warnings.warn(ckpt_lib.DamagedCheckpointWarning(
            f"{ckpt_dir}: damaged checkpoint(s) {', '.join(skipped)} skipped; using step "
            f"{step}"), stacklevel=4)
      return state, meta, int(step)
  raise ValueError(f"every checkpoint in {ckpt_dir} is damaged: {', '.join(skipped)}")


def _check_system(name: str, found: str, path: pathlib.Path) -> None:
  if found != name:
    raise ValueError(f"{path} holds a {found} model, not {name}; load it with "
                     f"pretrained.load({found!r}, ...) or give a {name} run or export")


def _read_run(name: str, path: pathlib.Path) -> Source:
  import jax  # pylint: disable=g-import-not-at-top
  system = systems.SYSTEMS[name]
  state, meta, step = _restore_run(path / "checkpoints")
  run_config = _plain(meta.get("config", {}))
  _check_system(name, systems.identify_run(run_config), path)
  model_config = system.model_config(run_config)
  variables = jax.tree.map(np.asarray, jax.device_get(system.variables(state, model_config)))
  return Source(name, model_config, variables, system.input_size(run_config), step, path, "run",
                run_config, dict(meta))


def _export_system(meta: Mapping[str, Any]) -> str:
  """The system of an export from its metadata (its ``model`` key, else its run config)."""
  return meta.get("model") or systems.identify_run(meta.get("config") or {})


def system_of(path: str | os.PathLike) -> str:
  """The system of the training run or export at `path`, from its metadata alone.

  Raises:
    FileNotFoundError: neither a run with a checkpoint nor an export.
    ValueError: its metadata names no known system, or is not valid JSON.
  """
  from bioface_jax.train_lib import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if export.has_export(path):
    return _export_system(json.loads((path / export.META).read_text()))
  if not (path / "checkpoints").is_dir():
    raise FileNotFoundError(f"{path} is not a training run (no checkpoints/)")
  with _quiet_absl(), ckpt_lib.Checkpointer(path / "checkpoints", async_save=False,
                                            read_only=True) as ckpt:
    steps = ckpt.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {path / 'checkpoints'}")
    return systems.identify_run(ckpt.read_meta(steps[-1]).get("config", {}))


def _read_export(name: str, path: pathlib.Path) -> Source:
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  system = systems.SYSTEMS[name]
  variables, meta = export.load_inference(path)
  run_config = meta.get("config")
  _check_system(name, _export_system(meta), path)
  try:
    if "model_config" in meta:
      model_config = systems.config_from_dict(system, meta["model_config"])
      input_size = int(meta["input_size"])
    else:  # an export from before the "model" key: built from its run config
      model_config = system.model_config(run_config)
      input_size = system.input_size(run_config)
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(f"{path / export.META}: not a {name} export ({error})") from error
  return Source(name, model_config, variables, input_size, int(meta.get("step", 0)), path,
                "export", run_config, meta)


def read(name: str, path: str | os.PathLike | None = None) -> Source:
  """Reads a model of system `name` from `path` (None: the shipped one).

  Raises:
    ValueError: unknown name, a directory of another system, a damaged or unreadable model.
    FileNotFoundError: nothing at `path`, or neither a run nor an export there.
  """
  check_name(name)
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  if path is None:
    path = shipped_path(name)
    if not export.has_export(path):
      raise FileNotFoundError(
          f"no shipped {name} model in this installation ({path}); train one with "
          f"{systems.TRAIN_COMMANDS[name]} --workdir DIR and load DIR")
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist")
  if not path.is_dir():
    raise FileNotFoundError(f"{path} is a file; give a training run directory or an export "
                            "directory")
  if (path / "checkpoints").is_dir():
    return _read_run(name, path)
  if export.has_export(path):
    return _read_export(name, path)
  raise FileNotFoundError(f"{path} holds no model: neither a training run (checkpoints/) nor "
                          f"an export ({export.VARIABLES}); train one with "
                          f"{systems.TRAIN_COMMANDS[name]} --workdir {path}")


# ----------------------------------------------------------------------------- writing


def save(directory: str | os.PathLike, name: str, variables: Mapping[str, Any],
         model_config: Any, *, input_size: int, step: int = 0,
         run_config: Mapping[str, Any] | None = None, source: str = "",
         extra_meta: Mapping[str, Any] | None = None, extra_files: Mapping[str, str] = (),
         overwrite: bool = False, dtype=np.float16) -> pathlib.Path:
  """Writes an inference export of system `name` that `read` (and `pretrained.load`) accepts.

  The export is assembled in a temporary directory beside `directory` and renamed into
  place, so `directory` never holds a half-written model; an existing one is replaced only
  with ``overwrite=True`` (and only once the new one is complete).

  Args:
    directory: the export directory to create.
    name: the system (`systems.NAMES`).
    variables: `{"params", "batch_stats"}` (SDPS-Net: `{part: {"params": ...}}`).
    model_config: the system's model config (SDPS-Net: `{part: SDPSConfig}`).
    input_size: side of the square images the model takes.
    step, run_config, source, extra_meta: recorded in ``meta.json``.
    extra_files: `{file name in the export: path to copy}` (e.g. the run's metrics.jsonl).
    overwrite: replace an existing export at `directory`.
    dtype: storage dtype of floating-point variables (float16 halves the size).

  Raises:
    FileExistsError: `directory` exists (and is not empty) without ``overwrite``.
    ValueError: a variable is not finite or does not fit in `dtype`.
  """
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  system = systems.SYSTEMS[check_name(name)]
  directory = pathlib.Path(directory).expanduser()
  if directory.exists() and not directory.is_dir():
    raise FileExistsError(f"{directory} is a file, not an export directory")
  if directory.is_dir() and any(directory.iterdir()) and not overwrite:
    raise FileExistsError(f"{directory} already exists and is not empty; choose another "
                          "directory or allow overwriting")
  directory.parent.mkdir(parents=True, exist_ok=True)
  meta = {"model": name, "format": FORMAT_VERSION, "step": int(step),
          "input_size": int(input_size),
          "model_config": systems.config_to_dict(system, model_config),
          "config": _plain(run_config) if run_config is not None else None,
          "source": source, **dict(extra_meta or {})}
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-",
                                          dir=directory.parent))
  os.chmod(staging, 0o755)
  try:
    export.save_inference(staging, dict(variables), meta, dtype=dtype)
    for target, origin in dict(extra_files).items():
      shutil.copyfile(origin, staging / target)
    json.loads((staging / export.META).read_text())  # written completely
    if directory.exists():
      old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
      os.replace(directory, old)
      os.replace(staging, directory)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(staging, directory)
  finally:
    if staging.exists():
      shutil.rmtree(staging, ignore_errors=True)
  return directory
