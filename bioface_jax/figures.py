"""The decomposition figure in the layout of the paper's Figure 1.

One row per image: input, reconstruction, diffuse shading, specular shading, melanin,
haemoglobin, diffuse albedo. Used by the trainer (periodic figures) and by `eval.predict`.
matplotlib is imported lazily and only its object API is used (no pyplot state), so this is
safe to call from any thread and does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bioface_jax.physics import display

COLUMNS = ("input", "reconstruction", "diffuse", "specular", "melanin", "haemoglobin",
           "diffuse albedo")


def _display(linear: np.ndarray) -> np.ndarray:
  """Linear RGB -> display with the power 1/2.2 the network's input was linearised with."""
  return np.clip(np.asarray(display.gamma_encode(np.clip(linear, 0.0, None))), 0.0, 1.0)


def _normalise(shading: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
  """Shading for display: divided by its 99th percentile on the face (scale is ambiguous)."""
  values = shading[mask > 0.5] if mask is not None and np.any(mask > 0.5) else shading.ravel()
  top = np.percentile(values, 99) if values.size else 1.0
  return np.clip(shading / max(float(top), 1e-12), 0.0, 1.0)


def decomposition_panels(image: np.ndarray, outputs: Mapping[str, np.ndarray], index: int,
                         mask: np.ndarray | None = None) -> list[tuple[str, np.ndarray, dict]]:
  """The seven panels of one image: (title, array, imshow keyword arguments).

  Args:
    image: (B, H, W, 3) gamma-encoded input in [0, 1].
    outputs: model outputs with ``fmel``, ``fblood``, ``shading``, ``specular`` (B, H, W) and
      ``render`` holding ``linear_srgb`` and ``albedo_linear_srgb`` (B, H, W, 3).
    index: which image of the batch.
    mask: optional (B, H, W) face mask (used to normalise the shading display).
  """
  render = outputs["render"]
  m = None if mask is None else np.asarray(mask[index])
  grey = dict(cmap="gray", vmin=0.0, vmax=1.0)
  pigment = dict(cmap="magma", vmin=-1.0, vmax=1.0)
  return [
      ("input", np.clip(np.asarray(image[index]), 0, 1), {}),
      ("reconstruction", _display(np.asarray(render["linear_srgb"][index])), {}),
      ("diffuse", _normalise(np.asarray(outputs["shading"][index]), m), grey),
      ("specular", _normalise(np.asarray(outputs["specular"][index]), m), grey),
      ("melanin", np.asarray(outputs["fmel"][index]), pigment),
      ("haemoglobin", np.asarray(outputs["fblood"][index]), pigment),
      ("diffuse albedo", _display(np.asarray(render["albedo_linear_srgb"][index])), {}),
  ]


def decomposition_figure(image: np.ndarray, outputs: Mapping[str, np.ndarray],
                         mask: np.ndarray | None = None, rows: int = 4,
                         row_labels: Sequence[str] | None = None, title: str | None = None):
  """A matplotlib Figure: one row per image, the seven columns of `COLUMNS`.

  Melanin and haemoglobin are shown in network coordinates on a fixed [-1, 1] colour scale;
  shading maps are normalised per image (the model has a global scale ambiguity).
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  rows = min(rows, len(image))
  fig = Figure(figsize=(1.6 * len(COLUMNS), 1.7 * rows + (0.4 if title else 0.0)))
  axes = fig.subplots(rows, len(COLUMNS), squeeze=False)
  for r in range(rows):
    for c, (name, array, kwargs) in enumerate(decomposition_panels(image, outputs, r, mask)):
      ax = axes[r, c]
      ax.imshow(array, interpolation="nearest", **kwargs)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(name, fontsize=9)
      if c == 0 and row_labels is not None:
        ax.set_ylabel(row_labels[r], fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig
