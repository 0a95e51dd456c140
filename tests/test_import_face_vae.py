"""The face VAE's Keras ``.h5`` (``face_vae_keras``) against the authors' Keras 2 models
(tests/authors_face_vae_keras.py); the tolerance rule is in tests/import_checks.py."""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import pretrained
from bioface_jax.pretrained.importers import face_vae_keras
from tests.import_checks import SKIP, assert_matches, run_import


@pytest.fixture(scope="module")
def keras_vae(tmp_path_factory):
  """The authors' Keras models with random weights: the training model's save_weights .h5 and
  its converted .predict.h5 (mask model), and a no-mask model's .h5."""
  pytest.importorskip("tensorflow", reason=SKIP.format("TensorFlow"))
  pytest.importorskip("tf_keras", reason=SKIP.format("tf-keras (Keras 2, the authors' .h5)"))
  from tests import authors_face_vae_keras as authors  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("face_vae")
  rng = np.random.default_rng(9)
  calib = rng.uniform(0, 1, (4, 144, 144, 3)).astype(np.float32)
  trained = authors.vae(mask_branch=True, predict=False)
  authors.randomise(trained, 5)
  authors.calibrate(trained, [calib, (rng.uniform(0, 1, (4, 144, 144, 1)) > 0.5)
                              .astype(np.float32)], 5)
  train_h5 = root / "weights.037-0.45-0.46-0.00-0.31-0.06-0.07.h5"
  trained.save_weights(str(train_h5))
  predict = authors.convert_to_predict(trained, mask_branch=True)
  predict_h5 = root / "weights.037-0.45-0.46-0.00-0.31-0.06-0.07.predict.h5"
  predict.save_weights(str(predict_h5))
  nomask = authors.vae(mask_branch=False, predict=False)
  authors.randomise(nomask, 6)
  authors.calibrate(nomask, calib, 6)
  nomask_h5 = root / "weights.nomask.h5"
  nomask.save_weights(str(nomask_h5))
  return {"authors": authors, "predict": predict, "train_h5": train_h5,
          "predict_h5": predict_h5, "nomask": nomask, "nomask_h5": nomask_h5}


def _tree_equal(a, b) -> bool:
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
  return np.array_equal(a, b)


def test_face_vae_keras_import_matches_keras(keras_vae, tmp_path):
  authors = keras_vae["authors"]
  out = tmp_path / "vae"
  assert run_import("face_vae_keras", keras_vae["predict_h5"], "--out", out) == 0
  model = pretrained.load("face_vae", out)
  # The training model's checkpoint holds the same layers under the same names.
  from_training = face_vae_keras.load([keras_vae["train_h5"]])
  assert _tree_equal(model.variables, from_training["variables"])
  assert model.config.mask_branch and model.input_size == 144
  images = np.random.default_rng(7).uniform(0, 1, (2, 144, 144, 3)).astype(np.float32)
  theirs32 = [np.asarray(a) for a in keras_vae["predict"](images, training=False)]
  theirs64 = [np.asarray(a) for a in authors.predict64(keras_vae["predict"], True, images)]
  assert theirs64[2].std(0).mean() > 1e-3, "the output does not depend on the input"
  got = model.apply(images)
  for key, i in (("composite", 0), ("image", 2)):
    assert_matches(got[key], theirs32[i], theirs64[i], f"face VAE {key}")
  assert_matches(got["mask"], theirs32[1][..., 0], theirs64[1][..., 0], "face VAE mask")


def test_face_vae_keras_without_mask_decoder(keras_vae, tmp_path):
  authors = keras_vae["authors"]
  out = tmp_path / "vae_nomask"
  assert run_import("face_vae_keras", keras_vae["nomask_h5"], "--out", out) == 0
  model = pretrained.load("face_vae", out)
  assert not model.config.mask_branch
  predict = authors.convert_to_predict(keras_vae["nomask"], mask_branch=False)
  images = np.random.default_rng(8).uniform(0, 1, (1, 144, 144, 3)).astype(np.float32)
  theirs32 = np.asarray(predict(images, training=False))
  theirs64 = np.asarray(authors.predict64(predict, False, images))
  got = model.apply(images)
  assert "mask" not in got
  assert_matches(got["image"], theirs32, theirs64, "face VAE (no mask) image")
  np.testing.assert_array_equal(got["composite"], got["image"])


def test_face_vae_errors_name_the_problem(keras_vae, tmp_path, capsys):
  import h5py  # pylint: disable=g-import-not-at-top
  source = keras_vae["predict_h5"]
  cut = tmp_path / "cut.h5"
  cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
  assert run_import("face_vae_keras", cut, "--out", tmp_path / "a") == 2
  err = capsys.readouterr().err
  assert str(cut) in err and "not a readable HDF5" in err and err.count("\n") == 1
  bad = tmp_path / "bad.h5"
  bad.write_bytes(source.read_bytes())
  with h5py.File(bad, "r+") as f:
    del f["conv2d_5/conv2d_5/bias:0"]
    f["conv2d_5"].attrs["weight_names"] = [b"conv2d_5/kernel:0"]
    g = f["z_mean/z_mean"]
    del g["bias:0"]
    g["bias:0"] = np.zeros(7, np.float32)
    names = [n if isinstance(n, bytes) else n.encode() for n in f.attrs["layer_names"]]
    names.append(b"conv2d_99")
    f.attrs["layer_names"] = names
    f.create_group("conv2d_99").attrs["weight_names"] = [b"conv2d_99/kernel:0"]
    f["conv2d_99"]["conv2d_99/kernel:0"] = np.zeros((3, 3, 1, 1), np.float32)
  assert run_import("face_vae_keras", bad, "--out", tmp_path / "b") == 2
  err = capsys.readouterr().err
  for text in ("conv2d_5/bias", "conv2d_99/kernel", "z_mean/bias (7,) (expected (512,))"):
    assert text in err, (text, err)
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
