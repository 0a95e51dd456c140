"""Tests for bioface_jax.train_lib: the data-parallel loop, resume, checkpoints, guards.

Two toy tasks: linear regression with plain SGD (checked against a float64 NumPy replica of
the same SGD steps) and a tiny Flax MLP with BatchNorm, Dropout and SGD-momentum (for the
1-vs-4-device and interrupted-vs-uninterrupted comparisons, where BatchNorm's global-batch
statistics and the per-step dropout keys must come out identical).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.figure
import matplotlib.image
import numpy as np
import optax
import pytest

from bioface_jax import train_lib
from bioface_jax.train_lib import checkpoint as checkpoint_lib
from bioface_jax.train_lib import parallel
from bioface_jax.train_lib import progress as progress_lib

N_DATA, DIM = 64, 3
_rng = np.random.default_rng(0)
X = _rng.normal(size=(N_DATA, DIM)).astype(np.float32)
Y = (X @ np.array([1.5, -2.0, 0.5], np.float32) + 0.3
     + 0.05 * _rng.normal(size=N_DATA).astype(np.float32)).astype(np.float32)
LR = 0.1


def batch_rows(i, batch_size):
  """Row indices of batch number i: a deterministic walk through the data."""
  return (i * batch_size + np.arange(batch_size) * 7) % N_DATA


def make_batches_fn(batch_size, interrupt_at=None):
  def make_batches(start):
    for i in itertools.count(start):
      if interrupt_at is not None and i == interrupt_at:
        raise KeyboardInterrupt
      rows = batch_rows(i, batch_size)
      yield {"x": X[rows], "y": Y[rows]}
  return make_batches


# ---------------------------------------------------------------- linear regression, plain SGD


def linear_eval_batches():
  return [{"x": X[:8], "y": Y[:8]}, {"x": X[8:16], "y": Y[8:16]}]


def linear_task(batch_size, nan_at_step=None, trace_counter=None, make_figure=None):
  def init(rng, batch):
    del rng  # Parameters in the data's dtype (float64 batches -> a float64 run under x64).
    return {"w": jnp.zeros((batch["x"].shape[-1],), batch["x"].dtype),
            "b": jnp.zeros((), batch["x"].dtype), "count": jnp.zeros((), jnp.int32)}

  def train_step(state, batch, rng):
    del rng
    if trace_counter is not None:
      trace_counter.append(1)  # Runs at trace time only.

    def loss_fn(p):
      r = batch["x"] @ p["w"] + p["b"] - batch["y"]
      loss = jnp.mean(r ** 2)
      if nan_at_step is not None:
        loss = loss * jnp.where(state["count"] + 1 >= nan_at_step, jnp.nan, 1.0)
      return loss

    params = {"w": state["w"], "b": state["b"]}
    loss, g = jax.value_and_grad(loss_fn)(params)
    new = jax.tree.map(lambda p, gg: p - LR * gg, params, g)
    gnorm = jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(g)))
    return {**new, "count": state["count"] + 1}, {"loss": loss, "grad_norm": gnorm}

  def eval_step(state, batch):
    return {"mse": jnp.mean((batch["x"] @ state["w"] + state["b"] - batch["y"]) ** 2)}

  return train_lib.Task(init=init, train_step=train_step,
                        make_batches=make_batches_fn(batch_size), make_figure=make_figure,
                        eval_step=eval_step, make_eval_batches=linear_eval_batches)


def f64_batches(make_batches):
  """Wraps a `make_batches` so that every batch entry is float64."""
  return lambda start: ({k: v.astype(np.float64) for k, v in b.items()}
                        for b in make_batches(start))


def numpy_sgd(num_steps, batch_size):
  """Float64 replica of the linear task: per-step losses and final (w, b)."""
  w, b = np.zeros(DIM), 0.0
  losses = []
  for s in range(1, num_steps + 1):
    rows = batch_rows(s - 1, batch_size)
    x, y = X[rows].astype(np.float64), Y[rows].astype(np.float64)
    r = x @ w + b - y
    losses.append(np.mean(r ** 2))
    gw, gb = 2 * x.T @ r / batch_size, 2 * np.mean(r)
    w, b = w - LR * gw, b - LR * gb
  return np.array(losses), w, b


def config(**kw):
  base = dict(num_train_steps=8, batch_size=8, seed=0, log_every_steps=1,
              checkpoint_every_steps=0, figure_every_steps=0, max_to_keep=3)
  base.update(kw)
  return base


def test_train_matches_float64_sgd_and_writes_outputs(tmp_path):
  traces = []

  def fig(state, batch):  # A matplotlib Figure at step 4, an RGB array at step 8.
    if int(state["count"]) == 4:
      figure = matplotlib.figure.Figure(figsize=(1, 1), dpi=20)
      figure.add_subplot().plot(batch["x"][:, 0], batch["y"])
      return figure
    return np.full((8, 10, 3), 0.5, np.float32)

  # The run computes in float64 (float64 batches under x64) to compare with the float64
  # NumPy replica. Tolerance rule: 8 steps x 16 eps64 relative per step, rounded up to 1e-12:
  # the two differ only in summation order; a wrong step (lr, 1/n, key, batch) is O(1e-2).
  task = dataclasses.replace(linear_task(8, trace_counter=traces, make_figure=fig),
                             make_batches=f64_batches(make_batches_fn(8)),
                             make_eval_batches=lambda: f64_batches(
                                 lambda _: iter(linear_eval_batches()))(0))
  out = io.StringIO()
  with jax.enable_x64(True):
    state, history = train_lib.train(
        task, config(log_every_steps=2, checkpoint_every_steps=4, figure_every_steps=4,
                     eval_every_steps=4),
        tmp_path, progress_stream=out)
  assert state["w"].dtype == np.float64

  ref_losses, ref_w, ref_b = numpy_sgd(8, 8)
  np.testing.assert_allclose(np.asarray(state["w"]), ref_w, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(float(state["b"]), ref_b, rtol=1e-12, atol=1e-12)
  assert int(state["count"]) == 8
  assert len(traces) == 1, "train_step was retraced"
  # Logged rows average the losses of their window of 2 steps.
  train_rows = [r for r in history if "loss" in r]
  assert [r["step"] for r in train_rows] == [2, 4, 6, 8]
  np.testing.assert_allclose([r["loss"] for r in train_rows],
                             ref_losses.reshape(4, 2).mean(1), rtol=1e-12)
  assert train_rows[-1]["loss"] < 0.5 * train_rows[0]["loss"]
  eval_rows = [r for r in history if "eval/mse" in r]
  assert [r["step"] for r in eval_rows] == [4, 8]
  ref_mse = np.mean((X[:16].astype(np.float64) @ ref_w + ref_b - Y[:16]) ** 2)
  np.testing.assert_allclose(eval_rows[-1]["eval/mse"], ref_mse, rtol=1e-12)

  rows = train_lib.read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in rows] == [2, 4, 6, 8]
  assert "eval/mse" in rows[1] and "eval/mse" not in rows[0]
  assert set(rows[0]) >= {"loss", "grad_norm", "steps_per_sec", "images_per_sec"}
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "8"]
  assert sorted(os.listdir(tmp_path / "figures")) == ["step_000004.png", "step_000008.png"]
  assert matplotlib.image.imread(tmp_path / "figures" / "step_000004.png").shape[:2] == (20, 20)
  assert matplotlib.image.imread(tmp_path / "figures" / "step_000008.png").shape[:2] == (8, 10)
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tb"))
  assert "step 8/8" in out.getvalue() and "ETA" in out.getvalue()
  # Params replicated over the 4 devices.
  assert state["w"].sharding.is_fully_replicated and len(state["w"].sharding.device_set) == 4


# ---------------------------------------------------------------- MLP with BatchNorm + dropout


class MLP(nn.Module):
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    # BatchNorm follows: a bias would only add noise.
    x = nn.Dense(16, use_bias=False, param_dtype=self.param_dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     param_dtype=self.param_dtype)(x)
    x = nn.relu(x)
    x = nn.Dropout(0.25, deterministic=not train)(x)
    return nn.Dense(1, param_dtype=self.param_dtype)(x)[..., 0]


def mlp_task(batch_size, interrupt_at=None, dtype=np.float32):
  model = MLP(param_dtype=dtype)
  tx = optax.sgd(0.05, momentum=0.9)

  def init(rng, batch):
    variables = model.init(rng, batch["x"], train=False)
    return {"params": variables["params"], "batch_stats": variables["batch_stats"],
            "opt_state": tx.init(variables["params"])}

  def train_step(state, batch, rng):
    def loss_fn(params):
      pred, upd = model.apply({"params": params, "batch_stats": state["batch_stats"]},
                              batch["x"], train=True, rngs={"dropout": rng},
                              mutable=["batch_stats"])
      return jnp.mean((pred - batch["y"]) ** 2), upd["batch_stats"]

    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(g, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return ({"params": params, "batch_stats": stats, "opt_state": opt_state},
            {"loss": loss, "grad_norm": optax.tree.norm(g)})

  make_batches = make_batches_fn(batch_size, interrupt_at)
  if dtype != np.float32:
    make_batches_f32 = make_batches
    make_batches = lambda start: ({k: v.astype(dtype) for k, v in b.items()}  # noqa: E731
                                  for b in make_batches_f32(start))
  return train_lib.Task(init=init, train_step=train_step, make_batches=make_batches)


# One task object shared by the tests below, so that jit reuses its compiled step.
MLP_TASK = mlp_task(8)


def assert_trees_close(a, b, **kw):
  flat_a, tree_a = jax.tree_util.tree_flatten_with_path(jax.device_get(a))
  flat_b, tree_b = jax.tree_util.tree_flatten_with_path(jax.device_get(b))
  assert tree_a == tree_b
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_allclose(x, y, err_msg=jax.tree_util.keystr(path), **kw)


def test_one_device_equals_four_devices(tmp_path):
  """Same training on 1 and 4 devices (global BatchNorm statistics, per-step dropout keys).

  Both runs compute in float64, so they differ only by the float64 order of the gradient
  all-reduce. Tolerance rule: 8 * eps32 relative (float32 rounding of the compared values while
  the arithmetic is 2**29 times finer), plus 8 * eps32 * max|leaf| absolute for entries that
  cancel to ~0. Per-device BatchNorm statistics or per-shard dropout keys differ by > 1e-2.
  """
  assert jax.device_count() == 4
  eps32 = float(np.finfo(np.float32).eps)
  cfg = config(num_train_steps=4, batch_size=8)
  with jax.enable_x64(True):
    task = mlp_task(8, dtype=np.float64)
    s1, h1 = train_lib.train(task, cfg, tmp_path / "one",
                             mesh=train_lib.make_mesh(jax.devices()[:1]),
                             progress_stream=io.StringIO())
    s4, h4 = train_lib.train(task, cfg, tmp_path / "four",
                             mesh=train_lib.make_mesh(), progress_stream=io.StringIO())
  assert s1["params"]["Dense_0"]["kernel"].dtype == np.float64
  assert len(s4["params"]["Dense_0"]["kernel"].sharding.device_set) == 4
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose([r[key] for r in h1], [r[key] for r in h4], rtol=8 * eps32)
  flat_1, tree_1 = jax.tree_util.tree_flatten_with_path(jax.device_get(s1))
  flat_4, tree_4 = jax.tree_util.tree_flatten_with_path(jax.device_get(s4))
  assert tree_1 == tree_4
  for (path, x), (_, y) in zip(flat_1, flat_4):
    np.testing.assert_allclose(y, x, rtol=8 * eps32, atol=8 * eps32 * float(np.abs(x).max()),
                               err_msg=jax.tree_util.keystr(path))
  # The loss must depend on the step (dropout keys and updates differ), else this is vacuous.
  assert len({round(r["loss"], 6) for r in h1}) == 4


def test_resume_matches_uninterrupted_run(tmp_path):
  quiet = dict(progress_stream=io.StringIO())
  ref, _ = train_lib.train(MLP_TASK, config(num_train_steps=6), tmp_path / "ref", **quiet)

  # (a) Stopped at 3 and restarted with the full step count in the same workdir.
  wd = tmp_path / "split"
  train_lib.train(MLP_TASK, config(num_train_steps=3), wd, **quiet)
  split, hist = train_lib.train(MLP_TASK, config(num_train_steps=6), wd, **quiet)
  assert [r["step"] for r in hist] == [4, 5, 6]
  assert_trees_close(ref, split, rtol=0, atol=0)
  assert [r["step"] for r in train_lib.read_jsonl(wd / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]

  # (b) Ctrl-C while fetching batch 4: checkpoint 4 is saved, rerunning finishes identically.
  wd = tmp_path / "ctrl_c"
  with pytest.raises(KeyboardInterrupt):
    task = dataclasses.replace(MLP_TASK, make_batches=make_batches_fn(8, interrupt_at=4))
    train_lib.train(task, config(num_train_steps=6), wd, **quiet)
  assert sorted(os.listdir(wd / "checkpoints")) == ["4"]
  resumed, _ = train_lib.train(MLP_TASK, config(num_train_steps=6), wd, **quiet)
  assert_trees_close(ref, resumed, rtol=0, atol=0)
  assert [r["step"] for r in train_lib.read_jsonl(wd / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]

  # (c) A crash after step 5 (last checkpoint 4, metrics logged up to 6): rows 5, 6 are
  # dropped on resume and rewritten once.
  wd = tmp_path / "crash"
  train_lib.train(MLP_TASK, config(num_train_steps=6, checkpoint_every_steps=2), wd, **quiet)
  shutil.rmtree(wd / "checkpoints" / "6")
  crashed, _ = train_lib.train(MLP_TASK, config(num_train_steps=6), wd, **quiet)
  assert_trees_close(ref, crashed, rtol=0, atol=0)
  assert [r["step"] for r in train_lib.read_jsonl(wd / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- what other models need


def test_frozen_stage1_variable_images_per_sample_and_named_eval_sets(tmp_path):
  """SDPS-like: a stage-2 task uses a frozen network from another run's checkpoint
  (`load_state`), takes N images per sample with N changing between batches, and reports two
  eval sets with different N under their own names."""
  quiet = dict(progress_stream=io.StringIO())
  stage1, _ = train_lib.train(linear_task(8), config(num_train_steps=4), tmp_path / "stage1",
                              **quiet)
  frozen, meta, step = train_lib.load_state(tmp_path / "stage1")
  assert step == 4 and meta["step"] == 4
  np.testing.assert_array_equal(np.asarray(frozen["w"]), np.asarray(stage1["w"]))
  traces = []

  def images(i, rows, n):  # (B, N, DIM): N "images" per sample.
    return np.stack([X[(rows + 5 * k + i) % N_DATA] for k in range(n)], axis=1)

  def make_batches(start):
    for i in itertools.count(start):
      rows, n = batch_rows(i, 8), 2 + i % 2  # N alternates between 2 and 3.
      yield {"x": images(i, rows, n), "y": Y[rows]}

  def eval_sets():
    rows = np.arange(8)
    return {"n2": [{"x": images(0, rows, 2), "y": Y[rows]}],
            "n3": [{"x": images(0, rows, 3), "y": Y[rows]}]}

  def predict(state, x):
    per_image = x @ state["frozen"]["w"] + state["frozen"]["b"]  # (B, N)
    return state["scale"] * jnp.mean(per_image, axis=1)

  def train_step(state, batch, rng):
    del rng
    traces.append(batch["x"].shape[1])
    loss, g = jax.value_and_grad(lambda sc: jnp.mean(
        (predict({**state, "scale": sc}, batch["x"]) - batch["y"]) ** 2))(state["scale"])
    return {**state, "scale": state["scale"] - LR * g}, {"loss": loss}

  task = train_lib.Task(
      init=lambda rng, batch: {"frozen": {"w": jnp.asarray(frozen["w"]),
                                          "b": jnp.asarray(frozen["b"])},
                               "scale": jnp.ones((), jnp.float32)},
      train_step=train_step, make_batches=make_batches,
      eval_step=lambda state, batch: {"mse": jnp.mean((predict(state, batch["x"])
                                                       - batch["y"]) ** 2)},
      make_eval_batches=eval_sets)
  state, history = train_lib.train(task, config(num_train_steps=6, eval_every_steps=3),
                                   tmp_path / "stage2", **quiet)
  assert sorted(set(traces)) == [2, 3] and len(traces) == 2  # One compile per shape.
  np.testing.assert_array_equal(np.asarray(state["frozen"]["w"]), np.asarray(stage1["w"]))
  assert float(state["scale"]) != 1.0
  evals = [r for r in history if "eval/n2/mse" in r]
  assert [r["step"] for r in evals] == [3, 6]
  assert all(np.isfinite(r["eval/n3/mse"]) for r in evals)


# ---------------------------------------------------------------- guards


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  task = linear_task(8, nan_at_step=5)
  with pytest.raises(train_lib.NonFiniteLossError, match=r"step 5\b.*checkpoint: step 4") as e:
    train_lib.train(task, config(checkpoint_every_steps=2), tmp_path,
                    progress_stream=io.StringIO())
  assert e.value.step == 5 and e.value.last_checkpoint_step == 4
  with train_lib.Checkpointer(tmp_path / "checkpoints") as ckpt:
    assert ckpt.all_steps() == [2, 4]
    target = {"w": np.zeros(DIM, np.float32), "b": np.float32(0), "count": np.int32(0)}
    state, meta = ckpt.restore(4, target)
  assert meta["step"] == 4 and int(state["count"]) == 4
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(state))
  _, ref_w, ref_b = numpy_sgd(4, 8)
  # Float32 run vs float64 replica. Rule: each of the 4 steps sums (batch + DIM + 2) terms no
  # larger than max|x| * (sum|w| + |b|) + max|y| (the residual; lr * 2 < 1 scales the update),
  # so the drift is <= steps * (batch + DIM + 2) * eps32 * that magnitude. Checkpoint 2 or 6
  # instead of 4 would be off by > 1e-2.
  magnitude = np.abs(X).max() * (np.abs(ref_w).sum() + abs(ref_b)) + np.abs(Y).max()
  bound = 4 * (8 + DIM + 2) * float(np.finfo(np.float32).eps) * magnitude
  np.testing.assert_allclose(np.asarray(state["w"]), ref_w, rtol=0, atol=bound)


def test_checkpointer_refuses_nonfinite_state(tmp_path):
  with train_lib.Checkpointer(tmp_path) as ckpt:
    bad = {"enc": {"w": jnp.ones(3)}, "dec": {"w": jnp.array([1.0, jnp.inf])},
           "n": jnp.int32(1)}
    with pytest.raises(train_lib.NonFiniteStateError, match=r"\['dec'\]\['w'\]"):
      ckpt.save(1, bad, {"step": 1})
    assert ckpt.latest_step() is None


def test_rejects_batch_size_not_divisible_by_devices(tmp_path):
  with pytest.raises(ValueError, match=r"batch_size=6 .*4"):
    train_lib.train(linear_task(6), config(batch_size=6), tmp_path)
  mesh = train_lib.make_mesh()
  with pytest.raises(ValueError, match="6 rows"):
    train_lib.shard_batch({"x": np.zeros((6, 2))}, mesh)
  with pytest.raises(ValueError, match="disagree"):
    train_lib.shard_batch({"x": np.zeros((8, 2)), "y": np.zeros(4)}, mesh)
  # A task whose batches do not match config.batch_size is named clearly too.
  with pytest.raises(ValueError, match="leading dimension of 4"):
    train_lib.train(linear_task(8), config(batch_size=4), tmp_path / "b")


def test_shard_batch_splits_rows_over_devices():
  mesh = train_lib.make_mesh()
  x = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
  out = train_lib.shard_batch({"x": x}, mesh)["x"]
  np.testing.assert_array_equal(np.asarray(out), x)
  shards = sorted(out.addressable_shards, key=lambda s: s.index[0].start)
  assert [s.data.shape for s in shards] == [(2, 2)] * 4
  np.testing.assert_array_equal(np.asarray(shards[1].data), x[2:4])


# ---------------------------------------------------------------- checkpoint atomicity

_CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from bioface_jax.train_lib.checkpoint import Checkpointer
    ckpt = Checkpointer(sys.argv[1], async_save=False)
    ckpt.save(1, {"w": np.full(1000, 1.0, np.float32)}, {"step": 1})
    real_rename = os.rename
    def crash(*args, **kwargs):  # Die exactly when Orbax would commit step 2.
      os._exit(17)
    os.rename = crash
    ckpt.save(2, {"w": np.full(1000, 2.0, np.float32)}, {"step": 2})
    os._exit(0)
""")


