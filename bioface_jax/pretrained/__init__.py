"""Ready-to-use trained models: one way to run any of the four systems from Python.

    from bioface_jax import pretrained
    m = pretrained.load("prnet")            # the shipped model; or pretrained.load("prnet", DIR)
    out = m.apply(images)                   # dict of NumPy arrays (architecture.md, contract)
    m.config, m.input_size

`load(name, path=None)`: `name` in ``biofacenet``, ``face_vae``, ``sdps``, ``prnet``; `path` a
training run directory, an inference export (`python -m train.export`) or imported authors'
weights (`python -m train.import_weights`); None = the model shipped with the project. A wrong
name, a missing or damaged path, or a run of another system raises one `ValueError` or
`FileNotFoundError` naming the problem. `apply` takes float32 NHWC images in [0, 1] at the
model's input size (SDPS-Net: ``(B, N, H, W, 3)`` of any size and an optional ``mask=(B, H,
W)``, and ``mirror=True`` to average the networks' answers on the photos and on their
left-right mirror images, `bioface_jax.models.sdps_mirror`: better, twice the cost; BioFaceNet
and the face VAE take ``mirror=True`` too, `bioface_jax.models.biofacenet_mirror`,
`bioface_jax.models.face_vae_mirror`) and is
deterministic (evaluation mode: running BatchNorm statistics, posterior mean). The face VAE
also takes ``refine_steps=N`` (and ``refine_lr``): its reconstruction from a latent fitted to
each photo by N Adam steps on the model's own objective, `bioface_jax.models.face_vae_refine`
(then ``objective_before`` and ``objective_after`` (B,) come with the outputs):

| name | outputs |
|---|---|
| biofacenet | ``fmel``, ``fblood``, ``shading``, ``specular`` (B, S, S); ``weights`` (B, 14), ``t`` (B,), ``b`` (B, 2), ``linear_srgb`` (B, S, S, 3) |
| face_vae | ``image`` (B, S, S, 3) raw reconstruction, ``mask`` (B, S, S), ``composite`` |
| sdps | ``light_directions`` (B, N, 3), ``light_intensities`` (B, N), ``normals`` (B, H, W, 3) |
| prnet | ``position_map`` (B, R, R, 3): x, y in crop pixels (x right, y down), z toward the viewer |

Frames: SDPS-Net's directions and normals are in the camera frame (x right, y up, z toward
the camera).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from bioface_jax.pretrained import store, systems
from bioface_jax.pretrained.store import save, shipped_path
from bioface_jax.pretrained.systems import NAMES


@dataclasses.dataclass
class Pretrained:
  """A trained model ready to run; build it with `load`.

  Attributes:
    name: the system.
    config: its model config (SDPS-Net: ``{"lcnet": SDPSConfig, "nenet": SDPSConfig}`` or
      ``{"fused": ...}``).
    input_size: side of the square images `apply` takes (SDPS-Net: its training size; it
      takes any size).
    step: the training step of the weights (0 for imported weights).
    path: where the model was read from.
    variables: the network variables (NumPy).
    run_config: the training run's config (None for imported weights).
    meta: everything else stored with the model (training command, source, metrics).
  """
  name: str
  config: Any
  input_size: int
  step: int
  path: pathlib.Path
  variables: dict[str, Any]
  run_config: dict[str, Any] | None
  meta: dict[str, Any]
  _apply: Any = dataclasses.field(default=None, repr=False)

  def apply(self, images, **kwargs) -> dict[str, np.ndarray]:
    """Runs the model on a batch (see the module docstring for inputs and outputs).

    Raises:
      ValueError: images of the wrong shape, or values outside [0, 1] or not finite.
    """
    if self._apply is None:
      system = systems.SYSTEMS[self.name]
      self._apply = system.make_apply(self.config, systems.to_jax_arrays(self.variables),
                                      _assets)
    return self._apply(images, size=self.input_size, **kwargs)


def _assets():
  """BioFaceNet's spectral tables and skin LUT from the assets directory."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  spectra = physics.load_spectra()
  return spectra, physics.skin_lut(spectra)


def load(name: str, path=None) -> Pretrained:
  """The trained model of system `name` at `path` (None: the shipped model).

  Raises:
    ValueError: unknown name, a run or export of another system, a damaged model.
    FileNotFoundError: nothing (usable) at `path`; no shipped model in this installation.
  """
  source = store.read(name, path)
  return Pretrained(source.name, source.model_config, source.input_size, source.step,
                    source.path, source.variables, source.run_config, source.meta)


__all__ = ["NAMES", "Pretrained", "load", "save", "shipped_path"]
