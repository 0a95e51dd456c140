"""PRNet training augmentation (bioface_jax.face3d.augment) against a float64 NumPy transcription
of prnet-spec.md §5, and the consistency of image, map and landmarks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import face3d
from bioface_jax.face3d import augment

EPS32 = float(np.finfo(np.float32).eps)


def _np_forward(p, size):
  """A(x, y) = s Rot(a) (p - c) + c + t, written out by hand in float64."""
  c = (size - 1) / 2.0
  a, s = float(p["angle"]), float(p["scale"])
  t = np.asarray(p["shift"], np.float64)
  m = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
  return m, np.array([c, c]) - m @ np.array([c, c]) + t


def _np_bilinear_zero(img, sx, sy):
  """Bilinear sample with zeros outside (every tap checked separately), float64."""
  h, w, _ = img.shape
  out = np.zeros(sx.shape + (img.shape[-1],))
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  for dy in (0, 1):
    for dx in (0, 1):
      xi, yi = x0 + dx, y0 + dy
      wgt = (1 - np.abs(sx - xi)) * (1 - np.abs(sy - yi))
      ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
      v = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
      out += np.where(ok[..., None], wgt[..., None] * v, 0.0)
  return out


def _np_apply(p, image, posmap, landmarks):
  size = image.shape[0]
  m, b = _np_forward(p, size)
  inv = np.linalg.inv(m)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  q = np.stack([xx - b[0], yy - b[1]], -1) @ inv.T
  img = _np_bilinear_zero(np.asarray(image, np.float64), q[..., 0], q[..., 1])
  img = np.clip(img * np.asarray(p["color"], np.float64), 0, 1)
  if bool(p["erase"]):
    top, left, hh, ww = (int(v) for v in p["box"])
    img[top:top + hh, left:left + ww] = np.asarray(p["noise"], np.float64)[top:top + hh,
                                                                            left:left + ww]

  def values(v):
    v = np.asarray(v, np.float64)
    out = np.concatenate([v[..., :2] @ m.T + b, v[..., 2:3] * float(p["scale"])], -1)
    return np.clip(out, 0, 1.1 * size)

  return img, values(posmap), values(landmarks)


def _sample(seed, size):
  rng = np.random.default_rng(seed)
  image = rng.uniform(size=(size, size, 3)).astype(np.float32)
  posmap = rng.uniform(-0.2 * size, 1.3 * size, size=(size, size, 3)).astype(np.float32)
  landmarks = rng.uniform(0, size, size=(68, 3)).astype(np.float32)
  return image, posmap, landmarks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_apply_matches_numpy_float64(seed):
  size = 32
  image, posmap, landmarks = _sample(seed, size)
  p = augment.sample_params(jax.random.key(seed), size)
  p["erase"] = jnp.asarray(seed != 1)        # both branches of the erasing
  img, pm, lmk = jax.jit(augment.apply_params)(p, image, posmap, landmarks)
  p64 = jax.tree.map(np.asarray, p)
  want_img, want_pm, want_lmk = _np_apply(p64, image, posmap, landmarks)
  # Tolerances from float32 arithmetic: image values in [0, 1] are convex combinations of
  # inputs <= 1 times a colour scale <= 1.4, with sampling positions rounded at ~eps * R
  # (a sample position error dx moves the value by <= dx * max slope, slope <= 1 per pixel):
  # 16 eps * R covers both. Map values: |A p| <= 1.2 * (|p| + R) + R, each term rounded in
  # float32: 8 eps * (|values| + 3R).
  np.testing.assert_allclose(np.asarray(img), want_img, rtol=0, atol=16 * EPS32 * size * 1.4)
  tol = 8 * EPS32 * (np.abs(want_pm).max() + 3 * size)
  np.testing.assert_allclose(np.asarray(pm), want_pm, rtol=0, atol=tol)
  np.testing.assert_allclose(np.asarray(lmk), want_lmk, rtol=0, atol=tol)
  assert img.dtype == jnp.float32 and pm.shape == posmap.shape and lmk.shape == (68, 3)


def test_params_within_the_spec_ranges():
  size = 64
  keys = jax.random.split(jax.random.key(3), 400)
  p = jax.vmap(lambda k: augment.sample_params(k, size))(keys)
  p = jax.tree.map(np.asarray, p)
  assert np.abs(p["angle"]).max() <= math.radians(45) and np.abs(p["angle"]).max() > 0.7
  assert p["scale"].min() >= 0.9 and p["scale"].max() <= 1.2
  assert np.abs(p["shift"]).max() <= 0.1 * size
  assert p["color"].min() >= 0.6 and p["color"].max() <= 1.4
  assert 0.4 < p["erase"].mean() < 0.6             # p = 0.5, 400 draws: 5 sigma = 0.125
  top, left, hh, ww = p["box"].T
  assert hh.min() >= round(0.1 * size) and hh.max() <= round(0.4 * size)
  assert (top >= 0).all() and (top + hh <= size).all() and (left + ww <= size).all()
  assert p["noise"].min() >= 0 and p["noise"].max() <= 1


@pytest.mark.parametrize("size", [64, 256])
def test_landmarks_of_transformed_map_equal_transformed_landmarks(size):
  """The map's values move with the image; reading landmarks (gather at 256, bilinear below,
  an affine rule, so it commutes with the affine value transform) gives the moved landmarks.
  Map values in [0.3 R, 0.7 R] stay inside [0, 1.1 R] under every allowed transform (no clip)."""
  rng = np.random.default_rng(size)
  posmap = rng.uniform(0.3 * size, 0.7 * size, size=(2, size, size, 3)).astype(np.float32)
  landmarks = np.asarray(face3d.landmarks_from_position_map(posmap))
  batch = dict(image=rng.uniform(size=(2, size, size, 3)).astype(np.float32), posmap=posmap,
               landmarks=landmarks, has_dense=np.ones(2, np.float32))
  out = jax.jit(augment.augment_batch)(jax.random.key(7), batch)
  got = np.asarray(face3d.landmarks_from_position_map(out["posmap"]))
  assert np.abs(out["landmarks"] - landmarks).max() > 1.0          # it did move them
  # Both sides are float32 affine maps of the same values: 8 eps * (|values| + 3R).
  np.testing.assert_allclose(got, np.asarray(out["landmarks"]), rtol=0,
                             atol=8 * EPS32 * 4 * size)
  np.testing.assert_array_equal(out["has_dense"], batch["has_dense"])


def test_image_moves_with_the_map():
  """A bright dot at a landmark's pixel lands where the transformed landmark says (to within
  the bilinear spread of one pixel), for a pure rotation + shift + scale without colour."""
  size = 64
  image = np.zeros((size, size, 3), np.float32)
  image[20, 40] = 1.0
  lmk = np.zeros((68, 3), np.float32)
  lmk[:, :2] = (40.0, 20.0)
  p = augment.sample_params(jax.random.key(11), size)
  p.update(color=jnp.ones(3), erase=jnp.asarray(False), angle=jnp.asarray(0.5),
           scale=jnp.asarray(1.0), shift=jnp.array([3.0, -5.0]))
  img, _, out = augment.apply_params(p, image, np.zeros_like(image), lmk)
  v, u = np.unravel_index(np.argmax(np.asarray(img)[..., 0]), (size, size))
  assert abs(u - float(out[0, 0])) <= 1 and abs(v - float(out[0, 1])) <= 1


def test_config_validation_and_bad_batch():
  with pytest.raises(ValueError, match="scale"):
    augment.AugmentConfig(scale=(1.2, 0.9))
  with pytest.raises(ValueError, match="unknown augmentation fields"):
    augment.AugmentConfig.from_mapping({"flip": True})
  with pytest.raises(ValueError, match=r"\(B, R, R, 3\)"):
    augment.augment_batch(jax.random.key(0), dict(image=np.zeros((2, 8, 6, 3)),
                                                  posmap=np.zeros((2, 8, 6, 3)),
                                                  landmarks=np.zeros((2, 68, 3))))


def test_task_switch_on_for_training_off_for_eval():
  from train import prnet_task
  from train.configs import prnet as prnet_configs
  cfg = prnet_configs.get_config("smoke")
  assert prnet_task.augment_config(cfg) == augment.AugmentConfig()
  cfg.augment.enabled = False
  assert prnet_task.augment_config(cfg) is None
