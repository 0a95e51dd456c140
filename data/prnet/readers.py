"""Direct readers of 300W-LP and AFLW2000-3D (the ``.jpg`` + ``.mat`` layouts of the releases).

TFDS's ``the300w_lp`` / ``aflw2k3d`` drop what PRNet training and the yaw-binned benchmark need
(flips, file names, subsets, AFLW2000 pose; prnet-spec.md §6, §11.12), so these read the
released folders with ``scipy.io.loadmat``:

* 300W-LP: ``<root>/<SUBSET>/<name>.jpg`` + ``<name>.mat`` (``pt2d`` 2x68, ``Pose_Para`` 1x7
  [pitch, yaw, roll (rad), tx, ty, tz, s], ...) for SUBSET in AFW, HELEN, IBUG, LFPW and their
  ``_Flip``; optional ``<root>/landmarks/<SUBSET>/<name>_pts.mat`` with ``pts_3d`` (68x2, the
  3-D-fitted landmarks projected; preferred when present, as PRNet trains on them).
* AFLW2000-3D: ``<root>/<name>.jpg`` + ``<name>.mat`` with ``pt3d_68`` (3x68, pixels, y down,
  z toward the camera) and ``Pose_Para``.

Faces are cropped as PRNet does (`bioface_jax.face3d.crop`): 300W-LP with the training crop
(1.5 x the landmark box, no jitter here), AFLW2000-3D with the test crop (1.6 x the GT box).
Without the Basel Face Model there is no dense truth: 300W-LP samples carry ``has_dense = 0``
(landmark-only loss) and a zero ``posmap``. With it (``W300LPDataset(..., bfm=data.prnet.bfm.
load_bfm(path))``) each sample's ``Shape_Para`` / ``Exp_Para`` / ``Pose_Para`` give the dense
position map (`data.prnet.bfm.dense_truth`: crop from the keypoint vertices, landmarks = those
vertices in crop pixels) and ``has_dense = 1``.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from bioface_jax import face3d

W300LP_SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW", "AFW_Flip", "HELEN_Flip", "IBUG_Flip",
                  "LFPW_Flip")


def load_mat(path: str | os.PathLike, keys) -> dict[str, np.ndarray]:
  """Reads `keys` from a MATLAB file.

  Raises:
    FileNotFoundError: no such file. ValueError: not a readable MATLAB file, or a key is
      missing (the message names the file, the missing keys and the keys it has).
  """
  from scipy import io as sio  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"MATLAB file {path} does not exist")
  try:
    data = sio.loadmat(path)
  except (ValueError, TypeError, OSError, NotImplementedError,
          sio.matlab.MatReadError) as err:
    raise ValueError(f"cannot read MATLAB file {path}: {err}") from err
  missing = [k for k in keys if k not in data]
  if missing:
    have = sorted(k for k in data if not k.startswith("__"))
    raise ValueError(f"{path} lacks the expected key(s) {missing} (it has {have})")
  return {k: np.asarray(data[k]) for k in keys}


def load_image(path: str | os.PathLike) -> np.ndarray:
  """(H, W, 3) float32 RGB in [0, 1]; greyscale is replicated, alpha dropped."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"image {path} does not exist")
  try:
    with Image.open(path) as img:
      a = np.asarray(img.convert("RGB"), np.float32) / 255.0
  except (UnidentifiedImageError, OSError, ValueError) as err:  # not an image, truncated
    raise ValueError(f"{path} is not an image PIL can read: {err}") from err
  return a


