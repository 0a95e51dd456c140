"""Decompose face photos with a trained BioFaceNet.

    python -m eval.predict --workdir runs/default photo.jpg [more.png ...] [--out DIR]
    python -m eval.predict --workdir runs/default --example astronaut

Restores the latest checkpoint in ``--workdir`` and, for each image, writes
``<name>_decomposition.png`` (the paper's Figure 1 layout: input, reconstruction, diffuse and
specular shading, melanin, haemoglobin, diffuse albedo) and ``<name>_maps.npz`` (all maps and
the light and camera parameters) to ``--out``.

How a photo is prepared for the network (there is no face detector in this offline tool):
1. crop: the box given by ``--box LEFT TOP RIGHT BOTTOM`` (pixels), else the central square;
   a BioFaceNet input is a tight face crop like the 64x64 CelebA crops it was trained on, so
   give a box around the face for best results;
2. resize the crop to the network's input size (area averaging, Pillow ``BOX`` filter);
3. values: 8-bit sRGB is divided by 255; the network linearises with the power 2.2 itself;
4. mask: ``--mask FILE`` (any image; > 50 % grey = face), else the whole crop. The mask only
   affects the figure's shading normalisation here (it is a training-loss input).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

EXAMPLES = {
    # skimage.data.astronaut(): 512x512 portrait of Eileen Collins; a box around her face.
    "astronaut": (178, 62, 310, 194),
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
  try:
    import skimage.data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise SystemExit("--example needs scikit-image: pip install scikit-image") from error
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


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m eval.predict", description=__doc__.split("\n\n")[0],
      epilog="Photos are cropped (--box or central square), resized to the network input size "
             "and divided by 255; see the module docstring.")
  parser.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...)")
  parser.add_argument("--workdir", required=True, help="training run directory (checkpoints/)")
  parser.add_argument("--out", default=None, help="output directory (default WORKDIR/predict)")
  parser.add_argument("--box", type=int, nargs=4, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                      help="face box in pixels (same for every image)")
  parser.add_argument("--mask", default=None, help="optional face mask image (one image only)")
  parser.add_argument("--example", choices=sorted(EXAMPLES),
                      help="use a scikit-image sample photo (with its face box)")
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  if not args.images and not args.example:
    build_parser().error("give at least one image file or --example")
  if args.mask and len(args.images) + bool(args.example) != 1:
    build_parser().error("--mask applies to a single image")

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax import figures, physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
  from train.biofacenet_task import restore_for_inference  # pylint: disable=g-import-not-at-top

  params, batch_stats, model, config, step = restore_for_inference(args.workdir)
  size = int(config.data.size)
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  out_dir = pathlib.Path(args.out or pathlib.Path(args.workdir) / "predict")
  out_dir.mkdir(parents=True, exist_ok=True)

  jobs = [(pathlib.Path(p).stem, load_image(p), args.box) for p in args.images]
  if args.example:
    jobs.append((args.example, load_example(args.example), args.box or EXAMPLES[args.example]))
  for name, image, box in jobs:
    x = prepare(image, size, box)[None]
    mask = (prepare_mask(args.mask, size, box)[None] if args.mask
            else np.ones(x.shape[:3], np.float32))
    outputs = biofacenet.predict(params, batch_stats, jnp.asarray(x), model, spectra=spectra,
                                 lut=lut)
    outputs = jax.tree.map(np.asarray, outputs)
    fig = figures.decomposition_figure(x, outputs, mask, rows=1,
                                       title=f"{name} (checkpoint step {step})")
    fig.savefig(out_dir / f"{name}_decomposition.png", dpi=120)
    melanin, haemoglobin = physics.network_to_fractions(outputs["fmel"], outputs["fblood"])
    render = outputs["render"]
    np.savez_compressed(
        out_dir / f"{name}_maps.npz", input=x[0], fmel=outputs["fmel"][0],
        fblood=outputs["fblood"][0], melanin=np.asarray(melanin)[0],
        haemoglobin=np.asarray(haemoglobin)[0], diffuse=outputs["shading"][0],
        specular=outputs["specular"][0], weights=outputs["weights"][0], t=outputs["t"][0],
        cct_kelvin=np.asarray(physics.index_to_cct(outputs["t"][0])), b=outputs["b"][0],
        reconstruction_linear_srgb=render["linear_srgb"][0],
        albedo_linear_srgb=render["albedo_linear_srgb"][0], illuminant=render["illuminant"][0])
    print(f"{name}: wrote {out_dir / (name + '_decomposition.png')} and {name}_maps.npz "
          f"(CCT {float(physics.index_to_cct(outputs['t'][0])):.0f} K, b = "
          f"{np.round(outputs['b'][0], 2).tolist()})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
