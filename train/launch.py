"""The command line shared by every `python -m train.<model>` entry point.

Each `train/<model>.py` names its model, its config file and how to build its `Task`; this
module defines the flags (`--config FILE[:VARIANT]` with `--config.FIELD=VALUE` overrides,
`--workdir`) and runs the one trainer: multi-host initialisation when launched by SLURM/MPI or
with JAX_COORDINATOR_ADDRESS, SIGTERM (preemption) handled like Ctrl-C (checkpoint, then stop),
and clear exit codes (0 done, 1 non-finite loss, 130 interrupted; rerunning resumes).
"""

from __future__ import annotations

import os

# Synthetic-data generation runs small NumPy matrix products on the host; multi-threaded BLAS
# makes them ~10x slower on a busy CPU (measured). JAX does not use NumPy's BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(model: str, variant_help: str) -> None:
  """Defines `--config` (default `train/configs/<model>.py`) and `--workdir`.

  Args:
    model: the model's name, as in `train/configs/<model>.py` and `runs/<model>_<variant>`.
    variant_help: how a variant is written for this model, e.g. "train/configs/prnet.py:smoke".
  """
  config_flags.DEFINE_config_file(
      "config", f"train/configs/{model}.py",
      f"Config file, optionally with a variant: {variant_help}. Override any field with "
      "--config.FIELD=VALUE (e.g. --config.num_train_steps=100).")
  flags.DEFINE_string("workdir", None,
                      "Run directory for checkpoints, metrics and figures "
                      f"(default: runs/{model}_<variant>). Reusing it resumes the run.")


def _raise_interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def _main(model: str, make_task: Callable[[Any], Any]) -> int:
  logging.set_verbosity(logging.WARNING)
  # Imported here so that --help answers without loading JAX.
  from bioface_jax import train_lib  # pylint: disable=g-import-not-at-top

  train_lib.maybe_initialize_distributed()
  config = FLAGS.config
  workdir = FLAGS.workdir or f"runs/{model}_{str(config.variant).replace(',', '_')}"
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
  return 0


def run(model: str, make_task: Callable[[Any], Any]) -> None:
  """Parses the flags and trains: `make_task(config)` builds the model's `train_lib.Task`."""
  app.run(lambda argv: sys.exit(_main(model, make_task)))
