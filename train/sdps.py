"""Train SDPS-Net: ``python -m train.sdps --config train/configs/sdps.py:TASK[,MOD...]``.

Data-parallel over every visible device (a ``('data',)`` mesh; multi-host runs call
``jax.distributed.initialize()`` when launched by SLURM/MPI or with JAX_COORDINATOR_ADDRESS).
Checkpoints, metrics (metrics.jsonl, TensorBoard in tb/) and figures go to ``--workdir``;
rerunning the same command resumes from the latest checkpoint. Ctrl-C saves and exits.
See train/configs/sdps.py for the variants and what each is expected to do.
"""

from __future__ import annotations

import os

# Scene generation runs small NumPy products on the host; multi-threaded BLAS only slows them
# on a busy CPU. JAX does not use NumPy's BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import signal  # noqa: E402
import sys  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", "train/configs/sdps.py",
    "Config file with TASK[,MOD...]: train/configs/sdps.py:lcnet, ...:nenet,ds,res "
    "(see that file's docstring). Override any "
    "field with --config.FIELD=VALUE (e.g. --config.num_train_steps=100).")
flags.DEFINE_string("workdir", None,
                    "Run directory for checkpoints, metrics and figures "
                    "(default: runs/sdps_<variant>). Reusing it resumes the run.")


def _raise_interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  # Imported here so that --help answers without loading JAX.
  from bioface_jax import train_lib  # pylint: disable=g-import-not-at-top
  from train import sdps_task  # pylint: disable=g-import-not-at-top

  train_lib.maybe_initialize_distributed()
  config = FLAGS.config
  workdir = FLAGS.workdir or f"runs/sdps_{config.variant.replace(',', '_')}"
  signal.signal(signal.SIGTERM, _raise_interrupt)  # preemption: checkpoint and stop
  try:
    task = sdps_task.make_task(config, progress=lambda m: print(m, flush=True))
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


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
