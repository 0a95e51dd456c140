"""PRNet prediction and benchmark tools: photo input checks, end-to-end files, the PyTorch twin."""

import numpy as np
import pytest

import jax

from bioface_jax.models import prnet


def test_check_image_names_the_problem():
  from eval import prnet_predict
  assert prnet_predict.check_image(np.zeros((20, 20), np.uint8)).shape == (20, 20, 3)
  with pytest.raises(ValueError, match="shape"):
    prnet_predict.check_image(np.zeros((20, 20, 5), np.uint8))
  with pytest.raises(ValueError, match="too small"):
    prnet_predict.check_image(np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    prnet_predict.check_image(np.full((20, 20, 3), 2.0))
  with pytest.raises(ValueError, match="dtype"):
    prnet_predict.check_image(np.zeros((20, 20, 3), np.int32))
  with pytest.raises(ValueError, match="4 numbers"):
    prnet_predict._box(["1", "2", "3"], "box")


def test_reconstruct_and_save_outputs(tmp_path):
  from eval import prnet_predict
  model = prnet.PRNetConfig(width_multiplier=0.125, input_size=32, bn_momentum=0.9)
  params, stats = prnet.init(jax.random.key(0), (1, 32, 32, 3), model)
  image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)
  result = prnet_predict.reconstruct(image, params, stats, model, box=[10, 20, 50, 60])
  assert result["landmarks"].shape == (68, 3) and result["crop"].shape == (32, 32, 3)
  paths = prnet_predict.save_outputs(result, model, "face", tmp_path)
  assert all(p.exists() for p in paths)
  kpt = np.loadtxt(paths[2])
  np.testing.assert_allclose(kpt, result["landmarks"], atol=1e-3)
  n_v = sum(1 for l in paths[1].read_text().splitlines() if l.startswith("v "))
  assert n_v == len(result["vertices"])


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


def test_reconstruct_without_a_box_frames_the_detected_face(monkeypatch):
  from bioface_jax import face3d
  from bioface_jax.photo import detect
  from eval import prnet_predict
  model = prnet.PRNetConfig(width_multiplier=0.125, input_size=32, bn_momentum=0.9)
  params, stats = prnet.init(jax.random.key(0), (1, 32, 32, 3), model)
  image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)  # not square
  monkeypatch.setattr(detect, "detect_faces", lambda img, detector="auto": [(10, 20, 30, 30)])
  result = prnet_predict.reconstruct(image, params, stats, model)
  np.testing.assert_allclose(result["transform"], face3d.face_box_transform((10, 20, 30, 30), 32))
  assert "detected" in result["framing"]
  monkeypatch.setattr(detect, "detect_faces", lambda img, detector="auto": [])
  result = prnet_predict.reconstruct(image, params, stats, model)
  t = result["transform"]
  assert t[0, 0] == t[1, 1] and "central square" in result["framing"]  # never stretched
