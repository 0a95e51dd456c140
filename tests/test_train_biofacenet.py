"""End-to-end BioFaceNet training on the real `smoke` config (shrunk), on 4 fake CPU devices."""

import dataclasses

import jax
import numpy as np
import pytest
from PIL import Image

from bioface_jax import train_lib
from bioface_jax.models import biofacenet
from bioface_jax.train_lib import parallel
from eval import predict
from train import biofacenet_task
from train import export
from train.configs import biofacenet as configs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  config = configs.get_config("smoke")
  config.data.cache_dir = str(tmp_path_factory.mktemp("synth_cache"))
  config.data.num_faces = 32
  config.batch_size = 8
  config.eval_examples = 8
  config.figure_every_steps = 4
  return config, biofacenet_task.make_task(config)


def _steps(config, n):
  c = config.copy_and_resolve_references()
  c.num_train_steps = n
  return c


def _params_equal(a, b):
  leaves = jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)),
                                        a, b))
  return all(leaves)


@pytest.mark.slow
def test_train_interrupt_resume_restore_and_predict(smoke, tmp_path):
  config, task = smoke
  straight, _ = train_lib.train(task, _steps(config, 4), tmp_path / "straight")
  train_lib.train(task, _steps(config, 2), tmp_path / "resumed")
  resumed, history = train_lib.train(task, _steps(config, 4), tmp_path / "resumed")
  assert [row["step"] for row in history] == [3, 4]
  assert all(np.isfinite(row["loss"]) for row in history)
  assert _params_equal(straight["params"], resumed["params"])
  assert _params_equal(straight["batch_stats"], resumed["batch_stats"])
  assert (tmp_path / "resumed" / "figures" / "step_000004.png").is_file()
  steps = [row["step"] for row in train_lib.read_jsonl(tmp_path / "resumed" / "metrics.jsonl")]
  assert steps == sorted(set(steps)) and steps[-1] == 4

  params, batch_stats, _, run_config, step = biofacenet_task.restore_for_inference(
      tmp_path / "resumed")
  assert step == 4 and run_config.data.size == config.data.size
  assert _params_equal(params, resumed["params"])
  assert _params_equal(batch_stats, resumed["batch_stats"])

  assert export.main(["--workdir", str(tmp_path / "resumed"), "--out", str(tmp_path / "ship")]) == 0
  params16, stats16, _, _, step16 = biofacenet_task.restore_for_inference(tmp_path / "ship")
  assert step16 == 4
  # float16 export: round-to-nearest is within eps16 / 2 relative for normal numbers and
  # half the subnormal spacing (2**-25) absolute below them.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=float(np.finfo(np.float16).eps) / 2, atol=2.0**-25),
      params16, jax.device_get(resumed["params"]))

  photo = tmp_path / "face.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 40, 3), np.uint8)).save(photo)
  assert predict.main([str(photo), "--workdir", str(tmp_path / "ship"),
                       "--out", str(tmp_path / "pred"), "--refine-steps", "2"]) == 0
  maps = np.load(tmp_path / "pred" / "face_maps.npz")
  assert maps["fmel"].shape == (config.data.size,) * 2
  assert np.all(np.isfinite(maps["reconstruction_linear_srgb"]))
  assert (tmp_path / "pred" / "face_decomposition.png").is_file()


