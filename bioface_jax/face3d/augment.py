"""PRNet's training augmentation (prnet-spec.md §5), applied consistently to image and map.

Per sample: a similarity about the crop centre c = ((R-1)/2, (R-1)/2) (pixel centres at
integers, PRNet's convention) with rotation U(+-45 deg), scale U(0.9, 1.2), translation
U(+-0.1 R) per axis::

    A(p) = s * Rot(theta) (p - c) + c + t       on x, y;     z <- s * z

The image is resampled at A^-1(q) for every output pixel q (bilinear, zero outside); the
position map's *values* and the 68 landmarks are mapped by A (its pixels stay where they are:
the UV grid does not move), then clipped to [0, 1.1 R] like the network's sigmoid range. Then
a per-channel colour scale U(0.6, 1.4) clipped to [0, 1], and with probability 0.5 one random
erasing rectangle (sides U(10 %, 40 %) of R, inside the image) filled with U(0, 1) noise. No
flips (the UV layout is not symmetric). Colour and occlusion ranges are [unverified] (spec §5).

Split into `sample_params` (random) and `apply_params` (deterministic), so the transform can be
checked against an independent NumPy transcription; `augment_batch` does both for a batch
under one key. Pure and jit-able; nothing here runs at import.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

OUTPUT_SCALE = 1.1   # the map's value range is [0, 1.1 R] (models/prnet.py, to_pixels)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Ranges of the augmentation; the defaults are prnet-spec.md §5 (PRNet issue #66)."""
  rotation_deg: float = 45.0
  translation: float = 0.1             # fraction of R, per axis
  scale: tuple[float, float] = (0.9, 1.2)
  color: tuple[float, float] = (0.6, 1.4)
  erase_prob: float = 0.5
  erase_size: tuple[float, float] = (0.1, 0.4)   # rectangle side, fraction of R

  def __post_init__(self):
    if not (self.rotation_deg >= 0 and self.translation >= 0):
      raise ValueError(f"rotation_deg and translation must be >= 0, got {self}")
    for name in ("scale", "color", "erase_size"):
      lo, hi = getattr(self, name)
      if not 0 < lo <= hi:
        raise ValueError(f"AugmentConfig.{name} must be 0 < low <= high, got {(lo, hi)}")
    if self.erase_size[1] > 1:
      raise ValueError(f"erase_size must be <= 1 (a fraction of R), got {self.erase_size}")
    if not 0 <= self.erase_prob <= 1:
      raise ValueError(f"erase_prob must be in [0, 1], got {self.erase_prob}")

  @classmethod
  def from_mapping(cls, fields: Mapping[str, Any]) -> AugmentConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
      raise ValueError(f"unknown augmentation fields {unknown}; valid: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in fields.items()})


def sample_params(key: jax.Array, size: int, config: AugmentConfig = AugmentConfig()
                  ) -> dict[str, jax.Array]:
  """Random parameters for one R x R sample: angle (rad), scale, shift (2,), colour (3,),
  erase (bool), box (top, left, height, width) integers, noise (R, R, 3)."""
  k = jax.random.split(key, 8)
  rot = math.radians(config.rotation_deg)
  u = lambda kk, lo, hi, shape=(): jax.random.uniform(kk, shape, jnp.float32, lo, hi)  # noqa: E731
  lo, hi = config.erase_size
  hw = jnp.floor(u(k[5], lo * size, hi * size, (2,)) + 0.5).astype(jnp.int32)
  hw = jnp.clip(hw, 1, size)
  top_left = jnp.floor(jax.random.uniform(k[6], (2,)) * (size - hw + 1)).astype(jnp.int32)
  return dict(angle=u(k[0], -rot, rot), scale=u(k[1], *config.scale),
              shift=u(k[2], -config.translation * size, config.translation * size, (2,)),
              color=u(k[3], *config.color, (3,)),
              erase=jax.random.bernoulli(k[4], config.erase_prob),
              box=jnp.concatenate([top_left, hw]),
              noise=jax.random.uniform(k[7], (size, size, 3), jnp.float32))


def similarity(params, size: int) -> jax.Array:
  """The 2x3 matrix [M | b] of A(p) = M p + b (crop pixels -> crop pixels)."""
  c = (size - 1) / 2.0
  cos, sin = jnp.cos(params["angle"]), jnp.sin(params["angle"])
  m = params["scale"] * jnp.array([[cos, -sin], [sin, cos]])
  b = jnp.array([c, c]) - m @ jnp.array([c, c]) + params["shift"]
  return jnp.concatenate([m, b[:, None]], 1)


def warp_bilinear(image: jax.Array, inverse: jax.Array) -> jax.Array:
  """out[q] = image(inverse @ [q, 1]) for q = (x, y) integer pixels, bilinear, zero outside."""
  h, w, _ = image.shape
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=image.dtype), jnp.arange(w, dtype=image.dtype),
                        indexing="ij")
  sx = inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]
  sy = inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)

  def tap(yi, xi):
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    v = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
    return jnp.where(ok[..., None], v, 0.0)

  return ((1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1))
          + fy * ((1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)))


