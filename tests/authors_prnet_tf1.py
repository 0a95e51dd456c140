"""PRNet's ResFCN256 as published, in TensorFlow 1 graph mode, for the weight-import tests.

A transcription of ``predictor.py`` of the PRNet code (YadiraF/PRNet): ``resfcn256`` and its
``resBlock`` built with ``tf.contrib.layers`` (``conv2d`` / ``conv2d_transpose`` with
``normalizer_fn=batch_norm``, ``biases_initializer=None``, ``padding='SAME'``; ``batch_norm``
with ``scale=True``, epsilon 1e-3, inference mode). ``tf.contrib`` (and tf-slim's layers on
current TensorFlow) are gone, so the layers are written with the same ops (``tf.nn.conv2d``,
``tf.nn.conv2d_transpose`` with output size in x stride, fused batch norm on the moving
statistics) and create their variables under the scopes ``tf.contrib.layers`` generates:
``Conv``, ``Conv_1``, ... and ``Conv2d_transpose``, ``Conv2d_transpose_1``, ... (default names
made unique per enclosing scope), ``resBlock``, ``resBlock_1``, ..., ``weights`` and
``BatchNorm/{beta, gamma, moving_mean, moving_variance}``. The checkpoint is written by
``tf.train.Saver`` after Adam has created its slots, so it holds the optimiser state as the
released one does. Imported only when TensorFlow is installed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
MAX_POS = 256 * 1.1  # PosPrediction.MaxPos


def _batch_norm(x, mode: str):
  with tf1.variable_scope(None, default_name="BatchNorm"):
    c = x.shape[-1]
    beta = tf1.get_variable("beta", [c], x.dtype, tf1.zeros_initializer())
    gamma = tf1.get_variable("gamma", [c], x.dtype, tf1.ones_initializer())
    mean = tf1.get_variable("moving_mean", [c], x.dtype, tf1.zeros_initializer(), trainable=False)
    var = tf1.get_variable("moving_variance", [c], x.dtype, tf1.ones_initializer(),
                           trainable=False)
    if mode == "fused":  # what tf.contrib.layers.batch_norm runs on 4-D inputs (float32)
      y, _, _ = tf1.nn.fused_batch_norm(x, gamma, beta, mean, var, epsilon=1e-3,
                                        is_training=False)
      return y
    if mode == "calibrate":  # batch statistics, recorded for `calibrate`
      y, batch_mean, batch_var = tf1.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-3,
                                                         is_training=True)
      tf1.add_to_collection("calibration", (mean.op.name, var.op.name, batch_mean, batch_var))
      return y
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-3)  # float64 reference


def conv2d(x, num_outputs, kernel_size, stride=1, activation_fn=tf.nn.relu, normalize=True,
           scope=None, mode="fused"):
  with tf1.variable_scope(scope, default_name="Conv"):
    w = tf1.get_variable("weights", [kernel_size, kernel_size, x.shape[-1], num_outputs],
                         x.dtype)
    y = tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding="SAME")
    if normalize:
      y = _batch_norm(y, mode)
    return activation_fn(y) if activation_fn is not None else y


def conv2d_transpose(x, num_outputs, kernel_size, stride=1, activation_fn=tf.nn.relu, mode="fused"):
  with tf1.variable_scope(None, default_name="Conv2d_transpose"):
    w = tf1.get_variable("weights", [kernel_size, kernel_size, num_outputs, x.shape[-1]],
                         x.dtype)
    b, h, wd = tf.shape(x)[0], x.shape[1], x.shape[2]
    y = tf.nn.conv2d_transpose(x, w, tf.stack([b, h * stride, wd * stride, num_outputs]),
                               strides=[1, stride, stride, 1], padding="SAME")
    y.set_shape([None, h * stride, wd * stride, num_outputs])
    return activation_fn(_batch_norm(y, mode))


def res_block(x, num_outputs, kernel_size=4, stride=1, mode="fused"):
  with tf1.variable_scope(None, default_name="resBlock"):
    shortcut = x
    if stride != 1 or x.shape[3] != num_outputs:
      shortcut = conv2d(shortcut, num_outputs, 1, stride, None, False, "shortcut", mode)
    x = conv2d(x, num_outputs // 2, 1, 1, mode=mode)
    x = conv2d(x, num_outputs // 2, kernel_size, stride, mode=mode)
    x = conv2d(x, num_outputs, 1, 1, None, False, mode=mode)
    x += shortcut
    return tf.nn.relu(_batch_norm(x, mode))


def resfcn256(x, mode="fused"):
  """The sigmoid position map s (B, 256, 256, 3); MAX_POS * s is PosPrediction's output."""
  size = 16
  with tf1.variable_scope("resfcn256"):
    se = conv2d(x, size, 4, 1, mode=mode)
    for mult in (2, 4, 8, 16, 32):
      se = res_block(se, size * mult, 4, 2, mode)
      se = res_block(se, size * mult, 4, 1, mode)
    pd = se
    for mult, stride in ((32, 1), (16, 2), (16, 1), (16, 1), (8, 2), (8, 1), (8, 1), (4, 2),
                         (4, 1), (4, 1), (2, 2), (2, 1), (1, 2), (1, 1)):
      pd = conv2d_transpose(pd, size * mult, 4, stride, mode=mode)
    pd = conv2d_transpose(pd, 3, 4, 1, mode=mode)
    pd = conv2d_transpose(pd, 3, 4, 1, mode=mode)
    return conv2d_transpose(pd, 3, 4, 1, activation_fn=tf.nn.sigmoid, mode=mode)


