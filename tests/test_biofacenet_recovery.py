"""Supervised ground-truth terms, in-training recovery metrics and the recovery ladder's
per-pixel inversion, each against an independent float64 NumPy transcription or the renderer."""

import numpy as np
import pytest

EPS32 = float(np.finfo(np.float32).eps)


def _tiny_config(**kw):
  from bioface_jax.models import biofacenet
  return biofacenet.BioFaceNetConfig(base_filters=2, depth=2, fc_width=8, logit_max=3.0, **kw)


def _batch(rng, b=2, s=16):
  mask = np.zeros((b, s, s), np.float32)
  mask[:, 3:13, 4:12] = 1.0
  w = rng.dirichlet(np.ones(14), b).astype(np.float32)
  return dict(image=rng.uniform(0.1, 0.9, (b, s, s, 3)).astype(np.float32), mask=mask,
              shading=rng.uniform(0, 1, (b, s, s)).astype(np.float32),
              fmel=rng.uniform(-0.9, 0.9, (b, s, s)).astype(np.float32),
              fblood=rng.uniform(-0.9, 0.9, (b, s, s)).astype(np.float32),
              b=rng.normal(size=(b, 2)).astype(np.float32), weights=w,
              t=rng.uniform(1, 22, b).astype(np.float32))


def test_truth_terms_match_numpy_and_add_to_the_self_supervised_loss(spectra, lut):
  import jax
  from bioface_jax import physics
  from bioface_jax.models import biofacenet
  rng = np.random.default_rng(0)
  batch = _batch(rng)
  weights = (0.7, 1.3, 0.05, 0.2)
  sup, plain = _tiny_config(truth_weights=weights), _tiny_config()
  assert sup.supervised and not plain.supervised
  params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, sup)
  loss_s, (terms, _, out) = biofacenet.compute_loss(params, stats, batch, spectra, lut, sup,
                                                    train=False)
  loss_p, _ = biofacenet.compute_loss(params, stats, batch, spectra, lut, plain, train=False)
  o = {k: np.asarray(out[k], np.float64) for k in ("fmel", "fblood", "b")}
  m = batch["mask"].astype(np.float64)
  e = np.asarray(out["render"]["illuminant"], np.float64)
  e_t = np.asarray(physics.illuminant(spectra, batch["weights"], batch["t"]), np.float64)
  ref = dict(
      truth_melanin=(m * (o["fmel"] - batch["fmel"])**2).sum((1, 2)) / m.sum((1, 2)),
      truth_haemoglobin=(m * (o["fblood"] - batch["fblood"])**2).sum((1, 2)) / m.sum((1, 2)),
      truth_camera=((o["b"] - batch["b"])**2).sum(-1),
      truth_illuminant=((e / e.mean(-1, keepdims=True)
                         - e_t / e_t.mean(-1, keepdims=True))**2).mean(-1))
  extra = sum(w * ref[k].mean() for w, k in zip(weights, ref))
  for k, v in ref.items():
    # float32 sums of <= 16*16 squared terms of size <= 4: a few hundred eps relative.
    np.testing.assert_allclose(float(terms[k]), v.mean(), rtol=500 * EPS32, atol=1e-7)
  # Total: self-supervised part (which dominates in magnitude) + the weighted truth terms.
  np.testing.assert_allclose(float(loss_s), float(loss_p) + extra,
                             rtol=100 * EPS32 * (1 + float(loss_p) / extra))


def test_supervised_loss_needs_truth_in_the_batch(spectra, lut):
  import jax
  from bioface_jax.models import biofacenet
  batch = _batch(np.random.default_rng(1))
  cfg = _tiny_config(truth_weights=(1.0, 0.0, 0.0, 0.0))
  params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, cfg)
  with pytest.raises(KeyError, match="fblood"):
    biofacenet.compute_loss(params, stats, {k: v for k, v in batch.items() if k != "fblood"},
                            spectra, lut, cfg, train=False)
  with pytest.raises(ValueError, match="truth_weights"):
    _tiny_config(truth_weights=(1.0, -1.0, 0.0, 0.0))


