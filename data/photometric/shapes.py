"""Geometry and materials of synthetic photometric-stereo scenes (host NumPy, exact normals).

Frame (sdps-spec.md conventions): x right, y up, z toward the camera; pixel (i, j) has its centre
at x = j + 0.5 − S/2, y = −(i + 0.5 − S/2) (row 0 at the top). Depth is in pixels, larger =
closer (the `data.synth.geometry.rasterise` convention); background normals are 0.

* `sphere`: analytic normals of a sphere of radius U(0.3, 0.47)·S near the centre.
* `blob`: metaballs F(p) = Σ exp(−‖p − c_k‖²/2σ_k²) − 0.5 = 0 (standing in for the Blobby
  shapes), ray-marched from z = +S in 1-px steps, bisected 20×; n = −∇F/‖∇F‖ (analytic).
* `face`: the project's synthetic face geometry with random shape and pose.
* `materials`: spatially varying albedo and a Lambertian / Blinn-Phong / Cook-Torrance specular
  lobe per material (one or two materials per scene), standing in for MERL BRDFs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("sphere", "blob", "face")
MATERIAL_KEYS = ("albedo", "bp_k", "bp_s", "ct_k", "ct_r", "ct_f0")


def _pixel_grid(size: int):
  i, j = np.mgrid[0:size, 0:size].astype(np.float64)
  return j + 0.5 - size / 2, -(i + 0.5 - size / 2)


def sphere(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
  """A sphere: centre = image centre ± 0.05·S, radius U(0.3, 0.47)·S."""
  cx, cy = rng.uniform(-0.05, 0.05, 2) * size
  radius = rng.uniform(0.3, 0.47) * size
  x, y = _pixel_grid(size)
  u, v = (x - cx) / radius, (y - cy) / radius
  r2 = u * u + v * v
  mask = r2 < 1.0
  nz = np.sqrt(np.clip(1.0 - r2, 0.0, None))
  normals = np.stack([u, v, nz], -1) * mask[..., None]
  return {"normals": normals.astype(np.float32), "mask": mask,
          "depth": (radius * nz * mask).astype(np.float32)}


def _metaball(points, centres, sigmas):
  """F and ∇F at points (..., 3) for K balls."""
  d = points[..., None, :] - centres  # (..., K, 3)
  g = np.exp(-np.sum(d * d, -1) / (2 * sigmas ** 2))  # (..., K)
  f = g.sum(-1) - 0.5
  grad = -np.sum((g / sigmas ** 2)[..., None] * d, -2)
  return f, grad


def blob(rng: np.random.Generator, size: int, max_tries: int = 50) -> dict[str, np.ndarray]:
  """A random metaball surface; redrawn while it covers < 15 % of the image or touches the border."""
  x, y = _pixel_grid(size)
  zs = np.arange(size, -size - 1, -1.0)
  for _ in range(max_tries):
    k = int(rng.integers(3, 9))
    centres = rng.uniform(-0.2, 0.2, (k, 3)) * size
    sigmas = rng.uniform(0.08, 0.16, k) * size
    # exp(-|p - c|^2 / 2s^2) factorises into an (x, y) part and a z part: one matmul.
    gxy = np.exp(-((x[..., None] - centres[:, 0]) ** 2 + (y[..., None] - centres[:, 1]) ** 2)
                 / (2 * sigmas ** 2))  # (S, S, K)
    gz = np.exp(-(zs[:, None] - centres[:, 2]) ** 2 / (2 * sigmas ** 2))  # (Z, K)
    f = gxy @ gz.T - 0.5  # (S, S, Z)
    inside = f >= 0
    hit = inside.any(-1)
    first = np.argmax(inside, -1)  # first step inside (from the camera)
    mask = hit & (first > 0)
    if mask.mean() < 0.15 or mask[0].any() or mask[-1].any() or mask[:, 0].any() \
        or mask[:, -1].any():
      continue
    hi = zs[np.maximum(first - 1, 0)]  # outside (F < 0)
    lo = zs[first]                     # inside (F >= 0)
    for _ in range(20):
      mid = 0.5 * (hi + lo)
      fm, _ = _metaball(np.stack([x, y, mid], -1), centres, sigmas)
      inside_mid = fm >= 0
      lo = np.where(inside_mid, mid, lo)
      hi = np.where(inside_mid, hi, mid)
    z = 0.5 * (hi + lo)
    _, grad = _metaball(np.stack([x, y, z], -1), centres, sigmas)
    n = -grad / np.linalg.norm(grad, axis=-1, keepdims=True)
    # A silhouette pixel can graze the surface from behind; keep camera-facing normals only.
    mask &= n[..., 2] > 0
    normals = np.where(mask[..., None], n, 0.0)
    depth = np.where(mask, z, 0.0)
    return {"normals": normals.astype(np.float32), "mask": mask, "depth": depth.astype(np.float32)}
  raise RuntimeError(f"no acceptable blob in {max_tries} draws at size {size}")


def face(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
  """A synthetic face (data.synth.geometry) with random shape and pose."""
  from data.synth import geometry  # pylint: disable=g-import-not-at-top (reads assets)
  template = geometry.load_template()
  vertices = geometry.sample_shape(rng, template)
  out = geometry.rasterise(vertices, template, geometry.sample_pose(rng), size=size)
  mask = out["mask"] & (out["normals"][..., 2] > 0)
  depth = np.where(mask, out["depth"] - out["depth"][mask].min() if mask.any() else 0, 0.0)
  return {"normals": np.where(mask[..., None], out["normals"], 0).astype(np.float32),
          "mask": mask, "depth": depth.astype(np.float32)}


def _smooth_field(rng, size):
  t = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16, mode="wrap")
  return (t - t.mean()) / (t.std() + 1e-12)


def _material(rng, lambertian: bool, specular_only: bool):
  """One material: base colour and specular parameters."""
  colour = rng.uniform(0.25, 1.0, 3)
  u = rng.uniform()
  if lambertian:
    kind = "lambert"
  elif specular_only:
    kind = "bp" if u < 0.5 else "ct"
  else:
    kind = "lambert" if u < 0.2 else ("bp" if u < 0.6 else "ct")
  m = {"colour": colour, "bp_k": 0.0, "bp_s": 1.0, "ct_k": 0.0, "ct_r": 0.5, "ct_f0": 0.04}
  if kind == "bp":
    m["bp_k"] = rng.uniform(0.05, 1.0)
    m["bp_s"] = float(np.exp(rng.uniform(np.log(10.0), np.log(500.0))))
  elif kind == "ct":
    m["ct_k"] = rng.uniform(0.05, 1.0)
    m["ct_r"] = rng.uniform(0.08, 0.5)
    m["ct_f0"] = rng.uniform(0.02, 0.1)
  return m


def materials(rng: np.random.Generator, size: int, *, lambertian: bool = False,
              specular_only: bool = False) -> dict[str, np.ndarray]:
  """Spatially varying albedo (S, S, 3) and specular maps (S, S) for one scene.

  Albedo = base colour × (1 + 0.25 t), t a standardised Gaussian-filtered noise (σ = S/16),
  clipped to [0, 1]; with p = 0.5 two materials split by the sign of a second smooth field.
  Specular per material: none (p = 0.2), Blinn-Phong (p = 0.4: k ~ U(.05, 1), s log-uniform
  in [10, 500]) or Cook-Torrance (p = 0.4: k ~ U(.05, 1), r ~ U(.08, .5), F0 ~ U(.02, .1)).
  `lambertian` forces k = 0; `specular_only` draws only the two specular lobes.
  """
  t = _smooth_field(rng, size)
  mats = [_material(rng, lambertian, specular_only)]
  split = np.zeros((size, size), bool)
  if rng.uniform() < 0.5:
    mats.append(_material(rng, lambertian, specular_only))
    split = _smooth_field(rng, size) > 0
  out = {}
  for key in ("bp_k", "bp_s", "ct_k", "ct_r", "ct_f0"):
    out[key] = np.where(split, mats[-1][key], mats[0][key]).astype(np.float32)
  colour = np.where(split[..., None], mats[-1]["colour"], mats[0]["colour"])
  out["albedo"] = np.clip(colour * (1.0 + 0.25 * t[..., None]), 0, 1).astype(np.float32)
  return out