def _landmarks(arr: np.ndarray, path, key: str, rows: int) -> np.ndarray:
  """A 68-point array given as (k, 68) or (68, k) -> (68, k) float64 (finite, not all equal)."""
  try:
    a = np.asarray(arr, np.float64)
  except (ValueError, TypeError) as err:
    raise ValueError(f"{path}: '{key}' must be {rows}x68 numbers ({err})") from err
  if a.shape == (rows, 68) or (a.ndim == 2 and a.shape[0] >= rows and a.shape[1] == 68):
    a = a[:rows].T
  elif a.ndim == 2 and a.shape[0] == 68 and a.shape[1] >= rows:
    a = a[:, :rows]
  else:
    raise ValueError(f"{path}: '{key}' must be {rows}x68 landmarks, got shape {a.shape}")
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{path}: '{key}' holds non-finite landmarks")
  if np.ptp(a[:, 0]) <= 0 or np.ptp(a[:, 1]) <= 0:
    raise ValueError(f"{path}: '{key}' landmarks span no area (all x or all y equal)")
  return a


def _numbers(value, path, key: str) -> np.ndarray:
  """A .mat variable as a flat float64 array of finite numbers; errors name file and key."""
  try:
    a = np.asarray(value, np.float64).ravel()
  except (ValueError, TypeError) as err:
    raise ValueError(f"{path}: '{key}' must be numbers ({err})") from err
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{path}: '{key}' holds non-finite values")
  return a


def landmark_box(points: np.ndarray) -> np.ndarray:
  lo, hi = points[:, :2].min(0), points[:, :2].max(0)
  return np.array([lo[0], lo[1], hi[0], hi[1]])


class W300LPDataset:
  """300W-LP for landmark-only training (`data.pipeline.Dataset`: len, get(sorted indices))."""

  def __init__(self, root: str | os.PathLike, size: int = 256, subsets=None, bfm=None):
    self.root = pathlib.Path(root)
    self.size = int(size)
    self.bfm = bfm
    subsets = tuple(subsets) if subsets else W300LP_SUBSETS
    unknown = sorted(set(subsets) - set(W300LP_SUBSETS))
    if unknown:
      raise ValueError(f"unknown 300W-LP subsets {unknown}; valid: {W300LP_SUBSETS}")
    self.items = []
    for sub in subsets:
      d = self.root / sub
      if d.is_dir():
        self.items += [(sub, p.stem) for p in sorted(d.glob("*.jpg"))]
    if not self.items:
      raise FileNotFoundError(f"no 300W-LP images (<subset>/<name>.jpg for subsets {subsets}) "
                              f"under {self.root}")

  def __len__(self) -> int:
    return len(self.items)

  def example(self, i: int) -> dict[str, np.ndarray]:
    sub, name = self.items[i]
    jpg = self.root / sub / f"{name}.jpg"
    if self.bfm is not None:
      return self._dense_example(jpg)
    meta = load_mat(jpg.with_suffix(".mat"), ("Pose_Para",))
    pts_file = self.root / "landmarks" / sub / f"{name}_pts.mat"
    if pts_file.is_file():
      pts = _landmarks(load_mat(pts_file, ("pts_3d",))["pts_3d"], pts_file, "pts_3d", 2)
    else:
      pts = _landmarks(load_mat(jpg.with_suffix(".mat"), ("pt2d",))["pt2d"], jpg, "pt2d", 2)
    image = load_image(jpg)
    t = face3d.crop_transform(landmark_box(pts), self.size, scale=1.5)
    crop = face3d.warp_image(image, t, self.size).astype(np.float32)
    lmk = np.concatenate([face3d.transform_points(pts, t), np.zeros((68, 1))], 1)
    pose = _numbers(meta["Pose_Para"], jpg.with_suffix(".mat"), "Pose_Para")
    if pose.size < 3:
      raise ValueError(f"{jpg.with_suffix('.mat')}: 'Pose_Para' must have >= 3 values")
    return dict(image=np.clip(crop, 0, 1), posmap=np.zeros((self.size, self.size, 3), np.float32),
                landmarks=lmk.astype(np.float32), yaw=np.float32(np.rad2deg(pose[1])),
                has_dense=np.float32(0.0))

  def _dense_example(self, jpg: pathlib.Path) -> dict[str, np.ndarray]:
    from data.prnet import bfm as bfm_lib  # pylint: disable=g-import-not-at-top
    mat = jpg.with_suffix(".mat")
    meta = load_mat(mat, ("Shape_Para", "Exp_Para", "Pose_Para"))
    image = load_image(jpg)
    t, posmap, lmk = bfm_lib.dense_truth(self.bfm, meta["Shape_Para"], meta["Exp_Para"],
                                         meta["Pose_Para"], image.shape[0], self.size, where=mat)
    crop = face3d.warp_image(image, t, self.size).astype(np.float32)
    yaw = np.rad2deg(np.asarray(meta["Pose_Para"], np.float64).ravel()[1])
    return dict(image=np.clip(crop, 0, 1), posmap=posmap, landmarks=lmk,
                yaw=np.float32(yaw), has_dense=np.float32(1.0))

  def get(self, indices) -> dict[str, np.ndarray]:
    ex = [self.example(int(i)) for i in indices]
    return {k: np.stack([e[k] for e in ex]) for k in ex[0]}


