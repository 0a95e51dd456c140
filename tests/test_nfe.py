"""Tests for data.nfe: the NFE augmented-CelebA shard reader, its validation and its writer.

Shards are written directly with h5py in the raw NFE layout (N x 10 x H x W float64, normals
encoded (n + 1) / 2; lights N x 3 x 9) and read back; shading is checked against an independent
float64 NumPy evaluation of the 4x4 matrix form of the SH irradiance.
"""

from __future__ import annotations

import itertools
import pickle

import h5py
import numpy as np
import pytest

from data import nfe, pipeline

C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708
H = W = 8
# float32 storage rule: a stored value is within eps32 / 2 of its float64 source, relative;
# decoding n = 2 x - 1 adds one rounding of a value <= 1.
EPS32 = float(np.finfo(np.float32).eps)


def k_matrix_irradiance(n, l):
  """float64 E = n~^T K(L) n~; n (..., 3), l (..., 9)."""
  L = [l[..., k] for k in range(9)]
  K = np.stack([
      np.stack([C1 * L[8], C1 * L[4], C1 * L[7], C2 * L[3]], -1),
      np.stack([C1 * L[4], -C1 * L[8], C1 * L[5], C2 * L[1]], -1),
      np.stack([C1 * L[7], C1 * L[5], C3 * L[6], C2 * L[2]], -1),
      np.stack([C2 * L[3], C2 * L[1], C2 * L[2], C4 * L[0] - C5 * L[6]], -1)], -2)
  nt = np.concatenate([n, np.ones(n.shape[:-1] + (1,))], -1)
  return np.einsum("...i,...ij,...j->...", nt, K, nt)


def abs_terms(n, l):
  """float64 sum over the irradiance polynomial's terms of |term| (scale of float32 rounding)."""
  x, y, z = (np.abs(n[..., i]) for i in range(3))
  L = [np.abs(l[..., k]) for k in range(9)]
  return (C1 * L[8] * (x * x + y * y) + C3 * L[6] * z * z + C4 * L[0] + C5 * L[6]
          + 2 * C1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
          + 2 * C2 * (L[3] * x + L[1] * y + L[2] * z))


def raw_shard(n, offset, seed):
  """Raw NFE arrays: (n, 10, H, W) float64 and (n, 3, 9); image channel 0 encodes the index."""
  rng = np.random.default_rng(seed)
  inmc = np.zeros((n, 10, H, W))
  inmc[:, 0] = ((offset + np.arange(n)) / 1000.0)[:, None, None]
  inmc[:, 1:3] = rng.uniform(size=(n, 2, H, W))
  normals = rng.normal(size=(n, 3, H, W))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  inmc[:, 3:6] = (normals + 1) / 2
  inmc[:, 6] = rng.integers(0, 2, size=(n, H, W))
  inmc[:, 7:10] = rng.uniform(size=(n, 3, H, W))
  lights = rng.normal(size=(n, 3, 9))
  return inmc, lights


def write_raw(directory, sid, inmc, lights, inmc_key="zx_7", lrgb_key="zx_7"):
  with h5py.File(directory / f"zx_7_d10_inmc_celebA_{sid}.hdf5", "w") as f:
    f.create_dataset(inmc_key, data=inmc)
  with h5py.File(directory / f"zx_7_d3_lrgb_celebA_{sid}.hdf5", "w") as f:
    f.create_dataset(lrgb_key, data=lights)


@pytest.fixture
def shards(tmp_path):
  """Three shards (01: 9, 02: 12, 20: 5 examples) and their raw arrays, concatenated."""
  raws, offset = [], 0
  for i, (sid, n) in enumerate([("01", 9), ("02", 12), ("20", 5)]):
    inmc, lights = raw_shard(n, offset, seed=i)
    write_raw(tmp_path, sid, inmc, lights)
    raws.append((inmc, lights))
    offset += n
  return tmp_path, np.concatenate([r[0] for r in raws]), np.concatenate([r[1] for r in raws])


