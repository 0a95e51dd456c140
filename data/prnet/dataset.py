"""The cached synthetic PRNet set: one HDF5 file per (size, n, seed), generated on first use.

``<cache>/prnet_synth_<R>_<n>_<seed>_v<version>[_context|_scenes].h5`` holds ``image`` (n, R, R, 3) uint8,
``posmap`` (n, R, R, 3) float32 (gzip, one face per chunk), ``landmarks`` (n, 68, 3),
``pose`` (n, 3) (yaw, pitch, roll degrees), ``index``. It is written under a temporary name
and renamed when complete, so an interrupted generation is redone, never half-used.

`PRNetSynthDataset` follows `data.pipeline.Dataset` (``len``, ``get(sorted indices)``) and
returns float32 images in [0, 1] plus ``has_dense = 1``.

Two worlds make the pairs: ``faces`` (`data.prnet.synth`: the mean face under random
expression on a smooth background, optionally with painted head ``context``) and ``scenes``
(`data.synth.scene_render.prnet_pairs`: the photographic face-scene world shared by every
system, with its identity and expression space, parts, occluders, light rigs and camera
chain; `context` does not apply there, the world draws its own head and scene).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
import uuid

import h5py
import numpy as np

from data.prnet import synth

DEFAULT_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "bioface_jax"
KEYS = ("image", "posmap", "landmarks", "pose", "index")
WORLDS = ("faces", "scenes")


def _check_world(world: str, context: bool) -> None:
  if world not in WORLDS:
    raise ValueError(f"PRNet synthetic world must be one of {WORLDS}, got {world!r}")
  if world == "scenes" and context:
    raise ValueError("data.context paints head context onto the 'faces' world; the 'scenes' "
                     "world draws its own head and scene: set context=False")


def cache_path(cache_dir, n: int, size: int, seed: int, context: bool = False,
               world: str = "faces") -> pathlib.Path:
  _check_world(world, context)
  cache = pathlib.Path(DEFAULT_CACHE if not cache_dir else cache_dir).expanduser()
  if world == "scenes":
    from data.synth import scene  # pylint: disable=g-import-not-at-top
    name = f"prnet_scenes_{size}_{n}_{seed}_v{scene.SCENE_VERSION}.h5"
    return cache / name
  style = "_context" if context else ""
  return cache / f"prnet_synth_{size}_{n}_{seed}_v{synth.GENERATOR_VERSION}{style}.h5"


def _pairs(world: str, seed: int, n: int, size: int, batch_size: int, context: bool,
           workers: int):
  if world == "scenes":
    from data.synth import scene_render  # pylint: disable=g-import-not-at-top
    return scene_render.prnet_pairs(seed, range(n), size, batch_size=batch_size,
                                    workers=workers)
  return synth.generate_pairs(seed, range(n), size, batch_size=batch_size, context=context)


def write_synthetic(path: str | os.PathLike, n: int, size: int, seed: int, *,
                    batch_size: int = 32, stream=sys.stdout, context: bool = False,
                    world: str = "faces", workers: int = 0) -> pathlib.Path:
  """Generates faces 0..n-1 of `seed` into `path` (atomically); `context`, `world`: see the
  module docstring; `workers`: processes laying out scenes (world ``scenes`` only)."""
  _check_world(world, context)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:6]}")
  t0 = time.perf_counter()
  try:
    with h5py.File(tmp, "w") as f:
      done = 0
      for batch in _pairs(world, seed, n, size, min(batch_size, n), context, workers):
        for key in KEYS:
          v = batch[key]
          if key not in f:
            big = v.ndim >= 3 and key != "landmarks"
            f.create_dataset(key, shape=(n,) + v.shape[1:], dtype=v.dtype,
                             chunks=(1,) + v.shape[1:] if big else None,
                             compression="gzip" if key == "posmap" else None,
                             compression_opts=1 if key == "posmap" else None)
          f[key][done:done + len(v)] = v
        done += len(batch["index"])
        if stream:
          rate = done / max(time.perf_counter() - t0, 1e-9)
          print(f"\r  {done}/{n} faces ({rate:.1f}/s, ETA {(n - done) / rate:.0f} s)",
                end="", file=stream, flush=True)
      f.attrs.update(n=n, size=size, seed=seed, version=synth.GENERATOR_VERSION, context=context,
                     world=world, seconds=time.perf_counter() - t0)
    if stream:
      print(file=stream)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


class PRNetSynthDataset:
  """Images in memory, position maps read per batch from the HDF5 file."""

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self._file = h5py.File(self.path, "r")
    missing = [k for k in KEYS if k not in self._file]
    if missing:
      raise KeyError(f"{self.path} lacks datasets {missing}; delete it to regenerate")
    self.images = self._file["image"][...]
    self.landmarks = self._file["landmarks"][...]
    self.pose = self._file["pose"][...]
    self.size = int(self.images.shape[1])

  def __len__(self) -> int:
    return len(self.images)

  def get(self, indices) -> dict[str, np.ndarray]:
    idx = np.asarray(indices, np.int64)
    return dict(image=self.images[idx].astype(np.float32) / 255.0,
                posmap=self._file["posmap"][idx],
                landmarks=self.landmarks[idx].astype(np.float32),
                yaw=self.pose[idx, 0].astype(np.float32),
                has_dense=np.ones(len(idx), np.float32))


def synthetic_set(cache_dir, n: int, size: int, seed: int, *, stream=sys.stdout,
                  context: bool = False, world: str = "faces", workers: int = 0
                  ) -> PRNetSynthDataset:
  """Opens (generating on first use) faces 0..n-1 of `seed` at size R (`context`, `world`: see
  the module docstring)."""
  path = cache_path(cache_dir, n, size, seed, context, world)
  if not path.exists():
    if stream:
      what = {"scenes": ", face-scene world", "faces": ", with head context" if context else ""}
      print(f"generating {n} synthetic PRNet pairs {size}x{size} (seed {seed}{what[world]}) into "
            f"{path}", file=stream, flush=True)
    write_synthetic(path, n, size, seed, stream=stream, context=context, world=world,
                    workers=workers)
  return PRNetSynthDataset(path)


def world_options(data_config) -> dict:
  """`synthetic_set` keywords (context, world, workers) from a run's ``config.data``; runs from
  before the ``world`` field read as the ``faces`` world."""
  return dict(context=bool(data_config.get("context", False)),
              world=str(data_config.get("world", "faces")),
              workers=int(data_config.get("workers", 0)))


__all__ = ["PRNetSynthDataset", "WORLDS", "cache_path", "synthetic_set", "world_options",
           "write_synthetic"]
