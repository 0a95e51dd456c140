"""SDPS-Net on your photos: surface normals and lights of one object or face from a folder of
photos taken under different lights (uncalibrated photometric stereo).

    python -m eval.sdps_predict DIR [DIR2 'scenes/*' ...] [--out predictions]
    python -m eval.sdps_predict DiLiGenT/pmsData/ballPNG --workdir RUN_OR_EXPORT

Each DIR is one scene: a fixed camera and object, one photo per light. Every image file in it
except mask.png is a photo, in the order of names.txt (one file name per line) when that file
exists (DiLiGenT's filenames.txt works too), else sorted by name; all of the same size. An
optional mask.png (> 50 % grey = the object) limits the normals to the object; without it the
whole image counts.

For each DIR, writes to --out (default ./predictions), named after the folder:
  <dirname>_normals.npz  normals (H, W, 3) unit vectors at the photos' size in the camera frame
                         (x right, y up, z toward the camera), zero outside the mask;
                         mask (H, W); light_directions (N, 3) unit, same frame;
                         light_intensities (N,) relative; image_names (N,) in light order
  <dirname>_normals.png  the normal map as RGB = (n + 1) / 2, black outside the mask

Values: SDPS-Net expects linear intensities. --encoding auto (default) keeps 16-bit files as
linear (as DiLiGenT's captures are) and decodes 8-bit files (camera JPEGs) from sRGB; linear or
srgb forces one. Photos larger than --max-side pixels are area-reduced for the network and the
normals resized back to the photos' size (interpolated, not estimated at full resolution).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import cli


def build_parser() -> argparse.ArgumentParser:
  from bioface_jax.photo import light_stack  # pylint: disable=g-import-not-at-top
  parser = cli.Parser("python -m eval.sdps_predict", __doc__)
  parser.add_argument("folders", nargs="+", metavar="DIR",
                      help="scene folders (one object or face each) or quoted glob patterns")
  cli.add_model_argument(parser, "sdps")
  cli.add_output_argument(parser)
  parser.add_argument("--encoding", choices=light_stack.ENCODINGS, default="auto",
                      help="how the photos' values relate to light (see above; default "
                           "%(default)s)")
  parser.add_argument("--max-side", type=int, default=light_stack.MAX_SIDE, metavar="PIXELS",
                      help="longest side the network runs at; larger photos are reduced and "
                           "the normals resized back (0 = full size; default %(default)s)")
  parser.add_argument("--mirror", action="store_true",
                      help="also run the networks on the left-right mirrored photos and average "
                           "the two answers (twice the time; on held-out synthetic faces normals "
                           "7.6 -> 7.0 deg, docs/sdps.md)")
  return parser


def run_scene(model, args, name: str, folder: pathlib.Path, out: pathlib.Path) -> str:
  from bioface_jax.photo import light_stack  # pylint: disable=g-import-not-at-top
  stack = light_stack.read_light_stack(folder)
  for note in stack.notes:
    print(f"{name}: {note}")
  result = light_stack.estimate(model, stack, encoding=args.encoding, max_side=args.max_side,
                                 mirror=args.mirror)
  npz = cli.save_npz(out / f"{name}_normals.npz", **result,
                     image_names=np.asarray(stack.names))
  png = cli.save_png(out / f"{name}_normals.png",
                     light_stack.normal_map_rgb(result["normals"], result["mask"]))
  n, h, w = stack.images.shape[:3]
  return f"{name}: {n} photos of {w}x{h}; wrote {npz} and {png.name}"


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.max_side < 0:
    parser.error(f"--max-side must be >= 0, got {args.max_side}")
  from bioface_jax.photo import light_stack  # pylint: disable=g-import-not-at-top
  found, problems = cli.expand_inputs(args.folders, folders=True)
  folders = []
  for folder in found:  # a folder without photos is found before the model loads
    try:
      light_stack.scene_files(folder)
      folders.append(folder)
    except (ValueError, OSError) as error:
      cli.say_error(str(error))
      problems += 1
  out = cli.check_output_dir(args.out, cli.model_dir("sdps", args.workdir))
  if not folders:
    raise cli.UserError("no scene folder to process (see the messages above)")
  model = cli.load_model("sdps", args.workdir)
  print(f"model: {model.path} (step {model.step})", flush=True)
  items = list(zip(cli.output_names(folders), folders))
  return cli.run_batch(items, lambda name, folder: run_scene(model, args, name, folder, out),
                       problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
