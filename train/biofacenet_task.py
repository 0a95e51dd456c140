"""BioFaceNet plugged into the model-agnostic trainer: data, train state, step, eval, figure.

`make_task(config)` returns a `bioface_jax.train_lib.Task`:

* data: the cached physics-based synthetic faces (``config.data.source = "synthetic"``, the
  default, generated on first use; ``config.data.world`` = "scenes", the face-scene world of
  `data.synth.scene`, or "faces", the previous skin-only faces) or the Neural Face Editing HDF5 shards
  (``"nfe"``, ``config.data.dir``), both read by `data.nfe.NFEDataset`, batched by the
  deterministic `data.pipeline.iterate_batches` (batch s is a pure function of seed and s);
* state: ``{"params", "batch_stats", "opt_state"}`` (fresh, or the network variables of
  ``config.init_workdir``, a run or export of the same network, with a fresh optimiser);
* step: `bioface_jax.models.biofacenet.compute_loss` (training-mode BatchNorm) + the optimiser;
* eval: the same loss with running BatchNorm statistics on held-out faces; on synthetic faces
  (which carry ground truth) also the held-out recovery metrics ``recovery/*`` (melanin and
  haemoglobin RMSE in network coordinates, camera-b distance, illuminant angle in degrees,
  reconstruction RMSE), so ``metrics.jsonl`` holds the recovery curve over training;
* supervised terms (``model.truth_weights``, off for the authors' recipe): the ground truth of
  the synthetic training faces is read into memory once and added to every batch;
* figure: the paper's Figure 1 layout for the first images of a held-out batch.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bioface_jax import figures, physics
from bioface_jax.models import biofacenet
from bioface_jax.pretrained import systems, warm_start
from bioface_jax.train_lib import Task
from data import nfe, pipeline
from data.synth import labels as synth_labels

# The figure's forward pass, compiled once per model config and batch shape (run eagerly, every
# operation would compile on its own: seconds per figure on CPU).
_apply_eval = jax.jit(functools.partial(biofacenet.apply, train=False), static_argnums=3)

BATCH_KEYS = ("image", "mask", "shading")


def model_config(config: ml_collections.ConfigDict) -> biofacenet.BioFaceNetConfig:
  """The model's frozen config from the run config (the one rule, shared with inference:
  `bioface_jax.pretrained.systems.biofacenet_config`)."""
  return systems.biofacenet_config(config)


def load_datasets(config: ml_collections.ConfigDict, lazy: bool = False):
  """(train, holdout) datasets following ``config.data``.

  ``lazy``: synthetic data that is not cached yet is generated face by face as it is read
  (`data.synth.dataset.synthetic_dataset`), for evaluations that read a few faces.
  """
  data = config.data
  if data.source == "synthetic":
    from data.synth import dataset as synth_dataset  # pylint: disable=g-import-not-at-top
    options = dict(data.get("synth_options", {}) or {})
    if data.get("world", "faces") == "scenes":
      options.update(dict(data.get("scene", {}) or {}))
    return synth_dataset.synthetic_dataset(data.cache_dir or None, data.num_faces, data.size,
                                           data.seed, holdout_fraction=data.holdout_fraction,
                                           world=data.get("world", "faces"),
                                           workers=int(data.get("workers", 0)), lazy=lazy,
                                           **options)
  if data.source == "nfe":
    if not data.dir:
      raise ValueError("config.data.dir must name the directory of the Neural Face Editing "
                       "shards (zx_7_d10_inmc_celebA_XX.hdf5 + zx_7_d3_lrgb_celebA_XX.hdf5).")
    holdout = tuple(data.holdout_shards) if data.get("holdout_shards") else None
    fraction = data.holdout_fraction if holdout is None else None
    return nfe.nfe_splits(data.dir, holdout_shards=holdout, holdout_fraction=fraction,
                          seed=data.seed)
  raise ValueError(f"config.data.source must be 'synthetic' or 'nfe', got {data.source!r}.")


def _select(batch):
  return {k: np.asarray(batch[k], np.float32) for k in BATCH_KEYS}


def truth_keys(model: biofacenet.BioFaceNetConfig) -> tuple[str, ...]:
  """The ground-truth keys the model's loss reads: the supervised terms' and, for
  ``face_region_weight``, the scene world's label maps (made into ``face_region``)."""
  keys = biofacenet.TRUTH_KEYS if model.needs_truth else ()
  return keys + (("labels",) if model.face_region_weight else ())


