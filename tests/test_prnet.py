"""PRNet: parameter counts (prnet-spec.md §10), TF SAME / transposed-conv parity against NumPy
references, the weighted and landmark losses against float64 transcriptions, synthetic truth,
bad input, and a 2-step train-and-restore on the smoke config."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import face3d
from bioface_jax.models import prnet

EPS32 = float(np.finfo(np.float32).eps)


def _count(encoder, w=1.0, r=256):
  cfg = prnet.PRNetConfig(encoder=encoder, width_multiplier=w, input_size=r)
  params, stats = jax.eval_shape(lambda: prnet.init(jax.random.key(0), (1, r, r, 3), cfg))
  size = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))  # noqa: E731
  return size(params), size(stats), params


def test_official_resfcn256_counts():
  n, stats, params = _count("resfcn")
  assert n == 13_353_618 and stats == 11_890
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params["encoder"])) == 3_587_872
  kernels = [p for p, _ in jax.tree_util.tree_leaves_with_path(params) if p[-1].key == "kernel"]
  assert len(kernels) == 53
  # The only biases are BatchNorm betas (48 BN layers, each with a scale): convs have none.
  keys = [p[-1].key for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  assert keys.count("bias") == keys.count("scale") == 48


@pytest.mark.parametrize("encoder,w,want", [("resnet18", 1.0, 20_942_258),
                                            ("mobilenet_v2", 1.0, 12_646_002),
                                            ("resfcn", 0.25, 837_402)])
def test_encoder_variant_counts(encoder, w, want):
  assert _count(encoder, w)[0] == want


def _np_conv_same(x, k, s):
  """TF SAME conv in float64: out = ceil(in/s), pad_before = floor(total/2)."""
  h, w, _ = x.shape
  kh, kw, _, cout = k.shape
  oh, ow = -(-h // s), -(-w // s)
  ph = max((oh - 1) * s + kh - h, 0)
  pw = max((ow - 1) * s + kw - w, 0)
  xp = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  out = np.zeros((oh, ow, cout))
  for i in range(oh):
    for j in range(ow):
      out[i, j] = np.tensordot(xp[i * s:i * s + kh, j * s:j * s + kw], k, 3)
  return out


@pytest.mark.parametrize("stride", [1, 2])
def test_same_conv_and_transposed_conv_parity(stride):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 8, 3))
  k = rng.normal(size=(4, 4, 3, 5))
  with jax.enable_x64(True):
    conv = nn.Conv(5, (4, 4), (stride, stride), padding="SAME", use_bias=False,
                   param_dtype=jnp.float64)
    y = np.asarray(conv.apply({"params": {"kernel": k}}, x[None]))[0]
    np.testing.assert_allclose(y, _np_conv_same(x, k, stride), rtol=1e-12, atol=1e-12)
    # conv2d_transpose is the adjoint of the SAME conv: <T g, x> = <g, C x> for all x, g.
    convt = nn.ConvTranspose(3, (4, 4), (stride, stride), padding="SAME", use_bias=False,
                             transpose_kernel=True, param_dtype=jnp.float64)
    g = rng.normal(size=y.shape)
    tg = np.asarray(convt.apply({"params": {"kernel": k}}, g[None]))[0]
    assert tg.shape == x.shape
    for _ in range(3):
      xr = rng.normal(size=x.shape)
      np.testing.assert_allclose((tg * xr).sum(), (g * _np_conv_same(xr, k, stride)).sum(),
                                 rtol=1e-10)


def _small_cfg(**kw):
  return prnet.PRNetConfig(width_multiplier=0.125, input_size=32, bn_momentum=0.9, **kw)


def test_losses_match_float64_transcriptions():
  cfg = _small_cfg(l2=0.0)
  params, stats = prnet.init(jax.random.key(0), (2, 32, 32, 3), cfg)
  rng = np.random.default_rng(1)
  image = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
  posmap = rng.uniform(-5, 40, (2, 32, 32, 3)).astype(np.float32)  # Some outside [0, 1.1R].
  lmk = rng.uniform(0, 32, (2, 68, 3)).astype(np.float32)
  batch = dict(image=image, posmap=posmap, landmarks=lmk, has_dense=np.array([1.0, 0.0]))
  loss, (terms, _, s) = jax.jit(lambda p, st, b: prnet.compute_loss(p, st, b, cfg, train=False))(
      params, stats, batch)
  s = np.asarray(s, np.float64)
  w = face3d.weight_mask(32).astype(np.float64)
  t = np.clip(posmap / (1.1 * 32), 0, 1)
  dense0 = (w * np.sqrt(((s[0] - t[0]) ** 2).sum(-1) + 1e-12)).sum() / w.sum()
  pl = np.asarray(face3d.landmarks_from_position_map(s[1].astype(np.float32)), np.float64)
  lm1 = np.sqrt(((pl[:, :2] - lmk[1, :, :2] / (1.1 * 32)) ** 2).sum(-1) + 1e-12).mean()
  # float32 sums over 1,024 weighted terms of size <= 1: relative 1,024 eps32 is a safe bound.
  np.testing.assert_allclose(float(loss), 0.5 * (dense0 + lm1), rtol=1024 * EPS32)
  np.testing.assert_allclose(float(terms["map"]), dense0, rtol=1024 * EPS32)


def test_l2_penalty_counts_kernels_only():
  params = {"a": {"kernel": jnp.ones((2, 2))}, "b": {"scale": jnp.ones(3) * 5}}
  assert float(prnet.l2_penalty(params)) == 2.0


def test_bad_inputs_name_the_problem():
  # The checks look at shapes and dtypes only, so the network runs abstractly (jax.eval_shape:
  # traced, not compiled); a check placed after the network still has to be reached.
  cfg = _small_cfg()
  with pytest.raises(ValueError, match=r"\(batch, 32, 32, 3\)"):
    prnet.init(jax.random.key(0), (1, 64, 64, 3), cfg)
  params, stats = jax.eval_shape(lambda: prnet.init(jax.random.key(0), (1, 32, 32, 3), cfg))
  good = np.zeros((1, 32, 32, 3), np.float32)
  jax.eval_shape(lambda p, s: prnet.compute_loss(p, s, dict(image=good, posmap=good), cfg),
                 params, stats)  # Well-formed input passes.
  with pytest.raises(ValueError, match="floating point"):
    jax.eval_shape(lambda p, s: prnet.apply(p, s, np.zeros((1, 32, 32, 3), np.uint8), cfg),
                   params, stats)
  with pytest.raises(ValueError, match="posmap"):
    jax.eval_shape(lambda p, s: prnet.compute_loss(
        p, s, dict(image=good, posmap=np.zeros((1, 64, 64, 3))), cfg), params, stats)
  with pytest.raises(ValueError, match="encoder"):
    prnet.PRNetConfig(encoder="vgg")
  with pytest.raises(ValueError, match="input_size"):
    prnet.PRNetConfig(input_size=100)


def test_synthetic_truth_follows_prnet_conventions():
  from data.prnet import synth
  pair = synth.sample_pair(0, 3, size=256)
  pm = pair["posmap"]
  mask = face3d.face_mask(256)
  assert (pm[~mask] == 0).all()
  assert pm[mask][:, 2].min() == 0.0  # z shifted to min 0 over the vertices.
  # Landmarks = the map at uv_kpt_ind (float32 rounding of a copy: exact).
  np.testing.assert_array_equal(np.asarray(face3d.landmarks_from_position_map(pm)),
                                pair["landmarks3d"])
  assert abs(pair["pose"][0]) <= 90


@pytest.mark.slow
def test_smoke_trains_two_steps_and_restores(tmp_path):
  from bioface_jax import train_lib
  from train import prnet_task
  from train.configs import prnet as prnet_configs
  config = prnet_configs.get_config("smoke")
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.size = 32          # Tiny: the test budget is compile time.
  config.data.num_train = 16
  config.figure_every_steps = 0
  config.eval_every_steps = 0    # Eval metrics (NME) are tested in test_face3d / test_prnet_eval.
  task = prnet_task.make_task(config, stream=False)
  workdir = tmp_path / "run"
  state, history = train_lib.train(task, config, workdir)
  assert [h["step"] for h in history] == [1, 2]
  assert all(np.isfinite(h["loss"]) for h in history)
  assert history[1]["loss"] != history[0]["loss"]
  params, stats, model, _, step = prnet_task.restore_for_inference(workdir)
  assert step == 2 and model.input_size == 32 and model.width_multiplier == 0.125
  for a, b in zip(jax.tree.leaves((params, stats)),
                  jax.tree.leaves((state["params"], state["batch_stats"]))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # Restored exactly.
