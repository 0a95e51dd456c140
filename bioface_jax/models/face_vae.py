"""Face VAE with a face-mask decoder (Toledo & Antonelo, ENIAC 2021), pure-functional Flax.

The authors' Keras network (face-vae-spec.md section 2): an encoder of ConvBlocks
(Conv 3x3 SAME + bias -> BatchNorm -> ELU) and 2x2 max pools down to 1x1x512, a Dense 512 + ELU
hidden layer, linear ``z_mean`` and ``z_logvar`` heads; two decoders that read the same sampled
z, each 7 x [UpBlock (ConvTranspose 3x3 stride 2 -> BN -> ELU), ConvBlock] then a 3x3 conv +
sigmoid head: the image decoder (3 channels) and the mask decoder (1 channel, 32 filters).
Keras defaults are kept: BatchNorm eps 1e-3 / momentum 0.99, glorot-uniform kernels, zero
biases. (Flax keeps the biased moving variance where Keras' fused kernel keeps the
Bessel-corrected one: < 1 % apart at the smallest BN population, 32 x 2 x 2.)

Use::

  config = FaceVAEConfig(input_size=72, latent_dim=128, width_multiplier=0.25)
  params, batch_stats = init(rng, (B, 72, 72, 3), config)
  outputs, new_stats = apply(params, batch_stats, images, config, train=True, rng=key)
  loss, (terms, new_stats, outputs) = compute_loss(params, batch_stats, batch, config,
                                                   train=True, rng=key)
  recon = reconstruct(params, batch_stats, images, config)  # prediction-time compositing

Small variants: ``input_size`` s in [16, 255] keeps the last n = floor(log2 s) encoder stages
and the first n decoder steps (a decoder step is VALID where the encoder went 2k+1 -> k, so the
output is s x s again); channels are ``max(4, round(c * width_multiplier))``; the hidden Dense
width is ``latent_dim``.

Sampling: ``"standard"`` (default, a documented deviation) is the textbook reparameterisation
z = mu + eps exp(logvar / 2) with KL = -1e-3 0.5 mean(1 + logvar - mu^2 - e^logvar).
``"authors"`` reproduces the published code: z = mu + eps * s (the raw second head used as the
standard deviation) while the KL reads s as log sigma: -1e-3 0.5 mean(1 + 2s - mu^2 - e^2s), whose
optimum s = 0 is also zero noise. Noise is drawn (rng stream "sampling") only when
``train=True``; otherwise z = mean. Losses and the optimiser are in `face_vae_loss`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bioface_jax.models import pooling
from bioface_jax.models import small_conv
from bioface_jax.models import subpixel

ENCODER_STAGES = ((32, 2), (64, 2), (128, 2), (256, 2), (256, 1), (256, 1), (512, 1))
IMAGE_DECODER = (256, 256, 256, 128, 64, 32, 32)
MASK_DECODER = (32,) * 7
LOSS_NAMES = ("ssim", "l1", "l2")
SAMPLING = ("standard", "authors")

_glorot = nn.initializers.glorot_uniform()


@dataclasses.dataclass(frozen=True)
class FaceVAEConfig:
  """Network, loss and optimiser settings; defaults are the authors' (spec sections 2-5).

  Attributes:
    input_size: image side s (square), 16..255; the authors' is 144.
    latent_dim: latent size (and hidden Dense width); 512.
    width_multiplier: scales every conv width (min 4 channels).
    mask_branch: the mask decoder and label-mask compositing (the "mask" configurations).
    sampling: "standard" (default, textbook) or "authors" (section 3 quirk).
    losses: reconstruction terms, a subset of ("ssim", "l1", "l2"); the published default
      flags give ("ssim", "l1") with the mask.
    kl_weight, ssim_weight, l1_weight, l2_weight, bce_weight, dice_weight: loss weights
      (1e-3, 1, 4, 100, 1, 1).
    ssim_filter_size: the SSIM loss window (9).
    learning_rate, clipnorm, adam_eps: Keras Adam(1e-4, clipnorm=1e-3), epsilon 1e-7.
    lr_decay_at, lr_decay_factor: after ``lr_decay_at`` updates the rate becomes
      ``learning_rate * lr_decay_factor`` (0, the authors': a constant rate).
    bn_momentum: BatchNorm moving-average momentum (Keras' 0.99). At short CPU budgets 0.99
      leaves the initial statistics (mean 0, variance 1) with weight 0.99^t in the running
      averages used at evaluation (22 % after 150 steps), which is why the CPU presets use 0.9.
  """
  input_size: int = 144
  latent_dim: int = 512
  width_multiplier: float = 1.0
  mask_branch: bool = True
  sampling: str = "standard"
  losses: tuple[str, ...] = ("ssim", "l1")
  kl_weight: float = 1e-3
  ssim_weight: float = 1.0
  l1_weight: float = 4.0
  l2_weight: float = 100.0
  bce_weight: float = 1.0
  dice_weight: float = 1.0
  ssim_filter_size: int = 9
  learning_rate: float = 1e-4
  clipnorm: float = 1e-3
  adam_eps: float = 1e-7
  lr_decay_at: int = 0
  lr_decay_factor: float = 0.1
  bn_momentum: float = 0.99

  def __post_init__(self):
    if not (isinstance(self.input_size, int) and 16 <= self.input_size <= 255):
      raise ValueError(f"FaceVAEConfig.input_size must be an int in [16, 255], got "
                       f"{self.input_size!r}")
    if not (isinstance(self.latent_dim, int) and self.latent_dim >= 1):
      raise ValueError(f"FaceVAEConfig.latent_dim must be a positive int, got {self.latent_dim!r}")
    if not self.width_multiplier > 0:
      raise ValueError(f"FaceVAEConfig.width_multiplier must be > 0, got {self.width_multiplier}")
    if not (isinstance(self.lr_decay_at, int) and self.lr_decay_at >= 0):
      raise ValueError(f"FaceVAEConfig.lr_decay_at must be an int >= 0 (0 = constant rate), got "
                       f"{self.lr_decay_at!r}")
    if not self.lr_decay_factor > 0:
      raise ValueError(f"FaceVAEConfig.lr_decay_factor must be > 0, got {self.lr_decay_factor}")
    if not 0.0 <= self.bn_momentum < 1.0:
      raise ValueError(f"FaceVAEConfig.bn_momentum must be in [0, 1), got {self.bn_momentum}")
    if self.sampling not in SAMPLING:
      raise ValueError(f"FaceVAEConfig.sampling must be one of {SAMPLING}, got {self.sampling!r}")
    bad = [t for t in self.losses if t not in LOSS_NAMES]
    if bad or not self.losses or len(set(self.losses)) != len(self.losses):
      raise ValueError(f"FaceVAEConfig.losses must be distinct names from {LOSS_NAMES}, got "
                       f"{self.losses!r}")
    if self.ssim_filter_size > self.input_size:
      raise ValueError(f"ssim_filter_size {self.ssim_filter_size} exceeds input_size "
                       f"{self.input_size}")

  @classmethod
  def from_mapping(cls, mapping: Mapping[str, Any]) -> FaceVAEConfig:
    """Builds a config from a dict or ConfigDict; unknown keys are an error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - fields)
    if unknown:
      raise ValueError(f"unknown FaceVAEConfig fields {unknown}; valid: {sorted(fields)}")
    values = dict(mapping)
    if "losses" in values:
      values["losses"] = tuple(values["losses"])
    for k in ("input_size", "latent_dim", "ssim_filter_size", "lr_decay_at"):
      if k in values:
        values[k] = int(values[k])
    return cls(**values)


def encoder_sides(size: int) -> list[int]:
  """Spatial sides through the encoder: [s, s//2, ..., 1] (n = floor(log2 s) pools)."""
  n = int(math.floor(math.log2(size)))
  sides = [size]
  for _ in range(n):
    sides.append(sides[-1] // 2)
  return sides


def decoder_paddings(size: int) -> list[str]:
  """"SAME" (k -> 2k) or "VALID" (k -> 2k+1) for each decoder step, mirroring the encoder."""
  sides = encoder_sides(size)[::-1]  # 1, ..., s
  return ["VALID" if b == 2 * a + 1 else "SAME" for a, b in zip(sides[:-1], sides[1:])]


def _width(c: int, multiplier: float) -> int:
  return max(4, int(round(c * multiplier)))


def elu(x: jax.Array) -> jax.Array:
  """ELU as TensorFlow's kernel computes it: x where x > 0, else exp(x) - 1.

  The same function as ``flax.linen.elu`` (which uses expm1) up to float32 rounding: both
  are within one float32 epsilon (1.2e-7) times max(1, |y|) of the exact value (measured on
  XLA:CPU: 4.8e-8 for this form, 1.1e-7 for flax's; tests/test_face_vae.py), and it is the
  authors' Keras layers' own formula. XLA:CPU's expm1 is a slower polynomial: one
  32 x 144 x 144 x 32 BatchNorm + ELU pass takes 19 ms with expm1 and 12 ms with exp (AMD
  EPYC, docs/performance.md). The inner
  ``where`` keeps exp away from large x, so the gradient has no inf * 0.
  """
  return jnp.where(x > 0, x, jnp.exp(jnp.where(x > 0, 0.0, x)) - 1.0)


class ConvBlock(nn.Module):
  """Conv2D(c, 3x3, SAME, bias) -> BatchNorm(eps 1e-3, momentum 0.99) -> ELU."""
  features: int
  momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(self.features, (3, 3), padding="SAME", kernel_init=_glorot,
                conv_general_dilated=small_conv.conv_general_dilated)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-3)(x)
    return elu(x)


class UpBlock(nn.Module):
  """Conv2DTranspose(c, 3x3, stride 2, SAME or VALID) -> BatchNorm -> ELU (Keras kernel layout)."""
  features: int
  padding: str
  momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool):
    x = subpixel.ConvTranspose(self.features, (3, 3), strides=(2, 2), padding=self.padding,
                               transpose_kernel=True, kernel_init=_glorot)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-3)(x)
    return elu(x)


