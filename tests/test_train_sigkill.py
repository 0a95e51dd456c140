"""SIGKILL at any moment loses nothing: kill, rerun the same command, get the same bits.

`tests/sigkill_target.py` (tiny task, many steps, asynchronous checkpoints every 2 steps) is
killed with SIGKILL several times (at random moments and while an asynchronous checkpoint is
being written), rerun with the same command each time, and finally run to the end. Its final
state must be bitwise equal to that of an uninterrupted run, and its metrics log must hold
every step exactly once.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bioface_jax import train_lib
from tests.conftest import xla_flags

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_STEPS = 120


def _start(workdir):
  """Starts the run; its stderr goes to WORKDIR.stderr (appended), read by `_tail`."""
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_flags(1))
  with open(f"{workdir}.stderr", "a") as log:
    return subprocess.Popen([sys.executable, "-m", "tests.sigkill_target", str(workdir),
                             str(NUM_STEPS)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=log)


def _tail(workdir):
  with open(f"{workdir}.stderr") as f:
    return f.read()[-3000:]


def _saving(ckpt_dir):
  """True while Orbax has a temporary (uncommitted) checkpoint directory."""
  try:
    return any("orbax-checkpoint-tmp" in d for d in os.listdir(ckpt_dir))
  except FileNotFoundError:
    return False


def _final_state(workdir):
  state, _, step = train_lib.load_state(workdir)
  return step, jax.device_get(state)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bitwise_identical(tmp_path):
  ref = _start(tmp_path / "ref")
  assert ref.wait(timeout=600) == 0, _tail(tmp_path / "ref")

  workdir = tmp_path / "killed"
  ckpt_dir = workdir / "checkpoints"
  rng = np.random.default_rng(1234)
  kills = []
  for mode in ("during_save", "random", "during_save", "random", "during_save"):
    proc = _start(workdir)
    deadline = time.monotonic() + 300
    if mode == "during_save":
      while not _saving(ckpt_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    else:  # Some time after training has started (the metrics file exists).
      while (not (workdir / "metrics.jsonl").exists() and proc.poll() is None
             and time.monotonic() < deadline):
        time.sleep(0.01)
      time.sleep(float(rng.uniform(0.0, 1.5)))
    if proc.poll() is not None:
      pytest.fail(f"the run ended before the {mode} kill: {_tail(workdir)}")
    was_saving = _saving(ckpt_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills.append((mode, was_saving, sorted(os.listdir(ckpt_dir)) if ckpt_dir.exists() else []))
  assert sum(was_saving for _, was_saving, _ in kills) >= 2, kills
  print("kills (mode, during a save, checkpoint directory):", *kills, sep="\n  ")

  final = _start(workdir)
  assert final.wait(timeout=600) == 0, _tail(workdir)
  step_ref, state_ref = _final_state(tmp_path / "ref")
  step, state = _final_state(workdir)
  assert step == step_ref == NUM_STEPS
  flat_ref, tree_ref = jax.tree_util.tree_flatten_with_path(state_ref)
  flat, tree = jax.tree_util.tree_flatten_with_path(state)
  assert tree == tree_ref
  for (path, want), (_, got) in zip(flat_ref, flat):
    np.testing.assert_array_equal(got, want, err_msg=f"{jax.tree_util.keystr(path)} {kills}")
  rows = train_lib.read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in rows] == list(range(1, NUM_STEPS + 1)), kills
  ref_rows = train_lib.read_jsonl(tmp_path / "ref" / "metrics.jsonl")
  assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