def test_reads_and_decodes_raw_layout(shards):
  directory, inmc, lights = shards
  ds = nfe.NFEDataset(directory)
  assert len(ds) == 26 and ds.shard_sizes == (9, 12, 5) and ds.image_shape == (H, W)
  idx = np.array([0, 8, 9, 15, 20, 21, 25])  # Crosses both shard boundaries.
  out = ds.get(idx)
  assert set(out) == {"image", "mask", "normals", "shading", "lights"}
  for v in out.values():
    assert v.dtype == np.float32
  assert out["image"].shape == (7, H, W, 3) and out["mask"].shape == (7, H, W)
  assert out["normals"].shape == (7, H, W, 3) and out["shading"].shape == (7, H, W)
  assert out["lights"].shape == (7, 3, 9)
  x = np.transpose(inmc[idx], (0, 2, 3, 1))
  np.testing.assert_allclose(out["image"][:, 0, 0, 0], idx / 1000.0, rtol=EPS32)
  np.testing.assert_allclose(out["image"], x[..., :3], rtol=EPS32, atol=0)
  np.testing.assert_array_equal(out["mask"], x[..., 6])
  normals = 2 * x[..., 3:6] - 1
  np.testing.assert_allclose(out["normals"], normals, rtol=0, atol=2 * EPS32)
  np.testing.assert_allclose(np.linalg.norm(out["normals"], axis=-1), 1.0, rtol=0, atol=8 * EPS32)
  np.testing.assert_allclose(out["lights"], lights[idx], rtol=EPS32)
  per_colour = np.stack([k_matrix_irradiance(normals, lights[idx][:, None, None, c])
                         for c in range(3)], -1)
  want = np.maximum(per_colour.mean(-1), 0)
  assert (want == 0).any() and (want > 0).any()
  # float32 shading vs float64 reference: <= ~20 roundings on any term's path (float32 inputs,
  # decoding 2x-1, products, mean over colours, additions; max(0, .) is 1-Lipschitz), so
  # |error| <= 24 eps32 * sum|terms| of the colour-mean polynomial.
  scale = abs_terms(normals, np.abs(lights[idx]).mean(1)[:, None, None, :])
  np.testing.assert_array_less(np.abs(out["shading"] - want), 24 * np.finfo(np.float32).eps * scale)


def test_get_rejects_unsorted_indices(shards):
  ds = nfe.NFEDataset(shards[0])
  with pytest.raises(ValueError, match="strictly increasing"):
    ds.get(np.array([3, 1]))
  # The pipeline helper reorders for it.
  out = pipeline.get_examples(ds, [3, 1])
  np.testing.assert_allclose(out["image"][:, 0, 0, 0], [0.003, 0.001], rtol=EPS32)


def test_default_holdout_is_shard_20(shards):
  train, held = nfe.nfe_splits(shards[0])
  assert [p.shard_id for p in train.pairs] == ["01", "02"] and len(train) == 21
  assert [p.shard_id for p in held.pairs] == ["20"] and len(held) == 5
  np.testing.assert_allclose(held.get(np.arange(5))["image"][:, 0, 0, 0],
                             np.arange(21, 26) / 1000.0, rtol=EPS32)
  train, held = nfe.nfe_splits(shards[0], holdout_shards=[1])
  assert [p.shard_id for p in held.pairs] == ["01"]
  with pytest.raises(nfe.NFEFormatError, match="not found"):
    nfe.nfe_splits(shards[0], holdout_shards=["07"])
  with pytest.raises(ValueError, match="not both"):
    nfe.nfe_splits(shards[0], holdout_shards=["20"], holdout_fraction=0.1)


