"""The authors' published weights -> our variables (``python -m train.import_weights``).

One module per source, each a documented name map (their tensor names -> our variable paths)
with the layout conversions, and a reader behind a lazy import of the authors' framework:

* ``prnet_tf1`` (system prnet, `prnet_tf1`): the official TF1 checkpoint prefix
  ``256_256_resfcn256_weight``;
* ``sdps_torch`` (sdps, `sdps_torch`): ``LCNet_CVPR2019.pth.tar`` then ``NENet_CVPR2019.pth.tar``;
* ``face_vae_keras`` (face_vae, `face_vae_keras`): one Keras ``save_weights`` ``.h5`` (the
  training model's or the converted ``.predict.h5``).

``load(source, paths)`` returns ``{"variables", "model_config", "input_size"}``, ready for
`bioface_jax.pretrained.save`. Errors: `WeightsError` (a `ValueError`) names the file and every
missing, unexpected or wrongly shaped tensor; `MissingFrameworkError` (an `ImportError`) names
the ``weights`` extra; `FileNotFoundError` names the missing file. Each module's ``rules``
gives its name map (`matching.table` formats it).
"""

from __future__ import annotations

from typing import Any

from bioface_jax.pretrained.importers import face_vae_keras, prnet_tf1, sdps_torch
from bioface_jax.pretrained.importers.matching import MissingFrameworkError, WeightsError

SOURCES = {"prnet_tf1": prnet_tf1, "sdps_torch": sdps_torch, "face_vae_keras": face_vae_keras}


def source(name: str):
  """The importer module of source `name`."""
  if name not in SOURCES:
    raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
  return SOURCES[name]


def load(name: str, paths) -> dict[str, Any]:
  """Reads the authors' files of source `name` and converts them (module docstring)."""
  return source(name).load([str(p) for p in paths])


__all__ = ["SOURCES", "MissingFrameworkError", "WeightsError", "load", "source"]
