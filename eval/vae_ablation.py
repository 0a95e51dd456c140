"""The paper's ablation at a CPU budget: ``python -m eval.vae_ablation [--preset ablation]``.

Trains (or reuses: finished runs are skipped, unfinished ones resume) the ten configurations
{l1, l2, ssim, ssim_l1, ssim_l2} x {mask, no mask} plus ``ssim_l2_mask`` with the authors'
sampling quirk, all on the same data and the same held-out test scenes; scores them with
`eval.vae_scoring` (protocol A "as deployed" compared with the paper's chart values, protocol B
"face pixels"), writes ``table.md`` / ``table.json`` (mean and standard error over test images)
and ``grid.png`` (six test faces: input | each configuration, protocol A) into ``--out``, and
answers the paper's four questions from paired per-image comparisons (a gap within 2 standard
errors is a tie). Models are scored with precise BatchNorm statistics re-estimated from
training batches (``--bn_stats precise``, default; ``running`` uses the moving averages, which
after a few hundred steps at Keras' momentum 0.99 still carry their initial values and made
every model look worse than the mean image; docs/face_vae.md).

Example (every configuration beats the mean-image baseline at this budget; measured numbers and
times are in docs/face_vae.md)::

  nice -n 10 python -m eval.vae_ablation --preset ablation --steps 300 --out runs/vae_ablation

``--models CONFIGURATION=DIR,...`` scores trained models instead of training them (runs, exports,
or the authors' hypotheses imported with ``python -m train.import_weights face_vae_keras``;
docs/weights.md), e.g. the authors' H9 on the CelebA test split with its own BatchNorm
statistics::

  python -m eval.vae_ablation --models H9=weights/vae_h9 --preset paper --data celeba \
      --bn_stats running --out runs/vae_authors
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from train import absl_app  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_string("preset", "ablation", "Config preset for every run (ablation, cpu, smoke).")
  flags.DEFINE_integer("steps", 300, "Training steps per configuration (300: every configuration\n"
                       "beats the mean image on face pixels, docs/face_vae.md).")
  flags.DEFINE_string("out", "runs/vae_ablation", "Directory for the runs, table and figure.")
  flags.DEFINE_list("configs", [], "Subset of configurations (default: all ten + authors).")
  flags.DEFINE_string("data", "synthetic", "synthetic or celeba.")
  flags.DEFINE_string("cache_dir", "", "Synthetic data cache ('' = ~/.cache/bioface_jax).")
  flags.DEFINE_integer("n_test", 0, "Test scenes (0 = the preset's).")
  flags.DEFINE_enum("bn_stats", "precise", ["precise", "running"],
                    "BatchNorm statistics for scoring: 'precise' re-estimates them from "
                    "--bn_batches training batches with the trained weights frozen "
                    "(face_vae.population_batch_stats); 'running' uses the moving averages.")
  flags.DEFINE_integer("bn_batches", 8, "Training batches (of 32) for --bn_stats=precise.")
  flags.DEFINE_list("models", [], "CONFIGURATION=DIR pairs of trained models to score instead of "
                    "training (runs, exports or the authors' weights imported by\n"
                    "train.import_weights, e.g. H9=weights/vae_h9; the authors' are 144 px: "
                    "--preset paper --data celeba --bn_stats running).")


# face-vae-spec.md section 7: README bar charts, +-0.001.
PAPER = {  # 1-SSIM, 1-MS-SSIM, LPIPS, 1-VIF, 10 l1, 10 l2
    "l1": (.373, .103, .174, .574, .587, .826), "l1_mask": (.343, .095, .152, .541, .534, .774),
    "ssim_l1": (.338, .090, .162, .560, .546, .781),
    "ssim_l1_mask": (.311, .082, .146, .529, .508, .732),
    "l2": (.377, .100, .172, .572, .577, .797), "l2_mask": (.322, .082, .147, .527, .501, .694),
    "ssim_l2": (.359, .095, .169, .566, .562, .782),
    "ssim_l2_mask": (.307, .077, .144, .523, .487, .682),
    "ssim": (.314, .085, .157, .550, .601, .852), "ssim_mask": (.321, .093, .147, .537, .585, .836),
}
COLUMNS = (("ssim", "1-SSIM", 0), ("ms_ssim", "1-MS-SSIM", 1), ("lpips", "LPIPS", 2),
           ("vif", "1-VIF", 3), ("l1", "10·l1", 4), ("l2", "10·l2", 5))
HIGHER = {"ssim": True, "ms_ssim": True, "vif": True, "l1": False, "l2": False}
PERCEPTUAL = ("ssim", "ms_ssim", "vif")
LN = ("l1", "l2")
LABEL = {"ssim_l1": "ssim_l1 (H1)", "ssim": "ssim (H5)", "ssim_mask": "ssim_mask (H6)",
         "ssim_l2_mask": "ssim_l2_mask (H9)"}


def _display(metric: str, values: np.ndarray) -> tuple[float, float]:
  """(value, SE) in the paper's form: 1 - x for similarities, 10 x for errors."""
  v = (1.0 - values) if HIGHER[metric] else 10.0 * values
  return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def run_one(name: str, datasets, out: pathlib.Path):
  """Trains (or resumes / reuses) one configuration; returns (params, stats, model, seconds)."""
  from bioface_jax import train_lib  # pylint: disable=g-import-not-at-top
  from train import face_vae_task  # pylint: disable=g-import-not-at-top
  from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top
  authors = name.endswith("+authors")
  base = name.replace("+authors", "")
  config = configs.get_config(f"{base},{FLAGS.preset}" + (",authors" if authors else ""))
  config.num_train_steps = FLAGS.steps
  config.checkpoint_every_steps = max(FLAGS.steps // 2, 1)
  config.figure_every_steps = 0
  config.eval_every_steps = 0
  workdir = out / name
  ckpt = train_lib.Checkpointer(workdir / "checkpoints", 1000, False)
  done = (ckpt.latest_step() or 0) >= FLAGS.steps
  ckpt.close()
  start = time.perf_counter()
  if not done:
    task = face_vae_task.FaceVAETask(config, face_vae_task.model_config(config), *datasets)
    train_lib.train(task.as_task(), config, workdir, progress_stream=sys.stdout)
  seconds = time.perf_counter() - start
  params, stats, model, _, _ = face_vae_task.restore_for_inference(workdir)
  if FLAGS.bn_stats == "precise":
    stats = precise_stats(params, model, datasets[0])
  return params, stats, model, (None if done else seconds)


def precise_stats(params, model, train_set, batch_size: int = 32):
  """BatchNorm statistics from --bn_batches fixed training batches (weights frozen)."""
  from data import pipeline  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  batches = pipeline.iterate_batches(train_set, min(batch_size, len(train_set)), seed=12345)
  images = (next(batches)["image"] for _ in range(FLAGS.bn_batches))
  return face_vae.population_batch_stats(params, images, model)


def answers(scores: dict[str, dict[str, np.ndarray]]) -> list[str]:
  """Q1-Q4 from paired per-image comparisons of protocol A."""
  from eval.vae_scoring import paired  # pylint: disable=g-import-not-at-top
  metrics = [m for m in HIGHER if f"A/{m}" in next(iter(scores.values()))]

  def cmp(a, b, which=None):
    rows = []
    for m in which or metrics:
      if a in scores and b in scores:
        verdict, d, se = paired(scores[a][f"A/{m}"], scores[b][f"A/{m}"], HIGHER[m])
        rows.append((m, {"a": a, "b": b, "tie": "tie"}[verdict], d, se))
    return rows

  def fmt(rows):
    return "; ".join(f"{m}: {w}" for m, w, _, _ in rows)

  lines = ["**Q1, do masks help?** (paper F1: yes, except standalone SSIM on SSIM/MS-SSIM)"]
  for base in ("l1", "l2", "ssim", "ssim_l1", "ssim_l2"):
    rows = cmp(f"{base}_mask", base)
    if rows:
      lines.append(f"- {base}_mask vs {base}: {fmt(rows)}")
  lines.append("**Q2, which standalone loss is best?** (paper F2: l2 beats l1; F3: with masks l2 "
               ">= SSIM perceptually and better on l_n; without masks SSIM far better "
               "perceptually)")
  for a, b, which in (("l2", "l1", None), ("l2_mask", "l1_mask", None),
                      ("l2_mask", "ssim_mask", None), ("ssim", "l2", PERCEPTUAL)):
    rows = cmp(a, b, [m for m in (which or metrics) if m in metrics])
    if rows:
      lines.append(f"- {a} vs {b}: {fmt(rows)}")
  lines.append("**Q3, which l_n goes best with SSIM?** (paper F4: with masks SSIM+l2; without, "
               "SSIM+l1)")
  for a, b in (("ssim_l2_mask", "ssim_l1_mask"), ("ssim_l2", "ssim_l1")):
    rows = cmp(a, b)
    if rows:
      lines.append(f"- {a} vs {b}: {fmt(rows)}")
  lines.append("**Q4, which is best overall?** (paper F5: H9 = ssim_l2_mask on all metrics; F6: "
               "without masks H5 perceptual, H1 on l_n)")
  plain = [k for k in scores if "+" not in k]
  for m in metrics:
    sign = 1 if HIGHER[m] else -1
    best = max(plain, key=lambda k: sign * scores[k][f"A/{m}"].mean())
    nomask = [k for k in plain if not k.endswith("_mask")]
    best_nm = max(nomask, key=lambda k: sign * scores[k][f"A/{m}"].mean()) if nomask else "-"
    ties = [k for k in plain if k != best and cmp(best, k, [m])[0][1] == "tie"]
    lines.append(f"- {m}: best {best} (ties within 2 SE: {', '.join(ties) or 'none'}); "
                 f"best without mask {best_nm}")
  if "baseline+mean_image" in scores:
    lines.append("**Learned at all?** Metrics on which each configuration beats the mean-image "
                 "baseline by > 2 SE (paired), protocol A | protocol B (face pixels):")
    for k in plain:
      wins = []
      for tag, ms in (("A", metrics), ("B", [m for m in ("ssim", "ms_ssim", "l1", "l2")])):
        won = [m for m in ms if paired(scores[k][f"{tag}/{m}"],
                                       scores["baseline+mean_image"][f"{tag}/{m}"],
                                       HIGHER[m])[0] == "a"]
        wins.append(", ".join(won) or "none")
      lines.append(f"- {k}: {wins[0]} | {wins[1]}")
  return lines


def write_table(scores, times, size, out: pathlib.Path) -> str:
  from eval.vae_scoring import ms_ssim_scales  # pylint: disable=g-import-not-at-top
  k = ms_ssim_scales(size)
  head = ("| config | " + " | ".join(f"{t} ours | paper" for _, t, _ in COLUMNS)
          + " | train s |\n|---|" + "---|---|" * len(COLUMNS) + "---|\n")
  lines, data = [], {}
  for name, s in scores.items():
    cells, data[name] = [], {}
    for metric, _, j in COLUMNS:
      paper = PAPER.get(name.replace("+authors", ""), (None,) * 6)[j]
      paper_s = "" if (paper is None or "+" in name) else f"{paper:.3f}"
      if f"A/{metric}" in s:
        v, se = _display(metric, s[f"A/{metric}"])
        data[name][metric] = dict(value=v, se=se)
        cells.append(f"{v:.3f}±{se:.3f} | {paper_s}")
      else:
        cells.append(f"n/a | {paper_s}")
    t = times.get(name)
    lines.append(f"| {LABEL.get(name, name)} | " + " | ".join(cells)
                 + f" | {'reused' if t is None else f'{t:.0f}'} |")
  face = ["", "Protocol B (decoder output on face pixels, mask-weighted):", "",
          "| config | 1-SSIM | 1-MS-SSIM | 10·l1 | 10·l2 |", "|---|---|---|---|---|"]
  for name, s in scores.items():
    vals = [_display(m, s[f"B/{m}"]) for m in ("ssim", "ms_ssim", "l1", "l2")]
    face.append(f"| {LABEL.get(name, name)} | "
                + " | ".join(f"{v:.3f}±{se:.3f}" for v, se in vals) + " |")
    data[name]["face_pixels"] = {m: dict(value=v, se=se) for m, (v, se) in
                                 zip(("ssim", "ms_ssim", "l1", "l2"), vals)}
  n = len(next(iter(scores.values()))["A/ssim"])
  note = (f"Protocol A, {n} test scenes at {size} px; MS-SSIM with f = 9 and {k} scales "
          f"(first {k} power factors renormalised); LPIPS n/a (no offline weights); "
          "± = standard error over images.\n\n")
  text = note + head + "\n".join(lines) + "\n" + "\n".join(face) + "\n"
  (out / "table.md").write_text(text)
  (out / "table.json").write_text(json.dumps(dict(size=size, ms_ssim_scales=k, n_test=n,
                                                  scores=data), indent=1))
  return text


def write_grid(test_images, recons: dict[str, np.ndarray], out: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = ["input"] + list(recons)
  rows = min(6, len(test_images))
  fig, axes = plt.subplots(rows, len(cols), figsize=(1.1 * len(cols), 1.15 * rows), dpi=80,
                           squeeze=False)
  for r in range(rows):
    for c, name in enumerate(cols):
      img = test_images[r] if name == "input" else recons[name][r]
      axes[r, c].imshow(np.clip(img, 0, 1))
      axes[r, c].axis("off")
      if r == 0:
        axes[r, c].set_title(LABEL.get(name, name).replace(" ", "\n", 1), fontsize=6)
  fig.tight_layout(pad=0.2)
  fig.savefig(out / "grid.png")  # ~650 KB at 80 dpi; docs keep a 256-colour copy
  plt.close(fig)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from train import face_vae_task  # pylint: disable=g-import-not-at-top
  from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top
  from eval import vae_scoring  # pylint: disable=g-import-not-at-top
  given = {}
  for spec in FLAGS.models:
    name, _, workdir = spec.partition("=")
    if not workdir:
      raise app.UsageError(f"--models entries are CONFIGURATION=DIR, got {spec!r}")
    given[configs.ALIASES.get(name, name)] = workdir
  names = list(given) or FLAGS.configs or (list(configs.CONFIGURATIONS)
                                           + ["ssim_l2_mask+authors"])
  for name in names:
    configs.parse_configuration(name.replace("+authors", ""))
  out = pathlib.Path(FLAGS.out)
  out.mkdir(parents=True, exist_ok=True)
  base = configs.get_config(f"ssim_l2_mask,{FLAGS.preset}")
  base.data.source = FLAGS.data
  base.data.cache_dir = FLAGS.cache_dir
  if FLAGS.n_test:
    base.data.n_test = FLAGS.n_test
  datasets = face_vae_task.load_datasets(base)
  test = datasets[2]
  size = int(base.model.input_size)
  print(f"MS-SSIM: f = 9, {vae_scoring.ms_ssim_scales(size)} scales at {size} px "
        "(TF's default 5 scales with f = 11 need >= 161 px)")
  scores, times, recons = {}, {}, {}
  for i, name in enumerate(names, 1):
    print(f"[{i}/{len(names)}] {name}", flush=True)
    if name in given:  # a trained model, scored as it is
      params, stats, model, _, _ = face_vae_task.restore_for_inference(given[name])
      if model.input_size != size:
        raise app.UsageError(f"{given[name]} takes {model.input_size} px images, the preset "
                             f"{FLAGS.preset!r} {size} px (the authors' models: --preset paper)")
      if FLAGS.bn_stats == "precise":
        stats = precise_stats(params, model, datasets[0])
      seconds = None
    else:
      params, stats, model, seconds = run_one(name, datasets, out)
    scores[name], recons[name] = vae_scoring.score(params, stats, model, test)
    times[name] = seconds
    text = write_table(scores, times, size, out)  # after every run: partial results survive
    write_grid(test.get(np.arange(min(6, len(test))))["image"], recons, out)
  # A trivial baseline: the mean training image (of the first 4,096: CelebA's 162,770 would not
  # fit in memory) as every decoder output. A configuration that does not beat it has not
  # learned (yet).
  train_mean = datasets[0].get(np.arange(min(len(datasets[0]), 4096)))["image"].mean(0)
  scores["baseline+mean_image"], _ = vae_scoring.score(None, None, model, test,
                                                       constant_pre=train_mean)
  times["baseline+mean_image"] = 0.0
  text = write_table(scores, times, size, out)
  text += "\n" + "\n".join(answers(scores)) + "\n"
  (out / "table.md").write_text(text)
  print(text)
  print(f"wrote {out / 'table.md'}, {out / 'table.json'}, {out / 'grid.png'}")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
