"""The whole face pipeline on your photos: face box -> 3-D face and normals -> pigments -> edits.

    python -m eval.face_pipeline photo.jpg [more.png 'photos/*.jpg' FOLDER ...] [--out predictions]
    python -m eval.face_pipeline photo.jpg --box 178 62 310 194 --prnet RUN --biofacenet RUN
    python -m eval.face_pipeline --example astronaut

For each photo (named after it, in --out, default ./predictions):

1. **face box**: --box, or the largest face the detector finds (--crop auto; else the central
   square, with a message), as every photo command does (`eval.cli`);
2. **PRNet** (`pretrained.load("prnet", --prnet)`): 68 landmarks and the dense mesh, written as
   `eval.prnet_predict` writes them: ``<name>_kpt.npy`` / ``.txt``, ``<name>.obj``,
   ``<name>_posmap.npy``, ``<name>_figure.png``;
3. **normals** from the mesh (`face3d.rasterise_position_map`), regularised by the posed mean
   face (--normals-sigma, `face3d.mean_face.regularise`): ``<name>_normals.npz`` with
   ``normals`` (H, W, 3) unit, camera frame (x right, y up, z toward the camera; 0 off the
   face), ``mask`` (H, W) the face mesh's pixels and ``depth`` (H, W) (z toward the camera, up to
   an offset) in the photo as it was read (``scale`` = original pixels per pixel, 1 unless a
   huge photo was reduced), the same three in BioFaceNet's crop (``crop_normals``,
   ``crop_mask``, ``crop_depth``, ``crop_box``) and, with the prior on, ``shading_prior`` and
   ``sh_lighting`` (9 SH coefficients fitted to the photo); ``<name>_normals.png`` (RGB =
   (n + 1) / 2 over the face);
4. **BioFaceNet** (`pretrained.load("biofacenet", --biofacenet)`) on its crop, refined on the
   photo (--refine-steps, default 200) with PRNet's **shading prior** (--shading-prior, see
   `bioface_jax.photo.shading_prior`; --no-shading-prior turns it off): ``<name>_maps.npz`` and
   ``<name>_decomposition.png`` as `eval.predict` writes them;
5. **edits** as `eval.edit` (melanin and haemoglobin -/+, no specular, other lights):
   ``<name>_edits.png``, ``<name>_edit_<label>.png``, ``<name>_edits.npz``;
6. a one-row summary figure ``<name>_pipeline.png``: photo with the box and landmarks,
   normals, BioFaceNet's maps and two edits.

Models default to the ones shipped with the project. Errors follow the photo commands: a bad
input is reported on one line and skipped, the others are written, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import cli, edit, predict, prnet_predict


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.face_pipeline", __doc__)
  predict.add_photo_arguments(parser)  # photos, --workdir (BioFaceNet), --out, --box, refinement
  parser.add_argument("--biofacenet", dest="workdir", default=None, metavar="DIR",
                      help="the BioFaceNet model (same as --workdir)")
  parser.add_argument("--prnet", default=None, metavar="DIR",
                      help="the PRNet model: a training run, an export or imported weights "
                           "(default: the shipped one)")
  parser.add_argument("--shading-prior", action=argparse.BooleanOptionalAction, default=True,
                      help="give BioFaceNet's refinement the shading of PRNet's normals under "
                           "the SH light fitted to the photo (default on)")
  parser.add_argument("--normals-sigma", type=float, default=np.inf, metavar="SIGMA",
                      help="regularise PRNet's map before taking normals: the mean face posed "
                           "on it plus its residual low-passed by SIGMA UV pixels (0 = PRNet's "
                           "map as is; default inf = the posed mean face, best for the current "
                           "PRNet models, docs/face_geometry.md)")
  parser.add_argument("--shading-weight", type=float,
                      default=predict.photo_fit_default("shading_weight"),
                      help="weight of the shading-prior term (default %(default)s)")
  parser.add_argument("--melanin", type=float, default=0.4,
                      help="melanin shift of the edits, network coordinates")
  parser.add_argument("--haemoglobin", type=float, default=0.4,
                      help="haemoglobin shift of the edits, network coordinates")
  parser.add_argument("--lights", nargs="*", default=list(edit.DEFAULT_LIGHTS),
                      help="lights to re-render under: A, D<kelvin/100>, F1..F12")
  return parser


def photo_normals(position_map_photo: np.ndarray, width: int, height: int):
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  return face3d.rasterise_position_map(position_map_photo, (height, width),
                                       face3d.face_mask(position_map_photo.shape[0]))


def normals_rgb(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
  return np.clip((normals + 1) / 2, 0, 1) * mask[..., None]


def summary_figure(name, photo, rec, geo, x, outputs, images, view):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from bioface_jax import figures  # pylint: disable=g-import-not-at-top
  panels = {t: (a, k) for t, a, k in figures.decomposition_panels(x[None], outputs, 0)}
  x0, y0, x1, y1 = (int(round(v)) for v in view)
  x0, y0 = max(x0, 0), max(y0, 0)
  x1, y1 = min(x1, photo.width - 1), min(y1, photo.height - 1)
  crop = (slice(y0, y1 + 1), slice(x0, x1 + 1))
  edit_keys = [k for k in images if k != "reconstruction"][:3]
  fig = Figure(figsize=(1.6 * (9 + len(edit_keys)), 2.1))
  axes = fig.subplots(1, 9 + len(edit_keys))
  axes[0].imshow(photo.pixels[crop], extent=(x0 - .5, x1 + .5, y1 + .5, y0 - .5))
  axes[0].plot(rec.landmarks[:, 0], rec.landmarks[:, 1], "c.", ms=1.5)
  axes[0].set_title("photo + landmarks", fontsize=7)
  axes[1].imshow(normals_rgb(geo["normals"], geo["mask"])[crop])
  axes[1].set_title("normals (PRNet)", fontsize=7)
  for ax, key in zip(axes[2:9], ("input", "reconstruction", "melanin", "haemoglobin",
                                 "diffuse", "specular", "diffuse albedo")):
    array, kw = panels[key]
    ax.imshow(array, interpolation="nearest", **kw)
    ax.set_title(key if key != "input" else "BioFaceNet crop", fontsize=7)
  for ax, key in zip(axes[9:], edit_keys):
    ax.imshow(edit._display(images[key][0]))  # pylint: disable=protected-access
    ax.set_title(key, fontsize=7)
  for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(name, fontsize=8)
  fig.tight_layout()
  return fig


def run_photo(models, args, name, source, out: pathlib.Path) -> str:
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import mean_face  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import biofacenet_fit, prnet_face, shading_prior  # pylint: disable=g-import-not-at-top
  prnet, bfn, spectra, lut = models
  photo = cli.read_source(source)
  cli.say_notes(name, photo)
  face = cli.face_box(photo, args, name)
  rec = prnet_face.reconstruct(prnet, photo.pixels, face)
  paths = prnet_predict.write_outputs(rec, photo, name, out, prnet)
  pm_photo = face3d.uncrop_points(rec.position_map, rec.transform)
  geo = photo_normals(mean_face.regularise(pm_photo, args.normals_sigma), photo.width,
                      photo.height)
  box = predict.crop_box("biofacenet", photo, args, name, source)
  size = bfn.input_size
  x = biofacenet_fit.prepare(photo.pixels, size, box)
  crop_geo = shading_prior.crop_normals(pm_photo, box, size, args.normals_sigma)
  target, lighting = None, None
  if args.shading_prior and args.refine_steps and crop_geo["mask"].sum() >= 64:
    target = shading_prior.shading_prior(x, crop_geo["normals"], crop_geo["mask"])
  elif args.shading_prior and args.refine_steps:
    print(f"{name}: PRNet's face covers {int(crop_geo['mask'].sum())} pixels of BioFaceNet's "
          "crop: no shading prior")
  outputs, refinement = biofacenet_fit.decompose(
      bfn, x, np.ones((size, size), np.float32), refine_steps=args.refine_steps,
      mode=args.refine_mode, learning_rate=args.refine_lr, anchor=args.refine_anchor,
      smoothness=args.refine_smoothness, shading_target=target,
      shading_weight=args.shading_weight)
  if target is not None:
    from bioface_jax import physics  # pylint: disable=g-import-not-at-top
    y = np.clip(x, 0, 1)**shading_prior.GAMMA @ shading_prior.LUMINANCE
    lighting = physics.fit_sh_lighting(crop_geo["normals"], y, crop_geo["mask"])
  original_box = np.asarray(box, np.float64) * photo.scale
  line = predict.write_outputs(bfn, name, out, x, np.ones((size, size), np.float32), outputs,
                               refinement, original_box)
  extra = {} if target is None else dict(shading_prior=target, sh_lighting=lighting)
  paths.append(cli.save_npz(
      out / f"{name}_normals.npz", normals=geo["normals"], mask=geo["mask"], depth=geo["depth"],
      scale=np.float32(photo.scale), crop_normals=crop_geo["normals"],
      crop_mask=crop_geo["mask"], crop_depth=crop_geo["depth"], crop_box=original_box, **extra))
  x0, y0, x1, y1 = rec.view()
  view = (max(int(x0), 0), max(int(y0), 0), min(int(x1), photo.width - 1),
          min(int(y1), photo.height - 1))
  rgb = normals_rgb(geo["normals"], geo["mask"])[view[1]:view[3] + 1, view[0]:view[2] + 1]
  paths.append(cli.save_png(out / f"{name}_normals.png", rgb))
  images = edit.edits(outputs, spectra, lut, bfn.config, args.melanin, args.haemoglobin,
                      args.lights)
  paths += edit.write_edits(out, name, x, images,
                            f"{name}: BioFaceNet edits (model step {bfn.step})")
  fig = summary_figure(f"{name}: PRNet step {prnet.step}, BioFaceNet step {bfn.step}"
                       + (", shading prior" if target is not None else ""),
                       photo, rec, geo, x, outputs, images, rec.view())
  paths.append(cli.save_figure(out / f"{name}_pipeline.png", fig, dpi=100))
  return f"{line}\n{name}: also wrote {', '.join(p.name for p in paths)}"


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  predict.check_photo_arguments(parser, args)
  for light in args.lights:
    try:
      edit.light_parameters(light)
    except ValueError as error:
      parser.error(str(error))
  if args.shading_weight < 0:
    parser.error("--shading-weight must be >= 0")
  items, out, problems = cli.photo_inputs(args, "biofacenet")
  cli.check_output_dir(args.out, cli.model_dir("prnet", args.prnet))
  from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
  prnet = cli.load_model("prnet", args.prnet)
  bfn = cli.load_model("biofacenet", args.workdir)
  print(f"PRNet: {prnet.path} (step {prnet.step}, input {prnet.input_size} px); BioFaceNet: "
        f"{bfn.path} (step {bfn.step}, input {bfn.input_size} px); refinement: "
        + (f"{args.refine_steps} steps ({args.refine_mode})"
           + (f", shading prior weight {args.shading_weight:g}" if args.shading_prior else "")
           if args.refine_steps else "off"), flush=True)
  models = (prnet, bfn, *biofacenet_fit.assets())
  return cli.run_batch(items, lambda name, source: run_photo(models, args, name, source, out),
                       problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
