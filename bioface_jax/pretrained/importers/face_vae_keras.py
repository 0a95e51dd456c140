"""The face VAE's Keras ``.h5`` weights -> our FaceVAE (source ``face_vae_keras``).

One file written by Keras 2's ``model.save_weights(...h5)`` in the authors' code
(tldrafael/FaceReconstructionWithVAEAndFaceMasks): the training model's checkpoint
(``training.py``, ``VAE2train`` / ``VAENoMask``, ``weights.<epoch>-....h5``) or the prediction
model's converted copy (``convert_model_toprediction.py``: ``*.predict.h5``). Both models create
the same weighted layers in the same order after ``clear_session()``, so their Keras
auto-generated layer names agree and are matched by name. Read with h5py (no TensorFlow):
the root attribute ``layer_names`` lists the layers, each layer group's ``weight_names`` its
arrays (``conv2d_3/kernel:0``). Also accepted: a whole-model ``.h5`` (``model.save``; the
weights under ``model_weights``).

The network is the authors' fixed one (144 x 144 input, latent 512, width 1: spec section 2)
with or without the mask decoder, recognised by its ``out_mask`` layer; as in the authors'
``VAE2train`` the mask model's image head is ``out_image_pre``, ``VAENoMask``'s ``out_image``.
The imported config keeps the authors' sampling (``sampling="authors"``: z = mean + eps * s
when training; evaluation uses z = mean either way).

Name map (Keras layer -> our module; Keras numbers layers of a type in creation order, ``_0``
omitted: ``conv2d``, ``conv2d_1``, ...). With E = 11 encoder ConvBlocks and D = 7 decoder steps:

* ``conv2d_{k}``, ``batch_normalization_{k}`` (k < E) -> ``encoder/ConvBlock_{k}/{Conv_0,
  BatchNorm_0}``; ``dense``, ``z_mean``, ``z_logvar`` -> ``encoder/{hidden, z_mean, z_logvar}``;
* image decoder step i: ``conv2d_transpose_{i}`` -> ``image_decoder/UpBlock_{i}/ConvTranspose_0``,
  ``batch_normalization_{E+2i}`` -> ``.../UpBlock_{i}/BatchNorm_0``, ``conv2d_{E+i}`` and
  ``batch_normalization_{E+2i+1}`` -> ``.../ConvBlock_{i}/{Conv_0, BatchNorm_0}``; the head
  ``out_image_pre`` (mask model) or ``out_image`` (no-mask model) -> ``image_decoder/head``;
* mask decoder step i: ``conv2d_transpose_{D+i}``, ``batch_normalization_{E+2D+2i}`` and
  ``_{E+2D+2i+1}``, ``conv2d_{E+D+i}`` -> the same in ``mask_decoder``; ``out_mask`` ->
  ``mask_decoder/head``.

Weights: ``kernel``/``bias`` -> kernel/bias (Conv2D HWIO, Dense (in, out) and Conv2DTranspose
``(3, 3, out, in)`` are our layouts: ``nn.ConvTranspose(transpose_kernel=True)``);
BatchNormalization ``gamma``/``beta`` -> params scale/bias, ``moving_mean``/``moving_variance``
-> batch_stats mean/var, used as stored with Keras' epsilon 1e-3 (ours too).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

from bioface_jax.pretrained.importers import matching

SYSTEM = "face_vae"
FILES = (".h5",)
INPUT_SIZE = 144
LATENT = 512
_LEAVES = {"kernel": "kernel", "bias": "bias", "scale": "gamma", "mean": "moving_mean",
           "var": "moving_variance"}


def keras_name(base: str, index: int) -> str:
  """Keras' auto-generated name of the `index`-th layer of a type (``conv2d``, ``conv2d_1``)."""
  return base if index == 0 else f"{base}_{index}"


def model_config(mask_branch: bool):
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  return face_vae.FaceVAEConfig(input_size=INPUT_SIZE, latent_dim=LATENT, width_multiplier=1.0,
                                mask_branch=mask_branch, sampling="authors")


def expected_shapes(config) -> dict[tuple[str, ...], tuple[int, ...]]:
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  params, stats = jax.eval_shape(lambda: face_vae.init(
      jax.random.key(0), (1, config.input_size, config.input_size, 3), config))
  return matching.shapes({"params": params, "batch_stats": stats})


