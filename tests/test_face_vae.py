"""Face VAE model, losses and optimiser against the spec's numbers and hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bioface_jax.models import face_vae as fv
from bioface_jax.models import face_vae_loss as fl

U32 = 2.0**-24


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_counts_equal_the_keras_counts():
  # face-vae-spec.md section 2 (Keras count): 9,328,228 trainable + 8,960 BN statistics with
  # the mask branch; 9,059,331 + 8,064 without.
  for mask, trainable, stats in ((True, 9_328_228, 8_960), (False, 9_059_331, 8_064)):
    config = fv.FaceVAEConfig(mask_branch=mask)
    params, batch_stats = jax.eval_shape(lambda c=config: fv.init(jax.random.key(0),
                                                                  (1, 144, 144, 3), c))
    assert (_count(params), _count(batch_stats)) == (trainable, stats)


def test_sides_paddings_and_output_shapes():
  assert fv.encoder_sides(144) == [144, 72, 36, 18, 9, 4, 2, 1]
  assert fv.decoder_paddings(144) == ["SAME", "SAME", "VALID"] + ["SAME"] * 4
  assert fv.decoder_paddings(72) == ["SAME", "SAME", "VALID", "SAME", "SAME", "SAME"]
  assert fv.decoder_paddings(64) == ["SAME"] * 6
  for size in (144, 100, 72, 16):
    config = fv.FaceVAEConfig(input_size=size, latent_dim=8, width_multiplier=0.125)
    out = jax.eval_shape(lambda c=config, s=size: fv.make_model(c).init_with_output(
        jax.random.key(0), jnp.zeros((2, s, s, 3)), train=False)[0])
    assert out["image_pre"].shape == (2, size, size, 3)
    assert out["mask"].shape == (2, size, size) and out["z"].shape == (2, 8)
  for bad in (15, 256):
    with pytest.raises(ValueError, match="input_size"):
      fv.FaceVAEConfig(input_size=bad)


def _tiny(**kw):
  config = fv.FaceVAEConfig(input_size=16, latent_dim=8, width_multiplier=0.125, **kw)
  params, stats = jax.jit(fv.init, static_argnums=(1, 2))(jax.random.key(0), (4, 16, 16, 3),
                                                          config)
  return config, params, stats


def test_sampling_standard_vs_authors_and_eval_uses_the_mean():
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)), jnp.float32)
  config, params, stats = _tiny()
  rng = jax.random.key(3)
  apply = jax.jit(fv.apply, static_argnames=("config", "train"))  # one compile, not op by op
  std, _ = apply(params, stats, x, config, train=True, rng=rng)
  authors = fv.FaceVAEConfig(**{**config.__dict__, "sampling": "authors"})
  auth, _ = apply(params, stats, x, authors, train=True, rng=rng)
  # Same rng stream -> same eps: (z - mean) / exp(logvar / 2) == (z - mean) / logvar.
  eps_std = (std["z"] - std["mean"]) / jnp.exp(0.5 * std["logvar"])
  eps_auth = (auth["z"] - auth["mean"]) / auth["logvar"]
  np.testing.assert_allclose(eps_std, eps_auth, rtol=1e-4, atol=1e-4)
  assert float(jnp.std(eps_std)) > 0.5  # really random
  ev, _ = apply(params, stats, x, config, train=False)
  np.testing.assert_array_equal(ev["z"], ev["mean"])
  with pytest.raises(ValueError, match="needs rng"):
    fv.apply(params, stats, x, config, train=True)


def test_losses_by_hand():
  rng = np.random.default_rng(1)
  mean, logvar = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)) * 0.3
  want = -1e-3 * 0.5 * np.mean(1 + logvar - mean**2 - np.exp(logvar))
  np.testing.assert_allclose(fl.kl_loss(mean, logvar, "standard"), want, rtol=1e-5)
  want = -1e-3 * 0.5 * np.mean(1 + 2 * logvar - mean**2 - np.exp(2 * logvar))
  np.testing.assert_allclose(fl.kl_loss(mean, logvar, "authors"), want, rtol=1e-5)
  y = rng.uniform(0, 1, (2, 6, 6))
  p = rng.uniform(0, 1, (2, 6, 6))
  p[0, 0, 0], p[0, 0, 1] = 0.0, 1.0  # the clip matters here
  # The constants as the float32 code holds them (1 - 1e-7 is 1 - 2^-23 in float32); the rest
  # in float64, so rtol 1e-5 covers float32 rounding of logs of numbers >= 1e-7.
  e, top = float(np.float32(1e-7)), float(np.float32(1 - 1e-7))
  pc = np.clip(p, e, top)
  bce = -np.mean(y * np.log(pc + e) + (1 - y) * np.log(1 - pc + e))
  np.testing.assert_allclose(fl.mask_bce(y, p), bce, rtol=1e-5)
  dice = 1 - (2 * np.sum(np.abs(y * p)) + 1) / (np.sum(y**2 + p**2) + 1 + 1e-8)
  np.testing.assert_allclose(fl.mask_dice(y, p), dice, rtol=1e-5)


@pytest.mark.slow
def test_compute_loss_terms_and_bit_exact_composite_background():
  config, params, stats = _tiny(losses=("ssim", "l1", "l2"))
  rng = np.random.default_rng(2)
  x = rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
  m = (rng.uniform(0, 1, (4, 16, 16)) > 0.5).astype(np.float32)
  # Jitted as in training (one compilation instead of one per operation).
  compute_loss = jax.jit(fl.compute_loss, static_argnums=3, static_argnames="train")
  loss, (terms, _, out) = compute_loss(params, stats, {"image": x, "mask": m}, config,
                                       train=False)
  comp = np.asarray(out["composite"])
  np.testing.assert_array_equal(comp[m == 0], x[m == 0])  # background exactly the input
  np.testing.assert_array_equal(comp[m == 1], np.asarray(out["image_pre"])[m == 1])
  np.testing.assert_allclose(terms["l1"], 4 * np.mean(np.abs(x - comp)), rtol=1e-5)
  np.testing.assert_allclose(terms["l2"], 100 * np.mean((x - comp) ** 2), rtol=1e-5)
  assert set(terms) == {"kl", "bce", "dice", "ssim", "l1", "l2", "total"}
  np.testing.assert_allclose(loss, sum(v for k, v in terms.items() if k != "total"), rtol=1e-6)
  nomask, p2, s2 = _tiny(mask_branch=False, losses=("l2",))
  _, (terms, _, out) = compute_loss(p2, s2, {"image": x, "mask": m}, nomask, train=False)
  assert set(terms) == {"kl", "l2", "total"}
  np.testing.assert_array_equal(out["composite"], out["image_pre"])


@pytest.mark.parametrize("decay_at", [0, 2])
def test_keras_adam_with_per_tensor_clip_three_steps_by_hand(decay_at):
  """Keras Adam after the per-tensor clip, in float64 by hand; ``decay_at=2``: the third
  update runs at 0.1 x the rate (`FaceVAEConfig.lr_decay_at`), the first two at the rate."""
  config = fv.FaceVAEConfig(learning_rate=0.1, clipnorm=1.0, lr_decay_at=decay_at,
                            lr_decay_factor=0.1)
  tx = fl.optimizer(config)
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
  grads = [{"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.2])},   # |a| = 5 -> clipped
           {"a": jnp.array([0.3, -0.4]), "b": jnp.array([-2.0])},  # |b| = 2 -> clipped
           {"a": jnp.array([-0.6, 0.1]), "b": jnp.array([0.7])}]
  state = tx.init(params)
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v = {k: np.zeros_like(v) for k, v in params.items()}
  theta = {k: np.asarray(p, np.float64) for k, p in params.items()}
  for t, g in enumerate(grads, 1):
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    rate = 0.1 * (0.1 if decay_at and t > decay_at else 1.0)
    for k in theta:
      gk = np.asarray(g[k], np.float64)
      gk = gk * 1.0 / max(np.linalg.norm(gk), 1.0)
      m[k] = 0.9 * m[k] + 0.1 * gk
      v[k] = 0.999 * v[k] + 0.001 * gk**2
      lr_t = rate * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
      theta[k] = theta[k] - lr_t * m[k] / (np.sqrt(v[k]) + 1e-7)
    for k in theta:  # float32 arithmetic on O(1) numbers: a few ulps of |theta| + |step|
      np.testing.assert_allclose(params[k], theta[k], rtol=0, atol=16 * U32 * 3)
  with pytest.raises(ValueError, match="lr_decay_at"):
    fv.FaceVAEConfig(lr_decay_at=-1)


def test_bad_input_shapes_name_the_problem():
  config, params, stats = _tiny()
  with pytest.raises(ValueError, match=r"shape \(batch, 16, 16, 3\).*got \(2, 20, 20, 3\)"):
    fv.predict(params, stats, jnp.zeros((2, 20, 20, 3)), config)
  with pytest.raises(ValueError, match="input_shape"):
    fv.init(jax.random.key(0), (1, 16, 16, 1), config)
  with pytest.raises(ValueError, match="losses"):
    fv.FaceVAEConfig(losses=("ssim", "lpips"))
  with pytest.raises(ValueError, match="unknown FaceVAEConfig fields"):
    fv.FaceVAEConfig.from_mapping({"latent": 3})


@pytest.mark.slow
def test_keras_model_from_the_spec_loads_into_flax_and_agrees():
  """Independent check of the port: the authors' Keras layers (eval.keras_face_vae, written from
  the spec with Keras' own Conv2DTranspose / BatchNormalization) with random weights and
  random BatchNorm statistics, copied into our pytrees, give the same inference outputs.
  18 px includes a VALID transposed conv (4 -> 9). Tolerance: float32 conv stacks of depth ~12
  with O(1) activations; 1e-5 is ~100 ulps (the measured gap is ~2e-7)."""
  pytest.importorskip("tensorflow")
  from eval import keras_face_vae as kf  # pylint: disable=g-import-not-at-top
  config = fv.FaceVAEConfig(input_size=18, latent_dim=8, width_multiplier=0.125)
  model = kf.build(config)
  kf.randomise_batchnorm(model)
  params, stats = fv.init(jax.random.key(0), (2, 18, 18, 3), config)
  assert model.count_params() == _count(params) + _count(stats)
  params, stats = kf.to_flax(model, params, stats)
  x = np.random.default_rng(0).uniform(0, 1, (2, 18, 18, 3)).astype(np.float32)
  keras_out = model([x, np.zeros((2, 8), np.float32)], training=False)
  ours = fv.predict(params, stats, x, config)
  np.testing.assert_allclose(ours["image_pre"], keras_out["image_pre"], rtol=0, atol=1e-5)
  np.testing.assert_allclose(ours["mask"], keras_out["mask"][..., 0], rtol=0, atol=1e-5)
  np.testing.assert_allclose(ours["mean"], keras_out["mean"], rtol=0, atol=1e-5)


def _conv3x3_same_f64(x, kernel, bias):
  """Float64 NumPy reference: 3x3 SAME cross-correlation (Flax/Keras convention) + bias."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1:3]
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for i in range(3):
    for j in range(3):
      out += pad[:, i:i + h, j:j + w, :] @ kernel[i, j]
  return out + np.asarray(bias, np.float64)


