"""Facial normals from one portrait (PRNet) against a few photos (SDPS-Net), on the same faces.

    python -m eval.face_normals --prnet r18=RUN_OR_EXPORT --sdps faces=RUN_OR_EXPORT \\
        [--faces 32] [--counts 1,2,4,8,16] [--out results.json] [--markdown table.md] \\
        [--figure docs/face_normals.png]

Held-out synthetic faces (`data.photometric.face_pairs`: PRNet-style photos with skin, SH light,
background and 8-bit sRGB, yaw within +-45 deg, seed 7, which no trainer uses) are scored at
S = 64 px (the SDPS-Net training size; truth = 2 x 2 block means of the exact 128-px truth, on
the pixels fully on the face):

* ``flat``: n = (0, 0, 1) everywhere (the trivial baseline);
* ``mean face``: the frontal mean face scaled into the true 68-landmark box (what a method
  that ignores the photo would give);
* ``true position map``: the exact position map PRNet is trained to output (R = 128), its mesh
  normals rasterised at S: what a perfect PRNet would give (the upper bound of the method);
* ``prnet[X]`` (one photo): PRNet's position map of the photo (the crop is PRNet's own
  training framing), its mesh normals rasterised at S (`face3d.rasterise_position_map`);
  pixels its mesh misses score 90 deg (coverage is printed);
* ``prnet[X] posed mean face``: the mean face aligned to that map by a similarity
  (`face3d.mean_face.regularise(sigma=inf)`): PRNet's pose and size, the mean shape;
* ``sdps[X]`` at N images: the same face relit by N directional lights (area-uniform within
  60 deg of the view, intensities U(0.2, 2), the colour factor, cast shadows, U(+-0.025) noise:
  `data.photometric.synth.render_scenes`), nested subsets of 16 lights per face;
* ``woodham`` at N >= 3: least squares with the true lights and intensities.

Models come from `bioface_jax.pretrained.load` (``label=PATH``; ``label=shipped`` for the
shipped model). Prints one markdown table (mean / median angular error in degrees and the share
of pixels under 20 deg), writes JSON, and a figure of the first faces.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

SCENE_SIZE, TRUTH_SIZE, NUM_LIGHTS, MAX_POLAR = 64, 128, 16, 60.0


def _parse_models(items, name):
  out = []
  for item in items or []:
    label, sep, path = item.partition("=")
    if not sep or not label or not path:
      raise SystemExit(f"error: --{name} entries are label=PATH (or label=shipped), got {item!r}")
    out.append((label, None if path == "shipped" else path))
  return out


def scale_position_map(pm: np.ndarray, factor: float) -> np.ndarray:
  """A position map in R-pixel units -> the same face in an image `factor` times as large
  (integer pixel centres: x' = (x + 1/2) f - 1/2, z' = z f)."""
  out = np.asarray(pm, np.float64) * factor
  out[..., :2] += 0.5 * factor - 0.5
  return out


def mean_face_position_map(landmarks: np.ndarray, size: int) -> np.ndarray:
  """The frontal mean face, its 68-landmark box matched (scale and centre) to `landmarks`'."""
  from data.prnet import synth as prnet_synth  # pylint: disable=g-import-not-at-top
  from data.synth import geometry  # pylint: disable=g-import-not-at-top
  template = geometry.load_template()
  screen = geometry.project(template.vertices, template, geometry.Pose(scale=0.6), size)
  pm = prnet_synth.position_map(screen, template, size).astype(np.float64)
  mean_lmk = screen[template.landmark_vertices, :2] - 0.5
  lo, hi = mean_lmk.min(0), mean_lmk.max(0)
  tlo, thi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
  s = float(np.sum(thi - tlo) / np.sum(hi - lo))
  out = pm.copy()
  out[..., :2] = (pm[..., :2] - 0.5 * (lo + hi)) * s + 0.5 * (tlo + thi)
  out[..., 2] *= s
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  return np.where(face3d.face_mask(size)[..., None], out, 0.0)


def _scores(pred, gt, mask):
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  err = np.asarray(ps.angular_error(pred, gt, mask))[mask > 0.5]
  return err


def _lights(index):
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  key = jax.random.key(np.uint32(1000 + index))
  kd, ki = jax.random.split(key)
  return (np.asarray(ps.sample_light_directions(kd, (1, NUM_LIGHTS), MAX_POLAR)),
          np.asarray(ps.sample_light_intensities(ki, (1, NUM_LIGHTS))))


