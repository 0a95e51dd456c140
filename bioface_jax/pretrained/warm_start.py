"""Starting a training run from a trained model (``--config.init_workdir=DIR``).

DIR may be a training run, an inference export or imported authors' weights: anything
`pretrained.load` reads. The trainers read it once (`read`) and, when they build the initial
state, put its variables in place of the fresh ones (`like`), which must have the same tree and
shapes: the run's config must describe the same network. Only the network variables are taken;
the optimiser state, schedule and step start afresh.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax.pretrained import store


def read(name: str, path: str | os.PathLike) -> store.Source:
  """The model of system `name` at `path` (a run or an export), read-only.

  Raises:
    ValueError, FileNotFoundError: as `pretrained.load` (wrong system, nothing there, damaged);
      ValueError also for an ensemble export (several networks: start from one member's run).
  """
  source = store.read(name, path)
  members = getattr(source.model_config, "ensemble", 1)
  if members > 1:
    raise ValueError(f"{path} is an ensemble of {members} {name} networks; training starts "
                     "from one network: give one member's run or export")
  return source


def _paths(tree: Any) -> dict[str, Any]:
  return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def like(fresh: Mapping[str, Any], loaded: Mapping[str, Any], where: str) -> dict[str, Any]:
  """`loaded`'s arrays in the tree of `fresh` (jax arrays of `fresh`'s dtypes).

  Raises:
    ValueError: the trees differ or a leaf's shape differs; names the first differences.
  """
  want, have = _paths(fresh), _paths(loaded)
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  shapes = [f"{k} {tuple(np.shape(have[k]))} (this run: {tuple(np.shape(want[k]))})"
            for k in sorted(set(want) & set(have)) if np.shape(want[k]) != np.shape(have[k])]
  problems = [f"{label}: {', '.join(items[:4])}" + (f" and {len(items) - 4} more"
                                                    if len(items) > 4 else "")
              for label, items in (("missing there", missing), ("not in this run", extra),
                                   ("other shapes", shapes)) if items]
  if problems:
    raise ValueError(f"init_workdir {where} holds another network than this run's config "
                     f"builds ({'; '.join(problems)}); give the run the same model settings")
  return jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.asarray(have[jax.tree_util.keystr(p)], dtype=v.dtype), dict(fresh))
