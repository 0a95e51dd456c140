"""Tests for the evaluation commands: eval.metrics, eval.recovery and eval.iset_table1.

The metrics are checked against hand-computed values. The commands run end to end on a tiny
untrained BioFaceNet saved in the trainer's checkpoint layout (params from
`biofacenet.init`, written with `train_lib.Checkpointer`), 16x16 synthetic faces and two 16x16
synthetic multispectral scenes, all in temporary directories.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eval import iset_table1, metrics, recovery

SIZE = 16


# ------------------------------------------------------------------------------ metrics


def test_masked_rmse_hand_values_and_mask():
  pred = np.array([[[1.0, 2.0], [3.0, np.nan]]])
  target = np.zeros((1, 2, 2))
  mask = np.array([[[1, 1], [1, 0]]])
  # (1 + 4 + 9) / 3 pixels; the NaN lies outside the mask.
  np.testing.assert_allclose(metrics.masked_rmse(pred, target, mask), [math.sqrt(14 / 3)])
  # Channels count in the mean: one pixel, errors (1, 2, 2) -> sqrt(9 / 3).
  p3 = np.array([[[[1.0, 2.0, 2.0]]]])
  np.testing.assert_allclose(metrics.masked_rmse(p3, np.zeros_like(p3)), [math.sqrt(3.0)])
  with pytest.raises(ValueError, match="image\\(s\\) \\[1\\].*empty"):
    metrics.masked_rmse(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)),
                        np.array([np.ones((2, 2)), np.zeros((2, 2))]))
  with pytest.raises(ValueError, match="non-finite"):
    metrics.masked_rmse(pred, target, np.ones((1, 2, 2)))
  with pytest.raises(ValueError, match="shape"):
    metrics.masked_rmse(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))


def test_scaled_rmse_best_scale_and_invariance():
  pred = np.array([[[1.0, 2.0, 5.0]]])
  target = np.array([[[2.0, 2.0, 0.0]]])
  mask = np.array([[[1, 1, 0]]])
  # k = (2 + 4) / (1 + 4) = 1.2; residuals (0.8, -0.4) -> sqrt(0.4).
  rmse, k = metrics.scaled_rmse(pred, target, mask)
  np.testing.assert_allclose(k, [1.2])
  np.testing.assert_allclose(rmse, [math.sqrt(0.4)])
  for c in (1e-3, 7.0):
    np.testing.assert_allclose(metrics.scaled_rmse(c * pred, target, mask)[0], rmse)
  # A proportional prediction has no error; a constant scores the target's std.
  np.testing.assert_allclose(metrics.scaled_rmse(3 * target, target)[0], [0.0], atol=1e-12)
  t = np.array([[[1.0, 3.0, 5.0, 7.0]]])
  np.testing.assert_allclose(metrics.scaled_rmse(np.ones_like(t), t)[0], [np.std(t)])
  np.testing.assert_allclose(metrics.best_scale(np.zeros_like(t), t), [0.0])


def test_spectrum_camera_and_summary_measures():
  np.testing.assert_allclose(metrics.spectrum_rmse([1.0, 3.0], [5.0, 5.0]), [0.5])
  np.testing.assert_allclose(metrics.spectrum_rmse([2.0, 6.0], [1.0, 3.0]), [0.0], atol=1e-12)
  np.testing.assert_allclose(metrics.spectral_angle([[1.0, 0.0]], [[1.0, 1.0]]), [45.0])
  np.testing.assert_allclose(metrics.vector_distance([[3.0, 4.0]], [[0.0, 0.0]]), [5.0])
  np.testing.assert_allclose(metrics.masked_mean(np.array([[[1.0, 5.0]]]), [[[1, 0]]]), [1.0])
  np.testing.assert_allclose(metrics.mask_max(np.array([[[1.0, 5.0]]]), [[[1, 0]]]), [1.0])
  assert metrics.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933992677987828)
  s = metrics.summarise([1.0, 3.0])
  assert (s["mean"], s["std"], s["median"], s["n"]) == (2.0, 1.0, 2.0, 2)
  with pytest.raises(ValueError, match="non-finite"):
    metrics.summarise([1.0, float("nan")])
  with pytest.raises(ValueError, match="positive sum"):
    metrics.spectrum_rmse([0.0, 0.0], [1.0, 1.0])


# ------------------------------------------------------------------- tiny checkpoint


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny untrained BioFaceNet in the trainer's checkpoint layout, 16x16 synthetic data."""
  from bioface_jax.models import biofacenet
  from bioface_jax.train_lib import Checkpointer
  from train import biofacenet_task
  from train.configs import biofacenet as configs
  root = tmp_path_factory.mktemp("eval")
  config = configs.get_config("smoke")
  config.data.size = SIZE
  config.data.num_faces = 12
  config.data.cache_dir = str(root / "cache")
  config.batch_size = 2
  model = biofacenet_task.model_config(config)
  # Fresh values of the right structure: `biofacenet.init` itself takes ~30 s to compile on a
  # busy 2-core CPU. Kernels ~ N(0, 1/fan_in), biases 0, BatchNorm scale/var 1, mean 0.
  abstract = jax.eval_shape(lambda: biofacenet.init(jax.random.key(0), (2, SIZE, SIZE, 3),
                                                    model))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, leaf.dtype)

  params, batch_stats = jax.tree_util.tree_map_with_path(fill, abstract)
  state = dict(params=params, batch_stats=batch_stats,
               opt_state=biofacenet.optimizer(model).init(params))
  with Checkpointer(root / "run" / "checkpoints", async_save=False) as ckpt:
    ckpt.save(3, state, {"step": 3, "config": json.loads(config.to_json())})
  return root


