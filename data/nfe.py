"""Reader for Neural Face Editing (NFE) augmented-CelebA HDF5 shards (spec §9.2).

Each shard XX is a pair of files, each holding one dataset under the key ``zx_7``:

* ``zx_7_d10_inmc_celebA_XX.hdf5``: (N, 10, H, W) float, N x C x H x W. Channels 0-2 gamma-encoded
  RGB in [0, 1], 3-5 normals encoded (n + 1) / 2, 6 face mask in {0, 1}, 7-9 the "coord" map.
* ``zx_7_d3_lrgb_celebA_XX.hdf5``: (N, 3, 9) second-order SH lighting per colour (R, G, B).

`NFEDataset` streams examples from such shards (files opened lazily, once per process; only the
requested rows are read) and returns NHWC float32 arrays plus BioFaceNet's pseudo-ground-truth
shading. Files are validated at open (keys, shapes, pairing, readability, a cheap value check on
the first rows); every error names the file. `NFEShardWriter` / `write_nfe_shard` (in
`data.nfe_writer`, re-exported here) write the same layout, so synthetic training data can be
produced for the same reader.

Default held-out split (`nfe_splits`): shard "20", as the NFE trainer and most reimplementations do.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Sequence

import h5py
import numpy as np

from bioface_jax.physics.shading import shading_target_numpy
from data.pipeline import Subset, split_indices

KEY = "zx_7"
INMC_TEMPLATE = "zx_7_d10_inmc_celebA_{}.hdf5"
LRGB_TEMPLATE = "zx_7_d3_lrgb_celebA_{}.hdf5"
_INMC_RE = re.compile(r"^zx_7_d10_inmc_celebA_(\w+)\.hdf5$")
_LRGB_RE = re.compile(r"^zx_7_d3_lrgb_celebA_(\w+)\.hdf5$")
NUM_CHANNELS = 10
DEFAULT_HOLDOUT_SHARDS = ("20",)
_VALIDATE_ROWS = 16


class NFEFormatError(ValueError):
  """An NFE shard file is missing, unreadable or not in the expected layout."""


@dataclasses.dataclass(frozen=True)
class ShardPair:
  """The two files of one NFE shard."""
  shard_id: str
  inmc_path: pathlib.Path
  lrgb_path: pathlib.Path


def _shard_id(shard: str | int) -> str:
  return f"{shard:02d}" if isinstance(shard, int) else str(shard)


def find_shard_pairs(directory: str | os.PathLike) -> list[ShardPair]:
  """Finds the NFE shard pairs in a directory, sorted by shard id.

  Raises:
    NFEFormatError: the directory does not exist, holds no shards, or a file lacks its partner.
  """
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise NFEFormatError(f"NFE data directory {directory} does not exist")
  inmc, lrgb = {}, {}
  for path in directory.iterdir():
    if m := _INMC_RE.match(path.name):
      inmc[m.group(1)] = path
    elif m := _LRGB_RE.match(path.name):
      lrgb[m.group(1)] = path
  for sid in sorted(set(inmc) ^ set(lrgb)):
    have, want = ((inmc[sid], LRGB_TEMPLATE) if sid in inmc else (lrgb[sid], INMC_TEMPLATE))
    raise NFEFormatError(f"{have} has no partner file {directory / want.format(sid)}")
  if not inmc:
    raise NFEFormatError(
        f"no NFE shards ({INMC_TEMPLATE.format('XX')} + {LRGB_TEMPLATE.format('XX')}) "
        f"in {directory}")
  return [ShardPair(sid, inmc[sid], lrgb[sid]) for sid in sorted(inmc)]


def _open(path: pathlib.Path) -> h5py.File:
  if not path.exists():
    raise NFEFormatError(f"{path} does not exist")
  try:
    return h5py.File(path, "r")
  except OSError as e:  # Truncated or not HDF5.
    raise NFEFormatError(f"{path}: cannot read as HDF5 ({e})") from e


def _dataset(f: h5py.File, path: pathlib.Path) -> h5py.Dataset:
  if KEY not in f:
    raise NFEFormatError(f"{path}: missing dataset key '{KEY}' (keys: {sorted(f.keys())})")
  ds = f[KEY]
  if not isinstance(ds, h5py.Dataset):
    raise NFEFormatError(f"{path}: '{KEY}' is a group, not a dataset")
  if ds.dtype.kind not in "fiu":
    raise NFEFormatError(f"{path}: '{KEY}' has non-numeric dtype {ds.dtype}")
  return ds


def _read(ds: h5py.Dataset, rows: np.ndarray, path: pathlib.Path) -> np.ndarray:
  """Reads increasing rows as float32, one `read_direct` per run of consecutive rows.

  h5py fancy indexing is 10-20x slower than this on chunked datasets (it builds a union of
  hyperslabs); reading runs directly is fast for both contiguous and chunked layouts.
  """
  rows = np.asarray(rows, dtype=np.int64)
  out = np.empty((rows.size,) + ds.shape[1:], np.float32)
  breaks = np.flatnonzero(np.diff(rows) != 1) + 1
  try:
    for start, run in zip(np.concatenate([[0], breaks]), np.split(rows, breaks)):
      if run.size:
        ds.read_direct(out, np.s_[int(run[0]):int(run[-1]) + 1],
                       np.s_[int(start):int(start) + run.size])
  except OSError as e:
    raise NFEFormatError(f"{path}: read failed ({e})") from e
  return out


def _check_values(inmc: np.ndarray, lights: np.ndarray, pair: ShardPair, tol: float) -> None:
  """Range checks on a block of rows (N, 10, H, W) and (N, 3, 9); names the file on failure."""
  if not np.isfinite(inmc).all():
    raise NFEFormatError(f"{pair.inmc_path}: non-finite values")
  if not np.isfinite(lights).all():
    raise NFEFormatError(f"{pair.lrgb_path}: non-finite SH lighting values")
  for name, sl in (("images (channels 0-2)", slice(0, 3)), ("normals (channels 3-5)", slice(3, 6))):
    lo, hi = inmc[:, sl].min(), inmc[:, sl].max()
    if lo < -tol or hi > 1 + tol:
      raise NFEFormatError(f"{pair.inmc_path}: {name} outside [0, 1]: min {lo:.4g}, max {hi:.4g}")
  m = inmc[:, 6]
  off = np.minimum(np.abs(m), np.abs(m - 1)).max()
  if off > tol:
    raise NFEFormatError(f"{pair.inmc_path}: mask (channel 6) not in {{0, 1}} (off by {off:.4g})")


def decode_inmc(inmc: np.ndarray, lights: np.ndarray) -> dict[str, np.ndarray]:
  """Raw NCHW rows -> the NHWC float32 example dict returned by `NFEDataset.get`."""
  x = np.transpose(inmc, (0, 2, 3, 1))
  normals = 2.0 * x[..., 3:6] - 1.0  # n = 2v - 1, not renormalised (see shading.decode_normals).
  lights = lights.astype(np.float32)
  return {
      "image": np.ascontiguousarray(x[..., 0:3]),
      "mask": np.ascontiguousarray(x[..., 6]),
      "normals": np.ascontiguousarray(normals),
      "shading": shading_target_numpy(normals, lights),
      "lights": lights,
  }


class NFEDataset:
  """Streams NFE shards: `len(ds)` examples, `ds.get(sorted_indices)` -> dict of NHWC arrays.

  Returned keys: `image` (B, H, W, 3) gamma-encoded in [0, 1]; `mask` (B, H, W) in {0, 1};
  `normals` (B, H, W, 3) decoded as 2v - 1; `shading` (B, H, W) = max(0, mean_c E_c) (not masked);
  `lights` (B, 3, 9). All float32. Global indices run over the shards in the order given
  (sorted by id when read from a directory).

  HDF5 handles are opened on first use and kept per process (re-opened after a fork; dropped
  when pickled), so the dataset can be shared with worker processes.
  """

  def __init__(self, source: str | os.PathLike | Sequence[ShardPair],
               shard_ids: Sequence[str | int] | None = None, *, range_tolerance: float = 1e-3):
    """Opens and validates the shards.

    Args:
      source: a directory holding shard pairs, or a sequence of `ShardPair`s.
      shard_ids: if given, only these shards (e.g. ("01", "02")); each must exist.
      range_tolerance: slack for the [0, 1] and {0, 1} checks on the first rows of each shard.

    Raises:
      NFEFormatError: a file is missing, unreadable or malformed (the message names it).
    """
    if isinstance(source, (str, os.PathLike)):
      pairs = find_shard_pairs(source)
    else:
      pairs = [ShardPair(p.shard_id, pathlib.Path(p.inmc_path), pathlib.Path(p.lrgb_path))
               for p in source]
    if shard_ids is not None:
      wanted = [_shard_id(s) for s in shard_ids]
      by_id = {p.shard_id: p for p in pairs}
      missing = [s for s in wanted if s not in by_id]
      if missing:
        raise NFEFormatError(f"shards {missing} not found (available: {sorted(by_id)})")
      pairs = [by_id[s] for s in wanted]
    if not pairs:
      raise NFEFormatError("no NFE shards selected")
    self.pairs = tuple(pairs)
    self.range_tolerance = range_tolerance
    self._files: dict[pathlib.Path, h5py.File] = {}
    self._pid = os.getpid()
    sizes, hw = [], None
    try:
      for pair in self.pairs:
        n, shape = self._validate(pair)
        if hw is not None and shape != hw:
          raise NFEFormatError(
              f"{pair.inmc_path}: image size {shape} differs from other shards {hw}")
        hw = shape
        sizes.append(n)
    except BaseException:
      self.close()  # Do not leave HDF5 handles open on a rejected dataset.
      raise
    self.image_shape = hw
    self.shard_sizes = tuple(sizes)
    self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

  def _validate(self, pair: ShardPair) -> tuple[int, tuple[int, int]]:
    inmc = _dataset(self._file(pair.inmc_path), pair.inmc_path)
    lrgb = _dataset(self._file(pair.lrgb_path), pair.lrgb_path)
    if inmc.ndim != 4 or inmc.shape[1] != NUM_CHANNELS:
      raise NFEFormatError(f"{pair.inmc_path}: '{KEY}' must have shape (N, {NUM_CHANNELS}, H, W), "
                           f"got {inmc.shape}")
    if lrgb.ndim != 3 or lrgb.shape[1:] != (3, 9):
      raise NFEFormatError(f"{pair.lrgb_path}: '{KEY}' must have shape (N, 3, 9), got {lrgb.shape}")
    n = inmc.shape[0]
    if lrgb.shape[0] != n:
      raise NFEFormatError(f"{pair.inmc_path} has {n} examples but {pair.lrgb_path} has "
                           f"{lrgb.shape[0]}")
    if n == 0:
      raise NFEFormatError(f"{pair.inmc_path}: shard is empty")
    k = min(n, _VALIDATE_ROWS)
    _check_values(_read(inmc, np.arange(k), pair.inmc_path),
                  _read(lrgb, np.arange(k), pair.lrgb_path), pair, self.range_tolerance)
    return n, tuple(inmc.shape[2:])

  def _file(self, path: pathlib.Path) -> h5py.File:
    if self._pid != os.getpid():  # Forked: HDF5 handles must not be shared across processes.
      self._files, self._pid = {}, os.getpid()
    f = self._files.get(path)
    if f is None:
      f = self._files[path] = _open(path)
    return f

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_files"] = {}
    return state

  def close(self) -> None:
    """Closes the open HDF5 files (they are re-opened on the next read)."""
    for f in self._files.values():
      f.close()
    self._files = {}

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def read_raw(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw rows: ((B, 10, H, W), (B, 3, 9)) float32 for strictly increasing global indices."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
      raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if indices.size and (np.any(np.diff(indices) <= 0)):
      raise ValueError("NFEDataset.get needs strictly increasing indices "
                       "(use data.pipeline.get_examples for arbitrary order)")
    if indices.size and (indices[0] < 0 or indices[-1] >= len(self)):
      raise IndexError(f"indices out of range [0, {len(self)})")
    shard_of = np.searchsorted(self._offsets, indices, side="right") - 1
    inmc_parts, lrgb_parts = [], []
    for s in np.unique(shard_of):
      pair = self.pairs[s]
      local = indices[shard_of == s] - self._offsets[s]
      block = _read(self._file(pair.inmc_path)[KEY], local, pair.inmc_path)
      lights = _read(self._file(pair.lrgb_path)[KEY], local, pair.lrgb_path)
      if not (np.isfinite(block).all() and np.isfinite(lights).all()):
        raise NFEFormatError(f"{pair.inmc_path} / {pair.lrgb_path}: non-finite values in rows "
                             f"{local.tolist()}")
      inmc_parts.append(block)
      lrgb_parts.append(lights)
    if not inmc_parts:
      h, w = self.image_shape
      return np.zeros((0, NUM_CHANNELS, h, w), np.float32), np.zeros((0, 3, 9), np.float32)
    return np.concatenate(inmc_parts), np.concatenate(lrgb_parts)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Examples for strictly increasing global indices (see the class docstring for the keys)."""
    return decode_inmc(*self.read_raw(indices))


