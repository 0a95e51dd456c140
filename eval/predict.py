"""Decompose face photos with a trained BioFaceNet.

    python -m eval.predict --workdir runs/default photo.jpg [more.png ...] [--out DIR]
    python -m eval.predict --workdir runs/default --example astronaut
    python -m eval.predict --workdir bioface_jax/pretrained/shipped/biofacenet --example astronaut \
        --refine-steps 200

Restores the latest checkpoint in ``--workdir`` and, for each image, writes
``<name>_decomposition.png`` (the paper's Figure 1 layout: input, reconstruction, diffuse and
specular shading, melanin, haemoglobin, diffuse albedo) and ``<name>_maps.npz`` (all maps and
the light and camera parameters) to ``--out``.

How a photo is prepared for the network:
1. crop: the box given by ``--box LEFT TOP RIGHT BOTTOM`` (pixels); else (``--crop auto``, the
   default) the largest face found by OpenCV's Haar cascade (`eval.face_detect`, optional:
   ``pip install 'opencv-python-headless<5'``), framed as the synthetic training faces are
   (a square of 1/0.62 times the detector's box); else, with a message, the central square.
   ``--crop face`` insists on a detected face, ``--crop center`` always takes the central
   square;
2. resize the crop to the network's input size (area averaging, Pillow ``BOX`` filter);
3. values: 8-bit sRGB is divided by 255; the network linearises with the power 2.2 itself;
4. mask: ``--mask FILE`` (any image; > 50 % grey = face), else the whole crop. It sets the
   figure's shading normalisation and the region of the refinement's appearance loss.

Real photographs differ from the synthetic training faces (backgrounds, tone curves, light),
and the network's prediction alone reconstructs them poorly. ``--refine-steps N`` refines the
decomposition on the photo itself with the self-supervised loss (no labels needed), see
`eval.photo_fit`; ``python -m eval.photo_rmse`` measures the effect on a folder of photos.
Every run prints the central-region sRGB RMSE of the reconstruction (`photo_fit.central_srgb_rmse`).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

EXAMPLES = {
    # skimage.data.astronaut(): 512x512 portrait of Eileen Collins; a box around her face.
    "astronaut": (178, 62, 310, 194),
    # matplotlib's sample photo of Grace Hopper (512x600, ships with matplotlib); her face.
    "grace_hopper": (150, 110, 380, 340),
}


def load_image(path: str | pathlib.Path) -> np.ndarray:
  """(H, W, 3) uint8 RGB from an image file, with errors that name the file."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"image {path} not found")
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("RGB"))
  except (UnidentifiedImageError, OSError) as error:
    raise ValueError(f"{path}: not a readable image ({error})") from error


def load_example(name: str) -> np.ndarray:
  """A sample portrait that ships with an installed package (no download)."""
  if name == "grace_hopper":
    from matplotlib import cbook  # pylint: disable=g-import-not-at-top
    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
  try:
    import skimage.data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise SystemExit("--example astronaut needs scikit-image: pip install scikit-image") from error
  return getattr(skimage.data, name)()


