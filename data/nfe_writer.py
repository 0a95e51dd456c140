"""Writes Neural Face Editing (NFE) augmented-CelebA HDF5 shards (the layout of `data.nfe`).

Synthetic (or converted) training data is written in the same layout as the public NFE shards,
so that one reader (`data.nfe.NFEDataset`) serves both: a shard XX is the pair
``zx_7_d10_inmc_celebA_XX.hdf5`` ((N, 10, H, W): RGB, encoded normals, mask, coord) and
``zx_7_d3_lrgb_celebA_XX.hdf5`` ((N, 3, 9) SH lighting), each under the key ``zx_7``. The layout
constants and `ShardPair` live in `data.nfe`; `NFEShardWriter` and `write_nfe_shard` are also
importable from there.
"""

from __future__ import annotations

import os
import pathlib
import re

import h5py
import numpy as np

from data.nfe import INMC_TEMPLATE, KEY, LRGB_TEMPLATE, NUM_CHANNELS, ShardPair, _shard_id


def encode_inmc(images: np.ndarray, normals: np.ndarray, mask: np.ndarray,
                coord: np.ndarray) -> np.ndarray:
  """NHWC images, normals in [-1, 1], mask (B, H, W) and coord -> the stored (B, 10, H, W) rows
  (float64; `data.nfe.decode_inmc` inverts it). Checks the value ranges."""
  images, normals, mask, coord = (np.asarray(a, np.float64) for a in (images, normals, mask, coord))
  if images.size and (images.min() < 0 or images.max() > 1):
    raise ValueError(f"images must be in [0, 1], got [{images.min():.4g}, {images.max():.4g}]")
  if normals.size and np.abs(normals).max() > 1 + 1e-6:
    raise ValueError(f"normals must be in [-1, 1], got max |n| component {np.abs(normals).max()}")
  if not np.isin(mask, (0.0, 1.0)).all():
    raise ValueError("mask must be 0 or 1")
  encoded = np.clip((normals + 1.0) / 2.0, 0.0, 1.0)
  block = np.concatenate([images, encoded, mask[..., None], coord], axis=-1)
  return np.transpose(block, (0, 3, 1, 2))


class NFEShardWriter:
  """Writes one NFE shard pair incrementally from NHWC arrays (for synthetic or converted data).

  Files are written under temporary names and renamed on `close()`, so an interrupted run never
  leaves a half-written shard that looks valid. Use as a context manager.
  """

  def __init__(self, directory: str | os.PathLike, shard_id: str | int, height: int = 64,
               width: int = 64, dtype=np.float32):
    """Creates the (empty) pair of files.

    Args:
      directory: output directory (created if needed).
      shard_id: the XX in the file names, e.g. "01".
      height, width: image size.
      dtype: stored float dtype (the public NFE files are float64; float32 halves the size).
    """
    self.directory = pathlib.Path(directory)
    self.directory.mkdir(parents=True, exist_ok=True)
    sid = _shard_id(shard_id)
    if not re.fullmatch(r"\w+", sid):
      raise ValueError(f"shard_id must be alphanumeric, got {sid!r}")
    self.inmc_path = self.directory / INMC_TEMPLATE.format(sid)
    self.lrgb_path = self.directory / LRGB_TEMPLATE.format(sid)
    self.shard_id = sid
    self.shape = (height, width)
    self._tmp = [p.with_name(p.name + ".partial") for p in (self.inmc_path, self.lrgb_path)]
    self._inmc_file = h5py.File(self._tmp[0], "w")
    self._lrgb_file = h5py.File(self._tmp[1], "w")
    self._inmc = self._inmc_file.create_dataset(
        KEY, shape=(0, NUM_CHANNELS, height, width), maxshape=(None, NUM_CHANNELS, height, width),
        dtype=dtype, chunks=(1, NUM_CHANNELS, height, width))  # One image per chunk: random reads.
    self._lrgb = self._lrgb_file.create_dataset(
        KEY, shape=(0, 3, 9), maxshape=(None, 3, 9), dtype=dtype, chunks=(1024, 3, 9))
    self.count = 0

  def append(self, images: np.ndarray, normals: np.ndarray, mask: np.ndarray,
             coord: np.ndarray | None, lights: np.ndarray) -> None:
    """Appends B examples.

    Args:
      images: (B, H, W, 3) gamma-encoded RGB in [0, 1].
      normals: (B, H, W, 3) normals in [-1, 1] (stored encoded as (n + 1) / 2).
      mask: (B, H, W) or (B, H, W, 1) in {0, 1}.
      coord: (B, H, W, 3) coordinate map in [0, 1], or None for zeros.
      lights: (B, 3, 9) SH lighting per colour.
    """
    images = np.asarray(images, np.float64)
    b = images.shape[0] if images.ndim == 4 else -1
    hw = self.shape
    mask = np.asarray(mask, np.float64)
    if mask.ndim == 4 and mask.shape[-1] == 1:
      mask = mask[..., 0]
    normals = np.asarray(normals, np.float64)
    coord = np.zeros((b,) + hw + (3,)) if coord is None else np.asarray(coord, np.float64)
    lights = np.asarray(lights, np.float64)
    for name, arr, want in (("images", images, (b,) + hw + (3,)),
                            ("normals", normals, (b,) + hw + (3,)),
                            ("mask", mask, (b,) + hw), ("coord", coord, (b,) + hw + (3,)),
                            ("lights", lights, (b, 3, 9))):
      if arr.shape != want:
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
      if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite values")
    if b == 0:
      return
    block = encode_inmc(images, normals, mask, coord)
    n0, n1 = self.count, self.count + b
    self._inmc.resize(n1, axis=0)
    self._lrgb.resize(n1, axis=0)
    self._inmc[n0:n1] = block
    self._lrgb[n0:n1] = lights
    self.count = n1

  def close(self) -> ShardPair:
    """Finishes both files and moves them to their final names."""
    if self._inmc_file:
      self._inmc_file.close()
      self._lrgb_file.close()
      os.replace(self._tmp[0], self.inmc_path)
      os.replace(self._tmp[1], self.lrgb_path)
    return ShardPair(self.shard_id, self.inmc_path, self.lrgb_path)

  def abort(self) -> None:
    """Closes and deletes the partial files."""
    if self._inmc_file:
      self._inmc_file.close()
      self._lrgb_file.close()
    for p in self._tmp:
      p.unlink(missing_ok=True)

  def __enter__(self) -> NFEShardWriter:
    return self

  def __exit__(self, exc_type, *_) -> None:
    if exc_type is None:
      self.close()
    else:
      self.abort()


def write_nfe_shard(directory: str | os.PathLike, shard_id: str | int, images: np.ndarray,
                    normals: np.ndarray, mask: np.ndarray, coord: np.ndarray | None,
                    lights: np.ndarray, *, dtype=np.float32, rows_per_write: int = 1024
                    ) -> ShardPair:
  """Writes one shard pair in the NFE layout from NHWC arrays (see `NFEShardWriter.append`).

  Returns:
    The written `ShardPair`.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
  n, h, w = images.shape[:3]
  if n == 0:
    raise ValueError("write_nfe_shard needs at least one example")
  with NFEShardWriter(directory, shard_id, h, w, dtype=dtype) as writer:
    for i in range(0, n, rows_per_write):
      sl = slice(i, i + rows_per_write)
      writer.append(images[sl], normals[sl], mask[sl], None if coord is None else coord[sl],
                    lights[sl])
  return ShardPair(writer.shard_id, writer.inmc_path, writer.lrgb_path)
