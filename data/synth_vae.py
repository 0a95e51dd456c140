"""The face VAE's default offline data: synthetic portrait scenes with exact soft masks, cached.

Two worlds, both functions of (seed, index):

* ``world="scenes"`` (default): scene ``i`` of `data.synth.scene` in the ``portrait`` framing
  (head, hair, neck and shoulders, occluders, background), rendered at 2x ``size`` and
  averaged down; the mask is the footprint share of the face-VAE classes (face, facial parts,
  hair, beard, glasses: `data.synth.labels.vae_mask`);
* ``world="faces"``: the previous portraits, the skin-only synthetic face ``i``
  (`data.synth.faces`, rendered at ``round(2 * size * face_scale)`` px) composed by
  `data.vae_scenes` at ``2 * size`` and box-downsampled to ``size`` (kept for comparison).

`vae_datasets` returns (train, holdout, test): faces ``0 .. n-1`` (the last `holdout_fraction`
held out) and a fixed test set from the disjoint range ``TEST_OFFSET + 0 .. n_test-1``. Each set
is generated on first use into ``<cache>/vae_<size>_<n>_<seed>_<hash>.npz`` (written under a
temporary name and renamed, so an interrupted generation is redone, never half-used), then
loaded. Images are stored as uint8 and masks as uint8 quarters (a 2x2 box average of a {0, 1}
map is a multiple of 1/4, so storage is exact).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import time
import uuid
from typing import TextIO

import numpy as np

from bioface_jax.train_lib.progress import Progress
from data import vae_scenes
from data.synth import faces as synth_faces
from data.synth import scene as synth_scene
from data.synth import scene_render

DEFAULT_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "bioface_jax"
TEST_OFFSET = 1_000_000
SCENE_VERSION = 1
FACE_SCALE = 0.72


class SceneArrays:
  """In-memory scenes behind the `data.pipeline.Dataset` protocol: {"image", "mask"} float32."""

  def __init__(self, images: np.ndarray, masks: np.ndarray, source: str = "arrays"):
    images, masks = np.asarray(images), np.asarray(masks, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      raise ValueError(f"{source}: images must be (N, H, W, 3) uint8, got {images.shape} "
                       f"{images.dtype}")
    if masks.shape != images.shape[:3]:
      raise ValueError(f"{source}: masks {masks.shape} do not match images {images.shape[:3]}")
    if masks.size and (masks.min() < 0 or masks.max() > 1 or not np.isfinite(masks).all()):
      raise ValueError(f"{source}: mask values must lie in [0, 1]")
    self.images, self.masks, self.source = images, masks, source

  def __len__(self) -> int:
    return len(self.images)

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    return {"image": self.images[indices].astype(np.float32) / np.float32(255.0),
            "mask": self.masks[indices]}


WORLDS = ("scenes", "faces")


def scene_options(size: int, **switches) -> synth_scene.SceneOptions:
  """The face VAE's framing of the scene world: portraits at 2x supersampling; `switches` are
  other `SceneOptions` fields (the realism switches)."""
  return synth_scene.SceneOptions(framing="portrait", size=size, supersample=2, **switches)


def generate(indices: np.ndarray, size: int, seed: int, *, batch_size: int = 32,
             progress: TextIO | None = None, world: str = "faces", workers: int = 0,
             options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, size, size, 3), masks float32 (N, size, size)) of scenes `indices`."""
  indices = np.asarray(indices, np.int64)
  if world not in WORLDS:
    raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
  if world == "scenes":
    return _generate_scenes(indices, size, seed, batch_size, progress, workers, options or {})
  face_px = int(round(2 * size * FACE_SCALE))
  gen = synth_faces.FaceGenerator(face_px, seed, None, batch_size)
  images = np.zeros((len(indices), size, size, 3), np.uint8)
  masks = np.zeros((len(indices), size, size), np.float32)
  steps = -(-len(indices) // batch_size)
  bar = Progress(steps, batch_size=batch_size, every_steps=max(1, steps // 10),
                 stream=progress, enabled=progress is not None)
  row = 0
  try:
    for step, batch in enumerate(gen.batches(indices), 1):
      for k in range(len(batch["index"])):
        images[row], masks[row] = vae_scenes.scene(batch["image"][k], batch["mask"][k], seed,
                                                   int(batch["index"][k]), size)
        row += 1
      bar.update(step, {"scenes": row})
  finally:
    bar.close()
  return images, masks


def _generate_scenes(indices, size, seed, batch_size, progress, workers, options):
  gen = scene_render.SceneGenerator(scene_options(size, **options), seed, min(batch_size, 16),
                                    workers)
  images = np.zeros((len(indices), size, size, 3), np.uint8)
  masks = np.zeros((len(indices), size, size), np.float32)
  steps = -(-len(indices) // gen.batch_size)
  bar = Progress(steps, batch_size=gen.batch_size, every_steps=max(1, steps // 10),
                 stream=progress, enabled=progress is not None)
  row = 0
  try:
    for step, batch in enumerate(gen.batches(indices), 1):
      n = len(batch["index"])
      images[row:row + n] = np.round(batch["image"] * 255.0).astype(np.uint8)
      masks[row:row + n] = batch["vae_mask"]
      row += n
      bar.update(step, {"scenes": row})
  finally:
    bar.close()
    gen.close()
  return images, masks


def cache_path(cache: pathlib.Path, kind: str, n: int, size: int, seed: int,
               world: str = "faces", options: dict | None = None) -> pathlib.Path:
  """The cache file of a set (the faces world's names are unchanged)."""
  if world == "scenes":
    opts = scene_options(size, **(options or {}))
    spec = dict(world=world, scene_version=synth_scene.SCENE_VERSION,
                options=json.loads(json.dumps(dataclasses.asdict(opts), default=list)))
  else:
    spec = dict(face_scale=FACE_SCALE, scene_version=SCENE_VERSION,
                generator_version=synth_faces.GENERATOR_VERSION,
                face_options=dataclasses.asdict(synth_faces.FaceOptions()))
  digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
  return cache / f"vae_{kind}_{size}_{n}_{seed}_{digest}.npz"


def load_scenes(path: str | os.PathLike) -> SceneArrays:
  """Reads a cache file, naming it in every error."""
  path = pathlib.Path(path)
  try:
    with np.load(path) as f:
      images, quarters = f["images"], f["mask_quarters"]
  except (OSError, ValueError, KeyError, EOFError) as error:
    raise ValueError(f"{path}: not a readable VAE scene cache ({error}); delete it to "
                     "regenerate") from error
  return SceneArrays(images, quarters.astype(np.float32) / 4.0, str(path))


def cached_scenes(cache_dir: str | os.PathLike | None, kind: str, indices: np.ndarray,
                  size: int, seed: int, progress: TextIO | None = None,
                  world: str = "faces", workers: int = 0,
                  options: dict | None = None) -> SceneArrays:
  """Scenes `indices`, generated into the cache on first use (atomic rename)."""
  cache = pathlib.Path(DEFAULT_CACHE if cache_dir is None else cache_dir).expanduser()
  path = cache_path(cache, kind, len(indices), size, seed, world, options)
  if not path.exists():
    cache.mkdir(parents=True, exist_ok=True)
    if progress:
      print(f"generating {len(indices)} synthetic {size}x{size} VAE scenes ({kind}, seed "
            f"{seed}) into {path}", file=progress, flush=True)
    start = time.perf_counter()
    images, masks = generate(indices, size, seed, progress=progress, world=world,
                             workers=workers, options=options)
    if progress:
      rate = len(indices) / (time.perf_counter() - start)
      print(f"  {rate:.1f} scenes/s", file=progress, flush=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
    try:
      np.savez(tmp, images=images, mask_quarters=np.round(masks * 4).astype(np.uint8))
      os.replace(tmp, path)
    finally:
      tmp.unlink(missing_ok=True)
  return load_scenes(path)


def vae_datasets(cache_dir: str | os.PathLike | None, n: int, size: int, seed: int = 0, *,
                 holdout_fraction: float = 0.1, n_test: int = 256,
                 progress: bool | TextIO = True, world: str = "faces", workers: int = 0,
                 options: dict | None = None
                 ) -> tuple[SceneArrays, SceneArrays, SceneArrays]:
  """(train, holdout, test) synthetic scene sets of `world` (see the module docstring)."""
  if n < 2:
    raise ValueError(f"n must be >= 2, got {n}")
  if not 0.0 <= holdout_fraction < 1.0:
    raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
  stream = sys.stdout if progress is True else (progress or None)
  main = cached_scenes(cache_dir, "train", np.arange(n), size, seed, stream, world, workers,
                       options)
  n_hold = int(round(n * holdout_fraction))
  train = SceneArrays(main.images[:n - n_hold], main.masks[:n - n_hold], main.source)
  hold = SceneArrays(main.images[n - n_hold:], main.masks[n - n_hold:], main.source)
  test = cached_scenes(cache_dir, "test", TEST_OFFSET + np.arange(n_test), size, seed, stream,
                       world, workers, options)
  return train, hold, test
