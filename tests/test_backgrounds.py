"""Tests for the procedural backgrounds (`data.synth.backgrounds`)."""

from __future__ import annotations

import numpy as np
import pytest

from data.synth import backgrounds as bg


def _one_hot(kind):
  return tuple(float(k == kind) for k in bg.KINDS)


@pytest.mark.parametrize("kind", bg.KINDS)
def test_every_kind_is_deterministic_finite_and_behind_the_subject(kind):
  options = bg.BackgroundOptions(kinds=_one_hot(kind))
  out = bg.sample_background(np.random.default_rng(3), 48, options)
  again = bg.sample_background(np.random.default_rng(3), 48, options)
  assert out["kind"] == kind
  assert out["linear"].shape == (48, 48, 3) and out["linear"].dtype == np.float32
  assert out["depth"].shape == (48, 48) and out["depth"].dtype == np.float32
  np.testing.assert_array_equal(out["linear"], again["linear"])
  assert np.isfinite(out["linear"]).all() and out["linear"].min() >= 0
  assert out["depth"].max() < 0  # everything lies behind the face (depth ~ 0)
  lum = out["linear"] @ np.array([0.2126, 0.7152, 0.0722])
  assert 0.003 < lum.mean() < 3 and lum.std() > 0


def test_depth_of_field_removes_fine_detail():
  sharp_opts = bg.BackgroundOptions(kinds=_one_hot("city"), p_sharp=1.0, p_perspective=0.0)
  blur_opts = bg.BackgroundOptions(kinds=_one_hot("city"), p_sharp=0.0, aperture=(0.1, 0.1),
                                   p_perspective=0.0)
  sharp = bg.sample_background(np.random.default_rng(5), 64, sharp_opts)
  soft = bg.sample_background(np.random.default_rng(5), 64, blur_opts)
  assert sharp["aperture"] == 0 and soft["aperture"] == 0.1

  def detail(img):
    return np.abs(np.diff(img, axis=1)).mean() + np.abs(np.diff(img, axis=0)).mean()
  assert detail(soft["linear"]) < 0.5 * detail(sharp["linear"])
  # The blur keeps the mean colour (it only redistributes light).
  np.testing.assert_allclose(soft["linear"].mean((0, 1)), sharp["linear"].mean((0, 1)),
                             rtol=0.1)


def test_bad_options_and_sizes_are_rejected():
  with pytest.raises(ValueError, match="kinds"):
    bg.BackgroundOptions(kinds=(1.0, 0.0))
  with pytest.raises(ValueError, match="size"):
    bg.sample_background(np.random.default_rng(0), 4)
