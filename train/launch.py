"""The command line shared by every `python -m train.<model>` entry point.

Each `train/<model>.py` names its model, its config file and how to build its `Task`; this
module defines the flags (`--config FILE[:VARIANT]` with `--config.FIELD=VALUE` overrides,
`--workdir`) and runs the one trainer: multi-host initialisation when launched by SLURM/MPI or
with JAX_COORDINATOR_ADDRESS, SIGTERM (preemption) handled like Ctrl-C (checkpoint, then stop),
and clear exit codes (0 done, 1 non-finite loss, 2 a user mistake, 130 interrupted;
rerunning resumes).

User mistakes end in one line naming the problem, before any work: a missing config file, an
unknown variant, a config key that does not exist (``--config.num_train_step=5``: the valid
keys of that level are listed), a bad flag value, a ``--workdir`` that is a file or cannot be
written, a run directory of another model (`train_lib` reports the differing config fields).
``--help`` exits 0. ``BIOFACE_TRACEBACK=1`` shows the Python traceback instead of the line.
"""

from __future__ import annotations

import os

# Synthetic-data generation runs small NumPy matrix products on the host; multi-threaded BLAS
# makes them ~10x slower on a busy CPU (measured). JAX does not use NumPy's BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import difflib  # noqa: E402
import importlib.util  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from train import absl_app  # noqa: E402

FLAGS = flags.FLAGS
CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"


def define_flags(model: str, variant_help: str, argv: list[str] | None = None) -> None:
  """Defines `--config` (default `train/configs/<model>.py`) and `--workdir`.

  The config given on the command line (file, variant and ``--config.FIELD`` overrides) is
  checked first (`check_config_args`): ml_collections loads it while the flag is defined, and
  its own errors are tracebacks.

  Args:
    model: the model's name, as in `train/configs/<model>.py` and `runs/<model>_<variant>`.
    variant_help: how a variant is written for this model, e.g. "train/configs/prnet.py:smoke".
    argv: the command line to check (default `sys.argv`).
  """
  default = CONFIG_DIR / f"{model}.py"
  argv = sys.argv if argv is None else argv
  try:  # --flagfile=F contents are checked too, as ml_collections reads them.
    argv = FLAGS.read_flags_from_files(argv, force_gnu=False)
  except flags.Error as error:
    absl_app.fail(error)
  problem = check_config_args(argv, default)
  if problem:
    absl_app.fail(problem)
  config_flags.DEFINE_config_file(
      "config", str(default),
      f"Config file, optionally with a variant: {variant_help} (default: the file "
      f"train/configs/{model}.py of this checkout). Override any field with "
      "--config.FIELD=VALUE (e.g. --config.num_train_steps=100).")
  flags.DEFINE_string("workdir", None,
                      "Run directory for checkpoints, metrics and figures "
                      f"(default: runs/{model}_<variant>). Reusing it resumes the run.")
  absl_app.define_huge_pages_flag(note="Measured on the CPU trainers in docs/performance.md.")


def _config_spec(argv: list[str]) -> str | None:
  """The value of the last ``--config`` / ``--config=`` in `argv` (None if absent)."""
  spec = None
  for i, arg in enumerate(argv[1:], 1):
    if arg == "--":
      break
    m = re.fullmatch(r"--?config(=(.*))?", arg)
    if m:
      spec = m.group(2) if m.group(1) else (argv[i + 1] if i + 1 < len(argv) else "")
  return spec


def _overrides(argv: list[str]) -> list[str]:
  """The dotted field paths of the ``--config.FIELD[=VALUE]`` (and ``--noconfig.FIELD``) args."""
  out = []
  for arg in argv[1:]:
    if arg == "--":
      break
    m = re.match(r"--?(?:no)?config\.([^=]+)", arg)
    if m:
      out.append(m.group(1))
  return out


def load_config(spec: str) -> Any:
  """``FILE[:ARG]`` -> the config of ``FILE``'s ``get_config(ARG)``, as ml_collections does.

  Raises:
    FileNotFoundError: no such file. ValueError: the file has no `get_config`, or
    `get_config` refused ARG (its message lists the valid variants).
  """
  path, sep, arg = spec.partition(":")
  file = pathlib.Path(path).expanduser()
  if not file.is_file():
    configs = ", ".join(sorted(str(p.relative_to(CONFIG_DIR.parent.parent))
                               for p in CONFIG_DIR.glob("[!_]*.py")))
    raise FileNotFoundError(
        f"config file {path!r} not found{' (it is a directory)' if file.is_dir() else ''}; "
        f"the project's configs are {configs} (add :VARIANT to choose a variant)")
  module_spec = importlib.util.spec_from_file_location(f"_bioface_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as error:  # noqa: BLE001 - a user's config file may fail in any way
    raise ValueError(f"config file {path} cannot be loaded: {type(error).__name__}: "
                     f"{error}") from error
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path} defines no get_config()")
  try:
    return module.get_config(arg) if sep else module.get_config()
  except (ValueError, TypeError) as error:
    raise ValueError(f"--config {spec}: {absl_app.one_line(error)}") from error


