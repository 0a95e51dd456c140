"""`python -m train.import_weights` against the authors' own frameworks and file formats.

Each test builds the authors' network from its published definition with random weights
(random BatchNorm statistics too), saves it exactly as the authors' code does, imports it with
the command and compares `pretrained.load(...).apply` with the authors' framework on the same
input. Tolerance (`assert_matches`): the authors' framework is run in float32 and float64; its
own float32 deviation from float64 on this input measures the float32 rounding of the network,
and ours may deviate from the float64 result by at most 8 times that plus 8 ulps of the output
scale (another summation order rounds differently but by the same order of magnitude; a wrong
layout, epsilon or statistic is off by orders of magnitude more, as the negative control shows).

Needs the optional frameworks (``pip install 'bioface_jax[weights]'``: TensorFlow, PyTorch,
tf-keras); each test is skipped with a message when its framework is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import pretrained
from bioface_jax.pretrained import importers
from bioface_jax.pretrained.importers import matching, sdps_torch
from train import import_weights

EPS32 = float(np.finfo(np.float32).eps)
SKIP = "needs {} (the 'weights' extra: pip install 'bioface_jax[weights]')"


def assert_matches(ours, theirs32, theirs64, what, mask=None):
  """|ours - theirs64| <= 8 |theirs32 - theirs64|_max + 8 eps32 |theirs64|_max (docstring)."""
  ours, theirs32, theirs64 = (np.asarray(a, np.float64) for a in (ours, theirs32, theirs64))
  assert ours.shape == theirs64.shape, (what, ours.shape, theirs64.shape)
  sel = np.broadcast_to(mask, ours.shape) if mask is not None else np.ones(ours.shape, bool)
  noise = np.abs(theirs32 - theirs64)[sel].max()
  tol = 8 * noise + 8 * EPS32 * np.abs(theirs64)[sel].max()
  err = np.abs(ours - theirs64)[sel].max()
  assert err <= tol, f"{what}: max |ours - authors'| {err:.3g} > tolerance {tol:.3g} " \
                     f"(authors' float32 rounding {noise:.3g})"
  return err, tol


def run_import(*args) -> int:
  return import_weights.main([str(a) for a in args])


# ------------------------------------------------------------------------------ SDPS-Net


@pytest.fixture(scope="module")
def sdps_files(tmp_path_factory):
  """The authors' LCNet and NENet with random weights, saved as SDPS-Net's code saves them
  (LCNet in the zip format, NENet in the legacy format of PyTorch 0.4)."""
  torch = pytest.importorskip("torch", reason=SKIP.format("PyTorch"))
  from tests import authors_sdps_torch as authors  # pylint: disable=g-import-not-at-top
  lcnet, nenet = authors.LCNet(), authors.NENet()
  authors.randomise(lcnet, 1)
  authors.randomise(nenet, 2)
  root = tmp_path_factory.mktemp("sdps")
  lc_path, ne_path = root / "LCNet_CVPR2019.pth.tar", root / "NENet_CVPR2019.pth.tar"
  torch.save({"state_dict": lcnet.state_dict(), "model": "LCNet"}, lc_path)
  torch.save({"state_dict": nenet.state_dict(), "model": "NENet"}, ne_path,
             _use_new_zipfile_serialization=False)
  return {"lcnet": lcnet, "nenet": nenet, "lc": lc_path, "ne": ne_path, "root": root}


def _sdps_authors(files, images, mask, dtype):
  """The authors' forward pass (DiLiGenT-style: masked images + mask) in `dtype`."""
  import torch  # pylint: disable=g-import-not-at-top
  import copy  # pylint: disable=g-import-not-at-top
  b, n, h, w, _ = images.shape
  lcnet, nenet = (copy.deepcopy(files[k]).to(dtype).eval() for k in ("lcnet", "nenet"))
  x = torch.from_numpy((images * mask[:, None, :, :, None]).astype(np.float64))
  x = x.permute(0, 1, 4, 2, 3).reshape(b, n * 3, h, w).to(dtype)
  m = torch.from_numpy(mask[:, None].astype(np.float64)).to(dtype)
  with torch.no_grad():
    pred = lcnet([x, m])
    normals = nenet([x, m, pred])
  dirs = pred["dirs"].view(n, b, 3).permute(1, 0, 2)
  ints = pred["intens"].view(b, n, 3)[..., 0]
  logits = {k: pred[k].view(n, b, -1).permute(1, 0, 2).double().numpy()
            for k in ("dir_x", "dir_y", "ints")}
  return (dirs.double().numpy(), ints.double().numpy(),
          normals.permute(0, 2, 3, 1).double().numpy(), logits)


