"""The oracle light/camera option (`BioFaceNetConfig.oracle_light_camera`, ladder rung c):
the renderer must use the batch's true illuminant and camera, the head must get no gradient,
bad input must be named, and a 2-step training run on the smoke config must work."""

import numpy as np
import pytest

from tests.test_biofacenet_recovery import EPS32, _batch, _tiny_config


@pytest.mark.slow
def test_oracle_renders_with_the_true_light_and_camera_and_freezes_the_head(spectra, lut):
  import jax
  from bioface_jax import physics
  from bioface_jax.models import biofacenet
  batch = _batch(np.random.default_rng(5))
  cfg = _tiny_config(oracle_light_camera=True)
  assert cfg.needs_truth and not cfg.supervised
  params, stats = biofacenet.init(jax.random.key(1), batch["image"].shape, cfg)
  _, (_, _, out) = biofacenet.compute_loss(params, stats, batch, spectra, lut, cfg, train=False)
  maps = biofacenet.predict(params, stats, batch["image"], cfg)  # the head's own light
  for k in ("weights", "t", "b"):
    np.testing.assert_array_equal(np.asarray(out[k]), batch[k])
    np.testing.assert_array_equal(np.asarray(out[f"head_{k}"]), np.asarray(maps[k]))
  # Independent route: the renderer called directly with the network's maps and the truth.
  ref = physics.render(spectra, lut, maps["fmel"], maps["fblood"], maps["shading"],
                       maps["specular"], batch["weights"], batch["t"], batch["b"])
  # Same float32 operations in the same order: equal up to a few eps of the pixel values.
  np.testing.assert_allclose(np.asarray(out["render"]["linear_srgb"]),
                             np.asarray(ref["linear_srgb"]), rtol=16 * EPS32, atol=1e-7)
  # The true light differs from the head's, so the render does too (the option is effective).
  own = biofacenet.predict(params, stats, batch["image"], cfg, spectra=spectra, lut=lut)
  assert not np.allclose(np.asarray(own["render"]["linear_srgb"]),
                         np.asarray(ref["linear_srgb"]))

  def loss(p):
    return biofacenet.compute_loss(p, stats, batch, spectra, lut, cfg, train=True)[0]

  grads = jax.grad(loss)(params)
  head = jax.tree.leaves(grads["unet"]["head"])
  assert all(np.all(np.asarray(g) == 0) for g in head)  # the loss no longer sees the head
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads["unet"]["decoder_0"]))


def test_oracle_needs_the_true_light_and_camera_and_a_bool(spectra, lut):
  import jax
  from bioface_jax.models import biofacenet
  batch = _batch(np.random.default_rng(6))
  cfg = _tiny_config(oracle_light_camera=True)
  params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, cfg)
  with pytest.raises(KeyError, match="weights"):
    biofacenet.compute_loss(params, stats, {k: v for k, v in batch.items() if k != "weights"},
                            spectra, lut, cfg, train=False)
  with pytest.raises(ValueError, match="oracle_light_camera"):
    _tiny_config(oracle_light_camera="yes")


@pytest.mark.slow
def test_oracle_two_training_steps_on_the_smoke_config(tmp_path):
  from bioface_jax import train_lib
  from train import biofacenet_task
  from train.configs import biofacenet as configs
  config = configs.get_config("smoke")
  assert configs.get_config().model.oracle_light_camera is False  # never on by default
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.num_faces = 24  # 6 held out: eval off (fewer than a batch), 18 for training
  config.num_train_steps = 2
  config.model.oracle_light_camera = True
  _, history = train_lib.train(biofacenet_task.make_task(config), config, tmp_path / "run")
  assert [row["step"] for row in history] == [1, 2]
  assert all(np.isfinite(row["loss"]) for row in history)