class Encoder(nn.Module):
  """Conv stages + max pools to 1x1, flatten, Dense + ELU, then (z_mean, z_logvar)."""
  input_size: int
  latent_dim: int
  width_multiplier: float
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool):
    n = len(encoder_sides(self.input_size)) - 1
    for features, repeats in ENCODER_STAGES[len(ENCODER_STAGES) - n:]:
      for _ in range(repeats):
        x = ConvBlock(_width(features, self.width_multiplier), self.bn_momentum)(x, train)
      x = pooling.max_pool_2x2(x)  # = nn.max_pool(x, (2, 2), (2, 2), "VALID"), fast gradient
    x = x.reshape(x.shape[0], -1)
    h = elu(nn.Dense(self.latent_dim, kernel_init=_glorot, name="hidden")(x))
    mean = nn.Dense(self.latent_dim, kernel_init=_glorot, name="z_mean")(h)
    logvar = nn.Dense(self.latent_dim, kernel_init=_glorot, name="z_logvar")(h)
    return mean, logvar


class Decoder(nn.Module):
  """z -> 1x1 -> n x [UpBlock, ConvBlock] -> Conv 3x3 SAME head (logits, before sigmoid)."""
  input_size: int
  channels: tuple[int, ...]
  out_channels: int
  width_multiplier: float
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, z, train: bool):
    x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
    for features, padding in zip(self.channels, decoder_paddings(self.input_size)):
      c = _width(features, self.width_multiplier)
      x = UpBlock(c, padding, self.bn_momentum)(x, train)
      x = ConvBlock(c, self.bn_momentum)(x, train)
    return nn.Conv(self.out_channels, (3, 3), padding="SAME", kernel_init=_glorot,
                   conv_general_dilated=small_conv.conv_general_dilated, name="head")(x)


