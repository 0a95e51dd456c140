"""Tests for the real-photo judge (`eval.real_judge`) and its per-crop scores
(`eval.real_scores`)."""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import physics
from eval import real_judge as rj
from eval import real_scores as rs


def test_vae_crop_frames_the_biofacenet_crop_as_the_training_scenes():
  box = (100, 80, 172, 152)  # a 72-pixel BioFaceNet crop
  left, top, right, bottom = rs.vae_box(box, 400, 300)
  assert right - left == bottom - top == 100  # 72 / 0.72
  assert (left + right) / 2 == pytest.approx(136)  # same centre column
  assert 116 - top == pytest.approx(0.45 * 100, abs=0.5)  # crop centre row at 0.45 of the side


def test_padded_crop_repeats_the_edge_outside_the_photo():
  image = np.zeros((20, 30, 3), np.uint8)
  image[:, :, 0] = np.arange(30)[None, :] * 8
  crop = rs.crop_padded(image, (-10, -5, 10, 15), 20)
  assert crop.shape == (20, 20, 3)
  np.testing.assert_array_equal(crop[:, :10, 0], 0.0)  # left of the photo: its first column
  np.testing.assert_allclose(crop[0, 10:, 0], np.arange(10) * 8 / 255, atol=1e-6)


def test_pigment_share_outside_a_region():
  fmel = np.full((4, 4), -1.0, np.float32)  # -1 = no melanin
  fmel[:2] = 0.5
  fblood = np.zeros((4, 4), np.float32)
  region = np.zeros((4, 4), bool)
  region[:2] = True
  mel, hb = rs.pigment_share_outside(fmel, fblood, region)
  assert mel == pytest.approx(0.0, abs=1e-5)  # f = -1 is 0.43 * 0.01^3 melanin
  assert hb == pytest.approx(0.5)


def test_illuminant_cct_of_daylight_and_tungsten(spectra):
  weights = np.zeros((2, 14), np.float32)
  weights[0, 1] = 1.0  # daylight table at t = 3.5 (6500 K)
  weights[1, 0] = 1.0  # CIE A, 2856 K
  cct = rs.illuminant_cct(spectra, weights, np.array([3.5, 3.5], np.float32))
  assert cct[0] == pytest.approx(6500, rel=0.02)
  assert cct[1] == pytest.approx(2856, rel=0.02)


def test_vae_regions_lie_inside_the_crop_and_do_not_overlap():
  regions = rs.vae_regions(64)
  assert all(r.any() for r in regions.values())
  assert not (regions["face"] & regions["hair"]).any()
  assert not (regions["face"] & regions["corners"]).any()
  rows = np.nonzero(regions["hair"].any(1))[0]
  face_rows = np.nonzero(regions["face"].any(1))[0]
  assert rows.max() <= face_rows.min() + 2  # the band sits on top of the face


def test_summaries():
  rows = [dict(a=1.0), dict(a=-2.0), dict(a=3.0), dict(b=1.0)]
  assert rj._summary(rows, "a") == "1.000"
  assert rj._summary(rows, "a", "positive") == "+1.000 (67% > 0)"
  assert rj._summary(rows, "missing") == "-"
  assert physics.index_to_cct(3.5) == 6500.0


def test_vae_crop_reads_float_and_uint8_photos_alike():
  """Photos arrive as [0, 1] floats (`bioface_jax.photo.read`); a uint8 cast would zero them."""
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (40, 30, 3)).astype(np.uint8)
  box = (-5, 2, 25, 32)
  a = rs.crop_padded(image, box, 10)
  b = rs.crop_padded(image.astype(np.float32) / 255.0, box, 10)
  np.testing.assert_array_equal(a, b)
  assert a.max() > 0.5


def test_float_crop_keeps_sub_quantum_values():
  """The crop is area-averaged in float: values between two 8-bit levels survive."""
  image = np.full((8, 8, 3), 0.5 / 255.0, np.float32)
  crop = rs.crop_padded(image, (-2, -2, 10, 10), 4)
  np.testing.assert_allclose(crop, 0.5 / 255.0, rtol=1e-6)


def test_synthetic_sets_follow_the_models_training_world():
  """The judge scores a model on (and takes its mean-image baseline from) its own world."""
  from types import SimpleNamespace
  scenes = SimpleNamespace(run_config={"data": {"seed": 3, "world": "scenes",
                                                "scene": {"camera": "srgb"}}})
  legacy = SimpleNamespace(run_config={"data": {"seed": 1}})
  assert rj.training_world(scenes) == (3, "scenes", {"camera": "srgb"})
  assert rj.training_world(legacy) == (1, "faces", {})
  a, ma = rj.synthetic_scenes(np.arange(2), 32, 0, "scenes", {"camera": "srgb"})
  b, mb = rj.synthetic_scenes(np.arange(2), 32, 0, "faces")
  assert a.shape == b.shape == (2, 32, 32, 3) and ma.shape == (2, 32, 32)
  assert np.abs(a - b).mean() > 0.02  # two different worlds, not the faces world twice


def test_vae_rows_score_the_face_and_the_authors_composite():
  """An output wrong only in the corner squares is perfect over the face ellipse (the SSIM
  windows there never reach the corners) and not over the whole crop; the composite with a
  mask of ones is the raw output, with a mask of zeros the input itself."""
  from types import SimpleNamespace
  rng = np.random.default_rng(0)
  x = rng.uniform(0.2, 0.8, (2, 64, 64, 3)).astype(np.float32)
  corners = rs.vae_regions(64)["corners"]
  wrong = np.where(corners[None, :, :, None], 1.0 - x, x)
  for m in (1.0, 0.0):
    mask = np.full(x.shape[:3], m, np.float32)
    composite = wrong * mask[..., None] + x * (1 - mask[..., None])
    model = SimpleNamespace(apply=lambda images, c=composite, k=mask, mirror=False: dict(
        image=wrong[:len(images)], mask=k[:len(images)], composite=c[:len(images)]))
    rows, _ = rs.vae_rows(model, x, mean_image=x.mean(0))
    for row in rows:
      assert row["ssim"] < 0.95 and abs(row["ssim_face"] - 1.0) < 1e-5
      assert (abs(row["ssim_composite"] - 1.0) < 1e-5) == (m == 0.0)
      # A mask of zeros composites the mean image away too: the baseline is perfect.
      assert (abs(row["ssim_composite_mean_image"] - 1.0) < 1e-5) == (m == 0.0)
      assert row["ssim_face_mean_image"] < 0.9


def test_figure_draws_every_column_of_the_face_vae(tmp_path):
  """The figure is a PNG with one row per face; the VAE columns include the composite."""
  import matplotlib.image as mpimg  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
  out = {"image": x[::-1], "mask": x[..., 0], "composite": x}
  path = tmp_path / "judge.png"
  rj.save_figure(path, ["a.jpg", "b.jpg"], None, None, x, out, rows=2)
  wide = mpimg.imread(path)
  rj.save_figure(path, ["a.jpg", "b.jpg"], None, None, x, {"image": x}, rows=2)
  narrow = mpimg.imread(path)
  assert wide.shape[0] == narrow.shape[0] and wide.shape[1] > 1.5 * narrow.shape[1]
  # A refined run also shows the network's own reconstruction: one column more.
  rj.save_figure(path, ["a.jpg", "b.jpg"], None, None, x, dict(out, image_network=x), rows=2,
                 heading="refined")
  assert mpimg.imread(path).shape[1] > 1.1 * wide.shape[1]
