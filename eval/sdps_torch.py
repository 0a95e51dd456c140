"""LCNet and NENet in PyTorch, built from sdps-spec.md §5 (standard convs), for `eval.bench_sdps`.

Independent of the Flax code: same layer list, LeakyReLU(0.1), PyTorch padding, max fusion over
the N images (batch laid out (B·N, C, H, W), NCHW). Parameter counts must equal the Flax
models' (checked by the benchmark). Requires torch (optional extra ``bench-torch``).
"""

from __future__ import annotations

import torch
from torch import nn


def _w(c, alpha):
  return max(4, int(round(alpha * c)))


def conv(cin, cout, stride=1):
  return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


def deconv(cin, cout):
  return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.LeakyReLU(0.1))


class TorchLCNet(nn.Module):
  """LCNet: 4-channel input (RGB + mask) at input_size; logits (B, N, 36/36/20)."""

  def __init__(self, alpha=1.0, input_size=128):
    super().__init__()
    w = lambda c: _w(c, alpha)  # noqa: E731
    self.input_size = input_size
    self.extract = nn.Sequential(
        conv(4, w(64), 2), conv(w(64), w(128), 2), conv(w(128), w(128)),
        conv(w(128), w(128), 2), conv(w(128), w(128)), conv(w(128), w(256), 2),
        conv(w(256), w(256)))
    self.classify = nn.Sequential(
        conv(2 * w(256), w(256)), conv(w(256), w(256), 2), conv(w(256), w(256), 2),
        conv(w(256), w(256), 2))
    self.heads = nn.ModuleList([
        nn.Sequential(nn.Conv2d(w(256), w(64), 1), nn.LeakyReLU(0.1), nn.Conv2d(w(64), k, 1))
        for k in (36, 36, 20)])

  def forward(self, x, b, n):  # x: (B·N, 4, S, S)
    f = self.extract(x)
    _, c, h, ww = f.shape
    local = f.view(b, n, c, h, ww)
    glob = local.max(1, keepdim=True)[0].expand_as(local)
    y = self.classify(torch.cat([local, glob], 2).view(b * n, 2 * c, h, ww))
    return [head(y).view(b, n, -1) for head in self.heads]


class TorchNENet(nn.Module):
  """NENet (= PS-FCN): 6-channel input per image; unit normals (B, 3, H, W)."""

  def __init__(self, alpha=1.0):
    super().__init__()
    w = lambda c: _w(c, alpha)  # noqa: E731
    self.extract = nn.Sequential(
        conv(6, w(64)), conv(w(64), w(128), 2), conv(w(128), w(128)), conv(w(128), w(256), 2),
        conv(w(256), w(256)), deconv(w(256), w(128)), conv(w(128), w(128)))
    self.regress = nn.Sequential(
        conv(w(128), w(128)), conv(w(128), w(128)), deconv(w(128), w(64)),
        nn.Conv2d(w(64), 3, 3, 1, 1, bias=False))

  def forward(self, x, b, n):  # x: (B·N, 6, H, W)
    f = self.extract(x)
    f = f.view((b, n) + f.shape[1:]).max(1)[0]
    return nn.functional.normalize(self.regress(f), dim=1)


def param_count(model):
  return sum(p.numel() for p in model.parameters())
