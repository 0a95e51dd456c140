"""Cost of the synthetic world's light, camera and background modules per image (host, 1 core).

    python -m eval.bench_light_camera [--sizes 64 256] [--n 40] [--render-scale 2]

For each output size S, times on the host (NumPy, one process) over ``--n`` draws:
* ``lighting``: `lighting.sample_rig` + `lighting.shade` (cast shadows, ambient occlusion,
  every light) on a rasterised synthetic face at the render size S * render-scale;
* ``background``: `backgrounds.sample_background` at S * render-scale;
* ``camera``: `camera_chain.sample_camera` + `apply_camera` from S * render-scale to S.
Prints the median and 90th percentile in milliseconds, and the machine's load average (other
jobs inflate the numbers; measure under the shared lock on an idle machine).

``--figure PNG`` also writes a sample sheet: one synthetic face under eight random rigs (row
1, skin through BioFaceNet's renderer, neutral camera), the same face over backgrounds through
eight random cameras (row 2), and eight backgrounds (row 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _time(fn, n: int) -> np.ndarray:
  fn(0)  # warm-up (imports, caches)
  out = []
  for i in range(n):
    start = time.perf_counter()
    fn(i + 1)
    out.append(time.perf_counter() - start)
  return np.array(out) * 1e3


def sample_sheet(path: str, size: int = 128, columns: int = 8) -> None:
  """Rigs on one face, cameras on composed scenes, backgrounds (see the module docstring)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from data.synth import (appearance, backgrounds, camera_chain, geometry,  # pylint: disable=g-import-not-at-top
                          light_render, lighting)
  template = geometry.load_template()
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  rng = np.random.default_rng(7)
  render = 2 * size
  geo = geometry.rasterise(geometry.sample_shape(rng, template), template,
                           geometry.Pose(yaw=20, pitch=-5, scale=0.7), render)
  skin = appearance.sample_appearance(rng, template)
  maps = {k: appearance.sample_uv(v, geo["uv"], geo["mask"]) for k, v in skin.items()}
  mask = geo["mask"]
  rows = [[], [], []]
  for i in range(columns):
    rig = lighting.sample_rig(np.random.default_rng([1, i]),
                              lighting.LightOptions(mixed_probability=0.5))
    groups = lighting.shade(rig, geo["normals"], geo["depth"], mask, 20.0)["groups"]
    stack = lambda key: np.stack([g[key] for g in groups])  # noqa: E731
    face = np.asarray(light_render.render_skin(
        spectra, lut, maps["fmel_uv"], maps["fblood_uv"], stack("diffuse"),
        0.3 * maps["spec_uv"] * stack("specular"), stack("weights"), stack("t"),
        np.asarray(rig["b"], np.float32))["linear_srgb"])
    face = face * 0.18 / max(float((face[mask] @ [0.2126, 0.7152, 0.0722]).mean()), 1e-6)
    back = backgrounds.sample_background(np.random.default_rng([2, i]), render)["linear"]
    rows[0].append(camera_chain.apply_camera(np.where(mask[..., None], face, 0.02),
                                             camera_chain.neutral_camera(), None, size))
    scene = np.where(mask[..., None], face, back).astype(np.float32)
    knobs = camera_chain.sample_camera(np.random.default_rng([3, i]))
    rows[1].append(camera_chain.apply_camera(scene, knobs, np.random.default_rng(i), size))
    rows[2].append(camera_chain.apply_camera(back, camera_chain.neutral_camera(), None, size))
  sheet = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
  Image.fromarray(sheet).save(path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m eval.bench_light_camera",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--n", type=int, default=40, help="draws per measurement")
  parser.add_argument("--render-scale", type=int, default=2,
                      help="render size / output size (the camera downsamples by it)")
  parser.add_argument("--figure", default=None, help="write a sample sheet (PNG) and exit")
  args = parser.parse_args(argv)
  if args.figure:
    sample_sheet(args.figure)
    print(f"wrote {args.figure}")
    return 0
  from data.synth import backgrounds, camera_chain, geometry, lighting  # pylint: disable=g-import-not-at-top
  template = geometry.load_template()
  print(f"load average before: {os.getloadavg()[0]:.2f}; {args.n} draws; render scale "
        f"{args.render_scale}")
  print("| output | render | part | median ms | p90 ms |")
  print("|---|---|---|---|---|")
  for size in args.sizes:
    render = size * args.render_scale
    rng = np.random.default_rng(0)
    geo = geometry.rasterise(geometry.sample_shape(rng, template), template,
                             geometry.sample_pose(rng), render)
    image = np.random.default_rng(1).uniform(0, 0.5, (render, render, 3)).astype(np.float32)

    def light(i):
      rig = lighting.sample_rig(np.random.default_rng([2, i]))
      lighting.shade(rig, geo["normals"], geo["depth"], geo["mask"], 20.0)

    def background(i):
      backgrounds.sample_background(np.random.default_rng([3, i]), render)

    def camera(i):
      knobs = camera_chain.sample_camera(np.random.default_rng([4, i]))
      camera_chain.apply_camera(image, knobs, np.random.default_rng(i), size)

    for name, fn in (("lighting", light), ("background", background), ("camera", camera)):
      ms = _time(fn, args.n)
      print(f"| {size} | {render} | {name} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} |",
            flush=True)
  print(f"load average after: {os.getloadavg()[0]:.2f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