def layer_map(config) -> dict[tuple[str, ...], str]:
  """Our module path (``("encoder", "ConvBlock_0", "Conv_0")``) -> the Keras layer name."""
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  n_stages = len(face_vae.encoder_sides(config.input_size)) - 1
  stages = face_vae.ENCODER_STAGES[len(face_vae.ENCODER_STAGES) - n_stages:]
  n_enc = sum(repeats for _, repeats in stages)
  out = {("encoder", "hidden"): "dense", ("encoder", "z_mean"): "z_mean",
         ("encoder", "z_logvar"): "z_logvar"}
  for k in range(n_enc):
    out[("encoder", f"ConvBlock_{k}", "Conv_0")] = keras_name("conv2d", k)
    out[("encoder", f"ConvBlock_{k}", "BatchNorm_0")] = keras_name("batch_normalization", k)
  decoders = [("image_decoder", "out_image_pre" if config.mask_branch else "out_image")]
  if config.mask_branch:
    decoders.append(("mask_decoder", "out_mask"))
  for d, (decoder, head) in enumerate(decoders):
    for i in range(n_stages):
      up, conv = f"UpBlock_{i}", f"ConvBlock_{i}"
      bn = n_enc + 2 * (d * n_stages + i)
      out[(decoder, up, "ConvTranspose_0")] = keras_name("conv2d_transpose", d * n_stages + i)
      out[(decoder, up, "BatchNorm_0")] = keras_name("batch_normalization", bn)
      out[(decoder, conv, "Conv_0")] = keras_name("conv2d", n_enc + d * n_stages + i)
      out[(decoder, conv, "BatchNorm_0")] = keras_name("batch_normalization", bn + 1)
    out[(decoder, "head")] = head
  return out


def rules(config) -> list[matching.Rule]:
  """The name map: ``layer/weight`` (Keras) -> our variable path, for `config`."""
  layers = layer_map(config)
  out = []
  for path in sorted(expected_shapes(config)):
    collection, *module, leaf = path
    weight = "beta" if (leaf == "bias" and module[-1].startswith("BatchNorm")) else _LEAVES[leaf]
    out.append(matching.Rule(f"{layers[tuple(module)]}/{weight}", path))
  return out


def convert(tensors: dict[str, np.ndarray], where: str) -> dict[str, Any]:
  """``{"variables", "model_config", "input_size"}`` from ``layer/weight`` -> array.

  Raises:
    WeightsError: missing, unexpected or wrongly shaped tensors (named).
  """
  layers = {name.split("/", 1)[0] for name in tensors}
  config = model_config(mask_branch="out_mask" in layers)
  variables = matching.convert(tensors, rules(config), expected_shapes(config), where)
  return {"variables": variables, "model_config": config, "input_size": INPUT_SIZE}


def _text(value) -> str:
  return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``layer/weight`` (``conv2d_3/kernel``) -> array of a Keras 2 weights ``.h5``.

  Raises:
    FileNotFoundError: no such file.
    WeightsError: not an HDF5 file, or not Keras weights (no ``layer_names``); a layer listed
      twice or one weight name twice.
  """
  import h5py  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found")
  try:
    with h5py.File(path, "r") as f:
      group = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
      if "layer_names" not in group.attrs:
        raise matching.WeightsError(
            f"{path}: not a Keras 2 save_weights .h5 (no 'layer_names' attribute; Keras 3's "
            "'.weights.h5' layout is not the authors' format)")
      tensors = {}
      for layer in (_text(n) for n in group.attrs["layer_names"]):
        if layer not in group:
          raise matching.WeightsError(f"{path}: layer {layer} is listed but has no group")
        for weight in (_text(n) for n in group[layer].attrs.get("weight_names", [])):
          key = f"{layer}/{weight.rsplit('/', 1)[-1].split(':')[0]}"
          if key in tensors:
            raise matching.WeightsError(f"{path}: weight {key} appears twice")
          tensors[key] = np.asarray(group[layer][weight])
      return tensors
  except matching.WeightsError:
    raise
  except (OSError, KeyError, ValueError) as error:
    message = str(error).strip().splitlines()[0][:300]
    raise matching.WeightsError(f"{path}: not a readable HDF5 weights file (truncated or "
                                f"damaged?): {type(error).__name__}: {message}") from error


def load(paths) -> dict[str, Any]:
  """Reads and converts the one ``.h5`` in `paths`."""
  if len(paths) != 1:
    raise ValueError(f"face_vae_keras takes one .h5 file, got {len(paths)}")
  return convert(read(paths[0]), str(paths[0]))