@pytest.mark.parametrize("margin", [2, 3])
def test_off_skin_term_matches_numpy_and_needs_no_truth(spectra, lut, margin):
  import jax
  from bioface_jax.models import biofacenet
  batch = _batch(np.random.default_rng(3))
  batch = {k: batch[k] for k in ("image", "mask", "shading")}  # no ground truth needed
  w = 0.6
  off = _tiny_config(off_skin_weight=w, off_skin_margin=margin)
  plain = _tiny_config()
  params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, off)
  loss_o, (terms, _, out) = biofacenet.compute_loss(params, stats, batch, spectra, lut, off,
                                                    train=False)
  loss_p, (terms_p, _, _) = biofacenet.compute_loss(params, stats, batch, spectra, lut, plain,
                                                    train=False)
  assert "off_skin_pigment" not in terms_p
  m = batch["mask"].astype(np.float64)
  # Pixels with no mask pixel within `margin` (Chebyshev distance), by brute force.
  o = np.ones_like(m)
  for i, j in zip(*np.nonzero(m.any(0))):
    o[:, max(i - margin, 0):i + margin + 1, max(j - margin, 0):j + margin + 1] *= (
        1.0 - m[:, i:i + 1, j:j + 1])
  assert 0 < o.sum() < o.size - m.sum()  # the margin removes pixels, and some remain
  fm, fb = (np.asarray(out[k], np.float64) for k in ("fmel", "fblood"))
  ref = 0.5 * ((o * (fm + 1)**2).sum((1, 2)) + (o * (fb + 1)**2).sum((1, 2))) / o.sum((1, 2))
  # float32 sums of <= 16*16 squared terms of size <= 4: a few hundred eps relative.
  np.testing.assert_allclose(float(terms["off_skin_pigment"]), ref.mean(), rtol=500 * EPS32)
  extra = w * ref.mean()
  np.testing.assert_allclose(float(loss_o), float(loss_p) + extra,
                             rtol=100 * EPS32 * (1 + float(loss_p) / extra))
  with pytest.raises(ValueError, match="off_skin_weight"):
    _tiny_config(off_skin_weight=-1.0)
  with pytest.raises(ValueError, match="off_skin_margin"):
    _tiny_config(off_skin_margin=-1)


def test_face_region_term_matches_numpy_outside_the_mask_only(spectra, lut):
  import jax
  from bioface_jax.models import biofacenet
  batch = _batch(np.random.default_rng(4))
  batch = {k: batch[k] for k in ("image", "mask", "shading")}
  region = np.zeros_like(batch["mask"])
  region[:, 1:15, 2:14] = 1.0  # the face: the skin mask and a ring of parts around it
  w = 0.8
  cfg, plain = _tiny_config(face_region_weight=w), _tiny_config()
  params, stats = biofacenet.init(jax.random.key(0), batch["image"].shape, cfg)
  with pytest.raises(KeyError, match="face_region"):
    biofacenet.compute_loss(params, stats, batch, spectra, lut, cfg, train=False)
  with pytest.raises(ValueError, match="face_region"):
    biofacenet.compute_loss(params, stats, {**batch, "face_region": region[:, :8]}, spectra,
                            lut, cfg, train=False)
  loss_r, (terms, _, out) = biofacenet.compute_loss(
      params, stats, {**batch, "face_region": region}, spectra, lut, cfg, train=False)
  loss_p, (terms_p, _, _) = biofacenet.compute_loss(params, stats, batch, spectra, lut, plain,
                                                    train=False)
  assert "face_appearance" not in terms_p
  extra_px = region * (1.0 - batch["mask"])
  assert extra_px.sum() > 0
  d = (np.asarray(out["linear_input"], np.float64)
       - np.asarray(out["render"]["linear_srgb"], np.float64))
  ref = (255.0 / 224.0)**2 * (extra_px[..., None] * d**2).sum((1, 2, 3))
  # float32 sums of <= 16*16*3 squared terms: a few hundred eps relative.
  np.testing.assert_allclose(float(terms["face_appearance"]), ref.mean(), rtol=500 * EPS32)
  w_app = cfg.loss_weights[0]
  extra = w_app * w * ref.mean()
  np.testing.assert_allclose(float(loss_r), float(loss_p) + extra,
                             rtol=100 * EPS32 * (1 + float(loss_p) / extra))
  with pytest.raises(ValueError, match="face_region_weight"):
    _tiny_config(face_region_weight=-1.0)


def test_face_region_labels_are_the_face_and_its_parts():
  from data.synth import labels as L
  lab = np.arange(L.NUM_LABELS, dtype=np.uint8)[None]
  region = L.face_region(lab)[0]
  inside = {L.NAMES[i] for i in np.nonzero(region)[0]}
  assert {"skin", "brow_left", "eye_right", "mouth", "teeth", "lower_lip"} <= inside
  assert not inside & {"background", "hair", "neck", "cloth", "ear_left", "hand"}
  with pytest.raises(ValueError, match="labels"):
    L.face_region(np.array([L.NUM_LABELS]))