def transform_values(points: jax.Array, affine: jax.Array, scale: jax.Array, size: int
                     ) -> jax.Array:
  """(..., 3) crop-pixel points: x, y <- A(x, y), z <- scale * z, clipped to [0, 1.1 R]."""
  xy = points[..., :2] @ affine[:, :2].T + affine[:, 2]
  out = jnp.concatenate([xy, points[..., 2:3] * scale], -1)
  return jnp.clip(out, 0.0, OUTPUT_SCALE * size)


def apply_params(params, image: jax.Array, posmap: jax.Array, landmarks: jax.Array):
  """One sample: (image (R, R, 3) in [0, 1], posmap (R, R, 3), landmarks (68, 3)) augmented."""
  size = image.shape[0]
  affine = similarity(params, size)
  m_inv = jnp.linalg.inv(affine[:, :2])
  inverse = jnp.concatenate([m_inv, -(m_inv @ affine[:, 2])[:, None]], 1)
  img = warp_bilinear(image, inverse)
  img = jnp.clip(img * params["color"], 0.0, 1.0)
  top, left, hh, ww = (params["box"][i] for i in range(4))
  rows = jnp.arange(size)[:, None]
  cols = jnp.arange(size)[None, :]
  inside = (rows >= top) & (rows < top + hh) & (cols >= left) & (cols < left + ww)
  img = jnp.where((inside & params["erase"])[..., None], params["noise"], img)
  pm = transform_values(posmap, affine, params["scale"], size)
  lmk = transform_values(landmarks, affine, params["scale"], size)
  return img, pm, lmk


def augment_batch(key: jax.Array, batch: Mapping[str, jax.Array],
                  config: AugmentConfig = AugmentConfig()) -> dict[str, jax.Array]:
  """Augments ``image`` (B, R, R, 3), ``posmap`` (B, R, R, 3) and ``landmarks`` (B, 68, 3) of
  a batch (other entries pass through), an independent draw per sample from `key`."""
  image = jnp.asarray(batch["image"])
  if image.ndim != 4 or image.shape[1] != image.shape[2] or image.shape[-1] != 3:
    raise ValueError(f"augment_batch needs images (B, R, R, 3), got shape {image.shape}")
  size = image.shape[1]
  keys = jax.random.split(key, image.shape[0])
  params = jax.vmap(lambda k: sample_params(k, size, config))(keys)
  img, pm, lmk = jax.vmap(apply_params)(params, image, jnp.asarray(batch["posmap"]),
                                        jnp.asarray(batch["landmarks"]))
  out = dict(batch)
  out.update(image=img.astype(image.dtype), posmap=pm, landmarks=lmk)
  return out


__all__ = ["AugmentConfig", "apply_params", "augment_batch", "sample_params", "similarity",
           "transform_values", "warp_bilinear"]