def load_truth_rows(subset, n: int | None = None,
                    keys: tuple[str, ...] = biofacenet.TRUTH_KEYS
                    ) -> dict[str, np.ndarray] | None:
  """Ground truth ``keys`` of the first n rows of a synthetic subset in memory (float32; a
  ``labels`` key becomes the float32 ``face_region`` map); None for data without ground
  truth (NFE)."""
  if not hasattr(subset, "truth"):
    return None
  n = len(subset) if n is None else min(n, len(subset))
  rows = subset.truth(np.arange(n), keys)
  if "labels" in rows:
    rows[biofacenet.FACE_REGION_KEY] = synth_labels.face_region(rows.pop("labels"))
  return {k: np.asarray(v, np.float32) for k, v in rows.items()}


def recovery_metrics(outputs: dict[str, Any], batch: dict[str, jax.Array],
                     e_true: jax.Array) -> dict[str, jax.Array]:
  """Batch means of per-face recovery errors against the ground truth (eval.recovery's
  conventions: RMSE over the face mask in network coordinates, camera-b distance, spectral
  angle in degrees, linear-sRGB reconstruction RMSE vs the linearised input)."""
  mask = batch["mask"][..., 0] if batch["mask"].ndim == 4 else batch["mask"]
  count = jnp.maximum(jnp.sum(mask, axis=(-2, -1)), 1.0)
  rmse = lambda p, t: jnp.sqrt(jnp.sum(mask * (p - t)**2, axis=(-2, -1)) / count)  # noqa: E731
  e = outputs["render"]["illuminant"]
  cos = jnp.sum(e * e_true, -1) / (jnp.linalg.norm(e, axis=-1) * jnp.linalg.norm(e_true, axis=-1))
  recon = jnp.sqrt(jnp.sum(mask[..., None] * (outputs["render"]["linear_srgb"]
                                               - outputs["linear_input"])**2, axis=(-3, -2, -1))
                   / (3.0 * count))
  return {
      "recovery/melanin_rmse": jnp.mean(rmse(outputs["fmel"], batch["fmel"])),
      "recovery/haemoglobin_rmse": jnp.mean(rmse(outputs["fblood"], batch["fblood"])),
      "recovery/camera_b": jnp.mean(jnp.linalg.norm(outputs["b"] - batch["b"], axis=-1)),
      "recovery/illuminant_angle": jnp.mean(jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))),
      "recovery/reconstruction_rmse": jnp.mean(recon),
  }


