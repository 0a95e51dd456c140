"""Mirror averaging for the face VAE at test time: reconstruct the crop and its left-right
mirror image, mirror the second reconstruction back, and average the two.

A face crop and its mirror image are equally likely inputs, so the network's reconstruction of
the mirror image, mirrored back, is a second estimate of the same face whose errors are partly
independent of the first. The decoder outputs (``image_pre``) and, with the mask branch, the
masks are averaged pixel by pixel in the crop's frame; the authors' composite is then formed
from the averaged image and mask as usual (`face_vae.composite`).

Measured on the 29 real faces of `eval.real_judge`: with the model shipped on 2026-12-07
(thirteenth session) raw SSIM over the face ellipse 0.446 -> 0.472 (paired +0.026 +- 0.006,
better on 23 of 29), over the crop 0.309 -> 0.328; on 128 held-out synthetic scenes 0.626 ->
0.641 over the face; with the one before it 0.429 -> 0.444 (docs/face_vae.md, "Mirror
averaging"). The network and its weights are untouched: an inference option, off by default,
at twice the network's cost.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bioface_jax.models import face_vae
from bioface_jax.models.biofacenet_mirror import mirror_images

MAP_KEYS = ("image_pre", "mask")  # (B, H, W[, 3]) outputs mirrored with the crop


def predict(params: Any, batch_stats: Any, images: jax.Array, config: face_vae.FaceVAEConfig,
            *, mirror: bool = True) -> dict[str, jax.Array]:
  """`face_vae.predict` averaged over the crops and their mirror images (``mirror=True``);
  ``mirror=False`` is `face_vae.predict` itself.

  Evaluation mode uses the running BatchNorm statistics, so the two halves of the doubled
  batch do not see each other. Returns ``image_pre`` and (with the mask branch) ``mask``.
  """
  if not mirror:
    return face_vae.predict(params, batch_stats, images, config)
  both = face_vae.predict(params, batch_stats, jnp.concatenate([images, mirror_images(images)]),
                          config)
  n = images.shape[0]
  return {k: 0.5 * (both[k][:n] + mirror_images(both[k][n:])) for k in MAP_KEYS if k in both}


__all__ = ["MAP_KEYS", "predict"]