def test_recovery_metrics_match_numpy():
  import jax.numpy as jnp
  from train.biofacenet_task import recovery_metrics
  rng = np.random.default_rng(2)
  batch = _batch(rng)
  e_true = rng.uniform(0.5, 1.5, (2, 33))
  out = dict(fmel=rng.uniform(-1, 1, (2, 16, 16)), fblood=rng.uniform(-1, 1, (2, 16, 16)),
             b=rng.normal(size=(2, 2)), linear_input=rng.uniform(0, 1, (2, 16, 16, 3)),
             render=dict(illuminant=rng.uniform(0.5, 1.5, (2, 33)),
                         linear_srgb=rng.uniform(0, 1, (2, 16, 16, 3))))
  got = recovery_metrics(jax_tree(out, jnp), jax_tree(batch, jnp), jnp.asarray(e_true))
  m = batch["mask"].astype(bool)
  rmse = lambda p, t: np.mean([np.sqrt(np.mean((p[i] - t[i])[m[i]]**2)) for i in range(2)])  # noqa: E731
  e = out["render"]["illuminant"]
  ang = np.degrees(np.arccos((e * e_true).sum(-1) / np.linalg.norm(e, axis=-1)
                             / np.linalg.norm(e_true, axis=-1)))
  ref = {"recovery/melanin_rmse": rmse(out["fmel"], batch["fmel"]),
         "recovery/haemoglobin_rmse": rmse(out["fblood"], batch["fblood"]),
         "recovery/camera_b": np.linalg.norm(out["b"] - batch["b"], axis=-1).mean(),
         "recovery/illuminant_angle": ang.mean(),
         "recovery/reconstruction_rmse": rmse(out["render"]["linear_srgb"], out["linear_input"])}
  for k, v in ref.items():
    # arccos near small angles amplifies float32 rounding of the cosine: compare loosely there
    # (|d angle| <= sqrt(2 * 8 eps) rad); the rest are float32 means of O(1) terms.
    tol = np.degrees(np.sqrt(16 * EPS32)) if "angle" in k else 1e4 * EPS32 * abs(v)
    assert abs(float(got[k]) - v) <= tol, (k, float(got[k]), v)


def jax_tree(d, jnp):
  return {k: jax_tree(v, jnp) if isinstance(v, dict) else jnp.asarray(v, jnp.float32)
          for k, v in d.items()}


def test_ladder_colour_table_matches_the_renderer_and_inversion_finds_the_node(spectra, lut):
  from bioface_jax import physics
  from eval import recovery_ladder
  rng = np.random.default_rng(3)
  w = rng.dirichlet(np.ones(14), 1).astype(np.float32)
  t, b = np.float32([9.0]), np.float32([[0.4, -0.8]])
  table, coords, white = recovery_ladder.colour_tables(spectra, lut, w, t, b, grid=16)
  pick = rng.choice(len(coords), 6, replace=False)
  fm, fb = coords[pick, 0], coords[pick, 1]
  out = physics.render(spectra, lut, fm[None, None].astype(np.float32),
                       fb[None, None].astype(np.float32), np.ones((1, 1, 6), np.float32),
                       np.zeros((1, 1, 6), np.float32), w, t, b)
  rendered = np.asarray(out["linear_srgb"])[0, 0]
  ok = (table[0, pick] > 0).all(-1)  # the renderer's final ReLU: compare unclipped pixels
  # Renderer in float32 vs the table's float32 einsum: relative rounding of ~3 chained sums.
  np.testing.assert_allclose(rendered[ok], table[0, pick][ok], rtol=1e-4, atol=1e-6)
  one = np.ones((1, 1, 1), np.float32)
  white_r = np.asarray(physics.render(spectra, lut, -one, -one, 0 * one, one, w, t,
                                      b)["linear_srgb"])[0, 0, 0]
  np.testing.assert_allclose(white_r, np.maximum(white[0], 0), rtol=1e-4, atol=1e-6)
  # Exact nodes times arbitrary positive shading are recovered exactly.
  y = table[0, pick] * rng.uniform(0.1, 3.0, (6, 1))
  found, res = recovery_ladder.invert(y, table[0], coords)
  np.testing.assert_array_equal(found, coords[pick])
  assert np.all(res <= 1e-9 * (y * y).sum(-1))


