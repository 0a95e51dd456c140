"""The face VAE as published, in Keras 2 (tf-keras), for the weight-import tests.

A transcription of the authors' code (tldrafael/FaceReconstructionWithVAEAndFaceMasks:
``training.py`` ``ConvBlock``, ``ConvBlockTranspose``, ``Encoder``, ``Decoder``,
``DecoderMask``, ``VAE2train``, ``VAENoMask``; ``testing.py`` ``VAE2predict``,
``VAENoMask2predict``; ``convert_model_toprediction.py``). Layers are created in the same
order with Keras' default names after ``clear_session()``, so the ``.h5`` files written by
``save_weights`` have the authors' layer and weight names. The training-only parts that carry no
weights (the losses, the sampling noise) are kept where they shape the model. Keras 2 is needed
for the authors' ``.h5`` layout (Keras 3 writes another one), hence ``tf_keras``; imported only
when it is installed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

SIZE, LATENT = 144, 512
IMAGE_DECODER = ((256, "same"), (256, "same"), (256, "valid"), (128, "same"), (64, "same"),
                 (32, "same"), (32, "same"))
MASK_DECODER = tuple((32, p) for _, p in IMAGE_DECODER)


def conv_block(x, n_filters):
  x = keras.layers.Conv2D(n_filters, (3, 3), strides=(1, 1), padding="same")(x)
  x = keras.layers.BatchNormalization()(x)
  return keras.layers.Activation("elu")(x)


def conv_block_transpose(x, n_filters, padding):
  x = keras.layers.Conv2DTranspose(n_filters, (3, 3), strides=(2, 2), padding=padding)(x)
  x = keras.layers.BatchNormalization()(x)
  return keras.layers.Activation("elu")(x)


def encoder(x):
  for filters, repeats in ((32, 2), (64, 2), (128, 2), (256, 2), (256, 1), (256, 1), (512, 1)):
    for _ in range(repeats):
      x = conv_block(x, filters)
    x = keras.layers.MaxPooling2D((2, 2), padding="valid")(x)
  return keras.layers.Flatten(name="out_encoder")(x)


def decoder(z, out_name, out_nc, steps):
  x = keras.layers.Reshape((1, 1, LATENT))(z)
  for filters, padding in steps:
    x = conv_block_transpose(x, filters, padding)
    x = conv_block(x, filters)
  return keras.layers.Conv2D(out_nc, (3, 3), strides=(1, 1), activation="sigmoid",
                             padding="same", name=out_name)(x)


def _sampling(args):
  z_mean, z_log_var = args
  return z_mean + tf.random.normal(shape=tf.shape(z_mean)) * z_log_var  # the authors' quirk


def _latent(in_image, predict: bool):
  x = keras.layers.Dense(LATENT)(encoder(in_image))
  x = keras.layers.Activation("elu", name="out_latent_1")(x)
  z_mean = keras.layers.Dense(LATENT, name="z_mean")(x)
  z_log_var = keras.layers.Dense(LATENT, name="z_logvar")(x)
  fn = (lambda a: a[0]) if predict else _sampling
  return keras.layers.Lambda(fn, output_shape=(LATENT,), name="z_sampling")([z_mean, z_log_var])


def vae(mask_branch: bool, predict: bool) -> keras.Model:
  """VAE2train / VAE2predict (mask) or VAENoMask / VAENoMask2predict, after clear_session."""
  keras.backend.clear_session()
  in_image = keras.layers.Input(shape=(SIZE, SIZE, 3), name="in_image")
  in_mask = None
  if mask_branch and not predict:
    in_mask = keras.layers.Input(shape=(SIZE, SIZE, 1), name="in_mask")
  z = _latent(in_image, predict)
  if not mask_branch:
    return keras.Model(in_image, decoder(z, "out_image", 3, IMAGE_DECODER))
  out_image_pre = decoder(z, "out_image_pre", 3, IMAGE_DECODER)
  out_mask = decoder(z, "out_mask", 1, MASK_DECODER)
  mask = out_mask if predict else in_mask  # prediction composites with the predicted mask
  x = keras.layers.Multiply()([out_image_pre, mask])
  x_bg = keras.layers.Multiply()([in_image, 1.0 - mask])
  out_image = keras.layers.Add(name="out_image")([x, x_bg])
  return keras.Model(in_image if predict else [in_image, in_mask],
                     [out_image, out_mask, out_image_pre])


def randomise(model: keras.Model, seed: int) -> None:
  """Glorot-scale kernels, non-zero biases, random BatchNorm parameters and statistics."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    weights = layer.get_weights()
    if not weights:
      continue
    if isinstance(layer, keras.layers.BatchNormalization):
      c = weights[0].shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                         rng.uniform(0.5, 1.5, c)])
    else:  # Conv2D (3, 3, in, out), Conv2DTranspose (3, 3, out, in), Dense (in, out)
      kernel, bias = weights
      transposed = isinstance(layer, keras.layers.Conv2DTranspose)
      fan_in = int(np.prod(kernel.shape[:-2])) * kernel.shape[-1 if transposed else -2] \
          if kernel.ndim == 4 else kernel.shape[0]
      layer.set_weights([rng.normal(0, np.sqrt(1.0 / fan_in), kernel.shape),
                         rng.normal(0, 0.1, bias.shape)])


def calibrate(model: keras.Model, inputs, seed: int) -> None:
  """BatchNorm moving statistics from one training-mode pass on `inputs` (momentum 0), then
  perturbed (mean + N(0, 0.1 sd), variance x U(0.8, 1.25)): random, but at the scale of the
  activations, so the output depends on the input as a trained network's does."""
  layers = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
  for layer in layers:
    layer.momentum = 0.0
  model(inputs, training=True)
  rng = np.random.default_rng(seed)
  for layer in layers:
    gamma, beta, mean, var = layer.get_weights()
    layer.set_weights([gamma, beta, mean + rng.normal(0, 0.1, mean.shape) * np.sqrt(var),
                       var * rng.uniform(0.8, 1.25, var.shape)])
    layer.momentum = 0.99


def convert_to_predict(trained: keras.Model, mask_branch: bool) -> keras.Model:
  """convert_model_toprediction.py: the prediction model with the trained weights by name."""
  weights = {layer.name: layer.get_weights() for layer in trained.layers}
  predict = vae(mask_branch, predict=True)
  for layer in predict.layers:
    if weights.get(layer.name):
      layer.set_weights(weights[layer.name])
  return predict


def predict64(model: keras.Model, mask_branch: bool, images: np.ndarray):
  """The prediction model's outputs computed in float64 (same weights)."""
  weights = [w.astype(np.float64) for w in model.get_weights()]
  keras.backend.set_floatx("float64")
  try:
    model64 = vae(mask_branch, predict=True)
    model64.set_weights(weights)
    return model64(images.astype(np.float64), training=False)
  finally:
    keras.backend.set_floatx("float32")
