"""Tests for the camera processing chain (`data.synth.camera_chain`).

References: the IEC 61966-2-1 sRGB curve re-typed in float64, block means, the variance of
shot + read noise, the second moments of a disc and a line, Reinhard's curve at mid grey.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bioface_jax import physics
from data.synth import camera_chain as cc


def _srgb64(x):
  x = np.asarray(x, np.float64)
  return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0) ** (1 / 2.4) - 0.055)


def _knobs(**changes):
  knobs = cc.neutral_camera()
  knobs.update(changes)
  return knobs


def _agree_except_ties(out, reference_float):
  """uint8 `out` equals round(255 clip(reference)) except where the float64 value lies within
  1e-4 of a rounding tie (float32 rounding may fall either way there)."""
  code = np.clip(reference_float, 0, 1) * 255
  tie = np.abs(code - np.floor(code) - 0.5) < 1e-4
  expected = np.round(code).astype(np.uint8)
  assert np.array_equal(out[~tie], expected[~tie])
  assert np.all(np.abs(out[tie].astype(int) - expected[tie]) <= 1)


def test_neutral_knobs_reproduce_the_exact_srgb_path():
  rng = np.random.default_rng(0)
  x = (rng.uniform(-0.05, 1.3, (48, 40, 3)) ** 2 * np.sign(rng.normal(size=(48, 40, 3)) + 2)
       ).astype(np.float32)
  x[0, :3] = [0.0, 0.0031308, 1.0]
  out = cc.apply_camera(x, cc.neutral_camera(), None)
  assert out.dtype == np.uint8 and out.shape == x.shape
  _agree_except_ties(out, _srgb64(x))
  _agree_except_ties(out, np.asarray(physics.srgb_encode(x), np.float64))
  # The generator's path so far: physics.to_uint8 (exact sRGB, clip, round).
  assert np.abs(out.astype(int) - physics.to_uint8(x).astype(int)).max() <= 1


def test_area_downsampling_is_the_block_mean_in_linear_light():
  rng = np.random.default_rng(1)
  x = rng.uniform(0, 1, (32, 24, 3)).astype(np.float32)
  small = cc.area_downsample(x, (8, 6))
  expected = x.astype(np.float64).reshape(8, 4, 6, 4, 3).mean((1, 3))
  np.testing.assert_allclose(small, expected, rtol=1e-6)
  out = cc.apply_camera(x, cc.neutral_camera(), None, out_size=(8, 6))
  _agree_except_ties(out, _srgb64(expected))
  odd = cc.area_downsample(np.full((30, 30, 3), 0.25, np.float32), 13)  # Pillow's box filter
  np.testing.assert_allclose(odd, 0.25, rtol=1e-6)


def test_exposure_and_white_balance_are_linear_gains():
  rng = np.random.default_rng(2)
  x = rng.uniform(0, 0.2, (16, 16, 3)).astype(np.float32)
  gains = [1.1, 0.95, 0.9]
  out = cc.apply_camera(x, _knobs(exposure_ev=1.0, wb_gains=gains), None)
  _agree_except_ties(out, _srgb64(2.0 * x.astype(np.float64) * np.array(gains)))
  for i in range(50):
    knobs = cc.sample_camera(np.random.default_rng(i))
    assert np.dot(knobs["wb_gains"], [0.2126, 0.7152, 0.0722]) == pytest.approx(1.0)


def test_shot_and_read_noise_have_the_modelled_variance():
  shot, read, level = 2e-3, 4e-3, 0.3
  x = np.full((128, 128, 3), level, np.float32)
  out = cc.apply_camera(x, _knobs(shot=shot, read=read, tone="gamma", gamma=1.0),
                        np.random.default_rng(3))
  values = out.astype(np.float64) / 255
  var = shot * level + read**2
  # 8-bit rounding adds 1 / (12 * 255^2); the sample variance of 49k values is within ~1 %.
  assert values.var() == pytest.approx(var + 1 / (12 * 255**2), rel=0.05)
  assert values.mean() == pytest.approx(level, abs=2e-3)
  with pytest.raises(ValueError, match="rng"):
    cc.apply_camera(x, _knobs(shot=shot), None)


def test_blur_kernels_have_the_moments_of_a_disc_and_a_line():
  r = 3.0
  disc = cc.blur_kernel(r, 0.0, 0.0).astype(np.float64)
  k = disc.shape[0] // 2
  yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
  assert disc.sum() == pytest.approx(1.0)
  # A uniform disc has E[x^2 + y^2] = r^2 / 2; integrating it over unit pixels adds 2 / 12.
  assert (disc * (xx**2 + yy**2)).sum() == pytest.approx(r * r / 2 + 1 / 6, rel=0.01)
  length = 6.0
  line = cc.blur_kernel(0.0, length, 0.0).astype(np.float64)
  k = line.shape[0] // 2
  yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
  # A uniform segment has variance L^2 / 12; the bilinear splat of its samples adds
  # E[f (1 - f)] = 1 / 6 for uniformly spread fractional positions f.
  assert (line * xx**2).sum() == pytest.approx(length**2 / 12 + 1 / 6, rel=0.015)
  assert (line * yy**2).sum() == pytest.approx(0.0, abs=1e-9)
  vertical = cc.blur_kernel(0.0, length, 90.0).astype(np.float64)
  assert (vertical * yy**2).sum() == pytest.approx(length**2 / 12 + 1 / 6, rel=0.015)
  assert cc.blur_kernel(0.0, 0.0, 0.0) is None


def test_blur_keeps_a_flat_image_flat_and_softens_an_edge():
  x = np.full((40, 40, 3), 0.4, np.float32)
  flat = cc.apply_camera(x, _knobs(defocus=2.0, motion_length=3.0, motion_angle=30.0), None)
  assert np.ptp(flat) == 0
  x[:, 20:] = 0.0
  sharp = cc.apply_camera(x, cc.neutral_camera(), None)
  soft = cc.apply_camera(x, _knobs(defocus=2.0), None)
  assert (np.ptp(sharp[20, 15:25, 0]) == np.ptp(soft[20, 15:25, 0])
          and (soft[20, 17:23, 0] != sharp[20, 17:23, 0]).sum() >= 4)


def test_tone_curves_are_monotone_and_filmic_keeps_mid_grey():
  x = np.linspace(0, 1, 1001, dtype=np.float32)[:, None, None] * np.ones((1, 1, 3), np.float32)
  for tone in cc.TONES:
    for contrast in (-0.2, 0.0, 0.5):
      y = cc.tone_curve(x, _knobs(tone=tone, contrast=contrast, gamma=2.4, filmic_shoulder=3.0))
      assert np.all(np.diff(y[:, 0, 0]) >= -1e-7)
      assert y[0, 0, 0] == pytest.approx(0, abs=1e-6) and y[-1, 0, 0] == pytest.approx(1, abs=1e-6)
  grey = np.full((1, 1, 3), 0.18, np.float32)
  for k in (0.5, 4.0):  # The filmic style exposes lower by the headroom, the curve undoes it.
    y = cc.tone_curve(grey / cc.filmic_headroom(k), _knobs(tone="filmic", filmic_shoulder=k))
    assert y[0, 0, 0] == pytest.approx(_srgb64(0.18), abs=1e-5)
    out = cc.apply_camera(grey, _knobs(tone="filmic", filmic_shoulder=k), None)
    assert out[0, 0, 0] == np.round(_srgb64(0.18) * 255)
  assert cc.tone_curve(grey, _knobs(tone="gamma", gamma=2.0))[0, 0, 0] == pytest.approx(
      np.sqrt(0.18), abs=1e-6)
  lifted = cc.tone_curve(np.zeros((1, 1, 3), np.float32), _knobs(black=0.03))
  assert lifted[0, 0, 0] == pytest.approx(0.03)


def test_saturation_keeps_grey_and_scales_chroma():
  x = np.array([[[0.2, 0.2, 0.2], [0.3, 0.1, 0.05]]], np.float32)
  lin = cc.apply_camera(x, _knobs(saturation=0.0, tone="gamma", gamma=1.0), None)
  lum = x[0, 1] @ [0.2126, 0.7152, 0.0722]
  np.testing.assert_array_equal(lin[0, 0], np.round(0.2 * 255))
  np.testing.assert_allclose(lin[0, 1], np.round(lum * 255), atol=1)


def test_jpeg_quality_and_chroma_subsampling_are_applied():
  x = np.zeros((32, 32, 3), np.float32)
  x[::2, :, 0] = 0.8  # one-pixel red / green stripes: chroma detail
  x[1::2, :, 1] = 0.8
  base = cc.apply_camera(x, cc.neutral_camera(), None).astype(int)
  err = {}
  for q, sub in ((95, "4:4:4"), (95, "4:2:0"), (30, "4:4:4")):
    out = cc.apply_camera(x, _knobs(jpeg_quality=q, jpeg_subsampling=sub), None)
    err[q, sub] = np.abs(out.astype(int) - base).mean()
  assert err[95, "4:4:4"] < 2 and err[95, "4:2:0"] > 20
  assert err[30, "4:4:4"] > err[95, "4:4:4"]
  with pytest.raises(ValueError, match="subsampling"):
    cc.apply_camera(x, _knobs(jpeg_quality=90, jpeg_subsampling="4:1:1"), None)


def test_sampled_knobs_are_json_deterministic_and_run():
  rng = np.random.default_rng(5)
  x = rng.uniform(0, 0.6, (64, 64, 3)).astype(np.float32)
  tones = set()
  for i in range(30):
    knobs = cc.sample_camera(np.random.default_rng([9, i]))
    assert json.loads(json.dumps(knobs)) == knobs
    assert knobs == cc.sample_camera(np.random.default_rng([9, i]))
    assert set(knobs) == set(cc.neutral_camera())
    tones.add(knobs["tone"])
    out = cc.apply_camera(x, knobs, np.random.default_rng(i), out_size=32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  assert tones == set(cc.TONES)
  with pytest.raises(ValueError, match="knobs lack"):
    cc.apply_camera(x, {"tone": "srgb"}, None)
  with pytest.raises(ValueError, match="out_size"):
    cc.apply_camera(x, cc.neutral_camera(), None, out_size=128)
  with pytest.raises(ValueError, match="tones"):
    cc.CameraOptions(tones=(1.0, 0.5, 0.0))
