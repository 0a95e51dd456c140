"""PRNet figures: the training panel and the seed report's prediction layout.

matplotlib's object API only (no pyplot state, no I/O): safe from any thread; callers save.

* `training_figure`: per row input | predicted position map | true position map | landmarks
  (green = truth, red = prediction).
* `prediction_figure`: input | 2-D landmarks | sparse alignment (68 points joined in order,
  broken after 16, 21, 26, 30, 35, 41, 47, 67 as PRNet's utils/cv_plot.py) | dense alignment
  (every 2nd face vertex).
"""

from __future__ import annotations

import numpy as np

# Where PRNet's plot_kpt breaks the landmark polyline (end of jaw, brows, nose, eyes, lips).
BREAKS = (16, 21, 26, 30, 35, 41, 47, 59, 67)


def _map_image(pm: np.ndarray, size: int) -> np.ndarray:
  """Position map (R, R, 3) pixels -> an RGB picture (divided by 1.1 R)."""
  return np.clip(np.asarray(pm) / (1.1 * size), 0.0, 1.0)


def training_figure(images, pred_maps, true_maps, landmarks, pred_landmarks=None):
  """A Figure with one row per image: input, predicted map, true map, landmarks overlay."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import uv  # pylint: disable=g-import-not-at-top
  n = len(images)
  size = images.shape[1]
  if pred_landmarks is None:
    pred_landmarks = np.asarray(uv.landmarks_from_position_map(pred_maps))
  fig = Figure(figsize=(8, 2.0 * n))
  for i in range(n):
    panels = [("input", images[i]), ("predicted map", _map_image(pred_maps[i], size)),
              ("true map", _map_image(true_maps[i], size)), ("landmarks", images[i])]
    for j, (title, im) in enumerate(panels):
      ax = fig.add_subplot(n, 4, 4 * i + j + 1)
      ax.imshow(np.clip(im, 0, 1))
      if j == 3:
        ax.plot(landmarks[i, :, 0], landmarks[i, :, 1], "g.", ms=2)
        ax.plot(pred_landmarks[i, :, 0], pred_landmarks[i, :, 1], "r.", ms=2)
      if i == 0:
        ax.set_title(title, fontsize=8)
      ax.axis("off")
  fig.tight_layout()
  return fig


def _polylines(points: np.ndarray):
  start = 0
  for end in BREAKS:
    yield points[start:end + 1]
    start = end + 1


def prediction_figure(image, landmarks, vertices, title: str = "", view=None):
  """The seed report's layout for one image (all coordinates in the image's pixels).

  Args:
    image: (H, W, 3) in [0, 1].
    landmarks: (68, >= 2) x, y.
    vertices: (N, >= 2) dense face vertices.
    view: optional (x0, y0, x1, y1) region to show (e.g. the face crop); default the image.
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(12, 3.3))
  titles = ("input", "2-D landmarks", "sparse alignment", "dense alignment")
  for j, name in enumerate(titles):
    ax = fig.add_subplot(1, 4, j + 1)
    ax.imshow(np.clip(image, 0, 1))
    if j == 1:
      ax.plot(landmarks[:, 0], landmarks[:, 1], "o", ms=2.5, mfc="lime", mec="k", mew=0.3)
    elif j == 2:
      for line in _polylines(np.asarray(landmarks)):
        ax.plot(line[:, 0], line[:, 1], "-", color="cyan", lw=0.8)
      ax.plot(landmarks[:, 0], landmarks[:, 1], "r.", ms=2.5)
    elif j == 3:
      v = np.asarray(vertices)[::2]
      ax.plot(v[:, 0], v[:, 1], ",", color="yellow", alpha=0.5)
    x0, y0, x1, y1 = view if view is not None else (0, 0, image.shape[1] - 1,
                                                     image.shape[0] - 1)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


__all__ = ["BREAKS", "prediction_figure", "training_figure"]