def test_fractional_holdout(shards):
  train, held = nfe.nfe_splits(shards[0], holdout_fraction=0.25, seed=1)
  assert len(train) + len(held) == 26 and len(held) == 6  # round(6.5) == 6.
  ids_train = pipeline.get_examples(train, np.arange(len(train)))["image"][:, 0, 0, 0]
  ids_held = pipeline.get_examples(held, np.arange(len(held)))["image"][:, 0, 0, 0]
  ids = np.round(np.concatenate([ids_train, ids_held]) * 1000).astype(int)
  np.testing.assert_array_equal(np.sort(ids), np.arange(26))


def test_deterministic_shuffled_epochs_over_shards(shards):
  ds = nfe.NFEDataset(shards[0])

  def run(start):
    batches = pipeline.iterate_batches(ds, 8, seed=5, start_step=start)
    return [np.round(b["image"][:, 0, 0, 0] * 1000).astype(int)
            for b in itertools.islice(batches, 6 - start)]

  full, resumed = run(0), run(4)
  for s in range(6):
    epoch, pos = divmod(s, 3)
    perm = np.random.default_rng([5, epoch]).permutation(26)
    np.testing.assert_array_equal(full[s], perm[8 * pos:8 * pos + 8])
  for a, b in zip(full[4:], resumed):
    np.testing.assert_array_equal(a, b)


def test_pickle_and_reopen(shards):
  ds = nfe.NFEDataset(shards[0])
  ds.get(np.array([1]))
  clone = pickle.loads(pickle.dumps(ds))
  np.testing.assert_array_equal(clone.get(np.array([2, 12]))["image"],
                                ds.get(np.array([2, 12]))["image"])
  ds.close()
  assert ds.get(np.array([0]))["image"].shape == (1, H, W, 3)


def test_writer_round_trip_and_layout(tmp_path):
  rng = np.random.default_rng(9)
  n = 11
  images = rng.uniform(size=(n, H, W, 3))
  normals = rng.normal(size=(n, H, W, 3))
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  mask = rng.integers(0, 2, size=(n, H, W, 1)).astype(np.float32)
  coord = rng.uniform(size=(n, H, W, 3))
  lights = rng.normal(size=(n, 3, 9))
  pair = nfe.write_nfe_shard(tmp_path, 3, images, normals, mask, coord, lights, rows_per_write=4)
  assert pair.shard_id == "03" and pair.inmc_path.name == "zx_7_d10_inmc_celebA_03.hdf5"
  assert not list(tmp_path.glob("*.partial"))
  with h5py.File(pair.inmc_path, "r") as f:  # Raw layout, independent of the reader.
    raw = f["zx_7"][...]
  assert raw.shape == (n, 10, H, W)
  np.testing.assert_allclose(raw[:, 0:3], images.transpose(0, 3, 1, 2), rtol=0, atol=EPS32)
  np.testing.assert_allclose(raw[:, 3:6], (normals.transpose(0, 3, 1, 2) + 1) / 2, rtol=0,
                             atol=2 * EPS32)
  np.testing.assert_array_equal(raw[:, 6], mask[..., 0])
  np.testing.assert_allclose(raw[:, 7:10], coord.transpose(0, 3, 1, 2), rtol=0, atol=EPS32)
  out = nfe.NFEDataset(tmp_path).get(np.arange(n))
  np.testing.assert_allclose(out["normals"], normals, rtol=0, atol=4 * EPS32)
  np.testing.assert_allclose(out["lights"], lights, rtol=EPS32)


def test_writer_rejects_bad_input_and_aborts(tmp_path):
  good = dict(images=np.zeros((2, H, W, 3)), normals=np.zeros((2, H, W, 3)),
              mask=np.ones((2, H, W)), coord=None, lights=np.zeros((2, 3, 9)))
  with pytest.raises(ValueError, match="images must be in"):
    nfe.write_nfe_shard(tmp_path, "05", **dict(good, images=np.full((2, H, W, 3), 1.5)))
  with pytest.raises(ValueError, match="mask"):
    nfe.write_nfe_shard(tmp_path, "05", **dict(good, mask=np.full((2, H, W), 0.5)))
  with pytest.raises(ValueError, match="lights must have shape"):
    nfe.write_nfe_shard(tmp_path, "05", **dict(good, lights=np.zeros((2, 9))))
  assert not list(tmp_path.iterdir())  # Aborted writes leave nothing behind.


