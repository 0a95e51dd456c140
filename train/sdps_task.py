"""SDPS-Net plugged into the model-agnostic trainer: scene bank, in-step rendering, state, eval,
figures, and restoring trained runs.

`make_task(config)` returns a `bioface_jax.train_lib.Task`:

* data: `data.photometric.synth.scene_bank` (cached synthetic scenes with exact normals); each
  batch holds B scenes (+ NENet crop offsets). Lights, shadows, noise and the images are made
  *inside* the jitted step from its key (`synth.render_scenes`), so every step sees new lights;
* state: ``{"params", "opt_state"}`` (+ ``"lcnet_params"`` for ``nenet``: the frozen stage-1
  network, carried unchanged so the checkpoint is self-contained);
* step: `bioface_jax.models.sdps.compute_loss` + Adam with SDPS's halving schedule;
* eval: the first `data.eval_scenes` of the held-out `data.eval_set` (default ``objects``) at
  `data.eval_images` lights: LCNet direction / intensity error, or the normal MAE;
* figure: input images, estimated vs true normals (RGB = (n + 1)/2), error map, and the
  estimated vs true light directions on the hemisphere (x, y).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.figure
import ml_collections
import numpy as np
import optax

from bioface_jax import photometric
from bioface_jax.models import sdps
from bioface_jax.pretrained import systems, warm_start
from bioface_jax.train_lib import Task
from data.photometric import synth

SCENE_KEYS = synth.SCENE_KEYS


def model_config(config: ml_collections.ConfigDict, net: str | None = None) -> sdps.SDPSConfig:
  """The network's frozen config from a run config (shared with inference:
  `bioface_jax.pretrained.systems.sdps_net_config`)."""
  return systems.sdps_net_config(config, net)


def _crop(x, offsets, crop):
  """Per-sample (row, col) crops of the spatial axes right after the batch (and image) axes."""
  def one(a, off):
    spatial = a.ndim - (3 if a.shape[-1] == 3 and a.ndim >= 3 else 2)
    start = [0] * a.ndim
    start[spatial], start[spatial + 1] = off[0], off[1]
    size = list(a.shape)
    size[spatial], size[spatial + 1] = crop, crop
    return jax.lax.dynamic_slice(a, start, size)
  return jax.vmap(one)(x, offsets)


@dataclasses.dataclass
class SDPSTask:
  """Holds the configs, scene bank, held-out set and (stage 2) the frozen LCNet."""
  config: ml_collections.ConfigDict
  model: sdps.SDPSConfig
  bank: dict[str, np.ndarray]
  evalset: dict[str, np.ndarray]
  lcnet_model: sdps.SDPSConfig | None = None
  lcnet_params: Any = None
  init_params: Any = None
  _jit_figure: Any = None

  @classmethod
  def create(cls, config: ml_collections.ConfigDict, progress=None) -> SDPSTask:
    if config.task not in ("lcnet", "nenet", "psfcn", "fused"):
      raise ValueError(f"config.task must be lcnet, nenet, psfcn or fused, got {config.task!r}")
    d = config.data
    lcnet_model = lcnet_params = None
    if config.task == "nenet":
      if not config.lcnet_workdir:
        raise ValueError("the nenet task trains on a frozen LCNet: set "
                         "--config.lcnet_workdir=<the stage-1 run directory>")
      run = network_of(restore_run(config.lcnet_workdir), "lcnet", config.lcnet_workdir)
      lcnet_model, lcnet_params = run.model, run.params
      with config.unlocked():
        config.lcnet_model = run.config.model.to_dict()
        config.lcnet_step = run.step
    model = model_config(config)
    init_params = None
    if config.get("init_workdir"):
      init = network_of(restore_run(config.init_workdir), model.net, config.init_workdir)
      same = ("net", "conv", "residual", "width_multiplier")
      if any(getattr(init.model, k) != getattr(model, k) for k in same):
        raise ValueError(
            f"init_workdir {config.init_workdir} holds a "
            f"{ {k: getattr(init.model, k) for k in same} } network, but this run trains "
            f"{ {k: getattr(model, k) for k in same} }")
      init_params = init.params
      with config.unlocked():
        config.init_step = init.step
    bank = synth.scene_bank(d.bank_size, d.size, d.seed, d.mix.to_dict(),
                            d.cache_dir or None, progress)
    evalset = synth.test_set(d.get("eval_set", "objects"), d.eval_scenes, d.size, d.seed,
                             num_lights=max(d.eval_images, 1))
    return cls(config, model, bank, evalset, lcnet_model, lcnet_params, init_params)

  # -- rendering and the network inputs -------------------------------------------------------
  def _render(self, key, batch, dirs=None, ints=None, train=True):
    d = self.config.data
    scenes = {k: batch[k] for k in SCENE_KEYS}
    return synth.render_scenes(
        key, scenes, d.num_images if dirs is None else dirs.shape[1],
        strategy=d.strategy, num_strata=d.num_strata or None, max_polar_deg=d.max_polar_deg,
        cast=bool(d.cast_shadows), shadow_steps=d.size // 2, noise=d.noise if train else 0.025,
        exposure=d.exposure, dirs=dirs, intensities=ints,
        factor_range=tuple(d.get("factor_range", (1.0, 3.0))) if train else (1.0, 3.0),
        ambient=d.get("ambient", 0.0) if train else 0.0,
        tint=d.get("tint", 0.0) if train else 0.0,
        shot_noise=d.get("shot_noise", 0.0) if train else 0.0)

  def _inputs(self, state, batch, images, dirs, ints, crop: bool):
    """The batch the network sees: LCNet lights for nenet; crops for nenet/psfcn."""
    net_batch = {"images": images, "mask": batch["mask"], "normals": batch["normals"],
                 "dirs": dirs, "intensities": ints}
    if self.config.task == "nenet":
      out = sdps.apply(self.lcnet_params_of(state), net_batch, self.lcnet_model)
      pdirs, pints = sdps.lcnet_predict(out, self.lcnet_model.int_low, self.lcnet_model.int_high)
      net_batch["dirs"], net_batch["intensities"] = (jax.lax.stop_gradient(pdirs),
                                                     jax.lax.stop_gradient(pints))
    c = self.config.data.crop
    if crop and self.config.task in ("nenet", "psfcn") and 0 < c < self.config.data.size:
      off = batch["crop"]
      net_batch["images"] = _crop(net_batch["images"], off, c)
      net_batch["mask"] = _crop(net_batch["mask"], off, c)
      net_batch["normals"] = _crop(net_batch["normals"], off, c)
    return net_batch

  def lcnet_params_of(self, state):
    return state["lcnet_params"] if "lcnet_params" in state else self.lcnet_params

  # -- the trainer's functions ----------------------------------------------------------------
  def init(self, rng, example_batch):
    d = self.config.data
    crop = d.crop if self.config.task in ("nenet", "psfcn") and 0 < d.crop < d.size else d.size
    params, _ = sdps.init(rng, (1, d.num_images, crop, crop, 3), self.model)
    if self.init_params is not None:  # warm start (fine-tuning): same tree, same shapes
      if jax.tree.structure(params) != jax.tree.structure(self.init_params) or any(
          jax.tree.leaves(jax.tree.map(lambda a, b: a.shape != b.shape, params,
                                       self.init_params))):
        raise ValueError(f"init_workdir {self.config.init_workdir}: parameter tree or shapes "
                         "differ from this run's network")
      params = jax.tree.map(jnp.asarray, self.init_params)
    state = {"params": params, "opt_state": sdps.optimizer(self.model).init(params)}
    if self.config.task == "nenet":
      state["lcnet_params"] = jax.tree.map(jnp.asarray, self.lcnet_params)
    return state

  def train_step(self, state, batch, rng):
    images, dirs, ints = self._render(rng, batch)
    net_batch = self._inputs(state, batch, images, dirs, ints, crop=True)
    tx = sdps.optimizer(self.model)
    (loss, metrics), grads = jax.value_and_grad(
        lambda p: sdps.compute_loss(p, net_batch, self.model), has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = dict(state, params=optax.apply_updates(state["params"], updates),
                     opt_state=opt_state)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
    return new_state, metrics

  def eval_step(self, state, batch):
    images, dirs, ints = self._render(jax.random.key(7), batch, batch["dirs"],
                                      batch["intensities"], train=False)
    net_batch = self._inputs(state, batch, images, dirs, ints, crop=False)
    loss, metrics = sdps.compute_loss(state["params"], net_batch, self.model)
    return {k: v for k, v in metrics.items() if k in ("loss", "mae_deg", "dir_err_deg",
                                                      "int_err")}

  def make_batches(self, start: int):
    """Batch s: scenes chosen by `default_rng([seed, s])` (+ crop offsets): deterministic."""
    n = len(self.bank["mask"])
    step = start
    while True:
      rng = np.random.default_rng([self.config.seed, 1, step])
      idx = rng.integers(0, n, self.config.batch_size)
      batch = {k: self.bank[k][idx] for k in SCENE_KEYS}
      batch["crop"] = synth.random_crops(rng, batch["mask"], self.config.data.crop,
                                         self.config.data.min_crop_fraction)
      yield batch
      step += 1

  def make_eval_batches(self):
    n = len(self.evalset["mask"])
    b = self.config.batch_size
    k = self.config.data.eval_images
    for s in range(0, n - n % b, b):
      batch = {key: self.evalset[key][s:s + b] for key in SCENE_KEYS}
      batch["dirs"] = self.evalset["dirs"][s:s + b, :k]
      batch["intensities"] = self.evalset["intensities"][s:s + b, :k]
      yield batch

  def _figure_outputs(self, state, ev):
    images, dirs, ints = self._render(jax.random.key(7), ev, ev["dirs"], ev["intensities"],
                                      train=False)
    net_batch = self._inputs(state, ev, images, dirs, ints, crop=False)
    out = sdps.predict(state["params"], net_batch, self.model)
    return images[0], dirs[0], out.get("dirs", net_batch["dirs"])[0], out.get("normals")

  def make_figure(self, state, batch):
    del batch
    ev = next(self.make_eval_batches(), None)
    if ev is None:
      return np.zeros((8, 8, 3), np.uint8)
    if self._jit_figure is None:
      self._jit_figure = jax.jit(self._figure_outputs)
    images, dirs, pred_dirs, normals = jax.device_get(self._jit_figure(state, ev))
    return ps_figure(images, ev["mask"][0], ev["normals"][0],
                     None if normals is None else normals[0], dirs, pred_dirs)

  def as_task(self) -> Task:
    has_eval = len(self.evalset["mask"]) >= self.config.batch_size
    return Task(init=self.init, train_step=self.train_step, make_batches=self.make_batches,
                eval_step=self.eval_step if has_eval else None,
                make_eval_batches=self.make_eval_batches if has_eval else None,
                make_figure=self.make_figure)


def normals_to_rgb(n: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """RGB coding of normals: (n + 1)/2, background black."""
  rgb = np.clip((np.asarray(n) + 1) / 2, 0, 1)
  return rgb if mask is None else rgb * (np.asarray(mask)[..., None] > 0.5)


def ps_figure(images, mask, gt, pred, dirs, pred_dirs, num_inputs: int = 3, title: str = ""):
  """Inputs, true / estimated normals, angular error map, and lights on the hemisphere."""
  cols = num_inputs + (3 if pred is not None else 1) + 1
  fig = matplotlib.figure.Figure(figsize=(2.0 * cols, 2.3))
  axes = fig.subplots(1, cols)
  scale = max(float(np.percentile(images[:num_inputs], 99)), 1e-6)
  for i in range(num_inputs):
    axes[i].imshow(np.clip(images[min(i, len(images) - 1)] / scale, 0, 1))
    axes[i].set_title(f"input {i}", fontsize=8)
  k = num_inputs
  axes[k].imshow(normals_to_rgb(gt, mask))
  axes[k].set_title("true normals", fontsize=8)
  if pred is not None:
    axes[k + 1].imshow(normals_to_rgb(pred, mask))
    axes[k + 1].set_title("estimated", fontsize=8)
    err = np.asarray(photometric.angular_error(pred, gt, mask))
    mae = float(photometric.mean_angular_error(pred, gt, mask))
    im = axes[k + 2].imshow(err, cmap="magma", vmin=0, vmax=45)
    axes[k + 2].set_title(f"error (MAE {mae:.1f}°)", fontsize=8)
    fig.colorbar(im, ax=axes[k + 2], fraction=0.046)
  ax = axes[-1]
  t = np.linspace(0, 2 * np.pi, 100)
  ax.plot(np.cos(t), np.sin(t), "k-", lw=0.5)
  ax.scatter(dirs[:, 0], dirs[:, 1], s=10, c="tab:blue", label="true")
  if pred_dirs is not None:
    ax.scatter(pred_dirs[:, 0], pred_dirs[:, 1], s=10, c="tab:red", marker="x", label="est.")
    for a, b in zip(dirs, pred_dirs):
      ax.plot([a[0], b[0]], [a[1], b[1]], "r-", lw=0.4)
  ax.set_aspect("equal")
  ax.set_xlim(-1.05, 1.05)
  ax.set_ylim(-1.05, 1.05)
  ax.set_title("lights (x, y)", fontsize=8)
  ax.legend(fontsize=6, loc="lower right")
  for a in axes[:-1]:
    a.axis("off")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def make_task(config: ml_collections.ConfigDict, progress=None) -> Task:
  """The SDPS `Task` for the trainer (for ``nenet``, also fills ``config.lcnet_model``)."""
  return SDPSTask.create(config, progress).as_task()


@dataclasses.dataclass
class RestoredRun:
  """A trained run: parameters, model config, run config, step (+ the frozen LCNet)."""
  params: Any
  model: sdps.SDPSConfig
  config: ml_collections.ConfigDict
  step: int
  lcnet_params: Any = None
  lcnet_model: sdps.SDPSConfig | None = None


MODEL_FIELDS = ("conv", "residual", "width_multiplier", "input_size", "light_w", "masked_loss")


def _restore_export(workdir: str | pathlib.Path) -> RestoredRun:
  """An SDPS export (`train.export`) or the authors' imported weights as a restored run: the
  NENet with the LCNet it runs on, or a FusedNet. Imported weights get a run config that
  describes them (task ``nenet``, the networks' fields, SDPS-Net's schedule)."""
  source = warm_start.read("sdps", workdir)
  models, variables = source.model_config, source.variables
  config = source.run_config
  if config is None:  # imported weights
    main = models.get("fused") or models["nenet"]
    config = {"task": "fused" if "fused" in models else "nenet",
              "variant": f"imported ({source.meta.get('imported', {}).get('source', 'export')})",
              "learning_rate": main.learning_rate, "num_train_steps": main.num_steps,
              "milestones": tuple(main.milestones),
              "model": {k: getattr(main, k) for k in MODEL_FIELDS}}
    if "lcnet" in models:
      config["lcnet_model"] = {k: getattr(models["lcnet"], k) for k in MODEL_FIELDS}
  config = ml_collections.ConfigDict(config)
  if "fused" in models:
    return RestoredRun(variables["fused"]["params"], models["fused"], config, source.step)
  return RestoredRun(variables["nenet"]["params"], models["nenet"], config, source.step,
                     variables["lcnet"]["params"], models["lcnet"])


def network_of(run: RestoredRun, net: str, where) -> RestoredRun:
  """Network `net` of a restored run or export: the run itself, the LCNet a NENet run (or the
  authors' LCNet + NENet) carries, or that pair joined as a FusedNet's two parts."""
  if run.model.net == net:
    return run
  if net == "lcnet" and run.lcnet_params is not None:
    config = ml_collections.ConfigDict({"task": "lcnet", "variant": run.config.get("variant", ""),
                                        "model": run.config.lcnet_model})
    return RestoredRun(run.lcnet_params, run.lcnet_model, config, run.step)
  if net == "fused" and run.lcnet_params is not None:
    return RestoredRun({"lcnet": run.lcnet_params, "nenet": run.params},
                       dataclasses.replace(run.model, net="fused"), run.config, run.step)
  raise ValueError(f"{where} holds a {run.model.net} network, not {net}")


def restore_run(workdir: str | pathlib.Path) -> RestoredRun:
  """Restores the latest checkpoint of a `train.sdps` run directory (host arrays), or an SDPS
  export / the authors' imported weights (`_restore_export`)."""
  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  if export.has_export(workdir):
    return _restore_export(workdir)

  def lcnet_config(config):
    return model_config(ml_collections.ConfigDict(
        {"task": "lcnet", "model": config.lcnet_model, "learning_rate": 5e-4,
         "num_train_steps": 1, "milestones": ()}))

  def abstract_state(config):
    shape = (1, 2, 16, 16, 3)
    model = model_config(config)
    abstract = {"params": jax.eval_shape(lambda: sdps.init(jax.random.key(0), shape, model)[0])}
    abstract["opt_state"] = jax.eval_shape(sdps.optimizer(model).init, abstract["params"])
    if config.task == "nenet":
      abstract["lcnet_params"] = jax.eval_shape(
          lambda: sdps.init(jax.random.key(0), shape, lcnet_config(config))[0])
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)

  state, config, step = export.restore_latest(workdir, abstract_state, "python -m train.sdps",
                                              ml_collections.ConfigDict)
  state = jax.device_get(state)
  lcnet_model = lcnet_config(config) if config.task == "nenet" else None
  return RestoredRun(state["params"], model_config(config), config, step,
                     state.get("lcnet_params"), lcnet_model)


__all__ = ["SDPSTask", "make_task", "model_config", "network_of", "restore_run", "RestoredRun",
           "ps_figure", "normals_to_rgb"]
