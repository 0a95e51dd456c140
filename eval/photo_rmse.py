"""Central-region sRGB reconstruction RMSE of BioFaceNet on real photos, before/after refinement.

    python -m eval.photo_rmse --workdir eval/checkpoints/biofacenet_default \
        --examples astronaut grace_hopper --refine-steps 200 [--figure docs/real_photos.png]
    python -m eval.photo_rmse --workdir W FOLDER_OR_PHOTO [...] --refine-steps 200

Every photo is prepared as `eval.predict` does (crop, resize, /255). Files and folders (all
.jpg/.jpeg/.png in them) use the central square; ``--examples`` use their face box and, with
``--central-crops``, also the central square (as a new user without a box would). For each it
prints the central-region sRGB RMSE (`eval.photo_fit.central_srgb_rmse`: middle half of each
side, reconstruction display-encoded with x^(1/2.2)) of the network's prediction and, with
``--refine-steps N``, after the per-photo refinement, then the median over the set.
``--figure`` writes one row per photo: input, reconstruction before and after refinement and the
maps (melanin, haemoglobin, diffuse and specular shading) before and after.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import predict

SUFFIXES = (".jpg", ".jpeg", ".png")


def collect(paths) -> list[pathlib.Path]:
  """Photo files from files and folders (sorted per folder); errors name the bad path."""
  files = []
  for p in map(pathlib.Path, paths):
    if p.is_dir():
      files += sorted(q for q in p.iterdir() if q.suffix.lower() in SUFFIXES)
    elif p.is_file():
      files.append(p)
    else:
      raise FileNotFoundError(f"photo or folder {p} not found")
  return files


def save_figure(path, rows) -> None:
  """rows: (name, image, before outputs, after outputs or None, rmse before, rmse after)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from bioface_jax import figures  # pylint: disable=g-import-not-at-top
  cols = 11
  fig = Figure(figsize=(1.25 * cols, 1.45 * len(rows) + 0.5))
  FigureCanvasAgg(fig)
  for r, (name, image, before, after, e0, e1) in enumerate(rows):
    after = after if after is not None else before
    pb = {t: (a, k) for t, a, k in figures.decomposition_panels(image[None], before, 0)}
    pa = {t: (a, k) for t, a, k in figures.decomposition_panels(image[None], after, 0)}
    panels = [("input", *pb["input"]), (f"network\nRMSE {e0:.3f}", *pb["reconstruction"]),
              (f"refined\nRMSE {e1:.3f}", *pa["reconstruction"])]
    for key in ("melanin", "haemoglobin", "diffuse", "specular"):
      panels += [(f"{key}\nnetwork", *pb[key]), (f"{key}\nrefined", *pa[key])]
    for c, (title, img, kw) in enumerate(panels):
      ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
      ax.imshow(img, interpolation="nearest", **kw)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(title, fontsize=6)
      if c == 0:
        ax.set_ylabel(name, fontsize=6)
  fig.suptitle("Real photos: network prediction vs per-photo refinement (pigments in network "
               "coordinates, magma -1..1; shading / 99th percentile); RMSE: central-region sRGB",
               fontsize=7)
  fig.tight_layout()
  fig.set_dpi(80)
  fig.canvas.draw()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # A 256-colour palette keeps the many small panels' PNG under ~300 KB.
  rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
  rgb.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m eval.photo_rmse",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("photos", nargs="*", help="photo files or folders (central-square crop)")
  parser.add_argument("--workdir", required=True, help="training run or inference export")
  parser.add_argument("--examples", nargs="*", default=[], choices=sorted(predict.EXAMPLES),
                      help="packaged sample portraits, cropped with their face box")
  parser.add_argument("--central-crops", action="store_true",
                      help="also evaluate the examples with the central-square crop")
  parser.add_argument("--refine-steps", type=int, default=0, help="see eval.predict")
  parser.add_argument("--refine-mode", choices=("maps", "network"), default="maps")
  parser.add_argument("--refine-lr", type=float, default=None)
  parser.add_argument("--figure", default=None, help="write the real-photo figure here")
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not args.photos and not args.examples:
    parser.error("give photos, folders or --examples")
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from eval import photo_fit  # pylint: disable=g-import-not-at-top

  jobs = [(p.name, predict.load_image(p), None) for p in collect(args.photos)]
  for name in args.examples:
    image = predict.load_example(name)
    jobs.append((f"{name} (face box)", image, predict.EXAMPLES[name]))
    if args.central_crops:
      jobs.append((f"{name} (central square)", image, None))
  restored = predict.restore(args.workdir)
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  size = int(restored.config.data.size)
  print(f"command: python -m eval.photo_rmse {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"model: {args.workdir} (step {restored.step}); central-region sRGB RMSE "
        f"(middle {photo_fit.CENTRAL_FRACTION:g} of each side)")
  print("| photo | network | refined | mean colour in | mean colour out (refined) |")
  print("|---|---|---|---|---|")
  rows, before_all, after_all = [], [], []
  for name, image, box in jobs:
    x = predict.prepare(image, size, box)
    base, _ = photo_fit.decompose(restored, spectra, lut, x)
    e0 = photo_fit.central_srgb_rmse(x, base["render"]["linear_srgb"][0])
    refined, e1 = None, e0
    if args.refine_steps:
      refined, info = photo_fit.decompose(restored, spectra, lut, x,
                                          refine_steps=args.refine_steps, mode=args.refine_mode,
                                          learning_rate=args.refine_lr)
      e1 = info.rmse_after
    shown = (refined or base)["render"]["linear_srgb"][0]
    colour_out = np.clip(shown, 0, 1)**(1 / 2.2)
    colours = [" / ".join(f"{v:.2f}" for v in c.mean((0, 1))) for c in (x, colour_out)]
    print(f"| {name} | {e0:.3f} | {e1:.3f} | {colours[0]} | {colours[1]} |", flush=True)
    rows.append((name, x, base, refined, e0, e1))
    before_all.append(e0)
    after_all.append(e1)
  print(f"| **median of {len(rows)}** | {np.median(before_all):.3f} | {np.median(after_all):.3f} "
        "| | |")
  if args.figure:
    save_figure(args.figure, rows)
    print(f"wrote {args.figure}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
