"""Synthetic faces seen both ways: one photo for PRNet and relightable geometry for SDPS-Net.

For the single-portrait normals table (`eval.face_normals`) every method must look at the
*same* face. A face here is one of PRNet's synthetic training-style pairs
(`data.prnet.synth.sample_pair`: random shape, expression and pose, PRNet's landmark-box
framing, skin through BioFaceNet's spectral model, SH light, background, 8-bit sRGB), rendered
at the PRNet size R. The same face as a photometric-stereo scene (`data.photometric.synth`
keys) at the smaller size S = R / f, made by f x f block averages of the exact R-size truth:

* ``normals``: mean of the block's unit normals, renormalised; ``mask``: blocks fully on the
  face (so every scored pixel has exact truth);
* ``depth``: block mean divided by f (pixels at S), 0 at the farthest masked pixel;
* ``albedo``: the skin's linear-sRGB albedo under the face's illuminant (`FaceGenerator`),
  scaled so that its 95th percentile on the face is 0.8 (a camera's exposure: skin albedos are
  0.1-0.3, the SDPS-Net scenes' 0.25-1, and the relighting noise is absolute);
* specular: the face's Blinn-Phong strength and shininess (``specular_scale``,
  ``shininess``) on the mask, no Cook-Torrance lobe.

Relight the scene with `data.photometric.synth.render_scenes`. Draws are those of
`sample_pair` (a pure function of (seed, index)); the default seed 7 is used by no trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data.synth import faces as synth_faces

EVAL_SEED = 7
ALBEDO_P95 = 0.8


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
  """(B, R, R, ...) -> (B, R/f, R/f, f*f, ...)."""
  b, r = a.shape[:2]
  s = r // f
  a = a.reshape((b, s, f, s, f) + a.shape[3:])
  a = np.moveaxis(a, 2, 3)
  return a.reshape((b, s, s, f * f) + a.shape[5:])


def downsample_scene(normals, mask, depth, albedo, factor: int) -> dict[str, np.ndarray]:
  """Block-averaged geometry (module docstring) of (B, R, R[, 3]) arrays; R divisible by f."""
  if normals.shape[1] % factor:
    raise ValueError(f"size {normals.shape[1]} is not a multiple of the factor {factor}")
  m = _blocks(mask.astype(bool), factor).all(-1)
  n = _blocks(normals.astype(np.float64), factor).mean(-2)
  n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
  n = np.where(m[..., None], n, 0.0)
  d = _blocks(depth.astype(np.float64), factor).mean(-1) / factor
  low = np.where(m, d, np.inf).reshape(len(d), -1).min(1)
  low = np.where(np.isfinite(low), low, 0.0)[:, None, None]
  d = np.where(m, d - low, 0.0)
  alb = np.where(m[..., None], _blocks(albedo.astype(np.float64), factor).mean(-2), 0.0)
  for i in range(len(alb)):
    if m[i].any():
      alb[i] *= ALBEDO_P95 / max(np.percentile(alb[i][m[i]], 95), 1e-6)
  return {"normals": n.astype(np.float32), "mask": m.astype(np.float32),
          "depth": d.astype(np.float32), "albedo": alb.astype(np.float32)}


def face_pairs(indices: Sequence[int], seed: int = EVAL_SEED, prnet_size: int = 128,
               scene_size: int = 64, max_yaw: float = 45.0) -> dict[str, np.ndarray]:
  """Faces `indices` of `seed`: PRNet's photo and truth, and the SDPS-Net scene.

  Returns (stacked over the faces):
    ``image`` (B, R, R, 3) float32 stored sRGB photo in [0, 1] (PRNet's input crop);
    ``posmap`` (B, R, R, 3) true position map (PRNet's convention); ``landmarks`` (B, 68, 3);
    ``normals_full``, ``mask_full``, ``diffuse_full`` (the photo's exact diffuse shading) at R;
    ``pose`` (B, 3) yaw, pitch, roll;
    and the scene keys of `data.photometric.synth.SCENE_KEYS` at S.
  """
  from data.prnet import synth as prnet_synth  # pylint: disable=g-import-not-at-top
  if prnet_size % scene_size:
    raise ValueError(f"prnet_size {prnet_size} must be a multiple of scene_size {scene_size}")
  gen = synth_faces.FaceGenerator(prnet_size, seed, synth_faces.FaceOptions(),
                                  batch_size=max(1, min(16, len(indices))))
  parts = []
  indices = [int(i) for i in indices]
  for start in range(0, len(indices), gen.batch_size):
    raw = [prnet_synth.sample_pair(seed, i, prnet_size, gen.options, max_yaw)
           for i in indices[start:start + gen.batch_size]]
    raw = {k: np.stack([r[k] for r in raw]) for k in raw[0]}
    out = gen.render(raw)
    # Depth of the truth at R: the z of the position map's mesh is not stored per pixel, so
    # take it from the posmap's mesh drawn at R (exact vertices at R = 256 / f).
    depth = np.stack([_depth(p, prnet_size) for p in raw["posmap"]])
    scene = downsample_scene(raw["normals"], raw["mask"], depth, out["albedo"],
                             prnet_size // scene_size)
    m = scene["mask"] > 0
    ones = np.ones(m.shape, np.float32)
    scene.update(
        bp_k=np.where(m, raw["specular_scale"][:, None, None], 0).astype(np.float32),
        bp_s=(ones * raw["shininess"][:, None, None]).astype(np.float32),
        ct_k=0 * ones, ct_r=0.5 * ones, ct_f0=0.04 * ones)
    parts.append(dict(scene, image=out["image"], posmap=raw["posmap"],
                      landmarks=raw["landmarks3d"], normals_full=raw["normals"],
                      mask_full=raw["mask"], diffuse_full=out["diffuse"],
                      pose=raw["pose"][:, :3]))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _depth(posmap: np.ndarray, size: int) -> np.ndarray:
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  return face3d.rasterise_position_map(posmap, size)["depth"]


__all__ = ["ALBEDO_P95", "EVAL_SEED", "downsample_scene", "face_pairs"]