def test_sdps_torch_import_matches_pytorch(sdps_files, tmp_path):
  import torch  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  out = tmp_path / "sdps"
  assert run_import("sdps_torch", sdps_files["lc"], sdps_files["ne"], "--out", out) == 0
  assert run_import("sdps_torch", sdps_files["lc"], sdps_files["ne"], "--out", out) == 2
  assert run_import("sdps_torch", sdps_files["lc"], sdps_files["ne"], "--out", out,
                    "--overwrite") == 0
  model = pretrained.load("sdps", out)
  assert model.input_size == 128 and model.meta["imported"]["source"] == "sdps_torch"
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (1, 3, 24, 28, 3)).astype(np.float32)  # LCNet resizes to 128
  mask = np.zeros((1, 24, 28), np.float32)
  mask[:, 3:21, 4:25] = 1
  d32, i32, n32, l32 = _sdps_authors(sdps_files, images, mask, torch.float32)
  d64, i64, n64, l64 = _sdps_authors(sdps_files, images, mask, torch.float64)
  # LCNet's logits, through our network with the imported variables.
  batch = {"images": jnp.asarray(images), "mask": jnp.asarray(mask)}
  logits = sdps.apply(model.variables["lcnet"]["params"], batch, model.config["lcnet"])
  for ours_key, key in (("dir_x_logits", "dir_x"), ("dir_y_logits", "dir_y"),
                        ("int_logits", "ints")):
    err, tol = assert_matches(logits[ours_key], l32[key], l64[key], f"LCNet {key} logits")
    top2 = np.sort(l64[key], -1)[..., -2:]
    assert np.all(top2[..., 1] - top2[..., 0] > 100 * tol), "argmax too close to a tie to test"
  # The whole pipeline as the inference contract runs it.
  got = model.apply(images, mask=mask)
  for key in l64:  # the same classes in both precisions
    np.testing.assert_array_equal(l32[key].argmax(-1), l64[key].argmax(-1))
  np.testing.assert_allclose(got["light_directions"], d64, atol=4 * EPS32)
  np.testing.assert_allclose(got["light_intensities"], i64, atol=4 * EPS32 * 2)
  inside = mask[..., None] > 0
  assert_matches(got["normals"], n32, n64, "NENet normals", mask=inside)
  np.testing.assert_array_equal(got["normals"][~np.broadcast_to(inside, got["normals"].shape)], 0)


def test_sdps_wrong_layout_is_detected(sdps_files):
  """Negative control: the same import with the transposed-conv kernels not flipped."""
  import torch  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
  lc, _ = sdps_torch.read(sdps_files["lc"])
  ne, _ = sdps_torch.read(sdps_files["ne"])
  good = sdps_torch.convert(lc, ne)
  e6 = good["variables"]["nenet"]["params"]["e6"]["ConvTranspose_0"]
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 1, (1, 2, 16, 16, 3)).astype(np.float32)
  dirs = np.array([[[0.3, 0.2, 0.93], [-0.4, 0.1, 0.91]]], np.float32)
  batch = {"images": jnp.asarray(images), "mask": jnp.ones((1, 16, 16)),
           "dirs": jnp.asarray(dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)),
           "intensities": jnp.ones((1, 2))}
  config = good["model_config"]["nenet"]
  right = np.asarray(sdps.apply(good["variables"]["nenet"]["params"], batch, config)["normals"])
  e6["kernel"] = e6["kernel"][::-1, ::-1]
  wrong = np.asarray(sdps.apply(good["variables"]["nenet"]["params"], batch, config)["normals"])
  x = torch.from_numpy(np.concatenate([images[0].transpose(0, 3, 1, 2),
                                       np.broadcast_to(batch["dirs"][0][:, :, None, None],
                                                       (2, 3, 16, 16))], 1))
  with torch.no_grad():
    feats = sdps_files["nenet"].extractor(x).max(0, keepdim=True)[0]
    ref = sdps_files["nenet"].regressor(feats).permute(0, 2, 3, 1).numpy()
  assert np.abs(right - ref).max() < 1e-4
  assert np.abs(wrong - ref).max() > 1e-2


