"""Face VAE throughput: ``python -m eval.bench_vae [--presets cpu,paper] [--steps 20]``.

For each preset (``cpu``: 48 px, width 0.25, latent 128, the training preset; ``cpu72``: the
same at 72 px, the earlier ``cpu`` preset, measured in docs/face_vae.md; ``paper``: 144 px,
width 1, latent 512) at batch 32 with the ssim_l2_mask losses, measures on this machine, in one command:

* JAX: the jitted training step (forward, loss, backward, per-tensor clip + Keras Adam) and
  the jitted inference (`face_vae.reconstruct`), median of ``--steps`` warm calls;
* TensorFlow/Keras: the same model built from the spec (`eval.keras_face_vae`), a
  ``tf.function`` training step with Keras Adam(clipnorm) with and without ``jit_compile``, and
  inference; skipped with a message if TensorFlow is not installed.

Before timing, the Keras weights are loaded into the Flax pytrees and the two inference
outputs must agree within 1e-4 (otherwise the benchmark stops). Prints images/s, the
Keras/JAX ratio, threads and versions. Times depend heavily on machine load: say how busy the
machine was when quoting them.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from train import absl_app  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["cpu"], "Presets to measure: cpu, cpu72, paper.")
flags.DEFINE_integer("steps", 20, "Timed warm calls per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 2, "Untimed calls after compilation.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_bool("keras_jit", True, "Also time Keras with jit_compile=True.")

PRESETS = {"cpu": dict(input_size=48, latent_dim=128, width_multiplier=0.25),
           "cpu72": dict(input_size=72, latent_dim=128, width_multiplier=0.25),
           "paper": dict(input_size=144, latent_dim=512, width_multiplier=1.0)}


def _median_rate(fn, batch):
  for _ in range(FLAGS.warmup):
    fn()
  times = []
  for _ in range(FLAGS.steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return batch / statistics.median(times)


def bench_jax(config, x, m):
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  params, stats = fv.init(jax.random.key(0), x.shape, config)
  tx = fv.optimizer(config)
  state = [params, stats, tx.init(params)]

  @jax.jit
  def step(params, stats, opt, rng):
    def loss_fn(p):
      loss, (_, new_stats, _) = fv.compute_loss(p, stats, {"image": x, "mask": m}, config,
                                                train=True, rng=rng)
      return loss, new_stats
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), new_stats, opt, loss

  def train_once():
    out = step(*state, jax.random.key(len(state)))
    jax.block_until_ready(out)
    state[:3] = out[:3]

  infer = jax.jit(lambda p, s, xx: fv.reconstruct(p, s, xx, config))
  t0 = time.perf_counter()
  train_once()
  compile_s = time.perf_counter() - t0
  train = _median_rate(train_once, len(x))
  jax.block_until_ready(infer(state[0], state[1], x))
  inference = _median_rate(lambda: jax.block_until_ready(infer(state[0], state[1], x)), len(x))
  return dict(train=train, infer=inference, compile_s=compile_s,
              params=sum(v.size for v in jax.tree.leaves(params)))


def check_transfer(config, x):
  """Keras weights -> Flax; inference outputs must agree within 1e-4."""
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  from eval import keras_face_vae as kf  # pylint: disable=g-import-not-at-top
  model = kf.build(config)
  kf.randomise_batchnorm(model)
  params, stats = fv.init(jax.random.key(0), x.shape, config)
  params, stats = kf.to_flax(model, params, stats)
  ours = fv.predict(params, stats, x, config)
  theirs = model([x, np.zeros((len(x), config.latent_dim), np.float32)], training=False)
  gap = max(float(np.abs(np.asarray(ours["image_pre"]) - theirs["image_pre"]).max()),
            float(np.abs(np.asarray(ours["mask"]) - theirs["mask"][..., 0]).max()))
  if gap > 1e-4:
    raise AssertionError(f"Keras and Flax inference differ by {gap:.3g} > 1e-4")
  return gap


def bench_keras(config, x, m, jit_compile):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from eval import keras_face_vae as kf  # pylint: disable=g-import-not-at-top
  model = kf.build(config)
  step = kf.make_train_step(model, config, jit_compile)
  xt, mt = tf.constant(x), tf.constant(m)
  eps = tf.random.normal((len(x), config.latent_dim))
  step(xt, mt, eps).numpy()
  train = _median_rate(lambda: step(xt, mt, eps).numpy(), len(x))
  infer_fn = tf.function(lambda a: model([a, tf.zeros_like(eps)], training=False)["image_pre"],
                         jit_compile=jit_compile)
  infer_fn(xt).numpy()
  inference = _median_rate(lambda: infer_fn(xt).numpy(), len(x))
  return dict(train=train, infer=inference)


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    tf = None
    print("TensorFlow is not installed: the Keras columns are skipped "
          "(pip install -e '.[bench-tf]').")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}"
        + (f", tensorflow {tf.__version__} (intra-op threads "
           f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'})" if tf else ""))
  rows = []
  for preset in FLAGS.presets:
    if preset not in PRESETS:
      raise app.UsageError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    config = fv.FaceVAEConfig(losses=("ssim", "l2"), **PRESETS[preset])
    rng = np.random.default_rng(0)
    s = config.input_size
    x = rng.uniform(0, 1, (FLAGS.batch, s, s, 3)).astype(np.float32)
    m = (rng.uniform(0, 1, (FLAGS.batch, s, s)) > 0.5).astype(np.float32)
    print(f"[{preset}] {s} px, width {config.width_multiplier}, latent {config.latent_dim}, "
          f"batch {FLAGS.batch}", flush=True)
    if tf is not None:
      print(f"  Keras->Flax weight transfer: max inference gap {check_transfer(config, x):.2g}",
            flush=True)
    j = bench_jax(config, x, m)
    print(f"  jax: {j['params']:,} params, compile+first step {j['compile_s']:.0f} s, "
          f"train {j['train']:.2f} img/s, inference {j['infer']:.1f} img/s", flush=True)
    row = dict(preset=preset, jax=j)
    if tf is not None:
      for jit in ([False, True] if FLAGS.keras_jit else [False]):
        k = bench_keras(config, x, m, jit)
        row[f"keras{'_xla' if jit else ''}"] = k
        print(f"  keras{' (jit_compile)' if jit else ''}: train {k['train']:.2f} img/s "
              f"({k['train'] / j['train']:.2f}x jax), inference {k['infer']:.1f} img/s "
              f"({k['infer'] / j['infer']:.2f}x jax)", flush=True)
    rows.append(row)
  return 0


if __name__ == "__main__":
  absl_app.run(main)
