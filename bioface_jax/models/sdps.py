"""SDPS-Net (Chen et al., CVPR 2019): LCNet (lighting calibration), NENet (normal estimation),
their lighter variants and FusedNet, as pure-functional Flax linen modules (sdps-spec.md §5-6).

Every network takes any number N of images (a static shape: one compile per N): a shared
extractor runs on all B·N images, an element-wise max over N fuses them. Options: ``conv``
("standard" | "depthwise_separable"), ``residual`` (y = x + block(x) on the stride-1 blocks with
equal widths) and ``width_multiplier`` α (hidden width c -> max(4, round(α·c))).

Trainer-facing API (pure functions; the config is a frozen, hashable dataclass):

  config = SDPSConfig(net="lcnet" | "nenet" | "fused", ...)
  params, batch_stats = init(rng, (B, N, H, W, 3), config)     # batch_stats is {} (no norm)
  outputs = apply(params, batch, config)                       # dict, see `apply`
  loss, metrics = compute_loss(params, batch, config)
  dirs, ints = lcnet_predict(lcnet_outputs)                    # argmax -> bin centres

Batches: ``images`` (B, N, H, W, 3) linear, ``mask`` (B, H, W); ``dirs`` (B, N, 3) and
``intensities`` (B, N) light labels; ``normals`` (B, H, W, 3) (zero on the background).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bioface_jax import photometric
from bioface_jax.models import small_conv
from bioface_jax.models import subpixel

CONVS = ("standard", "depthwise_separable")
NETS = ("lcnet", "nenet", "fused")
_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # untruncated He normal
_PAD1 = ((1, 1), (1, 1))


def _act(x):
  return nn.leaky_relu(x, 0.1)


def _width(c: int, alpha: float) -> int:
  return max(4, int(round(alpha * c)))


class ConvBlock(nn.Module):
  """3×3 conv (PyTorch padding 1) + LReLU(0.1), or its depthwise-separable form."""
  features: int
  stride: int = 1
  conv: str = "standard"
  residual: bool = False

  @nn.compact
  def __call__(self, x):
    s = (self.stride, self.stride)
    if self.conv == "standard":
      # small_conv: LCNet's classifier (4x4 -> 2x2 -> 1x1 at stride 2) as patch products; the
      # same function (docs/performance.md), every other shape goes to lax unchanged.
      y = _act(nn.Conv(self.features, (3, 3), s, padding=_PAD1, kernel_init=_INIT,
                       conv_general_dilated=small_conv.conv_general_dilated)(x))
    else:
      c_in = x.shape[-1]
      y = _act(nn.Conv(c_in, (3, 3), s, padding=_PAD1, feature_group_count=c_in,
                       kernel_init=_INIT)(x))
      y = _act(nn.Conv(self.features, (1, 1), kernel_init=_INIT)(y))
    if self.residual and self.stride == 1 and x.shape[-1] == self.features:
      y = x + y
    return y


class Deconv(nn.Module):
  """ConvTranspose 4×4 stride 2 (PyTorch padding 1 = output 2H), no bias, + LReLU(0.1)."""
  features: int
  conv: str = "standard"

  @nn.compact
  def __call__(self, x):
    if self.conv == "standard":
      return _act(subpixel.ConvTranspose(self.features, (4, 4), (2, 2),
                                         padding=((2, 2), (2, 2)), use_bias=False,
                                         kernel_init=_INIT)(x))
    c_in = x.shape[-1]
    y = _act(nn.Conv(c_in, (4, 4), input_dilation=(2, 2), padding=((2, 2), (2, 2)),
                     feature_group_count=c_in, use_bias=False, kernel_init=_INIT)(x))
    return _act(nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=_INIT)(y))


def _check_images(images, mask=None):
  if images.ndim != 5 or images.shape[-1] != 3:
    raise ValueError(f"images must be (B, N, H, W, 3), got {tuple(images.shape)}")
  if mask is not None and tuple(mask.shape) != (images.shape[0],) + tuple(images.shape[2:4]):
    raise ValueError(f"mask must be (B, H, W) = {(images.shape[0],) + images.shape[2:4]}, "
                     f"got {tuple(mask.shape)}")


class LCNet(nn.Module):
  """Lighting calibration network: per-image direction (θ, φ) and intensity logits."""
  conv: str = "standard"
  residual: bool = False
  width_multiplier: float = 1.0
  input_size: int = 128
  num_dir_bins: int = 36
  num_int_bins: int = 20

  @nn.compact
  def __call__(self, images, mask):
    _check_images(images, mask)
    b, n, h, w, _ = images.shape
    s = self.input_size
    x = jnp.concatenate(
        [images, jnp.broadcast_to(mask[:, None, :, :, None].astype(images.dtype),
                                  (b, n, h, w, 1))], -1).reshape(b * n, h, w, 4)
    if (h, w) != (s, s):
      x = jax.image.resize(x, (b * n, s, s, 4), "bilinear", antialias=False)
    wd = lambda c: _width(c, self.width_multiplier)  # noqa: E731
    res = self.residual
    x = ConvBlock(wd(64), 2, "standard", name="c1")(x)  # the extractor's first layer
    for name, c, st in (("c2", 128, 2), ("c3", 128, 1), ("c4", 128, 2), ("c5", 128, 1),
                        ("c6", 256, 2), ("c7", 256, 1)):
      x = ConvBlock(wd(c), st, self.conv, res, name=name)(x)
    local = x.reshape((b, n) + x.shape[1:])
    glob = jnp.broadcast_to(jnp.max(local, axis=1, keepdims=True), local.shape)
    x = jnp.concatenate([local, glob], -1).reshape((b * n,) + x.shape[1:3] + (-1,))
    x = ConvBlock(wd(256), 1, self.conv, False, name="k1")(x)
    for name in ("k2", "k3", "k4"):
      x = ConvBlock(wd(256), 2, self.conv, False, name=name)(x)
    if x.shape[1:3] != (1, 1):
      raise ValueError(f"LCNet input_size {s} leaves {x.shape[1:3]} after k4; use 16..128")
    out = {}
    for key, k in (("dir_x", self.num_dir_bins), ("dir_y", self.num_dir_bins),
                   ("int", self.num_int_bins)):
      y = _act(nn.Conv(wd(64), (1, 1), kernel_init=_INIT, name=f"{key}_hidden")(x))
      y = nn.Conv(k, (1, 1), kernel_init=_INIT, name=f"{key}_out")(y)
      out[f"{key}_logits"] = y.reshape(b, n, k)
    return out


class NENet(nn.Module):
  """Normal estimation network (= PS-FCN): images / intensities ⊕ tiled light -> unit normals."""
  conv: str = "standard"
  residual: bool = False
  width_multiplier: float = 1.0

  @nn.compact
  def __call__(self, images, dirs, intensities):
    _check_images(images)
    b, n, h, w, _ = images.shape
    if tuple(dirs.shape) != (b, n, 3):
      raise ValueError(f"dirs must be (B, N, 3) = {(b, n, 3)}, got {tuple(dirs.shape)}")
    e = intensities if intensities.ndim == 3 else intensities[..., None]
    if tuple(e.shape) not in ((b, n, 1), (b, n, 3)):
      raise ValueError(f"intensities must be (B, N) or (B, N, 3), got {tuple(intensities.shape)}")
    x = images / (e[:, :, None, None, :] + 1e-8)
    x = jnp.concatenate([x, jnp.broadcast_to(dirs[:, :, None, None, :].astype(x.dtype),
                                             (b, n, h, w, 3))], -1)
    ph, pw = (-h) % 4, (-w) % 4
    x = jnp.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw), (0, 0)))
    x = x.reshape((b * n,) + x.shape[2:])
    wd = lambda c: _width(c, self.width_multiplier)  # noqa: E731
    res, cv = self.residual, self.conv
    x = ConvBlock(wd(64), 1, "standard", name="e1")(x)
    x = ConvBlock(wd(128), 2, cv, name="e2")(x)
    x = ConvBlock(wd(128), 1, cv, res, name="e3")(x)
    x = ConvBlock(wd(256), 2, cv, name="e4")(x)
    x = ConvBlock(wd(256), 1, cv, res, name="e5")(x)
    x = Deconv(wd(128), cv, name="e6")(x)
    x = ConvBlock(wd(128), 1, cv, res, name="e7")(x)
    x = jnp.max(x.reshape((b, n) + x.shape[1:]), axis=1)
    x = ConvBlock(wd(128), 1, cv, res, name="r1")(x)
    x = ConvBlock(wd(128), 1, cv, res, name="r2")(x)
    x = Deconv(wd(64), cv, name="r3")(x)
    x = nn.Conv(3, (3, 3), padding=_PAD1, use_bias=False, kernel_init=_INIT, name="out")(x)
    x = x[:, :h, :w]
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def lcnet_predict(out: Mapping[str, jax.Array], low: float = 0.2, high: float = 2.0):
  """Argmax of each head -> bin-centre (dirs (B, N, 3), intensities (B, N)), as SDPS-Net."""
  k_d = out["dir_x_logits"].shape[-1]
  dirs = photometric.decode_light_direction(jnp.argmax(out["dir_x_logits"], -1),
                                            jnp.argmax(out["dir_y_logits"], -1), k_d)
  ints = photometric.decode_light_intensity(jnp.argmax(out["int_logits"], -1),
                                            out["int_logits"].shape[-1], low, high)
  return dirs, ints


class FusedNet(nn.Module):
  """LCNet -> differentiable (softmax-expectation) decode -> NENet, trained end to end."""
  conv: str = "standard"
  residual: bool = False
  width_multiplier: float = 1.0
  input_size: int = 128
  num_dir_bins: int = 36
  num_int_bins: int = 20
  int_low: float = 0.2
  int_high: float = 2.0

  @nn.compact
  def __call__(self, images, mask):
    images = images * mask[:, None, :, :, None].astype(images.dtype)
    logits = LCNet(self.conv, self.residual, self.width_multiplier, self.input_size,
                   self.num_dir_bins, self.num_int_bins, name="lcnet")(images, mask)
    dirs = photometric.expected_light_direction(logits["dir_x_logits"], logits["dir_y_logits"])
    ints = photometric.expected_light_intensity(logits["int_logits"], self.int_low,
                                                self.int_high)
    normals = NENet(self.conv, self.residual, self.width_multiplier, name="nenet")(
        images, dirs, ints)
    return {"normals": normals, **logits}


@dataclasses.dataclass(frozen=True)
class SDPSConfig:
  """One network's settings (defaults = SDPS-Net's LCNet).

  Attributes:
    net: "lcnet" (classification losses), "nenet" (normal loss; lights given in the batch) or
      "fused" (normal loss, plus `light_w` × the LCNet losses; 0 = no light labels).
    conv, residual, width_multiplier: the architecture options (module docstring).
    input_size: LCNet's internal resolution S (SDPS: 128).
    num_dir_bins, num_int_bins, int_low, int_high: the SDPS discretisation.
    light_w: FusedNet's weight on the light classification losses (0 in the student's setup).
    masked_loss: average the normal loss over the mask instead of all pixels (not SDPS).
    nenet_scale: NENet's internal resolution factor k (not SDPS; 1 = SDPS): `apply` resizes the
      masked images by k (bilinear) before NENet and averages the normals back over k x k
      blocks (renormalised). The network is unchanged; its H/4 bottleneck then spans H/(4k)
      input pixels, which keeps the detail of small objects (faces at 64 px) at k^2 the cost.
    learning_rate: Adam's initial rate (SDPS: 5e-4), halved at `milestones` (fractions of
      `num_steps`).
  """
  net: str = "lcnet"
  conv: str = "standard"
  residual: bool = False
  width_multiplier: float = 1.0
  input_size: int = 128
  num_dir_bins: int = 36
  num_int_bins: int = 20
  int_low: float = 0.2
  int_high: float = 2.0
  light_w: float = 0.0
  masked_loss: bool = False
  nenet_scale: int = 1
  learning_rate: float = 5e-4
  num_steps: int = 1000
  milestones: tuple[float, ...] = (0.25, 0.5, 0.75)

  def __post_init__(self):
    if self.net not in NETS:
      raise ValueError(f"SDPSConfig.net must be one of {NETS}, got {self.net!r}")
    if self.conv not in CONVS:
      raise ValueError(f"SDPSConfig.conv must be one of {CONVS}, got {self.conv!r}")
    if not self.width_multiplier > 0:
      raise ValueError(f"width_multiplier must be > 0, got {self.width_multiplier}")
    if not (isinstance(self.nenet_scale, int) and self.nenet_scale >= 1):
      raise ValueError(f"nenet_scale must be an int >= 1, got {self.nenet_scale!r}")

  @classmethod
  def from_mapping(cls, fields: Mapping[str, Any]) -> SDPSConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
      raise ValueError(f"unknown SDPSConfig fields: {unknown}")
    fields = dict(fields)
    if "milestones" in fields:
      fields["milestones"] = tuple(float(m) for m in fields["milestones"])
    return cls(**fields)


def make_model(config: SDPSConfig) -> nn.Module:
  arch = dict(conv=config.conv, residual=config.residual,
              width_multiplier=config.width_multiplier)
  if config.net == "lcnet":
    return LCNet(**arch, input_size=config.input_size, num_dir_bins=config.num_dir_bins,
                 num_int_bins=config.num_int_bins)
  if config.net == "nenet":
    return NENet(**arch)
  return FusedNet(**arch, input_size=config.input_size, num_dir_bins=config.num_dir_bins,
                  num_int_bins=config.num_int_bins, int_low=config.int_low,
                  int_high=config.int_high)


def _model_inputs(batch: Mapping[str, jax.Array], config: SDPSConfig):
  images = jnp.asarray(batch["images"])
  mask = jnp.asarray(batch["mask"])
  _check_images(images, mask)
  if config.net == "nenet":
    masked = images * mask[:, None, :, :, None].astype(images.dtype)
    return masked, jnp.asarray(batch["dirs"]), jnp.asarray(batch["intensities"])
  if config.net == "lcnet":
    return images * mask[:, None, :, :, None].astype(images.dtype), mask
  return images, mask


def init(rng: jax.Array, input_shape: tuple[int, ...], config: SDPSConfig):
  """(params, batch_stats={}) for images of `input_shape` = (B, N, H, W, 3)."""
  b, n, h, w, _ = input_shape
  batch = {"images": jnp.zeros(input_shape, jnp.float32), "mask": jnp.ones((b, h, w)),
           "dirs": jnp.tile(jnp.asarray([0.0, 0.0, 1.0]), (b, n, 1)),
           "intensities": jnp.ones((b, n))}
  params = make_model(config).init(rng, *_model_inputs(batch, config))["params"]
  return params, {}


def apply(params: Any, batch: Mapping[str, jax.Array], config: SDPSConfig) -> dict[str, Any]:
  """Runs the network: LCNet -> logits dict; NENet -> {"normals"}; fused -> normals + logits.

  LCNet and NENet see the images multiplied by the mask (SDPS-Net's input); NENet uses
  ``batch["dirs"]`` and ``batch["intensities"]`` (true or LCNet-predicted lights).
  """
  inputs = _model_inputs(batch, config)
  k = config.nenet_scale if config.net == "nenet" else 1
  if k > 1:
    images = inputs[0]
    b, n, h, w, c = images.shape
    images = jax.image.resize(images, (b, n, h * k, w * k, c), "bilinear", antialias=False)
    inputs = (images,) + tuple(inputs[1:])
  out = make_model(config).apply({"params": params}, *inputs)
  if k > 1:
    b, hk, wk, _ = out.shape
    out = out.reshape(b, hk // k, k, wk // k, k, 3).mean((2, 4))
    out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
  return {"normals": out} if config.net == "nenet" else out


def predict(params: Any, batch: Mapping[str, jax.Array], config: SDPSConfig) -> dict[str, Any]:
  """`apply` plus decoded lights (``dirs``, ``intensities``: argmax bin centres) when the
  network has an LCNet part."""
  out = dict(apply(params, batch, config))
  if config.net != "nenet":
    out["dirs"], out["intensities"] = lcnet_predict(out, config.int_low, config.int_high)
  return out


def light_labels(dirs, intensities, config: SDPSConfig):
  """SDPS class labels (az, el, intensity) from true directions and per-image intensities."""
  az, el = photometric.encode_light_direction(dirs, config.num_dir_bins)
  k = photometric.encode_light_intensity(intensities, config.num_int_bins, config.int_low,
                                         config.int_high)
  return az, el, k


def lcnet_loss(out, batch, config: SDPSConfig):
  """CE_θ + CE_φ + CE_e, each the mean over B·N; plus accuracy metrics."""
  az, el, k = light_labels(batch["dirs"], batch["intensities"], config)
  ce = optax.softmax_cross_entropy_with_integer_labels
  terms = {"dir_x": jnp.mean(ce(out["dir_x_logits"], az)),
           "dir_y": jnp.mean(ce(out["dir_y_logits"], el)),
           "int": jnp.mean(ce(out["int_logits"], k))}
  dirs, ints = lcnet_predict(out, config.int_low, config.int_high)
  metrics = {"dir_err_deg": jnp.mean(photometric.light_direction_error(dirs, batch["dirs"])),
             "int_err": jnp.mean(photometric.intensity_error(ints, batch["intensities"]))}
  return terms["dir_x"] + terms["dir_y"] + terms["int"], {**terms, **metrics}


def normal_loss(pred, gt, mask=None):
  """Mean of (1 − n̂·n) over all pixels (SDPS's CosineEmbeddingLoss; background n = 0 adds a
  constant 1), or over the mask when `mask` is given."""
  cos = jnp.sum(pred * gt, -1)
  if mask is None:
    return jnp.mean(1.0 - cos)
  m = mask.astype(cos.dtype)
  return jnp.sum((1.0 - cos) * m) / jnp.maximum(jnp.sum(m), 1.0)


def compute_loss(params: Any, batch: Mapping[str, jax.Array], config: SDPSConfig):
  """(loss, metrics) for the configured network; metrics include ``mae_deg`` for normals."""
  out = apply(params, batch, config)
  metrics = {}
  loss = jnp.zeros(())
  if config.net in ("nenet", "fused"):
    loss = normal_loss(out["normals"], batch["normals"],
                       batch["mask"] if config.masked_loss else None)
    metrics["normal"] = loss
    metrics["mae_deg"] = jnp.mean(photometric.mean_angular_error(
        out["normals"], batch["normals"], batch["mask"]))
  if config.net in ("lcnet", "fused"):
    light, terms = lcnet_loss(out, batch, config)
    metrics.update(terms)
    if config.net == "lcnet":
      loss = light
    elif config.light_w:
      loss = loss + config.light_w * light
  metrics["loss"] = loss
  return loss, metrics


def optimizer(config: SDPSConfig) -> optax.GradientTransformation:
  """Adam (β = 0.9, 0.999), learning rate halved at each milestone (SDPS-Net's schedule)."""
  boundaries = {int(round(m * config.num_steps)): 0.5 for m in config.milestones
                if 0 < int(round(m * config.num_steps)) < config.num_steps}
  schedule = optax.piecewise_constant_schedule(config.learning_rate, boundaries)
  return optax.adam(schedule, b1=0.9, b2=0.999)


def param_count(params: Any) -> int:
  """Total number of parameters in a pytree."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))