def random_values(graph: tf.Graph, seed: int) -> dict[str, np.ndarray]:
  """He-normal kernels and random BatchNorm parameters and statistics for every network
  variable of `graph` (name without ``:0`` -> float64 array)."""
  rng = np.random.default_rng(seed)
  values = {}
  with graph.as_default():
    for v in tf1.global_variables():
      name, shape = v.op.name, v.shape.as_list()
      if not name.startswith("resfcn256/") or "/Adam" in name:
        continue
      leaf = name.rsplit("/", 1)[-1]
      if leaf == "weights":
        fan_in = shape[0] * shape[1] * (shape[3] if "Conv2d_transpose" in name else shape[2])
        values[name] = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
      elif leaf in ("gamma", "moving_variance"):
        values[name] = rng.uniform(0.5, 1.5, shape)
      else:  # beta, moving_mean
        values[name] = rng.normal(0, 0.2, shape)
  return values


def _assign(sess, values: dict[str, np.ndarray], dtype) -> None:
  """Sets every variable named in `values` in one session run."""
  feeds, ops = {}, []
  for v in tf1.global_variables():
    if v.op.name in values:
      ph = tf1.placeholder(v.dtype.base_dtype, v.shape)
      ops.append(v.assign(ph))
      feeds[ph] = values[v.op.name].astype(dtype)
  sess.run(ops, feeds)


def calibrate(values: dict[str, np.ndarray], images: np.ndarray, seed: int) -> None:
  """Sets the BatchNorm moving statistics in `values` to one training-mode pass's batch
  statistics on `images`, perturbed (mean + N(0, 0.1 sd), variance x U(0.8, 1.25)): random,
  but at the scale of the activations, so the output depends on the input as a trained
  network's does instead of saturating."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf1.placeholder(tf.float32, [None, 256, 256, 3])
    resfcn256(x, mode="calibrate")
    records = tf1.get_collection("calibration")
    with tf1.Session(graph=graph) as sess:
      _assign(sess, values, np.float32)
      stats = sess.run([(m, v) for _, _, m, v in records], {x: images})
  rng = np.random.default_rng(seed)
  for (mean_name, var_name, _, _), (mean, var) in zip(records, stats):
    values[mean_name] = mean + rng.normal(0, 0.1, mean.shape) * np.sqrt(var)
    values[var_name] = var * rng.uniform(0.8, 1.25, var.shape)


def save_checkpoint(prefix: str, values: dict[str, np.ndarray]) -> list[str]:
  """Builds the float32 network, sets `values`, adds Adam's slots and saves a TF1 checkpoint
  at `prefix` (tf.train.Saver); returns the names of the variables saved."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf1.placeholder(tf.float32, [None, 256, 256, 3])
    pos = resfcn256(x)
    del pos
    # Adam's own slot creation (names as in the released checkpoint) without a backward graph.
    tf1.train.AdamOptimizer(1e-4).apply_gradients(
        [(tf.zeros_like(v), v) for v in tf1.trainable_variables()])
    saver = tf1.train.Saver()
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer())
      _assign(sess, values, np.float32)
      saver.save(sess, prefix, write_meta_graph=False, write_state=False)
      return [v.op.name for v in tf1.global_variables()]


def forward(values: dict[str, np.ndarray], images: np.ndarray, dtype) -> np.ndarray:
  """PosPrediction.predict_batch (sigmoid x 1.1 x 256) in `dtype` (tf.float32 / tf.float64)."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf1.placeholder(dtype, [None, 256, 256, 3])
    pos = resfcn256(x, mode="fused" if dtype == tf.float32 else "exact")
    with tf1.Session(graph=graph) as sess:
      _assign(sess, values, dtype.as_numpy_dtype)
      return sess.run(pos, {x: images.astype(dtype.as_numpy_dtype)}) * MAX_POS
