"""Why the short face-VAE runs did not beat the mean image: ``python -m eval.vae_bn_stats``.

Trains one configuration for ``--steps`` (a plain jitted loop over the task's `train_step`, no
checkpoints) and, at each step in ``--evals``, scores the decoder output on the face pixels of
the held-out test scenes (protocol B: 10 l1 and 10 l2 = RMSE, mask-weighted, as in
`eval.vae_ablation`) with two sets of BatchNorm statistics:

* ``running``: the moving averages at ``--bn_momentum`` (Keras' 0.99 or the CPU presets' 0.9);
* ``precise``: `face_vae.population_batch_stats` over 8 training batches of 32, weights frozen;

each beside the mean training image as every output, as the paired difference +- its standard
error over test images (negative = better than the mean image). BatchNorm momentum does not
change training (training uses batch statistics), so runs differing only in
``--bn_momentum`` have identical weights. Example (measured numbers in docs/face_vae.md)::

  nice -n 10 python -m eval.vae_bn_stats --arg ssim_l2_mask,ablation --steps 150 \\
      --evals 50,150 --bn_momentum 0.99
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import flags

from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("arg", "ssim_l2_mask,ablation", "Config ARG (train/configs/face_vae.py).")
  flags.DEFINE_integer("steps", 150, "Training steps.")
  flags.DEFINE_list("evals", ["50", "150"], "Steps at which to score.")
  flags.DEFINE_float("bn_momentum", 0.99, "BatchNorm momentum of the running statistics.")
  flags.DEFINE_float("learning_rate", 0.0, "Adam learning rate (0 = the preset's).")
  flags.DEFINE_float("kl_weight", -1.0, "KL weight (< 0 = the authors' 1e-3).")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax import image_metrics  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  from data import pipeline  # pylint: disable=g-import-not-at-top
  from train import face_vae_task  # pylint: disable=g-import-not-at-top
  from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top

  cfg = configs.get_config(FLAGS.arg)
  cfg.model.bn_momentum = FLAGS.bn_momentum
  if FLAGS.learning_rate > 0:
    cfg.learning_rate = FLAGS.learning_rate
  if FLAGS.kl_weight >= 0:
    cfg.model.kl_weight = FLAGS.kl_weight
  task = face_vae_task.FaceVAETask.create(cfg)
  train_set, test_set, model = task.train_set, task.test_set, task.model
  test = test_set.get(np.arange(len(test_set)))
  x, m = jnp.asarray(test["image"]), jnp.asarray(test["mask"])

  def face_errors(pre):
    return (10 * np.asarray(image_metrics.l1(x, pre, mask=m)),
            10 * np.asarray(image_metrics.l2(x, pre, mask=m)))

  mean_image = train_set.get(np.arange(len(train_set)))["image"].mean(0)
  base = face_errors(jnp.broadcast_to(jnp.asarray(mean_image), x.shape))

  def versus_base(errors):
    cells = []
    for name, v, b in zip(("l1", "l2"), errors, base):
      d = v - b
      cells.append(f"{name} {v.mean():.3f} (d {d.mean():+.3f}±{d.std(ddof=1) / np.sqrt(len(d)):.3f})")
    return ", ".join(cells)

  print(f"{FLAGS.arg}, bn_momentum {FLAGS.bn_momentum}, lr {cfg.learning_rate}, kl "
        f"{model.kl_weight}: mean image 10·l1 {base[0].mean():.3f}, 10·l2 {base[1].mean():.3f} "
        f"on {len(x)} test scenes", flush=True)
  size = model.input_size
  state = task.init(jax.random.key(cfg.seed),
                    {"image": np.zeros((cfg.batch_size, size, size, 3), np.float32)})
  step_fn = jax.jit(task.train_step)
  predict = jax.jit(lambda p, s, images: face_vae.predict(p, s, images, model)["image_pre"])
  evals = {int(e) for e in FLAGS.evals}
  batches = pipeline.iterate_batches(train_set, cfg.batch_size, cfg.seed)
  train_seconds, losses = 0.0, []
  for step in range(1, FLAGS.steps + 1):
    batch = next(batches)
    start = time.perf_counter()
    state, metrics = step_fn(state, {"image": jnp.asarray(batch["image"]),
                                     "mask": jnp.asarray(batch["mask"])},
                             jax.random.fold_in(jax.random.key(1), step))
    losses.append(float(metrics["loss"]))
    train_seconds += time.perf_counter() - start
    if step in evals:
      params, running = state["params"], state["batch_stats"]
      calib = pipeline.iterate_batches(train_set, 32, seed=12345)
      precise = face_vae.population_batch_stats(
          params, (next(calib)["image"] for _ in range(8)), model)
      print(f"step {step} (train {train_seconds:.0f} s incl. compile, loss "
            f"{np.mean(losses[-25:]):.3f}) | running: {versus_base(face_errors(predict(params, running, x)))}"
            f" | precise: {versus_base(face_errors(predict(params, precise, x)))}", flush=True)
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