def test_recovery_scatter_figure_writes_a_png(tmp_path):
  from eval.recovery_figure import save_recovery_scatter
  rng = np.random.default_rng(4)
  n = 6
  per_face = {k: dict(true=rng.uniform(0, 0.2, n).tolist(), predicted=rng.uniform(0, 0.2, n),
                      pearson_r=0.5) for k in ("melanin", "haemoglobin")}
  camera = dict(true=rng.normal(size=(n, 2)), predicted=rng.normal(size=(n, 2)))
  mask = np.zeros((2, 8, 8), bool)
  mask[:, 2:6, 2:6] = True
  maps = dict(fmel=rng.uniform(-1, 1, (2, 8, 8)), fblood=rng.uniform(-1, 1, (2, 8, 8)))
  path = tmp_path / "s.png"
  save_recovery_scatter(path, per_face, camera, rng.uniform(0, 1, (2, 8, 8, 3)), maps,
                        dict(maps, mask=mask), rows=2)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_supervised_task_batches_carry_the_truth_of_their_own_faces(tmp_path):
  from data import pipeline
  from train import biofacenet_task
  from train.configs import biofacenet as configs
  config = configs.get_config("smoke")
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.num_faces = 40  # 10 held out: one eval batch of 8
  config.model.truth_weights = (1.0, 1.0, 0.01, 0.1)
  task = biofacenet_task.BioFaceNetTask.create(config)
  batches = task.make_batches(0)
  try:
    batch = next(iter(batches))
  finally:
    batches.close()
  idx = pipeline.batch_indices(len(task.train_set), config.batch_size, config.seed, 0)
  truth = task.train_set.truth(idx, ("fmel", "b"))  # any order; rows follow idx
  np.testing.assert_array_equal(batch["fmel"], truth["fmel"])
  np.testing.assert_array_equal(batch["b"], truth["b"])
  # Eval batches carry the held-out truth, so eval_step logs recovery metrics.
  eval_batch = next(iter(task.make_eval_batches()))
  assert set(eval_batch) >= {"fmel", "fblood", "b", "weights", "t", "image", "mask"}


def test_srgb_input_decode_inverts_the_generators_curve():
  import jax.numpy as jnp
  from bioface_jax.models import biofacenet
  x = np.linspace(0.0, 1.0, 257)
  # IEC 61966-2-1 inverse in float64 (independent transcription).
  ref = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
  _, lin = biofacenet.preprocess(jnp.asarray(np.stack([x] * 3, -1), jnp.float32), "srgb")
  # float32 power of values <= 1: a few eps relative, plus the float32 rounding of x itself
  # (d/dx of the curve <= 2.4 / 1.055 relative).
  np.testing.assert_allclose(np.asarray(lin)[:, 0], ref, rtol=8 * EPS32, atol=1e-9)
  _, lin_g = biofacenet.preprocess(jnp.asarray(np.stack([x] * 3, -1), jnp.float32))
  np.testing.assert_allclose(np.asarray(lin_g)[:, 0], x ** 2.2, rtol=8 * EPS32, atol=1e-9)
  with pytest.raises(ValueError, match="input_decode"):
    biofacenet.BioFaceNetConfig(input_decode="linear")


def test_log_chromaticity_input_matches_numpy_and_widens_the_first_conv():
  import jax
  import jax.numpy as jnp
  from bioface_jax.models import biofacenet
  rng = np.random.default_rng(3)
  lin = rng.uniform(0.0, 1.0, (4, 5, 3))
  lin[0, 0] = 0.0  # 8-bit black: the floor keeps it finite
  e, k = biofacenet.LOG_CHROMA_EPS, biofacenet.LOG_CHROMA_SCALE
  log = np.log(lin + e)
  ref = k * (log - log.mean(-1, keepdims=True))  # float64, independent transcription
  got = np.asarray(biofacenet.log_chromaticity(jnp.asarray(lin, jnp.float32)), np.float64)
  # float32: the input's rounding and the sum x + eps are relative eps each, i.e. up to
  # ~2 eps absolute in the log; log itself rounds to eps * |log| <= eps * 7 (x + eps >= 1e-3);
  # three such logs enter each feature, then the scale k.
  np.testing.assert_allclose(got, ref, rtol=0, atol=k * 3 * 9 * EPS32)
  np.testing.assert_allclose(got.sum(-1), 0.0, atol=k * 3 * 9 * EPS32 * 3)
  # A diffuse pixel scaled by s keeps its features (up to the floor): s = 0.5, colours >= 0.2.
  bright = rng.uniform(0.2, 1.0, (8, 3))
  a = np.asarray(biofacenet.log_chromaticity(jnp.asarray(bright, jnp.float32)))
  b = np.asarray(biofacenet.log_chromaticity(jnp.asarray(0.5 * bright, jnp.float32)))
  # d/ds log(s x + eps) differs between channels by at most eps/x_min ~ 5e-3 per halving.
  assert np.abs(a - b).max() < k * 2 * e / 0.1
  cfg = _tiny_config(input_features="rgb+logchroma")
  params, stats = biofacenet.init(jax.random.key(0), (2, 16, 16, 3), cfg)
  first_conv = lambda p: p["unet"]["enc_0"]["conv_0"]["kernel"].shape[2]  # noqa: E731
  assert first_conv(params) == 6
  plain, _ = biofacenet.init(jax.random.key(0), (2, 16, 16, 3), _tiny_config())
  assert first_conv(plain) == 3
  out = biofacenet.predict(params, stats, jnp.asarray(rng.uniform(0, 1, (2, 16, 16, 3)),
                                                      jnp.float32), cfg)
  assert np.all(np.isfinite(np.asarray(out["fmel"])))
  with pytest.raises(ValueError, match="input_features"):
    biofacenet.BioFaceNetConfig(input_features="hsv")