def prepare(image: np.ndarray, size: int, box: tuple[int, int, int, int] | None = None
            ) -> np.ndarray:
  """Crop (box or central square) and resize an RGB image to (size, size, 3) floats in [0, 1].

  Raises:
    ValueError: the image is not (H, W, 3) or the box lies outside it or is empty.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
  h, w = image.shape[:2]
  if box is None:
    side = min(h, w)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
  left, top, right, bottom = box
  if not (0 <= left < right <= w and 0 <= top < bottom <= h):
    raise ValueError(f"box {box} is empty or outside the {w}x{h} image")
  crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]).astype(np.uint8))
  resized = crop.resize((size, size), Image.Resampling.BOX)
  return np.asarray(resized, np.float32) / 255.0


def prepare_mask(path: str | pathlib.Path, size: int, box) -> np.ndarray:
  grey = load_image(path).mean(axis=-1)
  return (prepare(np.repeat(grey[..., None], 3, -1), size, box)[..., 0] > 0.5).astype(np.float32)


def add_photo_arguments(parser: argparse.ArgumentParser) -> None:
  """The photo, model and refinement flags shared by `eval.predict` and `eval.edit`."""
  parser.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...)")
  parser.add_argument("--workdir", required=True,
                      help="training run directory (checkpoints/) or an inference export, e.g. "
                           "bioface_jax/pretrained/shipped/biofacenet")
  parser.add_argument("--out", default=None,
                      help="output directory (default WORKDIR/predict; WORKDIR/edit for "
                           "eval.edit)")
  parser.add_argument("--box", type=int, nargs=4, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                      help="face box in pixels (same for every image)")
  parser.add_argument("--crop", choices=CROP_MODES, default="auto",
                      help="without --box: auto = the largest detected face (OpenCV Haar "
                           "cascade, framed as the training faces) or else the central square; "
                           "face = a detected face or an error; center = the central square")
  parser.add_argument("--mask", default=None, help="optional face mask image (one image only)")
  parser.add_argument("--example", choices=sorted(EXAMPLES),
                      help="use a sample photo that ships with scikit-image (astronaut) or "
                           "matplotlib (grace_hopper), with its face box")
  parser.add_argument("--refine-steps", type=int, default=0,
                      help="per-photo self-supervised refinement: Adam steps on the appearance "
                           "loss + priors of this one photo (0 = the network's prediction as is; "
                           "200 is a good value with --refine-mode maps)")
  parser.add_argument("--refine-mode", choices=("maps", "network"), default="maps",
                      help="maps: optimise the maps, light and camera directly, anchored to the "
                           "network's pigments and smoothed; network: fine-tune the weights")
  parser.add_argument("--refine-lr", type=float, default=None,
                      help="Adam step of the refinement (default 2e-2 maps, 3e-4 network)")
  parser.add_argument("--refine-anchor", type=float, default=photo_fit_default("anchor"),
                      help="mode maps: weight of the pull of the pigment and specular logits "
                           "back to the network's (default %(default)s)")
  parser.add_argument("--refine-smoothness", type=float,
                      default=photo_fit_default("smoothness"),
                      help="mode maps: weight of the total variation of the pigment maps "
                           "(default %(default)s)")


def photo_fit_default(name: str) -> float:
  """Default of a keyword of `eval.photo_fit.decompose` (one source for the flags' defaults)."""
  import inspect  # pylint: disable=g-import-not-at-top
  from eval import photo_fit  # pylint: disable=g-import-not-at-top
  return inspect.signature(photo_fit.decompose).parameters[name].default


def check_photo_arguments(parser: argparse.ArgumentParser, args) -> None:
  if not args.images and not args.example:
    parser.error("give at least one image file or --example")
  if args.mask and len(args.images) + bool(args.example) != 1:
    parser.error("--mask applies to a single image")
  if args.refine_steps < 0:
    parser.error("--refine-steps must be >= 0")
  if args.refine_anchor < 0 or args.refine_smoothness < 0:
    parser.error("--refine-anchor and --refine-smoothness must be >= 0")


CROP_MODES = ("auto", "face", "center")


def crop_boxes(name: str, image: np.ndarray, crop: str = "auto", max_faces: int | None = 1,
               log=print) -> list[tuple[int, int, int, int] | None]:
  """Crop boxes of one photo under ``--crop`` (None = the central square).

  ``auto``: the training-framed boxes of up to ``max_faces`` detected faces, or [None] with a
  message when OpenCV is missing or finds no face; ``face``: the same but an error instead of
  the fallback; ``center``: [None].

  Raises:
    ValueError: ``crop`` is unknown, or ``face`` and no face could be found (names the photo).
  """
  from eval import face_detect  # pylint: disable=g-import-not-at-top
  if crop not in CROP_MODES:
    raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
  if crop == "center":
    return [None]
  try:
    boxes = face_detect.face_crops(image, max_faces)
    why = "no frontal face found"
  except face_detect.DetectorUnavailable as error:
    boxes, why = [], str(error)
  if boxes:
    return boxes
  if crop == "face":
    raise ValueError(f"{name}: {why} (use --box or --crop center)")
  log(f"{name}: {why}; using the central square (give --box LEFT TOP RIGHT BOTTOM for a "
      "better crop)")
  return [None]


def photo_jobs(args) -> list[tuple[str, np.ndarray, tuple[int, int, int, int] | None]]:
  """(name, RGB uint8 image, box) for every photo of the command line, files first."""
  jobs = []
  for p in args.images:
    image = load_image(p)
    box = args.box or crop_boxes(pathlib.Path(p).name, image, args.crop)[0]
    if box is not None:
      print(f"{pathlib.Path(p).name}: crop {box} (left, top, right, bottom)")
    jobs.append((pathlib.Path(p).stem, image, box))
  if args.example:
    jobs.append((args.example, load_example(args.example), args.box or EXAMPLES[args.example]))
  return jobs


def restore(workdir):
  """`eval.model_io.Restored` of a run directory or export (FileNotFoundError if none)."""
  from eval import model_io  # pylint: disable=g-import-not-at-top
  from train.biofacenet_task import restore_for_inference  # pylint: disable=g-import-not-at-top
  params, batch_stats, model, config, step = restore_for_inference(workdir)
  return model_io.Restored(params, batch_stats, model, config, int(step), pathlib.Path(workdir))


def decompose_photos(args, restored, spectra, lut):
  """Yields (name, prepared image (H, W, 3), mask (H, W), outputs, refinement) per photo."""
  from eval import photo_fit  # pylint: disable=g-import-not-at-top
  size = int(restored.config.data.size)
  try:
    jobs = photo_jobs(args)
  except ValueError as error:
    raise SystemExit(str(error)) from error
  for name, image, box in jobs:
    x = prepare(image, size, box)
    mask = prepare_mask(args.mask, size, box) if args.mask else np.ones((size, size), np.float32)
    outputs, refinement = photo_fit.decompose(
        restored, spectra, lut, x, mask, refine_steps=args.refine_steps, mode=args.refine_mode,
        learning_rate=args.refine_lr, anchor=args.refine_anchor,
        smoothness=args.refine_smoothness)
    yield name, x, mask, outputs, refinement


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m eval.predict", description=__doc__.split("\n\n")[0],
      epilog="Photos are cropped (--box, a detected face or the central square), resized to "
             "the network input size and divided by 255; see the module docstring.")
  add_photo_arguments(parser)
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  check_photo_arguments(parser, args)

  from bioface_jax import figures, physics  # pylint: disable=g-import-not-at-top
  from eval import photo_fit  # pylint: disable=g-import-not-at-top

  restored = restore(args.workdir)
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  out_dir = pathlib.Path(args.out or pathlib.Path(args.workdir) / "predict")
  out_dir.mkdir(parents=True, exist_ok=True)

  for name, x, mask, outputs, refinement in decompose_photos(args, restored, spectra, lut):
    render = outputs["render"]
    rmse = photo_fit.central_srgb_rmse(x, render["linear_srgb"][0])
    note = "" if refinement is None else (
        f", refined {refinement.steps} steps ({refinement.mode}): central sRGB RMSE "
        f"{refinement.rmse_before:.3f} -> {refinement.rmse_after:.3f}")
    fig = figures.decomposition_figure(
        x[None], outputs, mask[None], rows=1,
        title=f"{name} (checkpoint step {restored.step}{note})")
    fig.savefig(out_dir / f"{name}_decomposition.png", dpi=120)
    melanin, haemoglobin = physics.network_to_fractions(outputs["fmel"], outputs["fblood"])
    extra = {} if refinement is None else dict(
        refine_steps=refinement.steps, refine_mode=refinement.mode,
        rmse_before_refinement=refinement.rmse_before)
    np.savez_compressed(
        out_dir / f"{name}_maps.npz", input=x, fmel=outputs["fmel"][0],
        fblood=outputs["fblood"][0], melanin=np.asarray(melanin)[0],
        haemoglobin=np.asarray(haemoglobin)[0], diffuse=outputs["shading"][0],
        specular=outputs["specular"][0], weights=outputs["weights"][0], t=outputs["t"][0],
        cct_kelvin=np.asarray(physics.index_to_cct(outputs["t"][0])), b=outputs["b"][0],
        reconstruction_linear_srgb=render["linear_srgb"][0],
        albedo_linear_srgb=render["albedo_linear_srgb"][0], illuminant=render["illuminant"][0],
        central_srgb_rmse=rmse, **extra)
    print(f"{name}: wrote {out_dir / (name + '_decomposition.png')} and {name}_maps.npz "
          f"(CCT {float(physics.index_to_cct(outputs['t'][0])):.0f} K, b = "
          f"{[round(float(v), 2) for v in outputs['b'][0]]}, central sRGB RMSE {rmse:.3f}{note})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
