"""PRNet on your photos: 68 landmarks and a dense 3-D face mesh (dense alignment).

    python -m eval.prnet_predict photo.jpg [more.png 'photos/*.jpg' FOLDER ...] [--out predictions]
    python -m eval.prnet_predict photo.jpg --box 178 62 310 194 --workdir RUN_OR_EXPORT
    python -m eval.prnet_predict --example astronaut

For each photo, writes to --out (default ./predictions), named after the photo:
  <name>_kpt.npy      (68, 3) float32 landmarks in the original photo's pixels: x right, y down
                      (the photo as a viewer shows it, EXIF orientation applied), z toward the
                      viewer in the same pixel units up to an unknown offset
  <name>_kpt.txt      the same as text
  <name>.obj          the dense face mesh in the same pixels, stored with y up (x, H - 1 - y,
                      z) as PRNet's code writes it, vertex colours from the photo
  <name>_posmap.npy   (R, R, 3) the network's position map in crop pixels
  <name>_figure.png   input | 2-D landmarks | sparse alignment | dense alignment

How a photo is prepared: read as a viewer shows it; the face is --box (a face detector's box
around the face; the same box for every photo), or the largest face the detector finds (--crop
auto; else the central square, with a message); PRNet's square crop is framed around it
(`bioface_jax.photo.framing.prnet_transform`) and sampled bilinearly at the model's input size
R, zero outside the photo (as in PRNet's training); photos are never stretched.

Landmarks and mesh are read from the network's position map (--readout network) or from PRNet's
mean face posed on it by a similarity (--readout posed_mean_face: the network's pose and size,
the mean shape). The default is the model's recommendation: posed_mean_face for the shipped
64-px model (2-D NME on held-out face scenes 12.5 % vs 13.6 % for its raw map, on real faces
against dlib 12.0 % vs 12.5 %; `bioface_jax.photo.prnet_face`), network otherwise. The map is the
average over the crop and its mirror image (`face3d.flip_averaged`; --no-flip for one pass).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from eval import cli


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.prnet_predict", __doc__)
  parser.add_argument("images", nargs="*", metavar="IMAGES",
                      help="photo files, folders (their image files) or quoted glob patterns")
  cli.add_model_argument(parser, "prnet")
  cli.add_output_argument(parser)
  cli.add_crop_arguments(parser)
  parser.add_argument("--example", choices=("astronaut", "grace_hopper"),
                      help="also run a sample photo that ships with scikit-image (astronaut) or "
                           "matplotlib (grace_hopper)")
  parser.add_argument("--readout", choices=("network", "posed_mean_face"), default=None,
                      help="read landmarks and mesh from the network's map or from the mean face "
                           "posed on it (default: the model's recommendation)")
  parser.add_argument("--no-flip", dest="flip", action="store_false",
                      help="one pass of the network instead of the average over the crop and "
                           "its mirror image")
  return parser


def write_outputs(result, photo, name: str, out: pathlib.Path, model) -> list[pathlib.Path]:
  """The files of one photo (module docstring); coordinates in the original photo's pixels."""
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import figures  # pylint: disable=g-import-not-at-top
  landmarks = photo.to_original(result.landmarks).astype(np.float32)
  vertices = photo.to_original(result.vertices)
  config = model.config
  paths = [cli.save_npy(out / f"{name}_kpt.npy", landmarks)]
  header = "68 landmarks: x y z (original photo pixels, y down; z up to an offset)"
  paths.append(cli.write_atomic(out / f"{name}_kpt.txt", lambda f: np.savetxt(
      f, landmarks, fmt="%.3f", header=header)))
  # Vertex colours are sampled from the photo at the vertices' pixels: only possible when the
  # photo was read at full size.
  same = photo.scale == 1.0
  paths.append(face3d.write_obj(out / f"{name}.obj", vertices,
                                face3d.mesh_triangles(model.input_size),
                                photo.pixels if same else None,
                                image_height=photo.original_size[1]))
  paths.append(cli.save_npy(out / f"{name}_posmap.npy", result.position_map.astype(np.float32)))
  x0, y0, x1, y1 = result.view()
  view = (max(x0, 0), max(y0, 0), min(x1, photo.width - 1), min(y1, photo.height - 1))
  fig = figures.prediction_figure(
      photo.pixels, result.landmarks, result.vertices,
      f"{name}: PRNet {config.encoder} w{config.width_multiplier} R{model.input_size} "
      f"(step {model.step}, {result.readout.replace('_', ' ')})", view=view)
  paths.append(cli.save_figure(out / f"{name}_figure.png", fig, dpi=72))
  return paths


def run_photo(model, args, name: str, source, out: pathlib.Path) -> str:
  from bioface_jax.photo import prnet_face  # pylint: disable=g-import-not-at-top
  photo = cli.read_source(source)
  cli.say_notes(name, photo)
  result = prnet_face.reconstruct(model, photo.pixels, cli.face_box(photo, args, name),
                                  readout=args.readout, flip=args.flip)
  paths = write_outputs(result, photo, name, out, model)
  return f"{name}: wrote {', '.join(str(p) for p in paths)}"


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not args.images and not args.example:
    parser.error("give at least one photo, folder or pattern, or --example")
  items, out, problems = cli.photo_inputs(args, "prnet")
  model = cli.load_model("prnet", args.workdir)
  from bioface_jax.photo import prnet_face  # pylint: disable=g-import-not-at-top
  readout = args.readout or prnet_face.default_readout(model)
  members = model.config.ensemble
  print(f"model: {model.path} (step {model.step}, input {model.input_size} px"
        + (f", an ensemble of {members} networks" if members > 1 else "")
        + f", read-out: {readout}, {'flip-averaged' if args.flip else 'one pass'})", flush=True)
  return cli.run_batch(items, lambda name, source: run_photo(model, args, name, source, out),
                       problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
