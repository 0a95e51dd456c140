"""BioFaceNet's loss and optimiser (biofacenet-spec.md sections 8-9), beside the network.

The loss of one batch (`compute_loss`): the network's forward pass (`biofacenet.apply`), the
spectral render, and the authors' four weighted terms per image (appearance, camera prior,
specular sparsity, shading with its least-squares scale), plus the optional supervised terms
on synthetic ground truth (`truth_losses`), the appearance term over the non-skin face pixels
(``face_appearance``) and the diagnostic oracle render (`oracle_render`).
Each term returns one value per image; the total is the batch mean of the weighted sum. The
optimiser (`optimizer`) is the authors' SGD with L2 decay on conv kernels and a BN-scale
learning-rate multiplier, or Adam with the same decay and multipliers, on the schedule of
`learning_rate_schedule`. `bioface_jax.models.biofacenet` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from bioface_jax import physics
from bioface_jax.models import biofacenet

# ----------------------------------------------------------------------------- loss terms
# Each returns one value per image (B,); the total is the batch mean of the weighted sum.


def appearance_loss(linear_input: jax.Array, rendered: jax.Array, mask: jax.Array) -> jax.Array:
  """(255^2/224^2) * sum_{x,c} [m (x_lin - y)]^2 per image; (B,H,W,3), (B,H,W,3), (B,H,W)."""
  diff = mask[..., None] * (linear_input - rendered)
  return biofacenet.APPEARANCE_SCALE * jnp.sum(diff**2, axis=(-3, -2, -1))


def camera_prior_loss(b: jax.Array) -> jax.Array:
  """||b||^2 per image; b (B, 2)."""
  return jnp.sum(b**2, axis=-1)


def specular_sparsity_loss(specular_rgb: jax.Array) -> jax.Array:
  """sum over pixels and channels of the 3-channel raw specular image (unmasked, >= 0)."""
  return jnp.sum(specular_rgb, axis=(-3, -2, -1))


def shading_scale(target: jax.Array, shading: jax.Array, mask: jax.Array) -> jax.Array:
  """Least-squares scale k = sum m S i_d / sum m i_d^2 per image (0 where the denominator is 0).

  Args:
    target: (B, H, W) pseudo ground-truth shading S.
    shading: (B, H, W) predicted diffuse shading i_d.
    mask: (B, H, W) binary mask.
  """
  num = jnp.sum(mask * target * shading, axis=(-2, -1))
  den = jnp.sum(mask * shading**2, axis=(-2, -1))
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def shading_loss(target: jax.Array, shading: jax.Array, mask: jax.Array,
                 stop_gradient_scale: bool = True) -> tuple[jax.Array, jax.Array]:
  """sum_x [m (S - k i_d)]^2 per image, with k from `shading_scale`; returns (loss, k)."""
  k = shading_scale(target, shading, mask)
  if stop_gradient_scale:
    k = jax.lax.stop_gradient(k)
  diff = mask * (target - k[..., None, None] * shading)
  return jnp.sum(diff**2, axis=(-2, -1)), k


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over the mask of (pred - target)^2 per image, (B, H, W) -> (B,); 0 for an empty mask."""
  return (jnp.sum(mask * (pred - target)**2, axis=(-2, -1))
          / jnp.maximum(jnp.sum(mask, axis=(-2, -1)), 1.0))


OFF_SKIN_MARGIN = 2  # default pixels next to the skin mask that the off-skin term leaves free


def off_skin_region(mask: jax.Array, margin: int = OFF_SKIN_MARGIN) -> jax.Array:
  """1 where no mask pixel lies within ``margin`` pixels (Chebyshev distance), (B, H, W).

  The mask of the synthetic faces holds only pixels covered by skin entirely; the ring of
  partly covered pixels around it (and around eyes, brows, beards, hair strands) looks like
  skin. Asking for no pigment there teaches the network that skin-coloured pixels near an edge
  have none, and pulls the maps down on the skin beside them (measured: haemoglobin RMSE 0.197
  vs 0.133 at step 1500 with no margin).
  """
  size = 2 * margin + 1
  near = jax.lax.reduce_window(mask, 0.0, jax.lax.max, (1, size, size), (1, 1, 1), "SAME")
  return 1.0 - near