def relight(scene: dict, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(images (16, S, S, 3), dirs (16, 3), intensities (16,)) of one face, fixed per index."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from data.photometric import synth  # pylint: disable=g-import-not-at-top
  dirs, ints = _lights(index)
  batch = {k: jnp.asarray(scene[k][None]) for k in synth.SCENE_KEYS}
  images, _, _ = synth.render_scenes(jax.random.key(np.uint32(2000 + index)), batch,
                                     NUM_LIGHTS, dirs=jnp.asarray(dirs),
                                     intensities=jnp.asarray(ints), shadow_steps=SCENE_SIZE // 2)
  return np.asarray(images[0]), dirs[0], ints[0]


def evaluate(faces: int, prnets, sdpss, counts, log=print, mirror: bool = False):
  """Per-method error arrays and the figure rows (the first 3 faces); ``mirror`` adds rows
  ``sdps[X]+mirror`` (`bioface_jax.models.sdps_mirror`)."""
  from bioface_jax import face3d, pretrained  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import mean_face  # pylint: disable=g-import-not-at-top
  from data.photometric import face_pairs  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  data = face_pairs.face_pairs(range(faces), prnet_size=TRUTH_SIZE, scene_size=SCENE_SIZE)
  log(f"{faces} faces in {time.time() - t0:.0f} s")
  scene_keys = ("normals", "mask", "depth", "albedo", "bp_k", "bp_s", "ct_k", "ct_r", "ct_f0")
  models = [(label, pretrained.load("prnet", path)) for label, path in prnets]
  photos = {}
  for label, m in models:
    size = m.input_size
    photos[size] = (data["image"] if size == TRUTH_SIZE else
                    face_pairs.face_pairs(range(faces), prnet_size=size,
                                          scene_size=min(size, SCENE_SIZE))["image"])
    log(f"prnet[{label}]: {m.path} (step {m.step}, input {size} px)")
  nets = [(label, pretrained.load("sdps", path)) for label, path in sdpss]
  for label, m in nets:
    log(f"sdps[{label}]: {m.path} (step {m.step})")
  errors: dict[str, list] = {}
  coverage: dict[str, list] = {}
  rows = []

  def add(name, pred, i, figure):
    mask = data["mask"][i]
    errors.setdefault(name, []).append(_scores(pred, data["normals"][i], mask))
    covered = np.linalg.norm(pred, axis=-1) > 0.5
    coverage.setdefault(name, []).append(float(covered[mask > 0.5].mean()))
    if figure is not None:
      figure[name] = pred

  for i in range(faces):
    figure = {"photo": data["image"][i], "truth": data["normals"][i]} if i < 3 else None
    mask = data["mask"][i]
    add("flat", np.where(mask[..., None] > 0.5, [0.0, 0.0, 1.0], 0.0), i, figure)
    mean_pm = mean_face_position_map(data["landmarks"][i], TRUTH_SIZE)
    add("mean face", face3d.rasterise_position_map(
        scale_position_map(mean_pm, SCENE_SIZE / TRUTH_SIZE), SCENE_SIZE)["normals"], i, figure)
    add("true position map", face3d.rasterise_position_map(
        scale_position_map(data["posmap"][i], SCENE_SIZE / TRUTH_SIZE), SCENE_SIZE)["normals"],
        i, figure)
    for label, m in models:
      pm = m.apply(photos[m.input_size][i:i + 1])["position_map"][0]
      for name, p in ((f"prnet[{label}]", pm),
                      (f"prnet[{label}] posed mean face", mean_face.regularise(pm, np.inf))):
        out = face3d.rasterise_position_map(scale_position_map(p, SCENE_SIZE / m.input_size),
                                            SCENE_SIZE)
        add(name, out["normals"], i, figure)
    images, dirs, ints = relight({k: data[k][i] for k in scene_keys}, i)
    for n in counts:
      if n >= 3:
        est, _ = ps.woodham(images[:n], dirs[:n], ints[:n], mask)
        add(f"woodham (true lights) N={n}", np.asarray(est), i, figure)
      x = np.clip(images[:n], 0, None)
      x = x / max(float(x.max()), 1e-6)  # `apply` takes [0, 1]; SDPS-Net is scale-free
      for label, m in nets:
        for mirrored in (False, True) if mirror else (False,):
          out = m.apply(x[None], mask=mask[None], mirror=mirrored)
          add(f"sdps[{label}{'+mirror' if mirrored else ''}] N={n}", out["normals"][0], i,
              figure)
    if figure is not None:
      rows.append(figure)
    if (i + 1) % 8 == 0:
      log(f"{i + 1}/{faces} faces ({time.time() - t0:.0f} s)")
  return errors, coverage, rows


def table(errors, coverage) -> tuple[str, dict]:
  lines = ["| method | photos | mean (°) | median (°) | < 20° (%) | coverage (%) |",
           "|---|---|---|---|---|---|"]
  summary = {}
  for name, per_face in errors.items():
    err = np.concatenate(per_face)
    face_means = [float(e.mean()) for e in per_face]
    n = name.rsplit("N=", 1)[-1] if "N=" in name else "1"
    summary[name] = {"mean_of_faces": float(np.mean(face_means)),
                     "median": float(np.median(err)), "under_20": float((err < 20).mean() * 100),
                     "coverage": float(np.mean(coverage[name]) * 100), "photos": int(n)}
    s = summary[name]
    zero = name in ("flat", "mean face", "true position map")
    lines.append(f"| {name.split(' N=')[0]} | {'0' if zero else n} | "
                 f"{s['mean_of_faces']:.2f} | {s['median']:.2f} | {s['under_20']:.1f} | "
                 f"{s['coverage']:.1f} |")
  return "\n".join(lines), summary


def figure(rows, path, dpi):
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  keys = [k for k in rows[0] if k not in ("photo", "truth")]
  keep = [k for k in keys if "N=" not in k or k.endswith(("N=1", "N=4", "N=16"))]
  cols = ["photo", "truth"] + keep
  fig = matplotlib.figure.Figure(figsize=(1.5 * len(cols), 1.7 * len(rows)))
  axes = fig.subplots(len(rows), len(cols), squeeze=False)
  for r, row in enumerate(rows):
    mask = np.linalg.norm(row["truth"], axis=-1) > 0.5
    for c, key in enumerate(cols):
      ax = axes[r, c]
      ax.axis("off")
      if key == "photo":
        ax.imshow(row["photo"])
        title = "photo (PRNet input)"
      else:
        ax.imshow(np.clip((row[key] + 1) / 2, 0, 1) * mask[..., None])
        title = key
        if key != "truth":
          title += f"\n{float(ps.mean_angular_error(row[key], row['truth'], mask)):.1f}°"
      if r == 0 or key != "photo":
        ax.set_title(title.replace(" (true lights)", "").replace("] N=", "]\nN="), fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)


def build_parser():
  p = argparse.ArgumentParser(prog="python -m eval.face_normals", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--prnet", nargs="*", default=[], metavar="LABEL=PATH",
                 help="PRNet models (run, export, imported weights, or 'shipped')")
  p.add_argument("--sdps", nargs="*", default=[], metavar="LABEL=PATH",
                 help="SDPS-Net models (a nenet or fused run, an export, or 'shipped')")
  p.add_argument("--mirror", action="store_true",
                 help="also score each SDPS-Net model with mirror averaging (rows X+mirror)")
  p.add_argument("--faces", type=int, default=32, help="held-out faces (default %(default)s)")
  p.add_argument("--counts", default="1,2,4,8,16",
                 help="numbers of photos for SDPS-Net / Woodham (<= 16; default %(default)s)")
  p.add_argument("--out", default="", help="write the numbers as JSON here")
  p.add_argument("--markdown", default="", help="write the table here")
  p.add_argument("--figure", default="", help="write a figure of the first 3 faces here")
  p.add_argument("--dpi", type=int, default=90)
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  counts = [int(c) for c in args.counts.split(",") if c.strip()]
  if not counts or min(counts) < 1 or max(counts) > NUM_LIGHTS:
    raise SystemExit(f"error: --counts must lie in 1..{NUM_LIGHTS}, got {args.counts}")
  if args.faces < 1:
    raise SystemExit("error: --faces must be >= 1")
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
  errors, coverage, rows = evaluate(args.faces, _parse_models(args.prnet, "prnet"),
                                    _parse_models(args.sdps, "sdps"), counts, say, args.mirror)
  text, summary = table(errors, coverage)
  text = (f"**Single portrait vs a few photos: {args.faces} held-out synthetic faces at "
          f"{SCENE_SIZE}², angular error of the normals**\n\n" + text)
  print(text)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=1))
  if args.markdown:
    pathlib.Path(args.markdown).write_text(text + "\n")
  if args.figure and rows:
    figure(rows, args.figure, args.dpi)
    say(f"wrote {args.figure}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
