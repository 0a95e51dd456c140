"""Training and inference images/s of the PRNet encoders, beside ResFCN256 in PyTorch.

    python -m eval.bench_prnet                       # CPU default (R 128, w 0.25) and R 256, w 1
    python -m eval.bench_prnet --configs 128:0.25 --encoders resfcn,resnet18 --batch 8

For each encoder and (R, w): the compile time and steady images/s of one jitted training step
(forward + backward + Adam, training-mode BatchNorm, the weighted loss) and of inference
(`prnet.predict`) on random inputs, all sides timed in interleaved rounds (`eval.bench_rounds`:
``--rounds`` rounds of ``--steps`` calls, the order reversed every other round; the median
round counts, and ResFCN256's ratio JAX / PyTorch is the median of the per-round ratios).
The PyTorch column is the same ResFCN256 built from prnet-spec.md §2 (4x4 kernels, TF SAME
padding, no biases, BN + ReLU, 17 transposed convs, sigmoid), same batch, same machine, same
command; it is skipped with a message if torch is not installed. Parameter counts are printed
so that both networks are checked to be the same size.
"""

from __future__ import annotations

import functools
import sys
import time

from absl import flags

from eval import bench_rounds
from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_list("encoders", ["resfcn", "resnet18", "mobilenet_v2"], "Encoders to time.")
  flags.DEFINE_list("configs", ["128:0.25", "256:1.0"], "R:width pairs.")
  flags.DEFINE_integer("batch", 4, "Batch size.")
  flags.DEFINE_integer("steps", 2, "Timed calls per side per round (the round's median counts).")
  flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds over all sides.")
  flags.DEFINE_bool("torch", True, "Also time the PyTorch ResFCN256 (if torch is installed).")
  flags.DEFINE_bool("xla_cpu_options", True, "Compile our steps with "
                    "bioface_jax.xla_options.cpu_compiler_options() (convolutions to Eigen).")
  absl_app.define_huge_pages_flag(note="Process-wide, so the PyTorch side gets them too.")


def make_jax_step(encoder: str, size: int, width: float, batch: int, compiler_options=None):
  """(jitted train step, its arguments, params): step(params, stats, opt, batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  cfg = prnet.PRNetConfig(encoder=encoder, width_multiplier=width, input_size=size,
                          bn_momentum=0.9)
  params, stats = prnet.init(jax.random.key(0), (batch, size, size, 3), cfg)
  tx = prnet.optimizer(cfg)
  rng = np.random.default_rng(0)
  batch_d = dict(image=jnp.asarray(rng.uniform(0, 1, (batch, size, size, 3)), jnp.float32),
                 posmap=jnp.asarray(rng.uniform(0, size, (batch, size, size, 3)), jnp.float32))

  @functools.partial(jax.jit, compiler_options=compiler_options)
  def step(params, stats, opt, b):
    (loss, (_, new_stats, _)), g = jax.value_and_grad(
        lambda p: prnet.compute_loss(p, stats, b, cfg, train=True), has_aux=True)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), new_stats, opt, loss

  return step, (params, stats, tx.init(params), batch_d), params


def jax_sides(encoder: str, size: int, width: float, batch: int, compiler_options=None) -> dict:
  """Train and inference callables with their compile times (first calls)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  cfg = prnet.PRNetConfig(encoder=encoder, width_multiplier=width, input_size=size,
                          bn_momentum=0.9)
  step, args, params = make_jax_step(encoder, size, width, batch, compiler_options)
  state = list(args[:3])
  batch_d = args[3]

  def train_once():
    out = step(*state, batch_d)
    jax.block_until_ready(out[3])
    state[:3] = out[:3]

  infer = jax.jit(lambda p, s, x: prnet.predict(p, s, x, cfg), compiler_options=compiler_options)

  def infer_once():
    jax.block_until_ready(infer(state[0], state[1], batch_d["image"]))

  t0 = time.perf_counter()
  train_once()
  c_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  infer_once()
  c_inf = time.perf_counter() - t0
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  return dict(params=n, train=train_once, infer=infer_once, train_compile_s=c_train,
              infer_compile_s=c_inf)


