"""End-to-end BioFaceNet training on the real `smoke` config (shrunk), on 4 fake CPU devices."""

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
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               params16, jax.device_get(resumed["params"]))

  photo = tmp_path / "face.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 40, 3), np.uint8)).save(photo)
  assert predict.main([str(photo), "--workdir", str(tmp_path / "ship"),
                       "--out", str(tmp_path / "pred")]) == 0
  maps = np.load(tmp_path / "pred" / "face_maps.npz")
  assert maps["fmel"].shape == (config.data.size,) * 2
  assert np.all(np.isfinite(maps["reconstruction_linear_srgb"]))
  assert (tmp_path / "pred" / "face_decomposition.png").is_file()


def test_predict_without_checkpoint_names_the_problem(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    predict.main(["--workdir", str(tmp_path), "--example", "astronaut"])


def test_same_loss_and_gradients_on_1_and_4_devices(smoke):
  config, _ = smoke
  task = biofacenet_task.BioFaceNetTask.create(config)
  batch = next(iter(task.make_batches(0)))

  def loss_and_grads(state, batch):
    def loss_fn(params):
      return biofacenet.compute_loss(params, state["batch_stats"], batch, task.spectra,
                                     task.lut, task.model, train=True)[0]
    return jax.value_and_grad(loss_fn)(state["params"])

  results = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = parallel.make_mesh(devices)
    sharded = parallel.shard_batch(batch, mesh)
    state = jax.jit(task.init, out_shardings=parallel.replicated_sharding(mesh))(
        jax.random.key(0), sharded)
    results.append(jax.device_get(jax.jit(loss_and_grads)(state, sharded)))
  (loss1, grads1), (loss4, grads4) = results
  np.testing.assert_allclose(loss4, loss1, rtol=1e-5)
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads1))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5 * scale),
               grads1, grads4)


def test_prepare_crops_and_resizes():
  image = np.zeros((40, 60, 3), np.uint8)
  image[:, 10:50] = 255  # the central 40x40 square is white
  x = predict.prepare(image, 8)
  assert x.shape == (8, 8, 3) and np.allclose(x, 1.0)
  with pytest.raises(ValueError, match="outside"):
    predict.prepare(image, 8, box=(0, 0, 100, 10))
  with pytest.raises(ValueError, match=r"RGB image \(H, W, 3\)"):
    predict.prepare(image[..., 0], 8)
