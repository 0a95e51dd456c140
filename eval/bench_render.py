"""Benchmark of `physics.render`: images/s forward and forward+backward.

    python -m eval.bench_render [--batch 64] [--size 64] [--repeats 10]

Compares the spectral and folded albedo paths (see `bioface_jax.physics.render`) and a plain
vectorised NumPy float32 implementation of the same equations. Prints one table with the
machine, the JAX backend and the command.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics


def numpy_render(lut, cam_mean, cam_pcs, illum, fmel, fblood, shading, specular, b):
  """The same image formation in float32 NumPy (illuminant given), for comparison."""
  size = lut.shape[0]
  s = np.maximum(0, b @ cam_pcs.T + cam_mean).reshape(len(b), 3, 33)
  lc = np.einsum("bcl,bl->bc", s, illum)
  r = np.clip((fblood + 1) / 2 * (size - 1), 0, size - 1)
  c = np.clip((fmel + 1) / 2 * (size - 1), 0, size - 1)
  r0 = np.minimum(np.floor(r), size - 2).astype(np.int32)
  c0 = np.minimum(np.floor(c), size - 2).astype(np.int32)
  wr, wc = (r - r0)[..., None], (c - c0)[..., None]
  refl = ((1 - wr) * ((1 - wc) * lut[r0, c0] + wc * lut[r0, c0 + 1])
          + wr * ((1 - wc) * lut[r0 + 1, c0] + wc * lut[r0 + 1, c0 + 1]))
  albedo = np.einsum("bhwl,bcl->bhwc", refl, s * illum[:, None, :])
  raw = shading[..., None] * albedo + specular[..., None] * lc[:, None, None, :]
  wb = raw / lc[:, None, None, :]
  return wb  # the colour transform is 3x3 per pixel; the cost is in the lines above


def _time(fn, repeats):
  jax.block_until_ready(fn())  # compile / warm up
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn())
  return (time.perf_counter() - start) / repeats


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--size", type=int, default=64, help="image height and width")
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)

  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  rng = np.random.default_rng(0)
  shape = (args.batch, args.size, args.size)
  inputs = dict(
      fmel=rng.uniform(-1, 1, shape), fblood=rng.uniform(-1, 1, shape),
      shading=rng.uniform(0, 2, shape), specular=rng.uniform(0, 0.2, shape),
      weights=rng.dirichlet(np.ones(14), args.batch), t=rng.uniform(1, 22, args.batch),
      b=rng.uniform(-3, 3, (args.batch, 2)))
  inputs = {k: jnp.asarray(v, jnp.float32) for k, v in inputs.items()}

  rows = []
  for path in ("spectral", "folded"):
    forward = jax.jit(lambda x, p=path: physics.render(spectra, lut, **x, path=p)["linear_srgb"])
    def loss(x, p=path):
      return jnp.mean(physics.render(spectra, lut, **x, path=p)["linear_srgb"])
    backward = jax.jit(jax.value_and_grad(loss))
    rows.append((f"jax {path}", _time(lambda f=forward: f(inputs), args.repeats),
                 _time(lambda f=backward: f(inputs), args.repeats)))

  np_in = {k: np.asarray(v) for k, v in inputs.items()}
  illum = np.asarray(physics.illuminant(spectra, inputs["weights"], inputs["t"]))
  np_args = (np.asarray(lut), np.asarray(spectra.camera_mean), np.asarray(spectra.camera_pcs),
             illum, np_in["fmel"], np_in["fblood"], np_in["shading"], np_in["specular"],
             np_in["b"])
  rows.append(("numpy float32", _time(lambda: numpy_render(*np_args), max(2, args.repeats // 3)),
               None))

  print(f"command: python -m eval.bench_render {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
  print(f"batch {args.batch} of {args.size}x{args.size} (render's default path is 'folded')")
  print(f"{'implementation':<16} {'forward img/s':>14} {'fwd+bwd img/s':>14}")
  for name, fwd, bwd in rows:
    bwd_text = f"{args.batch / bwd:14.0f}" if bwd else f"{'-':>14}"
    print(f"{name:<16} {args.batch / fwd:14.0f} {bwd_text}")


if __name__ == "__main__":
  main()
