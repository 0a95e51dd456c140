"""The model-agnostic training loop: `train(task, config, workdir)`.

A model plugs in by providing a `Task` (init / train_step / make_batches, optionally eval and
figures); the loop owns everything else: the data-parallel mesh and jit shardings, automatic
resume from `workdir/checkpoints`, per-step RNG keys, metric logging, a progress display,
periodic figures, the non-finite-loss guard and clean Ctrl-C handling.

Steps are counted from 1: step `s` consumes batch number `s - 1` of the data stream (0-based),
uses the key `fold_in(base_key, s)` and produces the state saved as checkpoint `s`. So the data
position of checkpoint `s` is `s`, and a resumed run calls `task.make_batches(s)` and continues
with step `s + 1` exactly as the uninterrupted run would have. `task.init` gets
`fold_in(base_key, 0)`; `base_key = jax.random.key(config.seed)` (stored in each checkpoint).

Loss checks are one step behind the dispatch (step `s`'s metrics are fetched after step
`s + 1` is queued) so the host never stalls the device; every log, checkpoint, figure and eval
step synchronises first, so no checkpoint is written for a state whose loss was not finite.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import jax
import matplotlib.image
from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np

from bioface_jax import xla_options
from bioface_jax.train_lib import checkpoint as checkpoint_lib
from bioface_jax.train_lib import metrics as metrics_lib
from bioface_jax.train_lib import parallel
from bioface_jax.train_lib import progress as progress_lib
from bioface_jax.train_lib.task import Batch
from bioface_jax.train_lib.task import LoopConfig
from bioface_jax.train_lib.task import Metrics
from bioface_jax.train_lib.task import NonFiniteLossError
from bioface_jax.train_lib.task import State
from bioface_jax.train_lib.task import Task
from bioface_jax.train_lib.task import config_to_json


def _every(step: int, period: int) -> bool:
  return period > 0 and step % period == 0


def _figure_to_array(figure: Any) -> np.ndarray:
  """A matplotlib Figure (closed afterwards) or an image array -> (H, W, 3) uint8."""
  if hasattr(figure, "savefig"):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
      pyplot.close(figure)  # Figures made with pyplot stay alive until closed.
    return image
  return metrics_lib.to_uint8_image(figure)


def _local_copy(tree: Any, device: jax.Device) -> Any:
  """Replicated `jax.Array`s -> their copy on `device`, a local device (others unchanged).

  In a multi-process run the replicated state is not fully addressable, so eager code such as
  a figure function could not mix it with local arrays; one device's replica can.
  """
  def local(x):
    if isinstance(x, jax.Array) and x.is_fully_replicated:
      return jax.device_put(x.addressable_data(0), device)
    return x
  return jax.tree.map(local, tree)


def _loss_names(metrics: Mapping[str, Any]) -> list[str]:
  names = [k for k in metrics if "loss" in k.lower()]
  return names or list(metrics)


def _host_scalars(metrics: Metrics, what: str) -> dict[str, float]:
  """Device metrics -> {name: float}, with a clear error for non-scalar entries."""
  out = {}
  for k, v in jax.device_get(dict(metrics)).items():
    v = np.asarray(v)
    if v.size != 1:
      raise ValueError(f"{what} returned metric '{k}' with shape {v.shape}; metrics must be "
                       "scalars (reduce them inside the step).")
    out[k] = float(v.reshape(()))
  return out


def _last_checkpoint(ckpt: checkpoint_lib.Checkpointer) -> str:
  """What rerunning the command resumes from, in words."""
  last = ckpt.latest_step()
  if last is None:
    return "There is no checkpoint yet: rerunning the command starts from step 0."
  return f"Rerunning the same command resumes from checkpoint {last}."


def train(task: Task, config: Any, workdir: str | os.PathLike, *,
          mesh: jax.sharding.Mesh | None = None,
          progress_stream: Any = None) -> tuple[State, list[dict[str, Any]]]:
  """Trains `task` to `config.num_train_steps`, resuming from `workdir` if it has checkpoints.

  Args:
    task: the model's `Task`.
    config: an `ml_collections.ConfigDict` (or dict / dataclass) with the `LoopConfig` fields;
      the whole config is stored (as JSON) in every checkpoint.
    workdir: the run directory: `checkpoints/`, `metrics.jsonl`, `tb/`, `figures/`.
    mesh: the data-parallel mesh (default: `parallel.make_mesh()` over all devices).
    progress_stream: where the progress display writes (default stdout).

  Returns:
    `(state, history)`: the final train state and the metric rows logged by this call
    (`[{"step": s, "loss": ..., ...}, ...]`, metrics averaged over each logging window).

  Raises:
    NonFiniteLossError: a loss metric became NaN/Inf (names the step and last checkpoint).
    KeyboardInterrupt: re-raised after saving a checkpoint of the last completed step;
      rerunning the same command resumes from it.
  """
  trainer = _Trainer(task, config, workdir, mesh, progress_stream)
  try:
    return trainer.run()
  finally:
    trainer.close()


def config_differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """(dotted key, old value, new value) for every leaf that differs between two JSON configs."""
  if isinstance(old, dict) and isinstance(new, dict):
    out = []
    for k in sorted(set(old) | set(new), key=str):
      out += config_differences(old.get(k), new.get(k), f"{prefix}{k}.")
    return out
  return [] if old == new else [(prefix.rstrip("."), old, new)]


class _Trainer:
  """One `train` call: set-up, the loop and its periodic actions, clean-up."""

  # ------------------------------------------------------------------ set up mesh and I/O

  def __init__(self, task: Task, config: Any, workdir: str | os.PathLike,
               mesh: jax.sharding.Mesh | None, progress_stream: Any):
    self.task = task
    self.cfg = LoopConfig.from_config(config)
    self.config_json = config_to_json(config)
    self.mesh = parallel.make_mesh() if mesh is None else mesh
    parallel.check_batch_size(self.cfg.batch_size, self.mesh)
    self.primary = jax.process_index() == 0
    self.local_rows = self.cfg.batch_size // jax.process_count()
    self.workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(self.workdir, exist_ok=True)
    self.rep = parallel.replicated_sharding(self.mesh)
    self.dat = parallel.data_sharding(self.mesh)
    self.progress_stream = progress_stream
    self.writer = None
    self.progress = None
    self.batches = None
    self.ckpt = checkpoint_lib.Checkpointer(
        os.path.join(self.workdir, "checkpoints"), self.cfg.max_to_keep,
        self.cfg.async_checkpointing)
    self.start = self.ckpt.latest_valid_step() or 0  # Damaged ones: warned and set aside.
    self.step = self.start     # The number of completed steps that `self.state` holds.
    self.state = None
    self.pending: list[tuple[int, Metrics]] = []  # Dispatched steps, metrics not yet checked.
    self.history: list[dict[str, Any]] = []
    self.row: dict[str, float] = {}  # What this step logs (train window and/or eval).
    self.window: dict[str, list[float]] = collections.defaultdict(list)
    self.window_start = (self.start, time.perf_counter())

  def close(self) -> None:
    if self.progress is not None:
      self.progress.close()
    if self.writer is not None:
      self.writer.close()
    self.ckpt.close()
    if self.batches is not None and hasattr(self.batches, "close"):
      self.batches.close()

  # ------------------------------------------------------------------ input pipeline

  def _next_batch(self, batch_number: int) -> Batch:
    batch = next(self.batches, None)
    if batch is None:
      raise ValueError(f"task.make_batches({self.start}) ran out of data at batch "
                       f"{batch_number} (step {batch_number + 1}).")
    for k, v in batch.items():
      if (np.shape(v)[0] if np.ndim(v) else None) != self.local_rows:
        raise ValueError(
            f"task.make_batches: batch {batch_number} entry '{k}' has shape {np.shape(v)}; "
            f"expected a leading dimension of {self.local_rows} (config.batch_size / "
            "process count).")
    return batch

  # ------------------------------------------------------------------ init or load checkpoint

  def _init_or_restore(self, example: Mapping[str, jax.Array]) -> None:
    base_key = jax.random.key(self.cfg.seed)
    init_key = jax.random.fold_in(base_key, 0)
    if not self.start:
      self.state = jax.jit(self.task.init, out_shardings=self.rep)(init_key, example)
    else:
      abstract = jax.eval_shape(self.task.init, init_key, example)
      target = jax.tree.map(
          lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.rep), abstract)
      try:
        self.state, meta = self.ckpt.restore(self.start, target)
      except (ValueError, TypeError) as e:  # stored shapes or structure differ from target
        saved = self.ckpt.read_meta(self.start).get("config", {})
        differences = config_differences(saved, self.config_json)
        diff = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now"
                         for k, a, b in differences[:8])
        if len(differences) > 8:
          diff += f" (and {len(differences) - 8} more)"
        raise checkpoint_lib.StateMismatchError(
            f"{str(e).splitlines()[0]}. The model built from the current config is not the "
            f"run's; config fields that differ: {diff or 'none recorded'}. Resume with the "
            "run's settings (--config.<field>=<value>) or train into a new --workdir.") from e
      if int(meta.get("data_position", self.start)) != self.start:
        raise ValueError(f"checkpoint {self.start} in {self.ckpt.directory} has data_position "
                         f"{meta.get('data_position')}, expected {self.start}.")
      base_key = jax.random.wrap_key_data(np.asarray(meta["rng"], dtype=np.uint32))
      changed = [k for k, _, _ in config_differences(meta.get("config", {}), self.config_json)]
      self.progress.message(f"Resuming from checkpoint {self.start} in {self.ckpt.directory}"
                            + (f" (config changed: {', '.join(changed)})." if changed else "."))
    # Replicated via jit from host key data: device_put cannot target the devices of other
    # processes, jit with a (process-identical) NumPy input can.
    key_data = np.asarray(jax.random.key_data(base_key))
    self.base_key = jax.jit(jax.random.wrap_key_data, out_shardings=self.rep)(key_data)

  def _meta(self, step: int) -> dict[str, Any]:
    return {"step": step, "data_position": step,
            "rng": np.asarray(jax.random.key_data(self.base_key)).tolist(),
            "seed": self.cfg.seed, "config": self.config_json}

  # ------------------------------------------------------------------ train loop

  def run(self) -> tuple[State, list[dict[str, Any]]]:
    cfg, task = self.cfg, self.task
    self.writer = metrics_lib.MetricWriter(
        self.workdir, resume_step=self.start, enabled=self.primary)
    self.progress = progress_lib.Progress(
        cfg.num_train_steps, self.start, cfg.batch_size,
        every_steps=cfg.log_every_steps or 100, stream=self.progress_stream,
        enabled=self.primary)
    if self.ckpt.set_aside and not self.start:
      self.progress.message(
          f"No sound checkpoint is left in {self.ckpt.directory}: training starts from step 0. "
          f"The damaged checkpoints ({', '.join(str(s) for s, _ in self.ckpt.set_aside)}) were "
          f"moved to {os.path.dirname(self.ckpt.set_aside[0][1])}; nothing was deleted.")
    self.batches = iter(task.make_batches(self.start))
    first = self._next_batch(self.start)
    self.batches = itertools.chain([first], self.batches)
    with jax.set_mesh(self.mesh):
      self._init_or_restore(parallel.shard_batch(first, self.mesh))
      # XLA:CPU: convolutions to Eigen instead of YNNPACK (2-3.6x faster kernel gradients,
      # docs/performance.md); {} on GPUs / TPUs and on a jaxlib without the option.
      options = xla_options.cpu_compiler_options()
      p_step = jax.jit(task.train_step, in_shardings=(self.rep, self.dat, self.rep),
                       out_shardings=(self.rep, self.rep), donate_argnums=(0,),
                       compiler_options=options)
      fold_in = jax.jit(jax.random.fold_in, out_shardings=self.rep)
      if task.eval_step is not None:
        self.p_eval = jax.jit(task.eval_step, in_shardings=(self.rep, self.dat),
                              out_shardings=self.rep, compiler_options=options)
      try:
        for step in range(self.start + 1, cfg.num_train_steps + 1):
          batch = self._next_batch(step - 1)
          new_state, metrics = p_step(
              self.state, parallel.shard_batch(batch, self.mesh), fold_in(self.base_key, step))
          self.step, self.state = step, new_state  # One statement: interrupt-consistent.
          del new_state
          self._finish_pending()  # The previous step's (lag one: the device stays busy).
          self.pending.append((step, metrics))
          last = step == cfg.num_train_steps
          do_log = _every(step, cfg.log_every_steps) or last
          do_ckpt = _every(step, cfg.checkpoint_every_steps) or last
          do_fig = task.make_figure is not None and _every(step, cfg.figure_every_steps)
          do_eval = (task.eval_step is not None and task.make_eval_batches is not None
                     and cfg.eval_every_steps > 0
                     and (_every(step, cfg.eval_every_steps) or last))
          if do_log or do_ckpt or do_fig or do_eval:
            self._finish_pending()
          if do_log:
            self._log(step)
          if do_eval:
            self._evaluate()
          self._write_row(step)
          if do_ckpt:
            self.ckpt.save(step, self.state, self._meta(step))
          if do_fig:
            self._figure(step, batch)
        self._finish_pending()
        self.ckpt.save(self.step, self.state, self._meta(self.step))  # No-op if it exists.
      except KeyboardInterrupt:
        self._save_on_interrupt()
        raise
    return self.state, self.history

  # ------------------------------------------------------------------ metrics and guards

  def _finish_pending(self) -> None:
    """Fetches queued step metrics, checks the losses, feeds the log window and progress."""
    while self.pending:
      step, metrics = self.pending.pop(0)
      host = _host_scalars(metrics, "task.train_step")
      bad = {k: host[k] for k in _loss_names(host) if not math.isfinite(host[k])}
      if bad:
        self.ckpt.wait()
        last = self.ckpt.latest_step()
        raise NonFiniteLossError(
            f"Non-finite loss at step {step}: {bad}. Training stopped; this state was not "
            f"checkpointed. Last good checkpoint: "
            f"{'none' if last is None else f'step {last} in {self.ckpt.directory}'}.",
            step, last)
      for k, v in host.items():
        self.window[k].append(v)
      self.progress.update(step, host)

  def _log(self, step: int) -> None:
    now = time.perf_counter()
    row = {k: float(np.mean(v)) for k, v in self.window.items()}
    n = step - self.window_start[0]
    if n > 0 and now > self.window_start[1]:
      row["steps_per_sec"] = n / (now - self.window_start[1])
      row["images_per_sec"] = row["steps_per_sec"] * self.cfg.batch_size
    self.row.update(row)
    self.window.clear()
    self.window_start = (step, now)

  def _write_row(self, step: int) -> None:
    """Writes what this step logged (train window and/or eval) as one JSONL row."""
    if self.row:
      self.writer.write_scalars(step, self.row)
      self.history.append({"step": step, **self.row})
      self.row = {}

  def _evaluate(self) -> None:
    """Averages `task.eval_step` over each eval set (one unnamed set, or a dict of sets)."""
    sets = self.task.make_eval_batches()
    named = sets.items() if isinstance(sets, Mapping) else [(None, sets)]
    for name, batches in named:
      sums: dict[str, float] = collections.defaultdict(float)
      count = 0
      for b in batches:
        for k, v in _host_scalars(self.p_eval(self.state, parallel.shard_batch(b, self.mesh)),
                                  "task.eval_step").items():
          sums[k] += v
        count += 1
      if not count:
        raise ValueError(f"task.make_eval_batches() gave no batches"
                         f"{'' if name is None else f' for eval set {name!r}'}.")
      prefix = "eval/" if name is None else f"eval/{name}/"
      self.row.update({f"{prefix}{k}": v / count for k, v in sums.items()})

  def _figure(self, step: int, batch: Batch) -> None:
    """Process 0 draws the figure from a process-local copy of the (replicated) state."""
    if not self.primary:
      return
    device = jax.local_devices()[0]
    with jax.set_mesh(parallel.make_mesh([device])):  # Eager code runs on this one device.
      image = _figure_to_array(self.task.make_figure(_local_copy(self.state, device), batch))
    fig_dir = os.path.join(self.workdir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    matplotlib.image.imsave(os.path.join(fig_dir, f"step_{step:06d}.png"), image)
    self.writer.write_images(step, {"figure": image})

  # ------------------------------------------------------------------ Ctrl-C

  def _save_on_interrupt(self) -> None:
    """Saves the last completed step after Ctrl-C, if that state is intact and finite."""
    ckpt = self.ckpt
    self._write_row(self.step)
    if any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(self.state)):
      self.progress.message(
          "Interrupted while the state was being updated; no checkpoint saved. "
          f"{_last_checkpoint(ckpt)}")
      return
    try:
      self._finish_pending()
      ckpt.save(self.step, self.state, self._meta(self.step))
      ckpt.wait()
      self.progress.message(f"Interrupted after step {self.step}; saved checkpoint "
                            f"{self.step} in {ckpt.directory}. Resume with the same command.")
    except (NonFiniteLossError, checkpoint_lib.NonFiniteStateError) as e:
      self.progress.message(f"Interrupted at step {self.step}; not saved ({e}). "
                            f"{_last_checkpoint(ckpt)}")