class FaceVAE(nn.Module):
  """The whole network; returns mean, logvar, z, image_pre (+ mask_logits, mask)."""
  input_size: int = 144
  latent_dim: int = 512
  width_multiplier: float = 1.0
  mask_branch: bool = True
  sampling: str = "standard"
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, *, train: bool):
    mean, logvar = Encoder(self.input_size, self.latent_dim, self.width_multiplier,
                           self.bn_momentum, name="encoder")(x, train)
    if train:
      eps = jax.random.normal(self.make_rng("sampling"), mean.shape, mean.dtype)
      scale = jnp.exp(0.5 * logvar) if self.sampling == "standard" else logvar
      z = mean + eps * scale
    else:
      z = mean
    out = dict(mean=mean, logvar=logvar, z=z)
    out["image_pre"] = nn.sigmoid(Decoder(self.input_size, IMAGE_DECODER, 3,
                                          self.width_multiplier, self.bn_momentum,
                                          name="image_decoder")(z, train))
    if self.mask_branch:
      logits = Decoder(self.input_size, MASK_DECODER, 1, self.width_multiplier,
                       self.bn_momentum, name="mask_decoder")(z, train)[..., 0]
      out["mask_logits"] = logits
      out["mask"] = nn.sigmoid(logits)
    return out


