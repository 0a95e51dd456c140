"""Throughput of LCNet and NENet: training and inference images/s, JAX beside PyTorch (CPU).

  python -m eval.bench_sdps [--sizes cpu,mid,full] [--rounds 5] [--steps 2] [--out bench.json]

``cpu``: the CPU default (α = 0.25; LCNet on 64² at input_size 64, NENet on 32² crops; N = 16,
batch 8). ``mid``: the authors' width (α = 1) on 64² (input_size 64), N = 16, batch 2.
``full``: SDPS's size (α = 1; 128², N = 32; batch 2 here so a CPU finishes; the authors
trained with 32 / 16). Training = forward + backward + Adam (LCNet: the three cross-entropies;
NENet: the cosine loss); images/s counts the B·N input images. The PyTorch networks
(`eval.sdps_torch`) are built from the spec in the same command; their parameter counts are
checked against the Flax models'. The two sides are timed in interleaved rounds
(`eval.bench_rounds`), the ratio ours / PyTorch is the median of the per-round ratios, and
the JAX compile time (first call) is printed beside each figure. Without torch the PyTorch
column is skipped with a message.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import sys
import time

from absl import flags
from absl import logging

from eval import bench_rounds
from train import absl_app

FLAGS = flags.FLAGS

SIZES = {  # alpha, lcnet (S, N, B), nenet (H, N, B)
    "cpu": (0.25, (64, 16, 8), (32, 16, 8)),
    "mid": (1.0, (64, 16, 2), (64, 16, 2)),
    "full": (1.0, (128, 32, 2), (128, 32, 2)),
}


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_list("sizes", ["cpu", "mid", "full"], "Any of cpu, mid, full.")
  flags.DEFINE_list("nets", ["lcnet", "nenet"], "lcnet and/or nenet.")
  flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (ours, PyTorch, PyTorch, ours...).")
  flags.DEFINE_integer("steps", 2, "Timed calls per side per round (the round's median counts).")
  flags.DEFINE_string("out", "", "write the results as JSON here.")
  flags.DEFINE_bool("xla_cpu_options", True, "Compile our steps with "
                    "bioface_jax.xla_options.cpu_compiler_options() (convolutions to Eigen).")
  absl_app.define_huge_pages_flag(note="Process-wide, so the PyTorch side gets them too.")


def _batch(n, hw, b):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  return {"images": rng.uniform(0, 1, (b, n, hw, hw, 3)).astype(np.float32),
          "mask": np.ones((b, hw, hw), np.float32),
          "dirs": np.tile(np.asarray([0.1, 0.2, 0.97], np.float32), (b, n, 1)),
          "intensities": np.ones((b, n), np.float32),
          "normals": np.tile(np.asarray([0, 0, 1.0], np.float32), (b, hw, hw, 1))}


def make_jax_step(net, alpha, hw, n, b, compiler_options=None):
  """(jitted train step, its arguments, params): step(params, opt, batch) -> (params, opt)."""
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  cfg = sdps.SDPSConfig(net=net, width_multiplier=alpha, input_size=hw)
  params, _ = sdps.init(jax.random.key(0), (b, n, hw, hw, 3), cfg)
  tx = sdps.optimizer(cfg)

  @functools.partial(jax.jit, compiler_options=compiler_options)
  def train(p, o, bt):
    g = jax.grad(lambda q: sdps.compute_loss(q, bt, cfg)[0])(p)
    u, o = tx.update(g, o, p)
    return jax.tree.map(lambda a, d: a + d, p, u), o

  return train, (params, tx.init(params), jax.device_put(_batch(n, hw, b))), params


def jax_sides(net, alpha, hw, n, b, compiler_options=None):
  """(params, train callable, inference callable, train compile s, inference compile s)."""
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  cfg = sdps.SDPSConfig(net=net, width_multiplier=alpha, input_size=hw)
  train, (params, opt, batch), _ = make_jax_step(net, alpha, hw, n, b, compiler_options)
  infer = jax.jit(lambda p, bt: sdps.apply(p, bt, cfg), compiler_options=compiler_options)
  state = [params, opt]

  def step():
    state[0], state[1] = jax.block_until_ready(train(state[0], state[1], batch))

  t0 = time.perf_counter()
  step()
  train_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(infer(params, batch))
  infer_compile = time.perf_counter() - t0
  return (sdps.param_count(params), step, lambda: jax.block_until_ready(infer(params, batch)),
          train_compile, infer_compile)


def torch_sides(net, alpha, hw, n, b):
  """(params, train callable, inference callable) of the PyTorch network."""
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

  step(), infer()  # first calls (allocator warm-up)
  return sdps_torch.param_count(model), step, infer


def main(argv):
  del argv
  absl_app.restart_with_huge_pages_if_asked()  # returns once the tunable is set
  logging.set_verbosity(logging.WARNING)  # quiet Orbax's INFO lines
  try:
    import torch  # pylint: disable=g-import-not-at-top
    have_torch, torch_version = True, f"{torch.__version__} ({torch.get_num_threads()} threads)"
  except ImportError:
    have_torch, torch_version = False, None
    print("torch is not installed: skipping the PyTorch column "
          "(pip install 'bioface_jax[bench-torch]').", file=sys.stderr)
  import jax  # pylint: disable=g-import-not-at-top
  print(f"command: python -m eval.bench_sdps {' '.join(sys.argv[1:])}")
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; torch {torch_version}; "
        f"load average {os.getloadavg()[0]:.2f}; images/s = B·N input images per second",
        flush=True)
  from bioface_jax import xla_options  # pylint: disable=g-import-not-at-top
  options = xla_options.cpu_compiler_options() if FLAGS.xla_cpu_options else {}
  print(f"JAX compiler options: {options or 'XLA defaults'}; GLIBC_TUNABLES (both sides): "
        f"{os.environ.get('GLIBC_TUNABLES', 'unset')}")
  rows = []
  for size in FLAGS.sizes:
    if size not in SIZES:
      raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    alpha, lc, ne = SIZES[size]
    for net, (hw, n, b) in (("lcnet", lc), ("nenet", ne)):
      if net not in FLAGS.nets:
        continue
      print(f"{size} {net}: {hw}², N={n}, batch {b}, α={alpha}", flush=True)
      params, j_train, j_infer, j_tc, j_ic = jax_sides(net, alpha, hw, n, b, options)
      print(f"  jax: {params:,} params; train step compile {j_tc:.1f} s, inference compile "
            f"{j_ic:.1f} s", flush=True)
      row = {"size": size, "net": net, "alpha": alpha, "hw": hw, "n": n, "batch": b,
             "params": params, "jax_train_compile_s": j_tc, "jax_infer_compile_s": j_ic}
      if have_torch:
        tparams, t_train, t_infer = torch_sides(net, alpha, hw, n, b)
        if tparams != params:
          raise AssertionError(f"{net}: torch has {tparams} parameters, flax {params}")
        for what, ours, theirs in (("train", j_train, t_train), ("infer", j_infer, t_infer)):
          t = bench_rounds.timed_rounds({"jax": ours, "torch": theirs}, FLAGS.rounds,
                                        FLAGS.steps)
          r = bench_rounds.summary(t["jax"], t["torch"], b * n)
          print(bench_rounds.format_row(f"{what} vs PyTorch", r), flush=True)
          row.update({f"jax_{what}_img_s": r["ours"], f"torch_{what}_img_s": r["theirs"],
                      f"{what}_ratio": r["ratio"], f"{what}_ratio_fastest": r["ratio_fastest"]})
      else:
        t = bench_rounds.timed_rounds({"train": j_train, "infer": j_infer}, FLAGS.rounds,
                                      FLAGS.steps)
        row.update(jax_train_img_s=b * n / min(t["train"]), jax_infer_img_s=b * n / min(t["infer"]))
      rows.append(row)
  print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
  print("| size | net | params | input | N × batch | JAX train (compile s) | torch train | "
        "ratio | JAX infer | torch infer | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    t = (f"{r['torch_train_img_s']:.2f} | {r['train_ratio']:.2f} | {r['jax_infer_img_s']:.1f} | "
         f"{r['torch_infer_img_s']:.1f} | {r['infer_ratio']:.2f}" if have_torch
         else f"— | — | {r['jax_infer_img_s']:.1f} | — | —")
    print(f"| {r['size']} | {r['net']} | {r['params']:,} | {r['hw']}² | {r['n']} × "
          f"{r['batch']} | {r['jax_train_img_s']:.2f} ({r['jax_train_compile_s']:.0f}) | {t} |")
  if FLAGS.out:
    pathlib.Path(FLAGS.out).write_text(json.dumps(rows, indent=1))
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
