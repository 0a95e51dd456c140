"""Benchmark of the synthetic face world: scenes per second, memory and default data-set time.

    python -m eval.bench_synth [--count 64] [--workers 0 2] [--skip-old]

Times `data.synth.scene_render.SceneGenerator` end to end (layout on the host, the jitted
spectral render, the camera, the truth reduction) after a warm-up batch (compilation and worker start-up excluded)
for the framings the systems use: BioFaceNet's 64x64 face crop (rendered at 128 px), the face
VAE's 48x48 portrait (at 96 px) and 256x256 portraits (the PRNet / large-scale size, rendered
at 256 px). With ``--workers 2`` the layout runs in two spawned processes (the machine's two
cores). The skin-only faces of `data.synth.faces` are timed beside them unless ``--skip-old``.
Prints one table with the load average, the peak resident memory of this process and its
workers, and the implied time of each default data set (BioFaceNet: 4096 faces; face VAE:
2048 + 256 test scenes).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

if __name__ == "__main__":
  os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # Small matrix products: see synth_faces.

from data.synth import faces, scene, scene_render  # noqa: E402

CASES = (("BioFaceNet face crop", "face", 64), ("face VAE portrait", "portrait", 48),
         ("portrait 256", "portrait", 256))
DEFAULT_SETS = {"BioFaceNet face crop": 4096, "face VAE portrait": 2048 + 256}


def _rate(make_batches, count: int, batch: int) -> float:
  """Items per second over `count` items after one warm-up batch."""
  for _ in make_batches(range(10**6, 10**6 + batch)):
    pass
  start = time.perf_counter()
  for _ in make_batches(range(count)):
    pass
  return count / (time.perf_counter() - start)


def _peak_mb() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return (own + kids) / 1024.0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--count", type=int, default=64, help="scenes timed per case")
  parser.add_argument("--batch", type=int, default=16, help="scenes per render call")
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                      help="layout worker processes to time (0 = in this process)")
  parser.add_argument("--cases", nargs="+", default=[c[0] for c in CASES],
                      help="which cases to time (default all)")
  parser.add_argument("--skip-old", action="store_true",
                      help="do not time the previous skin-only faces")
  args = parser.parse_args(argv)
  unknown = set(args.cases) - {c[0] for c in CASES}
  if unknown:
    parser.error(f"unknown cases {sorted(unknown)}; choose from {[c[0] for c in CASES]}")
  load = os.getloadavg()
  rows = []
  for name, framing, size in CASES:
    if name not in args.cases:
      continue
    for workers in args.workers:
      with scene_render.SceneGenerator(scene.SceneOptions(framing=framing, size=size), 0,
                                       args.batch, workers) as gen:
        rate = _rate(gen.batches, args.count, args.batch)
      rows.append((f"scenes: {name}", size, gen.options.render_size, workers, rate))
      print(f"  {rows[-1][0]} {size}px workers={workers}: {rate:.2f}/s", file=sys.stderr,
            flush=True)
    if not args.skip_old and framing == "face":
      for workers in args.workers:
        gen = faces.FaceGenerator(size, 0, None, args.batch, workers)
        rate = _rate(gen.batches, args.count, args.batch)
        rows.append(("old skin-only faces", size, size, workers, rate))
  print(f"\nbench_synth on {platform.node()} ({os.cpu_count()} CPUs), load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
  print(f"command: python -m eval.bench_synth {' '.join(argv or sys.argv[1:])}")
  print(f"{'generator':34s} {'size':>5s} {'render':>7s} {'workers':>8s} {'per s':>8s} "
        f"{'default set':>14s}")
  for name, size, render, workers, rate in rows:
    key = name.removeprefix("scenes: ")
    n = DEFAULT_SETS.get(key) if name.startswith("scenes") else None
    eta = f"{n} in {n / rate / 60:.1f} min" if n else ""
    print(f"{name:34s} {size:5d} {render:7d} {workers:8d} {rate:8.2f} {eta:>14s}")
  print(f"peak resident memory (this process + workers): {_peak_mb():.0f} MB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
