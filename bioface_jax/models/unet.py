"""The BioFaceNet U-Net: one encoder, four independent decoders and a fully connected head.

This is the authors' MatConvNet network (``CNN.m`` / ``fcn_multipleDecoders.m`` with
``nfilters = [32, 64, 128, 256, 512]``, four decoders, ``doubleconv = true``; see
biofacenet-spec.md section 6), written as a pure Flax linen module in NHWC layout:

* every resolution level has **three** 3x3 conv (with bias) -> BatchNorm -> ReLU layers
  ("doubleconv" in the MATLAB code means three);
* the encoder has ``depth`` levels with ``base_filters * 2**i`` channels, a 2x2/2 max-pool
  after each, then a bottleneck level with ``base_filters * 2**depth`` channels;
* ``n_decoders`` decoders that share no weights. Each upsamples x2, concatenates
  ``[upsampled, skip]`` on channels (upsampled first), applies a level, and ends in a 3x3 conv
  to one channel with bias and no BatchNorm or activation;
* a head on the bottleneck: a VALID conv whose kernel equals the bottleneck's spatial size
  (a dense layer over the flattened bottleneck, 4x4x512 at 64x64 input) -> BN -> ReLU ->
  1x1 conv -> BN -> ReLU -> 1x1 conv with bias to ``n_vector`` outputs.

Initialisation and BatchNorm follow the autonn/MatConvNet defaults: He-normal fan-in filters
(variance 2/(k*k*C_in), untruncated), zero biases, BN scale 1 and shift 0, epsilon 1e-4, running
averages ``r <- 0.9 r + 0.1 batch`` (Flax ``momentum=0.9``). Two documented differences from
MatConvNet that only affect evaluation-mode statistics, never training: Flax starts the running
variance at 1 (MatConvNet's moments start at 0) and averages the variance rather than
sqrt(var + eps).

BatchNorm uses batch statistics when ``train=True`` (call ``apply`` with
``mutable=["batch_stats"]``) and the running averages when ``train=False``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# MatConvNet/autonn defaults (biofacenet-spec.md section 6, "Initialisation").
BN_EPSILON = 1e-4
BN_MOMENTUM = 0.9  # running = 0.9 * running + 0.1 * batch
UPSAMPLE_MODES = ("nearest", "bilinear")

# He-normal, fan-in, *untruncated* (autonn: randn * sqrt(2 / (h * w * C_in))).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def upsample2x(x: jax.Array, mode: str = "nearest") -> jax.Array:
  """Doubles the spatial size of an NHWC tensor.

  Args:
    x: (B, H, W, C) features.
    mode: "nearest" (pixel repetition; the most plausible reading of the authors' missing
      ``autonn_upSample``) or "bilinear" (half-pixel centres, like PyTorch's
      ``align_corners=False``).

  Returns:
    (B, 2H, 2W, C) features.
  """
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  if mode == "bilinear":
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="bilinear")
  raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")


class ConvBlock(nn.Module):
  """Three 3x3 conv (bias) -> BatchNorm -> ReLU layers: one resolution level."""
  features: int
  n_convs: int = 3
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for j in range(self.n_convs):
      x = nn.Conv(self.features, (3, 3), padding=1, use_bias=True,
                  kernel_init=conv_kernel_init, bias_init=nn.initializers.zeros,
                  dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv_{j}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                       epsilon=BN_EPSILON, dtype=self.dtype, param_dtype=self.param_dtype,
                       name=f"bn_{j}")(x)
      x = nn.relu(x)
    return x


class Decoder(nn.Module):
  """One decoder: from the bottleneck and the skips to a single-channel map.

  Attributes:
    filters: channels of the encoder levels, shallowest first (len = depth).
  """
  filters: tuple[int, ...]
  upsample: str = "nearest"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, y: jax.Array, skips: tuple[jax.Array, ...], train: bool) -> jax.Array:
    x = y
    for i in reversed(range(len(self.filters))):
      x = upsample2x(x, self.upsample)
      x = jnp.concatenate([x, skips[i]], axis=-1)  # upsampled first, as in the MATLAB code
      x = ConvBlock(self.filters[i], dtype=self.dtype, param_dtype=self.param_dtype,
                    name=f"block_{i}")(x, train)
    return nn.Conv(1, (3, 3), padding=1, use_bias=True, kernel_init=conv_kernel_init,
                   bias_init=nn.initializers.zeros, dtype=self.dtype,
                   param_dtype=self.param_dtype, name="out_conv")(x)


class Head(nn.Module):
  """The fully connected head: VALID conv over the whole bottleneck, then two 1x1 convs."""
  fc_width: int = 512
  n_outputs: int = 17
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, y: jax.Array, train: bool) -> jax.Array:
    kw = dict(kernel_init=conv_kernel_init, bias_init=nn.initializers.zeros,
              dtype=self.dtype, param_dtype=self.param_dtype)
    bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, use_running_average=not train,
              dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Conv(self.fc_width, y.shape[1:3], padding="VALID", name="conv_0", **kw)(y)
    x = nn.relu(nn.BatchNorm(name="bn_0", **bn)(x))
    x = nn.Conv(self.fc_width, (1, 1), name="conv_1", **kw)(x)
    x = nn.relu(nn.BatchNorm(name="bn_1", **bn)(x))
    x = nn.Conv(self.n_outputs, (1, 1), name="conv_out", **kw)(x)
    return x.reshape(x.shape[0], self.n_outputs)


class BioFaceUNet(nn.Module):
  """Encoder, ``n_decoders`` independent decoders and the FC head (NHWC).

  Attributes:
    base_filters: channels of the first level (authors: 32).
    depth: encoder levels below the bottleneck (authors: 4); level i has base*2**i channels and
      the bottleneck base*2**depth. Input H and W must be divisible by 2**depth.
    fc_width: width of the head's hidden layers (authors: 512).
    n_decoders: number of single-channel output maps (authors: 4 = mel, blood, shade, spec).
    n_vector: length of the head's output (authors: 17 = 15 lighting + 2 camera).
    upsample: "nearest" (default) or "bilinear".
    dtype: computation dtype (float32 or bfloat16); outputs are returned in at least float32.
    param_dtype: parameter dtype.
  """
  base_filters: int = 32
  depth: int = 4
  fc_width: int = 512
  n_decoders: int = 4
  n_vector: int = 17
  upsample: str = "nearest"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Runs the network.

    Args:
      x: (B, H, W, C) preprocessed images.
      train: use batch statistics (and update the running averages) if True.

    Returns:
      maps: (B, H, W, n_decoders) raw decoder outputs (order mel, blood, shade, spec).
      vector: (B, n_vector) raw head outputs.
    """
    if x.ndim != 4:
      raise ValueError(f"BioFaceUNet expects NHWC input (B, H, W, C), got shape {x.shape}")
    if self.upsample not in UPSAMPLE_MODES:
      raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
    factor = 2**self.depth
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"input height and width {x.shape[1:3]} must be divisible by "
                       f"2**depth = {factor} (depth={self.depth})")
    out_dtype = jnp.promote_types(self.dtype, jnp.float32)
    filters = tuple(self.base_filters * 2**i for i in range(self.depth))
    common = dict(dtype=self.dtype, param_dtype=self.param_dtype)

    h = x.astype(self.dtype)
    skips = []
    for i, f in enumerate(filters):
      h = ConvBlock(f, name=f"enc_{i}", **common)(h, train)
      skips.append(h)
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    y = ConvBlock(self.base_filters * factor, name="bottleneck", **common)(h, train)

    maps = [Decoder(filters, self.upsample, name=f"decoder_{d}", **common)(y, tuple(skips), train)
            for d in range(self.n_decoders)]
    maps = jnp.concatenate(maps, axis=-1).astype(out_dtype)
    vector = Head(self.fc_width, self.n_vector, name="head", **common)(y, train).astype(out_dtype)
    return maps, vector
