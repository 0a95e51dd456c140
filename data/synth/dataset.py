"""The on-disk synthetic face dataset: NFE-layout shards + ground truth, written once and cached.

A dataset directory holds, per shard XX (ids zero-padded to equal width, so that they sort in
index order):

* ``zx_7_d10_inmc_celebA_XX.hdf5`` / ``zx_7_d3_lrgb_celebA_XX.hdf5``: the Neural Face Editing
  layout (`data.nfe`), so `data.nfe.NFEDataset` trains on it unchanged. ``lights`` holds the
  face's 9 SH coefficients in all three colour rows; ``coord`` is (x, y, depth) normalised to
  [0, 1] on the mask;
* ``synth_truth_XX.hdf5``: the ground truth of the same rows (`TRUTH_KEYS`; one face per chunk,
  gzip), read back with `load_truth`;

plus ``synth_meta.json`` (seed, size, options, generator version, timing), written last: a
directory without it is incomplete. Every file is written under a temporary name and renamed.

Two worlds write this layout: ``world="scenes"`` (BioFaceNet's default: `data.synth.scene`,
faces with parts, hair, body, occluders and context, framed as its face crop; its truth adds
`SCENE_TRUTH_KEYS`, and its readers serve the exact diffuse shading as the shading target)
and ``world="faces"`` (the previous skin-only faces of `data.synth.faces`, for comparison).

`synthetic_dataset` is the cached default training set: generated on first use into
``<cache>/synth_<size>_<n>_<seed>_<hash of world and options>/`` (built in a temporary
directory that is renamed when complete, so an interrupted generation is redone, never
half-used), then just opened (or, with ``lazy``, generated face by face in memory by
`data.synth.generated.GeneratedSubset`). The last `holdout_fraction` of the faces are held out;
their truth is available through `SynthSubset.truth` for the recovery evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from typing import TextIO

import h5py
import numpy as np

from bioface_jax.train_lib.progress import Progress
from data import nfe
from data.pipeline import Subset
from data.synth import faces as synth_faces
from data.synth import scene as synth_scene
from data.synth import scene_render

TRUTH_TEMPLATE = "synth_truth_{}.hdf5"
META_NAME = "synth_meta.json"
_TRUTH_RE = re.compile(r"^synth_truth_(\w+)\.hdf5$")
# Ground-truth datasets (rows = faces). Per-pixel maps are 0 off the mask.
TRUTH_KEYS = ("index", "fmel", "fblood", "melanin", "haemoglobin", "diffuse", "specular",
              "albedo", "linear_image", "normals", "mask", "weights", "t", "b", "sh",
              "exposure", "specular_scale", "shininess", "pose", "landmarks",
              "landmarks_visible")
# Extra truth of the scene world (data.synth.scene_render): labels, footprint shares, geometry,
# shape and what was drawn.
SCENE_TRUTH_KEYS = ("labels", "skin", "vae_mask", "depth", "uv", "face", "landmarks3d",
                    "identity", "expression", "luminance", "masculine", "hair_style", "glasses",
                    "edge_occluder", "other_person", "beard")
WORLDS = ("scenes", "faces")
DEFAULT_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "bioface_jax"


class TruthWriter:
  """Writes one ``synth_truth_XX.hdf5`` incrementally (temporary name, renamed on `close`)."""

  def __init__(self, directory: str | os.PathLike, shard_id: str,
               keys: Sequence[str] = TRUTH_KEYS):
    self.keys = tuple(keys)
    self.path = pathlib.Path(directory) / TRUTH_TEMPLATE.format(shard_id)
    self._tmp = self.path.with_name(self.path.name + ".partial")
    self._file = h5py.File(self._tmp, "w")
    self.count = 0

  def append(self, batch: dict[str, np.ndarray]) -> None:
    """Appends the rows of a rendered batch (`FaceGenerator.render`); only `self.keys`."""
    n = len(batch["index"])
    for key in self.keys:
      value = np.asarray(batch[key])
      if key not in self._file:
        per_pixel = value.ndim >= 3
        self._file.create_dataset(
            key, shape=(0,) + value.shape[1:], maxshape=(None,) + value.shape[1:],
            dtype=value.dtype, chunks=(1,) + value.shape[1:] if per_pixel else None,
            compression="gzip" if per_pixel else None, compression_opts=1 if per_pixel else None,
            shuffle=per_pixel)
      ds = self._file[key]
      ds.resize(self.count + n, axis=0)
      ds[self.count:] = value
    self.count += n

  def close(self) -> pathlib.Path:
    if self._file:
      self._file.close()
      os.replace(self._tmp, self.path)
    return self.path

  def abort(self) -> None:
    if self._file:
      self._file.close()
    self._tmp.unlink(missing_ok=True)


def shard_ids(n: int, shard_size: int) -> list[str]:
  """Zero-padded shard ids ("00", "01", ...; wider when needed) for n faces."""
  count = -(-n // shard_size)
  width = max(2, len(str(count - 1)))
  return [f"{k:0{width}d}" for k in range(count)]


def make_generator(world: str, size: int, seed: int, options, batch_size: int, workers: int):
  """The batch generator of a world: `FaceGenerator` (faces) or `SceneGenerator` (scenes,
  whose options' size must equal `size`)."""
  if world == "faces":
    return synth_faces.FaceGenerator(size, seed, options, batch_size, workers)
  if world == "scenes":
    options = synth_scene.SceneOptions(size=size) if options is None else options
    if options.size != size:
      raise ValueError(f"SceneOptions.size {options.size} differs from size {size}")
    return scene_render.SceneGenerator(options, seed, batch_size, workers)
  raise ValueError(f"world must be one of {WORLDS}, got {world!r}")


def _options_dict(options) -> dict:
  return json.loads(json.dumps(dataclasses.asdict(options), default=list))


def write_dataset(directory: str | os.PathLike, n: int, size: int = 64, seed: int = 0,
                  options=None, *, shard_size: int = 4096, batch_size: int = 32,
                  workers: int = 0, progress: bool | TextIO = True,
                  world: str = "faces") -> dict:
  """Generates faces 0..n-1 of `seed` into `directory` (layout in the module docstring).

  Args:
    directory: output directory (created if needed).
    n: number of faces (>= 1).
    size: image size.
    seed: dataset seed.
    options: `FaceOptions` (world "faces") or `scene.SceneOptions` (world "scenes").
    shard_size: faces per shard.
    batch_size: faces per render call.
    workers: geometry worker processes (0 = in this process).
    progress: True for stdout, a stream, or False.
    world: "faces" (the skin-only faces) or "scenes" (the face-scene world).

  Returns:
    The metadata written to ``synth_meta.json``.
  """
  if not (isinstance(n, (int, np.integer)) and n >= 1):
    raise ValueError(f"n must be a positive int, got {n!r}")
  if not (isinstance(shard_size, (int, np.integer)) and shard_size >= 1):
    raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
  gen = make_generator(world, size, seed, options, batch_size, workers)
  options = gen.options
  keys = TRUTH_KEYS + (SCENE_TRUTH_KEYS if world == "scenes" else ())
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  ids = shard_ids(n, shard_size)
  stream = sys.stdout if progress is True else (progress or None)
  steps = -(-n // batch_size)
  bar = Progress(steps, batch_size=batch_size, every_steps=max(1, steps // 20), stream=stream,
                 enabled=stream is not None)
  writers: tuple[nfe.NFEShardWriter, TruthWriter] | None = None
  start, done = time.perf_counter(), 0
  try:
    for step, batch in enumerate(gen.batches(range(n)), 1):
      shard_of = batch["index"] // shard_size
      for s in np.unique(shard_of):
        if writers is None:
          writers = (nfe.NFEShardWriter(directory, ids[s], size, size),
                     TruthWriter(directory, ids[s], keys))
        rows = {k: v[shard_of == s] for k, v in batch.items()}
        writers[0].append(rows["image"], rows["normals"], rows["mask"], rows["coord"],
                          np.repeat(rows["sh"][:, None], 3, 1))
        writers[1].append(rows)
        if writers[1].count == shard_size or rows["index"][-1] == n - 1:
          for w in writers:
            w.close()
          writers = None
      done += len(batch["index"])
      bar.update(step, {"faces": done})
  except BaseException:
    if writers is not None:
      for w in writers:
        w.abort()
    raise
  finally:
    bar.close()
    if hasattr(gen, "close"):  # Stop the scene generator's worker processes.
      gen.close()
  elapsed = time.perf_counter() - start
  meta = dict(n=int(n), size=int(size), seed=int(seed), shard_size=int(shard_size),
              shards=ids, world=world, options=_options_dict(options),
              generator_version=_version(world), seconds=round(elapsed, 3),
              faces_per_second=round(n / elapsed, 3))
  tmp = directory / (META_NAME + ".partial")
  tmp.write_text(json.dumps(meta, indent=1))
  os.replace(tmp, directory / META_NAME)
  return meta


def _version(world: str) -> int:
  return synth_faces.GENERATOR_VERSION if world == "faces" else synth_scene.SCENE_VERSION


def _truth_files(directory: pathlib.Path) -> list[pathlib.Path]:
  found = sorted((m.group(1), p) for p in directory.glob("synth_truth_*.hdf5")
                 if (m := _TRUTH_RE.match(p.name)))
  if not found:
    raise FileNotFoundError(f"no ground-truth files {TRUTH_TEMPLATE.format('XX')} in {directory}")
  return [p for _, p in found]


def load_truth(directory: str | os.PathLike, indices: Sequence[int] | np.ndarray,
               keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
  """Reads ground truth for global face indices (any order, repeats allowed).

  Args:
    directory: a dataset directory (`write_dataset`).
    indices: global row indices (over the shards in id order, as in `NFEDataset`).
    keys: subset of `TRUTH_KEYS` + `SCENE_TRUTH_KEYS` (default `TRUTH_KEYS`).

  Returns:
    dict of arrays with the requested rows along axis 0.
  """
  directory = pathlib.Path(directory)
  keys = TRUTH_KEYS if keys is None else tuple(keys)
  bad = [k for k in keys if k not in TRUTH_KEYS + SCENE_TRUTH_KEYS]
  if bad:
    raise KeyError(f"unknown truth keys {bad}; available: {TRUTH_KEYS + SCENE_TRUTH_KEYS}")
  indices = np.asarray(indices, np.int64).reshape(-1)
  files = _truth_files(directory)
  handles = [h5py.File(p, "r") for p in files]
  try:
    for p, f in zip(files, handles):
      missing = [k for k in keys if k not in f]
      if missing:
        raise KeyError(f"{p}: missing datasets {missing}")
    sizes = [f[keys[0]].shape[0] for f in handles]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if indices.size and (indices.min() < 0 or indices.max() >= offsets[-1]):
      raise IndexError(f"truth indices must lie in [0, {offsets[-1]}), got "
                       f"[{indices.min()}, {indices.max()}] ({directory})")
    unique, inverse = np.unique(indices, return_inverse=True)
    shard_of = np.searchsorted(offsets, unique, side="right") - 1
    out = {}
    for key in keys:
      parts = [handles[s][key][unique[shard_of == s] - offsets[s]] for s in np.unique(shard_of)]
      shape = handles[0][key].shape[1:]
      rows = np.concatenate(parts) if parts else np.zeros((0,) + shape, handles[0][key].dtype)
      out[key] = rows[inverse]
    return out
  finally:
    for f in handles:
      f.close()


class SynthSubset(Subset):
  """A `Subset` of a synthetic dataset directory that can also read its ground truth."""

  def __init__(self, dataset: nfe.NFEDataset, indices: np.ndarray, directory: pathlib.Path,
               exact_shading: bool = False):
    super().__init__(dataset, indices)
    self.directory = directory
    self.exact_shading = exact_shading

  def get(self, indices: np.ndarray):
    """Rows as `NFEDataset.get`; with `exact_shading` (the scene world, whose light need not be
    the stored SH) the shading target is the true diffuse shading instead of max(0, E(n; L))."""
    batch = super().get(indices)
    if self.exact_shading:
      batch["shading"] = self.truth(indices, ("diffuse",))["diffuse"]
    return batch

  def truth(self, indices: Sequence[int] | np.ndarray,
            keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Ground truth of local rows `indices` of this subset (see `load_truth`)."""
    return load_truth(self.directory, self.indices[np.asarray(indices, np.int64)], keys)


def cache_name(n: int, size: int, seed: int, options, shard_size: int,
               world: str = "faces") -> str:
  """``synth_<size>_<n>_<seed>_<hash>``: the hash covers world, options, shard size and version
  (the faces world's hash is unchanged, so its caches stay valid)."""
  spec = dict(options=_options_dict(options), shard_size=shard_size, version=_version(world))
  if world != "faces":
    spec["world"] = world
  digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
  return f"synth_{size}_{n}_{seed}_{digest}"


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove_stale_partials(cache: pathlib.Path, name: str) -> None:
  """Deletes temporary directories of interrupted generations (their process is gone)."""
  for p in cache.glob(f".{name}.partial-*"):
    m = re.search(r"\.partial-(\d+)-", p.name)
    if m and not (_pid_alive(int(m.group(1))) and int(m.group(1)) != os.getpid()):
      shutil.rmtree(p, ignore_errors=True)


def world_options(world: str, size: int, **options):
  """The generator options of a world: `FaceOptions` (faces) or `scene.SceneOptions` (scenes,
  framing "face", the scene world's own face defaults) from `FaceOptions` and, for scenes,
  `SceneOptions` fields (`synthetic_dataset`'s ``**options``).

  Raises:
    ValueError: an unknown world or option.
  """
  face_fields = {f.name for f in dataclasses.fields(synth_faces.FaceOptions)}
  scene_fields = ({f.name for f in dataclasses.fields(synth_scene.SceneOptions)}
                  - {"face", "size", "framing"} if world == "scenes" else set())
  unknown = sorted(set(options) - face_fields - scene_fields)
  if unknown:
    raise ValueError(f"unknown synthetic face options {unknown} (world {world!r}); valid: "
                     f"{sorted(face_fields | scene_fields)}")
  if world not in WORLDS:
    raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
  face_kw = {k: v for k, v in options.items() if k in face_fields}
  if world == "faces":
    return synth_faces.FaceOptions(**face_kw)
  return synth_scene.SceneOptions(  # The scene world's own face defaults, overridden.
      framing="face", size=size,
      face=dataclasses.replace(synth_scene.SceneOptions().face, **face_kw),
      **{k: v for k, v in options.items() if k in scene_fields})


def synthetic_dataset(cache_dir: str | os.PathLike | None, n: int, size: int = 64,
                      seed: int = 0, *, holdout_fraction: float = 0.1, shard_size: int = 4096,
                      batch_size: int = 32, workers: int = 0, progress: bool | TextIO = True,
                      world: str = "faces", lazy: bool = False, **options
                      ) -> tuple[SynthSubset, SynthSubset]:
  """The cached synthetic training set: (train, holdout) views of faces 0..n-1 of `seed`.

  Args:
    cache_dir: where datasets are cached (None: $XDG_CACHE_HOME/bioface_jax, else
      ~/.cache/bioface_jax).
    n: number of faces.
    size: image size.
    seed: dataset seed.
    holdout_fraction: the last round(n * fraction) faces form the held-out set.
    shard_size, batch_size, workers: see `write_dataset`.
    progress: True for stdout, a stream, or False (messages and the progress bar).
    world: "faces" (skin-only faces, `data.synth.faces`) or "scenes" (`data.synth.scene`,
      framing "face").
    lazy: when the dataset is not cached yet, return `GeneratedSubset`s that generate only the
      faces asked for (in memory, nothing written) instead of generating all n faces: for
      evaluations that need a few held-out faces. A cached dataset is read as usual.
    **options: `FaceOptions` fields (e.g. noise=0.01, jpeg_quality=90) and, for scenes, also
      `scene.SceneOptions` fields (e.g. context=False).

  Returns:
    (train, holdout) `SynthSubset`s of one `NFEDataset` (the `data.pipeline.Dataset` protocol);
    each has `.directory` and `.truth(indices)` (`generated.GeneratedSubset`s, with the same
    `get` and `truth`, when `lazy` and not cached).
  """
  face_options = world_options(world, size, **options)
  if not 0.0 <= holdout_fraction < 1.0:
    raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
  cache = pathlib.Path(DEFAULT_CACHE if cache_dir is None else cache_dir).expanduser()
  name = cache_name(n, size, seed, face_options, shard_size, world)
  final = cache / name
  stream = sys.stdout if progress is True else (progress or None)
  say = (lambda text: print(text, file=stream, flush=True)) if stream else (lambda text: None)
  if final.exists() and not (final / META_NAME).exists():
    raise RuntimeError(f"{final} exists but holds no {META_NAME}: it is incomplete or not a "
                       "synthetic dataset; delete it to regenerate")
  n_hold = int(round(n * holdout_fraction))
  if n_hold >= n:
    raise ValueError(f"holdout_fraction {holdout_fraction} of {n} faces leaves no training data")
  all_idx = np.arange(n, dtype=np.int64)
  if lazy and not final.exists():
    from data.synth.generated import GeneratedSubset  # pylint: disable=g-import-not-at-top
    say(f"{final} is not cached: generating only the faces used")
    views = (all_idx[:n - n_hold], all_idx[n - n_hold:])
    return tuple(GeneratedSubset(v, size, seed, face_options, batch_size=batch_size,
                                 progress=stream, world=world) for v in views)
  if not final.exists():
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache, name)
    tmp = cache / f".{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    say(f"generating {n} synthetic {size}x{size} {world} (seed {seed}) into {final}")
    try:
      write_dataset(tmp, n, size, seed, face_options, shard_size=shard_size,
                    batch_size=batch_size, workers=workers, progress=stream or False,
                    world=world)
      try:
        os.rename(tmp, final)
      except OSError:
        if not (final / META_NAME).exists():  # Not a concurrent generation that won the race.
          raise
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  else:
    say(f"using cached synthetic faces in {final}")
  full = nfe.NFEDataset(final)
  if len(full) != n:
    raise RuntimeError(f"{final}: expected {n} faces, found {len(full)}; delete it to regenerate")
  exact = world == "scenes"
  return (SynthSubset(full, all_idx[:n - n_hold], final, exact),
          SynthSubset(full, all_idx[n - n_hold:], final, exact))


def __getattr__(name: str):
  """`GeneratedSubset` lives in `data.synth.generated` (imported on first use)."""
  if name == "GeneratedSubset":
    from data.synth.generated import GeneratedSubset  # pylint: disable=g-import-not-at-top
    return GeneratedSubset
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
