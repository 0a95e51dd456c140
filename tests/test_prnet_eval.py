"""PRNet prediction and benchmark tools: a photo to files, the PyTorch twin, training logs."""

import numpy as np
import pytest


def test_reconstruct_and_save_outputs(tmp_path):
  """A photo through `prnet_face.reconstruct` and the command's writer: files and units."""
  import types
  from bioface_jax import face3d, pretrained
  from bioface_jax.photo import prnet_face, read
  from eval import prnet_predict
  from tests import tiny_models
  model = pretrained.load("prnet", tiny_models.export("prnet", tmp_path / "model"))
  image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)
  photo = read.Photo(image.astype(np.float32) / 255, tmp_path / "face.png", (60, 80))
  result = prnet_face.reconstruct(model, photo.pixels, face=(10, 20, 40, 40))
  r = model.input_size
  assert result.landmarks.shape == (68, 3) and result.crop.shape == (r, r, 3)
  np.testing.assert_allclose(result.landmarks, face3d.uncrop_points(
      np.asarray(face3d.landmarks_from_position_map(result.position_map)), result.transform))
  paths = prnet_predict.write_outputs(result, photo, "face", tmp_path, model)
  assert all(p.exists() for p in paths)
  np.testing.assert_allclose(np.loadtxt(tmp_path / "face_kpt.txt"), result.landmarks, atol=1e-3)
  n_v = sum(1 for l in (tmp_path / "face.obj").read_text().splitlines() if l.startswith("v "))
  assert n_v == len(result.vertices)
  with pytest.raises(ValueError, match="a PRNet model is needed"):
    prnet_face.reconstruct(types.SimpleNamespace(name="sdps"), photo.pixels)


def test_posed_mean_face_readout():
  """The posed-mean-face read-out: exact for a network that outputs a similarity of the mean
  face, the mean shape otherwise, and the model's recommendation by default."""
  import types
  from bioface_jax import face3d
  from bioface_jax.face3d import mean_face
  from bioface_jax.photo import prnet_face
  size = 64
  mean = mean_face.mean_position_map(size)
  valid = np.abs(mean).sum(-1) > 0
  a = np.radians(20.0)
  rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  posed = np.where(valid[..., None], 0.9 * mean @ rot.T + np.array([30.0, 34.0, 5.0]), 0.0)
  bumpy = posed + np.where(valid[..., None], np.random.default_rng(1).normal(0, 2, posed.shape), 0)
  image = np.full((96, 96, 3), 0.5, np.float32)

  def model(pm, meta):
    return types.SimpleNamespace(name="prnet", input_size=size, meta=meta,
                                 apply=lambda x: {"position_map": pm[None].astype(np.float32)})

  # A similarity of the mean face is read out as itself (float32 map: ~1e-5 px per coordinate).
  exact = prnet_face.reconstruct(model(posed, {}), image, readout="posed_mean_face", flip=False)
  net = prnet_face.reconstruct(model(posed, {}), image, readout="network", flip=False)
  np.testing.assert_allclose(exact.landmarks, net.landmarks, atol=1e-3)
  # Noise on the shape is dropped: the landmarks come from the mean shape, not the network's.
  noisy = prnet_face.reconstruct(model(bumpy, {"readout": "posed_mean_face"}), image,
                                 flip=False)
  raw = prnet_face.reconstruct(model(bumpy, {}), image, flip=False)
  assert noisy.readout == "posed_mean_face" and raw.readout == "network"
  truth = face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(posed)),
                               noisy.transform)
  err = lambda p: np.linalg.norm(p[:, :2] - truth[:, :2], axis=1).mean()  # noqa: E731
  assert err(noisy.landmarks) < 0.3 * err(raw.landmarks)
  np.testing.assert_array_equal(noisy.position_map, raw.position_map)  # the network's map
  with pytest.raises(ValueError, match="readout must be one of"):
    prnet_face.reconstruct(model(posed, {}), image, readout="mean")
  with pytest.raises(ValueError, match="meta readout"):
    prnet_face.reconstruct(model(posed, {"readout": "typo"}), image)


