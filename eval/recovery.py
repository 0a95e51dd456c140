"""How well does a trained BioFaceNet recover the physics of faces with exact ground truth?

    python -m eval.recovery --workdir runs/default [--n 256] [--out DIR] [--batch-size 32]

Restores the latest checkpoint in ``--workdir`` and runs it on held-out synthetic faces: those
of the run's own config (`train.biofacenet_task.load_datasets`) when it trained on synthetic
faces, else (NFE runs) a synthetic set of the run's image size generated into the cache (the
output says which). Every estimated quantity is compared with the truth the faces were
rendered from, per face, and summarised as the mean (and std) over faces; beside each, a
trivial baseline that predicts the training-set mean (or, for shading, a constant map), so a
reader can tell whether the model learnt anything. Conventions are in `QUANTITIES` and
`eval.metrics`; they are printed with the table and stored in the JSON.

Writes to ``--out`` (default WORKDIR/eval; ./eval_biofacenet for the shipped model, which
stays unchanged: `eval.outputs`): ``recovery.json``, ``recovery.md`` (the table),
``recovery.png`` (truth vs prediction for a few faces, and predicted vs true mean
pigment per face) and ``recovery_scatter.png`` (predicted vs true per-face mean melanin,
haemoglobin and camera b with the identity line, and pigment error maps of a few faces).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np

from eval import metrics
from eval import outputs
# Also re-exported: they were defined here before eval.model_io / eval.comparison_figure.
from eval.comparison_figure import save_figure
from eval.recovery_figure import save_recovery_scatter
from eval.model_io import (OUTPUT_KEYS, RENDER_KEYS, CheckpointNotFoundError,  # noqa: F401
                           Predictor, Restored, load_model)

TRUTH_KEYS = ("fmel", "fblood", "melanin", "haemoglobin", "diffuse", "specular", "albedo",
              "mask", "weights", "t", "b")
STATS_FACES = 256  # training faces read for the baseline means
HELDOUT_WORLDS = ("own", "faces", "scenes")  # --heldout: which synthetic world is scored
# key: (label, convention, baseline).
QUANTITIES = {
    "melanin": ("Melanin", "RMSE of network coordinates in [-1, 1]",
                "training-set mean coordinate"),
    "haemoglobin": ("Haemoglobin", "RMSE of network coordinates in [-1, 1]",
                    "training-set mean coordinate"),
    "melanin_fraction": ("Melanin (fraction)", "RMSE of volume fractions (0-0.43)",
                         "training-set mean fraction"),
    "haemoglobin_fraction": ("Haemoglobin (fraction)", "RMSE of volume fractions (0-0.07)",
                             "training-set mean fraction"),
    "melanin_offset": ("Melanin: per-face mean offset", "|mean over the mask of prediction - "
                       "truth|, network coordinates", "training-set mean coordinate"),
    "melanin_pattern": ("Melanin: within-face pattern", "RMSE after removing the per-face "
                        "mean offset", "training-set mean coordinate (= the truth's std)"),
    "haemoglobin_offset": ("Haemoglobin: per-face mean offset", "|mean over the mask of "
                           "prediction - truth|, network coordinates",
                           "training-set mean coordinate"),
    "haemoglobin_pattern": ("Haemoglobin: within-face pattern", "RMSE after removing the "
                            "per-face mean offset", "training-set mean coordinate (= the "
                            "truth's std)"),
    "diffuse": ("Diffuse shading", "truth / its max on the face; prediction x best per-image "
                "scale", "constant map (x best scale)"),
    "specular": ("Specular shading", "truth / max of the true diffuse on the face; prediction "
                 "x its own best per-image scale", "constant map (x best scale)"),
    "albedo": ("Diffuse albedo", "linear sRGB; prediction x best per-image scale",
               "training-set mean colour (x best scale)"),
    "reconstruction": ("Reconstruction", "linear sRGB vs the network's linear input x^2.2, "
                       "no scale", "training-set mean linear colour"),
    "camera_b": ("Camera b", "Euclidean distance in the 2-D PCA space",
                 "training-set mean b"),
    "illuminant": ("Illuminant spectrum", "RMSE of spectra each / its band mean",
                   "training-set mean spectrum"),
    "illuminant_angle": ("Illuminant angle", "angle between spectra, degrees",
                         "training-set mean spectrum"),
}


def evaluation_sets(config, n: int, cache_dir: str | None = None, heldout: str = "own"):
  """(train, held-out, description) synthetic sets with ground truth for a run config.

  When the run's synthetic set is not in the cache, only the faces the evaluation reads (the
  first `n` held-out faces and the `STATS_FACES` training faces of the baseline means) are
  generated, in memory: the same faces the cached set would hold.

  Args:
    config: the run's config (from its checkpoint).
    n: faces wanted (NFE runs: the size of the generated held-out set).
    cache_dir: synthetic-face cache; None = the run's ``data.cache_dir`` (synthetic runs) or
      the default cache.
    heldout: "own" = the run's own synthetic world; "faces" / "scenes" = that world at its
      default realism switches (`train.configs.biofacenet.scene_switches`) with the run's
      size, count, seed and split, so runs trained on different worlds or switches are scored
      on the same held-out faces (a scenes run on the skin-only faces of the `faces` variant
      and the other way round; the realism ablation's runs on the full scenes).
  """
  if heldout not in HELDOUT_WORLDS:
    raise ValueError(f"heldout must be one of {', '.join(HELDOUT_WORLDS)}, got {heldout!r}")
  if config.data.source == "synthetic":
    from train.biofacenet_task import load_datasets  # pylint: disable=g-import-not-at-top
    config = config.copy_and_resolve_references()
    if cache_dir is not None:
      config.data.cache_dir = str(cache_dir)
    own = config.data.get("world", "faces")
    if heldout != "own":
      from train.configs import biofacenet as biofacenet_configs  # pylint: disable=g-import-not-at-top
      config.data.world = heldout
      config.data.scene = biofacenet_configs.scene_switches()
    world = config.data.get("world", "faces")
    train, holdout = load_datasets(config, lazy=True)  # Uncached: only the faces used.
    which = ("the run's config" if world == own
             else f"the {world!r} world (the run trained on {own!r})")
    return train, holdout, (f"the held-out synthetic faces of {which} ({len(holdout)} "
                            f"faces, {config.data.size}x{config.data.size}, seed "
                            f"{config.data.seed})")
  if heldout == "scenes":
    raise ValueError("--heldout scenes needs a run trained on synthetic data")
  from data.synth import dataset as synth_dataset  # pylint: disable=g-import-not-at-top
  total = n + STATS_FACES
  train, holdout = synth_dataset.synthetic_dataset(cache_dir, total, int(config.data.size), 0,
                                                   holdout_fraction=n / total)
  return train, holdout, (f"NOT the run's data (it trained on {config.data.source!r}, which has "
                          f"no ground truth): {n} synthetic {config.data.size}x"
                          f"{config.data.size} faces generated for this evaluation (seed 0)")


def training_means(train, spectra, max_faces: int = STATS_FACES) -> dict[str, np.ndarray]:
  """Training-set means of every quantity, over the face pixels of up to `max_faces` faces."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  idx = np.unique(np.linspace(0, len(train) - 1, min(len(train), max_faces)).astype(np.int64))
  t = train.truth(idx, ("fmel", "fblood", "melanin", "haemoglobin", "albedo", "linear_image",
                        "mask", "weights", "t", "b"))
  m = t["mask"].astype(bool)
  means = {k: np.float64(t[k][m].mean()) for k in ("fmel", "fblood", "melanin", "haemoglobin")}
  means["albedo"] = t["albedo"][m].mean(0)
  means["linear"] = t["linear_image"][m].mean(0)
  means["b"] = t["b"].mean(0)
  means["illuminant"] = np.asarray(physics.illuminant(spectra, t["weights"], t["t"])).mean(0)
  return means


def face_errors(pred: dict, truth: dict, illuminant: np.ndarray, means: dict) -> dict:
  """Per-face errors {quantity: {"model": (B,), "baseline": (B,)}} for one batch.

  Args:
    pred: `Predictor` outputs; ``fraction_melanin``/``fraction_haemoglobin`` added by caller.
    truth: ground truth (`TRUTH_KEYS`) of the same faces.
    illuminant: (B, 33) true illuminant spectra.
    means: `training_means`.
  """
  m = truth["mask"].astype(bool)
  const = lambda v, like: np.broadcast_to(np.asarray(v), like.shape)  # noqa: E731
  err = {}
  coordinates = (("melanin", pred["fmel"], truth["fmel"], means["fmel"]),
                 ("haemoglobin", pred["fblood"], truth["fblood"], means["fblood"]))
  fractions = (("melanin_fraction", pred["fraction_melanin"], truth["melanin"], means["melanin"]),
               ("haemoglobin_fraction", pred["fraction_haemoglobin"], truth["haemoglobin"],
                means["haemoglobin"]))
  for key, p, t, mean in coordinates + fractions:
    err[key] = dict(model=metrics.masked_rmse(p, t, m),
                    baseline=metrics.masked_rmse(const(mean, t), t, m))
  # Split of the pigment RMSE: RMSE^2 = offset^2 + pattern^2 per face. The offset is what a
  # wrong light/camera guess shifts; the pattern is the within-face map (shading leakage).
  for key, p, t, mean in coordinates:
    for who, q in (("model", np.asarray(p, np.float64)), ("baseline", const(mean, t))):
      offset = metrics.masked_mean(q, m) - metrics.masked_mean(t, m)
      err.setdefault(f"{key}_offset", {})[who] = np.abs(offset)
      err.setdefault(f"{key}_pattern", {})[who] = metrics.masked_rmse(
          q - offset[:, None, None], t, m)
  top = metrics.mask_max(truth["diffuse"], m)
  norm = np.where(top > 0, top, 1.0)[:, None, None]
  for key, p in (("diffuse", pred["shading"]), ("specular", pred["specular"])):
    t = truth[key] / norm
    err[key] = dict(model=metrics.scaled_rmse(p, t, m)[0],
                    baseline=metrics.scaled_rmse(np.ones_like(t), t, m)[0])
  err["albedo"] = dict(model=metrics.scaled_rmse(pred["albedo_linear_srgb"], truth["albedo"], m)[0],
                       baseline=metrics.scaled_rmse(const(means["albedo"], truth["albedo"]),
                                                    truth["albedo"], m)[0])
  x = pred["linear_input"]
  err["reconstruction"] = dict(model=metrics.masked_rmse(pred["linear_srgb"], x, m),
                               baseline=metrics.masked_rmse(const(means["linear"], x), x, m))
  b = truth["b"]
  err["camera_b"] = dict(model=metrics.vector_distance(pred["b"], b),
                         baseline=metrics.vector_distance(const(means["b"], b), b))
  base_e = const(means["illuminant"], illuminant)
  err["illuminant"] = dict(model=metrics.spectrum_rmse(pred["illuminant"], illuminant),
                           baseline=metrics.spectrum_rmse(base_e, illuminant))
  err["illuminant_angle"] = dict(model=metrics.spectral_angle(pred["illuminant"], illuminant),
                                 baseline=metrics.spectral_angle(base_e, illuminant))
  return err


def markdown_table(quantities: dict) -> str:
  """The results table (markdown) from ``results["quantities"]``."""
  lines = ["| Quantity | BioFaceNet | Baseline | Convention | Baseline predicts |",
           "|---|---|---|---|---|"]
  for key, q in quantities.items():
    model, base = q["model"], q["baseline"]
    lines.append(f"| {q['label']} | {model['mean']:.4f} ± {model['std']:.4f} | "
                 f"{base['mean']:.4f} ± {base['std']:.4f} | {q['convention']} | "
                 f"{q['baseline_predicts']} |")
  return "\n".join(lines)


def evaluate(restored: Restored, n: int = 256, batch_size: int = 32, cache_dir: str | None = None,
             stream=sys.stdout, heldout: str = "own") -> tuple[dict, dict]:
  """Runs the evaluation; returns (results for the JSON, arrays of the first batch for figures)."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import Progress  # pylint: disable=g-import-not-at-top
  if n < 1:
    raise ValueError(f"--n must be >= 1, got {n}")
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  train, holdout, source = evaluation_sets(restored.config, n, cache_dir, heldout)
  count = min(n, len(holdout))
  if count == 0:
    raise ValueError(f"the held-out set is empty ({source})")
  say = lambda text: print(text, file=stream, flush=True)  # noqa: E731
  say(f"evaluating checkpoint step {restored.step} of {restored.workdir} on {count} faces: "
      f"{source}")
  means = training_means(train, spectra)
  predictor = Predictor(restored, spectra, lut, batch_size)
  steps = -(-count // batch_size)
  bar = Progress(steps, batch_size=batch_size, every_steps=max(1, steps // 10), stream=stream)
  errors = {k: dict(model=[], baseline=[]) for k in QUANTITIES}
  face_means = {k: dict(true=[], predicted=[]) for k in ("melanin", "haemoglobin")}
  camera = dict(true=[], predicted=[])
  first = None
  try:
    for step, start in enumerate(range(0, count, batch_size), 1):
      idx = np.arange(start, min(start + batch_size, count))
      images = holdout.get(idx)["image"]
      truth = holdout.truth(idx, TRUTH_KEYS)
      pred = predictor(images)
      mel, hb = physics.network_to_fractions(pred["fmel"], pred["fblood"])
      pred["fraction_melanin"], pred["fraction_haemoglobin"] = np.asarray(mel), np.asarray(hb)
      illuminant = np.asarray(physics.illuminant(spectra, truth["weights"], truth["t"]))
      for key, pair in face_errors(pred, truth, illuminant, means).items():
        for who, values in pair.items():
          errors[key][who].append(values)
      m = truth["mask"].astype(bool)
      for key, frac in (("melanin", "fraction_melanin"), ("haemoglobin", "fraction_haemoglobin")):
        face_means[key]["true"].append(metrics.masked_mean(truth[key], m))
        face_means[key]["predicted"].append(metrics.masked_mean(pred[frac], m))
      camera["true"].append(np.asarray(truth["b"]))
      camera["predicted"].append(np.asarray(pred["b"]))
      if first is None:
        first = dict(images=images, pred=pred, truth=truth)
      bar.update(step, {"faces": idx[-1] + 1})
  finally:
    bar.close()
  quantities = {}
  for key, (label, convention, baseline) in QUANTITIES.items():
    quantities[key] = dict(label=label, convention=convention, baseline_predicts=baseline,
                           **{who: metrics.summarise(np.concatenate(v))
                              for who, v in errors[key].items()})
  per_face = {}
  for key, v in face_means.items():
    t, p = np.concatenate(v["true"]), np.concatenate(v["predicted"])
    r = metrics.pearson(t, p)  # NaN (constant prediction) -> None: JSON has no NaN.
    per_face[key] = dict(true=t.tolist(), predicted=p.tolist(),
                         pearson_r=None if math.isnan(r) else r)
  bt, bp = np.concatenate(camera["true"]), np.concatenate(camera["predicted"])
  results = dict(workdir=str(restored.workdir), step=restored.step, n_faces=int(count),
                 data=source, quantities=quantities, per_face_mean=per_face,
                 camera_b=dict(true=bt.tolist(), predicted=bp.tolist()),
                 conventions=dict(aggregation="mean (and std) over faces of per-face errors, "
                                  "each over the face mask", masks="the true face masks"))
  return results, first


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m eval.recovery",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="training run directory (with checkpoints/)")
  p.add_argument("--n", type=int, default=256, help="held-out faces to evaluate (default 256)")
  p.add_argument("--out", default=None, help="output directory (default WORKDIR/eval, or "
                 "./eval_<name> for a model inside the package such as the shipped one)")
  p.add_argument("--batch-size", type=int, default=32, help="faces per network call")
  p.add_argument("--cache-dir", default=None,
                 help="synthetic-face cache (default: the run's data.cache_dir, else "
                      "~/.cache/bioface_jax)")
  p.add_argument("--heldout", choices=HELDOUT_WORLDS, default="own",
                 help="which synthetic world's held-out faces: the run's own (default), or "
                      "'faces' / 'scenes' at the default realism switches with the run's size, "
                      "count and seed, to score runs trained on different worlds or switches "
                      "on the same faces")
  p.add_argument("--figure-rows", type=int, default=4, help="faces shown in recovery.png")
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  if args.n < 1 or args.batch_size < 1:
    build_parser().error("--n and --batch-size must be >= 1")
  try:
    restored = load_model(args.workdir)
  except CheckpointNotFoundError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  results, first = evaluate(restored, args.n, args.batch_size, args.cache_dir,
                           heldout=args.heldout)
  out = pathlib.Path(args.out) if args.out else outputs.evaluation_dir(args.workdir)
  out.mkdir(parents=True, exist_ok=True)
  table = markdown_table(results["quantities"])
  header = (f"BioFaceNet recovery: checkpoint step {results['step']} of {results['workdir']}, "
            f"{results['n_faces']} faces ({results['data']}).\nErrors: mean ± std over faces "
            "of per-face errors on the true face mask.")
  print("\n" + header + "\n\n" + table + "\n")
  (out / "recovery.md").write_text(header + "\n\n" + table + "\n")
  (out / "recovery.json").write_text(json.dumps(results, indent=1))
  save_figure(out / "recovery.png", first["images"], first["pred"], first["truth"],
              results["per_face_mean"], args.figure_rows)
  save_recovery_scatter(out / "recovery_scatter.png", results["per_face_mean"],
                        results["camera_b"], first["images"], first["pred"], first["truth"],
                        args.figure_rows)
  print(f"wrote {out / 'recovery.json'}, {out / 'recovery.md'}, {out / 'recovery.png'} and "
        f"{out / 'recovery_scatter.png'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
