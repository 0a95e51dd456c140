"""Recovery as a plot: predicted vs true per-face quantities, and pigment error maps.

Written by `eval.recovery` as ``recovery_scatter.png``: three scatter plots (per-face mean
melanin and haemoglobin as volume fractions, camera b (both components)) each with the
identity line and its Pearson r, and for a few faces the absolute error maps of melanin and
haemoglobin in network coordinates beside the input.
"""

from __future__ import annotations

import numpy as np

from eval import metrics


def save_recovery_scatter(path, per_face: dict, camera: dict, images, pred, truth,
                          rows: int = 4, title: str | None = None) -> None:
  """Writes the figure.

  Args:
    path: output PNG.
    per_face: ``{"melanin"/"haemoglobin": {"true", "predicted", "pearson_r"}}`` (fractions).
    camera: ``{"true": (N, 2), "predicted": (N, 2)}`` camera b per face.
    images: (B, H, W, 3) inputs of the first batch; pred / truth: its outputs and truth
      (``fmel``, ``fblood``, ``mask``).
    rows: faces shown with error maps.
    title: figure title.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  rows = min(rows, len(images))
  fig = Figure(figsize=(9.6, 3.2 + 1.7 * ((rows + 1) // 2)))
  FigureCanvasAgg(fig)
  grid = fig.add_gridspec(1 + (rows + 1) // 2, 6, height_ratios=[2.0] + [1.0] * ((rows + 1) // 2))

  def scatter(ax, t, p, label, r):
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    ax.scatter(t, p, s=5, alpha=0.6)
    lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"true {label}", fontsize=7)
    ax.set_ylabel("predicted", fontsize=7)
    ax.set_title(f"{label}: r = {'n/a' if r is None or np.isnan(r) else f'{r:.2f}'}", fontsize=8)
    ax.tick_params(labelsize=6)

  for c, key in enumerate(("melanin", "haemoglobin")):
    ax = fig.add_subplot(grid[0, 2 * c:2 * c + 2])
    scatter(ax, per_face[key]["true"], per_face[key]["predicted"],
            f"per-face mean {key} (fraction)", per_face[key]["pearson_r"])
  ax = fig.add_subplot(grid[0, 4:6])
  bt, bp = np.asarray(camera["true"]), np.asarray(camera["predicted"])
  for j, marker in enumerate(("o", "^")):
    ax.scatter(bt[:, j], bp[:, j], s=5, alpha=0.6, marker=marker, label=f"b{j + 1}")
  lo, hi = min(bt.min(), bp.min()), max(bt.max(), bp.max())
  ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
  r = metrics.pearson(bt.ravel(), bp.ravel())
  ax.set_title(f"camera b (both components): r = {r:.2f}", fontsize=8)
  ax.set_xlabel("true b", fontsize=7)
  ax.set_ylabel("predicted", fontsize=7)
  ax.legend(fontsize=6)
  ax.tick_params(labelsize=6)
  for i in range(rows):
    m = truth["mask"][i].astype(bool)
    g = grid[1 + i // 2, 3 * (i % 2):3 * (i % 2) + 3].subgridspec(1, 3)
    panels = [(images[i], {}, "input"),
              (np.where(m, np.abs(pred["fmel"][i] - truth["fmel"][i]), np.nan),
               dict(cmap="inferno", vmin=0, vmax=0.5), "|melanin err|"),
              (np.where(m, np.abs(pred["fblood"][i] - truth["fblood"][i]), np.nan),
               dict(cmap="inferno", vmin=0, vmax=0.5), "|haemoglobin err|")]
    for j, (img, kw, label) in enumerate(panels):
      ax = fig.add_subplot(g[0, j])
      im = ax.imshow(img, interpolation="nearest", **kw)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(f"face {i}: {label}" if j == 0 else label, fontsize=6)
      if j == 2 and i % 2 == 1:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
  fig.suptitle(title or "Recovery on held-out synthetic faces (error maps: network "
               "coordinates, colour scale 0-0.5)", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
