"""The recovery curve: held-out recovery errors over training steps, from ``metrics.jsonl``.

    python -m eval.recovery_curve --workdir runs/default [--out curve.png]

Plots every ``eval/recovery/*`` series that the BioFaceNet task logs at each evaluation
(melanin and haemoglobin RMSE, camera-b distance, illuminant angle, reconstruction RMSE, on
the run's held-out synthetic faces), one panel each. When ``recovery.json`` (written by
``eval.recovery`` to WORKDIR/eval, or ./eval_<name> for a model inside the package:
`eval.outputs`) exists, its constant baselines are drawn as dashed lines.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from eval import outputs

SERIES = (("recovery/melanin_rmse", "melanin RMSE", "melanin"),
          ("recovery/haemoglobin_rmse", "haemoglobin RMSE", "haemoglobin"),
          ("recovery/camera_b", "camera b distance", "camera_b"),
          ("recovery/illuminant_angle", "illuminant angle (deg)", "illuminant_angle"),
          ("recovery/reconstruction_rmse", "reconstruction RMSE", "reconstruction"))


def read_curve(path: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  """{series: [(step, value)]} of the eval rows of a metrics.jsonl file."""
  curves: dict[str, list[tuple[int, float]]] = {k: [] for k, _, _ in SERIES}
  for n, line in enumerate(path.read_text().splitlines(), 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path}:{n}: not JSON ({error})") from error
    for key in curves:
      if f"eval/{key}" in row:
        curves[key].append((int(row["step"]), float(row[f"eval/{key}"])))
  return curves


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m eval.recovery_curve",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="run directory (or export) with metrics.jsonl")
  p.add_argument("--out", default=None, help="PNG (default WORKDIR/eval/recovery_curve.png; "
                 "./eval_<name>/ for a model inside the package such as the shipped one)")
  args = p.parse_args(argv)
  workdir = pathlib.Path(args.workdir)
  path = workdir / "metrics.jsonl"
  if not path.is_file():
    print(f"error: no {path}", file=sys.stderr)
    return 2
  curves = read_curve(path)
  if not any(curves.values()):
    print(f"error: {path} has no eval/recovery/* rows (a run from before they were logged, or "
          "one without ground truth)", file=sys.stderr)
    return 2
  baselines = {}
  rec = outputs.evaluation_dir(workdir) / "recovery.json"
  if rec.is_file():
    q = json.loads(rec.read_text())["quantities"]
    baselines = {k: q[k]["baseline"]["mean"] for _, _, k in SERIES if k in q}
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(12, 2.6))
  FigureCanvasAgg(fig)
  for i, (key, label, base_key) in enumerate(SERIES):
    ax = fig.add_subplot(1, len(SERIES), i + 1)
    if curves[key]:
      steps, values = zip(*curves[key])
      ax.plot(steps, values, "o-", ms=3, label="model")
    if base_key in baselines:
      ax.axhline(baselines[base_key], color="k", ls="--", lw=0.8, label="constant baseline")
    ax.set_title(label, fontsize=8)
    ax.set_xlabel("step", fontsize=7)
    ax.tick_params(labelsize=6)
    if i == 0:
      ax.legend(fontsize=6)
  fig.suptitle(f"held-out recovery over training ({workdir})", fontsize=8)
  fig.tight_layout()
  out = (pathlib.Path(args.out) if args.out else
         outputs.evaluation_dir(workdir) / "recovery_curve.png")
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=90)
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
