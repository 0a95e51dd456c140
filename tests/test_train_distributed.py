"""Multi-process training, run for real: 2 processes x 2 CPU devices vs 1 process x 4 devices.

Two `python -m train.biofacenet` processes on localhost (JAX's gloo CPU collectives, a local
coordinator given by JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, which
`train_lib.maybe_initialize_distributed` reads) train the `smoke` config for 2 steps, save a
multi-process Orbax checkpoint, and are relaunched to resume to step 4. Each process reads only
its own rows of every global batch. The result must equal a single-process 4-device run of the
same config (computed here, in the pytest process) to float32 rounding.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from bioface_jax import train_lib
from tests.conftest import xla_flags
from train import biofacenet_task
from train.configs import biofacenet as configs

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_PROCESSES, DEVICES_PER_PROCESS = 2, 2

# SGD, not the smoke config's Adam: Adam divides by sqrt(v), which turns gradients that are
# zero in exact arithmetic (conv biases in front of BatchNorm: pure rounding noise whose sign
# depends on the summation order) into full +-lr steps, so two correct runs that reduce in a
# different order may differ by lr per step. SGD propagates rounding differences linearly.
OVERRIDES = {"model.optimizer": "sgd", "data.num_faces": 32, "async_checkpointing": True,
             "checkpoint_every_steps": 2, "eval_every_steps": 2, "figure_every_steps": 2}


def _config(cache_dir, num_steps):
  config = configs.get_config("smoke")
  for key, value in {**OVERRIDES, "data.cache_dir": str(cache_dir),
                     "num_train_steps": num_steps}.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(workdir, cache_dir, num_steps, timeout=600):
  """Runs the training CLI as NUM_PROCESSES local processes; returns their outputs."""
  port = _free_port()
  args = [sys.executable, "-m", "train.biofacenet",
          "--config", "train/configs/biofacenet.py:smoke", "--workdir", str(workdir)]
  args += [f"--config.{k}={v}" for k, v in
           {**OVERRIDES, "data.cache_dir": cache_dir, "num_train_steps": num_steps}.items()]
  procs = []
  for rank in range(NUM_PROCESSES):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               XLA_FLAGS=xla_flags(DEVICES_PER_PROCESS),
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES=str(NUM_PROCESSES), JAX_PROCESS_ID=str(rank),
               JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
    procs.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=timeout)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  for rank, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {rank} exited with {p.returncode}:\n{out[-4000:]}"
  return outputs


@pytest.mark.slow
def test_two_processes_equal_one_process_with_four_devices(tmp_path):
  assert jax.device_count() == NUM_PROCESSES * DEVICES_PER_PROCESS
  cache = tmp_path / "cache"
  config = _config(cache, 4)
  # The reference (and the synthetic faces, cached here before the processes start).
  reference, ref_history = train_lib.train(biofacenet_task.make_task(config), config,
                                           tmp_path / "single")
  reference = jax.device_get(reference)

  workdir = tmp_path / "multi"
  first = launch(workdir, cache, 2)
  assert "Resuming" not in first[0]
  with train_lib.Checkpointer(workdir / "checkpoints", async_save=False) as ckpt:
    assert ckpt.all_steps() == [2]
  second = launch(workdir, cache, 4)
  assert "Resuming from checkpoint 2" in second[0], second[0][-2000:]
  assert "done: step 4" in second[0]

  state, meta, step = train_lib.load_state(workdir)  # Whole arrays, on one local device.
  state = jax.device_get(state)
  assert step == 4 and meta["data_position"] == 4
  rows = train_lib.read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert (workdir / "figures" / "step_000004.png").is_file()
  assert "eval/loss" in rows[-1]

  # Tolerance rule (float32 rounding, propagated linearly by SGD): the two runs may reduce the
  # gradient in a different order, which changes a gradient element by at most
  # gamma_n * sum|summands| with n = batch x height x width summands (bounded here by the
  # logged global gradient norm); the optimiser scales that by lr * (bn lr multiplier) *
  # (momentum sum over the steps), plus 8 eps32 |theta| of rounding per step. Reading the
  # wrong rows, a missing all-reduce or per-process BatchNorm statistics move parameters by
  # about lr * |g| per step, > 50 times this bound.
  eps32 = float(np.finfo(np.float32).eps)
  steps, lr, beta = 4, float(config.learning_rate), float(config.model.momentum)
  momentum_sum = sum((1 - beta ** k) / (1 - beta) for k in range(1, steps + 1))
  n_terms = config.batch_size * config.data.size ** 2
  grad_scale = max(r["grad_norm"] for r in ref_history if "grad_norm" in r)
  grad_bound = (lr * config.model.bn_scale_lr_multiplier * momentum_sum * n_terms * eps32
                * grad_scale)
  flat_ref, tree_ref = jax.tree_util.tree_flatten_with_path(reference["params"])
  flat, tree = jax.tree_util.tree_flatten_with_path(state["params"])
  assert tree == tree_ref
  worst = 0.0
  for (path, want), (_, got) in zip(flat_ref, flat):
    bound = steps * 8 * eps32 * float(np.abs(want).max()) + grad_bound
    np.testing.assert_allclose(got, want, rtol=0, atol=bound, err_msg=jax.tree_util.keystr(path))
    worst = max(worst, float(np.abs(got - want).max()) / bound)
  print(f"largest |2-process - 1-process| / bound: {worst:.3g}")
  # The training moved the parameters far more than the bound (else the check is vacuous).
  init = jax.device_get(biofacenet_task.make_task(config).init(
      jax.random.fold_in(jax.random.key(config.seed), 0),
      next(iter(biofacenet_task.make_task(config).make_batches(0)))))
  moved = max(float(np.abs(a - b).max()) for a, b in
              zip(jax.tree.leaves(init["params"]), jax.tree.leaves(reference["params"])))
  assert moved > 50 * grad_bound
