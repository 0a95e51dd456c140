"""Training throughput of BioFaceNet: images/s of the full train step (forward, loss, backward,
optimiser update), data-parallel over every visible device.

    python -m eval.bench_train [--batch 64] [--size 64] [--steps 5] [--variants authors default]

``authors`` is the authors' architecture (32..512 filters, FC 512, SGD); ``default`` is the
reduced-width network of the default config. Input batches are synthetic faces
(`data.synth.faces`, with the ground truth of the supervised loss terms when the config uses
them) placed on the devices before timing, so the number measures the model, the renderer and
the loss, not the input pipeline.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np

from bioface_jax import physics
from bioface_jax.models import biofacenet
from bioface_jax.train_lib import parallel
from data.synth import faces as synth_faces
from train import biofacenet_task
from train.configs import biofacenet as configs

VARIANTS = {"authors": "paper", "default": "default"}


def measure(variant: str, batch: int, size: int, steps: int, mesh) -> tuple[float, float]:
  """(seconds to compile, images/s) of the jitted train step."""
  config = configs.get_config(VARIANTS[variant])
  config.batch_size = batch
  config.data.size = size
  spectra = physics.load_spectra()
  task = biofacenet_task.BioFaceNetTask(config, spectra, physics.skin_lut(spectra),
                                        biofacenet_task.model_config(config), None, None)
  faces = synth_faces.generate_faces(batch, size, seed=0)
  host_batch = dict(image=faces["image"], mask=faces["mask"], shading=faces["diffuse"])
  if task.model.supervised:  # the default config's truth terms need the synthetic truth
    host_batch.update({k: faces[k] for k in biofacenet.TRUTH_KEYS})
  host_batch = {k: np.asarray(v, np.float32) for k, v in host_batch.items()}
  device_batch = parallel.shard_batch(host_batch, mesh)
  rep = parallel.replicated_sharding(mesh)
  state = jax.jit(task.init, out_shardings=rep)(jax.random.key(0), device_batch)
  step = jax.jit(task.train_step, donate_argnums=0)
  key = jax.random.key(1)
  start = time.perf_counter()
  state, metrics = step(state, device_batch, key)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, device_batch, key)
  jax.block_until_ready(metrics)
  if not np.isfinite(float(metrics["loss"])):
    raise FloatingPointError(f"{variant}: non-finite loss in the benchmark")
  return compile_s, batch * steps / (time.perf_counter() - start)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
  args = parser.parse_args(argv)
  mesh = parallel.make_mesh()
  device = jax.devices()[0]
  print(f"command: python -m eval.bench_train {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__}, "
        f"{len(jax.devices())} x {device.platform} ({device.device_kind})")
  print(f"batch {args.batch} of {args.size}x{args.size}, {args.steps} timed steps")
  print(f"{'variant':<10} {'compile s':>10} {'train img/s':>12}")
  for variant in args.variants:
    compile_s, rate = measure(variant, args.batch, args.size, args.steps, mesh)
    print(f"{variant:<10} {compile_s:10.1f} {rate:12.1f}", flush=True)


if __name__ == "__main__":
  main()
