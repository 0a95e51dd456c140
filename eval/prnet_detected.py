"""PRNet on synthetic faces found and framed as real photos are: detector box -> crop -> NME.

    python -m eval.prnet_detected --workdir RUN [--workdir RUN2 ...] [--num 150] [--context]

The held-out synthetic NME (`eval.aflw2000_nme`) frames every face from its true landmark box;
real photos are framed from a detector's box (`bioface_jax.photo.detect.detect_faces`, then
`bioface_jax.face3d.face_box_transform`). This measures the whole real-photo path with exact
truth and every yaw: faces 0..N-1 of a held-out seed (default 11: never a training seed) of
`data.prnet.synth` are rendered at 256 px (``--context``: with painted hair, neck and eyes,
`data.prnet.context`), centred on a 512 px canvas of their border colour, detected, framed,
predicted; 2-D NME (`face3d.nme`, %) of the 68 landmarks against the exact ones, by yaw bin.
Beside each run: the same network on the true landmark box's training framing (1.5 x, centred:
what the held-out NME uses), and the mean face (the run's mean training map) in the detector's
crop. Faces the detector misses are counted and left out of the NME.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

CANVAS, RENDER, OFFSET = 512, 256, 128


def faces(seed: int, n: int, context: bool):
  """[(canvas uint8, landmarks (68, 3) in canvas pixels, yaw)] of synthetic faces."""
  from data.prnet import synth  # pylint: disable=g-import-not-at-top
  out = []
  for batch in synth.generate_pairs(seed, range(n), RENDER, batch_size=16, context=context):
    for img, lmk, pose in zip(batch["image"], batch["landmarks"], batch["pose"]):
      border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
      canvas = np.empty((CANVAS, CANVAS, 3), np.uint8)
      canvas[:] = np.median(border, 0).astype(np.uint8)
      canvas[OFFSET:OFFSET + RENDER, OFFSET:OFFSET + RENDER] = img
      lmk = np.asarray(lmk, np.float64).copy()
      lmk[:, :2] += OFFSET
      out.append((canvas, lmk, float(pose[0])))
  return out


def landmark_box_transform(landmarks: np.ndarray, size: int) -> np.ndarray:
  """The training framing of a face with known landmarks: 1.5 x the box's mean side, centred."""
  lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
  side = 1.5 * float(np.mean(hi - lo))
  cx, cy = 0.5 * (lo + hi)
  k = (size - 1) / side
  return np.array([[k, 0, -k * (cx - side / 2)], [0, k, -k * (cy - side / 2)], [0, 0, 1.0]])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", action="append", default=[], required=True,
                      help="a python -m train.prnet run (repeatable)")
  parser.add_argument("--num", type=int, default=150, help="synthetic faces")
  parser.add_argument("--seed", type=int, default=11, help="held-out synthetic seed")
  parser.add_argument("--context", action="store_true", help="paint hair, neck, eyes")
  args = parser.parse_args(argv)
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  from eval import landmarks_reference  # pylint: disable=g-import-not-at-top
  runs = [landmarks_reference.PRNetRun(w) for w in args.workdir]
  data = faces(args.seed, args.num, args.context)
  boxes = [detect.detect_faces(canvas) for canvas, _, _ in data]
  found = np.array([bool(b) for b in boxes])
  yaws = np.array([y for _, _, y in data])
  bins = face3d.yaw_bins(yaws)
  per_bin = ", ".join(f"{found[bins == k].sum()}/{(bins == k).sum()}" for k in range(3))
  style = ", with context" if args.context else ""
  print(f"{args.num} synthetic faces (seed {args.seed}{style}); the detector found "
        f"{found.sum()} ({per_bin} by yaw bin 0-30 / 30-60 / 60-90); NME % vs exact landmarks")
  print("| system | 0-30 | 30-60 | 60-90 | mean of bins | all |\n|---|---|---|---|---|---|")

  def row(name, nmes):
    t = face3d.nme_table(np.array(nmes) * 100, yaws[found])
    print(f"| {name} | {t['0-30']:.2f} | {t['30-60']:.2f} | {t['60-90']:.2f} | {t['mean']:.2f} "
          f"| {t['all_images']:.2f} |", flush=True)

  for i, run in enumerate(runs):
    det, truth_box, mean = [], [], []
    for (canvas, lmk, _), b in zip(data, boxes):
      if not b:
        continue
      pred, mean_pts = run.landmarks(canvas, b[0])
      det.append(float(face3d.nme(pred[:, :2], lmk[:, :2])))
      mean.append(float(face3d.nme(mean_pts[:, :2], lmk[:, :2])))
      p2 = run.landmarks_in(canvas, landmark_box_transform(lmk, run.size))
      truth_box.append(float(face3d.nme(p2[:, :2], lmk[:, :2])))
    row(f"{run.name}: detector box", det)
    row(f"{run.name}: true landmark box", truth_box)
    if i == 0:
      row("mean face, detector box", mean)
  return 0


if __name__ == "__main__":
  sys.exit(main())