def test_predict_without_checkpoint_names_the_problem(tmp_path, capsys):
  (tmp_path / "run").mkdir()
  assert predict.main(["--workdir", str(tmp_path / "run"), "--example", "astronaut",
                       "--out", str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert f"{tmp_path / 'run'} holds no model" in err and "python -m train.biofacenet" in err
  assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def _to_f64(tree):
  return jax.tree.map(
      lambda x: np.asarray(x, np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating)
      else x, tree)


@pytest.mark.slow
def test_same_loss_and_gradients_on_1_and_4_devices(smoke):
  """Sharding must not change the function: 1 and 4 devices give the same loss and gradients.

  Both runs compute in float64 (parameters, batch, spectra, BatchNorm statistics), so the only
  difference between them is the float64 reduction order (the 4-device run sums per-shard
  partials and all-reduces them). Tolerance rule: |g4 - g1| <= 8 * eps32 * max|g64 leaf| per
  leaf (+ a float64 floor for leaves that are zero in exact arithmetic), i.e. float32
  rounding at the leaf's scale while the arithmetic is float64, whose
  rounding is eps32 / eps64 = 2**29 times finer. That leaves room for cancellation by a factor
  of ~1e8 inside a gradient element (the old float32 comparison failed on one Xeon with a
  cancellation of ~2e5), while a sharding bug (per-shard BatchNorm statistics, a missing
  all-reduce, a wrong 1/N) changes gradients by O(1e-2) relative or more.
  """
  config, _ = smoke
  task = biofacenet_task.BioFaceNetTask.create(config)
  batch32 = next(iter(task.make_batches(0)))
  eps32 = float(np.finfo(np.float32).eps)

  with jax.enable_x64(True):
    model64 = dataclasses.replace(task.model, dtype="float64")
    spectra64, lut64, batch = _to_f64(task.spectra), _to_f64(task.lut), _to_f64(batch32)

    def loss_and_grads(state, batch):
      def loss_fn(params):
        return biofacenet.compute_loss(params, state["batch_stats"], batch, spectra64,
                                       lut64, model64, train=True)[0]
      return jax.value_and_grad(loss_fn)(state["params"])

    params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, task.model)
    state = _to_f64({"params": params, "batch_stats": stats})
    results = []
    for devices in (jax.devices()[:1], jax.devices()[:4]):
      mesh = parallel.make_mesh(devices)
      rep = parallel.replicated_sharding(mesh)
      out = jax.jit(loss_and_grads, in_shardings=(rep, parallel.data_sharding(mesh)),
                    out_shardings=rep)(jax.device_put(state, rep),
                                       parallel.shard_batch(batch, mesh))
      results.append(jax.device_get(out))
  (loss1, grads1), (loss4, grads4) = results
  assert all(g.dtype == np.float64 for g in jax.tree.leaves(grads1)), "not computed in float64"
  assert np.isfinite(loss1) and float(np.abs(loss4 - loss1)) <= 8 * eps32 * abs(float(loss1))
  # Leaves that are exactly zero in exact arithmetic (conv biases in front of BatchNorm) hold
  # pure float64 rounding noise: floor the bound at gamma_n = n * eps64 times the largest
  # gradient, n = the number of summands of one gradient element (batch x height x width).
  n_terms = batch["image"].shape[0] * batch["image"].shape[1] * batch["image"].shape[2]
  floor = n_terms * float(np.finfo(np.float64).eps) * max(
      float(np.abs(g).max()) for g in jax.tree.leaves(grads1))
  flat1, _ = jax.tree_util.tree_flatten_with_path(grads1)
  for (path, g1), g4 in zip(flat1, jax.tree.leaves(grads4)):
    bound = 8 * eps32 * float(np.abs(g1).max()) + floor
    np.testing.assert_array_less(np.abs(g4 - g1), bound, err_msg=jax.tree_util.keystr(path))


def test_prepare_crops_and_resizes():
  from bioface_jax.photo import biofacenet_fit
  image = np.zeros((40, 60, 3), np.uint8)
  image[:, 10:50] = 255  # the central 40x40 square is white
  x = biofacenet_fit.prepare(image, 8)
  assert x.shape == (8, 8, 3) and np.allclose(x, 1.0)
  with pytest.raises(ValueError, match="outside"):
    biofacenet_fit.prepare(image, 8, box=(0, 0, 100, 10))
  with pytest.raises(ValueError, match=r"RGB image \(H, W, 3\)"):
    biofacenet_fit.prepare(image[..., 0], 8)


def test_config_learning_rate_schedules():
  # The default decays 3e-4 -> 1e-4 after 4500 of its 5250 steps; the authors' variants stay
  # constant.
  default = biofacenet_task.model_config(configs.get_config("default"))
  assert (default.lr_schedule, default.lr_schedule_steps) == ("step", 5250)
  schedule = biofacenet.learning_rate_schedule(default)
  np.testing.assert_allclose([float(schedule(n)) for n in (0, 4499, 4500, 5249)],
                             [3e-4, 3e-4, 1e-4, 1e-4], rtol=4 * np.finfo(np.float32).eps)
  for variant in ("selfsup", "paper", "synthetic_full", "smoke"):
    model = biofacenet_task.model_config(configs.get_config(variant))
    assert biofacenet.learning_rate_schedule(model) == model.learning_rate, variant


def test_resume_with_a_different_model_names_the_config_fields(smoke, tmp_path):
  # A run trained with the RGB input, resumed with the log-chromaticity input (e.g. an old
  # default run resumed with the new default): the error names the field, not Orbax internals.
  config, task = smoke
  train_lib.train(task, _steps(config, 2), tmp_path / "run")
  changed = _steps(config, 4)
  changed.model.input_features = "rgb+logchroma"
  with pytest.raises(ValueError, match=r"model\.input_features: 'rgb' in the checkpoint, "
                                       r"'rgb\+logchroma' now"):
    train_lib.train(biofacenet_task.make_task(changed), changed, tmp_path / "run")
  # The checkpoint is untouched and the run resumes with its own settings.
  _, history = train_lib.train(task, _steps(config, 3), tmp_path / "run")
  assert [row["step"] for row in history] == [3]


def test_config_differences_lists_dotted_leaves():
  from bioface_jax.train_lib import loop
  old = {"a": 1, "m": {"x": "rgb", "y": [1, 2]}, "gone": 0}
  new = {"a": 1, "m": {"x": "rgb+logchroma", "y": [1, 2]}, "added": 5}
  assert loop.config_differences(old, new) == [
      ("added", None, 5), ("gone", 0, None), ("m.x", "rgb", "rgb+logchroma")]
  assert loop.config_differences(old, old) == []


def test_face_region_batches_come_from_the_scene_labels(tmp_path):
  from data.synth import labels as synth_labels
  config = configs.get_config("smoke")
  config.data.cache_dir = str(tmp_path)
  config.data.num_faces = 12  # 9 to train: one batch of 8
  config.model.face_region_weight = 1.0
  with pytest.raises(ValueError, match="data.world"):
    biofacenet_task.BioFaceNetTask.create(config)
  config.data.world = "scenes"
  task = biofacenet_task.BioFaceNetTask.create(config)
  batch = next(iter(task.make_batches(0)))
  idx = np.asarray(next(iter(biofacenet_task.pipeline.iterate_batches(
      task.train_set, config.batch_size, config.seed, return_index=True)))["index"])
  labels = task.train_set.truth(idx, ("labels",))["labels"]
  region = batch[biofacenet.FACE_REGION_KEY]
  np.testing.assert_array_equal(region, synth_labels.face_region(labels))
  # The face region holds pixels the skin mask leaves out (eyes, brows, mouth).
  mask = batch["mask"][..., 0] if batch["mask"].ndim == 4 else batch["mask"]
  assert (region * (1 - mask)).sum() > 0
  state = task.init(jax.random.key(0), batch)
  _, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss/face_appearance"])) and float(
      metrics["loss/face_appearance"]) > 0


