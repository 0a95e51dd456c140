"""300W-LP / AFLW2000-3D direct readers on fake files in exactly the released layouts."""

import re

import numpy as np
import pytest
from PIL import Image
from scipy import io as sio

from bioface_jax import face3d
from data.prnet import readers


def _points(rng, n=68):
  return np.stack([rng.uniform(30, 90, n), rng.uniform(20, 80, n)], 0)  # 2 x 68 (x; y).


def _jpg(path, w=120, h=100, seed=0):
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=95)


def _fake_300wlp(root):
  rng = np.random.default_rng(0)
  files = {}
  for sub, name in (("IBUG", "IBUG_image_003_1_0"), ("IBUG", "IBUG_image_003_1_1"),
                    ("AFW_Flip", "AFW_134212_1_0")):
    (root / sub).mkdir(parents=True, exist_ok=True)
    _jpg(root / sub / f"{name}.jpg")
    pt2d = _points(rng)
    sio.savemat(root / sub / f"{name}.mat", dict(
        pt2d=pt2d, roi=np.array([[10, 10, 100, 90]]),
        Pose_Para=np.array([[0.1, 0.5, -0.2, 60, 50, 0, 1e-3]]),
        Shape_Para=np.zeros((199, 1)), Exp_Para=np.zeros((29, 1))))
    files[name] = pt2d
  (root / "landmarks" / "IBUG").mkdir(parents=True)
  pts3d = _points(rng).T  # 68 x 2, preferred over pt2d when present.
  sio.savemat(root / "landmarks" / "IBUG" / "IBUG_image_003_1_0_pts.mat",
              dict(pts_2d=files["IBUG_image_003_1_0"].T, pts_3d=pts3d))
  files["IBUG_image_003_1_0"] = pts3d.T
  return files


def test_300wlp_reader_crops_and_transforms_landmarks(tmp_path):
  files = _fake_300wlp(tmp_path)
  ds = readers.W300LPDataset(tmp_path, size=32)
  assert len(ds) == 3
  assert len(readers.W300LPDataset(tmp_path, size=32, subsets=("IBUG",))) == 2
  for i, (_, name) in enumerate(ds.items):
    ex = ds.example(i)
    pts = files[name].T
    # Independent transcription of PRNet's crop: 1.5 x the mean box side, [0, R - 1].
    lo, hi = pts.min(0), pts.max(0)
    side = int(1.5 * ((hi - lo).sum() / 2))
    centre = (lo + hi) / 2
    want = (pts - (centre - side / 2)) * (31 / side)
    np.testing.assert_allclose(ex["landmarks"][:, :2], want, rtol=1e-5, atol=1e-4)
    assert ex["image"].shape == (32, 32, 3) and ex["has_dense"] == 0
    assert ex["yaw"] == pytest.approx(np.rad2deg(0.5), rel=1e-6)
  batch = ds.get(np.array([0, 2]))
  assert batch["image"].shape == (2, 32, 32, 3) and batch["posmap"].shape == (2, 32, 32, 3)


def test_aflw2000_reader(tmp_path):
  rng = np.random.default_rng(1)
  pts = np.concatenate([_points(rng), rng.uniform(-20, 20, (1, 68))], 0)  # 3 x 68.
  _jpg(tmp_path / "image00002.jpg")
  sio.savemat(tmp_path / "image00002.mat", dict(
      pt3d_68=pts, pt2d=np.full((2, 21), -1.0),
      Pose_Para=np.array([[0.0, -1.2, 0.1, 0, 0, 0, 1e-3]])))
  ds = readers.AFLW2000Dataset(tmp_path, size=64)
  ex = ds.example(0)
  np.testing.assert_allclose(ex["landmarks"], pts.T, rtol=1e-6)
  assert face3d.yaw_bins(ex["yaw"]) == 2
  corners = face3d.transform_points(np.array([[0.0, 0.0]]), ex["transform"])
  assert corners.shape == (1, 2)
  back = face3d.uncrop_points(face3d.transform_points(pts.T, ex["transform"]), ex["transform"])
  np.testing.assert_allclose(back, pts.T, rtol=1e-9, atol=1e-9)


def test_readers_name_missing_keys_and_files(tmp_path):
  _jpg(tmp_path / "image00004.jpg")
  sio.savemat(tmp_path / "image00004.mat", dict(pt2d=np.zeros((2, 21))))
  with pytest.raises(ValueError, match=r"image00004\.mat lacks the expected key\(s\) \['pt3d_68'"):
    readers.AFLW2000Dataset(tmp_path).example(0)
  sio.savemat(tmp_path / "bad.mat", dict(pt3d_68=np.zeros((3, 5)), Pose_Para=np.zeros((1, 7))))
  _jpg(tmp_path / "bad.jpg")
  ds = readers.AFLW2000Dataset(tmp_path)
  with pytest.raises(ValueError, match=r"'pt3d_68' must be 3x68"):
    ds.example(ds.names.index("bad"))
  with pytest.raises(FileNotFoundError, match="no 300W-LP images"):
    readers.W300LPDataset(tmp_path / "empty")


