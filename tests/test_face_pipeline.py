"""eval.face_pipeline end to end on tiny untrained exports (`tests.tiny_models`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bioface_jax import pretrained
from eval import face_pipeline
from tests import tiny_models


def test_pipeline_writes_every_map_and_skips_a_bad_input(tmp_path, capsys):
  prnet = tiny_models.export("prnet", tmp_path / "prnet")
  bfn = tiny_models.export("biofacenet", tmp_path / "bfn")
  rng = np.random.default_rng(0)
  photo = (rng.uniform(0.2, 0.9, (40, 50, 3)) * 255).astype(np.uint8)
  Image.fromarray(photo).save(tmp_path / "a.png")
  (tmp_path / "bad.png").write_bytes(b"not an image")
  out = tmp_path / "out"
  rc = face_pipeline.main([str(tmp_path / "a.png"), str(tmp_path / "bad.png"), "--box", "10",
                           "5", "40", "35", "--prnet", str(prnet), "--biofacenet", str(bfn),
                           "--no-refine", "--lights", "--out", str(out)])
  err = capsys.readouterr().err
  assert rc == 1 and "bad.png" in err and "Traceback" not in err
  for suffix in ("_kpt.npy", ".obj", "_posmap.npy", "_normals.npz", "_normals.png",
                 "_maps.npz", "_edits.npz", "_edits.png", "_pipeline.png"):
    assert (out / f"a{suffix}").is_file(), suffix
  saved = np.load(out / "a_normals.npz")
  assert saved["normals"].shape == (40, 50, 3) and saved["mask"].shape == (40, 50)
  on = saved["mask"]
  np.testing.assert_allclose(np.linalg.norm(saved["normals"][on], axis=-1), 1, atol=1e-5)
  assert not saved["normals"][~on].any()
  model = pretrained.load("prnet", prnet)
  assert np.load(out / "a_posmap.npy").shape == (model.input_size, model.input_size, 3)
  assert not list(out.glob("*.partial*"))


def test_help_exits_zero(capsys):
  try:
    face_pipeline.main(["--help"])
  except SystemExit as e:
    assert e.code == 0
  assert "face box" in capsys.readouterr().out