@dataclasses.dataclass
class BioFaceNetTask:
  """Holds the fixed physics, model config and datasets; builds the trainer's `Task`."""
  config: ml_collections.ConfigDict
  spectra: physics.Spectra
  lut: jax.Array
  model: biofacenet.BioFaceNetConfig
  train_set: Any
  holdout_set: Any
  train_truth: dict[str, np.ndarray] | None = None
  holdout_truth: dict[str, np.ndarray] | None = None
  init_variables: Any = None  # warm start: the variables of config.init_workdir

  @classmethod
  def create(cls, config: ml_collections.ConfigDict) -> BioFaceNetTask:
    spectra = physics.load_spectra()
    train_set, holdout_set = load_datasets(config)
    if len(train_set) < config.batch_size:
      raise ValueError(f"the training set has {len(train_set)} faces, fewer than "
                       f"batch_size={config.batch_size}.")
    model = model_config(config)
    if model.face_region_weight and config.data.get("world", "faces") != "scenes":
      raise ValueError("model.face_region_weight needs the scene world's label maps: set "
                       "data.world = 'scenes' (the `scenes` variant)")
    keys = truth_keys(model)
    train_truth = load_truth_rows(train_set, keys=keys) if keys else None
    if keys and train_truth is None:
      raise ValueError("model.truth_weights, model.oracle_light_camera and "
                       "model.face_region_weight need training data with ground truth "
                       "(data.source = 'synthetic')")
    holdout_keys = biofacenet.TRUTH_KEYS + tuple(k for k in keys
                                                 if k not in biofacenet.TRUTH_KEYS)
    holdout_truth = (load_truth_rows(holdout_set, config.eval_examples, holdout_keys)
                     if config.eval_examples > 0 else None)
    init_variables = None
    if config.get("init_workdir"):  # a run or an export (same network)
      init_variables = warm_start.read("biofacenet", config.init_workdir).variables
    return cls(config, spectra, physics.skin_lut(spectra), model, train_set, holdout_set,
               train_truth, holdout_truth, init_variables)

  # -- the trainer's functions ---------------------------------------------------------------
  def init(self, rng: jax.Array, example_batch) -> dict[str, Any]:
    params, batch_stats = biofacenet.init(rng, example_batch["image"].shape, self.model)
    if self.init_variables is not None:  # warm start: same network, fresh optimiser
      v = warm_start.like({"params": params, "batch_stats": batch_stats}, self.init_variables,
                          self.config.init_workdir)
      params, batch_stats = v["params"], v["batch_stats"]
    return dict(params=params, batch_stats=batch_stats,
                opt_state=biofacenet.optimizer(self.model).init(params))

  def train_step(self, state, batch, rng):
    del rng  # The model is deterministic (no dropout).
    tx = biofacenet.optimizer(self.model)

    def loss_fn(params):
      loss, (terms, new_stats, _) = biofacenet.compute_loss(
          params, state["batch_stats"], batch, self.spectra, self.lut, self.model, train=True)
      return loss, (terms, new_stats)

    (loss, (terms, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {f"loss/{k}" if k != "total" else "loss": v for k, v in terms.items()}
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.tree.norm(grads)
    return dict(params=params, batch_stats=new_stats, opt_state=opt_state), metrics

  def eval_step(self, state, batch):
    loss, (terms, _, outputs) = biofacenet.compute_loss(
        state["params"], state["batch_stats"], batch, self.spectra, self.lut, self.model,
        train=False)
    metrics = {"loss": loss, **{f"loss/{k}": v for k, v in terms.items() if k != "total"}}
    if all(k in batch for k in biofacenet.TRUTH_KEYS):
      e_true = physics.illuminant(self.spectra, batch["weights"], batch["t"],
                                  daylight=self.model.daylight)
      metrics.update(recovery_metrics(outputs, batch, e_true))
    return metrics

  def _with_truth(self, batch):
    out = _select(batch)
    if self.train_truth is not None:
      idx = np.asarray(batch["index"], np.int64)
      out.update({k: v[idx] for k, v in self.train_truth.items()})
    return out

  def make_batches(self, start: int):
    # Each process reads only its contiguous slice of every global batch (rows
    # [p * B / P, (p + 1) * B / P) of batch s), the slice the trainer's shard_batch expects.
    batches = pipeline.iterate_batches(self.train_set, self.config.batch_size,
                                       self.config.seed, start_step=start,
                                       process_index=jax.process_index(),
                                       process_count=jax.process_count(),
                                       return_index=self.train_truth is not None)
    return pipeline.Prefetcher(map(self._with_truth, batches), size=2)

  def make_eval_batches(self):
    for idx in pipeline.eval_index_batches(len(self.holdout_set), self.config.batch_size,
                                           self.config.eval_examples,
                                           process_index=jax.process_index(),
                                           process_count=jax.process_count()):
      batch = _select(self.holdout_set.get(idx))
      if self.holdout_truth is not None:
        batch.update({k: v[idx] for k, v in self.holdout_truth.items()})
      yield batch

  def make_figure(self, state, batch):
    del batch  # Always the same held-out faces, so figures are comparable across steps.
    source = self.holdout_set if len(self.holdout_set) >= 4 else self.train_set
    fixed = _select(source.get(np.arange(min(4, len(source)))))
    outputs, _ = _apply_eval(state["params"], state["batch_stats"], jnp.asarray(fixed["image"]),
                             self.model, spectra=self.spectra, lut=self.lut)
    outputs = jax.tree.map(np.asarray, outputs)
    return figures.decomposition_figure(fixed["image"], outputs, fixed["mask"], rows=4)

  def as_task(self) -> Task:
    has_eval = len(self.holdout_set) >= self.config.batch_size and self.config.eval_examples > 0
    return Task(init=self.init, train_step=self.train_step, make_batches=self.make_batches,
                eval_step=self.eval_step if has_eval else None,
                make_eval_batches=self.make_eval_batches if has_eval else None,
                make_figure=self.make_figure)


def make_task(config: ml_collections.ConfigDict) -> Task:
  """The BioFaceNet `Task` for the trainer."""
  return BioFaceNetTask.create(config).as_task()


def restore_for_inference(workdir: str | pathlib.Path):
  """(params, batch_stats, model config, run config, step) of a trained model.

  ``workdir`` is a training run directory (the latest checkpoint in ``checkpoints/``) or an
  inference export written by ``python -m train.export`` (``variables.msgpack``).
  """
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  if not (pathlib.Path(workdir) / "checkpoints").is_dir() and export.has_export(workdir):
    variables, meta = export.load_inference(workdir)
    config = ml_collections.ConfigDict(meta["config"])
    return (variables["params"], variables["batch_stats"], model_config(config), config,
            int(meta["step"]))

  def abstract_state(config):
    model = model_config(config)
    shape = (config.batch_size, config.data.size, config.data.size, 3)
    params, batch_stats = jax.eval_shape(lambda: biofacenet.init(jax.random.key(0), shape, model))
    return {"params": params, "batch_stats": batch_stats,
            "opt_state": jax.eval_shape(biofacenet.optimizer(model).init, params)}

  state, config, step = export.restore_latest(workdir, abstract_state, "python -m train.biofacenet",
                                              ml_collections.ConfigDict)
  return state["params"], state["batch_stats"], model_config(config), config, step


__all__ = ["BioFaceNetTask", "make_task", "model_config", "load_datasets",
           "restore_for_inference"]
