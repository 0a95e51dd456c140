"""The face VAE's losses and the authors' Keras optimiser (face-vae-spec.md sections 3-5).

Loss (summed ``add_loss`` terms of the published code):

* KL, weight 1e-3 inside, a mean over batch and latent dimensions (`kl_loss`);
* SSIM: ``mean_b(2 - tf.image.ssim(x, out, max_val=1, filter_size=9))``;
* l1: 4 x global mean |x - out|; l2: 100 x global mean (x - out)^2 (Keras MAE / MSE);
* with the mask branch: BCE of the predicted mask (p clipped to [1e-7, 1 - 1e-7], then
  -[y ln(p + 1e-7) + (1 - y) ln(1 - p + 1e-7)], global mean) + Dice over the whole batch
  ``1 - (2 sum|y p| + 1) / (sum(y^2 + p^2) + 1 + 1e-8)``.

With the mask branch, ``out = pre * m + x * (1 - m)`` with the ground-truth soft mask m, so the
reconstruction losses see only face pixels (the background adds zero error but still counts in
the means: the authors' dilution is kept); without it, ``out = pre`` over the whole image.

Optimiser (`optimizer`): per-tensor clipping g <- g * c / max(||g||, c) (Keras ``clipnorm``,
not a global norm) followed by Keras' Adam, theta <- theta - lr sqrt(1 - b2^t) / (1 - b1^t)
m / (sqrt(v) + eps) with eps = 1e-7 (optax's Adam puts eps elsewhere, which matters here:
clipped gradient elements are ~1e-6).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bioface_jax import image_metrics
from bioface_jax.models import face_vae

BCE_EPS = 1e-7
DICE_SMOOTH = 1.0


def kl_loss(mean: jax.Array, logvar: jax.Array, sampling: str, weight: float = 1e-3
            ) -> jax.Array:
  """The weighted KL term; "authors" reads the second head as log sigma (spec section 3)."""
  if sampling == "authors":
    inner = 1.0 + 2.0 * logvar - jnp.square(mean) - jnp.exp(2.0 * logvar)
  else:
    inner = 1.0 + logvar - jnp.square(mean) - jnp.exp(logvar)
  return -weight * 0.5 * jnp.mean(inner)


def ssim_loss(x: jax.Array, out: jax.Array, filter_size: int = 9) -> jax.Array:
  """``mean_b(2 - tf.image.ssim(x, out, max_val=1, filter_size))``."""
  return jnp.mean(2.0 - image_metrics.ssim(x, out, max_val=1.0, filter_size=filter_size))


def mask_bce(y: jax.Array, p: jax.Array) -> jax.Array:
  """Keras binary cross-entropy on probabilities (clipped), global mean."""
  p = jnp.clip(p, BCE_EPS, 1.0 - BCE_EPS)
  return -jnp.mean(y * jnp.log(p + BCE_EPS) + (1.0 - y) * jnp.log(1.0 - p + BCE_EPS))


def mask_dice(y: jax.Array, p: jax.Array) -> jax.Array:
  """Soft Dice loss with sums over the whole batch (not per image)."""
  num = 2.0 * jnp.sum(jnp.abs(y * p)) + DICE_SMOOTH
  den = jnp.sum(jnp.square(y) + jnp.square(p)) + DICE_SMOOTH + 1e-8
  return 1.0 - num / den


def compute_loss(params: Any, batch_stats: Any, batch: dict[str, jax.Array],
                 config: face_vae.FaceVAEConfig, *, train: bool, rng: jax.Array | None = None
                 ) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any, dict[str, jax.Array]]]:
  """Total loss and (terms, new batch_stats, outputs) for a batch {"image", "mask"}.

  ``batch["image"]`` is (B, s, s, 3) in [0, 1]; ``batch["mask"]`` (B, s, s) in [0, 1] (soft),
  needed by mask-branch models (it composites the training output and supervises the mask).
  Evaluation (``train=False``) uses running statistics and z = mean.
  """
  x = batch["image"]
  outputs, new_stats = face_vae.apply(params, batch_stats, x, config, train=train, rng=rng)
  terms = {"kl": kl_loss(outputs["mean"], outputs["logvar"], config.sampling,
                         config.kl_weight)}
  pre = outputs["image_pre"]
  if config.mask_branch:
    y = batch["mask"]
    out = face_vae.composite(pre, x, y)
    terms["bce"] = config.bce_weight * mask_bce(y, outputs["mask"])
    terms["dice"] = config.dice_weight * mask_dice(y, outputs["mask"])
  else:
    out = pre
  if "ssim" in config.losses:
    terms["ssim"] = config.ssim_weight * ssim_loss(x, out, config.ssim_filter_size)
  if "l1" in config.losses:
    terms["l1"] = config.l1_weight * jnp.mean(jnp.abs(x - out))
  if "l2" in config.losses:
    terms["l2"] = config.l2_weight * jnp.mean(jnp.square(x - out))
  total = sum(terms.values())
  outputs = dict(outputs, composite=out)
  return total, (dict(terms, total=total), new_stats, outputs)


def clip_by_norm_per_tensor(max_norm: float) -> optax.GradientTransformation:
  """Keras ``clipnorm``: each tensor g <- g * c / max(||g||_2, c) on its own."""

  def update_fn(updates, state, params=None):
    del params

    def clip(g):
      norm = jnp.sqrt(jnp.sum(jnp.square(g)))
      return g * (max_norm / jnp.maximum(norm, max_norm))

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class KerasAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def keras_adam(learning_rate: float | optax.Schedule, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-7) -> optax.GradientTransformation:
  """Keras (TF 2.5) Adam: theta -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).

  ``learning_rate`` is a float (Keras' constant rate) or an optax schedule of the update count
  (0 for the first update).
  """

  def init_fn(params):
    zeros = lambda p: jnp.zeros_like(p)  # noqa: E731
    return KerasAdamState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params),
                          jax.tree.map(zeros, params))

  def update_fn(updates, state, params=None):
    del params
    t = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
    tf = t.astype(jnp.float32)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    step = lr * jnp.sqrt(1 - b2**tf) / (1 - b1**tf)
    new = jax.tree.map(lambda m, v: -(step * m / (jnp.sqrt(v) + eps)).astype(m.dtype), mu, nu)
    return new, KerasAdamState(t, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def learning_rate_schedule(config: face_vae.FaceVAEConfig) -> float | optax.Schedule:
  """The authors' constant rate, or one step decay: ``learning_rate`` for the first
  ``lr_decay_at`` updates, then ``learning_rate * lr_decay_factor`` (``lr_decay_at = 0``: the
  authors' constant rate). A CPU-budget deviation: the last updates at a lower rate average out
  the weight noise of a constant rate (docs/face_vae.md, "Longer training and a step decay")."""
  if not config.lr_decay_at:
    return config.learning_rate
  return optax.piecewise_constant_schedule(config.learning_rate,
                                           {int(config.lr_decay_at): config.lr_decay_factor})


def optimizer(config: face_vae.FaceVAEConfig) -> optax.GradientTransformation:
  """Per-tensor clip (``clipnorm``) then Keras Adam, as ``Adam(1e-4, clipnorm=1e-3)``, at the
  rate of `learning_rate_schedule`."""
  parts = []
  if config.clipnorm:
    parts.append(clip_by_norm_per_tensor(config.clipnorm))
  parts.append(keras_adam(learning_rate_schedule(config), eps=config.adam_eps))
  return optax.chain(*parts)


__all__ = ["clip_by_norm_per_tensor", "compute_loss", "keras_adam", "kl_loss",
           "learning_rate_schedule", "mask_bce", "mask_dice", "optimizer", "ssim_loss"]
