"""Face VAE throughput beside the authors' Keras network:
``python -m eval.bench_vae [--presets paper] [--batch 16] [--infer_batch 32] [--rounds 5]``.

For each preset (``cpu``: 48 px, width 0.25, latent 128, the training preset; ``cpu72``: the
same at 72 px, the earlier ``cpu`` preset, measured in docs/face_vae.md; ``paper``: 144 px,
width 1, latent 512, the authors' network) with the ssim_l2_mask losses, in one command:

* JAX: the jitted training step (forward, loss, backward, per-tensor clip + Keras Adam) at
  ``--batch`` and the jitted inference (`face_vae.reconstruct`) at ``--infer_batch``; the
  compile time (first call) of each is printed;
* TensorFlow/Keras: the same model built from the spec (`eval.keras_face_vae`), a
  ``tf.function`` training step with Keras Adam(clipnorm) (``--keras_jit`` adds
  ``jit_compile=True``) and inference; skipped with a message if TensorFlow is not installed.

The two sides are timed in interleaved rounds (`eval.bench_rounds`: ``--rounds`` rounds of
``--steps`` calls each, the order alternating), and the ratio ours / Keras is the median of the
per-round ratios. Before timing, the Keras weights are loaded into the Flax pytrees and the
two inference outputs must agree within 1e-4 (otherwise the benchmark stops). Times depend on
machine load: the load average is printed before and after. By default the command restarts
itself once with glibc's huge-page tunable (`bioface_jax.host_memory`; ``--nohuge_pages``
keeps 4 KiB pages), which both sides of the comparison then share.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from eval import bench_rounds  # noqa: E402
from train import absl_app  # noqa: E402

FLAGS = flags.FLAGS

PRESETS = {"cpu": dict(input_size=48, latent_dim=128, width_multiplier=0.25),
           "cpu72": dict(input_size=72, latent_dim=128, width_multiplier=0.25),
           "paper": dict(input_size=144, latent_dim=512, width_multiplier=1.0)}


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_list("presets", ["paper"], "Presets to measure: cpu, cpu72, paper.")
  flags.DEFINE_integer("batch", 16, "Training batch size.")
  flags.DEFINE_integer("infer_batch", 32, "Inference batch size.")
  flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (ours, Keras, Keras, ours, ...).")
  flags.DEFINE_integer("steps", 2, "Timed calls per side per round (the round's median counts).")
  flags.DEFINE_integer("warmup", 1, "Untimed calls of each side after its first call.")
  flags.DEFINE_bool("keras_jit", False, "Also time Keras with jit_compile=True.")
  flags.DEFINE_bool("xla_cpu_options", True, "Compile our steps with "
                    "bioface_jax.xla_options.cpu_compiler_options() (convolutions to Eigen).")
  absl_app.define_huge_pages_flag(note="Process-wide, so a Keras side gets them too.")


def preset_config(preset: str, size: int | None = None):
  """The benchmark's FaceVAEConfig for a preset (ssim + l2 + mask losses)."""
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  values = dict(PRESETS[preset])
  if size:
    values["input_size"] = size
  return fv.FaceVAEConfig(losses=("ssim", "l2"), **values)


def inputs(config, batch):
  rng = np.random.default_rng(0)
  s = config.input_size
  x = rng.uniform(0, 1, (batch, s, s, 3)).astype(np.float32)
  m = (rng.uniform(0, 1, (batch, s, s)) > 0.5).astype(np.float32)
  return x, m


def make_jax_step(config, batch, compiler_options=None):
  """(jitted train step, its arguments, params): step(params, stats, opt, rng, x, m)."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  x, m = inputs(config, batch)
  params, stats = fv.init(jax.random.key(0), x.shape, config)
  tx = fv.optimizer(config)

  @functools.partial(jax.jit, compiler_options=compiler_options)
  def step(params, stats, opt, rng, x, m):
    def loss_fn(p):
      loss, (_, new_stats, _) = fv.compute_loss(p, stats, {"image": x, "mask": m}, config,
                                                train=True, rng=rng)
      return loss, new_stats
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), new_stats, opt, loss

  args = (params, stats, tx.init(params), jax.random.key(1), jax.device_put(x),
          jax.device_put(m))
  return step, args, params


def jax_sides(config, batch, infer_batch, compiler_options=None):
  """(train callable, inference callable, compile seconds of each, parameter count)."""
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae as fv  # pylint: disable=g-import-not-at-top
  step, args, params = make_jax_step(config, batch, compiler_options)
  state = list(args)

  def train_once():
    out = step(*state)
    jax.block_until_ready(out)
    state[:3] = out[:3]

  t0 = time.perf_counter()
  train_once()
  train_compile = time.perf_counter() - t0
  xi = jax.device_put(inputs(config, infer_batch)[0])
  infer = jax.jit(lambda p, s, xx: fv.reconstruct(p, s, xx, config),
                  compiler_options=compiler_options)
  t0 = time.perf_counter()
  jax.block_until_ready(infer(state[0], state[1], xi))
  infer_compile = time.perf_counter() - t0
  return (train_once, lambda: jax.block_until_ready(infer(state[0], state[1], xi)),
          train_compile, infer_compile, sum(v.size for v in jax.tree.leaves(params)))


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


def keras_sides(config, batch, infer_batch, jit_compile):
  """(train callable, inference callable, first-call seconds of each, parameter count)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from eval import keras_face_vae as kf  # pylint: disable=g-import-not-at-top
  model = kf.build(config)
  step = kf.make_train_step(model, config, jit_compile)
  x, m = inputs(config, batch)
  xt, mt = tf.constant(x), tf.constant(m)
  eps = tf.random.normal((batch, config.latent_dim))
  t0 = time.perf_counter()
  step(xt, mt, eps).numpy()
  train_first = time.perf_counter() - t0
  xi = tf.constant(inputs(config, infer_batch)[0])
  zeros = tf.zeros((infer_batch, config.latent_dim))
  infer_fn = tf.function(lambda a: model([a, zeros], training=False)["image_pre"],
                         jit_compile=jit_compile)
  t0 = time.perf_counter()
  infer_fn(xi).numpy()
  infer_first = time.perf_counter() - t0
  return (lambda: step(xt, mt, eps).numpy(), lambda: infer_fn(xi).numpy(), train_first,
          infer_first, model.count_params())


