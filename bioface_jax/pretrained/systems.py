"""The four systems as `pretrained` sees them: model config from a run, variables, `apply`.

Each system answers the same four questions, so that `pretrained.load` needs no per-model code:

* ``model_config(run_config)``: the frozen model config from a training run's stored config
  (the mapping that `train/configs/<model>.py` builds and every checkpoint stores). The
  trainers' `train/<model>_task.model_config` call these, so training and inference build the
  same network from the same config.
* ``variables(state)``: the inference variables (no optimiser state) of a restored run state.
* ``make_apply(config, variables, assets)``: a function ``inputs -> dict of NumPy arrays`` with
  the contract's keys (architecture.md, "Inference contract"), jitted once per input shape.
* ``input_size(run_config)``: the side of the square images the model was trained on (the
  images ``apply`` takes; SDPS-Net takes any size and resizes inside, as the authors' code).

SDPS-Net is two networks: its model config is ``{"lcnet": SDPSConfig, "nenet": SDPSConfig}``
(or ``{"fused": SDPSConfig}`` for FusedNet) and its variables ``{part: {"params": ...}}``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax.models import (biofacenet, biofacenet_mirror, face_vae, face_vae_mirror,
                                face_vae_refine, prnet, sdps, sdps_mirror)

NAMES = ("biofacenet", "face_vae", "sdps", "prnet")
TRAIN_COMMANDS = {name: f"python -m train.{name} --config train/configs/{name}.py"
                  for name in NAMES}
TRAIN_COMMANDS["sdps"] = ("python -m train.sdps --config train/configs/sdps.py:nenet "
                          "--config.lcnet_workdir=LCNET_RUN")


def identify_run(run_config: Mapping[str, Any]) -> str:
  """Which system a stored run config belongs to (the trainers store no model name).

  Raises:
    ValueError: the config matches none of the four systems.
  """
  model = run_config.get("model") or {}
  if "task" in run_config:
    return "sdps"
  if "encoder" in model:
    return "prnet"
  if "mask_branch" in model:
    return "face_vae"
  if "input_features" in model or "base_filters" in model:
    return "biofacenet"
  raise ValueError("the stored config belongs to none of the systems "
                   f"{NAMES} (model keys: {sorted(model)})")


def _check_unit_images(images: Any, shape: tuple[int | None, ...], name: str) -> np.ndarray:
  """float32 array of the given shape (None = any) with finite values in [0, 1]."""
  x = np.asarray(images, dtype=np.float32)
  ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
  if not ok:
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    raise ValueError(f"{name}: images must have shape {want}, got {tuple(x.shape)}")
  if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
    raise ValueError(f"{name}: images must be finite floats in [0, 1] "
                     f"(got min {np.nanmin(x):.4g}, max {np.nanmax(x):.4g}); divide 8-bit "
                     "images by 255")
  return x


def _numpy(tree: Any) -> Any:
  return jax.tree.map(np.asarray, jax.device_get(tree))


# --------------------------------------------------------------------------------- BioFaceNet


def biofacenet_config(run: Mapping[str, Any]) -> biofacenet.BioFaceNetConfig:
  """The model's frozen config from a run config.

  The top-level ``learning_rate`` wins, and ``model.lr_schedule_steps = 0`` becomes
  ``num_train_steps`` (a learning-rate schedule spans the run unless told otherwise).
  """
  fields = dict(run["model"])
  fields["learning_rate"] = float(run["learning_rate"])
  if not fields.get("lr_schedule_steps"):  # 0 / absent: the schedule spans the whole run
    fields["lr_schedule_steps"] = int(run["num_train_steps"])
  return biofacenet.BioFaceNetConfig.from_mapping(fields)


BIOFACENET_KEYS = ("fmel", "fblood", "shading", "specular", "weights", "t", "b")


def _biofacenet_apply(config, variables, assets):
  spectra, lut = assets()

  @functools.partial(jax.jit, static_argnames="mirror")
  def run(params, batch_stats, images, mirror):
    out = biofacenet_mirror.predict(params, batch_stats, images, config, spectra, lut,
                                    mirror=mirror)
    return {k: out[k] for k in BIOFACENET_KEYS} | {
        "linear_srgb": out["render"]["linear_srgb"]}

  def apply(images, *, size, mirror=False):
    x = _check_unit_images(images, (None, size, size, 3), "biofacenet")
    return _numpy(run(variables["params"], variables["batch_stats"], x, bool(mirror)))
  return apply


# --------------------------------------------------------------------------------- face VAE


def face_vae_config(run: Mapping[str, Any]) -> face_vae.FaceVAEConfig:
  """The frozen model config from a run config (top-level ``learning_rate`` wins)."""
  fields = dict(run["model"])
  fields["learning_rate"] = float(run["learning_rate"])
  return face_vae.FaceVAEConfig.from_mapping(fields)


def _face_vae_outputs(out, images):
  """The contract's ``image``, ``mask`` (with the mask branch) and ``composite`` of a face VAE
  prediction ``out`` (``image_pre`` [+ ``mask``]) of `images`."""
  result = {"image": out["image_pre"]}
  if "mask" in out:
    result["mask"] = out["mask"]
    result["composite"] = face_vae.composite(out["image_pre"], images, out["mask"])
  else:
    result["composite"] = out["image_pre"]
  return result


def _face_vae_apply(config, variables, assets):
  del assets

  @functools.partial(jax.jit, static_argnames="mirror")
  def run(params, batch_stats, images, mirror):
    out = face_vae_mirror.predict(params, batch_stats, images, config, mirror=mirror)
    return _face_vae_outputs(out, images)

  def refined(images, steps, learning_rate):
    out = face_vae_refine.predict(variables["params"], variables["batch_stats"], images, config,
                                  steps=steps, learning_rate=learning_rate)
    return dict(_face_vae_outputs(out, images), objective_before=out["objective_before"],
                objective_after=out["objective_after"])

  def apply(images, *, size, mirror=False, refine_steps=0,
            refine_lr=face_vae_refine.DEFAULT_LEARNING_RATE):
    x = _check_unit_images(images, (None, size, size, 3), "face_vae")
    if not isinstance(refine_steps, int) or refine_steps < 0:
      raise ValueError(f"face_vae: refine_steps must be an int >= 0, got {refine_steps!r}")
    if refine_steps:
      if mirror:
        raise ValueError("face_vae: mirror and refine_steps are alternatives; refinement "
                         "fits each photo's own latent, mirror averaging blurs that fit")
      return _numpy(refined(jnp.asarray(x), refine_steps, float(refine_lr)))
    return _numpy(run(variables["params"], variables["batch_stats"], x, bool(mirror)))
  return apply


# --------------------------------------------------------------------------------- PRNet


def prnet_config(run: Mapping[str, Any]) -> prnet.PRNetConfig:
  """The model config from a run config (top-level ``learning_rate`` and ``data.size`` win)."""
  fields = dict(run["model"])
  fields["learning_rate"] = float(run["learning_rate"])
  fields["input_size"] = int(run["data"]["size"])
  return prnet.PRNetConfig.from_mapping(fields)


def _prnet_apply(config, variables, assets):
  del assets
  run = jax.jit(lambda p, s, x: prnet.predict(p, s, x, config))

  def apply(images, *, size):
    x = _check_unit_images(images, (None, size, size, 3), "prnet")
    return {"position_map": np.asarray(run(variables["params"], variables["batch_stats"], x))}
  return apply


# --------------------------------------------------------------------------------- SDPS-Net


def _sdps_net_config(run: Mapping[str, Any], net: str, model: Mapping[str, Any]
                     ) -> sdps.SDPSConfig:
  return sdps.SDPSConfig(
      net=net, conv=model["conv"], residual=bool(model["residual"]),
      width_multiplier=float(model["width_multiplier"]), input_size=int(model["input_size"]),
      light_w=float(model["light_w"]), masked_loss=bool(model["masked_loss"]),
      nenet_scale=int(model.get("nenet_scale", 1)),
      learning_rate=float(run["learning_rate"]), num_steps=int(run["num_train_steps"]),
      milestones=tuple(float(x) for x in run["milestones"]))


def sdps_net_config(run: Mapping[str, Any], net: str | None = None) -> sdps.SDPSConfig:
  """One network's config from an SDPS run config (``net`` defaults to the run's task)."""
  net = net or {"psfcn": "nenet"}.get(run["task"], run["task"])
  return _sdps_net_config(run, net, run["model"])


def _sdps_config(run: Mapping[str, Any]) -> dict[str, sdps.SDPSConfig]:
  task = run["task"]
  if task == "fused":
    return {"fused": sdps_net_config(run)}
  if task == "nenet":
    lcnet_run = {"learning_rate": 5e-4, "num_train_steps": 1, "milestones": ()}
    return {"lcnet": _sdps_net_config(lcnet_run, "lcnet", run["lcnet_model"]),
            "nenet": sdps_net_config(run)}
  hint = ("an LCNet run estimates lights only" if task == "lcnet" else
          "a PS-FCN run needs the true lights")
  raise ValueError(f"an SDPS {task!r} run cannot estimate normals from images alone ({hint}); "
                   "give the NENet run trained on an LCNet (train/configs/sdps.py:nenet) "
                   "or a FusedNet run")


def _sdps_variables(state: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
  if "fused" in config:
    return {"fused": {"params": state["params"]}}
  return {"lcnet": {"params": state["lcnet_params"]}, "nenet": {"params": state["params"]}}


def _sdps_apply(config, variables, assets):
  del assets

  @functools.partial(jax.jit, static_argnames="mirror")
  def run(variables, images, mask, mirror):
    batch = {"images": images, "mask": mask}
    if "fused" in config:
      out = sdps_mirror.fused_predict(variables["fused"]["params"], batch, config["fused"],
                                      mirror)
      dirs, ints, normals = out["dirs"], out["intensities"], out["normals"]
    else:
      dirs, ints = sdps_mirror.lcnet_lights(variables["lcnet"]["params"], batch,
                                            config["lcnet"], mirror)
      normals = sdps_mirror.nenet_normals(variables["nenet"]["params"],
                                          batch | {"dirs": dirs, "intensities": ints},
                                          config["nenet"], mirror)
    normals = normals * mask[..., None]
    return {"light_directions": dirs, "light_intensities": ints, "normals": normals}

  def apply(images, *, size, mask=None, mirror=False):
    del size
    x = _check_unit_images(images, (None, None, None, None, 3), "sdps")
    b, _, h, w, _ = x.shape
    m = np.ones((b, h, w), np.float32) if mask is None else np.asarray(mask, np.float32)
    if m.shape != (b, h, w):
      raise ValueError(f"sdps: mask must have shape {(b, h, w)} (B, H, W), got {m.shape}")
    return _numpy(run(variables, x, (m > 0.5).astype(np.float32), mirror=bool(mirror)))
  return apply


# --------------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class System:
  """How `pretrained` builds, stores and runs one system (see the module docstring)."""
  name: str
  model_config: Callable[[Mapping[str, Any]], Any]
  variables: Callable[[Mapping[str, Any], Any], dict[str, Any]]
  make_apply: Callable[..., Callable[..., dict[str, np.ndarray]]]
  input_size: Callable[[Mapping[str, Any]], int]
  config_class: Any


def _params_and_stats(state, config):
  del config
  return {"params": state["params"], "batch_stats": state["batch_stats"]}


SYSTEMS = {
    "biofacenet": System("biofacenet", biofacenet_config, _params_and_stats, _biofacenet_apply,
                         lambda run: int(run["data"]["size"]), biofacenet.BioFaceNetConfig),
    "face_vae": System("face_vae", face_vae_config, _params_and_stats, _face_vae_apply,
                       lambda run: int(run["model"]["input_size"]), face_vae.FaceVAEConfig),
    "prnet": System("prnet", prnet_config, _params_and_stats, _prnet_apply,
                    lambda run: int(run["data"]["size"]), prnet.PRNetConfig),
    "sdps": System("sdps", _sdps_config, _sdps_variables, _sdps_apply,
                   lambda run: int(run["data"]["size"]), sdps.SDPSConfig),
}


def config_to_dict(system: System, config: Any) -> dict[str, Any]:
  """A model config as JSON-able fields (SDPS: one dict per network)."""
  if system.name == "sdps":
    return {part: dataclasses.asdict(c) for part, c in config.items()}
  return dataclasses.asdict(config)


def config_from_dict(system: System, fields: Mapping[str, Any]) -> Any:
  """Inverse of `config_to_dict` (unknown fields are an error naming them)."""
  if system.name == "sdps":
    unknown = sorted(set(fields) - {"lcnet", "nenet", "fused"})
    if unknown or not fields:
      raise ValueError(f"an SDPS model config has parts 'lcnet' + 'nenet' or 'fused', "
                       f"got {sorted(fields)}")
    return {part: sdps.SDPSConfig.from_mapping(f) for part, f in fields.items()}
  return system.config_class.from_mapping(fields)


def to_jax_arrays(tree: Any) -> Any:
  return jax.tree.map(jnp.asarray, tree)
