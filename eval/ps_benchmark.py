"""Photometric-stereo benchmark: mean angular error vs number of input images.

  python -m eval.ps_benchmark --runs sdps=runs/sdps_nenet,fused=runs/sdps_fused \\
      --sets objects,faces --counts 1,2,4,8,16,32,64 --scenes 16 --out results.json

For each held-out synthetic set (``objects``: spheres + blobs with specular materials, cast
shadows and noise; ``lambertian``; ``faces``) and each count N, every scene's 64 fixed lights are
subsampled with nested permutations π = default_rng([seed, set, scene, draw]).permutation, N
using π[:N]. Rows: ``woodham_l2`` (true lights and intensities, all observations) and
``woodham`` (true lights, shadows dropped) — "—" for N < 3; ``woodham_lcnet`` (Woodham with
LCNet's lights and intensities); each trained run (``--runs label=WORKDIR``: an ``lcnet`` run
gives light errors only, a ``nenet`` run is LCNet + NENet = SDPS-Net, ``fused``, ``psfcn``);
LCNet's light direction (°) and intensity (scale-invariant) errors. ``label=NENET+LCNET``
runs a ``nenet`` run's NENet on another LCNet run's lights, ``label=NENET+true`` on the true
lights (ablations without retraining). Each run's parameter count
and inference time per scene (N = 16) are listed. ``--data.dir`` adds DiLiGenT (the 10 objects,
96 images, ``all`` column, ``--draws`` subsets). Published numbers and the seed report's tables
are printed beside ours. Timings are wall-clock on whatever machine runs this.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

from train import absl_app

FLAGS = flags.FLAGS
DILIGENT_SET_ID = 3  # light-subset stream of DiLiGenT; synthetic sets use their TEST_SETS index


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_list("runs", [], "label=WORKDIR of train.sdps runs (lcnet, nenet, fused, psfcn) or "
                    "exports (train.export, train.import_weights sdps_torch); "
                    "label=NENET_WORKDIR+LCNET_WORKDIR runs that NENet on another LCNet's "
                    "lights, label=NENET_WORKDIR+true on the true lights.")
  flags.DEFINE_bool("mirror", False, "also score every run with mirror averaging (its "
                    "networks' answers on each scene and on its left-right mirror image, "
                    "averaged: bioface_jax.models.sdps_mirror), as rows LABEL+mirror.")
  flags.DEFINE_list("sets", ["objects", "faces"], "objects, lambertian, faces, faces_lit, "
                    "scenes (face-scene world portraits under the faces set's lights), "
                    "diligent.")
  flags.DEFINE_list("counts", ["1", "2", "4", "8", "16", "32", "64"], "numbers of input images.")
  flags.DEFINE_integer("scenes", 16, "held-out scenes per synthetic set.")
  flags.DEFINE_integer("size", 64, "synthetic scene size (pixels).")
  flags.DEFINE_integer("draws", 0, "subset draws (0 = 1 synthetic, 3 DiLiGenT).")
  flags.DEFINE_integer("seed", 0, "test-set and subset seed.")
  flags.DEFINE_string("data.dir", "", "DiLiGenT root (adds the diligent set).")
  flags.DEFINE_string("out", "", "write all numbers as JSON here.")
  flags.DEFINE_string("markdown", "", "also write the tables (markdown) to this file.")


from eval.ps_methods import Method  # noqa: E402


def _say(msg):
  print(msg, file=sys.stderr, flush=True)


def _fmt(v, digits=2):
  return "—" if v is None else f"{v:.{digits}f}"


def evaluate_set(name, data, methods, counts, draws, seed):
  """data: list of scenes {images (64|96, H, W, 3), mask, normals, dirs, intensities}.
  Returns {row: {count: value}} averaged over scenes and draws, plus timings."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  rows: dict[str, dict[str, list]] = {}
  timing = {}

  def add(row, col, value):
    rows.setdefault(row, {}).setdefault(col, []).append(float(value))

  from data.photometric import synth  # pylint: disable=g-import-not-at-top
  # The light subsets' stream: a set relit under another's lights draws that set's subsets.
  set_id = DILIGENT_SET_ID if name == "diligent" else synth.TEST_SETS.index(synth.light_set(name))
  same_shape = len({d["images"].shape for d in data}) == 1
  groups = [data] if same_shape else [[d] for d in data]
  for count in counts:
    for draw in range(draws):
      for gi, group in enumerate(groups):
        subs = []
        for si, d in enumerate(group):
          idx = gi if not same_shape else si
          total = len(d["images"])
          n = total if count == "all" else int(count)
          if n > total:
            subs = None
            break
          perm = np.random.default_rng([seed, set_id, idx, draw]).permutation(total)[:n]
          subs.append(perm)
        if subs is None:
          continue
        images = np.stack([d["images"][p] for d, p in zip(group, subs)])
        dirs = np.stack([d["dirs"][p] for d, p in zip(group, subs)])
        ints = np.stack([d["intensities"][p] for d, p in zip(group, subs)])
        mask = np.stack([d["mask"] for d in group])
        gt = np.stack([d["normals"] for d in group])
        n = images.shape[1]
        if n >= 3:
          for row, th in (("woodham_l2", None), ("woodham", 0.0)):
            est, _ = ps.woodham(images, dirs, ints, mask, shadow_threshold=th)
            for v in np.asarray(ps.mean_angular_error(est, gt, mask)):
              add(row, count, v)
        for m in methods:
          t0 = time.perf_counter()
          out = m(images, mask, dirs, ints)
          dt = time.perf_counter() - t0
          if count == "16" and draw == 0:
            out = m(images, mask, dirs, ints)  # the first call compiled; time the second
            timing[m.label] = (time.perf_counter() - t0 - dt) / len(group) * 1000
          if "normals" in out:
            for v in np.asarray(ps.mean_angular_error(out["normals"], gt, mask)):
              add(m.label, count, v)
          if "dirs" in out:
            lab = m.label if m.kind == "lcnet" else f"{m.label}/lcnet"
            for v in np.asarray(ps.light_direction_error(out["dirs"], dirs)).mean(-1):
              add(f"{lab} light dir (°)", count, v)
            if n >= 2:
              for v in np.asarray(ps.intensity_error(out["intensities"], ints.mean(-1)
                                                     if ints.ndim == 3 else ints)):
                add(f"{lab} intensity err", count, v)
            if n >= 3:
              est, _ = ps.woodham(images, out["dirs"], out["intensities"], mask)
              for v in np.asarray(ps.mean_angular_error(est, gt, mask)):
                add(f"woodham_lcnet[{m.label}]", count, v)
  means = {r: {c: float(np.mean(v)) for c, v in cols.items()} for r, cols in rows.items()}
  return means, timing


