"""PRNet's official TensorFlow 1 checkpoint -> our ResFCN256 (source ``prnet_tf1``).

The file is the checkpoint of the PRNet code (YadiraF/PRNet), ``Data/net-data/
256_256_resfcn256_weight`` (a prefix: ``.index`` + ``.data-00000-of-00001``), written by
``tf.train.Saver`` from ``predictor.py``'s ``resfcn256`` built with ``tf.contrib.layers``. Its
245 network tensors (53 kernels, 48 BatchNorms x 4) map one to one onto
``prnet.init(..., PRNetConfig())`` (prnet-spec.md section 2); Adam's slots (``.../Adam``,
``.../Adam_1``, ``beta1_power``, ``beta2_power``) and other optimiser state are ignored.

Name map (``resfcn256/`` prefix on their side; ``params`` or ``batch_stats`` on ours):

| theirs | ours |
|---|---|
| ``Conv/weights`` | ``encoder/Conv/kernel`` |
| ``Conv/BatchNorm/{gamma,beta}`` | ``encoder/Conv_bn/{scale,bias}`` (params) |
| ``Conv/BatchNorm/{moving_mean,moving_variance}`` | ``encoder/Conv_bn/{mean,var}`` (stats) |
| ``resBlock{,_1.._9}/{shortcut,Conv,Conv_1,Conv_2}/weights`` | ``encoder/resBlock{..}/*/kernel`` |
| ``resBlock{..}/Conv{,_1}/BatchNorm/*`` | ``encoder/resBlock{..}/Conv{,_1}_bn/*`` |
| ``resBlock{..}/BatchNorm/*`` (after the add) | ``encoder/resBlock{..}/BatchNorm/*`` |
| ``Conv2d_transpose{,_1.._16}/weights`` | ``decoder/Conv2d_transpose{..}/kernel`` |
| ``Conv2d_transpose{..}/BatchNorm/*`` | ``decoder/Conv2d_transpose{..}_bn/*`` |

Layouts need no conversion: TF conv kernels are HWIO like Flax's, and TF ``conv2d_transpose``
kernels ``[kh, kw, out, in]`` are the layout of ``nn.ConvTranspose(transpose_kernel=True)``
(the gradient of the SAME conv, as TF). BatchNorm: ``tf.contrib.layers.batch_norm`` defaults
(epsilon 1e-3, running statistics at inference, ``scale=True``) = our ``nn.BatchNorm(epsilon=
1e-3)``; gamma/beta/moving_mean/moving_variance are scale/bias/mean/var unchanged.
Output scaling: ``PosPrediction.predict`` returns ``sigmoid(...) * 1.1 * 256``, which is
``prnet.predict`` (``s * 1.1 R``) at R = 256; inputs are RGB / 255 in both.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

from bioface_jax.pretrained.importers import matching

SYSTEM = "prnet"
FILES = ("checkpoint prefix",)
SCOPE = "resfcn256"
INPUT_SIZE = 256
_LEAVES = {"kernel": "weights", "scale": "gamma", "bias": "beta", "mean": "moving_mean",
           "var": "moving_variance"}
_SLOTS = {"Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1", "ExponentialMovingAverage"}
_COUNTERS = {"beta1_power", "beta2_power", "global_step"}


def is_optimiser_state(name: str) -> bool:
  """True for optimiser slots and step counters (not part of the network)."""
  return name in _COUNTERS or name.rsplit("/", 1)[-1] in _SLOTS


def model_config(width_multiplier: float = 1.0):
  """The official network: ResFCN256 at R = 256 (width 1 unless the file says otherwise)."""
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  return prnet.PRNetConfig(encoder="resfcn", width_multiplier=width_multiplier,
                           input_size=INPUT_SIZE)


def expected_shapes(config) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Our variable path -> shape for `config` (from the network's init, no computation)."""
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  params, stats = jax.eval_shape(
      lambda: prnet.init(jax.random.key(0), (1, config.input_size, config.input_size, 3), config))
  return matching.shapes({"params": params, "batch_stats": stats})


def their_name(path: tuple[str, ...]) -> str:
  """The TF variable name of our variable `path` (``("params", "encoder", ...)``)."""
  _, _, *modules, leaf = path  # collection, encoder|decoder, modules..., leaf
  scopes = []
  for module in modules:
    scopes += [module[:-3], "BatchNorm"] if module.endswith("_bn") else [module]
  return "/".join([SCOPE, *scopes, _LEAVES[leaf]])


def rules(config) -> list[matching.Rule]:
  """The name map for `config` (identity layouts throughout; module docstring)."""
  return [matching.Rule(their_name(path), path) for path in sorted(expected_shapes(config))]


def convert(tensors: dict[str, np.ndarray], where: str) -> dict[str, Any]:
  """``{"variables", "model_config", "input_size"}`` from the checkpoint's tensors.

  Raises:
    WeightsError: missing, unexpected or wrongly shaped tensors (named).
  """
  stem = tensors.get(f"{SCOPE}/Conv/weights")
  width = 1.0 if stem is None or np.ndim(stem) != 4 else np.shape(stem)[-1] / 16.0
  config = model_config(width)
  variables = matching.convert(tensors, rules(config), expected_shapes(config), where,
                               ignored=is_optimiser_state)
  return {"variables": variables, "model_config": config, "input_size": INPUT_SIZE}


def checkpoint_prefix(path: str | os.PathLike) -> pathlib.Path:
  """The prefix of a TF checkpoint given as the prefix or one of its files."""
  path = pathlib.Path(path).expanduser()
  name = path.name
  for suffix in (".index", ".meta"):
    if name.endswith(suffix):
      return path.with_name(name[:-len(suffix)])
  if ".data-" in name:
    return path.with_name(name.split(".data-")[0])
  return path


def read(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
  """The network tensors of a TF1 checkpoint (optimiser state is not read).

  Raises:
    MissingFrameworkError: TensorFlow is not installed.
    FileNotFoundError: no ``<prefix>.index``.
    WeightsError: the checkpoint cannot be read (truncated, damaged, not a checkpoint).
  """
  prefix = checkpoint_prefix(prefix)
  index = prefix.with_name(prefix.name + ".index")
  if not index.is_file():
    raise FileNotFoundError(f"{index} not found: give the checkpoint prefix, e.g. "
                            "Data/net-data/256_256_resfcn256_weight (beside its .index and "
                            ".data-00000-of-00001 files)")
  tf = matching.need("tensorflow", "TensorFlow", "a TensorFlow 1 checkpoint")
  try:
    reader = tf.train.load_checkpoint(str(prefix))
    names = [n for n in reader.get_variable_to_shape_map() if not is_optimiser_state(n)]
    return {name: np.asarray(reader.get_tensor(name)) for name in sorted(names)}
  except (tf.errors.OpError, ValueError, RuntimeError, IndexError) as error:
    message = str(getattr(error, "message", error)).strip().splitlines()[0][:300]
    raise matching.WeightsError(f"{prefix}: not a readable TensorFlow checkpoint (truncated or "
                                f"damaged?): {type(error).__name__}: {message}") from error


def load(paths) -> dict[str, Any]:
  """Reads and converts the one checkpoint in `paths` (module docstring)."""
  (prefix,) = paths
  prefix = checkpoint_prefix(prefix)
  return convert(read(prefix), str(prefix))
