"""Exports and imported weights as training starting points and in the eval entry points:
`pretrained.warm_start`, ``--config.init_workdir`` in the PRNet / face VAE / SDPS tasks, and the
tasks' restore functions on export directories (no framework needed: exports are written here
from random variables)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import pretrained
from bioface_jax.models import face_vae, prnet, sdps
from bioface_jax.pretrained import warm_start


def _random(tree, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(0, 1, s.shape).astype(np.float32), tree)


def _imported_export(directory, name, variables, config, size):
  """An export as train.import_weights writes it (float32, no run config)."""
  pretrained.save(directory, name, variables, config, input_size=size, dtype=np.float32,
                  source="test", extra_meta={"imported": {"source": "test"}})
  return directory


def test_like_takes_the_values_and_names_mismatches():
  fresh = {"params": {"a": jnp.zeros((2, 3)), "b": {"c": jnp.zeros(4)}}}
  loaded = {"params": {"a": np.ones((2, 3)), "b": {"c": np.arange(4.0)}}}
  out = warm_start.like(fresh, loaded, "W")
  np.testing.assert_array_equal(out["params"]["b"]["c"], np.arange(4.0))
  assert out["params"]["a"].dtype == jnp.float32
  bad = {"params": {"a": np.ones((3, 3)), "d": np.ones(1)}}
  with pytest.raises(ValueError) as info:
    warm_start.like(fresh, bad, "W")
  message = str(info.value)
  assert "['params']['b']['c']" in message and "['params']['d']" in message
  assert "['params']['a'] (3, 3) (this run: (2, 3))" in message


def test_face_vae_task_starts_from_an_export(tmp_path):
  from train import face_vae_task  # pylint: disable=g-import-not-at-top
  from train.configs import face_vae as configs  # pylint: disable=g-import-not-at-top
  config = configs.get_config("ssim_l2_mask,smoke")
  model = face_vae_task.model_config(config)
  shape = (2, model.input_size, model.input_size, 3)
  params, stats = jax.eval_shape(lambda: face_vae.init(jax.random.key(0), shape, model))
  variables = {"params": _random(params, 1), "batch_stats": _random(stats, 2)}
  export = _imported_export(tmp_path / "vae", "face_vae", variables, model, model.input_size)
  config.init_workdir = str(export)
  task = face_vae_task.FaceVAETask(config, model, None, None, None,
                                   warm_start.read("face_vae", export).variables)
  state = jax.jit(task.init)(jax.random.key(0), {"image": jnp.zeros(shape)})
  for k in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state[k]), variables[k])
  # The eval entry points read the export too; imported weights get the paper's run config.
  p, s, m, run, step = face_vae_task.restore_for_inference(export)
  assert m == model and step == 0 and run.model.input_size == 144
  jax.tree.map(np.testing.assert_array_equal, p, variables["params"])
  # Another network: the error names what differs.
  other = face_vae_task.FaceVAETask(config, dataclasses.replace(model, latent_dim=8), None,
                                    None, None, task.init_variables)
  with pytest.raises(ValueError,
                     match=r"\[.hidden.\]\[.kernel.\] \(64, 16\) \(this run: \(64, 8\)\)"):
    jax.eval_shape(other.init, jax.random.key(0), {"image": jnp.zeros(shape)})


def test_prnet_task_starts_from_an_export(tmp_path):
  from train import prnet_task  # pylint: disable=g-import-not-at-top
  from train.configs import prnet as configs  # pylint: disable=g-import-not-at-top
  config = configs.get_config("smoke")
  model = prnet_task.model_config(config)
  shape = (1, model.input_size, model.input_size, 3)
  params, stats = jax.eval_shape(lambda: prnet.init(jax.random.key(0), shape, model))
  variables = {"params": _random(params, 3), "batch_stats": _random(stats, 4)}
  export = _imported_export(tmp_path / "prnet", "prnet", variables, model, model.input_size)
  config.init_workdir = str(export)
  task = prnet_task.PRNetTask(config, model, range(32), None, None,
                              warm_start.read("prnet", export).variables)
  # The initial state's variables, without compiling the network: eval_shape traces init and
  # the loaded arrays enter as constants; checked by value through a jitted identity.
  state = jax.jit(lambda: task.init(jax.random.key(0), {"image": jnp.zeros(shape)})
                  ["params"]["decoder"])()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state),
               variables["params"]["decoder"])
  p, s, m, run, _ = prnet_task.restore_for_inference(export)
  assert m == model and run.data.size == model.input_size
  jax.tree.map(np.testing.assert_array_equal, s, variables["batch_stats"])


def test_sdps_export_as_runs_for_training_and_benchmarks(tmp_path):
  from train import sdps_task  # pylint: disable=g-import-not-at-top
  configs = {"lcnet": sdps.SDPSConfig(net="lcnet", input_size=128),
             "nenet": sdps.SDPSConfig(net="nenet")}
  variables = {part: {"params": _random(jax.eval_shape(
      lambda c=c: sdps.init(jax.random.key(0), (1, 2, 16, 16, 3), c)[0]), i)}
               for i, (part, c) in enumerate(configs.items())}
  export = _imported_export(tmp_path / "sdps", "sdps", variables, configs, 128)
  run = sdps_task.restore_run(export)
  assert run.config.task == "nenet" and run.model == configs["nenet"]
  assert run.lcnet_model == configs["lcnet"] and run.config.lcnet_model.input_size == 128
  lcnet = sdps_task.network_of(run, "lcnet", export)
  assert lcnet.model.net == "lcnet" and lcnet.config.model.width_multiplier == 1.0
  jax.tree.map(np.testing.assert_array_equal, lcnet.params, variables["lcnet"]["params"])
  fused = sdps_task.network_of(run, "fused", export)
  fused_shapes = jax.eval_shape(lambda: sdps.init(
      jax.random.key(0), (1, 2, 16, 16, 3), fused.model)[0])
  assert jax.tree.structure(fused_shapes) == jax.tree.structure(fused.params)
  with pytest.raises(ValueError, match="holds a lcnet network, not nenet"):
    sdps_task.network_of(lcnet, "nenet", export)


def test_biofacenet_task_starts_from_an_export(tmp_path):
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
  from train import biofacenet_task  # pylint: disable=g-import-not-at-top
  from train.configs import biofacenet as configs  # pylint: disable=g-import-not-at-top
  config = configs.get_config("smoke")
  model = biofacenet_task.model_config(config)
  shape = (2, config.data.size, config.data.size, 3)
  params, stats = jax.eval_shape(lambda: biofacenet.init(jax.random.key(0), shape, model))
  variables = {"params": _random(params, 5), "batch_stats": _random(stats, 6)}
  export = tmp_path / "biofacenet"
  pretrained.save(export, "biofacenet", variables, model, input_size=config.data.size,
                  dtype=np.float32, source="test")
  config.init_workdir = str(export)
  task = biofacenet_task.BioFaceNetTask(config, None, None, model, None, None,
                                        init_variables=warm_start.read("biofacenet", export)
                                        .variables)
  state = jax.jit(lambda: task.init(jax.random.key(0), {"image": jnp.zeros(shape)}))()
  for k in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state[k]), variables[k])
  wider = dataclasses.replace(model, base_filters=model.base_filters + 1)
  other = biofacenet_task.BioFaceNetTask(config, None, None, wider, None, None,
                                         init_variables=task.init_variables)
  with pytest.raises(ValueError, match="holds another network"):
    jax.eval_shape(other.init, jax.random.key(0), {"image": jnp.zeros(shape)})
