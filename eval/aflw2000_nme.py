"""NME by yaw bin (2-D and 3-D) for trained PRNet runs, beside baselines and published numbers.

    python -m eval.aflw2000_nme --workdir runs/prnet_resfcn_tiny runs/prnet_resnet18_tiny ...
    python -m eval.aflw2000_nme --workdir W --aflw2000 /data/AFLW2000   # the real benchmark
    python -m eval.aflw2000_nme --workdir W1 W2 --curve   # + held-out NME vs training minutes

Default data: the held-out synthetic pairs of each run's config (seed ``data.eval_seed``, never
trained on), with exact truth; landmarks are read from the predicted map
(`face3d.landmarks_from_position_map`) and compared with the truth by `face3d.nme` (2-D, and
3-D after shifting both sets to mean z 0); images are binned by |yaw| (`face3d.nme_table`):
"mean" is the mean of the three bin means, "all" the image mean. Dense = all face vertices,
2-D, normalised by the GT landmark box. With ``--aflw2000`` the AFLW2000-3D images are cropped
as PRNet does (1.6 x the GT landmark box), predicted, uncropped and scored against
``pt3d_68`` with yaw from ``Pose_Para``.

Each map is the average over the crop and its mirror image (`face3d.flip_averaged`, as
`eval.prnet_predict` runs by default; ``--noflip`` for one pass, the protocol of the tables
measured before 2026-12-06 15:00).

``--heldout faces|context|scenes`` scores every run on the held-out faces of one world (the
run's size and counts), so a run trained on the face-scene world and one trained on painted
context faces meet on the same faces; the default, ``own``, uses each run's training world.

Each run also gets a second row, its "posed mean face": the landmarks of PRNet's mean face
posed on the predicted map by a similarity (`bioface_jax.photo.prnet_face.read_out`, the
read-out the shipped model recommends).

Two trivial baselines on the same faces: "mean map" (the mean training position map, ignoring
the image) and "mean map + GT box" (that map's landmarks moved and scaled onto the true
landmark box: an oracle for position and size). A network that does not beat them has not
learned the face.

Each run's row also shows training images/s, s/epoch and wall time, read from its
``metrics.jsonl`` (so the seed report's claim, shorter training at equal or better accuracy,
is tested side by side). Published numbers (prnet-spec.md §7) are printed beneath, marked as
different data.

Several runs are separate values: ``--workdir W1 W2`` or ``--workdir W1 --workdir W2``. The old
form, one quoted value ``--workdir "W1 W2"``, still works (with a note) unless a run directory
of that name exists. Every run, ``--aflw2000`` and ``--out`` are checked before any work.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_multi_string("workdir", [], "Training run directories (python -m train.prnet "
                            "runs or exports): --workdir W1 W2 or --workdir W1 --workdir W2.")
  flags.DEFINE_string("aflw2000", None, "AFLW2000-3D directory (<name>.jpg + <name>.mat); "
                      "default: the held-out synthetic faces.")
  flags.DEFINE_enum("heldout", "own", HELDOUT,
                    "Held-out synthetic world: 'own' = each run's training world (its "
                    "config.data), or one for every run, so runs trained on different worlds "
                    "are scored on the same faces: 'faces' (data.prnet.synth), 'context' (the "
                    "same with painted head context), 'scenes' (the face-scene world).")
  flags.DEFINE_integer("num", 0, "Evaluate only the first NUM faces (0 = all).")
  flags.DEFINE_bool("flip", True, "Average each map with the mirrored map of the mirrored crop "
                    "(face3d.flip_averaged, as eval.prnet_predict does); --noflip: one pass.")
  flags.DEFINE_integer("batch", 32, "Prediction batch size.")
  flags.DEFINE_string("out", None, "Also write the markdown table and a .json beside it here.")
  flags.DEFINE_bool("curve", False, "Also print each run's learning curve from metrics.jsonl: "
                    "held-out loss / NME logged during training against cumulative training "
                    "minutes (for equal-wall-time comparisons).")

HELDOUT = ("own", "faces", "context", "scenes")
PUBLISHED = [
    ("PRNet (paper, AFLW2000-3D, image mean 2D / 3D)", "3.26 / 4.70 (image mean)"),
    ("PRNet 0-30 / 30-60 / 60-90 / mean", "2.75 / 3.51 / 4.61 / 3.62 [unverified]"),
    ("3DDFA 0-30 / 30-60 / 60-90 / mean", "3.78 / 4.54 / 7.93 / 5.42"),
    ("3DDFA_V2 MobileNet (3DDFA script)", "2.735 / 3.477 / 4.543 / 3.585"),
]


def training_speed(workdir: pathlib.Path, n_train: int, batch: int) -> dict:
  """images/s (median over logged windows after the first: compile excluded), s/epoch, wall s."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import read_jsonl  # pylint: disable=g-import-not-at-top
  path = workdir / "metrics.jsonl"
  rows = [r for r in read_jsonl(path) if "steps_per_sec" in r] if path.exists() else []
  if not rows:
    return dict(images_per_sec=float("nan"), s_per_epoch=float("nan"), wall_s=float("nan"),
                steps=0)
  wall, prev = 0.0, 0
  for r in rows:
    wall += (r["step"] - prev) / r["steps_per_sec"]
    prev = r["step"]
  steady = [r["images_per_sec"] for r in rows[1:]] or [rows[0]["images_per_sec"]]
  ips = float(np.median(steady))
  return dict(images_per_sec=ips, s_per_epoch=n_train / ips, wall_s=wall, steps=prev)


