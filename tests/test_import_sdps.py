"""SDPS-Net's PyTorch checkpoints (``sdps_torch``) against SDPS-Net's networks in PyTorch
(tests/authors_sdps_torch.py); the tolerance rule is in tests/import_checks.py."""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import pretrained
from bioface_jax.pretrained.importers import sdps_torch
from tests.import_checks import EPS32, SKIP, assert_matches, run_import


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