def main(argv):
  del argv
  absl_app.restart_with_huge_pages_if_asked()  # returns once the tunable is set
  import jax  # pylint: disable=g-import-not-at-top
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    tf = None
    print("TensorFlow is not installed: the Keras columns are skipped "
          "(pip install -e '.[bench-tf]').")
  print(f"command: python -m eval.bench_vae {' '.join(sys.argv[1:])}")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__}"
        + (f", tensorflow {tf.__version__} (intra-op threads "
           f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'})" if tf else ""),
        flush=True)
  from bioface_jax import xla_options  # pylint: disable=g-import-not-at-top
  options = xla_options.cpu_compiler_options() if FLAGS.xla_cpu_options else {}
  print(f"JAX compiler options: {options or 'XLA defaults'}; GLIBC_TUNABLES (both sides): "
        f"{os.environ.get('GLIBC_TUNABLES', 'unset')}")
  for preset in FLAGS.presets:
    if preset not in PRESETS:
      raise app.UsageError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    config = preset_config(preset)
    s = config.input_size
    print(f"[{preset}] {s} px, width {config.width_multiplier}, latent {config.latent_dim}, "
          f"train batch {FLAGS.batch}, inference batch {FLAGS.infer_batch}", flush=True)
    if tf is not None:
      gap = check_transfer(config, inputs(config, 2)[0])
      print(f"  Keras->Flax weight transfer: max inference gap {gap:.2g}", flush=True)
    j_train, j_infer, j_tc, j_ic, n = jax_sides(config, FLAGS.batch, FLAGS.infer_batch, options)
    print(f"  jax: {n:,} params; train step compile {j_tc:.1f} s, inference compile "
          f"{j_ic:.1f} s", flush=True)
    for _ in range(FLAGS.warmup):
      j_train(), j_infer()
    if tf is None:
      t = bench_rounds.timed_rounds({"jax_train": j_train, "jax_infer": j_infer},
                                    FLAGS.rounds, FLAGS.steps)
      print(f"  jax: train {FLAGS.batch / np.median(t['jax_train']):.2f} img/s, inference "
            f"{FLAGS.infer_batch / np.median(t['jax_infer']):.1f} img/s")
      continue
    for jit in ([False, True] if FLAGS.keras_jit else [False]):
      k_train, k_infer, k_tc, k_ic, k_n = keras_sides(config, FLAGS.batch, FLAGS.infer_batch,
                                                      jit)
      for _ in range(FLAGS.warmup):
        k_train(), k_infer()
      name = "keras (jit_compile)" if jit else "keras"
      print(f"  {name}: {k_n:,} params (trainable + BN statistics); first train call "
            f"{k_tc:.1f} s, first inference call {k_ic:.1f} s", flush=True)
      t = bench_rounds.timed_rounds({"jax": j_train, "keras": k_train}, FLAGS.rounds,
                                    FLAGS.steps)
      print(bench_rounds.format_row(
          f"train (batch {FLAGS.batch}) vs {name}",
          bench_rounds.summary(t["jax"], t["keras"], FLAGS.batch)), flush=True)
      t = bench_rounds.timed_rounds({"jax": j_infer, "keras": k_infer}, FLAGS.rounds,
                                    FLAGS.steps)
      print(bench_rounds.format_row(
          f"inference (batch {FLAGS.infer_batch}) vs {name}",
          bench_rounds.summary(t["jax"], t["keras"], FLAGS.infer_batch)), flush=True)
  print(f"load average at the end {os.getloadavg()[0]:.2f}")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
