"""The truth-vs-prediction figure of the evaluation commands (`eval.recovery`, `eval.iset_table1`).

For a few faces, each reference map (pigments, diffuse and specular shading, albedo, the input
image) is drawn above the network's prediction, scaled as in the error tables; optionally a last
row plots the predicted against the true mean pigment per face.
"""

from __future__ import annotations

import numpy as np

from eval import metrics


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
