"""3-D face and dense alignment for photos with a trained PRNet run.

    python -m eval.prnet_predict IMAGE... --workdir runs/prnet_resfcn_tiny --box L T R B --out D
    python -m eval.prnet_predict --example --workdir runs/prnet_resfcn_tiny --out D

Per image NAME, into ``--out``: ``NAME_figure.png`` (the seed report's layout: input | 2-D
landmarks | sparse alignment | dense alignment), ``NAME.obj`` (the dense mesh in image
pixels with vertex colours from the photo; y up), ``NAME_kpt.txt`` / ``NAME_kpt.npy`` (68 x 3,
original image coordinates; z up to an unknown offset, divided by the crop scale) and
``NAME_posmap.npy`` (the crop-space position map).

The face crop is PRNet's (`bioface_jax.face3d.crop_transform`): ``--box`` is a landmark-like
box (1.6 x), ``--detector-box`` a face-detector box (1.58 x, centre moved down). Without a box
the largest face found by `bioface_jax.photo.detect.detect_faces` is framed as the training
faces are (`bioface_jax.face3d.photo_transform`: a square crop, never stretched); with no face
found or no detector installed, the photo's central square. ``--example`` runs
skimage.data.astronaut() with a hand-placed box around her face (needs scikit-image).
"""

from __future__ import annotations

import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("workdir", None, "Training run directory (python -m train.prnet).")
  flags.DEFINE_list("box", None, "Landmark-like face box L,T,R,B in image pixels.")
  flags.DEFINE_list("detector_box", None, "Face-detector box L,T,R,B in image pixels.")
  flags.DEFINE_string("out", "prnet_out", "Output directory.")
  flags.DEFINE_bool("example", False, "Use skimage.data.astronaut() (box 175,85,275,180).")

EXAMPLE_BOX = (175.0, 85.0, 275.0, 180.0)


def _box(values, name):
  if values is None:
    return None
  try:
    box = [float(v) for v in values]
  except ValueError as err:
    raise ValueError(f"--{name} must be 4 numbers L,T,R,B, got {values}") from err
  if len(box) != 4:
    raise ValueError(f"--{name} must be 4 numbers L,T,R,B, got {values}")
  return box


def check_image(image, what: str = "image"):
  """(H, W, 3) float in [0, 1] from uint8/float, greyscale or RGBA; errors name the problem."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  a = np.asarray(image)
  if a.ndim == 2:
    a = np.repeat(a[..., None], 3, -1)
  if a.ndim != 3 or a.shape[-1] not in (3, 4):
    raise ValueError(f"{what} must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
  a = a[..., :3]
  if a.shape[0] < 16 or a.shape[1] < 16:
    raise ValueError(f"{what} is too small ({a.shape[1]}x{a.shape[0]} pixels; need >= 16)")
  if a.dtype == np.uint8:
    return a.astype(np.float32) / 255.0
  if not np.issubdtype(a.dtype, np.floating):
    raise ValueError(f"{what} must be uint8 or float in [0, 1], got dtype {a.dtype}")
  if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
    raise ValueError(f"{what}: float images must be finite and in [0, 1], got range "
                     f"[{np.nanmin(a)}, {np.nanmax(a)}]")
  return a.astype(np.float32)


def reconstruct(image, params, stats, model, box=None, detector_box=None):
  """One photo -> dict(crop, transform, posmap (crop px), landmarks, vertices (image px))."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  image = check_image(image)
  r = model.input_size
  h, w = image.shape[:2]
  if box is not None:
    t = face3d.crop_transform(box, r)
  elif detector_box is not None:
    t = face3d.crop_transform(detector_box, r, detector=True)
  else:  # The largest detected face framed as in training; else the central square.
    from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
    try:
      t, face = face3d.photo_transform(image, r)
      framing = f"detected face box {face}" if face else "no face found: central square"
    except detect.DetectorUnavailable as error:
      t, framing = face3d.centre_square_transform(w, h, r), f"{error}: central square"
  if box is not None or detector_box is not None:
    framing = "given box"
  crop = face3d.warp_image(image, t, r).astype(np.float32)
  pm = np.asarray(prnet.predict(params, stats, jnp.asarray(crop[None]), model))[0]
  lmk = face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(pm)), t)
  verts = face3d.uncrop_points(np.asarray(face3d.vertices_from_position_map(pm)), t)
  return dict(image=image, crop=crop, transform=t, posmap=pm, landmarks=lmk, vertices=verts,
              framing=framing)


def _view(result, model):
  """The crop square in image pixels (clipped to the image)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  r = model.input_size - 1
  c = face3d.uncrop_points(np.array([[0.0, 0.0], [r, r]]), result["transform"])
  h, w = result["image"].shape[:2]
  return (max(c[0, 0], 0), max(c[0, 1], 0), min(c[1, 0], w - 1), min(c[1, 1], h - 1))


def save_outputs(result, model, name: str, out: pathlib.Path) -> list[pathlib.Path]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import figures  # pylint: disable=g-import-not-at-top
  out.mkdir(parents=True, exist_ok=True)
  fig = figures.prediction_figure(result["image"], result["landmarks"], result["vertices"],
                                  f"{name}: {model.encoder} w{model.width_multiplier} "
                                  f"R{model.input_size}", view=_view(result, model))
  paths = [out / f"{name}_figure.png", out / f"{name}.obj", out / f"{name}_kpt.txt",
           out / f"{name}_kpt.npy", out / f"{name}_posmap.npy"]
  fig.savefig(paths[0], dpi=72)
  face3d.write_obj(paths[1], result["vertices"], face3d.mesh_triangles(model.input_size),
                   result["image"])
  np.savetxt(paths[2], result["landmarks"], fmt="%.3f",
             header="68 landmarks: x y z (image pixels, y down; z up to an offset)")
  np.save(paths[3], result["landmarks"].astype(np.float32))
  np.save(paths[4], result["posmap"].astype(np.float32))
  return paths


def main(argv):
  logging.set_verbosity(logging.WARNING)
  images = list(argv[1:])
  if not FLAGS.workdir:
    print("error: --workdir (a python -m train.prnet run directory) is required",
          file=sys.stderr)
    return 2
  if not images and not FLAGS.example:
    print("error: give IMAGE paths or --example", file=sys.stderr)
    return 2
  from data.prnet import readers  # pylint: disable=g-import-not-at-top
  from train import prnet_task  # pylint: disable=g-import-not-at-top
  try:
    box = _box(FLAGS.box, "box")
    det = _box(FLAGS.detector_box, "detector_box")
    params, stats, model, _, step = prnet_task.restore_for_inference(FLAGS.workdir)
    jobs = []
    if FLAGS.example:
      from skimage import data as skdata  # pylint: disable=g-import-not-at-top
      jobs.append(("astronaut", skdata.astronaut(), list(EXAMPLE_BOX), None))
    for path in images:
      jobs.append((pathlib.Path(path).stem, readers.load_image(path), box, det))
    out = pathlib.Path(FLAGS.out)
    for name, image, b, d in jobs:
      result = reconstruct(image, params, stats, model, b, d)
      paths = save_outputs(result, model, name, out)
      print(f"{name}: model step {step}; {result['framing']}; wrote {', '.join(str(p) for p in paths)}")
  except (ValueError, FileNotFoundError, KeyError) as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(lambda argv: sys.exit(main(argv)))