def expect_error(directory, filename):
  with pytest.raises(nfe.NFEFormatError) as info:
    nfe.NFEDataset(directory)
  assert filename in str(info.value), str(info.value)
  return str(info.value)


def test_missing_key(tmp_path):
  inmc, lights = raw_shard(4, 0, 0)
  write_raw(tmp_path, "01", inmc, lights, inmc_key="data")
  msg = expect_error(tmp_path, "zx_7_d10_inmc_celebA_01.hdf5")
  assert "missing dataset key 'zx_7'" in msg and "data" in msg


def test_wrong_shapes(tmp_path):
  inmc, lights = raw_shard(4, 0, 0)
  write_raw(tmp_path, "01", inmc[:, :9], lights)
  expect_error(tmp_path, "zx_7_d10_inmc_celebA_01.hdf5")
  write_raw(tmp_path, "01", inmc, lights[..., :8])
  assert "(N, 3, 9)" in expect_error(tmp_path, "zx_7_d3_lrgb_celebA_01.hdf5")
  write_raw(tmp_path, "01", inmc, lights[:3])
  assert "has 3" in expect_error(tmp_path, "zx_7_d3_lrgb_celebA_01.hdf5")


def test_partner_missing(tmp_path):
  inmc, lights = raw_shard(4, 0, 0)
  write_raw(tmp_path, "01", inmc, lights)
  write_raw(tmp_path, "02", inmc, lights)
  (tmp_path / "zx_7_d3_lrgb_celebA_02.hdf5").unlink()
  msg = expect_error(tmp_path, "zx_7_d10_inmc_celebA_02.hdf5")
  assert "zx_7_d3_lrgb_celebA_02.hdf5" in msg


def test_no_shards_in_directory(tmp_path):
  with pytest.raises(nfe.NFEFormatError, match="no NFE shards"):
    nfe.NFEDataset(tmp_path)
  with pytest.raises(nfe.NFEFormatError, match="missing_dir"):
    nfe.NFEDataset(tmp_path / "missing_dir")


def test_truncated_file(tmp_path):
  inmc, lights = raw_shard(6, 0, 0)
  write_raw(tmp_path, "01", inmc, lights)
  path = tmp_path / "zx_7_d10_inmc_celebA_01.hdf5"
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  msg = expect_error(tmp_path, "zx_7_d10_inmc_celebA_01.hdf5")
  assert "cannot read as HDF5" in msg


@pytest.mark.parametrize("channel,value,what", [(0, 1.2, "images"), (4, -0.3, "normals"),
                                                (6, 0.5, "mask"), (1, np.nan, "non-finite")])
def test_out_of_range_values(tmp_path, channel, value, what):
  inmc, lights = raw_shard(4, 0, 0)
  inmc[1, channel, 2, 3] = value
  write_raw(tmp_path, "01", inmc, lights)
  assert what in expect_error(tmp_path, "zx_7_d10_inmc_celebA_01.hdf5")


def test_nonfinite_past_validated_rows_caught_at_read(tmp_path):
  inmc, lights = raw_shard(20, 0, 0)
  lights[18, 1, 4] = np.inf
  write_raw(tmp_path, "01", inmc, lights)
  ds = nfe.NFEDataset(tmp_path)  # Only the first rows are checked at open.
  ds.get(np.array([0, 5]))
  with pytest.raises(nfe.NFEFormatError, match="zx_7_d3_lrgb_celebA_01.hdf5"):
    ds.get(np.array([17, 18]))