def test_population_batch_stats_are_the_average_of_per_batch_statistics():
  config, params, _ = _tiny()
  rng = np.random.default_rng(5)
  batches = [rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32) for _ in range(2)]
  stats = fv.population_batch_stats(params, batches, config)
  conv = params["encoder"]["ConvBlock_0"]["Conv_0"]
  per_batch = [_conv3x3_same_f64(b, conv["kernel"], conv["bias"]) for b in batches]
  want_mean = np.mean([a.mean((0, 1, 2)) for a in per_batch], 0)
  want_var = np.mean([a.var((0, 1, 2)) for a in per_batch], 0)  # biased, as Flax
  got = stats["encoder"]["ConvBlock_0"]["BatchNorm_0"]
  # float32 conv: each output sums 27 products; rounding <= 27 eps32 sum|terms| per value,
  # and means/variances of such values inherit that bound (x2 for the square in the variance).
  terms = sum(np.abs(b).max() for b in batches) * np.abs(np.asarray(conv["kernel"])).sum((0, 1, 2))
  bound = 27 * np.finfo(np.float32).eps * (terms + np.abs(np.asarray(conv["bias"])))
  np.testing.assert_array_less(np.abs(np.asarray(got["mean"]) - want_mean), bound + 1e-30)
  np.testing.assert_array_less(np.abs(np.asarray(got["var"]) - want_var),
                               2 * bound * (np.abs(want_mean) + np.sqrt(want_var) + bound))
  # Every BatchNorm layer is covered and the moving averages are not involved.
  _, _, init_stats = _tiny()
  assert jax.tree.structure(stats) == jax.tree.structure(init_stats)
  with pytest.raises(ValueError, match="at least one batch"):
    fv.population_batch_stats(params, [], config)


def test_elu_is_tensorflows_formula_within_one_epsilon_and_has_finite_gradients():
  """`fv.elu` (exp(x) - 1, TensorFlow's kernel) against the float64 ELU: within one float32
  epsilon times max(1, |y|) (exp is within an ulp of its value, the subtraction of 1 is exact
  for exp(x) >= 1/2 and rounds once below), and its gradient exp(min(x, 0)) stays finite where
  exp would overflow in the unselected branch."""
  x = np.concatenate([np.linspace(-30, 30, 200_001), -np.logspace(-12, 1, 20_001),
                      np.logspace(-12, 1, 2_001)]).astype(np.float32)
  want = np.where(x > 0, x.astype(np.float64), np.expm1(x.astype(np.float64)))
  got = np.asarray(jax.jit(fv.elu)(x), np.float64)
  bound = np.finfo(np.float32).eps * np.maximum(1.0, np.abs(want))
  assert np.all(np.abs(got - want) <= bound)
  grads = np.asarray(jax.grad(lambda v: fv.elu(v).sum())(jnp.array([-1e3, -1.0, 0.0, 1.0, 1e3])))
  np.testing.assert_allclose(grads, [0.0, np.exp(-1.0), 1.0, 1.0, 1.0], rtol=1e-6)
