"""PRNet networks (Flax linen): ResFCN256 (Feng et al., ECCV 2018) and two torchvision trunks.

* `ResFCNEncoder` + `PRNetDecoder` = the official ResFCN256 (PRNet code, predictor.py;
  prnet-spec.md §2): 4x4 kernels, TF ``SAME`` padding, no biases, BatchNorm (eps 1e-3,
  momentum 0.999) + ReLU after every conv and transposed conv, residual blocks with BatchNorm
  after the add, 17 transposed convs, the last one BN then sigmoid. 13,353,618 parameters.
* `ResNet18Encoder` and `MobileNetV2Encoder`: torchvision's ``resnet18`` / ``mobilenet_v2``
  trunks (explicit k//2 padding, BN eps 1e-5, momentum 0.9 in Flax terms, He-normal fan-out
  init), no pooling head, ending at (R/32)^2 x C; a 1x1 conv + BN + ReLU adapter feeds the
  same decoder when C != round(512 w) (prnet-spec.md §3).

`width_multiplier` w scales every width except the RGB input and the last three decoder layers.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from bioface_jax.models import subpixel

xavier = nn.initializers.xavier_uniform()
he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def scaled(channels: int, w: float) -> int:
  return max(1, int(round(channels * w)))


def make_divisible(v: float, divisor: int = 8) -> int:
  """torchvision's _make_divisible (MobileNetV2 widths)."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


class _TFBlocks:
  """Shared TF-style layer factories (no bias, SAME, Glorot, BN eps 1e-3)."""

  @staticmethod
  def conv(features, kernel, stride=1, name=None):
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding="SAME", use_bias=False,
                   kernel_init=xavier, name=name)

  @staticmethod
  def bn(train, momentum, name=None):
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-3,
                        name=name)


