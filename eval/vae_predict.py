"""The face VAE on your photos: its reconstruction, face mask and composite.

    python -m eval.vae_predict photo.jpg [more.png 'photos/*.jpg' FOLDER ...] [--out predictions]
    python -m eval.vae_predict photo.jpg --box 178 62 310 194 --workdir RUN_OR_EXPORT
    python -m eval.vae_predict photo.jpg --refine-steps 400   # fit the latent to the photo

For each photo, writes to --out (default ./predictions), named after the photo:
  <name>_vae.npz   input (S, S, 3) float32 in [0, 1], the crop fed to the model;
                   reconstruction (S, S, 3) the decoder's raw output (latent = the posterior
                   mean; not clipped); mask (S, S) in [0, 1], the mask decoder's face + hair
                   probability; composite (S, S, 3) = mask * reconstruction + (1 - mask) *
                   input, as the authors' predict model returns; crop_box (left, top, right,
                   bottom in photo pixels). A model without a mask decoder writes no mask and
                   composite = reconstruction. With --refine-steps N > 0 the reconstruction
                   is decoded from a latent fitted to the photo instead (below), and
                   refine_steps, objective_before, objective_after are written too.
  <name>_vae.png   input | reconstruction | mask | composite

Per-photo latent refinement (--refine-steps N, off by default): N Adam steps on the latent
alone, minimising the model's own training objective for this photo with the predicted mask
held fixed (bioface_jax.models.face_vae_refine). The network alone reconstructs real faces
blurrily (SSIM 0.45 over the face on 29 real photos); 400 steps (~1.2 s a photo on 2 CPU cores)
bring that to 0.70, 800 steps (~1.9 s) to 0.71 (docs/face_vae.md, "Per-photo latent
refinement"). The mask stays the network's; --mirror cannot be combined with it.

How a photo is prepared: read as a viewer shows it (EXIF orientation, 16-bit and greyscale,
transparency on white); the face is --box, or the largest face the detector finds (--crop
auto; else the central square, with a message); the VAE's square crop is framed around it as
its synthetic training portraits are (the face at 0.72 of the frame, a little above centre;
`bioface_jax.photo.framing`), area-resized to the model's input size S.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import cli


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.vae_predict", __doc__)
  parser.add_argument("images", nargs="*", metavar="IMAGES",
                      help="photo files, folders (their image files) or quoted glob patterns")
  cli.add_model_argument(parser, "face_vae")
  cli.add_output_argument(parser)
  cli.add_crop_arguments(parser)
  parser.add_argument("--example", choices=("astronaut", "grace_hopper"),
                      help="also run a sample photo that ships with scikit-image (astronaut) or "
                           "matplotlib (grace_hopper)")
  parser.add_argument("--mirror", action="store_true",
                      help="average the reconstruction and mask with those of the mirrored crop "
                           "(bioface_jax.models.face_vae_mirror: sharper faces on real photos, "
                           "twice the time)")
  parser.add_argument("--refine-steps", type=int, default=0, metavar="N",
                      help="fit the latent to each photo by N Adam steps on the model's own "
                           "objective (bioface_jax.models.face_vae_refine): 400 (~1.2 s a "
                           "photo on 2 CPU cores) or 800 (~1.9 s) for sharp faces; default 0: "
                           "the network's posterior mean")
  parser.add_argument("--refine-lr", type=float, default=None, metavar="LR",
                      help="Adam step of the refinement (default 0.3)")
  return parser


def vae_figure(title: str, panels):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(2.2 * len(panels), 2.6))
  FigureCanvasAgg(fig)
  for i, (label, image, kwargs) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(label, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(title, fontsize=8)
  fig.tight_layout()
  return fig


def run_photo(model, args, name: str, source, out: pathlib.Path) -> str:
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  photo = cli.read_source(source)
  cli.say_notes(name, photo)
  box = framing.crop_for("face_vae", cli.face_box(photo, args, name), photo.width, photo.height)
  x = framing.resize_crop(photo.pixels, box, model.input_size)
  refine = {}
  if args.refine_steps:
    refine = dict(refine_steps=args.refine_steps)
    if args.refine_lr is not None:
      refine["refine_lr"] = args.refine_lr
  result = model.apply(x[None], mirror=args.mirror, **refine)
  arrays = dict(input=x, reconstruction=result["image"][0], composite=result["composite"][0],
                crop_box=np.asarray(box, np.float64) * photo.scale)
  if refine:
    arrays.update(refine_steps=np.int64(args.refine_steps),
                  objective_before=result["objective_before"][0],
                  objective_after=result["objective_after"][0])
  panels = [("input", x, {}), ("reconstruction", np.clip(arrays["reconstruction"], 0, 1), {})]
  if "mask" in result:
    arrays["mask"] = result["mask"][0]
    panels.append(("mask", arrays["mask"], dict(cmap="gray", vmin=0, vmax=1)))
  panels.append(("composite", np.clip(arrays["composite"], 0, 1), {}))
  npz = cli.save_npz(out / f"{name}_vae.npz", **arrays)
  figure = cli.save_figure(out / f"{name}_vae.png", vae_figure(
      f"{name}: face VAE (model step {model.step}, {model.input_size} px"
      + (f", latent refined by {args.refine_steps} steps" if refine else "") + ")", panels))
  fitted = (f"; objective {arrays['objective_before']:.3f} -> {arrays['objective_after']:.3f}"
            if refine else "")
  return f"{name}: crop {tuple(int(v) for v in box)}{fitted}; wrote {npz} and {figure.name}"


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not args.images and not args.example:
    parser.error("give at least one photo, folder or pattern, or --example")
  if args.refine_steps < 0:
    parser.error(f"--refine-steps must be >= 0, got {args.refine_steps}")
  if args.refine_lr is not None and not args.refine_lr > 0:
    parser.error(f"--refine-lr must be > 0, got {args.refine_lr}")
  if args.refine_steps and args.mirror:
    parser.error("--mirror and --refine-steps are alternatives: refinement fits the photo's own "
                 "latent, mirror averaging would blur that fit")
  items, out, problems = cli.photo_inputs(args, "face_vae")
  model = cli.load_model("face_vae", args.workdir)
  print(f"model: {model.path} (step {model.step}, input {model.input_size} px)", flush=True)
  return cli.run_batch(items, lambda name, source: run_photo(model, args, name, source, out),
                       problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
