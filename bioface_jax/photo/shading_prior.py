"""A shading prior for BioFaceNet on a photo, from PRNet's face geometry.

BioFaceNet learns its shading from a normal map and SH lighting (the NFE data); on a real
photo there is no such target, so the per-photo refinement has only the appearance loss, and
shading can leak into the pigment maps. PRNet gives the face's geometry from the same photo:

1. `box_position_map`: PRNet's position map in photo pixels -> the pixels of BioFaceNet's
   square crop (box side s -> S pixels, integer pixel centres: x' = (x + 1/2 - left) S / s
   - 1/2, z' = z S / s);
2. `face3d.rasterise_position_map`: its mesh normals (camera frame) and face mask in the crop,
   after `face3d.mean_face.regularise` (the mean face posed on PRNet's map plus PRNet's
   residual low-passed by ``sigma`` UV pixels): a network's map is noisy at the scale of a UV
   pixel and normals amplify that. On 8 tuning faces (seed 8, `data.photometric.face_pairs`,
   the 64-px PRNet `r18_r64_ctx`) the prior's correlation with the photo's true diffuse shading
   was 0.27 / 0.50 / 0.55 / 0.64 for sigma 0 / 4 / 8 / inf (the true position map: 0.97 /
   0.95 / 0.93 / 0.88; the photo's luminance itself: 0.87), hence the default inf (the posed
   mean face) for the current PRNet models;
3. `shading_prior`: the second-order SH lighting that best explains the crop's linear
   luminance from those normals (`physics.fit_sh_lighting`, trimmed least squares), and the
   shading it gives, max(0, E(n; L)), normalised to mean 1 on the mask (the shading loss is
   scale-invariant) and 0 off it.

The prior is smooth (nine coefficients): it carries the face's shape and the light's direction,
not albedo detail. `biofacenet_fit.decompose(shading_target=...)` uses it.
"""

from __future__ import annotations

import numpy as np

LUMINANCE = np.array([0.2126, 0.7152, 0.0722])  # linear sRGB -> Y (Rec. 709)
GAMMA = 2.2  # BioFaceNet's input linearisation (x^2.2)


def box_position_map(position_map, box, size: int) -> np.ndarray:
  """A position map in photo pixels (PRNet's convention) -> the crop `box` resized to `size`.

  Args:
    position_map: (R, R, 3) x, y in photo pixels (integer centres, y down), z toward the viewer.
    box: the square crop (left, top, right, bottom) in photo pixels.
    size: the crop's side S in the network.
  """
  left, top, right, bottom = (float(v) for v in box)
  side = right - left
  if side <= 0 or abs((bottom - top) - side) > 1e-6 * max(side, 1):
    raise ValueError(f"box must be a non-empty square (left, top, right, bottom), got {box}")
  k = size / side
  p = np.asarray(position_map, np.float64).copy()
  p[..., 0] = (p[..., 0] + 0.5 - left) * k - 0.5
  p[..., 1] = (p[..., 1] + 0.5 - top) * k - 0.5
  p[..., 2] *= k
  return p


def crop_normals(position_map, box, size: int, sigma: float = np.inf) -> dict[str, np.ndarray]:
  """PRNet's mesh normals and face mask in BioFaceNet's crop: ``normals`` (S, S, 3) camera
  frame, ``mask`` (S, S) bool, ``depth`` (S, S) (`face3d.rasterise_position_map`), of the map
  regularised by `face3d.mean_face.regularise(sigma)` (0 = PRNet's map as is)."""
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import mean_face  # pylint: disable=g-import-not-at-top
  pm = box_position_map(mean_face.regularise(position_map, sigma), box, size)
  return face3d.rasterise_position_map(pm, size, face3d.face_mask(pm.shape[0]))


def shading_prior(image_srgb, normals, mask, trim=(0.05, 0.95)) -> np.ndarray:
  """(S, S) float32 shading prior of a crop (module docstring, step 3).

  Args:
    image_srgb: (S, S, 3) the network's gamma-encoded input in [0, 1].
    normals: (S, S, 3) unit normals of the face (0 off it).
    mask: (S, S) face pixels.
    trim: luminance quantiles kept for the fit (`physics.fit_sh_lighting`).

  Raises:
    ValueError: shapes disagree or too few face pixels to fit.
  """
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  x = np.asarray(image_srgb, np.float64)
  if x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f"image_srgb must be (S, S, 3), got {x.shape}")
  y = np.clip(x, 0, 1)**GAMMA @ LUMINANCE
  m = np.asarray(mask) > 0.5
  coeffs = physics.fit_sh_lighting(normals, y, m, trim)
  s = np.where(m, physics.sh_shading(normals, coeffs), 0.0)
  mean = s[m].mean() if m.any() else 0.0
  return (s / mean if mean > 0 else s).astype(np.float32)


__all__ = ["box_position_map", "crop_normals", "shading_prior"]
