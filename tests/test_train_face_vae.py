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


@pytest.mark.slow
def test_smoke_train_2_steps_resume_and_restore(tmp_path):
  config = configs.get_config("ssim_l2_mask,smoke")
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.num_faces = 32
  config.data.n_test = 4
  config.num_train_steps = 2
  config.figure_every_steps = 2
  config.eval_every_steps = 2
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