def table(title, means, counts, methods, timing):
  lines = [f"**{title}** (mean angular error in degrees unless stated)", "",
           "| method | params | ms/scene (N=16) | " + " | ".join(counts) + " |",
           "|---" * (len(counts) + 3) + "|"]
  info = {m.label: m for m in methods}
  order = {"woodham_l2": 0, "woodham": 1}
  keys = sorted(means, key=lambda r: (order.get(r, 2 if r.startswith("woodham") else 3),
                                      list(means).index(r)))
  for row in keys:
    cols = means[row]
    m = info.get(row)
    params = f"{m.params_count:,}" if m else ""
    ms = _fmt(timing.get(row), 1) if m else ""
    digits = 3 if "intensity" in row else 2
    lines.append(f"| {row} | {params} | {ms} | "
                 + " | ".join(_fmt(cols.get(c), digits) for c in counts) + " |")
  return "\n".join(lines)


def synthetic_data(name, scenes, size, seed):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from data.photometric import synth  # pylint: disable=g-import-not-at-top
  test = synth.test_set(name, scenes, size, seed)
  return [{"images": synth.render_test_scene(test, i), "mask": test["mask"][i],
           "normals": test["normals"][i], "dirs": test["dirs"][i],
           "intensities": np.asarray(test["intensities"][i])} for i in range(scenes)]


def diligent_data(root):
  from data.photometric import diligent  # pylint: disable=g-import-not-at-top
  out = []
  for obj in diligent.OBJECTS:
    try:
      d = diligent.load_object(root, obj)
    except (FileNotFoundError, ValueError) as e:  # missing or malformed: named, skipped
      _say(f"skipping {obj}: {e}")
      continue
    out.append({"images": d["images"], "mask": d["mask"], "normals": d["normals"],
                "dirs": d["lights"], "intensities": d["intensities"], "name": obj})
  if not out:
    raise FileNotFoundError(f"no DiLiGenT object found under {root}")
  return out