def test_default_trains_on_the_scene_world_without_the_camera_chain():
  """The shipped recipe: scene world, exact sRGB camera, appearance term weighted 3x and over
  the whole face, no pigment more than 10 px off the skin; `appearance` is the same without the
  off-skin term; `skin_appearance` keeps the authors' appearance weight over the skin only;
  `scenes` adds the camera chain to that; `faces` is the skin-only world. All share the rest of
  the recipe."""
  default, appearance, skin, scenes, faces = (configs.get_config(v) for v in (
      "default", "appearance", "skin_appearance", "scenes", "faces"))
  assert (default.data.world, default.data.scene.camera) == ("scenes", "srgb")
  assert (scenes.data.world, scenes.data.scene.camera) == ("scenes", "chain")
  assert faces.data.world == "faces"
  assert (default.model.off_skin_weight, default.model.off_skin_margin) == (0.2, 10)
  for other in (appearance, skin, scenes, faces):
    assert (other.model.off_skin_weight, other.model.off_skin_margin) == (0.0, 2)
  without_off_skin = default.to_dict()
  without_off_skin["model"] = {**without_off_skin["model"], "off_skin_weight": 0.0,
                               "off_skin_margin": 2}
  assert appearance.to_dict() == {**without_off_skin, "variant": "appearance"}
  assert skin.data.to_dict() == default.data.to_dict()
  for other in (scenes, faces):
    assert other.model.to_dict() == skin.model.to_dict()
  for other in (skin, scenes, faces):
    assert other.num_train_steps == default.num_train_steps == 5250
  assert default.model.loss_weights == (3e-3,) + tuple(skin.model.loss_weights[1:])
  assert (default.model.face_region_weight, skin.model.face_region_weight) == (1.0, 0.0)