def make_model(config: FaceVAEConfig) -> FaceVAE:
  return FaceVAE(config.input_size, config.latent_dim, config.width_multiplier,
                 config.mask_branch, config.sampling, config.bn_momentum)


def check_images(images: Any, config: FaceVAEConfig, what: str = "images") -> None:
  """Raises ValueError unless `images` is (B, s, s, 3) with s = config.input_size."""
  shape = tuple(getattr(images, "shape", ()))
  s = config.input_size
  if len(shape) != 4 or shape[1:] != (s, s, 3):
    raise ValueError(f"{what} must have shape (batch, {s}, {s}, 3) for this model "
                     f"(input_size={s}), got {shape}")


def init(rng: jax.Array, input_shape: tuple[int, ...], config: FaceVAEConfig
         ) -> tuple[Any, Any]:
  """(params, batch_stats) for images of `input_shape` = (B, s, s, 3)."""
  check_images(jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32), config, "input_shape")
  variables = make_model(config).init({"params": rng}, jnp.zeros(input_shape, jnp.float32),
                                      train=False)
  return variables["params"], variables["batch_stats"]


def apply(params: Any, batch_stats: Any, images: jax.Array, config: FaceVAEConfig, *,
          train: bool, rng: jax.Array | None = None) -> tuple[dict[str, jax.Array], Any]:
  """Forward pass; (outputs, batch_stats), the latter updated only if ``train``.

  ``rng`` (needed when ``train``) feeds the latent sampling.
  """
  check_images(images, config)
  variables = {"params": params, "batch_stats": batch_stats}
  if not train:
    return make_model(config).apply(variables, images, train=False), batch_stats
  if rng is None:
    raise ValueError("apply(train=True) needs rng for the latent sampling")
  out, updates = make_model(config).apply(variables, images, train=True,
                                          rngs={"sampling": rng}, mutable=["batch_stats"])
  return out, updates["batch_stats"]


def composite(image_pre: jax.Array, background: jax.Array, mask: jax.Array) -> jax.Array:
  """``pre * m + background * (1 - m)`` with an (B, H, W) mask (the channel axis is added)."""
  m = mask[..., None]
  return image_pre * m + background * (1.0 - m)


def predict(params: Any, batch_stats: Any, images: jax.Array, config: FaceVAEConfig
            ) -> dict[str, jax.Array]:
  """Evaluation-mode outputs (running statistics, z = mean)."""
  return apply(params, batch_stats, images, config, train=False)[0]