def learning_curve(workdir: pathlib.Path) -> list[dict]:
  """Per logged evaluation: step, cumulative training minutes (sum of the logged windows,
  compilation included), held-out loss_px, nme2d and nme3d (%, image means) from metrics.jsonl."""
  from bioface_jax.train_lib import read_jsonl  # pylint: disable=g-import-not-at-top
  path = workdir / "metrics.jsonl"
  rows = read_jsonl(path) if path.exists() else []
  out, wall, prev = [], 0.0, 0
  for r in rows:
    if "steps_per_sec" in r and r["step"] > prev:
      wall += (r["step"] - prev) / r["steps_per_sec"]
      prev = r["step"]
    if "eval/nme2d" in r:
      out.append(dict(step=r["step"], minutes=wall / 60, loss_px=r.get("eval/loss_px"),
                      nme2d=100 * r["eval/nme2d"], nme3d=100 * r["eval/nme3d"]))
  return out


def format_curves(workdirs) -> str:
  lines = ["| run | step | train min | held-out loss_px | NME 2D all % | NME 3D all % |",
           "|---|---|---|---|---|---|"]
  for w in workdirs:
    for c in learning_curve(w):
      lines.append(f"| {w.name} | {c['step']} | {c['minutes']:.1f} | {c['loss_px']:.2f} | "
                   f"{c['nme2d']:.2f} | {c['nme3d']:.2f} |")
  return "\n".join(lines)


def _predict_fn(params, stats, model):
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import prnet  # pylint: disable=g-import-not-at-top
  return jax.jit(lambda x: prnet.predict(params, stats, x, model))


def _scores(pred_lmk, gt_lmk, yaws, dense=None):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  n2 = np.asarray(face3d.nme(pred_lmk, gt_lmk, dims=2)) * 100
  n3 = np.asarray(face3d.nme(pred_lmk, gt_lmk, dims=3)) * 100
  out = dict(nme2d=face3d.nme_table(n2, yaws), nme3d=face3d.nme_table(n3, yaws))
  if dense is not None:
    out["dense2d"] = float(np.mean(dense) * 100)
  return out


