"""Per-stage cost of the scene generator (`data.synth.scene_render.SceneGenerator`).

    python -m eval.profile_synth [--framing face] [--size 64] [--count 64] [--batch 16]
        [--light sh|rig] [--camera srgb|chain] [--background textures|photo]

Runs the generator as `eval.bench_synth` does (layout in this process, after a warm-up batch;
the default world options, as the benchmark; BioFaceNet's `scenes` config uses
``--light rig --camera chain --background photo``) with timers wrapped around the functions
each stage calls, and prints milliseconds per scene per stage. A stage's time is exclusive: a
timed function called inside another (an occluder's rasterisation, say) counts for its own
stage only. What no timer covers (the glue of `scene.sample_scene` and of `SceneGenerator`'s
batching, camera call and truth reduction) is shown as "layout, other" and "truth reduction
and batching". The timer waits for each spectral render, which `SceneGenerator.batches`
otherwise runs beside the next batch's layout, so the total is a little above the
benchmark's time per scene.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import time

if __name__ == "__main__":
  os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # As eval.bench_synth.

from data.synth import (appearance, face_parts, geometry, head, light_camera,  # noqa: E402
                        occluders, scene, scene_render, shape_space, skin_detail, textures)

# (stage, module, function names). Order = the order of the printed table.
STAGES = (
    ("shape space and pose", shape_space, ("sample_shape",)),
    ("shape space and pose", scene, ("framing_pose",)),
    ("shape space and pose", geometry, ("screen_transform",)),
    ("face rasterisation", geometry, ("rasterise",)),
    ("skin maps (UV) and detail", appearance, ("sample_appearance", "sample_uv")),
    ("skin maps (UV) and detail", skin_detail, ("height", "bumped_normals")),
    ("skin maps (UV) and detail", textures, ("fbm",)),
    ("face parts (eyes, mouth, brows, lashes, beard)", face_parts,
     ("surface_labels", "sample_eyes", "eye_albedo", "mouth_albedo", "eye_gloss",
      "sample_overlays", "beard_alpha", "brow_alpha", "lash_alpha")),
    ("head and body (raycast)", head, ("skull_hits", "body_hits", "cloth_albedo")),
    ("hair (raycast + strands)", head, ("hair_layer", "kajiya_kay")),
    ("occluders (people, edge, glasses)", occluders,
     ("other_person", "edge_occluder", "glasses")),
    ("lighting (rig, shading)", light_camera, ("sample_rig", "shade", "dominant_direction")),
    ("overlay compositing", occluders, ("composite",)),
    ("background", scene, ("background",)),
    ("camera (apply_camera)", light_camera, ("apply_camera",)),
    ("spectral render (jitted, per batch)", scene_render, ("_render",)),
)
LAYOUT_OTHER, RENDER_OTHER = "layout, other", "truth reduction and batching"


class StageTimer:
  """Exclusive wall time per stage of wrapped functions (a stack subtracts nested calls)."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)
    self._stack = []  # [stage, child seconds]

  def wrap(self, stage: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
      self._stack.append([stage, 0.0])
      start = time.perf_counter()
      try:
        out = fn(*args, **kwargs)
        if stage.startswith("spectral"):  # Asynchronous dispatch: wait for the result.
          out = {k: v.block_until_ready() for k, v in out.items()}
        return out
      finally:
        elapsed = time.perf_counter() - start
        _, children = self._stack.pop()
        self.seconds[stage] += elapsed - children
        if self._stack:
          self._stack[-1][1] += elapsed
    return timed


def install(timer: StageTimer) -> list:
  """Wraps the stage functions in place; returns what `uninstall` restores."""
  saved = []
  targets = list(STAGES) + [(LAYOUT_OTHER, scene, ("sample_scene",)),
                            (RENDER_OTHER, scene_render.SceneGenerator, ("_start", "_finish"))]
  for stage, owner, names in targets:
    for name in names:
      fn = getattr(owner, name)
      saved.append((owner, name, fn))
      setattr(owner, name, timer.wrap(stage, fn))
  # scene_render calls scene.sample_scene through its own task function: same object.
  return saved


def uninstall(saved: list) -> None:
  for owner, name, fn in reversed(saved):
    setattr(owner, name, fn)


def profile(options: scene.SceneOptions, count: int, batch: int) -> tuple[dict, float]:
  """(ms per scene per stage, total ms per scene) over `count` scenes after one warm-up batch."""
  gen = scene_render.SceneGenerator(options, 0, batch, 0)
  for _ in gen.batches(range(10**6, 10**6 + batch)):
    pass
  timer = StageTimer()
  saved = install(timer)
  try:
    start = time.perf_counter()
    for _ in gen.batches(range(count)):
      pass
    total = time.perf_counter() - start
  finally:
    uninstall(saved)
  return {k: 1e3 * v / count for k, v in timer.seconds.items()}, 1e3 * total / count


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--framing", default="face", choices=scene.FRAMINGS)
  parser.add_argument("--size", type=int, default=64, help="output size (face: rendered at 2x)")
  parser.add_argument("--count", type=int, default=64, help="scenes timed")
  parser.add_argument("--batch", type=int, default=16, help="scenes per render call")
  parser.add_argument("--light", default="sh", choices=("sh", "rig"))
  parser.add_argument("--camera", default="srgb", choices=("srgb", "chain"))
  parser.add_argument("--background", default="textures", choices=("textures", "photo"))
  args = parser.parse_args(argv)
  options = scene.SceneOptions(framing=args.framing, size=args.size, light=args.light,
                               camera=args.camera, background=args.background)
  load = os.getloadavg()
  per_stage, total = profile(options, args.count, args.batch)
  print(f"profile_synth: {args.framing} {args.size} px (rendered at {options.render_size}), "
        f"light {args.light}, camera {args.camera}, background {args.background}, "
        f"{args.count} scenes, batch {args.batch}; load {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at start")
  print(f"{'stage':48s} {'ms/scene':>9s} {'share':>6s}")
  order = list(dict.fromkeys([s for s, _, _ in STAGES] + [LAYOUT_OTHER, RENDER_OTHER]))
  for stage in order:
    ms = per_stage.get(stage, 0.0)
    print(f"{stage:48s} {ms:9.2f} {100 * ms / total:5.1f}%")
  print(f"{'total (wall, incl. timer overhead)':48s} {total:9.2f}  = {1e3 / total:.2f} scenes/s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