def missing_field(config: Any, dotted: str, where: str) -> str | None:
  """Why ``--config.<dotted>`` names no field of `config` (None when it does)."""
  node, done = config, "config"
  for name in dotted.split("."):
    keys = list(node.keys()) if hasattr(node, "keys") else None
    if keys is None:
      return (f"--config.{dotted}: {done} is a value ({type(node).__name__}), not a group of "
              f"fields, in {where}")
    if name not in keys:
      close = difflib.get_close_matches(name, keys, n=1)
      hint = f"did you mean {done}.{close[0]}? " if close else ""
      return (f"--config.{dotted}: {done} has no field {name!r} in {where}; {hint}"
              f"its fields are {', '.join(sorted(keys))}")
    node, done = node[name], f"{done}.{name}"
  return None


def check_config_args(argv: list[str], default: pathlib.Path) -> str | None:
  """The first problem with the command line's config (file, variant, overrides), or None."""
  spec = _config_spec(argv)
  if spec is None:  # The default file, shown relative to the working directory when inside it.
    spec = os.path.relpath(default) if default.is_relative_to(pathlib.Path.cwd()) else str(default)
  if not spec:
    return "--config needs a value: FILE or FILE:VARIANT"
  try:
    config = load_config(spec)
  except (FileNotFoundError, ValueError) as error:
    return absl_app.one_line(error)
  for dotted in _overrides(argv):
    problem = missing_field(config, dotted, spec)
    if problem:
      return problem
  return None


def check_workdir(workdir: str) -> str | None:
  """Why `workdir` cannot hold a run (None when it can); creates it when missing."""
  path = pathlib.Path(workdir).expanduser()
  if path.exists() and not path.is_dir():
    return f"--workdir {workdir} is a file, not a directory; choose another --workdir"
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test_"):
      pass
  except OSError as error:
    return f"--workdir {workdir} cannot be written ({error.strerror or error})"
  return None


def stored_system(workdir: str | os.PathLike) -> tuple[str, int] | None:
  """(system, step) of the newest checkpoint in a run directory, read from its metadata file
  alone (`train_lib.checkpoint.peek_meta`: read-only, no JAX backend started); None when there
  is no readable checkpoint (the trainer and the loaders report damaged ones)."""
  ckpt_dir = pathlib.Path(workdir).expanduser() / "checkpoints"
  if not ckpt_dir.is_dir() or not any(p.name.isdigit() for p in ckpt_dir.iterdir()):
    return None  # (checked first: the imports below load JAX)
  from bioface_jax.pretrained import systems  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import checkpoint  # pylint: disable=g-import-not-at-top
  found = checkpoint.peek_meta(ckpt_dir)
  if found is None:
    return None
  try:
    return systems.identify_run(found[1].get("config") or {}), found[0]
  except ValueError:  # a config of none of the systems: reported where it is restored
    return None


def check_run_model(workdir: str, model: str) -> str | None:
  """Why `workdir` cannot be resumed by `model`'s trainer: it holds another system's run."""
  found = stored_system(workdir)
  if found is None or found[0] == model:
    return None
  return (f"--workdir {workdir} holds a {found[0]} run (checkpoint {found[1]}), not a {model} "
          f"run; choose another --workdir, or resume it with python -m train.{found[0]}")


def _raise_interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def _main(model: str, make_task: Callable[[Any], Any]) -> int:
  absl_app.restart_with_huge_pages_if_asked()  # first: the process is replaced
  logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  workdir = FLAGS.workdir or f"runs/{model}_{str(config.variant).replace(',', '_')}"
  problem = check_workdir(workdir)
  if problem:
    absl_app.fail(problem)
  # Imported here so that --help answers without loading JAX.
  from bioface_jax import train_lib  # pylint: disable=g-import-not-at-top

  train_lib.maybe_initialize_distributed()
  problem = check_run_model(workdir, model)
  if problem:
    absl_app.fail(problem)
  signal.signal(signal.SIGTERM, _raise_interrupt)  # preemption: checkpoint and stop
  try:
    task = make_task(config)
    _, history = train_lib.train(task, config, workdir)
  except KeyboardInterrupt:
    print(f"Interrupted. Resume with the same command (--workdir {workdir}).", file=sys.stderr)
    return 130
  except train_lib.NonFiniteLossError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  if history:
    last = history[-1]
    print(f"done: step {last['step']}, loss {last.get('loss', float('nan')):.4g}; "
          f"outputs in {workdir}")
  else:
    print(f"nothing to do: the run in {workdir} is already at or past step "
          f"{config.num_train_steps} (raise --config.num_train_steps to train on)")
  return 0


def run(model: str, make_task: Callable[[Any], Any]) -> None:
  """Parses the flags and trains: `make_task(config)` builds the model's `train_lib.Task`."""
  absl_app.run(lambda argv: _main(model, make_task))
