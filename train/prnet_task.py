"""PRNet plugged into the model-agnostic trainer: data, train state, step, eval, figure.

`make_task(config)` returns a `bioface_jax.train_lib.Task`:

* data: the cached synthetic pairs (``config.data.source = "synthetic"``, default; generated on
  first use, `data.prnet.dataset`) or 300W-LP through the direct reader (``"300wlp"``,
  ``config.data.dir``; dense truth when ``config.data.bfm_path`` names the Basel Face Model
  (`data.prnet.bfm`), else the landmark-only loss; optionally mixed with synthetic batches by
  ``config.data.real_fraction``), batched by the deterministic `data.pipeline.iterate_batches`;
* state: ``{"params", "batch_stats", "opt_state"}``;
* step: on-device augmentation of image, map and landmarks (`bioface_jax.face3d.augment`,
  ``config.augment.enabled``, default on; the step's key, so resuming repeats it exactly), then
  `bioface_jax.models.prnet.compute_loss` (training-mode BatchNorm) + Adam;
* eval and figures: never augmented;
* eval: held-out synthetic faces: loss, ``nme2d`` / ``nme3d`` of the 68 landmarks (fractions);
* figure: input | predicted map | true map | landmarks (green truth, red prediction).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bioface_jax import face3d
from bioface_jax.face3d import augment as augment_lib
from bioface_jax.face3d import figures as face3d_figures
from bioface_jax.models import prnet
from bioface_jax.pretrained import systems, warm_start
from bioface_jax.train_lib import Task
from data import pipeline

# The figure's forward pass, compiled once per model config and batch shape (run eagerly, every
# operation would compile on its own: seconds per figure on CPU).
_predict = jax.jit(prnet.predict, static_argnums=3)

BATCH_KEYS = ("image", "posmap", "landmarks", "has_dense")


def model_config(config: ml_collections.ConfigDict) -> prnet.PRNetConfig:
  """The model's frozen config from the run config (shared with inference:
  `bioface_jax.pretrained.systems.prnet_config`)."""
  return systems.prnet_config(config)


def load_datasets(config: ml_collections.ConfigDict, stream=True):
  """(train, holdout) datasets following ``config.data``."""
  from data.prnet import dataset as synth_set  # pylint: disable=g-import-not-at-top
  d = config.data
  out = None if stream is False else (None if stream is True else stream)
  kw = {} if stream is True else dict(stream=out)
  kw.update(synth_set.world_options(d))
  holdout = synth_set.synthetic_set(d.cache_dir or None, d.num_eval, d.size, d.eval_seed, **kw)
  if d.source == "synthetic":
    return synth_set.synthetic_set(d.cache_dir or None, d.num_train, d.size, d.seed, **kw), holdout
  if d.source == "300wlp":
    from data.prnet import readers as w300lp  # pylint: disable=g-import-not-at-top
    if not d.dir:
      raise ValueError("config.data.dir must name the 300W-LP directory (IBUG/, AFW/, ... with "
                       "<name>.jpg + <name>.mat, and landmarks/)")
    model = None
    if d.get("bfm_path"):
      from data.prnet import bfm  # pylint: disable=g-import-not-at-top
      model = bfm.load_bfm(d.bfm_path, d.get("bfm_uv_path") or None)
    real = w300lp.W300LPDataset(d.dir, size=d.size, subsets=tuple(d.subsets) or None, bfm=model)
    if d.real_fraction >= 1.0:
      return real, holdout
    synthetic = synth_set.synthetic_set(d.cache_dir or None, d.num_train, d.size, d.seed, **kw)
    return w300lp.MixedDataset(real, synthetic, d.real_fraction, d.seed), holdout
  raise ValueError(f"config.data.source must be 'synthetic' or '300wlp', got {d.source!r}.")


def augment_config(config: ml_collections.ConfigDict) -> augment_lib.AugmentConfig | None:
  """The augmentation ranges from ``config.augment``, or None when it is switched off."""
  aug = config.get("augment")
  if aug is None or not aug.get("enabled", False):
    return None
  fields = {k: v for k, v in aug.items() if k != "enabled"}
  return augment_lib.AugmentConfig.from_mapping(fields)


def _select(batch):
  return {k: np.asarray(batch[k], np.float32) for k in BATCH_KEYS}


@dataclasses.dataclass
class PRNetTask:
  """Holds the model config and datasets; builds the trainer's `Task`."""
  config: ml_collections.ConfigDict
  model: prnet.PRNetConfig
  train_set: Any
  holdout_set: Any
  augment: augment_lib.AugmentConfig | None = None
  init_variables: Any = None  # warm start: the variables of config.init_workdir

  @classmethod
  def create(cls, config: ml_collections.ConfigDict, stream=True) -> PRNetTask:
    train_set, holdout_set = load_datasets(config, stream)
    if len(train_set) < config.batch_size:
      raise ValueError(f"the training set has {len(train_set)} faces, fewer than "
                       f"batch_size={config.batch_size}.")
    init_variables = None
    if config.get("init_workdir"):  # a run, an export or the authors' imported weights
      init_variables = warm_start.read("prnet", config.init_workdir).variables
    return cls(config, model_config(config), train_set, holdout_set, augment_config(config),
               init_variables)

  def steps_per_epoch(self) -> int:
    return pipeline.steps_per_epoch(len(self.train_set), self.config.batch_size)

  def tx(self):
    return prnet.optimizer(self.model, self.steps_per_epoch())

  # -- the trainer's functions ---------------------------------------------------------------
  def init(self, rng, example_batch):
    params, batch_stats = prnet.init(rng, example_batch["image"].shape, self.model)
    if self.init_variables is not None:  # warm start: same network, fresh optimiser
      v = warm_start.like({"params": params, "batch_stats": batch_stats}, self.init_variables,
                          self.config.init_workdir)
      params, batch_stats = v["params"], v["batch_stats"]
    return dict(params=params, batch_stats=batch_stats, opt_state=self.tx().init(params))

  def train_step(self, state, batch, rng):
    if self.augment is not None:
      batch = augment_lib.augment_batch(rng, batch, self.augment)

    def loss_fn(params):
      loss, (terms, new_stats, _) = prnet.compute_loss(params, state["batch_stats"], batch,
                                                       self.model, train=True)
      return loss, (terms, new_stats)

    (loss, (terms, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    updates, opt_state = self.tx().update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {"loss": loss, "loss/map": terms["map"], "loss/landmarks": terms["landmarks"],
               "loss_px": terms["px"], "l2": terms["l2"], "grad_norm": optax.tree.norm(grads)}
    return dict(params=params, batch_stats=new_stats, opt_state=opt_state), metrics

  def eval_step(self, state, batch):
    loss, (terms, _, s) = prnet.compute_loss(state["params"], state["batch_stats"], batch,
                                             self.model, train=False)
    lmk = face3d.landmarks_from_position_map(prnet.to_pixels(s, self.model.input_size))
    return {"loss": loss, "loss_px": terms["px"],
            "nme2d": jnp.mean(face3d.nme(lmk, batch["landmarks"], dims=2)),
            "nme3d": jnp.mean(face3d.nme(lmk, batch["landmarks"], dims=3))}

  def make_batches(self, start: int):
    batches = pipeline.iterate_batches(self.train_set, self.config.batch_size,
                                       self.config.seed, start_step=start,
                                       process_index=jax.process_index(),
                                       process_count=jax.process_count())
    return pipeline.Prefetcher(map(_select, batches), size=2)

  def make_eval_batches(self):
    for idx in pipeline.eval_index_batches(len(self.holdout_set), self.config.batch_size,
                                           self.config.eval_examples,
                                           process_index=jax.process_index(),
                                           process_count=jax.process_count()):
      yield _select(self.holdout_set.get(idx))

  def make_figure(self, state, batch):
    del batch  # Always the same held-out faces, so figures are comparable across steps.
    fixed = _select(self.holdout_set.get(np.arange(min(4, len(self.holdout_set)))))
    pred = np.asarray(_predict(state["params"], state["batch_stats"],
                               jnp.asarray(fixed["image"]), self.model))
    return face3d_figures.training_figure(fixed["image"], pred, fixed["posmap"],
                                         fixed["landmarks"])

  def as_task(self) -> Task:
    has_eval = len(self.holdout_set) >= self.config.batch_size and self.config.eval_examples > 0
    return Task(init=self.init, train_step=self.train_step, make_batches=self.make_batches,
                eval_step=self.eval_step if has_eval else None,
                make_eval_batches=self.make_eval_batches if has_eval else None,
                make_figure=self.make_figure)


def make_task(config: ml_collections.ConfigDict, stream=True) -> Task:
  """The PRNet `Task` for the trainer."""
  return PRNetTask.create(config, stream).as_task()


def restore_for_inference(workdir: str | pathlib.Path):
  """(params, batch_stats, model config, run config, step) from a training run directory, or
  from an export / imported authors' weights (their run config, or for imported weights the
  ``resfcn`` config at the export's input size)."""
  from bioface_jax.pretrained import store as pretrained_store  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  if export.has_export(workdir):
    source = pretrained_store.read("prnet", workdir)  # an ensemble export too
    config = source.run_config
    if config is None:  # imported weights: the official network's settings
      from train.configs import prnet as configs  # pylint: disable=g-import-not-at-top
      config = configs.get_config("resfcn")
      config.data.size = source.input_size
    config = ml_collections.ConfigDict(config)
    return (source.variables["params"], source.variables["batch_stats"], source.model_config,
            config, source.step)

  def abstract_state(config):
    model = model_config(config)
    shape = (config.batch_size, model.input_size, model.input_size, 3)
    params, batch_stats = jax.eval_shape(lambda: prnet.init(jax.random.key(0), shape, model))
    return {"params": params, "batch_stats": batch_stats,
            "opt_state": jax.eval_shape(prnet.optimizer(model).init, params)}

  state, config, step = export.restore_latest(workdir, abstract_state, "python -m train.prnet",
                                              ml_collections.ConfigDict)
  return state["params"], state["batch_stats"], model_config(config), config, step


__all__ = ["PRNetTask", "load_datasets", "make_task", "model_config", "restore_for_inference"]
