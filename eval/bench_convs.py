"""Per-layer convolution micro-benchmark: forward, input gradient and kernel gradient.

  python -m eval.bench_convs [--layers vae,nenet,lcnet,vae_convs] [--options both|on|off]
      [--repeats 3]
  python -m eval.bench_convs --layers vae_convs --options on --torch   # beside PyTorch (oneDNN)

For the face VAE's (batch 16, 144 px), NENet's and LCNet's (32 images of 64², α = 1) convolution
shapes,
times three jitted functions per layer and formulation: the forward convolution, its input
gradient (VJP w.r.t. x) and its kernel gradient (VJP w.r.t. the kernel). Formulations: ``lax``
(``lax.conv_general_dilated`` / ``lax.conv_transpose``, what flax uses) and ``ours`` (the
library's `subpixel.conv_transpose` for stride-2 transposed convolutions,
`small_conv.conv_general_dilated` for tiny images and tiny strided outputs). ``--options`` compiles with XLA's defaults
(``off``), with `bioface_jax.xla_options.cpu_compiler_options()` (``on``: convolutions to Eigen,
not YNNPACK) or both. Prints the best of ``--repeats`` calls as process CPU milliseconds (robust
to other jobs on a shared machine) and wall milliseconds. Every formulation is checked against
lax to 1e-4 relative before it is timed. ``--torch`` adds PyTorch's kernels (oneDNN, channels-last
tensors, ``torch.nn.grad`` for the two gradients) for the stride-1 layers, on the same arrays:
the per-layer answer to "is it our program or the convolution library?". The ``vae_convs`` set
is every stride-1 convolution shape of the face VAE at 144 px, batch 16.
"""

from __future__ import annotations

import time

from absl import flags

from train import absl_app

FLAGS = flags.FLAGS
DN = ("NHWC", "HWIO", "NHWC")


def define_flags():
  flags.DEFINE_list("layers", ["vae", "nenet"], "Layer sets: vae, nenet, lcnet, vae_convs.")
  flags.DEFINE_enum("options", "both", ["both", "on", "off"], "XLA:CPU compile options.")
  flags.DEFINE_integer("repeats", 2, "Timed calls per function (the best counts).")
  absl_app.define_huge_pages_flag(note="Process-wide, so the PyTorch rows get them too.")
  flags.DEFINE_bool("torch", False, "Also time PyTorch's (oneDNN) convolution and its two "
                    "gradients for the stride-1 layers (needs torch).")


def layer_sets():
  """name -> list of (label, x shape, kernel shape, kind, padding); kind conv (stride 1),
  sconv (stride 2), convT (Keras transposed) or deconv (PyTorch transposed)."""
  vae = [("enc conv 144² 32->32", (16, 144, 144, 32), (3, 3, 32, 32), "conv", "SAME"),
         ("enc conv 36² 128->128", (16, 36, 36, 128), (3, 3, 128, 128), "conv", "SAME"),
         ("enc conv 2² 256->512", (16, 2, 2, 256), (3, 3, 256, 512), "conv", "SAME"),
         ("dec convT 2->4 256->256", (16, 2, 2, 256), (3, 3, 256, 256), "convT", "SAME"),
         ("dec convT 9->18 256->128", (16, 9, 9, 256), (3, 3, 128, 256), "convT", "SAME"),
         ("dec convT 36->72 64->32", (16, 36, 36, 64), (3, 3, 32, 64), "convT", "SAME"),
         ("dec convT 72->144 32->32", (16, 72, 72, 32), (3, 3, 32, 32), "convT", "SAME")]
  nenet = [("e3 conv 32² 128->128", (32, 32, 32, 128), (3, 3, 128, 128), "conv", "SAME"),
           ("e5 conv 16² 256->256", (32, 16, 16, 256), (3, 3, 256, 256), "conv", "SAME"),
           ("e6 deconv 16->32 256->128", (32, 16, 16, 256), (4, 4, 256, 128), "deconv",
            ((2, 2), (2, 2)))]
  pt1 = ((1, 1), (1, 1))  # PyTorch padding 1
  lcnet = [("c6 conv 8->4 128->256 s2", (32, 8, 8, 128), (3, 3, 128, 256), "sconv", pt1),
           ("k2 conv 4->2 256->256 s2", (32, 4, 4, 256), (3, 3, 256, 256), "sconv", pt1),
           ("k3 conv 2->1 256->256 s2", (32, 2, 2, 256), (3, 3, 256, 256), "sconv", pt1),
           ("k4 conv 1->1 256->256 s2", (32, 1, 1, 256), (3, 3, 256, 256), "sconv", pt1)]
  vae_convs = [(f"conv {s}² {ci}->{co}", (16, s, s, ci), (3, 3, ci, co), "conv", "SAME")
               for s, ci, co in ((144, 3, 32), (144, 32, 32), (72, 32, 64), (72, 64, 64),
                                 (36, 64, 128), (36, 128, 128), (18, 128, 256), (18, 256, 256),
                                 (9, 256, 256), (144, 32, 3), (144, 32, 1))]
  return {"vae": vae, "nenet": nenet, "lcnet": lcnet, "vae_convs": vae_convs}