def off_skin_pigment_loss(fmel: jax.Array, fblood: jax.Array, mask: jax.Array,
                          margin: int = OFF_SKIN_MARGIN) -> jax.Array:
  """Mean over `off_skin_region` of ((fmel + 1)^2 + (fblood + 1)^2) / 2, (B,).

  The maps' distance from "no pigment" (network coordinate -1) where there is no skin; 0 for an
  image with no pixel farther than the margin from its mask. See ``off_skin_weight`` in
  `biofacenet`'s module docstring.
  """
  off = off_skin_region(mask, margin)
  return 0.5 * (masked_mse(fmel, -1.0, off) + masked_mse(fblood, -1.0, off))


def spectrum_shape_loss(e: jax.Array, e_true: jax.Array) -> jax.Array:
  """Mean over bands of (e / mean(e) - e_true / mean(e_true))^2, (B, 33) -> (B,)."""
  norm = lambda x: x / jnp.maximum(jnp.mean(x, axis=-1, keepdims=True), 1e-12)  # noqa: E731
  return jnp.mean((norm(e) - norm(e_true))**2, axis=-1)


def truth_losses(outputs: Mapping[str, Any], truth: Mapping[str, jax.Array], mask: jax.Array,
                 true_illuminant: jax.Array) -> dict[str, jax.Array]:
  """The four supervised terms per image (see ``truth_weights`` in the module docstring)."""
  return {
      "truth_melanin": masked_mse(outputs["fmel"], truth["fmel"], mask),
      "truth_haemoglobin": masked_mse(outputs["fblood"], truth["fblood"], mask),
      "truth_camera": jnp.sum((outputs["b"] - truth["b"])**2, axis=-1),
      "truth_illuminant": spectrum_shape_loss(outputs["render"]["illuminant"], true_illuminant),
  }