class ResBlock(nn.Module):
  """PRNet's resBlock(C, s): 1x1 C/2, 4x4 C/2 stride s, 1x1 C (plain), + shortcut, BN, ReLU."""
  features: int
  stride: int = 1
  bn_momentum: float = 0.999

  @nn.compact
  def __call__(self, x, train: bool):
    c, s, t = self.features, self.stride, _TFBlocks
    bn = functools.partial(t.bn, train, self.bn_momentum)
    shortcut = x
    if s != 1 or x.shape[-1] != c:
      shortcut = t.conv(c, 1, s, name="shortcut")(x)
    y = nn.relu(bn(name="Conv_bn")(t.conv(c // 2, 1, name="Conv")(x)))
    y = nn.relu(bn(name="Conv_1_bn")(t.conv(c // 2, 4, s, name="Conv_1")(y)))
    y = t.conv(c, 1, name="Conv_2")(y)
    return nn.relu(bn(name="BatchNorm")(y + shortcut))


class ResFCNEncoder(nn.Module):
  """Stem conv 16 + ten resBlocks (32/2 32/1 64/2 ... 512/2 512/1), all widths x w."""
  width: float = 1.0
  bn_momentum: float = 0.999

  @nn.compact
  def __call__(self, x, train: bool):
    t = _TFBlocks
    base = scaled(16, self.width)
    x = nn.relu(t.bn(train, self.bn_momentum, name="Conv_bn")(t.conv(base, 4, name="Conv")(x)))
    k = 0
    for mult in (2, 4, 8, 16, 32):
      for stride in (2, 1):
        name = "resBlock" if k == 0 else f"resBlock_{k}"
        x = ResBlock(base * mult, stride, self.bn_momentum, name=name)(x, train)
        k += 1
    return x


DECODER_LAYERS = ((512, 1), (256, 2), (256, 1), (256, 1), (128, 2), (128, 1), (128, 1),
                  (64, 2), (64, 1), (64, 1), (32, 2), (32, 1), (16, 2), (16, 1),
                  (3, 1), (3, 1), (3, 1))


class PRNetDecoder(nn.Module):
  """17 transposed convs 4x4 (TF conv2d_transpose SAME), BN + ReLU, the last BN + sigmoid."""
  width: float = 1.0
  bn_momentum: float = 0.999

  @nn.compact
  def __call__(self, x, train: bool):
    n = len(DECODER_LAYERS)
    for k, (features, stride) in enumerate(DECODER_LAYERS):
      c = features if k >= n - 3 else scaled(features, self.width)
      name = "Conv2d_transpose" if k == 0 else f"Conv2d_transpose_{k}"
      x = subpixel.ConvTranspose(c, (4, 4), (stride, stride), padding="SAME", use_bias=False,
                                 transpose_kernel=True, kernel_init=xavier, name=name)(x)
      x = _TFBlocks.bn(train, self.bn_momentum, name=f"{name}_bn")(x)
      x = nn.sigmoid(x) if k == n - 1 else nn.relu(x)
    return x


def _torch_conv(features, kernel, stride=1, groups=1, name=None):
  p = kernel // 2
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)),
                 feature_group_count=groups, use_bias=False, kernel_init=he_fan_out, name=name)


def _torch_bn(train, name=None):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class BasicBlock(nn.Module):
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(_torch_bn(train)(_torch_conv(self.features, 3, self.stride)(x)))
    y = _torch_bn(train)(_torch_conv(self.features, 3)(y))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = _torch_bn(train, "downsample_bn")(
          _torch_conv(self.features, 1, self.stride, name="downsample")(x))
    return nn.relu(y + x)


class ResNet18Encoder(nn.Module):
  """torchvision resnet18 up to layer4: conv7x7/2, maxpool 3/2, 2 BasicBlocks x 4 stages."""
  width: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu(_torch_bn(train)(_torch_conv(scaled(64, self.width), 7, 2)(x)))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for stage, c in enumerate((64, 128, 256, 512)):
      for b in range(2):
        x = BasicBlock(scaled(c, self.width), 2 if (b == 0 and stage > 0) else 1)(x, train)
    return x


MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
  features: int
  stride: int
  expand: int

  @nn.compact
  def __call__(self, x, train: bool):
    cin = x.shape[-1]
    hidden = int(round(cin * self.expand))
    y = x
    if self.expand != 1:
      y = nn.relu6(_torch_bn(train)(_torch_conv(hidden, 1)(y)))
    y = nn.relu6(_torch_bn(train)(_torch_conv(hidden, 3, self.stride, groups=hidden)(y)))
    y = _torch_bn(train)(_torch_conv(self.features, 1)(y))
    return x + y if self.stride == 1 and cin == self.features else y


class MobileNetV2Encoder(nn.Module):
  """torchvision mobilenet_v2 ``features`` (ReLU6, depthwise convs, final 1x1 -> 1280)."""
  width: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu6(_torch_bn(train)(_torch_conv(make_divisible(32 * self.width), 3, 2)(x)))
    for t, c, n, s in MOBILENET_V2_SETTINGS:
      for i in range(n):
        x = InvertedResidual(make_divisible(c * self.width), s if i == 0 else 1, t)(x, train)
    last = make_divisible(1280 * max(1.0, self.width))
    return nn.relu6(_torch_bn(train)(_torch_conv(last, 1)(x)))


ENCODERS = {"resfcn": ResFCNEncoder, "resnet18": ResNet18Encoder,
            "mobilenet_v2": MobileNetV2Encoder}


class PRNet(nn.Module):
  """Encoder -> (adapter) -> decoder; returns the sigmoid map s in [0, 1]^(R x R x 3)."""
  encoder: str = "resfcn"
  width_multiplier: float = 1.0
  bn_momentum: float = 0.999

  @nn.compact
  def __call__(self, images, train: bool = False):
    w = self.width_multiplier
    if self.encoder == "resfcn":
      feats = ResFCNEncoder(w, self.bn_momentum, name="encoder")(images, train)
    else:
      feats = ENCODERS[self.encoder](w, name="encoder")(images, train)
    c = scaled(512, w)
    if feats.shape[-1] != c:
      feats = _TFBlocks.conv(c, 1, name="adapter")(feats)
      feats = nn.relu(_TFBlocks.bn(train, self.bn_momentum, name="adapter_bn")(feats))
    return PRNetDecoder(w, self.bn_momentum, name="decoder")(feats, train)


__all__ = ["DECODER_LAYERS", "ENCODERS", "PRNet", "PRNetDecoder", "ResFCNEncoder",
           "ResNet18Encoder", "MobileNetV2Encoder", "make_divisible"]