def test_face_errors_zero_for_perfect_prediction(workdir):
  """The wiring of each quantity: a prediction equal to the truth (shading x 2) scores 0."""
  from bioface_jax import physics
  spectra = physics.load_spectra()
  restored = recovery.load_model(workdir / "run")
  train, holdout, _ = recovery.evaluation_sets(restored.config, 3)
  means = recovery.training_means(train, spectra)
  truth = holdout.truth(np.arange(2), recovery.TRUTH_KEYS)
  e = np.asarray(physics.illuminant(spectra, truth["weights"], truth["t"]))
  linear = holdout.get(np.arange(2))["image"]**2.2
  pred = dict(fmel=truth["fmel"], fblood=truth["fblood"], fraction_melanin=truth["melanin"],
              fraction_haemoglobin=truth["haemoglobin"], shading=2 * truth["diffuse"],
              specular=0.5 * truth["specular"], albedo_linear_srgb=truth["albedo"],
              linear_srgb=linear, linear_input=linear, b=truth["b"], illuminant=3 * e)
  errors = recovery.face_errors(pred, truth, e, means)
  for key, pair in errors.items():
    np.testing.assert_allclose(pair["model"], 0.0, atol=1e-4, err_msg=key)
  # The constant shading baseline scores the std of the normalised truth over the mask.
  m = truth["mask"].astype(bool)
  for i in range(2):
    t = truth["diffuse"][i][m[i]]
    np.testing.assert_allclose(errors["diffuse"]["baseline"][i], np.std(t / t.max()), rtol=1e-6)
  assert np.all(errors["melanin"]["baseline"] > 0.01)
  # Offset / pattern split: truth + c has offset c and no pattern error; the baseline's
  # pattern error is the truth's std over the mask, and offset^2 + pattern^2 = RMSE^2.
  shifted = recovery.face_errors(dict(pred, fblood=truth["fblood"] + 0.125), truth, e, means)
  # float32 truth + 0.125 (|sum| < 2) rounds each pixel by <= half an ulp of 1, i.e. eps/2.
  eps = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(shifted["haemoglobin_offset"]["model"], 0.125, rtol=0, atol=eps)
  np.testing.assert_allclose(shifted["haemoglobin_pattern"]["model"], 0.0, atol=2 * eps)
  for i in range(2):
    t = truth["fblood"][i][m[i]].astype(np.float64)
    np.testing.assert_allclose(errors["haemoglobin_pattern"]["baseline"][i], t.std(), rtol=1e-9)
    b = errors
    np.testing.assert_allclose(b["haemoglobin_offset"]["baseline"][i] ** 2
                               + b["haemoglobin_pattern"]["baseline"][i] ** 2,
                               b["haemoglobin"]["baseline"][i] ** 2, rtol=1e-9)