def torch_resfcn(width: float = 1.0):
  """ResFCN256 in PyTorch from prnet-spec.md §2 (TF SAME padding done explicitly)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.001)

  class Same(nn.Module):  # TF SAME conv: pad (k-s)//2 before, the rest after (even sizes).
    def __init__(self, cin, cout, k, s):
      super().__init__()
      self.conv = nn.Conv2d(cin, cout, k, s, bias=False)
      total = max(k - s, 0)
      self.pad = (total // 2, total - total // 2) * 2

    def forward(self, x):
      return self.conv(F.pad(x, self.pad))

  class Block(nn.Module):
    def __init__(self, cin, c, s):
      super().__init__()
      self.c1, self.b1 = Same(cin, c // 2, 1, 1), bn(c // 2)
      self.c2, self.b2 = Same(c // 2, c // 2, 4, s), bn(c // 2)
      self.c3 = Same(c // 2, c, 1, 1)
      self.sc = Same(cin, c, 1, s) if (s != 1 or cin != c) else None
      self.b3 = bn(c)

    def forward(self, x):
      y = F.relu(self.b1(self.c1(x)))
      y = F.relu(self.b2(self.c2(y)))
      y = self.c3(y)
      return F.relu(self.b3(y + (self.sc(x) if self.sc is not None else x)))

  class UpT(nn.Module):  # TF conv2d_transpose SAME: full transposed conv, then crop.
    def __init__(self, cin, cout, s):
      super().__init__()
      self.t = nn.ConvTranspose2d(cin, cout, 4, s, bias=False)
      self.s = s
      self.bn = bn(cout)

    def forward(self, x):
      y = self.t(x)
      n = x.shape[-1] * self.s
      total = y.shape[-1] - n
      a = total // 2
      return self.bn(y[..., a:a + n, a:a + n])

  class ResFCN(nn.Module):
    def __init__(self):
      super().__init__()
      base = max(1, round(16 * width))
      self.stem, self.sb = Same(3, base, 4, 1), bn(base)
      blocks, cin = [], base
      for mult in (2, 4, 8, 16, 32):
        for s in (2, 1):
          blocks.append(Block(cin, base * mult, s))
          cin = base * mult
      self.enc = nn.Sequential(*blocks)
      layers = ((512, 1), (256, 2), (256, 1), (256, 1), (128, 2), (128, 1), (128, 1), (64, 2),
                (64, 1), (64, 1), (32, 2), (32, 1), (16, 2), (16, 1), (3, 1), (3, 1), (3, 1))
      ups = []
      for k, (c, s) in enumerate(layers):
        c = c if k >= len(layers) - 3 else max(1, round(c * width))
        ups.append(UpT(cin, c, s))
        cin = c
      self.dec = nn.ModuleList(ups)

    def forward(self, x):
      x = self.enc(F.relu(self.sb(self.stem(x))))
      for k, up in enumerate(self.dec):
        x = up(x)
        x = torch.sigmoid(x) if k == len(self.dec) - 1 else F.relu(x)
      return x

  return ResFCN()


def torch_sides(size: int, width: float, batch: int) -> dict:
  """Train and inference callables of the PyTorch ResFCN256, with their first-call times."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  model = torch_resfcn(width)
  n = sum(p.numel() for p in model.parameters())
  opt = torch.optim.Adam(model.parameters(), 1e-4)
  x = torch.rand(batch, 3, size, size)
  y = torch.rand(batch, 3, size, size)
  w = torch.rand(size, size)

  def train_once():
    model.train()
    opt.zero_grad()
    loss = (w * ((model(x) - y) ** 2).sum(1).add(1e-12).sqrt()).sum() / w.sum()
    loss.backward()
    opt.step()

  def infer():
    model.eval()
    with torch.no_grad():
      model(x)

  t0 = time.perf_counter()
  train_once()
  c_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  infer()
  c_inf = time.perf_counter() - t0
  return dict(params=n, train=train_once, infer=infer, train_compile_s=c_train,
              infer_compile_s=c_inf, threads=torch.get_num_threads())


def main(argv):
  del argv
  absl_app.restart_with_huge_pages_if_asked()  # returns once the tunable is set
  import os  # pylint: disable=g-import-not-at-top
  import statistics  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  print(f"command: python -m eval.bench_prnet {' '.join(sys.argv[1:])}")
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} "
        f"({jax.devices()[0].platform}); batch {FLAGS.batch}, float32; {FLAGS.rounds} "
        f"interleaved rounds of {FLAGS.steps} calls; load average {os.getloadavg()[0]:.2f}")
  from bioface_jax import xla_options  # pylint: disable=g-import-not-at-top
  options = xla_options.cpu_compiler_options() if FLAGS.xla_cpu_options else {}
  print(f"JAX compiler options: {options or 'XLA defaults'}; GLIBC_TUNABLES (both sides): "
        f"{os.environ.get('GLIBC_TUNABLES', 'unset')}")
  have_torch = FLAGS.torch
  if have_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print("torch is not installed: the PyTorch rows are skipped")
      have_torch = False
  for cfg in FLAGS.configs:
    size, width = cfg.split(":")
    size, width = int(size), float(width)
    sides = {f"{enc} (JAX)": jax_sides(enc, size, width, FLAGS.batch, options)
             for enc in FLAGS.encoders}
    if have_torch:
      sides["resfcn (PyTorch)"] = torch_sides(size, width, FLAGS.batch)
    rates = {}
    for what in ("train", "infer"):
      t = bench_rounds.timed_rounds({k: v[what] for k, v in sides.items()}, FLAGS.rounds,
                                    FLAGS.steps)
      rates[what] = {k: FLAGS.batch / statistics.median(v) for k, v in t.items()}
      if have_torch and "resfcn (JAX)" in t:
        print(bench_rounds.format_row(f"ResFCN256 R {size} w {width} {what} vs PyTorch",
                                      bench_rounds.summary(t["resfcn (JAX)"],
                                                           t["resfcn (PyTorch)"], FLAGS.batch)))
    print("| encoder | R | w | params | train img/s | train compile s | infer img/s | "
          "infer compile s |")
    print("|---|---|---|---|---|---|---|---|")
    for k, r in sides.items():
      print(f"| {k} | {size} | {width} | {r['params']:,} | {rates['train'][k]:.2f} | "
            f"{r['train_compile_s']:.1f} | {rates['infer'][k]:.2f} | {r['infer_compile_s']:.1f} |",
            flush=True)
  print(f"load average at the end {os.getloadavg()[0]:.2f}")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
