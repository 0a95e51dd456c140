"""The authors' face VAE rebuilt in TensorFlow/Keras from the spec (for the benchmark and a
weight-transfer check of our Flax port). Imported only when TensorFlow is installed.

Layers are named after the Flax parameter paths (joined by ".") so that `to_flax` can copy the
Keras weights into our pytrees: Conv2D kernels (3, 3, in, out) and Conv2DTranspose kernels
(3, 3, out, in) load unchanged (``transpose_kernel=True``); BatchNorm gamma / beta / moving
mean / moving variance become scale / bias / mean / var.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bioface_jax.models import face_vae as fv

keras = tf.keras


def _conv_block(x, c, name):
  x = keras.layers.Conv2D(c, 3, padding="same", name=f"{name}.Conv_0")(x)
  x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}.BatchNorm_0")(x)
  return keras.layers.Activation("elu")(x)


def _up_block(x, c, padding, name):
  x = keras.layers.Conv2DTranspose(c, 3, strides=2, padding=padding.lower(),
                                   name=f"{name}.ConvTranspose_0")(x)
  x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}.BatchNorm_0")(x)
  return keras.layers.Activation("elu")(x)


def _decoder(z, config, channels, out_channels, name):
  x = keras.layers.Reshape((1, 1, z.shape[-1]))(z)
  for i, (c, p) in enumerate(zip(channels, fv.decoder_paddings(config.input_size))):
    c = fv._width(c, config.width_multiplier)  # pylint: disable=protected-access
    x = _up_block(x, c, p, f"{name}.UpBlock_{i}")
    x = _conv_block(x, c, f"{name}.ConvBlock_{i}")
  return keras.layers.Conv2D(out_channels, 3, padding="same", activation="sigmoid",
                             name=f"{name}.head")(x)


def build(config: fv.FaceVAEConfig) -> keras.Model:
  """Inputs: image (s, s, 3) and noise eps (latent); outputs image_pre, mask, mean, logvar."""
  s = config.input_size
  x_in = keras.Input((s, s, 3))
  eps = keras.Input((config.latent_dim,))
  x, k = x_in, 0
  n = len(fv.encoder_sides(s)) - 1
  for features, repeats in fv.ENCODER_STAGES[len(fv.ENCODER_STAGES) - n:]:
    for _ in range(repeats):
      x = _conv_block(x, fv._width(features, config.width_multiplier),  # pylint: disable=protected-access
                      f"encoder.ConvBlock_{k}")
      k += 1
    x = keras.layers.MaxPooling2D(2, 2, padding="valid")(x)
  x = keras.layers.Flatten()(x)
  h = keras.layers.Dense(config.latent_dim, activation="elu", name="encoder.hidden")(x)
  mean = keras.layers.Dense(config.latent_dim, name="encoder.z_mean")(h)
  logvar = keras.layers.Dense(config.latent_dim, name="encoder.z_logvar")(h)
  z = mean + eps * keras.ops.exp(0.5 * logvar)
  outputs = {"image_pre": _decoder(z, config, fv.IMAGE_DECODER, 3, "image_decoder"),
             "mean": mean, "logvar": logvar}
  if config.mask_branch:
    outputs["mask"] = _decoder(z, config, fv.MASK_DECODER, 1, "mask_decoder")
  return keras.Model([x_in, eps], outputs)


def randomise_batchnorm(model: keras.Model, seed: int = 0) -> None:
  """Non-trivial gamma / beta / moving statistics, so that the transfer check tests them."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      c = layer.gamma.shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                         rng.normal(0, 0.1, c), rng.uniform(0.5, 2.0, c)])


def to_flax(model: keras.Model, params, batch_stats):
  """Copies the Keras weights into (params, batch_stats) pytrees of the same structure."""
  import flax  # pylint: disable=g-import-not-at-top
  flat_p = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  flat_s = flax.traverse_util.flatten_dict(flax.core.unfreeze(batch_stats))
  for path in list(flat_p) + list(flat_s):
    name = ".".join(path[:-1])
    layer = model.get_layer(name)
    w = dict(zip([v.name for v in layer.weights], layer.get_weights()))
    key = {"kernel": "kernel", "bias": "bias", "scale": "gamma", "mean": "moving_mean",
           "var": "moving_variance"}[path[-1]]
    if path[-1] == "bias" and "beta" in w:
      key = "beta"
    target = flat_p if path in flat_p else flat_s
    value = w[key]
    if value.shape != target[path].shape:
      raise ValueError(f"{name}.{key}: Keras shape {value.shape} vs Flax {target[path].shape}")
    target[path] = value
  return (flax.traverse_util.unflatten_dict(flat_p), flax.traverse_util.unflatten_dict(flat_s))


def make_train_step(model: keras.Model, config: fv.FaceVAEConfig, jit_compile: bool):
  """A tf.function training step with the authors' losses (SSIM + l2 + mask) and optimiser."""
  opt = keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm, epsilon=1e-7)

  @tf.function(jit_compile=jit_compile)
  def step(x, m, eps):
    with tf.GradientTape() as tape:
      out = model([x, eps], training=True)
      mm = m[..., None]
      comp = out["image_pre"] * mm + x * (1 - mm)
      kl = -1e-3 * 0.5 * tf.reduce_mean(1 + out["logvar"] - out["mean"] ** 2
                                        - tf.exp(out["logvar"]))
      ssim = tf.reduce_mean(2.0 - tf.image.ssim(x, comp, max_val=1.0, filter_size=9))
      l2 = 100.0 * tf.reduce_mean((x - comp) ** 2)
      p = tf.clip_by_value(out["mask"][..., 0], 1e-7, 1 - 1e-7)
      bce = -tf.reduce_mean(m * tf.math.log(p + 1e-7) + (1 - m) * tf.math.log(1 - p + 1e-7))
      dice = 1 - (2 * tf.reduce_sum(m * p) + 1) / (tf.reduce_sum(m**2 + p**2) + 1 + 1e-8)
      loss = kl + ssim + l2 + bce + dice
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return step
