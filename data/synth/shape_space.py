"""A face shape space on the mean-face mesh: identity modes and expressions, as vertex fields.

Every shape is the mean face (`geometry.load_template`) plus displacements of its 43,867
vertices, so the 68 landmarks (vertices `template.landmark_vertices`), the UV map and the
position map move exactly with the surface: nothing here is approximated after the fact.

Identity (`IDENTITY_MODES`): linear modes, each a smooth (N, 3) displacement field in model
units for a coefficient of 1 (about one standard deviation of the trait), built from the
template's UV landmarks (`identity_basis`). Coefficients are drawn N(0, 1) truncated
symmetrically at +-2.5 (`sample_identity`), so every mode is zero-mean and the mean sampled
face is the template. Modes: face width / length / depth, jaw width, chin, nose (projection,
length, width, bridge), brow ridge, cheek fullness, cheekbones, eye spacing, mouth width, lip
fullness, forehead slope, two asymmetries and age-like sagging (jowls, cheek descent,
under-eye bags, brow droop; negative = lifted). A small random residual warp
(`geometry.sample_shape` at a low amplitude) adds variety outside the modes.

Expressions (`Expression`, applied after identity on the current vertices by
`expression_displacement`): smile, open mouth (the jaw drops below a UV *seam* between the
inner-lip lines, whose triangles stretch into the mouth opening), per-eye closure (the upper
lid and the eye aperture collapse exactly onto the lower lid line, so closed-eye landmarks
37/38 meet 41/40), brow raise and brow lowering. Expression coefficients are >= 0 activations.

Model frame: x right, y up, z toward the viewer (`data.synth.geometry`); UV in template pixels
(column, row).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data.synth import geometry

IDENTITY_MODES = (
    "face_width", "face_length", "face_depth", "jaw_width", "chin", "nose_projection",
    "nose_length", "nose_width", "nose_bridge", "brow_ridge", "cheek_fullness", "cheekbones",
    "eye_spacing", "eye_opening", "mouth_width", "lip_fullness", "forehead_slope",
    "asymmetry_tilt", "asymmetry_cheek", "sagging")
IDENTITY_CLIP = 2.5
# Eye apertures: (outer corner, upper lid points, inner corner, lower lid points) landmarks.
EYES = ((36, (37, 38), 39, (41, 40)), (42, (43, 44), 45, (47, 46)))
INNER_UPPER_LIP = (60, 61, 62, 63, 64)
INNER_LOWER_LIP = (60, 67, 66, 65, 64)


@dataclasses.dataclass(frozen=True)
class Expression:
  """Expression activations (0 = neutral).

  Attributes:
    smile: mouth corners up, out and back, cheeks raised; in [0, 1].
    mouth_open: jaw drop as a fraction of `MAX_JAW_DROP` face heights; in [0, 1].
    eye_close: closure of the two eyes (landmarks 36-41, 42-47): 0 open, 1 shut.
    brow_raise: brows and forehead up; in [0, 1].
    brow_lower: inner brows down and together (frown); in [0, 1].
  """
  smile: float = 0.0
  mouth_open: float = 0.0
  eye_close: tuple[float, float] = (0.0, 0.0)
  brow_raise: float = 0.0
  brow_lower: float = 0.0

  def as_array(self) -> np.ndarray:
    """(6,) float32: smile, mouth_open, eye_close (2), brow_raise, brow_lower."""
    return np.array([self.smile, self.mouth_open, *self.eye_close, self.brow_raise,
                     self.brow_lower], np.float32)


MAX_JAW_DROP = 0.17   # Face heights (ref_size) at mouth_open = 1.
# The mean face's eye openings are ~8 units (7 mm) high, narrower than in the portraits of
# `data.portraits`: sampled shapes open them by this many `eye_opening` coefficients (the
# identity modes stay zero-mean about the widened face).
EYE_OPENING_BIAS = 1.0


def _uv(template):
  return template.cols.astype(np.float64), template.rows.astype(np.float64)


def _blob(template, centre, sigma) -> np.ndarray:
  """(N,) Gaussian in UV pixels around a (column, row) centre; sigma scalar or (col, row)."""
  col, row = _uv(template)
  sc, sr = (sigma, sigma) if np.isscalar(sigma) else sigma
  return np.exp(-0.5 * (((col - centre[0]) / sc) ** 2 + ((row - centre[1]) / sr) ** 2))


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))


@functools.lru_cache(maxsize=2)
def identity_basis(template: geometry.FaceTemplate) -> np.ndarray:
  """(K, N, 3) float64 displacement fields of `IDENTITY_MODES` for unit coefficients.

  Amplitudes are chosen so that a coefficient of 1 is a visible but ordinary difference
  (a few per cent of the face size); the fields depend only on the template and are cached.
  """
  v = template.vertices
  x, y, z = v[:, 0], v[:, 1], v[:, 2]
  k = template.landmarks_uv
  lm = v[template.landmark_vertices]
  col, row = _uv(template)
  eye_y = lm[36:48, 1].mean()
  brow_y = lm[17:27, 1].mean()
  mouth_y = lm[48:68, 1].mean()
  out = {}
  out["face_width"] = np.stack([0.05 * x, 0 * x, 0 * x], 1)
  out["face_length"] = np.stack([0 * y, 0.04 * (y - eye_y), 0 * y], 1)
  out["face_depth"] = np.stack([0 * z, 0 * z, 0.06 * (z - z.mean())], 1)
  lower = _sigmoid((mouth_y + 10.0 - y) / 12.0)
  out["jaw_width"] = np.stack([0.07 * x * lower, 0 * x, 0 * x], 1)
  chin = _blob(template, 0.3 * k[57] + 0.7 * k[8], (20.0, 10.0))
  out["chin"] = np.stack([0 * x, -5.0 * chin, 5.0 * chin], 1)
  tip = _blob(template, k[30], 9.0)
  nose = np.maximum(tip, _blob(template, 0.5 * (k[27] + k[30]), (6.0, 16.0)))
  out["nose_projection"] = np.stack([0 * x, 0 * x, 6.0 * nose], 1)
  out["nose_length"] = np.stack([0 * x, -4.0 * tip, 1.0 * tip], 1)
  alar = _blob(template, k[33] + [0, -4], (14.0, 8.0))
  out["nose_width"] = np.stack([0.16 * (x - lm[33, 0]) * alar, 0 * x, 0 * x], 1)
  out["nose_bridge"] = np.stack([0 * x, 0 * x, 3.5 * _blob(template, 0.5 * (k[28] + k[29]),
                                                            (5.0, 8.0))], 1)
  brow = np.maximum(_blob(template, k[19], (16.0, 7.0)), _blob(template, k[24], (16.0, 7.0)))
  out["brow_ridge"] = np.stack([0 * x, 0 * x, 4.0 * brow], 1)
  n = template.smooth_normals
  cheeks = (_blob(template, 0.5 * (k[3] + k[31]), 14.0) + _blob(template, 0.5 * (k[13] + k[35]),
                                                                14.0))
  out["cheek_fullness"] = 3.5 * cheeks[:, None] * n
  bones = (_blob(template, 0.5 * (k[1] + k[41]), (12.0, 8.0))
           + _blob(template, 0.5 * (k[15] + k[46]), (12.0, 8.0)))
  out["cheekbones"] = 2.5 * bones[:, None] * n + np.stack([2.0 * np.sign(x) * bones, 0 * x,
                                                           0 * x], 1)
  eyes = _blob(template, 0.5 * (k[36] + k[39]), (16.0, 12.0)) - _blob(
      template, 0.5 * (k[42] + k[45]), (16.0, 12.0))
  out["eye_spacing"] = np.stack([-3.0 * eyes, 0 * x, 0 * x], 1)
  # Wider or narrower eye openings: the upper lid (and the aperture above the lower lid)
  # moves along the lid gap by 20 % of it, the lid skin above follows with a falloff.
  opening = np.zeros_like(v)
  for eye in (0, 1):
    idx, aperture, weight, up, low = _closure_field(template, eye)
    lmk = v[template.landmark_vertices]
    along = lambda pts, j, f: ((1.0 - f)[:, None] * lmk[pts[j]]  # noqa: E731
                               + f[:, None] * lmk[pts[j + 1]])
    gap = along(*up) - along(*low)
    s_frac = np.where(aperture, _aperture_fraction(template, eye, idx), 0.0)
    opening[idx] += 0.2 * np.where(aperture[:, None], (1.0 - s_frac)[:, None],
                                   weight[:, None]) * gap
  out["eye_opening"] = opening
  mouth = _blob(template, 0.5 * (k[48] + k[54]), (20.0, 14.0))
  out["mouth_width"] = np.stack([0.1 * (x - lm[62, 0]) * mouth, 0 * x, 0 * x], 1)
  upper = _blob(template, 0.5 * (k[51] + k[62]), (14.0, 4.0))
  lower_lip = _blob(template, 0.5 * (k[57] + k[66]), (14.0, 5.0))
  out["lip_fullness"] = np.stack([0 * x, 1.5 * (upper - lower_lip),
                                  2.5 * (upper + lower_lip)], 1)
  forehead = np.maximum(y - brow_y, 0.0) / max(np.ptp(y) / 2, 1.0)
  out["forehead_slope"] = np.stack([0 * x, 0 * x, -6.0 * forehead ** 2], 1)
  side = x / 100.0
  out["asymmetry_tilt"] = np.stack([0 * x, 3.0 * side, 2.0 * side], 1)
  one_cheek = _blob(template, 0.5 * (k[3] + k[31]), 16.0) - _blob(
      template, 0.5 * (k[13] + k[35]), 16.0)
  out["asymmetry_cheek"] = 4.0 * one_cheek[:, None] * n
  jowls = (_blob(template, 0.5 * (k[5] + k[48]), (12.0, 10.0))
           + _blob(template, 0.5 * (k[11] + k[54]), (12.0, 10.0)))
  cheek_fall = (_blob(template, 0.5 * (k[2] + k[40]), 14.0)
                + _blob(template, 0.5 * (k[14] + k[47]), 14.0))
  bags = (_blob(template, 0.5 * (k[40] + k[41]) + [0, 7], (9.0, 3.5))
          + _blob(template, 0.5 * (k[46] + k[47]) + [0, 7], (9.0, 3.5)))
  outer_brow = (_blob(template, k[17], (10.0, 6.0)) + _blob(template, k[26], (10.0, 6.0)))
  out["sagging"] = (np.stack([0 * x, -4.5 * jowls - 3.0 * cheek_fall - 2.0 * outer_brow,
                              1.0 * jowls], 1) + 1.5 * bags[:, None] * n)
  del col, row
  basis = np.stack([out[name] for name in IDENTITY_MODES])
  basis.setflags(write=False)
  return basis


def sample_identity(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
  """(K,) identity coefficients: N(0, scale^2) truncated symmetrically at +-2.5 scale."""
  c = rng.normal(0.0, 1.0, len(IDENTITY_MODES))
  c = np.where(np.abs(c) > IDENTITY_CLIP, rng.uniform(-1, 1, len(c)) * IDENTITY_CLIP, c)
  return (c * scale).astype(np.float64)


def apply_identity(template: geometry.FaceTemplate, coefficients: np.ndarray,
                   vertices: np.ndarray | None = None) -> np.ndarray:
  """(N, 3) vertices = (vertices or template) + sum_k c_k basis_k."""
  c = np.asarray(coefficients, np.float64)
  if c.shape != (len(IDENTITY_MODES),):
    raise ValueError(f"identity coefficients must have shape ({len(IDENTITY_MODES)},), got "
                     f"{c.shape}")
  base = template.vertices if vertices is None else vertices
  basis = identity_basis(template)
  return base + np.tensordot(c, basis, 1)


def sample_expression(rng: np.random.Generator) -> Expression:
  """Draws an expression: about a third neutral, smiles (half of the broad ones parting the
  lips over the teeth), open mouths, blinks, winks, raised and lowered brows."""
  smile = rng.uniform(0.2, 1.0) if rng.uniform() < 0.4 else 0.0
  mouth = rng.uniform(0.05, 1.0) ** 1.5 if rng.uniform() < 0.3 else 0.0
  if smile > 0.5 and rng.uniform() < 0.5:  # A smile that shows the teeth.
    mouth = max(mouth, rng.uniform(0.12, 0.35))
  u = rng.uniform()
  if u < 0.08:                        # Both eyes closed (a blink).
    close = (rng.uniform(0.85, 1.0),) * 2
  elif u < 0.12:                      # A wink.
    close = (1.0, 0.0) if rng.uniform() < 0.5 else (0.0, 1.0)
  else:                               # Open, sometimes squinting (more with a smile).
    s = rng.uniform(0.0, 0.12 + 0.25 * smile)
    close = (s, s)
  raise_ = rng.uniform(0.2, 1.0) if rng.uniform() < 0.25 else 0.0
  lower = rng.uniform(0.2, 1.0) if rng.uniform() < 0.15 and raise_ == 0 else 0.0
  return Expression(float(smile), float(mouth), tuple(float(c) for c in close), float(raise_),
                    float(lower))


def _along(template, points, values_of, col):
  """Linear interpolation over UV columns along a landmark polyline (clamped at its ends)."""
  cols = template.landmarks_uv[list(points), 0]
  vals = values_of(np.asarray(points))
  return np.stack([np.interp(col, cols, vals[:, j]) for j in range(vals.shape[1])], -1)


def lid_lines(template: geometry.FaceTemplate, eye: int, col: np.ndarray):
  """UV rows of the upper and lower lid of `eye` (0, 1) at UV columns `col`."""
  outer, up, inner, low = EYES[eye]
  k = template.landmarks_uv
  order = np.argsort(k[[outer, inner], 0])
  ends = np.array([outer, inner])[order]
  up_pts = [ends[0], *sorted(up, key=lambda i: k[i, 0]), ends[1]]
  low_pts = [ends[0], *sorted(low, key=lambda i: k[i, 0]), ends[1]]
  rows = lambda p: k[p, 1:2]  # noqa: E731
  return (_along(template, up_pts, rows, col)[..., 0], _along(template, low_pts, rows, col)[..., 0],
          up_pts, low_pts)


def lip_lines(template: geometry.FaceTemplate, col: np.ndarray):
  """UV rows of the inner upper and inner lower lip lines at UV columns `col`."""
  k = template.landmarks_uv
  rows = lambda p: k[p, 1:2]  # noqa: E731
  return (_along(template, INNER_UPPER_LIP, rows, col)[..., 0],
          _along(template, INNER_LOWER_LIP, rows, col)[..., 0])


def _polyline_weights(xs: np.ndarray, col: np.ndarray):
  """(j, f): col interpolates between polyline points j and j + 1 with weight f (np.interp's
  clamping at the ends)."""
  j = np.clip(np.searchsorted(xs, col) - 1, 0, len(xs) - 2)
  f = np.clip((col - xs[j]) / np.maximum(xs[j + 1] - xs[j], 1e-9), 0.0, 1.0)
  return j, f


@functools.lru_cache(maxsize=4)
def _closure_field(template: geometry.FaceTemplate, eye: int):
  """Template-only part of the eye closure: the moving vertices, whether they are in the
  aperture, their lid-skin weights and where they sit along the lid polylines."""
  col, row = _uv(template)
  k = template.landmarks_uv
  up_row, low_row, up_pts, low_pts = lid_lines(template, eye, col)
  c0, c1 = k[up_pts[0], 0], k[up_pts[-1], 0]
  width = c1 - c0
  inside = (col >= c0) & (col <= c1)
  # s = 0 on the upper lid, 1 on the lower lid.
  s = (row - up_row) / np.maximum(low_row - up_row, 1e-6)
  lateral = np.sqrt(np.clip(np.minimum(col - c0, c1 - col) / (0.12 * width), 0.0, 1.0))
  above = np.exp(-0.5 * (np.maximum(up_row - row, 0.0) / 4.0) ** 2)  # Lid skin above.
  aperture = inside & (s >= 0.0) & (s < 1.0)
  weight = np.where(aperture, 1.0, np.where(inside & (s < 0.0), above * lateral, 0.0))
  idx = np.nonzero(weight > 1e-6)[0]
  up = (np.asarray(up_pts), *_polyline_weights(k[up_pts, 0], col[idx]))
  low = (np.asarray(low_pts), *_polyline_weights(k[low_pts, 0], col[idx]))
  return idx, aperture[idx], weight[idx], up, low


def _aperture_fraction(template, eye, idx):
  """s of vertices `idx`: 0 on the upper lid line, 1 on the lower one (UV rows)."""
  col, row = _uv(template)
  up_row, low_row, _, _ = lid_lines(template, eye, col[idx])
  return np.clip((row[idx] - up_row) / np.maximum(low_row - up_row, 1e-6), 0.0, 1.0)


def _eye_closure(template, vertices, eye, c):
  """Displacement that closes an eye by a fraction c: aperture vertices move c of the way to
  the lower lid line (all onto it at c = 1, so the aperture's triangles collapse); the upper
  lid's skin above follows the upper lid line with a falloff."""
  idx, aperture, weight, up, low = _closure_field(template, eye)
  lmk = vertices[template.landmark_vertices]

  def along(pts, j, f):
    return (1.0 - f)[:, None] * lmk[pts[j]] + f[:, None] * lmk[pts[j + 1]]
  p_low = along(*low)
  d = np.zeros_like(vertices)
  d[idx] = c * np.where(aperture[:, None], p_low - vertices[idx],
                        weight[:, None] * (p_low - along(*up)))
  return d


@functools.lru_cache(maxsize=2)
def _expression_fields(template: geometry.FaceTemplate) -> dict[str, np.ndarray]:
  """(N, 3) displacements of the linear expressions at activation 1 (template only)."""
  col, row = _uv(template)
  k = template.landmarks_uv
  out = {}
  corners = _blob(template, k[48], 7.0) - _blob(template, k[54], 7.0)
  both = _blob(template, k[48], 7.0) + _blob(template, k[54], 7.0)
  cheeks = (_blob(template, 0.45 * k[2] + 0.3 * k[40] + 0.25 * k[48], 12.0)
            + _blob(template, 0.45 * k[14] + 0.3 * k[47] + 0.25 * k[54], 12.0))
  out["smile"] = np.stack([-6.0 * corners, 7.0 * both + 3.0 * cheeks, -4.0 * both + 3.0 * cheeks],
                          1)
  out["mouth_open"] = _jaw_drop(template, col, row, MAX_JAW_DROP * template.ref_size)
  brow = np.maximum(_blob(template, k[19], (22.0, 8.0)), _blob(template, k[24], (22.0, 8.0)))
  rise = np.where(row < k[19, 1], np.exp(-0.5 * ((k[19, 1] - row) / 25.0) ** 2), brow)
  zero = np.zeros_like(col)
  out["brow_raise"] = np.stack([zero, 7.0 * np.maximum(brow, rise * (row < k[19, 1])), zero], 1)
  inner = _blob(template, k[21], (9.0, 7.0)) - _blob(template, k[22], (9.0, 7.0))
  both = _blob(template, k[21], (9.0, 7.0)) + _blob(template, k[22], (9.0, 7.0))
  out["brow_lower"] = np.stack([3.0 * inner, -4.0 * both, zero], 1)
  for v in out.values():
    v.setflags(write=False)
  return out


def expression_displacement(template: geometry.FaceTemplate, vertices: np.ndarray,
                            expression: Expression) -> np.ndarray:
  """(N, 3) displacement of `vertices` (identity already applied) for `expression`.

  Smile, mouth opening and brows are fixed fields scaled by their activations; the eye
  closure moves each upper lid onto the lower lid line of the current shape (after the others).
  """
  e = expression
  for name in ("smile", "mouth_open", "brow_raise", "brow_lower"):
    value = getattr(e, name)
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"Expression.{name} must lie in [0, 1], got {value}")
  if len(e.eye_close) != 2 or not all(0.0 <= c <= 1.0 for c in e.eye_close):
    raise ValueError(f"Expression.eye_close must be two values in [0, 1], got {e.eye_close}")
  fields = _expression_fields(template)
  d = np.zeros_like(vertices)
  for name in ("smile", "mouth_open", "brow_raise", "brow_lower"):
    if getattr(e, name):
      d += getattr(e, name) * fields[name]
  current = vertices + d
  for eye, c in enumerate(e.eye_close):
    if c:
      d += _eye_closure(template, current, eye, c)
  return d


