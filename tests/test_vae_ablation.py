"""eval.vae_ablation / vae_scoring: scale choice, paired verdicts, and a 2-configuration run."""

import json
import subprocess
import sys
import os
import pathlib

import numpy as np
import pytest

from eval import vae_scoring

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ms_ssim_scale_choice():
  # Largest K <= 5 whose coarsest side is >= 9 (spec section 8): 144 -> 5, 72 -> 4, 32 -> 2.
  assert [vae_scoring.ms_ssim_scales(s) for s in (176, 144, 72, 48, 32, 16)] == [5, 5, 4, 3, 2, 1]
  assert abs(sum(vae_scoring.ms_power_factors(72)) - 1) < 1e-12


def test_paired_verdicts():
  a = np.array([0.5, 0.6, 0.7, 0.8])
  assert vae_scoring.paired(a + 0.1, a, higher_is_better=True)[0] == "a"
  assert vae_scoring.paired(a + 0.1, a, higher_is_better=False)[0] == "b"
  assert vae_scoring.paired(a + np.array([0.1, -0.1, 0.1, -0.1]), a, True)[0] == "tie"


@pytest.mark.slow
def test_two_configuration_ablation_end_to_end(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", "eval.vae_ablation", "--preset", "smoke", "--steps", "1",
         "--configs", "ssim_l2_mask,ssim_l2", "--out", str(tmp_path / "abl"),
         "--cache_dir", str(tmp_path / "cache"), "--n_test", "4"]
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert done.returncode == 0, done.stderr[-3000:]
  table = json.loads((tmp_path / "abl" / "table.json").read_text())
  assert set(table["scores"]) == {"ssim_l2_mask", "ssim_l2", "baseline+mean_image"}
  assert (tmp_path / "abl" / "grid.png").is_file()
  assert "Q4" in (tmp_path / "abl" / "table.md").read_text()
  # --models scores a trained model (here the run above, by its alias) without training it.
  cmd = [sys.executable, "-m", "eval.vae_ablation", "--preset", "smoke", "--models",
         f"H9={tmp_path / 'abl' / 'ssim_l2_mask'}", "--out", str(tmp_path / "scored"),
         "--cache_dir", str(tmp_path / "cache"), "--n_test", "4"]
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert done.returncode == 0, done.stderr[-3000:]
  scored = json.loads((tmp_path / "scored" / "table.json").read_text())["scores"]
  assert set(scored) == {"ssim_l2_mask", "baseline+mean_image"}
  assert scored["ssim_l2_mask"] == table["scores"]["ssim_l2_mask"]