def test_heldout_world_switch_scores_the_same_faces_of_another_world(workdir):
  """--heldout faces|scenes swaps only the world: same split sizes, other pixels; own = faces."""
  restored = recovery.load_model(workdir / "run")
  assert restored.config.data.world == "faces"
  _, own, own_note = recovery.evaluation_sets(restored.config, 2)
  _, same, same_note = recovery.evaluation_sets(restored.config, 2, heldout="faces")
  _, scenes, note = recovery.evaluation_sets(restored.config, 2, heldout="scenes")
  assert own_note == same_note and "the run's config" in own_note
  assert "'scenes' world (the run trained on 'faces')" in note
  assert len(scenes) == len(own)
  np.testing.assert_array_equal(same.get([0])["image"], own.get([0])["image"])
  a, b = own.get([0])["image"], scenes.get([0])["image"]
  assert a.shape == b.shape and not np.array_equal(a, b)
  assert scenes.truth([0], ["mask"])["mask"].any()
  # A run with a realism switch off (the ablation's) is scored on the default-switch scenes.
  switched = restored.config.copy_and_resolve_references()
  switched.data.world, switched.data.scene.camera = "scenes", "srgb"
  _, own_switched, _ = recovery.evaluation_sets(switched, 2)
  _, common, _ = recovery.evaluation_sets(switched, 2, heldout="scenes")
  np.testing.assert_array_equal(common.get([0])["image"], scenes.get([0])["image"])
  assert not np.array_equal(own_switched.get([0])["image"], scenes.get([0])["image"])
  with pytest.raises(ValueError, match="heldout must be one of"):
    recovery.evaluation_sets(restored.config, 2, heldout="objects")


def test_nfe_runs_are_evaluated_on_generated_synthetic_faces(workdir, monkeypatch):
  restored = recovery.load_model(workdir / "run")
  config = restored.config.copy_and_resolve_references()
  config.data.source = "nfe"
  monkeypatch.setattr(recovery, "STATS_FACES", 3)
  train, holdout, note = recovery.evaluation_sets(config, 2, workdir / "nfe_cache")
  assert (len(train), len(holdout)) == (3, 2)
  assert "NOT the run's data" in note
  assert holdout.truth([0], ["fmel"])["fmel"].shape == (1, SIZE, SIZE)


