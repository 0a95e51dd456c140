"""PRNet (Feng et al., ECCV 2018): UV position-map regression, functional API and loss.

``init(rng, (1, 256, 256, 3), PRNetConfig())`` is the official ResFCN256 (13,353,618
parameters); ``encoder="resnet18"`` / ``"mobilenet_v2"`` swap the encoder (prnet-spec.md §3).
Networks are in `bioface_jax.models.prnet_nets`.

Scales (prnet-spec.md §1, §11.5): input RGB in [0, 1]; the network outputs s = sigmoid(...) in
[0, 1]; the position map in crop pixels is ``P = s * 1.1 R`` (`to_pixels`); labels are P / 1.1R,
clipped to [0, 1].

Loss (ours, §5), per sample on the normalised map:
``L = sum_p W_p sqrt(sum_c m_c (s - P/1.1R)^2_pc + 1e-12) / sum_p W_p`` with W the 16:4:3:0
UV weight mask at R (`face3d.weight_mask`) and m = (1, 1, 1); batch mean; plus
``l2 * 1/2 sum w^2`` over all conv kernels. Samples whose ``has_dense`` is 0 (real images without
a Basel Face Model) use the landmark-only loss instead: the mean Euclidean x/y distance (/1.1R)
between the 68 landmarks read from the predicted map (`face3d.landmarks_from_position_map`) and
the given landmarks. The sqrt's epsilon keeps the gradient finite at a perfect fit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bioface_jax.face3d import uv as uv_lib
from bioface_jax.models.prnet_nets import ENCODERS, PRNet

OUTPUT_SCALE = 1.1


@dataclasses.dataclass(frozen=True)
class PRNetConfig:
  """Model and optimiser settings; defaults = the official ResFCN256 and the paper's Adam.

  Attributes:
    encoder: "resfcn" (official), "resnet18" or "mobilenet_v2".
    width_multiplier: scales all widths (not the RGB input, not the last 3 decoder layers).
    input_size: R in {64, 128, 256} (any 256 / 2^k >= 32); the UV map has resolution R.
    bn_momentum: decoder/ResFCN BatchNorm momentum (TF decay 0.999; CPU configs use 0.9).
    learning_rate: Adam learning rate (1e-4; the seed report used 1e-5 for MobileNetV2).
    lr_decay: factor applied every `lr_decay_epochs` epochs (staircase); 0.99 as the PyTorch
      port, 0.5 for the `paper` variant.
    lr_decay_epochs: epochs between decays.
    l2: weight of 1/2 sum w^2 over all conv kernels (the official graph's regulariser 2e-4).
    landmark_weight: weight of the landmark-only loss for samples without dense truth.
    ensemble: number of independently trained networks whose maps `predict` averages (an
      ensemble export, ``python -m train.export --workdir RUN1 --workdir RUN2 ...``); their
      variables are stacked along a new leading axis of every array. 1 = one network (training
      always uses 1).
  """
  encoder: str = "resfcn"
  width_multiplier: float = 1.0
  input_size: int = 256
  bn_momentum: float = 0.999
  learning_rate: float = 1e-4
  lr_decay: float = 0.99
  lr_decay_epochs: int = 5
  l2: float = 2e-4
  landmark_weight: float = 1.0
  ensemble: int = 1

  def __post_init__(self):
    if self.encoder not in ENCODERS:
      raise ValueError(f"PRNetConfig.encoder must be one of {sorted(ENCODERS)}, got "
                       f"{self.encoder!r}")
    if not self.width_multiplier > 0:
      raise ValueError(f"PRNetConfig.width_multiplier must be > 0, got {self.width_multiplier}")
    if not (self.input_size >= 32 and 256 % self.input_size == 0):
      raise ValueError(f"PRNetConfig.input_size must be 256 / 2^k >= 32 (256, 128, 64, 32), "
                       f"got {self.input_size}")
    if not (isinstance(self.ensemble, int) and self.ensemble >= 1):
      raise ValueError(f"PRNetConfig.ensemble must be an int >= 1, got {self.ensemble!r}")

  @classmethod
  def from_mapping(cls, fields: Mapping[str, Any]) -> PRNetConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
      raise ValueError(f"unknown PRNetConfig fields {unknown}; valid: {sorted(known)}")
    return cls(**dict(fields))


def module(config: PRNetConfig) -> PRNet:
  return PRNet(config.encoder, config.width_multiplier, config.bn_momentum)


def check_images(images, config: PRNetConfig) -> None:
  """Raises ValueError unless images is (B, R, R, 3) floating point with R = input_size."""
  shape = tuple(np.shape(images))
  r = config.input_size
  if len(shape) != 4 or shape[1:] != (r, r, 3):
    raise ValueError(f"images must have shape (batch, {r}, {r}, 3) (RGB in [0, 1]) for "
                     f"input_size {r}, got {shape}")
  if not jnp.issubdtype(jnp.asarray(images).dtype if not hasattr(images, "dtype")
                        else images.dtype, jnp.floating):
    raise ValueError(f"images must be floating point RGB in [0, 1], got dtype {images.dtype} "
                     "(divide uint8 images by 255)")


def init(rng: jax.Array, input_shape, config: PRNetConfig = PRNetConfig()):
  """(params, batch_stats) for inputs of `input_shape` (B, R, R, 3)."""
  input_shape = tuple(input_shape)
  check_images(jax.ShapeDtypeStruct(input_shape, jnp.float32), config)
  net = module(config)

  def _init(key):
    # The ~100 initialisers draw from an 'rbg' key derived from `rng` (deterministic in rng):
    # XLA compiles RngBitGenerator in seconds, threefry for this many tensors in about a minute
    # on a busy 2-core CPU (measured).
    key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    return net.init(key, jnp.zeros(input_shape, jnp.float32), train=False)

  variables = jax.jit(_init)(rng)
  return variables["params"], variables["batch_stats"]


def apply(params, batch_stats, images, config: PRNetConfig, *, train: bool = False):
  """Runs the net: (s in [0, 1]^(B, R, R, 3), new batch_stats (unchanged if not train))."""
  check_images(images, config)
  variables = {"params": params, "batch_stats": batch_stats}
  if train:
    s, updates = module(config).apply(variables, images, train=True, mutable=["batch_stats"])
    return s, updates["batch_stats"]
  return module(config).apply(variables, images, train=False), batch_stats


def to_pixels(s, size: int):
  """Network output s -> position map in crop pixels (P = s * 1.1 R)."""
  return s * (OUTPUT_SCALE * size)


def predict(params, batch_stats, images, config: PRNetConfig):
  """Position maps (B, R, R, 3) in crop pixels (x right, y down, z larger = closer).

  With ``config.ensemble`` = M > 1, `params` and `batch_stats` hold M networks stacked along a
  leading axis, and the map is the mean of their M maps: independently trained networks err
  differently on real photos (docs/prnet.md), so their mean is more accurate than any one."""
  if config.ensemble == 1:
    s, _ = apply(params, batch_stats, images, config, train=False)
    return to_pixels(s, config.input_size)
  members = jax.tree.leaves(params)[0].shape[0]
  if members != config.ensemble:
    raise ValueError(f"config.ensemble is {config.ensemble} but the variables hold {members} "
                     "networks")
  one = lambda p, b: apply(p, b, images, config, train=False)[0]  # noqa: E731
  stacked = jax.tree.map(jnp.asarray, (params, batch_stats))  # NumPy leaves are not vmappable
  return to_pixels(jax.vmap(one)(*stacked).mean(0), config.input_size)


def l2_penalty(params) -> jax.Array:
  """1/2 sum w^2 over every conv / transposed-conv kernel."""
  leaves = [x for path, x in jax.tree_util.tree_leaves_with_path(params)
            if getattr(path[-1], "key", None) == "kernel"]
  return 0.5 * sum(jnp.sum(jnp.square(x)) for x in leaves)


def weighted_map_loss(s, target, weight, channels=(1.0, 1.0, 1.0)):
  """Per-sample sum_p W sqrt(sum_c m_c (s - t)^2 + 1e-12) / sum_p W; s, target (B, R, R, 3)."""
  m = jnp.asarray(channels, s.dtype)
  d = jnp.sqrt(jnp.sum(m * jnp.square(s - target), -1) + 1e-12)
  return jnp.sum(d * weight, (-2, -1)) / jnp.sum(weight)


def landmark_loss(s, landmarks, size: int):
  """Per-sample mean x/y landmark distance (in units of 1.1 R) between the map and landmarks."""
  pred = uv_lib.landmarks_from_position_map(s)
  target = jnp.asarray(landmarks)[..., :2] / (OUTPUT_SCALE * size)
  return jnp.mean(jnp.sqrt(jnp.sum(jnp.square(pred[..., :2] - target), -1) + 1e-12), -1)


def compute_loss(params, batch_stats, batch: Mapping[str, Any], config: PRNetConfig, *,
                 train: bool = True):
  """The training loss of a batch.

  Args:
    batch: ``image`` (B, R, R, 3) in [0, 1]; ``posmap`` (B, R, R, 3) ground truth in crop
      pixels (ignored where ``has_dense`` is 0); optional ``landmarks`` (B, 68, >= 2) crop
      pixels and ``has_dense`` (B,) in {0, 1} (default all 1).
    train: training-mode BatchNorm (batch statistics, updated running averages).

  Returns:
    (loss, (terms, new_batch_stats, s)): terms has ``map`` (dense loss, mean over dense
    samples), ``landmarks`` (landmark loss over all samples; NaN-free), ``l2``, ``px`` (the
    dense loss in pixels), ``total``.
  """
  r = config.input_size
  s, new_stats = apply(params, batch_stats, batch["image"], config, train=train)
  pm = jnp.asarray(batch["posmap"])
  if pm.shape != s.shape:
    raise ValueError(f"batch['posmap'] must have shape {s.shape} (B, R, R, 3) in crop pixels, "
                     f"got {pm.shape}")
  target = jnp.clip(pm / (OUTPUT_SCALE * r), 0.0, 1.0)
  weight = jnp.asarray(uv_lib.weight_mask(r))
  dense = weighted_map_loss(s, target, weight)
  if "landmarks" in batch:
    lmk = landmark_loss(s, batch["landmarks"], r)
  else:
    lmk = landmark_loss(s, uv_lib.landmarks_from_position_map(pm), r)
  has = jnp.asarray(batch.get("has_dense", jnp.ones(s.shape[0])), s.dtype)
  per_sample = has * dense + (1.0 - has) * config.landmark_weight * lmk
  l2 = l2_penalty(params)
  loss = jnp.mean(per_sample) + config.l2 * l2
  n_dense = jnp.maximum(has.sum(), 1.0)
  terms = dict(map=jnp.sum(has * dense) / n_dense, landmarks=jnp.mean(lmk), l2=l2,
               px=jnp.sum(has * dense) / n_dense * OUTPUT_SCALE * r, total=loss)
  return loss, (terms, new_stats, s)


def optimizer(config: PRNetConfig, steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """Adam (0.9, 0.999) with a staircase exponential decay every `lr_decay_epochs` epochs."""
  schedule = optax.exponential_decay(config.learning_rate,
                                     max(1, config.lr_decay_epochs * int(steps_per_epoch)),
                                     config.lr_decay, staircase=True)
  return optax.adam(schedule, b1=0.9, b2=0.999)


__all__ = ["OUTPUT_SCALE", "PRNet", "PRNetConfig", "apply", "check_images", "compute_loss",
           "init", "l2_penalty", "landmark_loss", "module", "optimizer", "predict", "to_pixels",
           "weighted_map_loss"]
