"""The face VAE plugged into the model-agnostic trainer: data, train state, step, eval, figure.

`make_task(config)` returns a `bioface_jax.train_lib.Task`:

* data: cached synthetic portrait scenes (``config.data.source = "synthetic"``, default,
  `data.synth_vae`; ``config.data.world`` "scenes" = the face-scene world, "faces" = the
  previous portraits) or CelebA + face-parsing masks through TFDS (``"celeba"``,
  `data.celeba_faceparsing`), batched by the deterministic `data.pipeline.iterate_batches`;
* state: ``{"params", "batch_stats", "opt_state"}``; step: `face_vae.compute_loss` (training
  BatchNorm, sampled z, label-mask compositing) + per-tensor clip + Keras Adam; with
  ``config.train_part = "encoder"`` (amortised refinement, from a trained model) the same loss
  as the deployed network computes it (running statistics, z = mean) and only the encoder
  learns (`trainable`);
* eval: the loss with running statistics and z = mean, plus SSIM / l1 / l2 of the deployed
  reconstruction (predicted-mask compositing) on held-out scenes;
* figure: rows of input | label mask | predicted mask | decoder output | composite.
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

from bioface_jax import image_metrics
from bioface_jax.models import face_vae
from bioface_jax.pretrained import systems, warm_start
from bioface_jax.train_lib import Task
from data import pipeline

# The figure's forward pass, compiled once per model config and batch shape (run eagerly, every
# operation would compile on its own: seconds per figure on CPU).
_predict = jax.jit(face_vae.predict, static_argnums=3)


def model_config(config: ml_collections.ConfigDict) -> face_vae.FaceVAEConfig:
  """The frozen model config from the run config (shared with inference:
  `bioface_jax.pretrained.systems.face_vae_config`)."""
  return systems.face_vae_config(config)


def load_datasets(config: ml_collections.ConfigDict):
  """(train, holdout, test) datasets following ``config.data``."""
  data = config.data
  size = int(config.model.input_size)
  if data.source == "synthetic":
    from data import synth_vae  # pylint: disable=g-import-not-at-top
    return synth_vae.vae_datasets(data.cache_dir or None, data.num_faces, size, data.seed,
                                  holdout_fraction=data.holdout_fraction, n_test=data.n_test,
                                  world=data.get("world", "faces"),
                                  workers=int(data.get("workers", 0)),
                                  options=dict(data.get("scene", {}) or {}))
  if data.source == "celeba":
    from data import celeba_faceparsing  # pylint: disable=g-import-not-at-top
    return celeba_faceparsing.load_splits(size, data_dir=data.tfds_data_dir or None)
  raise ValueError(f"config.data.source must be 'synthetic' or 'celeba', got {data.source!r}")


TRAIN_PARTS = ("all", "encoder")


def train_part(config: ml_collections.ConfigDict) -> str:
  """``config.train_part`` ("all" when absent: runs from before the field), checked."""
  part = config.get("train_part", "all")
  if part not in TRAIN_PARTS:
    raise ValueError(f"config.train_part must be one of {TRAIN_PARTS}, got {part!r}")
  return part


def trainable(params: Any, part: str) -> Any:
  """The parameters the optimiser updates: all, or the encoder's alone (``"encoder"``: the
  decoders stay as trained, so the encoder learns to map images to the latents that the fixed
  decoders draw best: refinement's objective (`face_vae_refine`) amortised over the data)."""
  return params if part == "all" else {"encoder": params["encoder"]}


def _select(batch):
  return {"image": np.asarray(batch["image"], np.float32),
          "mask": np.asarray(batch["mask"], np.float32)}


def figure_rows(images, masks, outputs) -> np.ndarray:
  """(rows*H, 5*W, 3) float image: input | label mask | predicted mask | pre | composite."""
  grey = lambda m: np.repeat(np.asarray(m)[..., None], 3, -1)  # noqa: E731
  pred = outputs.get("mask")
  rows = []
  for i in range(len(images)):
    pm = grey(pred[i]) if pred is not None else np.full_like(images[i], 0.5)
    cols = [images[i], grey(masks[i]), pm, outputs["image_pre"][i], outputs["composite"][i]]
    rows.append(np.concatenate([np.asarray(c, np.float32) for c in cols], 1))
  return np.clip(np.concatenate(rows, 0), 0, 1)


