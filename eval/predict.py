"""BioFaceNet on your photos: melanin, haemoglobin, shading, specular, light and camera.

    python -m eval.predict photo.jpg [more.png 'photos/*.jpg' FOLDER ...] [--out predictions]
    python -m eval.predict photo.jpg --box 178 62 310 194      # the face's box, in pixels
    python -m eval.predict photo.jpg --no-refine               # the network's output alone
    python -m eval.predict --example astronaut --workdir RUN_OR_EXPORT

For each photo, writes to --out (default ./predictions), named after the photo:
  <name>_maps.npz           input (S, S, 3) the crop fed to the network; fmel, fblood (S, S)
                            pigment maps in network coordinates [-1, 1]; melanin, haemoglobin
                            volume fractions; diffuse, specular (S, S) shading; weights (14,)
                            illuminant mixture, t (daylight index), cct_kelvin, b (2,) camera
                            PCA coefficients; reconstruction_linear_srgb, albedo_linear_srgb
                            (S, S, 3); illuminant; central_srgb_rmse; crop_box (left, top,
                            right, bottom in photo pixels); mask; and, when refined,
                            refine_steps, refine_mode, rmse_before_refinement
  <name>_decomposition.png  input, reconstruction, shading, pigments, albedo (paper's Fig. 1)

Per-photo refinement is ON by default (--refine-steps 200): the network, trained on synthetic
faces only, leaves real photos red and blurred (median central sRGB RMSE 0.106 on 20 real
faces); 200 steps of the self-supervised loss on the photo itself (mode "maps", a few seconds
on a CPU) bring it to 0.030 (docs/biofacenet_edit_and_photos.md). --no-refine gives the
network's output as is.

How a photo is prepared: read as a viewer shows it (EXIF orientation, 16-bit and greyscale,
transparency on white); the face is --box, or the largest face the detector finds (--crop
auto; else the central square, with a message); the square crop is framed around it as the
synthetic training faces are framed, area-resized to the network's input size S (64 for the
shipped model). --mask FILE (one photo only; > 50 % grey = face) restricts the refinement's
appearance loss and sets the figure's shading scale.
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import sys

import numpy as np

from eval import cli

EXAMPLES = {
    # Hand-drawn BioFaceNet crops (left, top, right, bottom), used as the crop itself.
    # skimage.data.astronaut(): 512x512 portrait of Eileen Collins.
    "astronaut": (178, 62, 310, 194),
    # matplotlib's sample photo of Grace Hopper (512x600, ships with matplotlib).
    "grace_hopper": (150, 110, 380, 340),
}
DEFAULT_REFINE_STEPS = 200


def crop_box(system: str, photo, args, name: str, source=None):
  """The square crop (left, top, right, bottom) in photo pixels for `system`."""
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  if isinstance(source, cli.Example) and args.box is None and system == "biofacenet":
    return EXAMPLES[source.name]
  return framing.crop_for(system, cli.face_box(photo, args, name), photo.width, photo.height)


# ----------------------------------------------------------------------------- flags


def photo_fit_default(name: str) -> float:
  """Default of a keyword of `biofacenet_fit.decompose` (one source for the flags' defaults)."""
  from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
  return inspect.signature(biofacenet_fit.decompose).parameters[name].default


def add_refine_arguments(parser: argparse.ArgumentParser, default_steps: int) -> None:
  parser.add_argument("--refine-steps", type=int, default=default_steps, metavar="N",
                      help="per-photo self-supervised refinement: Adam steps on the appearance "
                           "loss + priors of this one photo (0 = the network's output alone; "
                           "default %(default)s)")
  parser.add_argument("--no-refine", action="store_const", const=0, dest="refine_steps",
                      help="no refinement: the network's output as is (same as --refine-steps 0)")
  parser.add_argument("--refine-mode", choices=("maps", "network"), default="maps",
                      help="maps: optimise the maps, light and camera directly, anchored to the "
                           "network's pigments and smoothed; network: fine-tune the weights "
                           "(slower) (default %(default)s)")
  parser.add_argument("--refine-lr", type=float, default=None,
                      help="Adam step of the refinement (default 2e-2 maps, 3e-4 network)")
  parser.add_argument("--refine-anchor", type=float, default=photo_fit_default("anchor"),
                      help="mode maps: weight of the pull of the pigment and specular logits "
                           "back to the network's (default %(default)s)")
  parser.add_argument("--refine-smoothness", type=float,
                      default=photo_fit_default("smoothness"),
                      help="mode maps: weight of the total variation of the pigment maps "
                           "(default %(default)s)")


def add_photo_arguments(parser: argparse.ArgumentParser, default_out: str = cli.DEFAULT_OUT,
                        refine_steps: int = DEFAULT_REFINE_STEPS) -> None:
  """The photo, model, output and refinement flags shared by `eval.predict` and `eval.edit`."""
  parser.add_argument("images", nargs="*", metavar="IMAGES",
                      help="photo files, folders (their image files) or quoted glob patterns")
  cli.add_model_argument(parser, "biofacenet")
  cli.add_output_argument(parser, default_out)
  cli.add_crop_arguments(parser)
  parser.add_argument("--mask", default=None, metavar="FILE",
                      help="optional face mask image for a single photo (> 50 %% grey = face)")
  parser.add_argument("--example", choices=sorted(EXAMPLES),
                      help="also run a sample photo that ships with scikit-image (astronaut) or "
                           "matplotlib (grace_hopper), cropped with its hand-drawn box")
  add_refine_arguments(parser, refine_steps)


def check_photo_arguments(parser: argparse.ArgumentParser, args) -> None:
  if not args.images and not args.example:
    parser.error("give at least one photo, folder or pattern, or --example")
  if args.refine_steps < 0:
    parser.error(f"--refine-steps must be >= 0, got {args.refine_steps}")
  if args.refine_anchor < 0 or args.refine_smoothness < 0:
    parser.error("--refine-anchor and --refine-smoothness must be >= 0")


def decompose_photo(model, args, name: str, source):
  """(prepared input (S, S, 3), mask (S, S), outputs, refinement, crop box) of one photo."""
  from bioface_jax.photo import biofacenet_fit, framing, read  # pylint: disable=g-import-not-at-top
  photo = cli.read_source(source)
  cli.say_notes(name, photo)
  box = crop_box("biofacenet", photo, args, name, source)
  size = model.input_size
  x = biofacenet_fit.prepare(photo.pixels, size, box)
  if args.mask:
    mask = read.read_mask(args.mask, (photo.height, photo.width))
    mask = (framing.resize_crop(mask[..., None], box, size)[..., 0] > 0.5).astype(np.float32)
  else:
    mask = np.ones((size, size), np.float32)
  outputs, refinement = biofacenet_fit.decompose(
      model, x, mask, refine_steps=args.refine_steps, mode=args.refine_mode,
      learning_rate=args.refine_lr, anchor=args.refine_anchor,
      smoothness=args.refine_smoothness)
  original_box = np.asarray(box, np.float64) * photo.scale
  return x, mask, outputs, refinement, original_box


# ----------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.predict", __doc__)
  add_photo_arguments(parser)
  return parser


def write_outputs(model, name: str, out: pathlib.Path, x, mask, outputs, refinement, box) -> str:
  from bioface_jax import figures, physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
  render = outputs["render"]
  rmse = biofacenet_fit.central_srgb_rmse(x, render["linear_srgb"][0])
  note = "" if refinement is None else (
      f", refined {refinement.steps} steps ({refinement.mode}): central sRGB RMSE "
      f"{refinement.rmse_before:.3f} -> {refinement.rmse_after:.3f}")
  melanin, haemoglobin = physics.network_to_fractions(outputs["fmel"], outputs["fblood"])
  extra = {} if refinement is None else dict(
      refine_steps=refinement.steps, refine_mode=refinement.mode,
      rmse_before_refinement=refinement.rmse_before)
  cct = np.asarray(physics.index_to_cct(outputs["t"][0]))
  maps = cli.save_npz(
      out / f"{name}_maps.npz", input=x, fmel=outputs["fmel"][0], fblood=outputs["fblood"][0],
      melanin=np.asarray(melanin)[0], haemoglobin=np.asarray(haemoglobin)[0],
      diffuse=outputs["shading"][0], specular=outputs["specular"][0],
      weights=outputs["weights"][0], t=outputs["t"][0], cct_kelvin=cct, b=outputs["b"][0],
      reconstruction_linear_srgb=render["linear_srgb"][0],
      albedo_linear_srgb=render["albedo_linear_srgb"][0], illuminant=render["illuminant"][0],
      central_srgb_rmse=rmse, crop_box=box, mask=mask, **extra)
  fig = figures.decomposition_figure(x[None], outputs, mask[None], rows=1,
                                     title=f"{name} (model step {model.step}{note})")
  figure = cli.save_figure(out / f"{name}_decomposition.png", fig, dpi=120)
  return (f"{name}: wrote {maps} and {figure.name} (CCT {float(cct):.0f} K, b = "
          f"{[round(float(v), 2) for v in outputs['b'][0]]}, central sRGB RMSE {rmse:.3f}{note})")


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  check_photo_arguments(parser, args)
  items, out, problems = cli.photo_inputs(args, "biofacenet")
  model = cli.load_model("biofacenet", args.workdir)
  print(f"model: {model.path} (step {model.step}, input {model.input_size} px); refinement: "
        + (f"{args.refine_steps} steps ({args.refine_mode})" if args.refine_steps else "off"),
        flush=True)

  def work(name, source):
    return write_outputs(model, name, out, *decompose_photo(model, args, name, source))
  return cli.run_batch(items, work, problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