def parse_runs(specs: list[str]) -> list[tuple[str, str, str]]:
  """``label=WORKDIR[+LIGHTS]`` entries -> (label, workdir, lights), every directory checked.

  Raises:
    app.UsageError: an entry without ``=``. FileNotFoundError: naming every run directory
      without checkpoints or export (checked before any run is loaded).
  """
  runs, missing = [], []
  for spec in specs:
    label, _, workdir = spec.partition("=")
    if not workdir or not label:
      raise app.UsageError(f"--runs entries are label=WORKDIR, got {spec!r}")
    workdir, _, lights = workdir.partition("+")
    for d in (workdir, lights):
      if d and d != "true" and not ((pathlib.Path(d) / "checkpoints").is_dir()
                                    or (pathlib.Path(d) / "variables.msgpack").is_file()):
        missing.append(d)  # neither a run nor an export / imported authors' weights
    runs.append((label, workdir, lights))
  if missing:
    raise FileNotFoundError(f"no train.sdps run (checkpoints/) or export in {', '.join(missing)}"
                            "; train one with python -m train.sdps --workdir DIR")
  from train import launch  # pylint: disable=g-import-not-at-top
  for _, workdir, lights in runs:
    for d in (workdir, lights):
      found = launch.stored_system(d) if d and d != "true" else None
      if found and found[0] != "sdps":
        raise ValueError(f"{d} holds a {found[0]} run, not a train.sdps run")
  return runs


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # quiet Orbax's INFO lines
  runs = parse_runs(FLAGS.runs)  # Inputs and outputs checked before JAX is even loaded.
  data_dir = FLAGS["data.dir"].value
  if data_dir and not pathlib.Path(data_dir).is_dir():
    raise FileNotFoundError(f"--data.dir {data_dir} is not a directory (the DiLiGenT root)")
  for path in (FLAGS.out, FLAGS.markdown):
    if path:
      absl_app.check_output_file(path)
  from eval import ps_published  # pylint: disable=g-import-not-at-top
  from train import sdps_task  # pylint: disable=g-import-not-at-top
  methods = []
  for label, workdir, lights in runs:
    run = sdps_task.restore_run(workdir)
    if lights and lights != "true":
      lights = sdps_task.restore_run(lights)
    methods.append(Method(label, run, lights or None))
    _say(f"{label}: {run.config.task} ({run.config.variant}) step {run.step}, "
         f"{methods[-1].params_count:,} parameters")
    if FLAGS.mirror:
      methods.append(Method(f"{label}+mirror", run, lights or None, mirror=True))
  sets = list(FLAGS.sets)
  if data_dir and "diligent" not in sets:
    sets.append("diligent")
  results, text = {}, []
  for name in sets:
    counts = list(FLAGS.counts)
    if name == "diligent":
      if not data_dir:
        raise app.UsageError("the diligent set needs --data.dir=/path/to/DiLiGenT")
      data = diligent_data(data_dir)
      counts = counts + ["all"]
      draws = FLAGS.draws or 3
    else:
      _say(f"rendering {FLAGS.scenes} {name} scenes at {FLAGS.size}²")
      data = synthetic_data(name, FLAGS.scenes, FLAGS.size, FLAGS.seed)
      draws = FLAGS.draws or 1
    t0 = time.time()
    means, timing = evaluate_set(name, data, methods, counts, draws, FLAGS.seed)
    _say(f"{name}: evaluated in {time.time() - t0:.0f} s")
    results[name] = {"mae": means, "ms_per_scene": timing, "scenes": len(data),
                     "draws": draws}
    text.append(table(f"{name} ({len(data)} scenes, {draws} draw(s))", means, counts, methods,
                      timing))
  text.append(ps_published.markdown())
  out = "\n\n".join(text)
  print(out)
  if FLAGS.out:
    pathlib.Path(FLAGS.out).write_text(json.dumps(results, indent=1))
  if FLAGS.markdown:
    pathlib.Path(FLAGS.markdown).write_text(out + "\n")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
