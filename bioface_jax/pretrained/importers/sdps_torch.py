"""SDPS-Net's PyTorch checkpoints -> our LCNet + NENet (source ``sdps_torch``).

Two files, LCNet's then NENet's, as the SDPS-Net code (guanyingc/SDPS-Net) saves them
(``models/model_utils.py``, ``saveCheckpoint``): ``torch.save({'state_dict':
model.state_dict(), 'model': 'LCNet' | 'NENet'}, path)``; the released ones are
``LCNet_CVPR2019.pth.tar`` and ``NENet_CVPR2019.pth.tar``. Both PyTorch formats are read (the
zip format of PyTorch >= 1.6 and the legacy one of PyTorch 0.4 / Python 2.7), with
``weights_only=True`` (no code in the file runs); a bare state dict and DataParallel's
``module.`` prefix are accepted too. The networks are the defaults of the code's options
(``--use_BN`` off, ``--in_mask`` on, 36 direction and 20 intensity classes, ``test_h`` 128), which
are `sdps.SDPSConfig(net="lcnet", input_size=128)` and `SDPSConfig(net="nenet")`.

Name map (their ``state_dict`` keys; ours under ``lcnet/params/`` and ``nenet/params/``; every
conv is ``nn.Sequential(Conv2d, LeakyReLU)``, hence the ``.0``):

* LCNet: ``featExtractor.conv{1..7}.0.{weight,bias}`` -> ``c{1..7}/Conv_0/{kernel,bias}``;
  ``classifier.conv{1..4}.0.*`` -> ``k{1..4}/Conv_0/*``; ``classifier.{dir_x,dir_y,int}_est.0.0.*``
  (1x1 conv + LeakyReLU) -> ``{dir_x,dir_y,int}_hidden/*`` and ``..._est.1.0.*`` (output
  conv) -> ``{..}_out/*``.
* NENet: ``extractor.conv{1..5,7}.0.{weight,bias}`` -> ``e{..}/Conv_0/{kernel,bias}``;
  ``extractor.conv6.0.weight`` (deconv) -> ``e6/ConvTranspose_0/kernel``;
  ``regressor.deconv{1,2}.0.*`` (3x3 convs despite the name) -> ``r{1,2}/Conv_0/*``;
  ``regressor.deconv3.0.weight`` -> ``r3/ConvTranspose_0/kernel``;
  ``regressor.est_normal.0.weight`` -> ``out/kernel``.

Layouts: Conv2d weights OIHW -> HWIO; ConvTranspose2d weights ``(in, out, kh, kw)`` -> ``(kh,
kw, in, out)`` flipped in both spatial axes (our ``nn.ConvTranspose`` with PyTorch's padding 1 as
``((2, 2), (2, 2))``, sdps-spec.md section 13); biases as stored. Channel orders need nothing:
LCNet's input is [RGB, mask] and its classifier input [local, global] in both; NENet's input is
[image / intensity, light direction] in both. No BatchNorm (a ``--use_BN`` checkpoint is refused,
its BatchNorm tensors named as unexpected).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

from bioface_jax.pretrained.importers import matching

SYSTEM = "sdps"
FILES = ("LCNet .pth.tar", "NENet .pth.tar")
INPUT_SIZE = 128  # LCNet's test_h / test_w and the training crop
_HEADS = (("dir_x_est", "dir_x"), ("dir_y_est", "dir_y"), ("int_est", "int"))


def model_configs(num_dir_bins: int = 36, num_int_bins: int = 20) -> dict[str, Any]:
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  return {"lcnet": sdps.SDPSConfig(net="lcnet", input_size=INPUT_SIZE, num_dir_bins=num_dir_bins,
                                   num_int_bins=num_int_bins),
          "nenet": sdps.SDPSConfig(net="nenet", input_size=INPUT_SIZE)}


def expected_shapes(configs) -> dict[tuple[str, ...], tuple[int, ...]]:
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  out = {}
  for part, config in configs.items():
    params = jax.eval_shape(
        lambda c=config: sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), c)[0])
    out.update(matching.shapes({part: {"params": params}}))
  return out


def _conv(theirs: str, ours: tuple[str, ...], bias: bool = True) -> list[matching.Rule]:
  rules = [matching.Rule(f"{theirs}.weight", ours + ("kernel",), matching.TORCH_CONV)]
  if bias:
    rules.append(matching.Rule(f"{theirs}.bias", ours + ("bias",)))
  return rules


def lcnet_rules() -> list[matching.Rule]:
  """LCNet's state-dict keys -> ``("lcnet", "params", ...)``."""
  p = ("lcnet", "params")
  rules = []
  for i in range(1, 8):
    rules += _conv(f"featExtractor.conv{i}.0", p + (f"c{i}", "Conv_0"))
  for i in range(1, 5):
    rules += _conv(f"classifier.conv{i}.0", p + (f"k{i}", "Conv_0"))
  for theirs, ours in _HEADS:
    rules += _conv(f"classifier.{theirs}.0.0", p + (f"{ours}_hidden",))
    rules += _conv(f"classifier.{theirs}.1.0", p + (f"{ours}_out",))
  return rules


