"""Per-block diagnostics of a PRNet: activation spread, image dependence, gradient norms.

For one training batch (train-mode BatchNorm, no augmentation) it prints, per encoder block and
for the encoder output:
  * ``rms``: root mean square of the block output;
  * ``img``: image dependence = std over the batch (per position and channel, averaged) divided
    by the overall std; 0 means every image gives the same feature map;
  * for ResFCN blocks, ``res/sc``: rms of the residual branch (Conv_2 output) over the rms of
    the shortcut it is added to (a dead residual branch gives ~0);
  * ``|g|`` and ``|w|``: gradient and weight norms of the block's parameters.

    python -m eval.prnet_blockstats --workdir runs/prnet_resfcn_w025          # latest checkpoint
    python -m eval.prnet_blockstats --config resfcn_cpu --size 64 --width 0.25  # at init
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from bioface_jax.models import prnet
from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("workdir", None, "training run to read (latest checkpoint); else init")
  flags.DEFINE_string("config", "resfcn_cpu", "config variant when --workdir is not given")
  flags.DEFINE_integer("size", 64, "R when --workdir is not given")
  flags.DEFINE_float("width", 0.25, "width multiplier when --workdir is not given")
  flags.DEFINE_integer("seed", 0, "init seed when --workdir is not given")


def _rms(x):
  return float(jnp.sqrt(jnp.mean(jnp.square(x))))


def _img_dep(x):
  return float(jnp.mean(jnp.std(x, axis=0)) / (jnp.std(x) + 1e-12))


def _alive(x):
  """Fraction of ReLU outputs > 0."""
  return float(jnp.mean(x > 0))


def _dead(x):
  """Channels that are zero for every image and position of the batch."""
  return int(jnp.sum(jnp.all(x <= 0, axis=(0, 1, 2))))


def _norm(tree):
  return float(jnp.sqrt(sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(tree))))


def main(argv):
  del argv
  from train import prnet_task  # pylint: disable=g-import-not-at-top
  from train.configs import prnet as cfgs  # pylint: disable=g-import-not-at-top
  if FLAGS.workdir:
    params, stats, model, config, step = prnet_task.restore_for_inference(FLAGS.workdir)
  else:
    config = cfgs.get_config(FLAGS.config)
    config.data.size = FLAGS.size
    config.model.width_multiplier = FLAGS.width
    model = prnet_task.model_config(config)
    step = 0
  train_set, _ = prnet_task.load_datasets(config)
  batch = {k: jnp.asarray(np.asarray(v, np.float32))
           for k, v in train_set.get(np.arange(config.batch_size)).items()
           if k in prnet_task.BATCH_KEYS}
  if not FLAGS.workdir:
    params, stats = prnet.init(jax.random.key(FLAGS.seed), batch["image"].shape, model)
  net = prnet.module(model)
  _, inter = net.apply({"params": params, "batch_stats": stats}, batch["image"], train=True,
                       capture_intermediates=True, mutable=["intermediates", "batch_stats"])
  inter = inter["intermediates"]
  grads = jax.grad(lambda p: prnet.compute_loss(p, stats, batch, model)[0])(params)
  print(f"{model.encoder} w {model.width_multiplier} R {model.input_size} step {step}")
  enc = inter["encoder"]
  prev = None
  for name in enc:
    if name == "__call__":
      continue
    sub = enc[name]
    out = sub["__call__"][0]
    line = f"  {name:16s} {str(out.shape[1:]):14s} rms {_rms(out):7.3f} img {_img_dep(out):5.3f}"
    if "Conv_2" in sub:
      res = sub["Conv_2"]["__call__"][0]
      sc = sub["shortcut"]["__call__"][0] if "shortcut" in sub else prev
      if sc is not None:
        line += f" res/sc {_rms(res) / (_rms(sc) + 1e-12):6.3f}"
    if name in params["encoder"]:
      line += (f" |g| {_norm(grads['encoder'][name]):.2e} |w| {_norm(params['encoder'][name]):.2f}")
    print(line)
    prev = out
  feats = enc["__call__"][0]
  print(f"  encoder output   rms {_rms(feats):.3f} img {_img_dep(feats):.3f}")
  if "adapter_bn" in inter:
    a = jax.nn.relu(inter["adapter_bn"]["__call__"][0])
    print(f"  adapter+relu     rms {_rms(a):.3f} img {_img_dep(a):.3f} alive {_alive(a):.3f}"
          f" dead channels {_dead(a)}/{a.shape[-1]}")
  for name, sub in inter["decoder"].items():
    if name.endswith("_bn"):
      a = jax.nn.relu(sub["__call__"][0])
      g = _norm(grads["decoder"][name.removesuffix("_bn")])
      print(f"  {name:24s} {str(a.shape[1:]):14s} img {_img_dep(a):5.3f} alive {_alive(a):.3f}"
            f" dead channels {_dead(a)}/{a.shape[-1]} |g| {g:.2e}")
  dec = inter["decoder"]["__call__"][0]
  print(f"  decoder output   img {_img_dep(dec):.3f}; |g| decoder {_norm(grads['decoder']):.2e}"
        f" encoder {_norm(grads['encoder']):.2e}")


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
