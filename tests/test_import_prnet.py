"""PRNet's TF1 checkpoint (``prnet_tf1``) against resfcn256 in TensorFlow 1 graph mode
(tests/authors_prnet_tf1.py); the tolerance rule is in tests/import_checks.py."""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import pretrained
from tests.import_checks import SKIP, assert_matches, run_import


@pytest.fixture(scope="module")
def prnet_checkpoint(tmp_path_factory):
  """resfcn256 with random weights and BatchNorm parameters and statistics (calibrated to the
  activations' scale, then perturbed), saved by tf.train.Saver with the official variable
  names and Adam's slots, as Data/net-data/256_256_resfcn256_weight."""
  pytest.importorskip("tensorflow", reason=SKIP.format("TensorFlow"))
  from tests import authors_prnet_tf1 as authors  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("prnet") / "net-data"
  root.mkdir()
  prefix = root / "256_256_resfcn256_weight"
  graph = tf.Graph()
  with graph.as_default():
    authors.resfcn256(tf.compat.v1.placeholder(tf.float32, [None, 256, 256, 3]))
  values = authors.random_values(graph, seed=3)
  calib = np.random.default_rng(5).uniform(0, 1, (2, 256, 256, 3)).astype(np.float32)
  authors.calibrate(values, calib, seed=3)
  names = authors.save_checkpoint(str(prefix), values)
  return {"prefix": prefix, "values": values, "names": names, "authors": authors}


def test_prnet_tf1_import_matches_tensorflow(prnet_checkpoint, tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  authors, values = prnet_checkpoint["authors"], prnet_checkpoint["values"]
  network = [n for n in prnet_checkpoint["names"] if n.startswith("resfcn256/")
             and "/Adam" not in n]
  assert len(network) == 245  # prnet-spec.md section 2: 53 kernels + 48 x 4 BatchNorm
  assert any(n.endswith("/Adam_1") for n in prnet_checkpoint["names"])
  out = tmp_path / "prnet"
  assert run_import("prnet_tf1", prnet_checkpoint["prefix"], "--out", out) == 0
  model = pretrained.load("prnet", out)
  assert model.input_size == 256 and model.config.encoder == "resfcn"
  assert set(model.meta["imported"]["sha256"]) == {"256_256_resfcn256_weight.index",
                                                   "256_256_resfcn256_weight.data-00000-of-00001"}
  images = np.random.default_rng(4).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
  theirs32 = authors.forward(values, images, tf.float32)
  theirs64 = authors.forward(values, images, tf.float64)
  s = theirs64 / authors.MAX_POS
  assert np.mean((s > 0.02) & (s < 0.98)) > 0.9, "saturated sigmoid: a degenerate network"
  got = model.apply(images)["position_map"]
  assert_matches(got, theirs32, theirs64, "PRNet position map")


def test_prnet_errors_name_the_problem(prnet_checkpoint, tmp_path, capsys):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  prefix = prnet_checkpoint["prefix"]
  # The prefix given as one of its files works; a missing .index is named.
  from bioface_jax.pretrained.importers import prnet_tf1  # pylint: disable=g-import-not-at-top
  assert prnet_tf1.checkpoint_prefix(f"{prefix}.index") == prefix
  assert run_import("prnet_tf1", tmp_path / "nothing", "--out", tmp_path / "a") == 2
  assert "nothing.index not found" in capsys.readouterr().err
  # Truncated data file.
  cut = tmp_path / "cut"
  cut.mkdir()
  for f in prefix.parent.glob(prefix.name + ".*"):
    data = f.read_bytes()
    (cut / f.name).write_bytes(data[: len(data) // 3] if ".data-" in f.name else data)
  assert run_import("prnet_tf1", cut / prefix.name, "--out", tmp_path / "b") == 2
  err = capsys.readouterr().err
  assert "not a readable TensorFlow checkpoint" in err and str(cut / prefix.name) in err
  assert err.count("\n") == 1
  # Wrong shape, missing and extra variables: a checkpoint written from NumPy values.
  values = {k: v.astype(np.float32) for k, v in prnet_checkpoint["values"].items()}
  values["resfcn256/Conv2d_transpose_3/weights"] = np.zeros((4, 4, 256, 7), np.float32)
  del values["resfcn256/resBlock_4/Conv_1/BatchNorm/moving_mean"]
  values["resfcn256/extra/weights"] = np.zeros((3,), np.float32)
  bad = tmp_path / "bad" / "ckpt"
  graph = tf.Graph()
  with graph.as_default():
    variables = [tf.compat.v1.Variable(v, name=k) for k, v in values.items()]
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver(variables).save(sess, str(bad), write_meta_graph=False)
  assert run_import("prnet_tf1", bad, "--out", tmp_path / "c") == 2
  err = capsys.readouterr().err
  for text in ("resfcn256/resBlock_4/Conv_1/BatchNorm/moving_mean", "resfcn256/extra/weights",
               "resfcn256/Conv2d_transpose_3/weights (4, 4, 256, 7) (expected (4, 4, 256, 256))"):
    assert text in err, (text, err)
  for name in "abc":
    assert not (tmp_path / name).exists()