def test_reconstruct_flip_averages_over_the_mirrored_crop():
  """`reconstruct(flip=True)` feeds the crop and its mirror image in one batch and averages
  the maps in the crop's frame: a network that mirrors its map with the image gives its own
  map back, one that ignores the image gives the mean of its map and the map's mirror."""
  import types
  from bioface_jax import face3d
  from bioface_jax.photo import prnet_face
  rng = np.random.default_rng(2)
  pm = rng.uniform(0, 64, (64, 64, 3)).astype(np.float32)
  image = rng.uniform(0, 1, (80, 96, 3)).astype(np.float32)
  seen = []

  def equivariant(x):
    seen.append(np.asarray(x))
    return {"position_map": np.stack([pm, np.asarray(face3d.mirror_position_map(pm))])}

  net = types.SimpleNamespace(name="prnet", input_size=64, meta={}, apply=equivariant)
  out = prnet_face.reconstruct(net, image, readout="network")
  assert out.flip and seen[0].shape == (2, 64, 64, 3)
  np.testing.assert_array_equal(seen[0][1], seen[0][0][:, ::-1])
  np.testing.assert_allclose(out.position_map, pm, atol=1e-5)
  blind = types.SimpleNamespace(name="prnet", input_size=64, meta={},
                                apply=lambda x: {"position_map": np.stack([pm] * len(x))})
  both = prnet_face.reconstruct(blind, image, readout="network")
  one = prnet_face.reconstruct(blind, image, readout="network", flip=False)
  assert not one.flip
  np.testing.assert_array_equal(one.position_map, pm)
  np.testing.assert_allclose(both.position_map,
                             0.5 * (pm + np.asarray(face3d.mirror_position_map(pm))), atol=1e-5)


def test_torch_resfcn_has_the_official_size():
  pytest.importorskip("torch")
  from eval import bench_prnet
  assert sum(p.numel() for p in bench_prnet.torch_resfcn(1.0).parameters()) == 13_353_618
  assert sum(p.numel() for p in bench_prnet.torch_resfcn(0.25).parameters()) == 837_402


def test_training_speed_from_metrics_log(tmp_path):
  import json
  from eval import aflw2000_nme
  rows = [dict(step=10, steps_per_sec=0.5, images_per_sec=8.0),   # Includes compilation.
          dict(step=20, steps_per_sec=2.0, images_per_sec=32.0),
          dict(step=30, steps_per_sec=1.0, images_per_sec=16.0),
          dict(step=30, **{"eval/nme2d": 0.1})]
  (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  s = aflw2000_nme.training_speed(tmp_path, n_train=480, batch=16)
  assert s["wall_s"] == pytest.approx(10 / 0.5 + 10 / 2.0 + 10 / 1.0)
  assert s["images_per_sec"] == pytest.approx(24.0)  # Median of the windows after the first.
  assert s["s_per_epoch"] == pytest.approx(20.0) and s["steps"] == 30


def test_learning_curve_from_metrics_log(tmp_path):
  import json
  from eval import aflw2000_nme
  rows = [dict(step=10, steps_per_sec=0.5, images_per_sec=8.0),
          dict(step=20, steps_per_sec=2.0, images_per_sec=32.0,
               **{"eval/nme2d": 0.2, "eval/nme3d": 0.3, "eval/loss_px": 9.0}),
          dict(step=20, steps_per_sec=2.0, images_per_sec=32.0),     # a resume repeats nothing
          dict(step=30, steps_per_sec=1.0, images_per_sec=16.0,
               **{"eval/nme2d": 0.1, "eval/nme3d": 0.2, "eval/loss_px": 8.0})]
  (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  c = aflw2000_nme.learning_curve(tmp_path)
  assert [x["step"] for x in c] == [20, 30]
  assert c[0]["minutes"] == pytest.approx((20 + 5) / 60) and c[1]["minutes"] == pytest.approx(35 / 60)
  assert c[1]["nme2d"] == pytest.approx(10.0) and c[1]["loss_px"] == 8.0
  assert "| 30 | 0.6 | 8.00 | 10.00 | 20.00 |" in aflw2000_nme.format_curves([tmp_path])


def test_heldout_world_overrides_the_runs_own():
  import ml_collections
  from eval import aflw2000_nme
  d = ml_collections.ConfigDict(dict(context=True, world="faces", workers=2))
  assert aflw2000_nme.heldout_world(d) == dict(context=True, world="faces", workers=2)
  assert aflw2000_nme.heldout_world(d, "scenes") == dict(context=False, world="scenes",
                                                         workers=2)
  assert aflw2000_nme.heldout_world(d, "faces")["context"] is False
  old = ml_collections.ConfigDict(dict(size=64))  # A run from before the world field.
  assert aflw2000_nme.heldout_world(old) == dict(context=False, world="faces", workers=0)
  with pytest.raises(ValueError, match="heldout"):
    aflw2000_nme.heldout_world(d, "photos")
