"""Throughput of LCNet and NENet: training and inference images/s, JAX vs PyTorch (CPU).

  python -m eval.bench_sdps [--sizes cpu,full] [--steps 3] [--out bench.json]

``cpu``: the CPU default (α = 0.25; LCNet on 64² at input_size 64, NENet on 32² crops; N = 16,
batch 8). ``full``: SDPS's size (α = 1; 128², N = 32; batch 2 here so a CPU finishes; the
authors trained with 32 / 16). Training = forward + backward + Adam (LCNet: the three
cross-entropies; NENet: the cosine loss); images/s counts the B·N input images. The PyTorch
networks (`eval.sdps_torch`) are built from the spec in the same command; their parameter counts
are checked against the Flax models'. Without torch that column is skipped with a message.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from absl import flags
from absl import logging

from train import absl_app

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["cpu", "full"], "cpu and/or full.")
flags.DEFINE_integer("steps", 3, "timed steps per measurement (after one warm-up).")
flags.DEFINE_string("out", "", "write the results as JSON here.")

SIZES = {  # alpha, lcnet (S, N, B), nenet (H, N, B)
    "cpu": (0.25, (64, 16, 8), (32, 16, 8)),
    "full": (1.0, (128, 32, 2), (128, 32, 2)),
}


def _time(fn, steps):
  fn()
  t = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - t) / steps


def bench_jax(net, alpha, hw, n, b, steps):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  cfg = sdps.SDPSConfig(net=net, width_multiplier=alpha, input_size=hw)
  params, _ = sdps.init(jax.random.key(0), (b, n, hw, hw, 3), cfg)
  rng = np.random.default_rng(0)
  batch = {"images": rng.uniform(0, 1, (b, n, hw, hw, 3)).astype(np.float32),
           "mask": np.ones((b, hw, hw), np.float32),
           "dirs": np.tile(np.asarray([0.1, 0.2, 0.97], np.float32), (b, n, 1)),
           "intensities": np.ones((b, n), np.float32),
           "normals": np.tile(np.asarray([0, 0, 1.0], np.float32), (b, hw, hw, 1))}
  tx = sdps.optimizer(cfg)
  opt = tx.init(params)
  infer = jax.jit(lambda p, bt: sdps.apply(p, bt, cfg))

  @jax.jit
  def train(p, o, bt):
    g = jax.grad(lambda q: sdps.compute_loss(q, bt, cfg)[0])(p)
    u, o = tx.update(g, o, p)
    return jax.tree.map(lambda a, d: a + d, p, u), o

  state = [params, opt]

  def step():
    state[0], state[1] = jax.block_until_ready(train(state[0], state[1], batch))

  t_inf = _time(lambda: jax.block_until_ready(infer(params, batch)), steps)
  t_tr = _time(step, steps)
  return sdps.param_count(params), b * n / t_tr, b * n / t_inf


def bench_torch(net, alpha, hw, n, b, steps):
  import torch  # pylint: disable=g-import-not-at-top
  from eval import sdps_torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  if net == "lcnet":
    model = sdps_torch.TorchLCNet(alpha, hw)
    x = torch.rand(b * n, 4, hw, hw)
    labels = [torch.randint(0, k, (b * n,)) for k in (36, 36, 20)]

    def loss_fn():
      return sum(torch.nn.functional.cross_entropy(o.reshape(b * n, -1), y)
                 for o, y in zip(model(x, b, n), labels))
  else:
    model = sdps_torch.TorchNENet(alpha)
    x = torch.rand(b * n, 6, hw, hw)
    gt = torch.zeros(b, 3, hw, hw)
    gt[:, 2] = 1

    def loss_fn():
      return (1 - (model(x, b, n) * gt).sum(1)).mean()
  opt = torch.optim.Adam(model.parameters(), lr=5e-4)

  def step():
    opt.zero_grad()
    loss_fn().backward()
    opt.step()

  def infer():
    with torch.no_grad():
      model(x, b, n)

  return sdps_torch.param_count(model), b * n / _time(step, steps), b * n / _time(infer, steps)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # quiet Orbax's INFO lines
  try:
    import torch  # pylint: disable=g-import-not-at-top
    have_torch, torch_version = True, torch.__version__
  except ImportError:
    have_torch, torch_version = False, None
    print("torch is not installed: skipping the PyTorch column "
          "(pip install 'bioface_jax[bench-torch]').", file=sys.stderr)
  import jax  # pylint: disable=g-import-not-at-top
  rows = []
  for size in FLAGS.sizes:
    alpha, lc, ne = SIZES[size]
    for net, (hw, n, b) in (("lcnet", lc), ("nenet", ne)):
      print(f"{size} {net}: {hw}², N={n}, batch {b}, α={alpha} ...", file=sys.stderr,
            flush=True)
      params, tr, inf = bench_jax(net, alpha, hw, n, b, FLAGS.steps)
      row = {"size": size, "net": net, "alpha": alpha, "hw": hw, "n": n, "batch": b,
             "params": params, "jax_train_img_s": tr, "jax_infer_img_s": inf}
      if have_torch:
        tparams, ttr, tinf = bench_torch(net, alpha, hw, n, b, FLAGS.steps)
        if tparams != params:
          raise AssertionError(f"{net}: torch has {tparams} parameters, flax {params}")
        row.update(torch_train_img_s=ttr, torch_infer_img_s=tinf)
      rows.append(row)
      print(f"  {row}", file=sys.stderr, flush=True)  # progress: each row as it is measured
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; torch {torch_version}; "
        "images/s (B·N input images per second)\n")
  print("| size | net | params | input | N × batch | JAX train | JAX infer | torch train | "
        "torch infer |\n|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    t = (f"{r['torch_train_img_s']:.1f} | {r['torch_infer_img_s']:.1f}" if have_torch
         else "— | —")
    print(f"| {r['size']} | {r['net']} | {r['params']:,} | {r['hw']}² | {r['n']} × "
          f"{r['batch']} | {r['jax_train_img_s']:.1f} | {r['jax_infer_img_s']:.1f} | {t} |")
  if FLAGS.out:
    pathlib.Path(FLAGS.out).write_text(json.dumps(rows, indent=1))
  return 0


if __name__ == "__main__":
  absl_app.run(main)