def _posed_landmarks(position_maps):
  """(B, 68, 3) landmarks of the mean face posed on each predicted map (crop pixels)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import prnet_face  # pylint: disable=g-import-not-at-top
  return np.stack([np.asarray(face3d.landmarks_from_position_map(
      prnet_face.read_out(pm, "posed_mean_face"))) for pm in position_maps])


def heldout_world(data_config, heldout: str = "own") -> dict:
  """`data.prnet.dataset.synthetic_set` world keywords for `heldout` (`HELDOUT`)."""
  from data.prnet import dataset as synth_set  # pylint: disable=g-import-not-at-top
  world = synth_set.world_options(data_config)
  if heldout not in HELDOUT:
    raise ValueError(f"heldout must be one of {HELDOUT}, got {heldout!r}")
  if heldout != "own":
    world.update(world="scenes" if heldout == "scenes" else "faces",
                 context=heldout == "context")
  return world


def evaluate_synthetic(workdir: pathlib.Path, num: int, batch: int, heldout: str = "own",
                       flip: bool = True) -> dict:
  """Scores of a run and of the two baselines on held-out synthetic faces of its own training
  world, or of the world `heldout` names (the baselines' mean map from that world's training
  faces)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from data.prnet import dataset as synth_set  # pylint: disable=g-import-not-at-top
  from train import prnet_task  # pylint: disable=g-import-not-at-top
  params, stats, model, config, step = prnet_task.restore_for_inference(workdir)
  d = config.data
  world = heldout_world(d, heldout)
  held = synth_set.synthetic_set(d.cache_dir or None, d.num_eval, d.size, d.eval_seed, stream=None,
                                 **world)
  train = synth_set.synthetic_set(d.cache_dir or None, d.num_train, d.size, d.seed, stream=None,
                                  **world)
  n = len(held) if not num else min(num, len(held))
  predict = _predict_fn(params, stats, model)
  lmk, posed, gt, yaw, dense, base_dense = [], [], [], [], [], []
  # Baseline map: mean of (up to 512) training maps.
  sample = train.get(np.arange(min(512, len(train))))["posmap"]
  mean_map = sample.mean(0)
  mean_lmk = np.asarray(face3d.landmarks_from_position_map(mean_map))
  for s in range(0, n, batch):
    b = held.get(np.arange(s, min(n, s + batch)))
    k = len(b["image"])
    x = np.concatenate([b["image"], np.zeros((batch - k,) + b["image"].shape[1:], np.float32)])
    pm = face3d.position_maps(predict, x, flip=flip)[:k]
    lmk.append(np.asarray(face3d.landmarks_from_position_map(pm)))
    posed.append(_posed_landmarks(pm))
    gt.append(b["landmarks"])
    yaw.append(b["yaw"])
    pv = np.asarray(face3d.vertices_from_position_map(pm))
    gv = np.asarray(face3d.vertices_from_position_map(b["posmap"]))
    dense.append(np.asarray(face3d.dense_nme(pv, gv, box_points=b["landmarks"])))
    mv = np.broadcast_to(np.asarray(face3d.vertices_from_position_map(mean_map)), gv.shape)
    base_dense.append(np.asarray(face3d.dense_nme(mv, gv, box_points=b["landmarks"])))
  lmk, gt, yaw = np.concatenate(lmk), np.concatenate(gt), np.concatenate(yaw)
  result = _scores(lmk, gt, yaw, np.concatenate(dense))
  posed = _scores(np.concatenate(posed), gt, yaw)
  base = _scores(np.broadcast_to(mean_lmk, gt.shape), gt, yaw, np.concatenate(base_dense))
  # Oracle box: the mean landmarks' box moved and scaled (per axis) onto the GT landmark box.
  lo, hi = mean_lmk[:, :2].min(0), mean_lmk[:, :2].max(0)
  glo, ghi = gt[..., :2].min(1), gt[..., :2].max(1)
  boxed = np.broadcast_to(mean_lmk, gt.shape).copy()
  boxed[..., :2] = glo[:, None] + (mean_lmk[:, :2] - lo) / (hi - lo) * (ghi - glo)[:, None]
  boxed[..., 2] *= ((ghi - glo).mean(-1) / (hi - lo).mean())[:, None]
  oracle = _scores(boxed, gt, yaw)
  speed = training_speed(workdir, len(train), int(config.batch_size))
  return dict(workdir=str(workdir), encoder=model.encoder, width=model.width_multiplier,
              size=model.input_size, step=step, n=int(n), heldout=world["world"] + (
                  " with context" if world["context"] else ""),
              model=result, posed_mean_face=posed,
              mean_map=base, mean_map_box=oracle, speed=speed)


def evaluate_aflw2000(workdir: pathlib.Path, root: str, num: int, batch: int,
                      flip: bool = True) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from data.prnet import readers  # pylint: disable=g-import-not-at-top
  from train import prnet_task  # pylint: disable=g-import-not-at-top
  params, stats, model, _, step = prnet_task.restore_for_inference(workdir)
  ds = readers.AFLW2000Dataset(root, size=model.input_size)
  n = len(ds) if not num else min(num, len(ds))
  predict = _predict_fn(params, stats, model)
  lmk, posed, gt, yaw = [], [], [], []
  for s in range(0, n, batch):
    b = ds.get(np.arange(s, min(n, s + batch)))
    k = len(b["image"])
    x = np.concatenate([b["image"], np.zeros((batch - k,) + b["image"].shape[1:], np.float32)])
    pm = face3d.position_maps(predict, x, flip=flip)[:k]
    crop_lmk = np.asarray(face3d.landmarks_from_position_map(pm))
    lmk.append(np.stack([face3d.uncrop_points(p, t) for p, t in zip(crop_lmk, b["transform"])]))
    posed.append(np.stack([face3d.uncrop_points(p, t)
                           for p, t in zip(_posed_landmarks(pm), b["transform"])]))
    gt.append(b["landmarks"])
    yaw.append(b["yaw"])
  lmk, gt, yaw = np.concatenate(lmk), np.concatenate(gt), np.concatenate(yaw)
  return dict(workdir=str(workdir), encoder=model.encoder, width=model.width_multiplier,
              size=model.input_size, step=step, n=int(n), model=_scores(lmk, gt, yaw),
              posed_mean_face=_scores(np.concatenate(posed), gt, yaw))