class MixedDataset:
  """Real examples followed by synthetic ones (one index space; the shuffle mixes them)."""

  def __init__(self, real, synthetic, real_fraction: float, seed: int = 0):
    del seed
    if not 0.0 < real_fraction <= 1.0:
      raise ValueError(f"real_fraction must be in (0, 1], got {real_fraction}")
    self.real, self.synthetic = real, synthetic
    # Use as many synthetic pairs as make the requested real share (at most all of them).
    n_syn = int(round(len(real) * (1.0 - real_fraction) / real_fraction))
    self.n_syn = min(n_syn, len(synthetic))

  def __len__(self) -> int:
    return len(self.real) + self.n_syn

  def get(self, indices) -> dict[str, np.ndarray]:
    idx = np.asarray(indices, np.int64)
    parts, order = [], []
    r = idx[idx < len(self.real)]
    s = idx[idx >= len(self.real)] - len(self.real)
    keys = ("image", "posmap", "landmarks", "yaw", "has_dense")
    if r.size:
      parts.append(self.real.get(r))
    if s.size:
      parts.append(self.synthetic.get(s))
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


class AFLW2000Dataset:
  """AFLW2000-3D for evaluation: test crops, GT 68 points (original pixels), yaw."""

  def __init__(self, root: str | os.PathLike, size: int = 256):
    self.root = pathlib.Path(root)
    self.size = int(size)
    self.names = sorted(p.stem for p in self.root.glob("*.jpg"))
    if not self.names:
      raise FileNotFoundError(f"no AFLW2000-3D images (<name>.jpg + <name>.mat) in {self.root}")

  def __len__(self) -> int:
    return len(self.names)

  def example(self, i: int) -> dict[str, np.ndarray]:
    jpg = self.root / f"{self.names[i]}.jpg"
    mat = jpg.with_suffix(".mat")
    meta = load_mat(mat, ("pt3d_68", "Pose_Para"))
    pts = _landmarks(meta["pt3d_68"], mat, "pt3d_68", 3)
    image = load_image(jpg)
    t = face3d.crop_transform(landmark_box(pts), self.size, scale=1.6)
    pose = _numbers(meta["Pose_Para"], mat, "Pose_Para")
    if pose.size < 3:
      raise ValueError(f"{mat}: 'Pose_Para' must have >= 3 values, got {pose.size}")
    return dict(image=np.clip(face3d.warp_image(image, t, self.size), 0, 1).astype(np.float32),
                transform=t, landmarks=pts.astype(np.float32),
                yaw=np.float32(np.rad2deg(pose[1])))

  def get(self, indices) -> dict[str, np.ndarray]:
    ex = [self.example(int(i)) for i in indices]
    return {k: np.stack([e[k] for e in ex]) for k in ex[0]}


__all__ = ["AFLW2000Dataset", "MixedDataset", "W300LPDataset", "W300LP_SUBSETS", "landmark_box",
           "load_image", "load_mat"]