def nfe_splits(source: str | os.PathLike | Sequence[ShardPair], *,
               holdout_shards: Sequence[str | int] | None = None,
               holdout_fraction: float | None = None, seed: int = 0,
               range_tolerance: float = 1e-3):
  """Training and held-out views of NFE data.

  By default shard "20" is held out (the NFE convention). With `holdout_fraction`, a random
  fraction of all examples (every shard) is held out instead, chosen by `seed`.

  Args:
    source: directory or sequence of `ShardPair`s.
    holdout_shards: shard ids to hold out (default ("20",)); exclusive with `holdout_fraction`.
    holdout_fraction: fraction in [0, 1) of examples to hold out at random.
    seed: seed of the random split.
    range_tolerance: passed to `NFEDataset`.

  Returns:
    (train, holdout) datasets (`NFEDataset`s, or `Subset`s of one for a fractional split).
  """
  if holdout_shards is not None and holdout_fraction is not None:
    raise ValueError("give holdout_shards or holdout_fraction, not both")
  if holdout_fraction is not None:
    full = NFEDataset(source, range_tolerance=range_tolerance)
    train_idx, holdout_idx = split_indices(len(full), holdout_fraction, seed)
    return Subset(full, train_idx), Subset(full, holdout_idx)
  held = [_shard_id(s) for s in (DEFAULT_HOLDOUT_SHARDS if holdout_shards is None
                                 else holdout_shards)]
  pairs = (find_shard_pairs(source) if isinstance(source, (str, os.PathLike)) else list(source))
  ids = [p.shard_id for p in pairs]
  missing = [s for s in held if s not in ids]
  if missing:
    raise NFEFormatError(f"held-out shards {missing} not found (available: {ids})")
  train_ids = [s for s in ids if s not in held]
  if not train_ids:
    raise NFEFormatError(f"holding out {held} leaves no training shards (available: {ids})")
  return (NFEDataset(pairs, train_ids, range_tolerance=range_tolerance),
          NFEDataset(pairs, held, range_tolerance=range_tolerance))


def __getattr__(name: str):
  """Re-exports the writer from `data.nfe_writer`, imported on first use.

  `data.nfe_writer` imports the layout constants above from this module, so importing it eagerly
  here would be circular (and fail when `data.nfe_writer` is imported first).
  """
  if name in ("NFEShardWriter", "write_nfe_shard"):
    from data import nfe_writer  # pylint: disable=g-import-not-at-top
    return getattr(nfe_writer, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
