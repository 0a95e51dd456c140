"""End-to-end SDPS training on the real `smoke` configs: stage 1 (LCNet), stage 2 (NENet on the
frozen LCNet), FusedNet; 2 steps each, restore, resume (4 fake CPU devices)."""

import jax
import numpy as np
import pytest

from bioface_jax import train_lib
from train import sdps_task
from train.configs import sdps as configs


def _config(variant, tmp_path, **overrides):
  c = configs.get_config(variant)
  c.data.cache_dir = str(tmp_path / "cache")
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


def _equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)))


@pytest.fixture(scope="module")
def lcnet_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("sdps")
  c = _config("smoke", tmp)
  state, history = train_lib.train(sdps_task.make_task(c), c, tmp / "lcnet")
  return tmp, c, state, history


def test_lcnet_train_restore_resume(lcnet_run):
  tmp, c, state, history = lcnet_run
  assert [r["step"] for r in history] == [1, 2]
  assert all(np.isfinite(r["loss"]) for r in history) and "eval/dir_err_deg" in history[-1]
  assert (tmp / "lcnet" / "figures" / "step_000002.png").is_file()
  run = sdps_task.restore_run(tmp / "lcnet")
  assert run.step == 2 and run.model.net == "lcnet" and _equal(run.params, state["params"])
  # Interrupted after step 1 and resumed: the same parameters as the straight run.
  c1 = _config("smoke", tmp, num_train_steps=1, figure_every_steps=0, eval_every_steps=0)
  task = sdps_task.make_task(c1)
  train_lib.train(task, c1, tmp / "resumed")
  c2 = _config("smoke", tmp, figure_every_steps=0, eval_every_steps=0)
  resumed, hist = train_lib.train(sdps_task.make_task(c2), c2, tmp / "resumed")
  assert [r["step"] for r in hist] == [2] and _equal(resumed["params"], state["params"])


def test_nenet_on_frozen_lcnet(lcnet_run):
  tmp, _, lc_state, _ = lcnet_run
  c = _config("smoke,nenet", tmp, lcnet_workdir=str(tmp / "lcnet"), figure_every_steps=0)
  state, history = train_lib.train(sdps_task.make_task(c), c, tmp / "nenet")
  assert all(np.isfinite(r["loss"]) for r in history) and "eval/mae_deg" in history[-1]
  assert _equal(state["lcnet_params"], lc_state["params"])  # stage 1 stays frozen
  run = sdps_task.restore_run(tmp / "nenet")
  assert run.model.net == "nenet" and run.lcnet_model.net == "lcnet"
  assert _equal(run.params, state["params"]) and _equal(run.lcnet_params, lc_state["params"])
  # The benchmark's light swaps: NENet on the true lights is NENet fed those lights directly;
  # on "another" LCNet run (here the same one) it is the default SDPS-Net output.
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  from eval.ps_methods import Method  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (2, 4, 16, 16, 3)).astype(np.float32)
  mask = np.ones((2, 16, 16), np.float32)
  dirs = np.tile(np.asarray([0.0, 0.6, 0.8], np.float32), (2, 4, 1))
  ints = np.full((2, 4), 1.5, np.float32)
  direct = sdps.predict(run.params, {"images": images, "mask": mask, "dirs": dirs,
                                     "intensities": ints}, run.model)["normals"]
  true = Method("t", run, "true")(images, mask, dirs, ints)
  assert "dirs" not in true
  # Same network and inputs, two compilations (jitted batch vs direct call): they may sum in
  # another order (the sub-pixel transposed convolutions), so unit normals agree to float32
  # rounding through ~20 layers (observed ~5e-7), not bitwise. Fed other lights, normals
  # move by O(0.1-1): 1e-4 (~800 float32 eps) separates the two cases by three orders.
  np.testing.assert_allclose(true["normals"], np.asarray(direct), rtol=0, atol=1e-4)
  swapped = Method("s", run, sdps_task.restore_run(tmp / "lcnet"))(images, mask, dirs, ints)
  default = Method("d", run)(images, mask, dirs, ints)
  assert _equal(swapped, default)
  with pytest.raises(ValueError, match="lcnet run"):
    Method("x", run, run)
  # Mirror averaging (eval.ps_benchmark --mirror): the answer on the mirrored scene is the
  # mirrored answer, exactly (the same two network outputs, added in the other order).
  from bioface_jax.models import sdps_mirror  # pylint: disable=g-import-not-at-top
  mirrored = Method("m", run, mirror=True)
  a = mirrored(images, mask, dirs, ints)
  b = mirrored(images[:, :, :, ::-1], mask[:, :, ::-1], dirs * [-1, 1, 1], ints)
  np.testing.assert_array_equal(b["normals"],
                                np.asarray(sdps_mirror.mirror_normal_map(a["normals"])))
  np.testing.assert_array_equal(b["dirs"], np.asarray(sdps_mirror.mirror_vectors(a["dirs"])))


def test_warm_start_from_a_run(lcnet_run):
  tmp, _, lc_state, _ = lcnet_run
  task = sdps_task.SDPSTask.create(_config("smoke", tmp, init_workdir=str(tmp / "lcnet")))
  state = task.init(jax.random.key(1), None)
  assert task.config.init_step == 2 and _equal(state["params"], lc_state["params"])
  with pytest.raises(ValueError, match="init_workdir"):  # another network
    sdps_task.make_task(_config("smoke,ds", tmp, init_workdir=str(tmp / "lcnet")))


def test_nenet_needs_an_lcnet_run(tmp_path):
  with pytest.raises(ValueError, match="lcnet_workdir"):
    sdps_task.make_task(_config("smoke,nenet", tmp_path))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    sdps_task.make_task(_config("smoke,nenet", tmp_path, lcnet_workdir=str(tmp_path / "x")))


@pytest.mark.slow  # ~60 s of compiling on 2 cores; CI runs it
def test_fused_lighter_variant_trains_and_restores(lcnet_run):
  tmp = lcnet_run[0]
  c = _config("smoke,fused,ds,res", tmp, figure_every_steps=0, eval_every_steps=0)
  state, history = train_lib.train(sdps_task.make_task(c), c, tmp / "fused")
  assert all(np.isfinite(r["loss"]) for r in history)
  run = sdps_task.restore_run(tmp / "fused")
  assert run.model.net == "fused" and run.model.conv == "depthwise_separable"
  assert _equal(run.params, state["params"])


def test_config_variants():
  assert configs.get_config("lcnet,paper").num_train_steps == 53258
  assert configs.get_config("nenet,paper").num_train_steps == 53258
  g = configs.get_config("fused,gpu")
  assert (g.data.size, g.model.width_multiplier, g.data.num_images, g.batch_size) == (
      128, 1.0, 32, 16)
  m = configs.get_config("nenet,ds,res,w0.5,ints_strat,faces_mix")
  assert (m.model.conv, m.model.residual, m.model.width_multiplier, m.data.strategy,
          m.data.mix.face) == ("depthwise_separable", True, 0.5, "stratified", 0.25)
  f = configs.get_config("nenet,faces")
  assert f.data.eval_set == "faces" and f.data.mix.face / sum(f.data.mix.values()) == 0.8
  assert min(f.data.ambient, f.data.tint, f.data.shot_noise) > 0
  with pytest.raises(ValueError, match="unknown"):
    configs.get_config("lcnet,turbo")
