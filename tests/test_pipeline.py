"""Tests for data.pipeline: deterministic, resumable batching, splits, subsets and prefetching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from data import pipeline


class ArrayDataset:
  """In-memory dataset that enforces the pipeline's contract (strictly increasing indices)."""

  def __init__(self, n: int):
    self.x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    self.calls = []

  def __len__(self):
    return len(self.x)

  def get(self, indices):
    indices = np.asarray(indices)
    assert indices.dtype == np.int64
    assert np.all(np.diff(indices) > 0), indices
    self.calls.append(indices)
    return {"x": self.x[indices], "id": indices.copy()}


def reference_batches(n, batch_size, seed, num_steps):
  """The documented contract, written out independently."""
  spe = n // batch_size
  out = []
  for s in range(num_steps):
    epoch, pos = s // spe, s % spe
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    out.append(perm[pos * batch_size:(pos + 1) * batch_size])
  return out


def test_batches_follow_the_seeded_epoch_permutations():
  ds = ArrayDataset(10)
  batches = list(itertools.islice(pipeline.iterate_batches(ds, 3, seed=7), 9))
  want = reference_batches(10, 3, 7, 9)
  for b, w in zip(batches, want):
    np.testing.assert_array_equal(b["id"], w)  # Permutation order is preserved.
    np.testing.assert_array_equal(b["x"][:, 0], w.astype(np.float32))
  # Drop-remainder epochs: three steps per epoch, no repeats within an epoch.
  for e in range(3):
    ids = np.concatenate([b["id"] for b in batches[3 * e:3 * e + 3]])
    assert len(set(ids.tolist())) == 9
  # Consecutive epochs are shuffled differently.
  assert not np.array_equal(batches[0]["id"], batches[3]["id"])


def test_resume_matches_uninterrupted_run():
  ds = ArrayDataset(23)
  full = list(itertools.islice(pipeline.iterate_batches(ds, 4, seed=1), 30))
  resumed = list(itertools.islice(pipeline.iterate_batches(ds, 4, seed=1, start_step=17), 13))
  for a, b in zip(full[17:], resumed):
    np.testing.assert_array_equal(a["x"], b["x"])
  np.testing.assert_array_equal(pipeline.batch_indices(23, 4, 1, 17), full[17]["id"])


def test_seeds_differ_and_return_index():
  ds = ArrayDataset(50)
  a = next(pipeline.iterate_batches(ds, 8, seed=0, return_index=True))
  b = next(pipeline.iterate_batches(ds, 8, seed=1, return_index=True))
  assert not np.array_equal(a["index"], b["index"])
  assert a["index"].dtype == np.int32
  np.testing.assert_array_equal(a["index"], a["id"])


def test_process_slices_tile_the_global_batch():
  ds = ArrayDataset(40)
  glob = list(itertools.islice(pipeline.iterate_batches(ds, 8, seed=3), 6))
  parts = [list(itertools.islice(
      pipeline.iterate_batches(ds, 8, seed=3, process_index=p, process_count=4), 6))
           for p in range(4)]
  for s in range(6):
    np.testing.assert_array_equal(np.concatenate([parts[p][s]["x"] for p in range(4)]),
                                  glob[s]["x"])
    assert parts[0][s]["x"].shape == (2, 2)


def test_errors():
  with pytest.raises(ValueError, match="larger than the dataset"):
    next(pipeline.iterate_batches(ArrayDataset(3), 4, seed=0))
  with pytest.raises(ValueError, match="empty"):
    next(pipeline.iterate_batches(ArrayDataset(0), 1, seed=0))
  with pytest.raises(ValueError, match="positive"):
    next(pipeline.iterate_batches(ArrayDataset(3), 0, seed=0))
  with pytest.raises(ValueError, match="divisible"):
    next(pipeline.iterate_batches(ArrayDataset(9), 6, seed=0, process_count=4))
  with pytest.raises(IndexError):
    pipeline.get_examples(ArrayDataset(3), [0, 3])


def test_get_examples_handles_unsorted_and_repeated_indices():
  ds = ArrayDataset(10)
  out = pipeline.get_examples(ds, np.array([5, 1, 5, 9]))
  np.testing.assert_array_equal(out["x"][:, 0], [5, 1, 5, 9])
  np.testing.assert_array_equal(ds.calls[-1], [1, 5, 9])


def test_split_indices():
  train, held = pipeline.split_indices(100, 0.2, seed=4)
  assert len(held) == 20 and len(train) == 80
  assert np.all(np.diff(train) > 0) and np.all(np.diff(held) > 0)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, held])), np.arange(100))
  train2, held2 = pipeline.split_indices(100, 0.2, seed=4)
  np.testing.assert_array_equal(held, held2)
  assert not np.array_equal(held, pipeline.split_indices(100, 0.2, seed=5)[1])
  assert len(pipeline.split_indices(10, 0.0, seed=0)[1]) == 0
  with pytest.raises(ValueError, match="holdout_fraction"):
    pipeline.split_indices(10, 1.0, seed=0)
  with pytest.raises(ValueError, match="no training data"):
    pipeline.split_indices(2, 0.9, seed=0)


def test_subset_view_and_iteration():
  ds = ArrayDataset(20)
  sub = pipeline.Subset(ds, [15, 3, 8, 11, 0])
  assert len(sub) == 5
  out = sub.get(np.array([0, 1, 4]))
  np.testing.assert_array_equal(out["x"][:, 0], [15, 3, 0])
  seen = np.concatenate([b["x"][:, 0] for b in
                         itertools.islice(pipeline.iterate_batches(sub, 5, seed=0), 3)])
  assert set(seen.tolist()) == {15.0, 3.0, 8.0, 11.0, 0.0}
  with pytest.raises(IndexError):
    pipeline.Subset(ds, [20])


def test_prefetcher_preserves_order_and_propagates_errors():
  ds = ArrayDataset(12)
  direct = list(itertools.islice(pipeline.iterate_batches(ds, 4, seed=2), 5))
  with pipeline.Prefetcher(pipeline.iterate_batches(ds, 4, seed=2), size=2) as pf:
    fetched = list(itertools.islice(pf, 5))
  for a, b in zip(direct, fetched):
    np.testing.assert_array_equal(a["x"], b["x"])

  def failing():
    yield {"x": np.zeros(1)}
    raise RuntimeError("boom")

  pf = pipeline.Prefetcher(failing())
  next(pf)
  with pytest.raises(RuntimeError, match="boom"):
    next(pf)
  pf.close()
  assert list(pipeline.Prefetcher(iter([]))) == []


def test_eval_index_batches_whole_batches_split_by_process():
  # 37 examples, at most 30, batch 8 -> the 3 whole batches [0, 24), in order.
  single = list(pipeline.eval_index_batches(37, 8, 30))
  np.testing.assert_array_equal(np.concatenate(single), np.arange(24))
  # Two processes: each gets its contiguous half of every global batch, together the same rows.
  halves = [list(pipeline.eval_index_batches(37, 8, 30, process_index=p, process_count=2))
            for p in range(2)]
  for b, whole in enumerate(single):
    np.testing.assert_array_equal(np.concatenate([halves[0][b], halves[1][b]]), whole)
    np.testing.assert_array_equal(halves[1][b], whole[4:])
  with pytest.raises(ValueError, match="not divisible"):
    list(pipeline.eval_index_batches(37, 8, 30, process_count=3))