def nenet_rules() -> list[matching.Rule]:
  """NENet's state-dict keys -> ``("nenet", "params", ...)``."""
  p = ("nenet", "params")
  rules = []
  for i in (1, 2, 3, 4, 5, 7):
    rules += _conv(f"extractor.conv{i}.0", p + (f"e{i}", "Conv_0"))
  rules.append(matching.Rule("extractor.conv6.0.weight", p + ("e6", "ConvTranspose_0", "kernel"),
                             matching.TORCH_CONV_TRANSPOSE))
  for i in (1, 2):
    rules += _conv(f"regressor.deconv{i}.0", p + (f"r{i}", "Conv_0"))
  rules.append(matching.Rule("regressor.deconv3.0.weight", p + ("r3", "ConvTranspose_0", "kernel"),
                             matching.TORCH_CONV_TRANSPOSE))
  rules += _conv("regressor.est_normal.0", p + ("out",), bias=False)
  return rules


def _part(rules, part):
  return [r for r in rules if r.ours[0] == part]


def convert(lcnet: dict[str, np.ndarray], nenet: dict[str, np.ndarray],
            where: tuple[str, str] = ("LCNet", "NENet")) -> dict[str, Any]:
  """``{"variables", "model_config", "input_size"}`` from the two state dicts (as NumPy).

  Raises:
    WeightsError: missing, unexpected or wrongly shaped tensors (named, with the file).
  """
  bins = [np.shape(lcnet.get(f"classifier.{h}.1.0.weight", np.zeros((d,))))[0]
          for h, d in (("dir_x_est", 36), ("int_est", 20))]
  configs = model_configs(*bins)
  expected = expected_shapes(configs)
  variables = {}
  for part, tensors, rules, file in (("lcnet", lcnet, lcnet_rules(), where[0]),
                                     ("nenet", nenet, nenet_rules(), where[1])):
    shapes = {k: v for k, v in expected.items() if k[0] == part}
    variables.update(matching.convert(tensors, _part(rules, part), shapes, file))
  return {"variables": variables, "model_config": configs, "input_size": INPUT_SIZE}


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str | None]:
  """(state dict as NumPy arrays, the checkpoint's ``model`` name or None) of one file.

  Raises:
    MissingFrameworkError: PyTorch is not installed.
    FileNotFoundError: no such file.
    WeightsError: not a readable PyTorch checkpoint of a state dict.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found")
  torch = matching.need("torch", "PyTorch", "SDPS-Net's .pth.tar checkpoints")
  try:
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
  except Exception as error:  # noqa: BLE001 - torch raises many types for bad files
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    raise matching.WeightsError(f"{path}: not a readable PyTorch checkpoint (truncated or "
                                f"damaged?): {type(error).__name__}: {message}") from error
  model = None
  if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
    model = checkpoint.get("model")
    checkpoint = checkpoint["state_dict"]
  if not isinstance(checkpoint, dict) or not all(
      hasattr(v, "detach") for v in checkpoint.values()):
    raise matching.WeightsError(f"{path}: expected {{'state_dict': ..., 'model': ...}} or a state "
                                f"dict of tensors, got {type(checkpoint).__name__}")
  names = list(checkpoint)
  if names and all(n.startswith("module.") for n in names):  # saved from nn.DataParallel
    checkpoint = {n[len("module."):]: v for n, v in checkpoint.items()}
  tensors = {n: v.detach().cpu().numpy() for n, v in checkpoint.items()}
  return tensors, (model.decode() if isinstance(model, bytes) else model)


def load(paths) -> dict[str, Any]:
  """Reads LCNet's and NENet's checkpoints (in that order) and converts them."""
  if len(paths) != 2:
    raise ValueError(f"sdps_torch takes two files, LCNet's then NENet's .pth.tar; got "
                     f"{len(paths)}")
  (lc, lc_model), (ne, ne_model) = (read(p) for p in paths)
  if lc_model == "NENet" or ne_model == "LCNet":
    raise matching.WeightsError(f"{paths[0]} holds {lc_model} and {paths[1]} holds {ne_model}: "
                                "give LCNet's checkpoint first, then NENet's")
  for path, model, want in ((paths[0], lc_model, ("LCNet",)),
                            (paths[1], ne_model, ("NENet", "PS_FCN"))):
    if model is not None and model not in want:
      raise matching.WeightsError(f"{path} holds a {model!r} model, not {want[0]}")
  return convert(lc, ne, (str(paths[0]), str(paths[1])))
