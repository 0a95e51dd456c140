"""Deterministic, resumable batching shared by every dataset (real HDF5 data and synthetic faces).

A *dataset* is any object with `__len__` and `get(indices) -> dict[str, np.ndarray]`, where
`indices` is a strictly increasing int64 array (HDF5 fancy indexing needs that) and every returned
array has the requested examples along axis 0, in that order.

Batch number `s` is a pure function of `(seed, s)`: with drop-remainder epochs of
`steps_per_epoch = len // batch_size` steps, step `s` belongs to epoch `s // steps_per_epoch`, whose
order is `np.random.default_rng([seed, epoch]).permutation(len)`. A run resumed at step `s`
therefore sees exactly the batches an uninterrupted run would, with no iterator state to
checkpoint. On several hosts each process takes its contiguous slice of the same global batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

Batch = dict[str, np.ndarray]


class Dataset(Protocol):
  """What the pipeline needs from a dataset."""

  def __len__(self) -> int:
    ...

  def get(self, indices: np.ndarray) -> Batch:
    ...


def get_examples(dataset: Dataset, indices: Sequence[int] | np.ndarray) -> Batch:
  """Reads arbitrary (unsorted, possibly repeated) indices via the dataset's sorted-index `get`.

  Args:
    dataset: the dataset.
    indices: 1-D integer indices in [0, len(dataset)).

  Returns:
    A dict of arrays with `len(indices)` examples on axis 0, in the order of `indices`.
  """
  indices = np.asarray(indices)
  if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
    raise ValueError(f"indices must be a 1-D integer array, got {indices.dtype} {indices.shape}")
  n = len(dataset)
  if indices.size and (indices.min() < 0 or indices.max() >= n):
    raise IndexError(f"indices out of range [0, {n}): min {indices.min()}, max {indices.max()}")
  unique, inverse = np.unique(indices.astype(np.int64), return_inverse=True)
  data = dataset.get(unique)
  if np.array_equal(unique, indices):
    return data
  return {k: v[inverse] for k, v in data.items()}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Number of full batches per epoch (the remainder of each epoch is dropped)."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if num_examples <= 0:
    raise ValueError("the dataset is empty")
  if batch_size > num_examples:
    raise ValueError(
        f"batch_size {batch_size} is larger than the dataset ({num_examples} examples)")
  return num_examples // batch_size


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The example order of one epoch: a pure function of (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """The global example indices of batch number `step` (in permutation order).

  Args:
    num_examples: dataset size.
    batch_size: global batch size.
    seed: non-negative shuffling seed.
    step: non-negative global step.

  Returns:
    (batch_size,) int64 indices.
  """
  spe = steps_per_epoch(num_examples, batch_size)
  if step < 0 or seed < 0:
    raise ValueError(f"step and seed must be non-negative, got step={step}, seed={seed}")
  epoch, pos = divmod(step, spe)
  return epoch_permutation(num_examples, seed, epoch)[pos * batch_size:(pos + 1) * batch_size]


def iterate_batches(dataset: Dataset, batch_size: int, seed: int, start_step: int = 0, *,
                    process_index: int = 0, process_count: int = 1,
                    return_index: bool = False) -> Iterator[Batch]:
  """Infinite iterator over shuffled batches; batch `s` depends only on (seed, s).

  Args:
    dataset: object with `__len__` and `get(sorted_indices)`.
    batch_size: global batch size (over all processes); must divide by `process_count`.
    seed: non-negative shuffling seed.
    start_step: the first step to produce (for resuming).
    process_index: this process's index in a multi-host run (`jax.process_index()`).
    process_count: number of processes (`jax.process_count()`).
    return_index: add an int32 `index` entry with the dataset index of each example.

  Yields:
    Dicts of arrays with `batch_size // process_count` examples on axis 0.
  """
  n = len(dataset)
  spe = steps_per_epoch(n, batch_size)
  if process_count <= 0 or not 0 <= process_index < process_count:
    raise ValueError(f"bad process_index {process_index} / process_count {process_count}")
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}")
  if seed < 0 or start_step < 0:
    raise ValueError(f"seed and start_step must be non-negative, got {seed}, {start_step}")
  local = batch_size // process_count
  lo, hi = process_index * local, (process_index + 1) * local
  step = start_step
  cached_epoch, perm = -1, None
  while True:
    epoch, pos = divmod(step, spe)
    if epoch != cached_epoch:
      cached_epoch, perm = epoch, epoch_permutation(n, seed, epoch)
    idx = perm[pos * batch_size:(pos + 1) * batch_size][lo:hi]
    batch = get_examples(dataset, idx)
    if return_index:
      batch = dict(batch, index=idx.astype(np.int32))
    yield batch
    step += 1


def eval_index_batches(num_examples: int, batch_size: int, max_examples: int, *,
                       process_index: int = 0, process_count: int = 1) -> Iterator[np.ndarray]:
  """Dataset indices of the fixed evaluation batches, this process's rows of each.

  The first `min(num_examples, max_examples)` examples, cut down to whole global batches, in
  order; of global batch `[s, s + batch_size)` this process gets its contiguous slice of
  `batch_size // process_count` rows (the slice the trainer's shard_batch expects), exactly as
  `iterate_batches` splits training batches.
  """
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}")
  n = min(num_examples, max_examples)
  n -= n % batch_size
  local = batch_size // process_count
  for start in range(0, n, batch_size):
    lo = start + process_index * local
    yield np.arange(lo, lo + local)


def split_indices(num_examples: int, holdout_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """A random train/held-out split of range(num_examples); both parts sorted.

  Args:
    num_examples: dataset size.
    holdout_fraction: fraction in [0, 1) held out, rounded to the nearest count.
    seed: split seed (use a different value from the shuffling seed).

  Returns:
    (train_indices, holdout_indices), disjoint, covering range(num_examples).
  """
  if not 0.0 <= holdout_fraction < 1.0:
    raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
  if num_examples <= 0:
    raise ValueError("cannot split an empty dataset")
  num_holdout = int(round(num_examples * holdout_fraction))
  if num_holdout >= num_examples:
    raise ValueError(
        f"holdout_fraction {holdout_fraction} of {num_examples} leaves no training data")
  perm = np.random.default_rng([seed, 0x5EED]).permutation(num_examples)
  return np.sort(perm[num_holdout:]), np.sort(perm[:num_holdout])


class Subset:
  """A view of `dataset` restricted to `indices` (kept in the given order)."""

  def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray):
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
      raise ValueError(f"Subset indices must be 1-D, got shape {indices.shape}")
    n = len(dataset)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
      raise IndexError(f"Subset indices out of range [0, {n})")
    self.dataset = dataset
    self.indices = indices

  def __len__(self) -> int:
    return int(self.indices.size)

  def get(self, indices: np.ndarray) -> Batch:
    return get_examples(self.dataset, self.indices[np.asarray(indices)])


class Prefetcher:
  """Runs an iterator in a background thread, `size` items ahead (NumPy/h5py work off the loop).

  Exceptions raised by the source are re-raised in the consumer. Use as an iterator; call
  `close()` (or use as a context manager) to stop the thread early.
  """

  _DONE = object()

  def __init__(self, source: Iterator[Batch], size: int = 2):
    if size < 1:
      raise ValueError(f"prefetch size must be >= 1, got {size}")
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _run(self, source: Iterator[Batch]) -> None:
    try:
      for item in source:
        if not self._put(item):
          return
      self._put(self._DONE)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer.
      self._put(e)

  def __iter__(self) -> Prefetcher:
    return self

  def __next__(self) -> Batch:
    while True:
      try:
        item = self._queue.get(timeout=0.1)
        break
      except queue.Empty:
        if self._stop.is_set() or not self._thread.is_alive():
          raise StopIteration from None
    if item is self._DONE:
      raise StopIteration
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5.0)

  def __enter__(self) -> Prefetcher:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
