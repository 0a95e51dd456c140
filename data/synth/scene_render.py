"""Renders batches of scenes (`data.synth.scene`) and reduces their truth to the output size.

Per batch: one jitted call renders the skin spectrally per light group
(`light_camera.render_skin`), colours every other material by its light groups
(`light_camera.light_colours`), applies the automatic exposure (the face skin's mean
luminance is brought to the scene's target times (skin albedo / `REFERENCE_ALBEDO`) ^
``exposure_albedo_power``, so darker skin stays darker as with a camera metering the whole
scene; the background is not scaled) and composites the overlays; then, per scene on the host, the camera
(`light_camera.apply_camera`) integrates the render-size image down to the output size and
stores it, and every truth map is averaged over each output pixel's footprint.

Output keys (leading batch axis; maps at the output size, 0 where undefined):

* image (the stored photo in [0, 1]) and linear_image (linear sRGB entering the camera);
* labels (uint8, `data.synth.labels`, the most frequent render label of the pixel), vae_mask
  (the face VAE's soft mask: footprint share of face + hair labels), skin (footprint share of
  skin-truth pixels) and mask = (skin == 1);
* skin truth where mask: fmel, fblood (network coordinates), melanin, haemoglobin (volume
  fractions), diffuse and specular (exposed grey shading, summed over light groups), albedo
  (linear sRGB under the main light);
* geometry of the front surface: normals (unit, camera frame), depth (output pixels, larger =
  closer), coord (x / size, y / size, 0.5 + depth / size; NFE layout), uv and face (share of
  the footprint on the face mesh);
* per scene: landmarks (68, 2) in output pixels, landmarks_visible, landmarks3d (68, 3) and,
  for the prnet framing, posmap (size, size, 3) in PRNet's convention; weights (14,), t, b of
  the main light group; sh, exposure, luminance, pose (6,), identity, expression and the
  record codes of `scene.sample_scene`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from collections.abc import Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics
from data.prnet import synth as prnet_synth
from data.synth import geometry, labels as L, light_camera, scene

_RENDER_KEYS = ("fmel", "fblood", "skin", "diffuse", "specular", "lit", "over", "alpha",
                "emission", "expose", "weights", "t", "b", "luminance", "albedo_power")
REFERENCE_ALBEDO = 0.1  # Skin albedo luminance exposed to exactly the scene's target.
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@jax.jit
def _render(spectra, lut, fmel, fblood, skin, diffuse, specular, lit, over, alpha, emission,
            expose, weights, t, b, luminance, albedo_power):
  sk = light_camera.render_skin(spectra, lut, fmel, fblood, diffuse, specular, weights, t, b)
  colours = light_camera.light_colours(spectra, weights, t, b)             # (B, G, 3)
  skin_rgb = jnp.where(skin[..., None], sk["linear_srgb"], 0.0)
  lit_rgb = jnp.einsum("bgc,bghwc->bhwc", colours, lit) + skin_rgb
  over_rgb = jnp.einsum("bgc,bghwc->bhwc", colours, over)
  lum = jnp.einsum("bhwc,c->bhw", skin_rgb, _LUMA)
  count = jnp.sum(expose, axis=(1, 2))
  mean = jnp.sum(lum * expose, axis=(1, 2)) / jnp.maximum(count, 1.0)
  albedo = jnp.sum(jnp.einsum("bhwc,c->bhw", sk["albedo"], _LUMA) * expose,
                   axis=(1, 2)) / jnp.maximum(count, 1.0)
  target = luminance * (jnp.maximum(albedo, 1e-6) / REFERENCE_ALBEDO) ** albedo_power
  k = jnp.where((count > 0) & (mean > 1e-8), target / jnp.maximum(mean, 1e-8), 1.0)
  a = alpha[..., None]
  linear = (k[:, None, None, None] * lit_rgb + emission) * (1.0 - a) + k[:, None, None,
                                                                          None] * over_rgb
  melanin, haemoglobin = physics.network_to_fractions(fmel, fblood)
  return dict(linear=linear, exposure=k, albedo=jnp.where(skin[..., None], sk["albedo"], 0.0),
              melanin=melanin, haemoglobin=haemoglobin)


def _blocks(x: np.ndarray, k: int) -> np.ndarray:
  """(B, R, R, ...) -> (B, R/k, R/k, k*k, ...) pixel footprints."""
  b, r = x.shape[:2]
  s = r // k
  y = x.reshape((b, s, k, s, k) + x.shape[3:])
  y = np.moveaxis(y, 2, 3)
  return y.reshape((b, s, s, k * k) + x.shape[3:])


def _footprint_sum(x: np.ndarray, k: int) -> np.ndarray:
  """``_blocks(x, k).sum(3)``: the sum over each footprint, its sub-pixels added one by one in
  row-major order as NumPy's reduction of that axis does for k * k < 8 (identical bits); from
  strided views, without the copy `_blocks` makes."""
  if k * k >= 8:  # NumPy sums 8 or more in a pairwise order: keep its result.
    return _blocks(x, k).sum(3)
  total = x[:, 0::k, 0::k].copy()
  for i in range(k):
    for j in range(k):
      if i or j:
        total += x[:, i::k, j::k]
  return total


def _footprint_mean(x: np.ndarray, k: int) -> np.ndarray:
  """``_blocks(x, k).mean(3)`` for float32 x (identical bits; see `_footprint_sum`)."""
  return _footprint_sum(x, k) / np.float32(k * k)


class _Weights:
  """Sub-pixel weights of a footprint mean over the sub-pixels in `where` (computed once for
  every map averaged over the same pixels)."""

  def __init__(self, where: np.ndarray, k: int):
    self.k, self.w = k, where.astype(np.float32)
    self.count = _footprint_sum(self.w, k)


def _mean_over(x: np.ndarray, where: np.ndarray | _Weights, k: int) -> np.ndarray:
  """Footprint mean of x over the sub-pixels in `where` (0 where none)."""
  weights = where if isinstance(where, _Weights) else _Weights(where, k)
  extra = (1,) * (x.ndim - 3)
  total = _footprint_sum(x * weights.w.reshape(weights.w.shape + extra), k)
  count = weights.count.reshape(weights.count.shape + extra)
  return np.where(count > 0, total / np.maximum(count, 1e-9), 0.0).astype(np.float32)


def _mode(labels: np.ndarray, k: int) -> np.ndarray:
  """Most frequent label of each footprint (ties: the earliest sub-pixel)."""
  subs = [labels[:, i::k, j::k] for i in range(k) for j in range(k)]  # Row-major sub-pixels.
  best, best_count = subs[0], None
  for s in subs:
    count = sum((s == t).astype(np.int32) for t in subs)
    if best_count is None:
      best_count = count
    else:  # Strictly more: a tie keeps the earlier sub-pixel (np.argmax's first maximum).
      more = count > best_count
      best, best_count = np.where(more, s, best), np.where(more, count, best_count)
  return best


RECORDS = ("camera", "rig")  # Per-scene JSON-able dicts, kept as lists.


def _stack(items: Sequence[dict]) -> dict:
  return {key: np.stack([it[key] for it in items]) for key in items[0] if key not in RECORDS}


def _sample_task(args):
  seed, index, options = args
  return scene.sample_scene(seed, index, options)


class SceneGenerator:
  """Generates rendered scene batches for given indices (see the module docstring).

  Args:
    options: `scene.SceneOptions` (framing, size, realism switches).
    seed: data-set seed.
    batch_size: scenes per render call (the last batch is padded: XLA compiles once).
    workers: 0 = lay scenes out in this process; > 0 = that many spawned processes.
  """

  def __init__(self, options: scene.SceneOptions | None = None, seed: int = 0,
               batch_size: int = 16, workers: int = 0):
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
      raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not (isinstance(workers, (int, np.integer)) and workers >= 0):
      raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    self.options = scene.SceneOptions() if options is None else options
    self.seed, self.batch_size, self.workers = int(seed), int(batch_size), int(workers)
    self.spectra = physics.load_spectra()
    self.lut = physics.skin_lut(self.spectra)
    self._pool = None

  def _samples(self, indices: Sequence[int]) -> Iterator[dict]:
    tasks = ((self.seed, int(i), self.options) for i in indices)
    if not self.workers:
      yield from map(_sample_task, tasks)
      return
    if self._pool is None:  # Kept for later calls: workers start (import JAX) only once.
      context = multiprocessing.get_context("spawn")  # Never fork a process that runs JAX.
      self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
    pending = collections.deque()
    try:
      for task in tasks:
        pending.append(self._pool.submit(_sample_task, task))
        if len(pending) >= 2 * self.batch_size + 2 * self.workers:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()

  def close(self) -> None:
    """Stops the worker processes (if any); the generator can still be used (restarts them)."""
    if self._pool is not None:
      self._pool.shutdown(cancel_futures=True)
      self._pool = None

  def __enter__(self) -> SceneGenerator:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def render(self, samples: Sequence[dict]) -> dict[str, np.ndarray]:
    """Renders laid-out scenes (`scene.sample_scene`) into output-size images and truth."""
    return self._finish(*self._start(samples))

  def _start(self, samples: Sequence[dict]) -> tuple:
    """Stacks a batch and dispatches its spectral render (JAX runs it asynchronously)."""
    batch = _stack(samples)
    pad = self.batch_size - len(samples) if len(samples) < self.batch_size else 0
    args = [np.concatenate([batch[key], np.repeat(batch[key][-1:], pad, 0)]) if pad
            else batch[key] for key in _RENDER_KEYS]
    return samples, batch, _render(self.spectra, self.lut, *args)

  def _finish(self, samples: Sequence[dict], batch: dict, rendered: dict) -> dict:
    """Waits for the render, then runs the camera and reduces the truth to the output size."""
    o = self.options
    n, k, size = len(samples), o.factor, o.size
    out = {key: np.asarray(v)[:n] for key, v in rendered.items()}
    images = []
    for i, s in enumerate(samples):
      noise_rng = np.random.default_rng([self.seed, int(s["index"]), 19])
      images.append(light_camera.apply_camera(out["linear"][i], s["camera"], noise_rng, size))
    # A camera's exposure error scales the recorded image: the shading truth follows it.
    ev = np.array([s["camera"].get("exposure_ev", 0.0) for s in samples], np.float32)
    exposure = (out["exposure"] * np.exp2(ev)).astype(np.float32)
    truth = batch["truth"]
    surface = batch["labels"] != L.BACKGROUND
    skin = _footprint_mean(truth.astype(np.float32), k)
    mask = skin >= 1.0
    ex = exposure[:, None, None]
    diffuse = batch["diffuse"].sum(1) * ex
    specular = batch["specular"].sum(1) * ex
    res = dict(index=batch["index"], image=np.stack(images),
               linear_image=(_footprint_mean(out["linear"], k)
                             * np.exp2(ev)[:, None, None, None]),
               labels=_mode(batch["labels"], k),
               vae_mask=_footprint_mean(L.vae_mask(batch["labels"]), k),
               skin=skin.astype(np.float32), mask=mask, exposure=exposure.astype(np.float32))
    on_truth = _Weights(truth, k)
    for key, value in (("fmel", batch["fmel"]), ("fblood", batch["fblood"]),
                       ("melanin", out["melanin"]), ("haemoglobin", out["haemoglobin"]),
                       ("diffuse", diffuse), ("specular", specular), ("albedo", out["albedo"])):
      res[key] = np.where(mask[..., None] if value.ndim == 4 else mask,
                          _mean_over(value, on_truth, k), 0.0).astype(np.float32)
    on_surface = _Weights(surface, k)
    nrm = _mean_over(batch["normals"], on_surface, k)
    res["normals"] = (nrm / np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-9)
                      ).astype(np.float32)
    res["depth"] = _mean_over(batch["depth"], on_surface, k) / k
    res["face"] = _footprint_mean(batch["face"].astype(np.float32), k)
    res["uv"] = _mean_over(batch["uv"], batch["face"], k)
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    res["coord"] = (np.stack(np.broadcast_arrays(centres[None, :], centres[:, None],
                                                 np.clip(0.5 + res["depth"] / size, 0, 1)), -1)
                    * mask[..., None]).astype(np.float32)
    res["landmarks"] = batch["landmarks"] / k
    lmk3 = batch["landmarks3d"].copy()
    lmk3[..., :2] = (lmk3[..., :2] + 0.5) / k - 0.5
    lmk3[..., 2] /= k
    res["landmarks3d"] = lmk3
    if "screen" in batch:
      template = geometry.load_template()
      res["posmap"] = np.stack([prnet_synth.position_map(sc / k, template, size)
                                for sc in batch["screen"]])
    res["weights"], res["t"] = batch["weights"][:, 0], batch["t"][:, 0]
    res["sh"] = batch["sh"] * ex[:, :, 0]
    for key in ("b", "luminance", "albedo_power", "specular_scale", "shininess", "pose",
                "landmarks_visible",
                "identity", "expression", "masculine", "hair_style", "glasses",
                "edge_occluder", "other_person", "beard"):
      res[key] = batch[key]
    return res

  def batches(self, indices: Iterable[int]) -> Iterator[dict[str, np.ndarray]]:
    """Yields rendered batches for `indices`, in order.

    Each batch is finished (camera, truth) only after the next one has been laid out, so its
    spectral render runs beside that layout (the same batches, one batch later)."""
    pending = None
    for chunk in self._chunks(indices):
      started = self._start(chunk)
      if pending is not None:
        yield self._finish(*pending)
      pending = started
    if pending is not None:
      yield self._finish(*pending)

  def _chunks(self, indices: Iterable[int]) -> Iterator[list[dict]]:
    """Laid-out samples of `indices` in lists of `batch_size` (the last one shorter)."""
    chunk = []
    for s in self._samples(list(indices)):
      chunk.append(s)
      if len(chunk) == self.batch_size:
        yield chunk
        chunk = []
    if chunk:
      yield chunk


def prnet_pairs(seed: int, indices: Iterable[int], size: int = 256, batch_size: int = 16,
                workers: int = 0, **options) -> Iterator[dict[str, np.ndarray]]:
  """PRNet training pairs from the scene world, in the layout of
  `data.prnet.synth.generate_pairs`: image (B, R, R, 3) uint8 (PRNet's 1.5x landmark-box crop
  with jitter), posmap (B, R, R, 3) and landmarks (B, 68, 3) in PRNet's convention, pose
  (B, 3) yaw / pitch / roll, index (B,). `options`: `scene.SceneOptions` fields."""
  opts = scene.SceneOptions(framing="prnet", size=size, **options)
  gen = SceneGenerator(opts, seed, batch_size, workers)
  try:
    for b in gen.batches(indices):
      yield dict(image=np.round(b["image"] * 255).astype(np.uint8), posmap=b["posmap"],
                 landmarks=b["landmarks3d"], pose=b["pose"][:, :3],
                 index=b["index"].astype(np.int64))
  finally:
    gen.close()  # Stops the worker processes, also when the caller stops early.


def photometric_scenes(seed: int, indices: Sequence[int], size: int, framing: str = "portrait",
                       batch_size: int = 16, **options) -> dict[str, np.ndarray]:
  """Scenes as photometric-stereo objects (`data.photometric.synth.SCENE_KEYS`), to relight
  under any lights with `data.photometric.synth.render_scenes`.

  The scene's front surfaces with its hair, glasses and facial hair made opaque where they
  cover at least half a pixel: normals (camera frame), mask, depth (pixels, 0 at the
  farthest visible point, 0 off the mask), albedo (linear sRGB: the skin's through the
  spectral model under its illuminant, white-balanced; other materials' own), Blinn-Phong
  bp_k (specular strength) and bp_s (the skin's shininess, 20 elsewhere); no Cook-Torrance
  lobe (ct_k = 0). Rendered at the output size (supersample 1).
  """
  opts = scene.SceneOptions(framing=framing, size=size, supersample=1, **options)
  gen = SceneGenerator(opts, seed, batch_size)
  parts = []
  for chunk in range(0, len(indices), batch_size):
    samples = [scene.sample_scene(seed, int(i), opts) for i in indices[chunk:chunk + batch_size]]
    out = gen.render(samples)
    g = _stack(samples)
    mask = g["g_mask"]
    depth = np.where(mask, g["g_depth"], np.inf)
    low = depth.reshape(len(samples), -1).min(1)[:, None, None]
    skin_albedo = out["albedo"]  # Footprint means over skin truth; at supersample 1 exact.
    albedo = np.where(g["g_skin"][..., None], skin_albedo, g["g_albedo"])
    parts.append(dict(
        normals=np.where(mask[..., None], g["g_normal"], 0.0).astype(np.float32),
        mask=mask.astype(np.float32),
        depth=np.where(mask, g["g_depth"] - low, 0.0).astype(np.float32),
        albedo=np.where(mask[..., None], albedo, 0.0).astype(np.float32),
        bp_k=np.where(mask, g["g_spec"], 0.0).astype(np.float32),
        bp_s=np.where(g["g_skin"], g["shininess"][:, None, None], 20.0).astype(np.float32),
        ct_k=np.zeros(mask.shape, np.float32), ct_r=np.full(mask.shape, 0.5, np.float32),
        ct_f0=np.full(mask.shape, 0.04, np.float32)))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def generate_scenes(n: int, options: scene.SceneOptions | None = None, seed: int = 0, *,
                    start: int = 0, batch_size: int = 16, workers: int = 0
                    ) -> dict[str, np.ndarray]:
  """Scenes `start .. start + n - 1` of `seed`, all in memory."""
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  gen = SceneGenerator(options, seed, batch_size, workers)
  parts = list(gen.batches(range(start, start + n)))
  return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
