"""End-to-end face VAE training on the real `smoke` config, on 4 fake CPU devices."""

import jax
import numpy as np
import pytest

from bioface_jax import train_lib
from train import face_vae_task
from train.configs import face_vae as configs


def _params_equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)))


def _smoke_config(tmp_path, steps: int, every: int):
  """The `smoke` H9 config on 32 scenes cached under tmp_path: `steps` steps, evaluation and
  figures every `every` steps (0: never)."""
  config = configs.get_config("ssim_l2_mask,smoke")
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.num_faces = 32
  config.data.n_test = 4
  config.num_train_steps = steps
  config.figure_every_steps = every
  config.eval_every_steps = every
  return config


@pytest.mark.slow
def test_smoke_train_2_steps_resume_and_restore(tmp_path):
  config = _smoke_config(tmp_path, steps=2, every=2)
  task = face_vae_task.make_task(config)
  straight, history = train_lib.train(task, config, tmp_path / "straight")
  assert [row["step"] for row in history] == [1, 2]
  assert all(np.isfinite(row["loss"]) for row in history)
  assert {"loss/kl", "loss/ssim", "loss/l2", "loss/bce", "loss/dice"} <= set(history[0])
  assert "eval/ssim" in history[-1]
  assert (tmp_path / "straight" / "figures" / "step_000002.png").is_file()

  one = config.copy_and_resolve_references()
  one.num_train_steps = 1
  train_lib.train(task, one, tmp_path / "resumed")
  resumed, history = train_lib.train(task, config, tmp_path / "resumed")
  assert [row["step"] for row in history] == [2]
  assert _params_equal(straight["params"], resumed["params"])

  params, batch_stats, model, run_config, step = face_vae_task.restore_for_inference(
      tmp_path / "resumed")
  assert step == 2 and model.input_size == 32 and model.mask_branch
  assert run_config.configuration == "ssim_l2_mask"
  assert _params_equal(params, resumed["params"])
  assert _params_equal(batch_stats, resumed["batch_stats"])


def test_restore_without_checkpoint_names_the_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    face_vae_task.restore_for_inference(tmp_path)


def test_config_names_and_aliases():
  assert configs.get_config("H9").model.losses == ("ssim", "l2")
  assert configs.get_config("H1").model.mask_branch is False
  c = configs.get_config("H6,paper")
  assert (c.model.losses, c.model.mask_branch, c.model.input_size) == (("ssim",), True, 144)
  assert c.learning_rate == 1e-4 and c.model.latent_dim == 512
  assert c.model.bn_momentum == 0.99  # Keras' default, the authors'
  assert configs.get_config("H6,cpu").model.bn_momentum == 0.9  # the documented CPU deviation
  cpu = configs.get_config(None)  # the shipped recipe: the last 3,000 of 16,000 steps at 1e-4
  assert (cpu.num_train_steps, cpu.model.lr_decay_at, cpu.model.lr_decay_factor) == (
      16_000, 13_000, 0.1)
  for preset in ("smoke", "ablation", "paper"):  # the authors' constant rate elsewhere
    assert configs.get_config(preset).model.lr_decay_at == 0
  assert configs.get_config("l1,authors").model.sampling == "authors"
  assert configs.get_config(None).configuration == "ssim_l2_mask"
  assert len({configs.get_config(n).variant for n in configs.CONFIGURATIONS}) == 10
  with pytest.raises(ValueError, match="only H1, H5, H6 and H9"):
    configs.get_config("H3")
  with pytest.raises(ValueError, match="more than one preset"):
    configs.get_config("cpu,smoke")


def _smoke_export(tmp_path, config):
  """A face VAE export with random variables for `config`'s network (a warm-start source)."""
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
  model = face_vae_task.model_config(config)
  shape = (2, model.input_size, model.input_size, 3)
  params, stats = face_vae.init(jax.random.key(3), shape, model)
  # Running statistics unlike the initial ones, so evaluation-mode BatchNorm is not the identity.
  stats = jax.tree.map(lambda s: s + 0.1 * np.abs(np.random.default_rng(0).normal(
      size=s.shape)).astype(np.float32), stats)
  pretrained.save(tmp_path / "export", "face_vae", {"params": params, "batch_stats": stats},
                  model, input_size=model.input_size, dtype=np.float32, source="test",
                  run_config=config.to_dict())
  return tmp_path / "export", params, stats


def test_encoder_only_needs_a_trained_model_and_a_known_part():
  config = configs.get_config("ssim_l2_mask,smoke")
  config.train_part = "encoder"
  with pytest.raises(ValueError, match="init_workdir"):
    face_vae_task.make_task(config)
  config.train_part = "decoder"
  with pytest.raises(ValueError, match="train_part must be one of"):
    face_vae_task.train_part(config)


@pytest.mark.slow
def test_encoder_only_trains_the_deployed_loss_leaves_the_decoders_and_restores(tmp_path):
  from bioface_jax.models import face_vae_loss  # pylint: disable=g-import-not-at-top
  config = _smoke_config(tmp_path, steps=1, every=0)
  export, params, stats = _smoke_export(tmp_path, config)
  config.init_workdir = str(export)
  config.train_part = "encoder"
  task = face_vae_task.make_task(config)
  final, history = train_lib.train(task, config, tmp_path / "run")
  assert set(final["opt_state"][1].mu) == {"encoder"}  # Adam's moments: the encoder's only
  for part in ("image_decoder", "mask_decoder"):
    assert _params_equal(final["params"][part], params[part])
  assert _params_equal(final["batch_stats"], stats)
  assert not _params_equal(final["params"]["encoder"], params["encoder"])
  # The step's loss is the deployed network's (running statistics, z = mean) on its batch, not
  # the training-mode one (batch statistics, sampled z).
  batch = next(iter(task.make_batches(0)))
  model = face_vae_task.model_config(config)
  loss = jax.jit(lambda b, train: face_vae_loss.compute_loss(
      params, stats, b, model, train=train, rng=jax.random.key(1))[0], static_argnums=1)
  deployed, sampled = float(loss(batch, False)), float(loss(batch, True))
  # Same graph and inputs, another compilation and device split: equal up to float32 rounding.
  # Each loss term is a mean of non-negative per-element values (<= 2^15 of them), so a tree
  # reduction adds at most ~15 eps of relative error, and a few such reductions are chained
  # (SSIM windows, the means, the sum of terms): 1e-5 = 170 eps covers them. (Against a float64
  # evaluation this loss is off by 1.9e-7 relative, about 3 eps, on the machine that wrote it.)
  # The training-mode loss differs by more than 1e-3 (over 20x the tolerance on a loss of ~4).
  np.testing.assert_allclose(history[0]["loss"], deployed, rtol=1e-5)
  assert abs(sampled - deployed) > 1e-3
  restored, _, _, run_config, step = face_vae_task.restore_for_inference(tmp_path / "run")
  assert step == 1 and run_config.train_part == "encoder"
  assert _params_equal(restored, final["params"])
