"""Alignment accuracy: NME (2-D / 3-D, sparse and dense), yaw bins and the AFLW2000-3D table.

Protocol of 3DDFA's benchmark_aflw2000.py (prnet-spec.md §7): per image, the mean point
distance divided by sqrt(w * h) of the ground-truth x/y bounding box; images are binned by
|yaw| into [0, 30], (30, 60], (60, ...) degrees (no wrapping: > 90 stays in the last bin), and
the headline "mean" is the mean of the three bin means (not the image mean).

For 3-D, z is only known up to an offset (the ground truth is shifted to min z = 0 over the
whole mesh, inference undoes only the crop scale), so both sets are first shifted to zero mean
z over their points: our convention (the paper's rule is unverified).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

BIN_NAMES = ("0-30", "30-60", "60-90")


def _check(pred, gt, dims: int) -> None:
  if dims not in (2, 3):
    raise ValueError(f"dims must be 2 or 3, got {dims!r}")
  ps, gs = tuple(np.shape(pred)), tuple(np.shape(gt))
  if len(ps) < 2 or len(gs) < 2 or ps[-2] != gs[-2] or ps[-1] < dims or gs[-1] < dims:
    raise ValueError(f"pred and gt must be (..., N, >= {dims}) with the same N, got {ps} and "
                     f"{gs}")


def _normaliser(gt):
  """sqrt(w * h) of the GT x/y bounding box, (...)."""
  xy = gt[..., :2]
  wh = xy.max(-2) - xy.min(-2)
  return jnp.sqrt(wh[..., 0] * wh[..., 1])


def _distances(pred, gt, dims: int):
  p = jnp.asarray(pred)[..., :dims]
  g = jnp.asarray(gt)[..., :dims]
  if dims == 3:
    p = p.at[..., 2].add(-p[..., 2].mean(-1, keepdims=True))
    g = g.at[..., 2].add(-g[..., 2].mean(-1, keepdims=True))
  return jnp.sqrt(((p - g) ** 2).sum(-1))


def nme(pred, gt, *, dims: int = 2):
  """Per-image normalised mean error, a fraction (not %).

  Args:
    pred, gt: (..., N, >= dims) points in pixels (x, y[, z]); N = 68 for landmarks.
    dims: 2 (x, y) or 3 (x, y, z after shifting both sets to mean z = 0).

  Returns:
    (...) mean over points of the Euclidean distance / sqrt(w * h) of the GT x/y box. jit-safe.
  """
  _check(pred, gt, dims)
  return _distances(pred, gt, dims).mean(-1) / _normaliser(jnp.asarray(gt))


def dense_nme(pred, gt, *, dims: int = 2, box_points=None):
  """NME over dense vertices (..., N, 3), normalised by the box of `box_points` (default: the
  GT vertices themselves, i.e. the face region, as reshow's evaluation)."""
  _check(pred, gt, dims)
  box = jnp.asarray(gt if box_points is None else box_points)
  return _distances(pred, gt, dims).mean(-1) / _normaliser(box)


def yaw_bins(yaw_degrees) -> np.ndarray:
  """0 for |yaw| in [0, 30], 1 for (30, 60], 2 above 60 (including > 90). int64 array.

  Raises:
    ValueError: if any yaw is NaN or infinite.
  """
  yaw = np.asarray(yaw_degrees, np.float64)
  if not np.isfinite(yaw).all():
    bad = np.flatnonzero(~np.isfinite(yaw.ravel()))
    raise ValueError(f"yaw_bins: non-finite yaw at flat positions {bad[:10].tolist()}")
  a = np.abs(yaw)
  return np.where(a <= 30.0, 0, np.where(a <= 60.0, 1, 2)).astype(np.int64)


def nme_table(nmes, yaws) -> dict:
  """The AFLW2000-3D table: per-bin means, their mean, the image mean and the bin counts.

  Args:
    nmes: (n,) per-image NMEs (any unit; the output has the same unit).
    yaws: (n,) yaws in degrees.

  Returns:
    {"0-30", "30-60", "60-90": bin means (NaN if empty), "mean": mean of the three bin means
    (NaN if any bin is empty), "all_images": mean over all images, "counts": (n0, n1, n2)}.
  """
  e = np.asarray(nmes, np.float64).ravel()
  bins = yaw_bins(np.asarray(yaws).ravel())
  if e.shape != bins.shape:
    raise ValueError(f"nmes and yaws must have the same length, got {e.shape} and {bins.shape}")
  out = {}
  counts = []
  for k, name in enumerate(BIN_NAMES):
    sel = e[bins == k]
    counts.append(int(sel.size))
    out[name] = float(sel.mean()) if sel.size else float("nan")
  out["mean"] = float(np.mean([out[n] for n in BIN_NAMES]))
  out["all_images"] = float(e.mean()) if e.size else float("nan")
  out["counts"] = tuple(counts)
  return out


def nme_components(pred, gt) -> dict[str, np.ndarray]:
  """Where a 2-D landmark error lies: NME after removing, cumulatively, the best translation,
  uniform scale and rotation of `pred` onto `gt` (least squares, float64), and those fits.

  A predictor can place a good shape in the wrong place, at the wrong size or tilt; on real
  photos that separates a framing or pose failure from a shape failure. The last column (after
  the whole similarity) also holds any systematic difference between two landmark conventions.

  Args:
    pred, gt: (..., N, >= 2) points in pixels; only x, y are used.

  Returns:
    float64 arrays of shape (...): ``raw`` (= `nme`), ``translation_free``, ``scale_free``
    (translation and scale removed), ``similarity_free`` (translation, scale and rotation
    removed), all fractions normalised by sqrt(w h) of the GT box like `nme`; and the fitted
    similarity pred -> gt: ``scale``, ``rotation_deg`` (counter-clockwise in x-right / y-down
    pixels, i.e. clockwise as seen), ``offset_x`` / ``offset_y`` (GT centroid minus predicted
    centroid, in units of the normaliser).
  """
  _check(pred, gt, 2)
  p = np.asarray(pred, np.float64)[..., :2]
  g = np.asarray(gt, np.float64)[..., :2]
  norm = np.sqrt(np.prod(g.max(-2) - g.min(-2), -1))
  err = lambda q: np.sqrt(((q - g) ** 2).sum(-1)).mean(-1) / norm  # noqa: E731
  pc, gc = p.mean(-2, keepdims=True), g.mean(-2, keepdims=True)
  a, b = p - pc, g - gc
  den = (a ** 2).sum((-1, -2))
  cos = (a * b).sum((-1, -2))                                        # sum a . b
  sin = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(-1)      # sum a x b
  scale_only = (cos / den)[..., None, None]
  scale = np.hypot(cos, sin) / den
  angle = np.arctan2(sin, cos)
  c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
  rotated = np.stack([c * a[..., 0] - s * a[..., 1], s * a[..., 0] + c * a[..., 1]], -1)
  offset = (gc - pc)[..., 0, :] / norm[..., None]
  return dict(raw=err(p), translation_free=err(a + gc), scale_free=err(scale_only * a + gc),
              similarity_free=err(scale[..., None, None] * rotated + gc), scale=scale,
              rotation_deg=np.degrees(angle), offset_x=offset[..., 0], offset_y=offset[..., 1])


__all__ = ["BIN_NAMES", "dense_nme", "nme", "nme_components", "nme_table", "yaw_bins"]
