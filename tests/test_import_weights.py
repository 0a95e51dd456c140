"""``python -m train.import_weights``: help, usage errors, a missing framework (the per-source
checks against the authors' frameworks are tests/test_import_{prnet,sdps,face_vae}.py)."""

from __future__ import annotations

import pytest

from bioface_jax.pretrained import importers
from bioface_jax.pretrained.importers import matching
from tests.import_checks import run_import
from train import import_weights


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
