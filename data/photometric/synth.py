"""Synthetic photometric-stereo scenes: a cached scene bank, in-step rendering and test sets.

A *scene* is geometry + materials at size S (host NumPy, deterministic per (seed, index)):
``normals`` (S, S, 3), ``mask`` (S, S), ``depth`` (S, S) px, ``albedo`` (S, S, 3) and the
specular maps ``bp_k``, ``bp_s``, ``ct_k``, ``ct_r``, ``ct_f0`` (S, S); plus ``kind``
(0 sphere, 1 blob, 2 face, 3 scene). Images are *not* stored for training: `render_scenes`
draws lights and renders inside the jitted train step (sdps-spec.md §8), so every step sees
fresh lights.

Fixed test sets (`test_set`) use scene indices from 10⁹ and 64 fixed lights each:
``objects`` (spheres + blobs, every material specular, cast shadows, noise), ``lambertian``
(k = 0, no cast shadows, no noise: Woodham must be exact), ``faces`` (face geometry,
``objects`` materials) and ``faces_lit`` (the ``faces`` scenes and lights rendered under
realistic light: ambient, coloured lights, shot noise, darker exposures; `LIT`) and
``scenes`` (portraits of the face-scene world, `data.synth.scene`, under the ``faces`` set's
lights: the one world every system's faces come from).

Kinds ``sphere``, ``blob`` and ``face`` are `data.photometric.shapes` with random object
materials; kind ``scene`` is a portrait of the face-scene world (`data.synth.scene_render.
photometric_scenes`: face, eyes, mouth, hair, ears, neck, clothes, glasses, beards; skin albedo
from the spectral skin model, the other materials' own), scene `index` of stream `seed` there.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import uuid
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import photometric
from data.photometric import shapes

SCENE_KEYS = ("normals", "mask", "depth") + shapes.MATERIAL_KEYS
KINDS = shapes.KINDS + ("scene",)  # the mix's keys; the stored ``kind`` is the index here
TEST_SETS = ("objects", "lambertian", "faces", "faces_lit", "scenes")
# faces_lit: the faces set's scenes and lights under realistic light (render_scenes' options).
LIT = dict(ambient=0.3, tint=0.15, shot_noise=1e-3, factor_range=(0.3, 3.0))
TEST_INDEX_BASE = 10**9
DEFAULT_CACHE = (pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "bioface_jax"
                 / "photometric")
_TEST_SET_IDS = {name: i for i, name in enumerate(TEST_SETS)}
# Test sets relit under another set's fixed lights (and so its light subsets in benchmarks).
_SHARED_LIGHTS = {"faces_lit": "faces", "scenes": "faces"}


def light_set(name: str) -> str:
  """The test set whose fixed lights `name` uses: ``faces`` for ``faces_lit`` and ``scenes``,
  else `name` itself."""
  return _SHARED_LIGHTS.get(name, name)


def _draw_kind(rng: np.random.Generator, mix: Mapping[str, float]) -> str:
  unknown = sorted(set(mix) - set(KINDS))
  if unknown:
    raise ValueError(f"scene mix has unknown kinds {unknown}; the kinds are {KINDS}")
  kinds = [k for k in KINDS if mix.get(k, 0) > 0]
  if not kinds:
    raise ValueError(f"scene mix {dict(mix)} gives no kind a positive weight")
  p = np.asarray([mix[k] for k in kinds], np.float64)
  return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def scene_kind(seed: int, index: int, mix: Mapping[str, float]) -> str:
  """The kind `make_scene(seed, index, ..., mix)` draws (its generator's first draw)."""
  return _draw_kind(np.random.default_rng([seed, index]), mix)


def world_scenes(seed: int, indices, size: int) -> dict[str, np.ndarray]:
  """Scenes of kind ``scene``: portraits `indices` of the face-scene world's stream `seed`,
  stacked, with ``kind`` = 3. One batched call (the world renders its skin in batches)."""
  from data.synth import scene_render  # pylint: disable=g-import-not-at-top (reads assets)
  out = scene_render.photometric_scenes(seed, [int(i) for i in indices], size,
                                        framing="portrait")
  out["kind"] = np.full(len(indices), KINDS.index("scene"), np.int32)
  return out


def make_scene(seed: int, index: int, size: int, mix: Mapping[str, float], *,
               lambertian: bool = False, specular_only: bool = False) -> dict[str, np.ndarray]:
  """Scene `index` of stream `seed`: kind drawn from `mix` ({kind: probability}).

  Kind ``scene`` comes from the face-scene world with its own materials (`world_scenes`;
  `lambertian` / `specular_only` do not apply); `scene_bank` lays those out in batches.
  """
  rng = np.random.default_rng([seed, index])
  kind = _draw_kind(rng, mix)
  if kind == "scene":
    return {k: v[0] for k, v in world_scenes(seed, [index], size).items()}
  geo = getattr(shapes, kind)(rng, size)
  mat = shapes.materials(rng, size, lambertian=lambertian, specular_only=specular_only)
  out = {**geo, **mat, "kind": np.int32(KINDS.index(kind))}
  out["mask"] = out["mask"].astype(np.float32)
  return out


def _stack(scenes):
  return {k: np.stack([s[k] for s in scenes]) for k in scenes[0]}


def scene_bank(num: int, size: int, seed: int = 0, mix: Mapping[str, float] | None = None,
               cache_dir: str | os.PathLike | None = None, progress=None
               ) -> dict[str, np.ndarray]:
  """`num` training scenes as stacked arrays, generated once and cached as an .npz.

  The cache file name holds a hash of (num, size, seed, mix); it is written under a temporary
  name and renamed, so an interrupted generation is redone, never half-read.
  """
  mix = dict(mix or {"sphere": 0.1, "blob": 0.9})
  key = json.dumps({"num": num, "size": size, "seed": seed, "mix": mix, "v": 1}, sort_keys=True)
  name = f"bank_{size}_{num}_{seed}_{hashlib.sha1(key.encode()).hexdigest()[:10]}.npz"
  cache = pathlib.Path(cache_dir or DEFAULT_CACHE).expanduser()
  path = cache / name
  if path.is_file():
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  world = [i for i in range(num) if scene_kind(seed, i, mix) == "scene"]
  scenes = {}
  for start in range(0, len(world), 256):  # the face-scene world, in batches
    chunk = world[start:start + 256]
    batch = world_scenes(seed, chunk, size)
    scenes.update({i: {k: v[j] for k, v in batch.items()} for j, i in enumerate(chunk)})
    if progress is not None:
      progress(f"scene bank: {start + len(chunk)}/{len(world)} face-scene portraits")
  for i in range(num):
    if i not in scenes:
      scenes[i] = make_scene(seed, i, size, mix)
    if progress is not None and (i + 1) % 256 == 0:
      progress(f"scene bank: {i + 1}/{num}")
  bank = _stack([scenes[i] for i in range(num)])
  cache.mkdir(parents=True, exist_ok=True)
  tmp = cache / f".{name}.{uuid.uuid4().hex[:8]}.tmp.npz"
  np.savez(tmp, **bank)
  os.replace(tmp, path)
  return bank


def render_scenes(key, scenes: Mapping[str, jax.Array], num_images: int, *,
                  strategy: str = "uniform", num_strata: int | None = None,
                  max_polar_deg: float = 90.0, cast: bool = True, shadow_steps: int = 32,
                  noise: float = 0.025, factor_range=(1.0, 3.0), exposure: float = 1.0,
                  dirs=None, intensities=None, ambient: float = 0.0, tint: float = 0.0,
                  shot_noise: float = 0.0):
  """Renders a batch of scenes (leading dim B) under N random (or given) lights, in jnp.

  Lights: `sample_light_directions` (z > 0 within `max_polar_deg`) and
  `sample_light_intensities(strategy)`; a colour factor U(factor_range) per sample and channel
  (not part of the labels); cast shadows from the depth map; I = exposure · factor ·
  `photometric.render`, background 0, then U(±noise) everywhere; never clipped.

  Realistic-light options (all 0 = off, the SDPS-Net recipe):

  * ``ambient``: an unshadowed ambient term a · albedo added to every image of a sample (the
    same room light in all N shots), a ~ U(0, ambient) per sample;
  * ``tint``: coloured lights: image i is multiplied per channel by exp(u_ic), u ~ U(±tint),
    normalised to channel mean 1, so the labelled intensity stays the grey one;
  * ``shot_noise``: signal-dependent camera noise, Gaussian with variance g · I, g ~ U(0,
    shot_noise) per sample (on top of the U(±noise) read noise).

  Returns:
    (images (B, N, S, S, 3), dirs (B, N, 3), intensities (B, N)).
  """
  b = scenes["normals"].shape[0]
  kd, ki, kf, kn = jax.random.split(key, 4)
  # The realistic-light keys come from a side stream: the SDPS-Net recipe's draws are unchanged.
  ka, kt, ks, kg = jax.random.split(jax.random.fold_in(key, 1), 4)
  if dirs is None:
    dirs = photometric.sample_light_directions(kd, (b, num_images), max_polar_deg)
  if intensities is None:
    intensities = photometric.sample_light_intensities(ki, (b, num_images), strategy,
                                                       num_strata=num_strata)
  mask = scenes["mask"]
  vis = (photometric.cast_shadows(scenes["depth"], mask, dirs, shadow_steps) if cast else None)
  images = photometric.render(
      scenes["normals"], dirs, intensities, scenes["albedo"],
      blinn_phong=(scenes["bp_k"], scenes["bp_s"]),
      cook_torrance=(scenes["ct_k"], scenes["ct_r"], scenes["ct_f0"]), visibility=vis)
  if ambient:
    level = jax.random.uniform(ka, (b, 1, 1, 1, 1), maxval=ambient)
    images = images + level * scenes["albedo"][:, None]
  if tint:
    u = jnp.exp(jax.random.uniform(kt, images.shape[:2] + (1, 1, 3), minval=-tint,
                                   maxval=tint))
    images = images * (u / jnp.mean(u, -1, keepdims=True))
  factor = jax.random.uniform(kf, (b, 1, 1, 1, 3), minval=factor_range[0],
                              maxval=factor_range[1])
  images = exposure * factor * images * mask[:, None, :, :, None]
  if shot_noise:
    gain = jax.random.uniform(kg, (b, 1, 1, 1, 1), maxval=shot_noise)
    images = images + jnp.sqrt(gain * jnp.maximum(images, 0.0)) * jax.random.normal(
        ks, images.shape)
  if noise:
    images = images + jax.random.uniform(kn, images.shape, minval=-noise, maxval=noise)
  return images, dirs, intensities


def test_set(name: str, num: int, size: int, seed: int = 0, num_lights: int = 64
             ) -> dict[str, np.ndarray]:
  """A fixed held-out set: scenes, 64 lights and uniform intensities per scene, and the
  rendering options, all deterministic. Render with `render_test_scene`."""
  if name not in TEST_SETS:
    raise ValueError(f"test set must be one of {TEST_SETS}, got {name!r}")
  lights = light_set(name)
  lit = name == "faces_lit"
  name = "faces" if lit else name  # same scenes and lights
  if name == "scenes":
    out = world_scenes(seed, range(TEST_INDEX_BASE, TEST_INDEX_BASE + num), size)
  else:
    mix = {"face": 1.0} if name == "faces" else {"sphere": 0.1, "blob": 0.9}
    out = _stack([make_scene(seed, TEST_INDEX_BASE + i, size, mix,
                             lambertian=name == "lambertian", specular_only=name != "lambertian")
                  for i in range(num)])
  key = jax.random.key(np.uint32(seed * 7919 + 1 + _TEST_SET_IDS[lights]))
  kd, ki = jax.random.split(key)
  out["dirs"] = np.asarray(photometric.sample_light_directions(kd, (num, num_lights)))
  out["intensities"] = np.asarray(photometric.sample_light_intensities(ki, (num, num_lights)))
  out["name"] = "faces_lit" if lit else name
  return out


def render_test_scene(test: Mapping[str, np.ndarray], index: int, subset=None) -> np.ndarray:
  """Images (N, S, S, 3) of scene `index` of a test set under its fixed lights (or `subset`)."""
  lamb = str(test["name"]) == "lambertian"
  lit = str(test["name"]) == "faces_lit"
  scene = {k: jnp.asarray(test[k][index:index + 1]) for k in SCENE_KEYS}
  dirs = test["dirs"][index:index + 1]
  ints = test["intensities"][index:index + 1]
  if subset is not None:
    dirs, ints = dirs[:, subset], ints[:, subset]
  key = jax.random.fold_in(jax.random.key(12345), index)
  images, _, _ = _render_fixed(key, scene, jnp.asarray(dirs), jnp.asarray(ints), lamb, lit)
  return np.asarray(images[0])


@jax.jit(static_argnums=(4, 5))
def _render_fixed(key, scene, dirs, ints, lambertian, lit=False):
  size = scene["normals"].shape[-2]
  options = dict(LIT) if lit else dict(
      factor_range=(1.0, 1.0) if lambertian else (1.0, 3.0))
  return render_scenes(key, scene, dirs.shape[1], dirs=dirs, intensities=ints,
                       cast=not lambertian, shadow_steps=size // 2,
                       noise=0.0 if lambertian else 0.025, **options)


def random_crops(rng: np.random.Generator, masks: np.ndarray, crop: int,
                 min_fraction: float = 0.25, tries: int = 20) -> np.ndarray:
  """(B, 2) int32 (row, col) offsets of `crop`² windows holding ≥ `min_fraction` mask (best of
  `tries` random draws per scene)."""
  b, s = masks.shape[0], masks.shape[-1]
  out = np.zeros((b, 2), np.int32)
  if crop >= s:
    return out
  for i in range(b):
    best, best_frac = (0, 0), -1.0
    for _ in range(tries):
      r, c = rng.integers(0, s - crop + 1, 2)
      frac = masks[i, r:r + crop, c:c + crop].mean()
      if frac > best_frac:
        best, best_frac = (r, c), frac
      if frac >= min_fraction:
        break
    out[i] = best
  return out