def decode(params: Any, batch_stats: Any, z: jax.Array, config: FaceVAEConfig, *,
           mask: bool = True) -> dict[str, jax.Array]:
  """The decoders alone in evaluation mode on latents ``z`` (B, latent_dim): ``image_pre``
  and, with the mask branch and ``mask``, ``mask_logits`` and ``mask``; for z = the posterior
  mean these are `predict`'s. Latent refinement (`face_vae_refine`) optimises z through it."""
  if z.ndim != 2 or z.shape[-1] != config.latent_dim:
    raise ValueError(f"z must have shape (batch, {config.latent_dim}), got {tuple(z.shape)}")

  def run(name: str, channels: tuple[int, ...], out_channels: int) -> jax.Array:
    net = Decoder(config.input_size, channels, out_channels, config.width_multiplier,
                  config.bn_momentum)
    return net.apply({"params": params[name], "batch_stats": batch_stats[name]}, z, False)

  out = {"image_pre": nn.sigmoid(run("image_decoder", IMAGE_DECODER, 3))}
  if config.mask_branch and mask:
    out["mask_logits"] = run("mask_decoder", MASK_DECODER, 1)[..., 0]
    out["mask"] = nn.sigmoid(out["mask_logits"])
  return out


def reconstruct(params: Any, batch_stats: Any, images: jax.Array, config: FaceVAEConfig,
                gt_mask: jax.Array | None = None) -> jax.Array:
  """The deployed reconstruction: composite with the predicted mask (or `gt_mask` if given).

  A model without the mask branch returns ``image_pre`` unless it gets a `gt_mask`.
  """
  out = predict(params, batch_stats, images, config)
  mask = out.get("mask") if gt_mask is None else gt_mask
  if mask is None:
    return out["image_pre"]
  return composite(out["image_pre"], images, mask)


def population_batch_stats(params: Any, images_batches, config: FaceVAEConfig,
                           rng: jax.Array | None = None) -> Any:
  """BatchNorm statistics re-estimated from training batches with the weights frozen.

  "Precise BN" (Wu & Johnson 2021): for each (B, s, s, 3) batch in `images_batches` the
  training-mode forward pass (batch statistics, sampled z, as in training) gives every
  BatchNorm layer's batch mean and biased variance; the result is their plain average over the
  batches, in the ``batch_stats`` layout. It replaces the moving averages, which after t
  steps at momentum 0.99 still carry weight 0.99^t of their initial values (mean 0, variance 1)
  and lag the weights: at the CPU budgets these stale statistics, not the weights, made the
  evaluation-mode outputs worse than the mean training image (docs/face_vae.md).
  """
  model = make_model(dataclasses.replace(config, bn_momentum=0.0))  # running <- batch stats
  rng = jax.random.key(0) if rng is None else rng

  @jax.jit
  def one(zeros, images, key):
    _, updates = model.apply({"params": params, "batch_stats": zeros}, images, train=True,
                             rngs={"sampling": key}, mutable=["batch_stats"])
    return updates["batch_stats"]

  zeros, total, count = None, None, 0
  for images in images_batches:
    images = jnp.asarray(images, jnp.float32)
    check_images(images, config)
    if zeros is None:
      shapes = jax.eval_shape(lambda x: model.init({"params": jax.random.key(0)}, x,
                                                   train=False)["batch_stats"], images)
      zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    stats = one(zeros, images, jax.random.fold_in(rng, count))
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    count += 1
  if not count:
    raise ValueError("population_batch_stats needs at least one batch of images")
  return jax.tree.map(lambda v: v / count, total)


# The loss and optimiser live beside the network so that the model file stays one job.
from bioface_jax.models.face_vae_loss import compute_loss  # noqa: E402
from bioface_jax.models.face_vae_loss import optimizer  # noqa: E402

__all__ = ["FaceVAE", "FaceVAEConfig", "apply", "check_images", "composite", "compute_loss",
           "decoder_paddings", "encoder_sides", "init", "make_model", "optimizer",
           "population_batch_stats", "predict",
           "reconstruct"]