@pytest.mark.parametrize("case", ["empty", "garbage", "missing", "text", "nan", "flat",
                                  "pose", "jpg"])
def test_aflw2000_malformed_files_are_named(tmp_path, case):
  """Every malformed .mat / .jpg gives a ValueError (or FileNotFoundError) naming the file."""
  _jpg(tmp_path / "a.jpg")
  mat, good = tmp_path / "a.mat", np.stack([np.linspace(10, 50, 68)] * 2 + [np.zeros(68)])
  variables = dict(pt3d_68=good, Pose_Para=np.zeros((1, 7)))
  if case == "text":
    variables["pt3d_68"] = "abc"
  elif case == "nan":
    variables["pt3d_68"] = np.full((3, 68), np.nan)
  elif case == "flat":
    variables["pt3d_68"] = np.zeros((3, 68))
  elif case == "pose":
    variables["Pose_Para"] = np.full((1, 7), np.inf)
  sio.savemat(mat, variables)
  culprit = mat
  if case == "empty":
    mat.write_bytes(b"")
  elif case == "garbage":
    mat.write_bytes(b"MATLAB? no" * 20)
  elif case == "missing":
    mat.unlink()
  elif case == "jpg":
    culprit = tmp_path / "a.jpg"
    culprit.write_bytes(culprit.read_bytes()[:100])  # truncated
  expected = FileNotFoundError if case == "missing" else ValueError
  with pytest.raises(expected, match=re.escape(str(culprit))):
    readers.AFLW2000Dataset(tmp_path, size=32).example(0)
  (tmp_path / "notimg.jpg").write_text("hello")
  with pytest.raises(ValueError, match="not an image"):
    readers.load_image(tmp_path / "notimg.jpg")
  with pytest.raises(ValueError, match="unknown 300W-LP subsets"):
    readers.W300LPDataset(tmp_path, subsets=("XYZ",))


def test_mixed_dataset_marks_dense_truth(tmp_path):
  _fake_300wlp(tmp_path)
  real = readers.W300LPDataset(tmp_path, size=32)

  class Synth:
    def __len__(self):
      return 10

    def get(self, idx):
      n = len(idx)
      return dict(image=np.zeros((n, 32, 32, 3), np.float32),
                  posmap=np.ones((n, 32, 32, 3), np.float32),
                  landmarks=np.zeros((n, 68, 3), np.float32), yaw=np.zeros(n, np.float32),
                  has_dense=np.ones(n, np.float32))

  mixed = readers.MixedDataset(real, Synth(), 0.5)
  assert len(mixed) == 6
  b = mixed.get(np.array([1, 4, 5]))
  np.testing.assert_array_equal(b["has_dense"], [0, 1, 1])


def test_task_reads_300wlp_mixed_with_synthetic(tmp_path):
  from train import prnet_task
  from train.configs import prnet as prnet_configs
  _fake_300wlp(tmp_path / "300W_LP")
  config = prnet_configs.get_config("smoke")
  config.data.update(source="300wlp", dir=str(tmp_path / "300W_LP"), real_fraction=0.5,
                     cache_dir=str(tmp_path / "cache"), size=32, num_train=8, num_eval=8)
  config.batch_size = 4
  train, holdout = prnet_task.load_datasets(config, stream=False)
  assert len(train) == 6 and len(holdout) == 8  # 3 real + 3 synthetic (half and half).
  batches = prnet_task.PRNetTask(config, prnet_task.model_config(config), train,
                                 holdout).make_batches(0)
  batch = next(batches)
  batches.close()
  assert batch["image"].shape == (4, 32, 32, 3)
  assert set(np.unique(batch["has_dense"])) <= {0.0, 1.0}


def test_task_reads_the_scene_world_and_caches_it_apart(tmp_path):
  """`config.data.world = "scenes"`: the pairs come from the face-scene world's PRNet framing
  (`scene_render.prnet_pairs`, same seeds and indices), in their own cache file."""
  from data.prnet import dataset as synth_set
  from data.synth import scene_render
  from train import prnet_task
  from train.configs import prnet as prnet_configs
  config = prnet_configs.get_config("smoke")
  config.data.update(world="scenes", workers=0, cache_dir=str(tmp_path), size=32, num_train=2,
                     num_eval=2)
  train, holdout = prnet_task.load_datasets(config, stream=False)
  assert "prnet_scenes_32_2_0_" in train.path.name and train.path.parent == tmp_path
  want = next(scene_render.prnet_pairs(0, range(2), size=32, batch_size=2))
  got = train.get(np.arange(2))
  np.testing.assert_array_equal(np.round(got["image"] * 255).astype(np.uint8), want["image"])
  np.testing.assert_array_equal(got["posmap"], want["posmap"])
  np.testing.assert_array_equal(got["landmarks"], want["landmarks"])
  assert holdout.path != train.path
  with pytest.raises(ValueError, match="context"):
    synth_set.cache_path(tmp_path, 2, 32, 0, context=True, world="scenes")
  with pytest.raises(ValueError, match="world"):
    synth_set.cache_path(tmp_path, 2, 32, 0, world="selfies")
