"""SDPS-Net's networks as published, in PyTorch, for the weight-import tests.

A transcription of the SDPS-Net code (guanyingc/SDPS-Net: ``models/LCNet.py``, ``NENet.py``,
``model_utils.py`` and ``utils/eval_utils.py``) with its module names, so that ``state_dict()``
has exactly the released checkpoints' keys, its data layout (images stacked on the channel axis,
per-image outputs concatenated image-major on the batch axis) and its light decoding. Options are
the code's defaults: no BatchNorm, max fusion, mask input, 36 / 20 classes, test size 128.
Imported only when PyTorch is installed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

TEST_SIZE = 128
DIRS_CLS, INTS_CLS = 36, 20


def conv(cin, cout, k=3, stride=1, pad=1):
  """model_utils.conv without BatchNorm: Conv2d (bias) + LeakyReLU(0.1)."""
  return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=k, stride=stride, padding=pad, bias=True),
                       nn.LeakyReLU(0.1, inplace=True))


def output_conv(cin, cout):
  return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=1, padding=0, bias=True))


def deconv(cin, cout):
  return nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1,
                                          bias=False), nn.LeakyReLU(0.1, inplace=True))


class LCNetFeatExtractor(nn.Module):
  def __init__(self, c_in):
    super().__init__()
    self.conv1 = conv(c_in, 64, stride=2)
    self.conv2 = conv(64, 128, stride=2)
    self.conv3 = conv(128, 128)
    self.conv4 = conv(128, 128, stride=2)
    self.conv5 = conv(128, 128)
    self.conv6 = conv(128, 256, stride=2)
    self.conv7 = conv(256, 256)

  def forward(self, x):
    for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6,
                  self.conv7):
      x = layer(x)
    return x


class LCNetClassifier(nn.Module):
  def __init__(self):
    super().__init__()
    self.conv1 = conv(512, 256)
    self.conv2 = conv(256, 256, stride=2)
    self.conv3 = conv(256, 256, stride=2)
    self.conv4 = conv(256, 256, stride=2)
    self.dir_x_est = nn.Sequential(conv(256, 64, k=1, pad=0), output_conv(64, DIRS_CLS))
    self.dir_y_est = nn.Sequential(conv(256, 64, k=1, pad=0), output_conv(64, DIRS_CLS))
    self.int_est = nn.Sequential(conv(256, 64, k=1, pad=0), output_conv(64, INTS_CLS))

  def forward(self, x):
    for layer in (self.conv1, self.conv2, self.conv3, self.conv4):
      x = layer(x)
    return {"dir_x": self.dir_x_est(x), "dir_y": self.dir_y_est(x), "ints": self.int_est(x)}


def spherical_class_to_dirs(x_cls, y_cls, cls_num):
  """eval_utils.SphericalClassToDirs: bin centres -> unit directions (tan-based form)."""
  theta = (x_cls.double() + 0.5) / cls_num * 180 - 90
  phi = (y_cls.double() + 0.5) / cls_num * 180 - 90
  neg_y = phi < 0
  theta = theta.clamp(-90, 90) / 180.0 * math.pi
  phi = phi.clamp(-90, 90) / 180.0 * math.pi
  tan2_phi, tan2_theta = torch.tan(phi) ** 2, torch.tan(theta) ** 2
  y = torch.sqrt(tan2_phi / (1 + tan2_phi))
  y[neg_y] = -y[neg_y]
  z = torch.sqrt((1 - y * y) / (1 + tan2_theta))
  x = z * torch.tan(theta)
  dirs = torch.stack([x, y, z], 1)
  return dirs / dirs.norm(p=2, dim=1, keepdim=True)


def class_to_light_ints(cls, cls_num):
  return ((cls.double() + 0.5) / cls_num * 1.8 + 0.2).clamp(0.2, 2.0)


class LCNet(nn.Module):
  """Input ``[images (B, 3N, H, W), mask (B, 1, H, W)]``; per-image logits image-major."""

  def __init__(self):
    super().__init__()
    self.featExtractor = LCNetFeatExtractor(4)  # pylint: disable=invalid-name
    self.classifier = LCNetClassifier()

  def forward(self, x):
    imgs, mask = x
    if imgs.shape[2:] != (TEST_SIZE, TEST_SIZE):
      imgs = F.interpolate(imgs, size=(TEST_SIZE, TEST_SIZE), mode="bilinear",
                           align_corners=False)
      mask = F.interpolate(mask, size=(TEST_SIZE, TEST_SIZE), mode="bilinear",
                           align_corners=False)
    inputs = [torch.cat([img, mask], 1) for img in torch.split(imgs, 3, 1)]
    feats = [self.featExtractor(i) for i in inputs]
    fused = torch.stack(feats, 1).max(1)[0]
    outs = [self.classifier(torch.cat([f, fused], 1)) for f in feats]
    pred = {k: torch.cat([o[k] for o in outs], 0).flatten(1) for k in ("dir_x", "dir_y", "ints")}
    pred["dirs"] = spherical_class_to_dirs(pred["dir_x"].argmax(1), pred["dir_y"].argmax(1),
                                           DIRS_CLS).to(imgs.dtype)
    ints = class_to_light_ints(pred["ints"].argmax(1), INTS_CLS).to(imgs.dtype)
    ints = ints.view(-1, 1).repeat(1, 3)
    pred["intens"] = torch.cat(torch.split(ints, ints.shape[0] // len(inputs), 0), 1)
    return pred


class NENetExtractor(nn.Module):
  def __init__(self, c_in):
    super().__init__()
    self.conv1 = conv(c_in, 64)
    self.conv2 = conv(64, 128, stride=2)
    self.conv3 = conv(128, 128)
    self.conv4 = conv(128, 256, stride=2)
    self.conv5 = conv(256, 256)
    self.conv6 = deconv(256, 128)
    self.conv7 = conv(128, 128)

  def forward(self, x):
    for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6,
                  self.conv7):
      x = layer(x)
    return x


class NENetRegressor(nn.Module):
  def __init__(self):
    super().__init__()
    self.deconv1 = conv(128, 128)
    self.deconv2 = conv(128, 128)
    self.deconv3 = deconv(128, 64)
    self.est_normal = nn.Sequential(nn.Conv2d(64, 3, kernel_size=3, stride=1, padding=1,
                                              bias=False))

  def forward(self, x):
    x = self.deconv3(self.deconv2(self.deconv1(x)))
    return F.normalize(self.est_normal(x), 2, 1)


class NENet(nn.Module):
  """Input ``[images (B, 3N, H, W), mask, LCNet's prediction]``: normals (B, 3, H, W)."""

  def __init__(self):
    super().__init__()
    self.extractor = NENetExtractor(6)
    self.regressor = NENetRegressor()

  def forward(self, x):
    imgs, _, pred = x
    b = imgs.shape[0]
    dirs = torch.split(pred["dirs"], b, 0)
    ints = torch.split(pred["intens"], 3, 1)
    feats = None
    for i, img in enumerate(torch.split(imgs, 3, 1)):
      n, c, h, w = img.shape
      scale = torch.diag(1.0 / (ints[i].contiguous().view(-1) + 1e-8))
      img = torch.mm(scale, img.contiguous().view(n * c, h * w)).view(n, c, h, w)
      img = torch.cat([img, dirs[i].view(n, -1, 1, 1).expand_as(img)], 1)
      feat = self.extractor(img)
      feats = feat if feats is None else torch.stack([feats, feat], 1).max(1)[0]
    return self.regressor(feats)


def randomise(model: nn.Module, seed: int) -> None:
  """He-normal weights (as the code's kaiming_normal_) and non-zero biases."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias"):
        p.copy_(0.1 * torch.randn(p.shape, generator=gen))
      else:
        fan_in = p.shape[1] * p.shape[2] * p.shape[3]
        p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / fan_in))