def _fmt_row(name, scores, speed=None):
  a, b = scores["nme2d"], scores["nme3d"]
  cells = [name] + [f"{a[k]:.2f}" for k in ("0-30", "30-60", "60-90", "mean", "all_images")]
  cells += [f"{b['mean']:.2f}", f"{b['all_images']:.2f}",
            f"{scores['dense2d']:.2f}" if "dense2d" in scores else "-"]
  if speed:
    cells += [f"{speed['images_per_sec']:.1f}", f"{speed['s_per_epoch']:.0f}",
              f"{speed['wall_s'] / 60:.1f} ({speed['steps']} steps)"]
  else:
    cells += ["-", "-", "-"]
  return "| " + " | ".join(cells) + " |"


def format_table(results, data_name: str) -> str:
  head = ("| run | 2D 0-30 | 2D 30-60 | 2D 60-90 | 2D mean | 2D all | 3D mean | 3D all | "
          "dense 2D | train img/s | s/epoch | train min |")
  lines = [f"NME % on {data_name} (counts per bin: "
           f"{results[0]['model']['nme2d']['counts'] if results else '-'})", "", head,
           "|" + "---|" * 12]
  for r in results:
    name = f"{r['encoder']} w{r['width']} R{r['size']} step {r['step']}"
    lines.append(_fmt_row(name, r["model"], r.get("speed")))
    if "posed_mean_face" in r:
      lines.append(_fmt_row(f"{name}, posed mean face", r["posed_mean_face"]))
  if results and "mean_map" in results[0]:
    lines.append(_fmt_row("baseline: mean map (ignores the image)", results[0]["mean_map"]))
    lines.append(_fmt_row("baseline: mean map on the GT landmark box (oracle)",
                          results[0]["mean_map_box"]))
  lines += ["", "Published (different data: AFLW2000-3D, 68 points, NME %):", ""]
  lines += [f"- {a}: {b}" for a, b in PUBLISHED]
  return "\n".join(lines)


def run_directories(values: list[str], stream=sys.stderr) -> list[pathlib.Path]:
  """The run directories named by ``--workdir`` values (and the extra arguments after them).

  A value that is no existing path but holds whitespace is the deprecated quoted form
  ``--workdir "W1 W2"``: it is split, with a note on `stream`.
  """
  out = []
  for value in values:
    if len(value.split()) > 1 and not os.path.exists(value):
      print(f'note: --workdir "{value}" (several runs in one quoted value) is deprecated; give '
            f"them as separate values: --workdir {' '.join(value.split())}", file=stream)
      out += [pathlib.Path(v) for v in value.split()]
    else:
      out.append(pathlib.Path(value))
  return out


def check_inputs(workdirs: list[pathlib.Path], aflw2000: str | None, out: str | None) -> None:
  """Raises one error naming every missing run, a missing AFLW2000 folder or an unusable --out."""
  if not workdirs:
    raise app.UsageError("give at least one --workdir (a python -m train.prnet run directory)")
  missing = [str(w) for w in workdirs
             if not ((w / "checkpoints").is_dir() or (w / "variables.msgpack").is_file())]
  if missing:
    raise FileNotFoundError(
        f"no PRNet run (checkpoints/) or export in {', '.join(missing)}; train one with "
        "python -m train.prnet --workdir DIR")
  from train import launch  # pylint: disable=g-import-not-at-top
  for w in workdirs:
    found = launch.stored_system(w)
    if found and found[0] != "prnet":
      raise ValueError(f"{w} holds a {found[0]} run, not a PRNet run")
  if aflw2000 and not pathlib.Path(aflw2000).is_dir():
    raise FileNotFoundError(f"--aflw2000 {aflw2000} is not a directory")
  if out:
    absl_app.check_output_file(out)


def main(argv):
  logging.set_verbosity(logging.WARNING)
  workdirs = run_directories(FLAGS.workdir + list(argv[1:]))
  check_inputs(workdirs, FLAGS.aflw2000, FLAGS.out)
  results = []
  for w in workdirs:
    print(f"evaluating {w} ...", file=sys.stderr, flush=True)
    if FLAGS.aflw2000:
      results.append(evaluate_aflw2000(w, FLAGS.aflw2000, FLAGS.num, FLAGS.batch, FLAGS.flip))
    else:
      results.append(evaluate_synthetic(w, FLAGS.num, FLAGS.batch, FLAGS.heldout, FLAGS.flip))
  worlds = sorted({r.get("heldout", "") for r in results})
  name = ("AFLW2000-3D" if FLAGS.aflw2000 else
          f"held-out synthetic faces (seed 1, exact truth; world: {', '.join(worlds)})")
  name += ", flip-averaged maps" if FLAGS.flip else ", one pass (--noflip)"
  table = format_table(results, name)
  if FLAGS.curve:
    table += "\n\nLearning curves (held-out faces logged during training):\n\n"
    table += format_curves(workdirs)
  print(table)
  if FLAGS.out:
    out = pathlib.Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