def _jaw_drop(template, col, row, drop):
  """The open-mouth field (weights times `drop` down and 0.3 `drop` back).

  The lower lip follows the jaw with an elliptic profile across the mouth (1 in the middle, 0
  at the corners); below it the share of rigid jaw motion grows to 1 at the chin; beside the
  mouth the cheeks stretch from 0 at the corners' row. Vertices of the seam between the inner
  lip lines interpolate (so its triangles stretch into the opening) and recede into a cavity.
  """
  k = template.landmarks_uv
  c0, c1 = k[60, 0], k[64, 0]
  mid, half = 0.5 * (c0 + c1), 0.5 * (c1 - c0)
  up, low = lip_lines(template, np.clip(col, c0, c1))
  inside = (col >= c0) & (col <= c1)
  corner_row = 0.5 * (k[60, 1] + k[64, 1])
  base = np.where(inside, low, corner_row)
  profile = np.cos(0.5 * np.pi * np.clip((col - mid) / half, -1.0, 1.0)) ** 2
  rigid = np.clip((row - base) / np.maximum(k[8, 1] - base, 1.0), 0.0, 1.0)
  lateral = np.exp(-0.5 * (np.maximum(np.abs(col - mid) - half, 0.0) / 30.0) ** 2)
  below = (profile + (1.0 - profile) * rigid) * lateral
  frac = np.clip((row - up) / np.maximum(low - up, 1e-6), 0.0, 1.0)
  seam = inside & (row > up) & (row < low)
  w = np.where(seam, frac * profile, np.where(row >= base, below, 0.0))
  d = np.zeros((len(col), 3))
  d[:, 1] = -drop * w
  d[:, 2] = -0.3 * drop * w - 0.8 * drop * np.where(seam, np.sin(np.pi * frac) * profile, 0.0)
  return d


def sample_shape(rng: np.random.Generator, template: geometry.FaceTemplate, *,
                 identity_scale: float = 1.0, residual: float = 0.012,
                 expression: Expression | None = None
                 ) -> tuple[np.ndarray, np.ndarray, Expression, np.ndarray]:
  """Draws a face shape: identity modes + residual warp + expression (eyes opened by
  `EYE_OPENING_BIAS`).

  Returns:
    (vertices (N, 3) model frame, identity coefficients (K,), expression, the same face's
    neutral vertices (N, 3) before the expression).
  """
  coeffs = sample_identity(rng, identity_scale)
  vertices = apply_identity(template, coeffs) + EYE_OPENING_BIAS * identity_basis(template)[
      IDENTITY_MODES.index("eye_opening")]
  if residual > 0:
    vertices = vertices + (geometry.sample_shape(rng, template, residual) - template.vertices)
  expression = sample_expression(rng) if expression is None else expression
  neutral = vertices
  return (neutral + expression_displacement(template, neutral, expression), coeffs, expression,
          neutral)