def torch_parts(x, w, padding):
  """PyTorch's forward, input gradient and kernel gradient of a stride-1 NHWC / HWIO conv,
  as zero-argument callables on channels-last copies of the same arrays."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top
  (ylo, yhi), (xlo, xhi) = lax.padtype_to_pads(x.shape[1:3], w.shape[:2], (1, 1), padding) \
      if isinstance(padding, str) else padding
  if ylo != yhi or xlo != xhi:
    raise ValueError(f"--torch needs symmetric padding, got {padding}")
  cl = torch.channels_last
  xt = torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=cl)
  wt = torch.from_numpy(np.asarray(w)).permute(3, 2, 0, 1).contiguous()
  with torch.no_grad():
    yt = torch.nn.functional.conv2d(xt, wt, padding=(ylo, xlo))
  gt = torch.randn(yt.shape).contiguous(memory_format=cl)
  pad = (ylo, xlo)

  def run(fn):
    def call():
      with torch.no_grad():
        return fn()
    return call
  return {"forward": run(lambda: torch.nn.functional.conv2d(xt, wt, padding=pad)),
          "input grad": run(lambda: torch.nn.grad.conv2d_input(xt.shape, wt, gt, padding=pad)),
          "kernel grad": run(lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, gt,
                                                                 padding=pad))}


def formulations(kind, padding):
  from jax import lax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import small_conv  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import subpixel  # pylint: disable=g-import-not-at-top
  if kind in ("conv", "sconv"):
    s = (1, 1) if kind == "conv" else (2, 2)
    return {"lax": lambda x, w: lax.conv_general_dilated(x, w, s, padding, dimension_numbers=DN),
            "ours": lambda x, w: small_conv.conv_general_dilated(x, w, s, padding,
                                                                 dimension_numbers=DN)}
  tk = kind == "convT"  # Keras layout (face VAE) vs PyTorch-style explicit padding (SDPS)
  return {"lax": lambda x, w: lax.conv_transpose(x, w, (2, 2), padding, dimension_numbers=DN,
                                                 transpose_kernel=tk),
          "ours": lambda x, w: subpixel.conv_transpose(x, w, (2, 2), padding, tk)}


def _parts(f):
  """Forward, input gradient and kernel gradient of the convolution f(x, w), as f(x, w, g)."""
  import jax  # pylint: disable=g-import-not-at-top
  return {"forward": (lambda x, w, g: f(x, w)),
          "input grad": (lambda x, w, g: jax.vjp(lambda a: f(a, w), x)[1](g)[0]),
          "kernel grad": (lambda x, w, g: jax.vjp(lambda b: f(x, b), w)[1](g)[0])}


def _best(fn, args, repeats):
  """Best CPU and wall milliseconds of `repeats` calls of fn(*args), after one warm call."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn(*args))
  cpu, wall = [], []
  for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    cpu.append(time.process_time() - c0)
    wall.append(time.perf_counter() - w0)
  return min(cpu) * 1e3, min(wall) * 1e3


def main(argv):
  del argv
  absl_app.restart_with_huge_pages_if_asked()  # returns once the tunable is set
  import os  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import xla_options  # pylint: disable=g-import-not-at-top
  variants = {"off": {}, "on": xla_options.cpu_compiler_options()}
  chosen = ["off", "on"] if FLAGS.options == "both" else [FLAGS.options]
  print(f"load average {os.getloadavg()[0]:.2f}; CPU ms / wall ms, best of {FLAGS.repeats}; "
        f"GLIBC_TUNABLES: {os.environ.get('GLIBC_TUNABLES', 'unset')}")
  print("| layer | options | formulation | forward | input grad | kernel grad |")
  print("|---|---|---|---|---|---|")
  for name in FLAGS.layers:
    for label, xs, ws, kind, padding in layer_sets()[name]:
      rng = np.random.default_rng(0)
      x = jnp.asarray(rng.normal(size=xs), jnp.float32)
      w = jnp.asarray(rng.normal(size=ws), jnp.float32)
      forms = formulations(kind, padding)
      g = jnp.asarray(rng.normal(size=jax.eval_shape(forms["lax"], x, w).shape), jnp.float32)
      for opt in chosen:
        ref_parts = _parts(forms["lax"])
        for fname, f in forms.items():
          parts = _parts(f)
          cells = []
          for part, fn in parts.items():
            fn = jax.jit(fn, compiler_options=variants[opt])
            if fname != "lax":
              ref = jax.jit(ref_parts[part], compiler_options=variants[opt])(x, w, g)
              got = fn(x, w, g)
              gap = float(jnp.abs(got - ref).max() / jnp.abs(ref).max())
              if gap > 1e-4:
                raise AssertionError(f"{label} {part}: {fname} differs from lax by {gap:.2g}")
            cpu, wall = _best(fn, (x, w, g), FLAGS.repeats)
            cells.append(f"{cpu:.1f} / {wall:.1f}")
          print(f"| {label} | {opt} | {fname} | " + " | ".join(cells) + " |", flush=True)
      if FLAGS.torch and kind == "conv":
        cells = [f"{c:.1f} / {t:.1f}" for c, t in
                 (_best(fn, (), FLAGS.repeats) for fn in torch_parts(x, w, padding).values())]
        print(f"| {label} | - | PyTorch | " + " | ".join(cells) + " |", flush=True)
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