def test_crash_mid_save_leaves_previous_checkpoint(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-c", _CRASH_SCRIPT, str(tmp_path)], cwd=root,
                        env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 17, proc.stderr[-2000:]
  leftovers = [d for d in os.listdir(tmp_path) if d.startswith("2")]
  assert leftovers and all("tmp" in d for d in leftovers), os.listdir(tmp_path)
  with train_lib.Checkpointer(tmp_path) as ckpt:
    assert ckpt.latest_step() == 1
    state, meta = ckpt.restore(1, {"w": np.zeros(1000, np.float32)})
    np.testing.assert_array_equal(np.asarray(state["w"]), 1.0)
    assert meta == {"step": 1}
    ckpt.save(2, {"w": np.full(1000, 3.0, np.float32)}, {"step": 2})  # Not blocked by debris.
    ckpt.wait()
    assert ckpt.all_steps() == [1, 2]


def _largest_array_file(step_dir):
  """The largest OCDBT data file of the state (array chunks live in ocdbt.process_*/d/)."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir / "state") for f in fs
           if "ocdbt.process_" in r and os.path.basename(r) == "d"]
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_checkpoint_is_set_aside_and_previous_one_used(tmp_path, damage):
  quiet = dict(progress_stream=io.StringIO())
  ref, _ = train_lib.train(MLP_TASK, config(num_train_steps=6), tmp_path / "ref", **quiet)
  wd = tmp_path / "run"
  train_lib.train(MLP_TASK, config(num_train_steps=6, checkpoint_every_steps=2), wd, **quiet)
  step_dir = wd / "checkpoints" / "6"
  assert (step_dir / checkpoint_lib.MANIFEST).is_file()
  victim = _largest_array_file(step_dir)
  if damage == "delete":
    os.remove(victim)
  else:
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)
  with pytest.warns(train_lib.DamagedCheckpointWarning, match=f"{step_dir}.* is damaged"):
    resumed, hist = train_lib.train(MLP_TASK, config(num_train_steps=6), wd, **quiet)
  assert [r["step"] for r in hist] == [5, 6]  # Resumed from checkpoint 4.
  assert_trees_close(ref, resumed, rtol=0, atol=0)
  assert os.listdir(wd / "damaged_checkpoints") == ["6"]
  assert sorted(os.listdir(wd / "checkpoints")) == ["2", "4", "6"]


def _truncate_every_checkpoint(ckpt_root):
  for step_dir in ckpt_root.iterdir():
    victim = _largest_array_file(step_dir)
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)


def test_all_checkpoints_damaged_restarts_from_step_0_and_says_so(tmp_path):
  """No sound checkpoint left: nothing is deleted, and the messages do not claim a resume."""
  ref, _ = train_lib.train(MLP_TASK, config(num_train_steps=4), tmp_path / "ref",
                           progress_stream=io.StringIO())
  wd = tmp_path / "run"
  train_lib.train(MLP_TASK, config(num_train_steps=4, checkpoint_every_steps=2), wd,
                  progress_stream=io.StringIO())
  _truncate_every_checkpoint(wd / "checkpoints")
  log = io.StringIO()
  with pytest.warns(train_lib.DamagedCheckpointWarning) as caught:
    restarted, hist = train_lib.train(MLP_TASK, config(num_train_steps=4), wd,
                                      progress_stream=log)
  texts = [str(w.message) for w in caught]
  assert len(texts) == 2 and all("no sound checkpoint is left" in t for t in texts), texts
  assert not any("resume" in t or "previous" in t for t in texts), texts
  assert "training starts from step 0" in log.getvalue()
  assert "nothing was deleted" in log.getvalue()
  assert [r["step"] for r in hist][0] == 1  # Trained again from the start ...
  assert_trees_close(ref, restarted, rtol=0, atol=0)  # ... exactly as a fresh run.
  assert sorted(os.listdir(wd / "damaged_checkpoints")) == ["2", "4"]  # Set aside, kept.


def test_inference_restore_skips_damaged_checkpoints_read_only(tmp_path):
  """`export.restore_latest` (every model's restore_for_inference) moves nothing."""
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  wd = tmp_path / "run"
  train_lib.train(MLP_TASK, config(num_train_steps=4, checkpoint_every_steps=2), wd,
                  progress_stream=io.StringIO())
  with train_lib.Checkpointer(wd / "checkpoints") as ckpt:
    abstract = ckpt.abstract_state(4)
  victim = _largest_array_file(wd / "checkpoints" / "4")
  with open(victim, "r+b") as f:
    f.truncate(os.path.getsize(victim) // 2)
  with pytest.warns(train_lib.DamagedCheckpointWarning, match="4 .*skipped.*using checkpoint 2"):
    _, _, step = export.restore_latest(wd, lambda cfg: abstract, "python -m train.x")
  assert step == 2
  assert sorted(os.listdir(wd / "checkpoints")) == ["2", "4"]  # Read-only: nothing moved.
  assert not (wd / "damaged_checkpoints").exists()
  with pytest.warns(train_lib.DamagedCheckpointWarning, match="left in place .*checkpoint 2 is"):
    _, _, step = train_lib.load_state(wd)  # Another run's state (frozen sub-networks).
  assert step == 2 and sorted(os.listdir(wd / "checkpoints")) == ["2", "4"]
  with pytest.raises(train_lib.StateMismatchError, match="does not match"):  # Another model.
    export.restore_latest(wd, lambda cfg: {"w": np.zeros(3)}, "python -m train.x")
  _truncate_every_checkpoint(wd / "checkpoints")
  with pytest.raises(ValueError, match="every checkpoint in .* is damaged"):
    export.restore_latest(wd, lambda cfg: abstract, "python -m train.x")


_VALIDATE_SCRIPT = textwrap.dedent("""
    import sys
    from bioface_jax.train_lib.checkpoint import Checkpointer
    with Checkpointer(sys.argv[1]) as ckpt:
      print("latest valid", ckpt.latest_valid_step())
""")


def test_damaged_checkpoint_without_manifest_is_caught_by_a_restore(tmp_path):
  """Killed between Orbax's commit and the manifest, then damaged: a full restore decides.

  Checked in a fresh process, as a resume is: TensorStore's cache in the process that wrote
  the files would serve the restore from memory.
  """
  wd = tmp_path / "run"
  train_lib.train(MLP_TASK, config(num_train_steps=4, checkpoint_every_steps=2), wd,
                  progress_stream=io.StringIO())
  step_dir = wd / "checkpoints" / "4"
  os.remove(step_dir / checkpoint_lib.MANIFEST)
  data = [os.path.join(r, f) for r, _, fs in os.walk(step_dir / "state") for f in fs
          if os.path.basename(r) == "d"]
  for victim in data:  # Every OCDBT data file, so that whatever the restore reads is short.
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-c", _VALIDATE_SCRIPT, str(wd / "checkpoints")],
                        cwd=root, env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
                                           PYTHONPATH=root),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "latest valid 2" in proc.stdout
  assert "DamagedCheckpointWarning" in proc.stderr and str(step_dir) in proc.stderr
  assert "cannot be restored" in proc.stderr
  assert os.listdir(wd / "damaged_checkpoints") == ["4"]


def test_checkpoint_without_manifest_is_verified_and_used(tmp_path):
  """A kill between Orbax's commit and the manifest leaves a sound checkpoint: it is used."""
  quiet = dict(progress_stream=io.StringIO())
  wd = tmp_path / "run"
  train_lib.train(MLP_TASK, config(num_train_steps=4, checkpoint_every_steps=2), wd, **quiet)
  os.remove(wd / "checkpoints" / "4" / checkpoint_lib.MANIFEST)
  with train_lib.Checkpointer(wd / "checkpoints") as ckpt:
    assert ckpt.latest_valid_step() == 4
  assert (wd / "checkpoints" / "4" / checkpoint_lib.MANIFEST).is_file()
  assert checkpoint_lib.manifest_problems(str(wd / "checkpoints" / "4")) == []


# ---------------------------------------------------------------- progress, config, misc


class FakeClock:

  def __init__(self):
    self.t = 0.0

  def __call__(self):
    return self.t


def test_progress_plain_lines_rate_and_eta():
  out, clock = io.StringIO(), FakeClock()
  p = progress_lib.Progress(100, start_step=0, batch_size=8, every_steps=10, stream=out,
                            interactive=False, clock=clock)
  for step in range(1, 21):
    clock.t = 5.0 + 0.5 * step  # 5 s compile, then 2 steps/s.
    p.update(step, {"loss": 1.0 / step})
  lines = out.getvalue().splitlines()
  assert len(lines) == 2 and lines[1].startswith("step 20/100")
  assert "2.00 steps/s" in lines[1] and "16.0 img/s" in lines[1]
  assert "ETA 0:40" in lines[1]  # 80 steps left at 2 steps/s.
  assert "loss 0.05" in lines[1]


def test_progress_interactive_redraws_one_line():
  out, clock = io.StringIO(), FakeClock()
  p = progress_lib.Progress(3, stream=out, interactive=True, clock=clock)
  for step in (1, 2, 3):
    clock.t = float(step)
    p.update(step, {"loss": 0.5})
  p.close()
  text = out.getvalue()
  assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")


def test_loop_config_reads_configdict_and_names_missing_fields():
  import ml_collections
  cfg = ml_collections.ConfigDict(dict(num_train_steps=5, batch_size=4, seed=3, other=1.5))
  lc = train_lib.LoopConfig.from_config(cfg)
  assert (lc.num_train_steps, lc.batch_size, lc.seed, lc.max_to_keep) == (5, 4, 3, 3)
  with pytest.raises(KeyError, match="batch_size"):
    train_lib.LoopConfig.from_config({"num_train_steps": 5})


def test_no_distributed_init_on_a_single_machine(monkeypatch):
  for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri",
              "TPU_WORKER_HOSTNAMES"):
    monkeypatch.delenv(var, raising=False)
  assert parallel.maybe_initialize_distributed() is False


def test_metrics_writer_truncates_on_resume(tmp_path):
  w = train_lib.MetricWriter(tmp_path, tensorboard=False)
  for s in range(1, 6):
    w.write_scalars(s, {"loss": np.float32(s), "bad": float("nan")})
  w.close()
  w = train_lib.MetricWriter(tmp_path, resume_step=3, tensorboard=False)
  w.write_scalars(4, {"loss": 40.0})
  w.close()
  rows = train_lib.read_jsonl(tmp_path / "metrics.jsonl")
  assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
  assert rows[0]["bad"] == "nan"


def test_nonfinite_leaves_names_paths():
  tree = {"a": np.array([1.0, np.nan]), "b": [np.ones(2), np.array(np.inf)], "i": np.int32(3)}
  assert checkpoint_lib.nonfinite_leaves(tree) == ["['a']", "['b'][1]"]


def test_restore_into_other_shapes_names_the_leaves(tmp_path):
  state = {"params": {"conv": np.ones((3, 3, 3, 8), np.float32)}, "count": np.zeros((), np.int32)}
  with train_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(1, state, {"step": 1})
    wider = {"params": {"conv": np.ones((3, 3, 6, 8), np.float32), "extra": np.ones(2)},
             "count": np.zeros((), np.int32)}
    with pytest.raises(ValueError, match=r"params\.conv: stored \(3, 3, 3, 8\), requested "
                                         r"\(3, 3, 6, 8\); params\.extra: not in the checkpoint"):
      ckpt.restore(1, wider)
    restored, _ = ckpt.restore(1, state)  # The checkpoint is intact.
    np.testing.assert_array_equal(np.asarray(restored["params"]["conv"]), 1.0)
