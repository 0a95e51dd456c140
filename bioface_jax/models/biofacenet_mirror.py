"""Mirror averaging for BioFaceNet at test time: decompose the photo and its left-right mirror
image, average the two decompositions, and render the average.

A face's pigments, shading and specular highlights mirror with the photo, while the light
spectrum and the camera are the same for both. A trained network is only approximately
equivariant, so its answer on the mirror image, mirrored back, is a second estimate whose
errors are partly independent of the first. The maps (``fmel``, ``fblood``, ``shading``,
``specular``) of the two are averaged pixel by pixel in the photo's frame, the light
(``weights``, ``t``) and camera (``b``) are averaged, and the averaged parameters are rendered
by the same fixed renderer, so the output stays one physical decomposition whose
``linear_srgb`` is its own rendering (not an average of two images).

Measured with the model shipped in the morning of 2026-12-07 on the 29 real faces of
`eval.real_judge`: central sRGB RMSE (network alone) 0.065 -> 0.060, paired -0.0027 +- 0.0004,
better on 27 of 29 faces (docs/synthetic_world.md, "Mirror averaging"). The network and its
weights are untouched: an inference option, off by default, at twice the network's cost.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bioface_jax import physics
from bioface_jax.models import biofacenet

MAP_KEYS = ("fmel", "fblood", "shading", "specular")   # (B, H, W): mirrored with the photo
VECTOR_KEYS = ("weights", "t", "b")                     # light and camera: mirror-invariant


def mirror_images(images: jax.Array) -> jax.Array:
  """Left-right mirror images of (B, H, W, ...) arrays (the width axis is axis 2)."""
  return images[:, :, ::-1]


def average_decompositions(a: dict[str, jax.Array], b_mirrored: dict[str, jax.Array]
                           ) -> dict[str, jax.Array]:
  """The mean of a decomposition of the photos and one of their mirror images, in the photos'
  frame: maps of `b_mirrored` are mirrored back, light and camera are averaged as they are."""
  out = {k: 0.5 * (a[k] + mirror_images(b_mirrored[k])) for k in MAP_KEYS}
  out.update({k: 0.5 * (a[k] + b_mirrored[k]) for k in VECTOR_KEYS})
  return out


def predict(params: Any, batch_stats: Any, image_srgb: jax.Array,
            config: biofacenet.BioFaceNetConfig, spectra: Any, lut: jax.Array, *,
            mirror: bool = True) -> dict[str, Any]:
  """`biofacenet.predict` with the parameters averaged over the photos and their mirror images
  (``mirror=True``) and rendered; ``mirror=False`` is `biofacenet.predict` itself.

  Returns the keys of `MAP_KEYS` and `VECTOR_KEYS` and ``render`` (the `physics.render` dict of
  the averaged parameters).
  """
  if not mirror:
    return biofacenet.predict(params, batch_stats, image_srgb, config, spectra=spectra, lut=lut)
  both = biofacenet.predict(params, batch_stats,
                            jnp.concatenate([image_srgb, mirror_images(image_srgb)]), config)
  n = image_srgb.shape[0]
  out = average_decompositions({k: both[k][:n] for k in MAP_KEYS + VECTOR_KEYS},
                               {k: both[k][n:] for k in MAP_KEYS + VECTOR_KEYS})
  out["render"] = physics.render(spectra, lut, *(out[k] for k in MAP_KEYS + VECTOR_KEYS),
                                 xyz_mode=config.xyz_mode, daylight=config.daylight)
  return out


__all__ = ["MAP_KEYS", "VECTOR_KEYS", "average_decompositions", "mirror_images", "predict"]