@dataclasses.dataclass
class FaceVAETask:
  """Holds the model config and datasets; builds the trainer's `Task`."""
  config: ml_collections.ConfigDict
  model: face_vae.FaceVAEConfig
  train_set: Any
  holdout_set: Any
  test_set: Any
  init_variables: Any = None  # warm start: the variables of config.init_workdir

  @classmethod
  def create(cls, config: ml_collections.ConfigDict) -> FaceVAETask:
    if train_part(config) != "all" and not config.get("init_workdir"):
      raise ValueError(f"config.train_part={config.train_part!r} trains part of a trained "
                       "network: give the trained model with --config.init_workdir=DIR")
    model = model_config(config)
    train_set, holdout_set, test_set = load_datasets(config)
    if len(train_set) < config.batch_size:
      raise ValueError(f"the training set has {len(train_set)} images, fewer than "
                       f"batch_size={config.batch_size}.")
    init_variables = None
    if config.get("init_workdir"):  # a run, an export or the authors' imported weights
      init_variables = warm_start.read("face_vae", config.init_workdir).variables
    return cls(config, model, train_set, holdout_set, test_set, init_variables)

  def init(self, rng: jax.Array, example_batch) -> dict[str, Any]:
    params, batch_stats = face_vae.init(rng, example_batch["image"].shape, self.model)
    if self.init_variables is not None:  # warm start: same network, fresh optimiser
      v = warm_start.like({"params": params, "batch_stats": batch_stats}, self.init_variables,
                          self.config.init_workdir)
      params, batch_stats = v["params"], v["batch_stats"]
    part = train_part(self.config)
    return dict(params=params, batch_stats=batch_stats,
                opt_state=face_vae.optimizer(self.model).init(trainable(params, part)))

  def train_step(self, state, batch, rng):
    tx = face_vae.optimizer(self.model)
    part = train_part(self.config)

    def loss_fn(learned):
      params = {**state["params"], **learned}
      # The encoder alone learns as the deployed network runs: running statistics, z = mean.
      loss, (terms, new_stats, _) = face_vae.compute_loss(
          params, state["batch_stats"], batch, self.model, train=part == "all", rng=rng)
      return loss, (terms, new_stats)

    learned = trainable(state["params"], part)
    (loss, (terms, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(learned)
    updates, opt_state = tx.update(grads, state["opt_state"], learned)
    params = {**state["params"], **optax.apply_updates(learned, updates)}
    metrics = {f"loss/{k}": v for k, v in terms.items() if k != "total"}
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.tree.norm(grads)
    return dict(params=params, batch_stats=new_stats, opt_state=opt_state), metrics

  def eval_step(self, state, batch):
    loss, (terms, _, out) = face_vae.compute_loss(
        state["params"], state["batch_stats"], batch, self.model, train=False)
    x = batch["image"]
    mask = out.get("mask")
    deployed = out["image_pre"] if mask is None else face_vae.composite(out["image_pre"], x, mask)
    metrics = {"loss": loss, **{f"loss/{k}": v for k, v in terms.items() if k != "total"}}
    metrics["ssim"] = jnp.mean(image_metrics.ssim(x, deployed))
    metrics["l1"] = jnp.mean(image_metrics.l1(x, deployed))
    metrics["l2"] = jnp.mean(image_metrics.l2(x, deployed))
    return metrics

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
    del batch  # Always the same held-out scenes, so figures are comparable across steps.
    source = self.holdout_set if len(self.holdout_set) >= 4 else self.train_set
    fixed = _select(source.get(np.arange(min(4, len(source)))))
    out = _predict(state["params"], state["batch_stats"], jnp.asarray(fixed["image"]),
                   self.model)
    mask = out.get("mask")
    out["composite"] = (out["image_pre"] if mask is None
                        else face_vae.composite(out["image_pre"], fixed["image"], mask))
    return figure_rows(fixed["image"], fixed["mask"], jax.tree.map(np.asarray, out))

  def as_task(self) -> Task:
    has_eval = len(self.holdout_set) >= self.config.batch_size and self.config.eval_examples > 0
    return Task(init=self.init, train_step=self.train_step, make_batches=self.make_batches,
                eval_step=self.eval_step if has_eval else None,
                make_eval_batches=self.make_eval_batches if has_eval else None,
                make_figure=self.make_figure)


def make_task(config: ml_collections.ConfigDict) -> Task:
  """The face VAE `Task` for the trainer."""
  return FaceVAETask.create(config).as_task()


def restore_for_inference(workdir: str | pathlib.Path):
  """(params, batch_stats, model config, run config, step) of the latest checkpoint of a run,
  or of an export / imported authors' weights (their run config, or for imported weights the
  ``ssim_l2_mask,paper,authors`` config with the export's mask setting)."""
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  if export.has_export(workdir):
    source = warm_start.read("face_vae", workdir)
    config = source.run_config
    if config is None:  # imported weights: the authors' settings
      from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top
      config = configs.get_config("ssim_l2_mask,paper,authors")
      config.model.mask_branch = source.model_config.mask_branch
    config = ml_collections.ConfigDict(config)
    return (source.variables["params"], source.variables["batch_stats"], source.model_config,
            config, source.step)

  def abstract_state(config):
    model = model_config(config)
    shape = (config.batch_size, model.input_size, model.input_size, 3)
    params, batch_stats = jax.eval_shape(lambda: face_vae.init(jax.random.key(0), shape, model))
    return {"params": params, "batch_stats": batch_stats,
            "opt_state": jax.eval_shape(face_vae.optimizer(model).init,
                                        trainable(params, train_part(config)))}

  state, config, step = export.restore_latest(workdir, abstract_state, "python -m train.face_vae",
                                              ml_collections.ConfigDict)
  return state["params"], state["batch_stats"], model_config(config), config, step


__all__ = ["FaceVAETask", "TRAIN_PARTS", "figure_rows", "load_datasets", "make_task",
           "model_config", "restore_for_inference", "train_part", "trainable"]