def test_sdps_errors_name_the_problem(sdps_files, tmp_path, capsys):
  import torch  # pylint: disable=g-import-not-at-top
  lc, ne = sdps_files["lc"], sdps_files["ne"]
  # Files swapped.
  assert run_import("sdps_torch", ne, lc, "--out", tmp_path / "a") == 2
  assert "give LCNet's checkpoint first" in capsys.readouterr().err
  # Truncated file.
  cut = tmp_path / "cut.pth.tar"
  cut.write_bytes(lc.read_bytes()[: lc.stat().st_size // 2])
  assert run_import("sdps_torch", cut, ne, "--out", tmp_path / "b") == 2
  err = capsys.readouterr().err
  assert str(cut) in err and "not a readable PyTorch checkpoint" in err
  assert err.count("\n") == 1 and "Traceback" not in err
  # Wrong shape, missing and extra tensors.
  state = dict(sdps_files["lcnet"].state_dict())
  state["classifier.conv2.0.bias"] = torch.zeros(7)
  del state["featExtractor.conv3.0.weight"]
  state["featExtractor.conv3.1.running_mean"] = torch.zeros(128)
  bad = tmp_path / "bad.pth.tar"
  torch.save({"state_dict": state, "model": "LCNet"}, bad)
  assert run_import("sdps_torch", bad, ne, "--out", tmp_path / "c") == 2
  err = capsys.readouterr().err
  for name in ("featExtractor.conv3.0.weight", "featExtractor.conv3.1.running_mean",
               "classifier.conv2.0.bias (7,) (expected (256,))", str(bad)):
    assert name in err, (name, err)
  for out in ("a", "b", "c"):
    assert not (tmp_path / out).exists()
  assert not list(tmp_path.glob(".*partial*"))


def test_sdps_state_dict_names_are_the_authors(sdps_files):
  """The name map covers exactly the authors' state dict (both networks)."""
  theirs = set(sdps_files["lcnet"].state_dict()) | set(sdps_files["nenet"].state_dict())
  ours = {r.theirs for r in sdps_torch.lcnet_rules() + sdps_torch.nenet_rules()}
  assert theirs == ours
  counts = [sum(p.numel() for p in sdps_files[k].parameters()) for k in ("lcnet", "nenet")]
  assert counts == [4_409_692, 2_210_048]  # sdps-spec.md section 5


# ------------------------------------------------------------------------------ PRNet


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


# ------------------------------------------------------------------------------ face VAE


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
  out, out2 = tmp_path / "vae", tmp_path / "vae_train"
  assert run_import("face_vae_keras", keras_vae["predict_h5"], "--out", out) == 0
  assert run_import("face_vae_keras", keras_vae["train_h5"], "--out", out2) == 0
  model = pretrained.load("face_vae", out)
  assert _tree_equal(model.variables, pretrained.load("face_vae", out2).variables)
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


# ------------------------------------------------------------------------------ command


def test_help_and_usage_errors(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    import_weights.main(["--help"])
  assert exit_info.value.code == 0
  assert "prnet_tf1" in capsys.readouterr().out
  assert run_import("sdps_torch", tmp_path / "x", "--out", tmp_path / "o") == 2
  assert "takes 2 FILE(s)" in capsys.readouterr().err
  (tmp_path / "o").mkdir()
  (tmp_path / "o" / "keep").write_text("x")
  assert run_import("face_vae_keras", tmp_path / "x.h5", "--out", tmp_path / "o") == 2
  assert "already exists" in capsys.readouterr().err
  assert run_import("face_vae_keras", tmp_path / "x.h5", "--out", tmp_path / "p") == 2
  assert "x.h5 not found" in capsys.readouterr().err
  assert run_import("prnet_tf1", "--name-map") == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 245 and "resfcn256/resBlock_9/BatchNorm/moving_variance" in lines[0] + \
      "".join(lines)


def test_missing_framework_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch now fails
  with pytest.raises(importers.MissingFrameworkError, match=r"bioface_jax\[weights\]"):
    matching.need("torch", "PyTorch", "SDPS-Net's checkpoints")
  for name in ("LCNet.pth.tar", "NENet.pth.tar"):
    (tmp_path / name).write_bytes(b"x")
  assert run_import("sdps_torch", tmp_path / "LCNet.pth.tar", tmp_path / "NENet.pth.tar",
                    "--out", tmp_path / "o") == 2