def test_recovery_command_writes_finite_results(workdir, capsys):
  out = workdir / "recovery_out"
  assert recovery.main(["--workdir", str(workdir / "run"), "--n", "3", "--batch-size", "2",
                        "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "| Melanin |" in printed and "Camera b" in printed
  results = json.loads((out / "recovery.json").read_text())
  assert results["n_faces"] == 3 and results["step"] == 3
  assert set(results["quantities"]) == set(recovery.QUANTITIES)
  for key, q in results["quantities"].items():
    for who in ("model", "baseline"):
      assert math.isfinite(q[who]["mean"]) and q[who]["n"] == 3, (key, who)
  assert (out / "recovery.png").stat().st_size > 0
  assert "| Diffuse shading |" in (out / "recovery.md").read_text()


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, monkeypatch):
  missing = tmp_path / "no_run"
  assert recovery.main(["--workdir", str(missing)]) == 2
  err = capsys.readouterr().err
  assert "no BioFaceNet checkpoint" in err and "python -m train.biofacenet" in err
  assert not missing.exists()  # Nothing created as a side effect.
  with pytest.raises(recovery.CheckpointNotFoundError):
    recovery.load_model(missing)
  monkeypatch.setattr(iset_table1, "DEFAULT_CHECKPOINT", tmp_path / "default")
  assert iset_table1.main([]) == 2
  err = capsys.readouterr().err
  # The hint trains into a run directory, never into the shipped model's package folder.
  assert "--checkpoint runs/default" in err and "train.biofacenet" in err
  assert "pretrained/shipped" not in err


# ------------------------------------------------------------------------------ table 1


def test_relit_cube_matches_renderer(spectra, lut):
  """Re-lighting l = e (i_d R + i_s) per band and imaging it = physics.render under D65."""
  from bioface_jax import physics
  rng = np.random.default_rng(0)
  shape = (3, 4)
  fmel, fblood = (rng.uniform(-0.9, 0.9, shape).astype(np.float32) for _ in range(2))
  i_d, i_s = rng.uniform(0.2, 2, shape), rng.uniform(0, 0.3, shape)
  weights = np.eye(14, dtype=np.float32)[0] * 0.7 + np.eye(14, dtype=np.float32)[5] * 0.3
  d65 = np.eye(14, dtype=np.float32)[1]
  b = np.array([0.5, -1.0], np.float32)
  # Tables and inputs in float64; relit_linear_srgb still evaluates e, s and T through float32
  # arguments (by design), so the bound is float32 rounding of the last stage's terms:
  # |diff| <= 48 eps32 * |M_srgb| |T| wb (each of e, s, T is a <= 33-term sum, <= ~40 roundings).
  with jax.enable_x64(True):
    spectra64 = physics.load_spectra()
    lut64 = jnp.asarray(np.asarray(lut), jnp.float64)
    e64 = 10.0 * np.asarray(physics.illuminant(spectra64, weights, 5.0), np.float64)
    refl = np.asarray(physics.skin_reflectance(lut64, fmel, fblood), np.float64)
    cube = e64 * (i_d[..., None] * refl + i_s[..., None])
    relit = iset_table1.relit_linear_srgb(spectra64, cube, e64, d65, 3.5, b)
    out = physics.render(spectra64, lut64, fmel, fblood, i_d, i_s, d65, 3.5, b)
    ref = np.asarray(out["linear_srgb"])
    assert ref.dtype == np.float64
    t_abs = np.abs(np.asarray(physics.raw_to_xyz(spectra64, b)))
  m_abs = np.abs(physics.display.XYZ_TO_LINEAR_SRGB)
  scale = np.einsum("ij,jk,...k->...i", m_abs, t_abs, np.abs(np.asarray(out["white_balanced"])))
  np.testing.assert_array_less(np.abs(relit - ref), 48 * np.finfo(np.float32).eps * scale)


def test_area_resize():
  x = np.arange(24, dtype=np.float64).reshape(4, 6)  # central square = columns 1..4
  np.testing.assert_allclose(iset_table1._area_resize(x, 2),
                             [[(1 + 2 + 7 + 8) / 4, (3 + 4 + 9 + 10) / 4],
                              [(13 + 14 + 19 + 20) / 4, (15 + 16 + 21 + 22) / 4]])
  np.testing.assert_allclose(iset_table1._area_resize(np.full((5, 5, 2), 3.0), 2), 3.0)


def test_table1_end_to_end_on_two_scenes(workdir, capsys):
  out = workdir / "table1_out"
  cache = workdir / "scene_cache"
  args = ["--checkpoint", str(workdir / "run"), "--count", "2", "--cache-dir", str(cache),
          "--out", str(out), "--fit-iterations", "4", "--fit-grid", "8"]
  assert iset_table1.main(args) == 0
  printed = capsys.readouterr().out
  assert "0.5972" in printed and "BioFaceNet (ours, vs pseudo-GT)" in printed
  scene_dir = cache / f"iset_scenes_2_seed0_{SIZE}px_v1"
  assert sorted(p.name for p in scene_dir.glob("*.mat")) == ["scene_000.mat", "scene_001.mat"]
  results = json.loads((out / "table1.json").read_text())
  assert results["n_scenes"] == 2
  table = results["table"]
  for label in ("BioFaceNet (ours, vs pseudo-GT)", "Constant maps (vs pseudo-GT)",
                "BioFaceNet (ours, vs true maps)", "Least-squares fit (vs true maps)"):
    for column in ("diffuse", "specular", "albedo", "melanin", "haemoglobin"):
      assert math.isfinite(table[label][column]["mean"]), (label, column)
  assert math.isfinite(table["BioFaceNet (ours, vs pseudo-GT)"]["reconstruction"]["mean"])
  # Noise-free synthetic scenes: the fit recovers the true pigments closely.
  assert table["Least-squares fit (vs true maps)"]["melanin"]["mean"] < 0.05
  assert (out / "table1.png").stat().st_size > 0 and "Conventions" in (
      out / "table1.md").read_text()
  # The cached scenes are reused (no regeneration message).
  assert iset_table1.default_scenes(2, SIZE, 0, cache) == scene_dir
  assert "generating" not in capsys.readouterr().out
