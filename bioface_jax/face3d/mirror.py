"""Left-right mirror images of PRNet position maps, for flip test-time averaging.

PRNet's UV layout is left-right symmetric to within one texel at 256: the 68 landmark texels
pair up as u + u' in {254, 255, 256} with rows equal to +-1, and the UV face mask is 99.94 %
symmetric under u -> 255 - u (the PRNet assets, `uv_kpt_ind.txt` and `uv_face_mask.png`).
So the position map of a mirrored image is the map of the image with its UV columns reversed
and its x values mirrored; at R = 256 / f the column reversal is the same map u -> 255 - u,
since texel j covers u in [j f, (j + 1) f).

`flip_averaged` runs a predictor on crops and on their mirror images and averages the two
maps in the crops' frame. A network trained without flips (as PRNet is: `face3d.augment`)
has left-right biases of its own; on real photos the average halves its worst failures (a
frontal face read as a 40-60 degree profile) and lowers the 2-D NME against dlib's points
(docs/prnet.md, "Flip averaging").
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

# The iBUG 68-point mirror pairs: landmark k of a mirrored face is landmark
# LANDMARK_MIRROR[k] of the face, mirrored.
LANDMARK_MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60]
    + [67, 66, 65], np.int32)


def mirror_position_map(position_map):
  """The position map of the left-right mirrored image, (..., R, R, 3) -> the same shape.

  UV columns are reversed (the layout's symmetry, module docstring) and x becomes R - 1 - x
  (PRNet's integer-centre pixels: crop column i is centred at x = i); y and z are unchanged.
  Its own inverse. jit-safe.
  """
  pm = jnp.asarray(position_map)
  if pm.ndim < 3 or pm.shape[-1] != 3 or pm.shape[-2] != pm.shape[-3]:
    raise ValueError(f"position_map must be (..., R, R, 3), got shape {pm.shape}")
  r = pm.shape[-2]
  out = pm[..., :, ::-1, :]
  return out.at[..., 0].set((r - 1) - out[..., 0])


def flip_averaged(predict: Callable, crops) -> np.ndarray:
  """Mean of ``predict(crops)`` and the mirror of ``predict(mirrored crops)``.

  Args:
    predict: (B, R, R, 3) images -> (B, R, R, 3) position maps in crop pixels.
    crops: (B, R, R, 3) images.

  Returns:
    (B, R, R, 3) float32 maps in the crops' frame; one call of `predict` on 2B images.
  """
  crops = np.asarray(crops)
  if crops.ndim != 4:
    raise ValueError(f"crops must be (B, R, R, 3), got shape {crops.shape}")
  maps = np.asarray(predict(np.concatenate([crops, crops[:, :, ::-1]])), np.float32)
  n = len(crops)
  return 0.5 * (maps[:n] + np.asarray(mirror_position_map(maps[n:]), np.float32))


def position_maps(predict: Callable, crops, *, flip: bool) -> np.ndarray:
  """``predict(crops)`` as float32 NumPy, flip-averaged (`flip_averaged`) when `flip`: the one
  switch every PRNet inference path shares."""
  if flip:
    return flip_averaged(predict, crops)
  return np.asarray(predict(np.asarray(crops)), np.float32)


__all__ = ["LANDMARK_MIRROR", "flip_averaged", "mirror_position_map", "position_maps"]
