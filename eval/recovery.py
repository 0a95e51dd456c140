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

Writes to ``--out`` (default WORKDIR/eval): ``recovery.json``, ``recovery.md`` (the table)
and ``recovery.png`` (truth vs prediction for a few faces, and predicted vs true mean
pigment per face).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
from typing import Any

import numpy as np

from eval import metrics

OUTPUT_KEYS = ("fmel", "fblood", "shading", "specular", "weights", "t", "b", "linear_input")
RENDER_KEYS = ("linear_srgb", "albedo_linear_srgb", "illuminant")
TRUTH_KEYS = ("fmel", "fblood", "melanin", "haemoglobin", "diffuse", "specular", "albedo",
              "mask", "weights", "t", "b")
STATS_FACES = 256  # training faces read for the baseline means
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


class CheckpointNotFoundError(FileNotFoundError):
  """The work directory holds no BioFaceNet checkpoint."""


@dataclasses.dataclass
class Restored:
  """A restored BioFaceNet: parameters, model config, run config and checkpoint step."""
  params: Any
  batch_stats: Any
  model: Any
  config: Any
  step: int
  workdir: pathlib.Path


def load_model(workdir: str | pathlib.Path, how_to_train: str | None = None) -> Restored:
  """Restores the latest checkpoint of a training run directory.

  Raises:
    CheckpointNotFoundError: `workdir` has no ``checkpoints/<step>`` (nothing is created).
  """
  workdir = pathlib.Path(workdir)
  ckpt = workdir / "checkpoints"
  steps = [p for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []
  if not steps:
    hint = how_to_train or ("python -m train.biofacenet --config train/configs/biofacenet.py "
                            f"--workdir {workdir}")
    raise CheckpointNotFoundError(f"no BioFaceNet checkpoint in {ckpt}; train one with: {hint}")
  from train.biofacenet_task import restore_for_inference  # pylint: disable=g-import-not-at-top
  try:
    params, batch_stats, model, config, step = restore_for_inference(workdir)
  except FileNotFoundError as error:
    raise CheckpointNotFoundError(str(error)) from error
  return Restored(params, batch_stats, model, config, int(step), workdir)


class Predictor:
  """Runs a restored BioFaceNet (evaluation mode) on images in fixed-size jitted batches."""

  def __init__(self, restored: Restored, spectra, lut, batch_size: int = 32):
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
    self.restored, self.batch_size = restored, int(batch_size)
    model = restored.model

    def run(params, batch_stats, image, spectra, lut):
      out = biofacenet.predict(params, batch_stats, image, model, spectra=spectra, lut=lut)
      return ({k: out[k] for k in OUTPUT_KEYS}
              | {k: out["render"][k] for k in RENDER_KEYS})

    self._run = jax.jit(run)
    self._args = (spectra, lut)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """(N, H, W, 3) gamma-encoded sRGB in [0, 1] -> dict of NumPy outputs with N rows."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    if not (np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1):
      raise ValueError("images must hold finite gamma-encoded sRGB values in [0, 1]")
    n, b = len(images), self.batch_size
    parts = []
    for start in range(0, n, b):
      chunk = images[start:start + b]
      pad = b - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
      out = self._run(self.restored.params, self.restored.batch_stats, chunk, *self._args)
      parts.append({k: np.asarray(v)[:b - pad] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def evaluation_sets(config, n: int, cache_dir: str | None = None):
  """(train, held-out, description) synthetic sets with ground truth for a run config.

  Args:
    config: the run's config (from its checkpoint).
    n: faces wanted (NFE runs: the size of the generated held-out set).
    cache_dir: synthetic-face cache; None = the run's ``data.cache_dir`` (synthetic runs) or
      the default cache.
  """
  if config.data.source == "synthetic":
    from train.biofacenet_task import load_datasets  # pylint: disable=g-import-not-at-top
    if cache_dir is not None:
      config = config.copy_and_resolve_references()
      config.data.cache_dir = str(cache_dir)
    train, holdout = load_datasets(config)
    return train, holdout, (f"the held-out synthetic faces of the run's config ({len(holdout)} "
                            f"faces, {config.data.size}x{config.data.size}, seed "
                            f"{config.data.seed})")
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
  for key, p, t, mean in (("melanin", pred["fmel"], truth["fmel"], means["fmel"]),
                          ("haemoglobin", pred["fblood"], truth["fblood"], means["fblood"]),
                          ("melanin_fraction", pred["fraction_melanin"], truth["melanin"],
                           means["melanin"]),
                          ("haemoglobin_fraction", pred["fraction_haemoglobin"],
                           truth["haemoglobin"], means["haemoglobin"])):
    err[key] = dict(model=metrics.masked_rmse(p, t, m),
                    baseline=metrics.masked_rmse(const(mean, t), t, m))
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


def save_figure(path, images, pred, truth, per_face=None, rows: int = 4,
                labels: tuple[str, str] = ("truth", "predicted"), title: str | None = None):
  """Truth vs prediction maps for the first `rows` faces, and mean pigment scatter plots.

  Args:
    path: output image file.
    images: (B, H, W, 3) network inputs.
    pred: `Predictor` outputs.
    truth: reference maps ``fmel``, ``fblood``, ``diffuse``, ``specular``, ``albedo`` (linear
      sRGB), ``mask``.
    per_face: optional {"melanin"/"haemoglobin": {"true", "predicted", "pearson_r"}} per-face
      means for the scatter row.
    rows: faces shown.
    labels: names of the reference and predicted rows.
    title: figure title.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from bioface_jax.physics import display  # pylint: disable=g-import-not-at-top
  rows = min(rows, len(images))

  def show(linear):  # linear RGB -> display (power 1/2.2, as the input was linearised)
    return np.clip(np.asarray(display.gamma_encode(np.clip(linear, 0, None))), 0, 1)

  cols = ("image / reconstruction", "melanin", "haemoglobin", "diffuse", "specular", "albedo")
  extra = 1 if per_face else 0
  fig = Figure(figsize=(1.6 * len(cols), 1.6 * 2 * rows + 2.6 * extra + 0.4))
  FigureCanvasAgg(fig)
  grid = fig.add_gridspec(2 * rows + extra, len(cols),
                          height_ratios=[1] * (2 * rows) + [1.6] * extra)
  pig = dict(cmap="magma", vmin=-1, vmax=1)
  for r in range(rows):
    m = truth["mask"][r].astype(bool)
    inside = lambda x: np.where(m, x, np.nan)  # noqa: E731
    pairs = []
    for key in ("diffuse", "specular"):
      p = pred["shading" if key == "diffuse" else key][r]
      t = truth[key][r]
      top = max(float(np.percentile(t[m], 99)), 1e-12) if m.any() else 1.0
      k = metrics.best_scale(p[None], t[None], m[None])[0]
      pairs.append((inside(t / top), inside(k * p / top), dict(cmap="gray", vmin=0, vmax=1)))
    k_alb = metrics.best_scale(pred["albedo_linear_srgb"][r][None], truth["albedo"][r][None],
                               m[None])[0]
    panels = [(images[r], show(pred["linear_srgb"][r]), {}),
              (inside(truth["fmel"][r]), inside(pred["fmel"][r]), pig),
              (inside(truth["fblood"][r]), inside(pred["fblood"][r]), pig), *pairs,
              (show(truth["albedo"][r] * m[..., None]),
               show(k_alb * pred["albedo_linear_srgb"][r] * m[..., None]), {})]
    for c, (t_img, p_img, kw) in enumerate(panels):
      for j, (img, label) in enumerate(zip((t_img, p_img), labels)):
        ax = fig.add_subplot(grid[2 * r + j, c])
        ax.imshow(img, interpolation="nearest", **kw)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0 and j == 0:
          ax.set_title(cols[c], fontsize=8)
        if c == 0:
          ax.set_ylabel(f"{r}: {label}", fontsize=7)
  for c, key in enumerate(("melanin", "haemoglobin") if per_face else ()):
    ax = fig.add_subplot(grid[2 * rows, 3 * c:3 * c + 3])
    t, p = np.asarray(per_face[key]["true"]), np.asarray(per_face[key]["predicted"])
    ax.scatter(t, p, s=6)
    lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"true mean {key} (volume fraction)", fontsize=8)
    ax.set_ylabel("predicted", fontsize=8)
    r = per_face[key]["pearson_r"]
    ax.set_title(f"per-face mean {key}: r = {'n/a' if r is None else f'{r:.3f}'}", fontsize=8)
    ax.tick_params(labelsize=7)
  fig.suptitle(title or "BioFaceNet recovery on held-out synthetic faces (pigments: network "
               "coordinates [-1, 1]; shading, albedo: prediction x best per-image scale)",
               fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def evaluate(restored: Restored, n: int = 256, batch_size: int = 32, cache_dir: str | None = None,
             stream=sys.stdout) -> tuple[dict, dict]:
  """Runs the evaluation; returns (results for the JSON, arrays of the first batch for figures)."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.train_lib import Progress  # pylint: disable=g-import-not-at-top
  if n < 1:
    raise ValueError(f"--n must be >= 1, got {n}")
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  train, holdout, source = evaluation_sets(restored.config, n, cache_dir)
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
  results = dict(workdir=str(restored.workdir), step=restored.step, n_faces=int(count),
                 data=source, quantities=quantities, per_face_mean=per_face,
                 conventions=dict(aggregation="mean (and std) over faces of per-face errors, "
                                  "each over the face mask", masks="the true face masks"))
  return results, first


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m eval.recovery",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="training run directory (with checkpoints/)")
  p.add_argument("--n", type=int, default=256, help="held-out faces to evaluate (default 256)")
  p.add_argument("--out", default=None, help="output directory (default WORKDIR/eval)")
  p.add_argument("--batch-size", type=int, default=32, help="faces per network call")
  p.add_argument("--cache-dir", default=None,
                 help="synthetic-face cache (default: the run's data.cache_dir, else "
                      "~/.cache/bioface_jax)")
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
  results, first = evaluate(restored, args.n, args.batch_size, args.cache_dir)
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "eval")
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
  print(f"wrote {out / 'recovery.json'}, {out / 'recovery.md'} and {out / 'recovery.png'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