def loss_from_outputs(outputs: Mapping[str, Any], mask: jax.Array, target_shading: jax.Array,
                      config: biofacenet.BioFaceNetConfig, truth: Mapping[str, jax.Array] | None = None,
                      true_illuminant: jax.Array | None = None,
                      face_region: jax.Array | None = None
                      ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss from model outputs that include ``render`` (spec section 8).

  ``truth`` (the batch's `biofacenet.TRUTH_KEYS`) and ``true_illuminant`` (B, 33) are needed when
  ``config.supervised``; ``face_region`` (B, H, W), 1 on the face's pixels, when
  ``config.face_region_weight`` > 0 (its pixels outside ``mask`` get the appearance term too).

  Returns:
    (total, terms): total = mean over images of sum_i w_i L_i; terms as in the module docstring.
  """
  render = outputs["render"]
  per_image = {
      "appearance": appearance_loss(outputs["linear_input"], render["linear_srgb"], mask),
      "camera_prior": camera_prior_loss(outputs["b"]),
      "specular_sparsity": specular_sparsity_loss(render["specular"]),
  }
  per_image["shading"], k = shading_loss(target_shading, outputs["shading"], mask,
                                         config.stop_gradient_shading_scale)
  if config.normalise_by_foreground:
    n_fg = jnp.maximum(jnp.sum(mask, axis=(-2, -1)), 1.0)
    for name in ("appearance", "specular_sparsity", "shading"):
      per_image[name] = per_image[name] / n_fg
  w_app, w_cam, w_spec, w_sh = config.loss_weights
  weighted = (w_app * per_image["appearance"] + w_cam * per_image["camera_prior"]
              + w_spec * per_image["specular_sparsity"] + w_sh * per_image["shading"])
  if config.off_skin_weight:
    per_image["off_skin_pigment"] = off_skin_pigment_loss(outputs["fmel"], outputs["fblood"],
                                                          mask, config.off_skin_margin)
    weighted = weighted + config.off_skin_weight * per_image["off_skin_pigment"]
  if config.face_region_weight:
    if face_region is None:
      raise ValueError("config.face_region_weight is on: pass the batch's face_region map")
    per_image["face_appearance"] = appearance_loss(
        outputs["linear_input"], render["linear_srgb"], face_region * (1.0 - mask))
    weighted = weighted + w_app * config.face_region_weight * per_image["face_appearance"]
  if config.supervised:
    if truth is None or true_illuminant is None:
      raise ValueError("config.truth_weights is on: the batch must hold the ground truth "
                       f"{biofacenet.TRUTH_KEYS}")
    sup = truth_losses(outputs, truth, mask, true_illuminant)
    for w, (name, value) in zip(config.truth_weights, sup.items()):
      weighted = weighted + w * value
      per_image[name] = value
  total = jnp.mean(weighted)
  terms = {name: jnp.mean(v) for name, v in per_image.items()}
  terms["shading_scale"] = jnp.mean(k)
  terms["total"] = total
  return total, terms


def _check_batch(batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Validates the batch dict's keys and shapes; returns (image, mask (B,H,W), shading)."""
  missing = [k for k in ("image", "mask", "shading") if k not in batch]
  if missing:
    raise KeyError(f"batch is missing keys {missing}; it has {sorted(batch)}")
  image, mask, target = batch["image"], batch["mask"], batch["shading"]
  if image.ndim != 4 or image.shape[-1] != 3:
    raise ValueError(f"batch['image'] must be (B, H, W, 3), got {image.shape}")
  if mask.ndim == 4 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.shape != image.shape[:3]:
    raise ValueError(f"batch['mask'] must be {image.shape[:3]} (or with a trailing 1), "
                     f"got {batch['mask'].shape}")
  if target.shape != image.shape[:3]:
    raise ValueError(f"batch['shading'] must be {image.shape[:3]}, got {target.shape}")
  return image, mask.astype(jnp.float32), target


def oracle_render(outputs: Mapping[str, Any], batch: Mapping[str, jax.Array], spectra: Any,
                  lut: jax.Array, config: biofacenet.BioFaceNetConfig) -> dict[str, Any]:
  """Renders the network's maps under the batch's true light and camera (rung c oracle).

  The head's predictions move to ``head_weights``, ``head_t``, ``head_b``; ``weights``, ``t``
  and ``b`` become the batch's truth, and ``render`` is `physics.render` with them.
  """
  missing = [k for k in biofacenet.ORACLE_KEYS if k not in batch]
  if missing:
    raise KeyError(f"config.oracle_light_camera is on but the batch lacks the true light and "
                   f"camera {missing} (only synthetic faces carry them); it has {sorted(batch)}")
  out = dict(outputs)
  for k in biofacenet.ORACLE_KEYS:
    out[f"head_{k}"] = out[k]
    out[k] = jnp.asarray(batch[k], jnp.float32)
  out["render"] = physics.render(spectra, lut, out["fmel"], out["fblood"], out["shading"],
                                 out["specular"], out["weights"], out["t"], out["b"],
                                 xyz_mode=config.xyz_mode, daylight=config.daylight)
  return out


def compute_loss(params: Any, batch_stats: Any, batch: Mapping[str, jax.Array], spectra: Any,
                 lut: jax.Array, config: biofacenet.BioFaceNetConfig, train: bool = True
                 ) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any, dict[str, Any]]]:
  """Forward pass, rendering and loss; differentiate with ``jax.value_and_grad(has_aux=True)``.

  Returns:
    (loss, (terms, new_batch_stats, outputs)).
  """
  image, mask, target = _check_batch(batch)
  if config.oracle_light_camera:
    outputs, new_batch_stats = biofacenet.apply(params, batch_stats, image, config, train=train)
    outputs = oracle_render(outputs, batch, spectra, lut, config)
  else:
    outputs, new_batch_stats = biofacenet.apply(params, batch_stats, image, config, train=train,
                                     spectra=spectra, lut=lut)
  truth = e_true = None
  if config.supervised:
    missing = [k for k in biofacenet.TRUTH_KEYS if k not in batch]
    if missing:
      raise KeyError(f"config.truth_weights is on but the batch lacks the ground truth "
                     f"{missing} (only synthetic faces carry it); it has {sorted(batch)}")
    truth = {k: batch[k] for k in biofacenet.TRUTH_KEYS}
    e_true = physics.illuminant(spectra, batch["weights"], batch["t"], daylight=config.daylight)
  face_region = None
  if config.face_region_weight:
    key = biofacenet.FACE_REGION_KEY
    if key not in batch:
      raise KeyError(f"config.face_region_weight is on but the batch has no {key!r} map (only "
                     f"the scene world's label maps give one); it has {sorted(batch)}")
    face_region = jnp.asarray(batch[key], jnp.float32)
    if face_region.shape != mask.shape:
      raise ValueError(f"batch[{key!r}] must be {mask.shape}, got {face_region.shape}")
  loss, terms = loss_from_outputs(outputs, mask, target, config, truth, e_true, face_region)
  return loss, (terms, new_batch_stats, outputs)


