"""Tiny untrained models of the four systems as inference exports, for the command tests.

Each is built from the system's real ``smoke`` training config (shrunk where noted) through the
same rule the trainers and `pretrained` use (`pretrained.systems`), with variables of the
right structure from ``jax.eval_shape`` of the model's ``init`` (compiling ``init`` itself
takes tens of seconds on a busy CPU) filled with fresh values: kernels ~ N(0, 1/fan_in),
biases and BatchNorm means 0, BatchNorm scales and variances 1. Written with
`pretrained.save` (float32), so ``pretrained.load(name, path)`` reads them like any export.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from bioface_jax import pretrained
from bioface_jax.models import biofacenet, face_vae, prnet, sdps
from bioface_jax.pretrained import systems

SIZES = {"biofacenet": 16, "face_vae": 32, "prnet": 32, "sdps": 16}


def _fill(tree, seed: int):
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, leaf.dtype)
  return jax.tree_util.tree_map_with_path(fill, tree)


def _run_config(name: str) -> dict:
  if name == "biofacenet":
    from train.configs import biofacenet as configs  # pylint: disable=g-import-not-at-top
    c = configs.get_config("smoke")
    c.data.size = SIZES[name]
  elif name == "face_vae":
    from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top
    c = configs.get_config("ssim_l2_mask,smoke")
  elif name == "prnet":
    from train.configs import prnet as configs  # pylint: disable=g-import-not-at-top
    c = configs.get_config("smoke")
    c.data.size = SIZES[name]
  else:
    from train.configs import sdps as configs  # pylint: disable=g-import-not-at-top
    c = configs.get_config("smoke,fused")
  return json.loads(c.to_json())


def export(name: str, directory: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """Writes a tiny `name` export to `directory` and returns it."""
  run = _run_config(name)
  system = systems.SYSTEMS[name]
  config = system.model_config(run)
  size = system.input_size(run)
  key = jax.random.key(0)
  if name == "sdps":
    part = config["fused"]
    params, _ = jax.eval_shape(lambda: sdps.init(key, (1, 2, size, size, 3), part))
    variables = {"fused": {"params": _fill(params, seed)}}
  else:
    init = {"biofacenet": biofacenet.init, "face_vae": face_vae.init, "prnet": prnet.init}[name]
    params, stats = jax.eval_shape(lambda: init(key, (1, size, size, 3), config))
    variables = {"params": _fill(params, seed), "batch_stats": _fill(stats, seed + 1)}
  return pretrained.save(directory, name, variables, config, input_size=size, step=7,
                         run_config=run, source="tests/tiny_models.py", dtype=np.float32)
