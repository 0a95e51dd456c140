"""Dense 300W-LP truth from the user-supplied Basel Face Model (prnet-spec.md §6).

Files (never shipped: BFM2009 is not redistributable), in the layout face3d
(YadiraF/face3d, examples/Data/BFM/Out) and 3DDFA use:

* ``BFM.mat``: a 1x1 struct ``model`` with ``shapeMU`` (3n, 1), ``shapePC`` (3n, 199),
  ``expMU`` (3n, 1), ``expPC`` (3n, 29), ``tri`` (3, T) and ``tri_mouth`` (3, 114) (1-based),
  ``kpt_ind`` (1, 68) (1-based); vertex i is rows 3i, 3i+1, 3i+2 (x, y, z; MATLAB column-major
  reshape to 3 x n). n = 53,215 for the real file. (The same fields at the top level of the
  file are accepted too.)
* ``BFM_UV.mat``: ``UV`` (n, 2) in [0, 1], face3d's processed file for the same n vertices.
* per 300W-LP image ``<name>.mat``: ``Shape_Para`` (199, 1), ``Exp_Para`` (29, 1),
  ``Pose_Para`` (1, 7) = [pitch, yaw, roll (rad), tx, ty, tz, s].

Pipeline (face3d, examples/8_generate_posmap_300WLP.py, without its random jitter, which our
augmentation replaces): v = shapeMU + expMU + shapePC a + expPC b; s R v + t with 3DDFA's
R = Rx Ry Rz of *transposed* elementary rotations; orthographic; y <- h - 1 - y; crop with the
1.5 x box of the int-cast 68 keypoint vertices to [0, R-1] (`face3d.crop_transform`), z scaled
by the crop and shifted to min 0 over the whole mesh; then every vertex's value is drawn into
the UV grid at (u (255), 255 (1 - v)) (integer pixel centres) with barycentric interpolation over
``tri`` + ``tri_mouth``, and reduced to resolution R by `face3d.resize_uv_map`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from bioface_jax import face3d
from bioface_jax.face3d import uv as uv_lib
from data.synth import raster

MODEL_KEYS = ("shapeMU", "shapePC", "expMU", "expPC", "tri", "tri_mouth", "kpt_ind")


@dataclasses.dataclass(frozen=True)
class BFM:
  """The morphable model in 0-based NumPy form."""
  mean: np.ndarray        # (n, 3) shapeMU + expMU
  shape_pc: np.ndarray    # (3n, ks)
  exp_pc: np.ndarray      # (3n, ke)
  triangles: np.ndarray   # (T + Tm, 3) tri followed by tri_mouth, 0-based
  kpt_ind: np.ndarray     # (68,) 0-based
  uv: np.ndarray          # (n, 2) in [0, 1]

  @property
  def num_vertices(self) -> int:
    return self.mean.shape[0]


def _struct_fields(path: pathlib.Path) -> dict[str, np.ndarray]:
  from scipy import io as sio  # pylint: disable=g-import-not-at-top
  try:
    data = sio.loadmat(path)
  except (ValueError, TypeError, OSError, NotImplementedError, sio.matlab.MatReadError) as err:
    raise ValueError(f"cannot read the Basel Face Model file {path}: {err}") from err
  if "model" in data:
    m = data["model"]
    if m.dtype.names is None or m.size != 1:
      raise ValueError(f"{path}: 'model' must be a 1x1 struct (face3d's BFM.mat), got "
                       f"{m.dtype} with shape {m.shape}")
    m = m.reshape(-1)[0]
    return {k: np.asarray(m[k]) for k in m.dtype.names}
  return {k: np.asarray(v) for k, v in data.items() if not k.startswith("__")}


def _indices(a: np.ndarray, n: int, path, key: str, rows: int | None) -> np.ndarray:
  """1-based MATLAB indices (rows x k or k x rows) -> 0-based (k, rows) or (k,) int64."""
  a = np.asarray(a)
  if rows is None:
    a = a.reshape(-1)
  elif a.ndim == 2 and a.shape[0] == rows:
    a = a.T
  elif not (a.ndim == 2 and a.shape[1] == rows):
    raise ValueError(f"{path}: '{key}' must be {rows} x T (1-based vertex indices), got shape "
                     f"{a.shape}")
  if a.size and (a.min() < 1 or a.max() > n or np.any(a != np.round(a))):
    raise ValueError(f"{path}: '{key}' must hold 1-based vertex indices in [1, {n}], got "
                     f"range [{a.min()}, {a.max()}]")
  return a.astype(np.int64) - 1


def load_bfm(path: str | os.PathLike, uv_path: str | os.PathLike | None = None) -> BFM:
  """Reads ``BFM.mat`` and ``BFM_UV.mat`` (default: beside it); errors name file, key, shape."""
  path = pathlib.Path(path)
  uv_path = path.with_name("BFM_UV.mat") if uv_path is None else pathlib.Path(uv_path)
  for p, what in ((path, "Basel Face Model (BFM.mat)"), (uv_path, "BFM UV coordinates "
                                                                   "(BFM_UV.mat)")):
    if not p.is_file():
      raise FileNotFoundError(f"{what} not found at {p}; it is user-supplied (prnet-spec.md §6)")
  f = _struct_fields(path)
  missing = [k for k in MODEL_KEYS if k not in f]
  if missing:
    raise ValueError(f"{path} lacks the Basel Face Model field(s) {missing} (it has "
                   f"{sorted(f)}); expected face3d's BFM.mat layout")
  mu = np.asarray(f["shapeMU"], np.float64)
  if mu.ndim != 2 or mu.shape[1] != 1 or mu.shape[0] % 3:
    raise ValueError(f"{path}: 'shapeMU' must be (3n, 1), got shape {mu.shape}")
  n3 = mu.shape[0]
  for key in ("expMU", "shapePC", "expPC"):
    a = f[key]
    if a.ndim != 2 or a.shape[0] != n3 or (key == "expMU" and a.shape[1] != 1):
      want = "(3n, 1)" if key == "expMU" else "(3n, k)"
      raise ValueError(f"{path}: '{key}' must be {want} with 3n = {n3}, got shape {a.shape}")
  n = n3 // 3
  tri = np.concatenate([_indices(f["tri"], n, path, "tri", 3),
                        _indices(f["tri_mouth"], n, path, "tri_mouth", 3)])
  kpt = _indices(f["kpt_ind"], n, path, "kpt_ind", None)
  if kpt.shape != (68,):
    raise ValueError(f"{path}: 'kpt_ind' must hold 68 indices, got {kpt.size}")
  from data.prnet import readers  # pylint: disable=g-import-not-at-top
  uv = np.asarray(readers.load_mat(uv_path, ("UV",))["UV"], np.float64)
  if uv.shape != (n, 2):
    raise ValueError(f"{uv_path}: 'UV' must be (n, 2) = ({n}, 2) for the {n} vertices of {path} "
                     f"(face3d's processed BFM_UV.mat), got shape {uv.shape}")
  return BFM(mean=(mu + np.asarray(f["expMU"], np.float64)).reshape(n, 3),
             shape_pc=np.asarray(f["shapePC"], np.float64),
             exp_pc=np.asarray(f["expPC"], np.float64), triangles=tri, kpt_ind=kpt, uv=uv)


def rotation_3ddfa(angles) -> np.ndarray:
  """3DDFA's R = Rx Ry Rz with transposed elementary rotations; angles (pitch, yaw, roll) rad."""
  x, y, z = (float(a) for a in angles)
  cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
  rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
  ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
  rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
  return rx @ ry @ rz