# ------------------------------------------------------------------------------ optimiser


def _leaf_name(path: tuple[Any, ...]) -> str:
  return str(getattr(path[-1], "key", path[-1]))


def _is_bn_scale(path: tuple[Any, ...]) -> bool:
  parent = str(getattr(path[-2], "key", path[-2])) if len(path) > 1 else ""
  return _leaf_name(path) == "scale" and parent.startswith("bn")


def decay_mask(params: Any) -> Any:
  """True for conv filters (``kernel`` leaves): the only parameters with weight decay."""
  return jax.tree_util.tree_map_with_path(lambda p, _: _leaf_name(p) == "kernel", params)


def scale_by_lr_multiplier(bn_scale_multiplier: float) -> optax.GradientTransformation:
  """Multiplies the updates of BatchNorm scales by ``bn_scale_multiplier`` (autonn: 2)."""

  def update_fn(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda p, u: u * bn_scale_multiplier if _is_bn_scale(p) else u, updates), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def learning_rate_schedule(config: biofacenet.BioFaceNetConfig) -> float | optax.Schedule:
  """The learning rate of ``config`` (a float for "constant", else an optax schedule).

  The schedule's argument is the optimiser's update count (0 for the first update). "step"
  and "cosine" keep ``learning_rate`` for the first n0 = round(lr_decay_start * N) updates,
  then drop to (step) or anneal to (cosine) ``learning_rate * lr_final_factor`` by update N =
  ``lr_schedule_steps``. Deviation from the authors' constant rate: with Adam at 3e-4 the
  pigment recovery keeps improving when the rate is lowered at the end
  (docs/biofacenet_recovery.md).
  """
  lr = config.learning_rate
  if config.lr_schedule == "constant":
    return lr
  total = int(config.lr_schedule_steps)
  start = int(round(config.lr_decay_start * total))
  if config.lr_schedule == "step":
    return optax.piecewise_constant_schedule(lr, {start: config.lr_final_factor})
  cosine = optax.cosine_decay_schedule(lr, max(total - start, 1), alpha=config.lr_final_factor)
  if start == 0:
    return cosine
  return optax.join_schedules([optax.constant_schedule(lr), cosine], [start])



def optimizer(config: biofacenet.BioFaceNetConfig) -> optax.GradientTransformation:
  """The authors' SGD (spec section 9.1), or Adam with the same L2 decay and multipliers.

  SGD: v <- 0.9 v - (g + wd * w) on conv kernels, w <- w + lr_p v, lr_p = lr x multiplier,
  with g the gradient of the batch-mean loss. The learning rate follows
  `learning_rate_schedule` (authors: constant).
  """
  lr = learning_rate_schedule(config)
  steps = [optax.add_decayed_weights(config.weight_decay, mask=decay_mask)]
  if config.optimizer == "sgd":
    steps.append(optax.sgd(lr, momentum=config.momentum))
  else:
    steps.append(optax.adam(lr))
  steps.append(scale_by_lr_multiplier(config.bn_scale_lr_multiplier))
  return optax.chain(*steps)