def _params(a, k: int, what: str, where) -> np.ndarray:
  a = np.asarray(a, np.float64).reshape(-1)
  if a.size != k:
    raise ValueError(f"{where}: '{what}' must have {k} values for this model, got {a.size}")
  return a


def vertices(model: BFM, shape_para, exp_para, where="parameters") -> np.ndarray:
  """(n, 3) model-space vertices: mean + shapePC a + expPC b."""
  a = _params(shape_para, model.shape_pc.shape[1], "Shape_Para", where)
  b = _params(exp_para, model.exp_pc.shape[1], "Exp_Para", where)
  return model.mean + (model.shape_pc @ a + model.exp_pc @ b).reshape(-1, 3)


def image_vertices(verts: np.ndarray, pose_para, height: int, where="parameters") -> np.ndarray:
  """s R v + t (3DDFA pose, orthographic), then y <- height - 1 - y: image pixels, y down."""
  p = _params(pose_para, 7, "Pose_Para", where)
  out = p[6] * verts @ rotation_3ddfa(p[:3]).T + p[3:6]
  out[:, 1] = height - 1 - out[:, 1]
  return out


def uv_position_map(model: BFM, points: np.ndarray, size: int) -> np.ndarray:
  """(R, R, 3) map: every vertex's value `points` (n, 3) drawn at its UV pixel, interpolated
  over the triangles, at 256 and reduced to R (block mean of the drawn pixels); 0 elsewhere."""
  r = uv_lib.UV_SIZE
  # face3d's UV pixel of a vertex: (u, (R-1)(1 - v)) with integer centres; our rasteriser
  # has centres at +1/2, hence the shift. The UV layout is flat (z = 0: no occlusion).
  screen = np.stack([model.uv[:, 0] * (r - 1) + 0.5, (r - 1) * (1 - model.uv[:, 1]) + 0.5,
                     np.zeros(model.num_vertices)], 1)
  tri = model.triangles.copy()
  x, y = screen[tri, 0], screen[tri, 1]
  area = (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]) - (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0])
  tri[area < 0] = tri[area < 0][:, [0, 2, 1]]   # the rasteriser culls clockwise triangles
  index, bary = raster.rasterise_triangles(screen, tri, r)
  valid = index >= 0
  values = np.einsum("hwk,hwkc->hwc", bary, points[tri[np.maximum(index, 0)]])
  return uv_lib.resize_uv_map(np.where(valid[..., None], values, 0.0), valid, size)


def dense_truth(model: BFM, shape_para, exp_para, pose_para, image_height: int, size: int,
                where="parameters"):
  """(crop transform 3x3, position map (R, R, 3) float32, landmarks (68, 3) float32).

  The crop is PRNet's training crop (1.5 x the box of the int-cast keypoint vertices) onto
  [0, R-1]; map and landmarks are in its pixels (PRNet convention, z min 0 over the mesh)."""
  img = image_vertices(vertices(model, shape_para, exp_para, where), pose_para, image_height,
                       where)
  kpt = img[model.kpt_ind, :2].astype(np.int32)
  box = np.array([kpt[:, 0].min(), kpt[:, 1].min(), kpt[:, 0].max(), kpt[:, 1].max()], float)
  t = face3d.crop_transform(box, size, scale=1.5)
  pts = face3d.transform_points(img, t)
  pts[:, 2] -= pts[:, 2].min()
  posmap = uv_position_map(model, pts, size).astype(np.float32)
  return t, posmap, pts[model.kpt_ind].astype(np.float32)


__all__ = ["BFM", "MODEL_KEYS", "dense_truth", "image_vertices", "load_bfm", "rotation_3ddfa",
           "uv_position_map", "vertices"]
