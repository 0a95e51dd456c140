"""Tests for the BioFaceNet U-Net, its output scaling, loss and optimiser.

References are independent: hand arithmetic for parameter counts, float64 NumPy for the
preprocessing, scaling and every loss term, closed forms for the least-squares shading scale,
and explicit SGD recurrences for the optimiser. Networks are tiny (base_filters=4, depth=2,
16x16 inputs) except one shape-only check of the authors' full architecture via eval_shape.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bioface_jax import physics
from bioface_jax.models import biofacenet as bf
from bioface_jax.models import unet

SMALL = bf.BioFaceNetConfig(base_filters=4, depth=2, fc_width=8)
H = W = 16


def _key(seed: int) -> jax.Array:
  # The "unsafe_rbg" generator compiles several times faster than threefry on CPU; the code under
  # test accepts any key.
  return jax.random.key(seed, impl="unsafe_rbg")


@pytest.fixture(scope="module")
def small_variables():
  """Variables of the small U-Net (initialised once: XLA compiles are the slow part)."""
  model = _small_unet()
  return jax.jit(lambda k: model.init(k, jnp.ones((2, H, W, 3)), train=False))(_key(0))


@pytest.fixture(scope="module")
def small_bioface(small_variables):
  """(params, batch_stats) of `BioFaceNet` with the SMALL config, from the same U-Net init."""
  shapes = jax.eval_shape(lambda: bf.init(_key(0), (2, H, W, 3), SMALL))
  variables = ({"unet": small_variables["params"]}, {"unet": small_variables["batch_stats"]})
  assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(lambda a: a.shape, variables)
  return variables


def _n_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _small_unet(**kw):
  return unet.BioFaceUNet(base_filters=4, depth=2, fc_width=8, **kw)


def _random_batch(rng: np.random.Generator, b: int = 2) -> dict[str, np.ndarray]:
  mask = np.zeros((b, H, W), np.float32)
  mask[:, 3:13, 4:12] = 1.0
  return {"image": rng.uniform(0.05, 0.95, (b, H, W, 3)).astype(np.float32),
          "mask": mask,
          "shading": rng.uniform(0.0, 2.0, (b, H, W)).astype(np.float32)}


# ----------------------------------------------------------------------- architecture


def test_authors_architecture_shapes_and_parameter_count():
  config = bf.BioFaceNetConfig()
  params, stats = jax.eval_shape(lambda: bf.init(jax.random.key(0), (2, 64, 64, 3), config))
  maps, vector = jax.eval_shape(
      lambda: unet.BioFaceUNet().init_with_output(
          jax.random.key(0), jnp.zeros((2, 64, 64, 3)), train=False)[0])
  assert maps.shape == (2, 64, 64, 4) and vector.shape == (2, 17)
  assert params["unet"]["head"]["conv_0"]["kernel"].shape == (4, 4, 512, 512)

  # Hand count. conv3x3(cin->c) with bias: 9*cin*c + c; BN: 2c. A level = 3 convs + 3 BNs.
  enc = ((9 * 3 * 32 + 32) + 2 * (9 * 32 * 32 + 32) + 6 * 32          # 19,584
         + (9 * 32 * 64 + 64) + 2 * (9 * 64 * 64 + 64) + 6 * 64        # 92,736
         + (9 * 64 * 128 + 128) + 2 * (9 * 128 * 128 + 128) + 6 * 128   # 369,792
         + (9 * 128 * 256 + 256) + 2 * (9 * 256 * 256 + 256) + 6 * 256  # 1,476,864
         + (9 * 256 * 512 + 512) + 2 * (9 * 512 * 512 + 512) + 6 * 512)  # 5,902,848
  dec = ((9 * 768 * 256 + 256) + 2 * (9 * 256 * 256 + 256) + 6 * 256    # 2,951,424
         + (9 * 384 * 128 + 128) + 2 * (9 * 128 * 128 + 128) + 6 * 128  # 738,432
         + (9 * 192 * 64 + 64) + 2 * (9 * 64 * 64 + 64) + 6 * 64        # 184,896
         + (9 * 96 * 32 + 32) + 2 * (9 * 32 * 32 + 32) + 6 * 32         # 46,368
         + (9 * 32 * 1 + 1))                                            # 289
  head = ((16 * 512 * 512 + 512) + 2 * 512 + (512 * 512 + 512) + 2 * 512
          + (512 * 17 + 17))                                            # 4,468,241
  assert enc == 7_861_824 and dec == 3_921_409 and head == 4_468_241
  assert _n_params(params) == enc + 4 * dec + head == 28_015_701
  # Running mean and variance for every BN channel: 3 per level.
  bn_channels = 3 * (32 + 64 + 128 + 256 + 512) + 4 * 3 * (256 + 128 + 64 + 32) + 2 * 512
  assert _n_params(stats) == 2 * bn_channels == 19_520


def test_small_variant_shapes_and_input_checks(small_variables):
  model = _small_unet()
  x = jnp.ones((2, H, W, 3))
  variables = small_variables
  maps, vector = model.apply(variables, x, train=False)
  assert maps.shape == (2, H, W, 4) and vector.shape == (2, 17)
  assert maps.dtype == vector.dtype == jnp.float32
  # The head's first conv spans the whole bottleneck: 16 / 2**2 = 4.
  assert variables["params"]["head"]["conv_0"]["kernel"].shape == (4, 4, 16, 8)
  with pytest.raises(ValueError, match="divisible"):
    model.apply(variables, jnp.ones((1, 18, 16, 3)), train=False)
  with pytest.raises(ValueError, match="upsample"):
    _small_unet(upsample="cubic").apply(variables, x, train=False)
  bilinear, _ = _small_unet(upsample="bilinear").apply(variables, x, train=False)
  assert bilinear.shape == maps.shape and not np.allclose(bilinear, maps)


def test_upsample_modes():
  x = np.random.default_rng(0).normal(size=(1, 3, 2, 2)).astype(np.float32)
  np.testing.assert_array_equal(unet.upsample2x(jnp.asarray(x)),
                                np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))
  const = jnp.full((1, 3, 2, 2), 0.7)
  # Bilinear weights sum to 1; a 2-4 term float32 blend of 0.7 rounds <= 4 times.
  eps32 = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(unet.upsample2x(const, "bilinear"), 0.7, rtol=4 * eps32)
  ramp = jnp.arange(4.0).reshape(1, 1, 4, 1) * jnp.ones((1, 2, 1, 1))
  # Half-pixel centres: output column j samples input column (j + 0.5) / 2 - 0.5.
  expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
  # Values <= 3, <= 4 float32 roundings in the blend.
  np.testing.assert_allclose(unet.upsample2x(ramp, "bilinear")[0, 0, :, 0], expected, rtol=0,
                             atol=4 * eps32 * 3)


def test_initialisation_follows_autonn_defaults(small_variables):
  params = small_variables["params"]
  # Every conv kernel (k, k, C_in, C_out) ~ N(0, 2 / (k * k * C_in)): pool the z-scores.
  z = np.concatenate([
      np.ravel(leaf) / np.sqrt(2.0 / np.prod(leaf.shape[:3]))
      for path, leaf in jax.tree_util.tree_leaves_with_path(params) if path[-1].key == "kernel"])
  assert z.size > 20_000
  assert abs(z.std() - 1) < 0.03 and abs(z.mean()) < 0.03
  # Untruncated normal: 4.55 % of samples beyond 2 std (a truncated normal has none).
  assert 0.035 < np.mean(np.abs(z) > 2) < 0.056
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    name = path[-1].key
    if name == "bias":
      np.testing.assert_array_equal(leaf, 0.0)
    elif name == "scale":
      np.testing.assert_array_equal(leaf, 1.0)


def test_decoders_are_independent(small_variables):
  model = _small_unet()
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, H, W, 3)), jnp.float32)
  variables = small_variables
  params = variables["params"]
  flat = [np.concatenate([np.ravel(v) for v in jax.tree.leaves(params[f"decoder_{d}"])])
          for d in range(4)]
  for i in range(4):
    for j in range(i + 1, 4):
      assert not np.allclose(flat[i], flat[j])

  # Perturbing one decoder's weights changes its own map only; the encoder feeds all maps.
  def run(p):
    return model.apply({"params": p, "batch_stats": variables["batch_stats"]}, x, train=False)

  maps0, vector0 = run(params)
  for part in ("decoder_0", "decoder_2", "decoder_3", "enc_1"):
    bumped = dict(params)
    bumped[part] = jax.tree.map(lambda a: a + 0.05, params[part])
    maps, vector = run(bumped)
    changed = [not np.allclose(maps[..., d], maps0[..., d], rtol=0, atol=0) for d in range(4)]
    if part == "enc_1":
      assert all(changed) and not np.allclose(vector, vector0)
    else:
      assert changed == [d == int(part[-1]) for d in range(4)], (part, changed)
      np.testing.assert_array_equal(vector, vector0)


def _conv3x3_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
  """float64 cross-correlation with zero padding 1, HWIO kernel."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for dy in range(3):
    for dx in range(3):
      out += xp[:, dy:dy + x.shape[1], dx:dx + x.shape[2], :] @ kernel[dy, dx]
  return out + bias


def test_batchnorm_train_vs_eval(small_variables):
  model = _small_unet()
  rng = np.random.default_rng(4)
  x = rng.normal(size=(2, H, W, 3)).astype(np.float32)
  x_other = np.stack([x[0], rng.normal(size=(H, W, 3)).astype(np.float32)])
  variables = small_variables

  # Train: running = 0.9 * running + 0.1 * batch (biased variance), starting from (0, 1).
  (maps_train, _), updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  conv = variables["params"]["enc_0"]["conv_0"]
  y = _conv3x3_same(x.astype(np.float64), np.asarray(conv["kernel"], np.float64),
                    np.asarray(conv["bias"], np.float64))
  new = updates["batch_stats"]["enc_0"]["bn_0"]
  # float32 rounding rule: each conv output is a 27-term dot product + bias, and the statistics
  # are means of n = 2 H W of them (worst case n roundings): with a = the conv of |x|, |kernel|,
  # |bias| (sum of |terms|), |d mean| <= (n + 30) eps32 mean(a), |d E[y^2]| <= (n + 60) eps32
  # mean(a^2), var = E[y^2] - E[y]^2 adds 2 |E y| |d mean|; then 0.1 (.) and 0.9 + (.) round.
  eps32 = float(np.finfo(np.float32).eps)
  n = y.shape[0] * y.shape[1] * y.shape[2]
  a = _conv3x3_same(np.abs(x.astype(np.float64)), np.abs(np.asarray(conv["kernel"], np.float64)),
                    np.abs(np.asarray(conv["bias"], np.float64)))
  d_mean = (n + 30) * eps32 * a.mean(axis=(0, 1, 2))
  d_var = (n + 60) * eps32 * (a**2).mean(axis=(0, 1, 2)) + 2 * np.abs(y.mean((0, 1, 2))) * d_mean
  np.testing.assert_array_less(np.abs(new["mean"] - 0.1 * y.mean(axis=(0, 1, 2))),
                               0.1 * d_mean + 2 * eps32 * np.abs(0.1 * y.mean(axis=(0, 1, 2))))
  var_ref = 0.9 + 0.1 * y.var(axis=(0, 1, 2))
  np.testing.assert_array_less(np.abs(new["var"] - var_ref), 0.1 * d_var + 2 * eps32 * var_ref)

  # Eval: running averages, so image 0's output does not depend on the rest of the batch,
  # while in training it does.
  maps_eval, _ = model.apply(variables, x, train=False)
  maps_eval_other, _ = model.apply(variables, x_other, train=False)
  # Same compiled program and shapes; no eval-mode value couples examples, and each output's
  # reduction order does not depend on other examples' values, so image 0 is bitwise equal.
  np.testing.assert_array_equal(maps_eval[0], maps_eval_other[0])
  (maps_train_other, _), _ = model.apply(variables, x_other, train=True,
                                         mutable=["batch_stats"])
  assert not np.allclose(maps_train[0], maps_train_other[0], atol=1e-3)
  assert not np.allclose(maps_train[0], maps_eval[0], atol=1e-3)
  # apply() in eval mode hands the statistics back untouched.
  params, stats = variables["params"], variables["batch_stats"]
  _, same = bf.apply({"unet": params}, {"unet": stats}, jnp.full((2, H, W, 3), 0.5), SMALL,
                     train=False)
  assert same == {"unet": stats}


def test_bfloat16_computation(small_bioface):
  config = bf.BioFaceNetConfig(base_filters=4, depth=2, fc_width=8, dtype="bfloat16")
  params, stats = small_bioface
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  image = jnp.full((2, H, W, 3), 0.5)
  out = jax.jit(lambda p, s: bf.predict(p, s, image, config))(params, stats)
  assert out["shading"].dtype == jnp.float32 and out["b"].dtype == jnp.float32
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(out))


# -------------------------------------------------------------- preprocessing and scaling


def test_preprocess_matches_numpy():
  x = np.random.default_rng(6).uniform(0, 1, (2, 4, 5, 3)).astype(np.float32)
  net_input, linear = bf.preprocess(jnp.asarray(x))
  lin64 = x.astype(np.float64) ** 2.2
  # float32 x**2.2 = exp(2.2 log x) (x is exact in float32): log's ulp-level error is amplified
  # by 2.2 |log x| in relative terms, exp and the product add a few ulp: rel <= (8 + 4.4|ln x|) eps.
  eps32 = float(np.finfo(np.float32).eps)
  d_lin = (8 + 4.4 * np.abs(np.log(x.astype(np.float64)))) * eps32 * lin64
  np.testing.assert_array_less(np.abs(linear - lin64), d_lin)
  # 255 * lin - mean: 255 d_lin + rounding of the product and of the difference.
  means = np.array([129.1863, 104.7624, 93.5940])
  np.testing.assert_array_less(np.abs(net_input - (255 * lin64 - means)),
                               255 * d_lin + 2 * eps32 * (255 * lin64 + means))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    bf.preprocess(jnp.asarray(x) + 1.0)
  with pytest.raises(ValueError, match="3 channels"):
    bf.preprocess(jnp.zeros((2, 4, 4, 4)))


def test_scale_outputs_matches_numpy_and_ranges():
  rng = np.random.default_rng(7)
  maps = rng.normal(scale=3.0, size=(2, 3, 4, 4)).astype(np.float32)
  maps[0, 0, 0] = [40.0, -40.0, 3.0, -3.0]  # saturating sigmoids
  vector = rng.normal(scale=3.0, size=(2, 17)).astype(np.float32)
  vector[1, 14:] = [60.0, -60.0, 60.0]
  out = bf.scale_outputs(jnp.asarray(maps), jnp.asarray(vector))
  m, v = maps.astype(np.float64), vector.astype(np.float64)
  sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
  w = np.exp(v[:, :14] - v[:, :14].max(-1, keepdims=True))
  expected = {"fmel": 2 * sig(m[..., 0]) - 1, "fblood": 2 * sig(m[..., 1]) - 1,
              "shading": np.exp(m[..., 2]), "specular": np.exp(m[..., 3]),
              "weights": w / w.sum(-1, keepdims=True), "t": 1 + 21 * sig(v[:, 14]),
              "b": 6 * sig(v[:, 15:]) - 3}
  assert set(out) == set(expected)
  for name, ref in expected.items():
    np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-6, err_msg=name)
  assert np.all(np.abs(out["fmel"]) <= 1) and np.all(np.abs(out["fblood"]) <= 1)
  assert np.all(out["shading"] > 0) and np.all(out["specular"] > 0)
  # Softmax normalisation + a 14-term float32 sum: <= 16 roundings.
  np.testing.assert_allclose(out["weights"].sum(-1), 1.0, rtol=16 * np.finfo(np.float32).eps)
  assert np.all((out["t"] >= 1) & (out["t"] <= 22)) and np.all(np.abs(out["b"]) <= 3)
  np.testing.assert_allclose(out["t"][1], 22.0)
  np.testing.assert_allclose(out["b"][1], [-3.0, 3.0])
  # Optional robustness clip of the exp logits.
  clipped = bf.scale_outputs(jnp.full((1, 1, 1, 4), 200.0), jnp.zeros((1, 17)), logit_clip=10.0)
  # float32 exp of an exact argument: a few ulp (8 eps32 allows for XLA's exp approximation).
  np.testing.assert_allclose(clipped["shading"], np.exp(10.0), rtol=8 * np.finfo(np.float32).eps)
  assert not np.isfinite(bf.scale_outputs(jnp.full((1, 1, 1, 4), 200.0),
                                          jnp.zeros((1, 17)))["shading"]).any()
  with pytest.raises(ValueError, match="17"):
    bf.scale_outputs(jnp.zeros((1, 2, 2, 4)), jnp.zeros((1, 16)))


# ---------------------------------------------------------------------------- loss terms


def test_loss_terms_against_numpy():
  rng = np.random.default_rng(8)
  b = 3
  x_lin = rng.uniform(0, 1, (b, H, W, 3))
  y_hat = rng.uniform(0, 1, (b, H, W, 3))
  mask = (rng.uniform(size=(b, H, W)) > 0.4).astype(np.float64)
  spec_rgb = rng.uniform(0, 0.2, (b, H, W, 3))
  cam = rng.uniform(-3, 3, (b, 2))
  # Compared in float64 (float64 inputs under x64): sums of <= 3 H W = 768 positive terms,
  # < 1e3 eps64 ~ 2e-13 relative; 1e-11 leaves margin and would catch a float32 stage.
  with jax.enable_x64(True):
    f64 = lambda a: jnp.asarray(a, jnp.float64)  # noqa: E731
    np.testing.assert_allclose(
        bf.appearance_loss(f64(x_lin), f64(y_hat), f64(mask)),
        (255.0**2 / 224.0**2) * np.sum((mask[..., None] * (x_lin - y_hat)) ** 2, axis=(1, 2, 3)),
        rtol=1e-11)
    np.testing.assert_allclose(bf.camera_prior_loss(f64(cam)), np.sum(cam**2, axis=1),
                               rtol=1e-11)
    np.testing.assert_allclose(bf.specular_sparsity_loss(f64(spec_rgb)),
                               spec_rgb.sum(axis=(1, 2, 3)), rtol=1e-11)


def test_shading_scale_is_least_squares_optimum():
  rng = np.random.default_rng(9)
  target = rng.uniform(0, 2, (2, H, W))
  shading = rng.uniform(0.1, 3, (2, H, W))
  mask = (rng.uniform(size=(2, H, W)) > 0.3).astype(np.float64)
  k_ref = np.sum(mask * target * shading, axis=(1, 2)) / np.sum(mask * shading**2, axis=(1, 2))
  # The closed form zeroes dL/dk = -2 sum m^2 i (S - k i) for a binary mask (float64).
  np.testing.assert_allclose(
      np.sum(mask**2 * shading * (target - k_ref[:, None, None] * shading), axis=(1, 2)), 0.0,
      atol=1e-9)
  t32, s32, m32 = (jnp.asarray(a, jnp.float32) for a in (target, shading, mask))
  # k = ratio of two float32 sums of n = H*W positive terms (inputs rounded to float32):
  # relative error <= 2 (n + 3) eps32 (gamma_n per sum, input rounding, the division).
  eps32 = float(np.finfo(np.float32).eps)
  k_rtol = 2 * (H * W + 3) * eps32
  np.testing.assert_allclose(bf.shading_scale(t32, s32, m32), k_ref, rtol=k_rtol)
  loss, k = bf.shading_loss(t32, s32, m32)
  np.testing.assert_allclose(k, k_ref, rtol=k_rtol)
  # Rule: |d loss| <= sum 2 |r| |d r| + (n + 2) eps32 sum r^2 with r = m (t - k s) and
  # |d r| <= k_rtol k s + 4 eps32 (|t| + 2 k s) (k's error and the rounding of the difference).
  kk = np.abs(k_ref)[:, None, None]
  r = mask * (target - kk * shading)
  dr = mask * (k_rtol * kk * shading + 4 * eps32 * (np.abs(target) + 2 * kk * shading))
  loss_bound = (np.sum(2 * np.abs(r) * dr, axis=(1, 2))
                + (H * W + 2) * eps32 * np.sum(r**2, axis=(1, 2)))
  np.testing.assert_array_less(np.abs(np.asarray(loss, np.float64) - np.sum(r**2, axis=(1, 2))),
                               loss_bound)

  # Stationary in k: dL/dk at k* is zero relative to its scale away from k*.
  def l_of_k(kk):
    return jnp.sum((m32 * (t32 - kk[:, None, None] * s32)) ** 2)
  g_opt = jax.grad(l_of_k)(jnp.asarray(k_ref, jnp.float32))
  g_off = jax.grad(l_of_k)(jnp.asarray(1.2 * k_ref, jnp.float32))
  assert np.all(np.abs(g_opt) < 1e-4 * np.abs(g_off))

  # Hence stopping the gradient through k changes nothing: both equal the analytic gradient
  # -2 m^2 k (S - k i) with k held constant.
  grad_ref = -2 * mask**2 * k_ref[:, None, None] * (target - k_ref[:, None, None] * shading)
  # Rule: propagate float32 rounding through g = -2 m^2 k (t - k s) elementwise: the error of
  # k (k_rtol), the rounding of t, s and of each product/difference (a few eps32 of the
  # magnitudes |t| + 2|k s|, which cancel in t - k s).
  ks = np.abs(k_ref)[:, None, None]
  bound = 2 * mask**2 * (k_rtol * ks * (np.abs(target - ks * shading) + ks * shading)
                         + 4 * eps32 * ks * (np.abs(target) + 2 * ks * shading))
  for stop in (True, False):
    g = jax.grad(lambda s: jnp.sum(bf.shading_loss(t32, s, m32, stop)[0]))(s32)
    np.testing.assert_array_less(np.abs(np.asarray(g, np.float64) - grad_ref), bound + 1e-30)


def test_shading_scale_empty_mask_is_finite():
  target = jnp.ones((1, 4, 4))
  shading = jnp.full((1, 4, 4), 2.0)
  mask = jnp.zeros((1, 4, 4))
  loss, k = bf.shading_loss(target, shading, mask, stop_gradient_scale=False)
  assert float(k[0]) == 0.0 and float(loss[0]) == 0.0
  g = jax.grad(lambda s: jnp.sum(bf.shading_loss(target, s, mask, False)[0]))(shading)
  assert np.all(np.isfinite(g))


# ------------------------------------------------------------------- full loss (physics)


def _reference_loss(batch, outputs, weights, normalise=False):
  """float64 NumPy assembly of spec section 8 from the images and the model's render."""
  x_lin = batch["image"].astype(np.float64) ** 2.2
  m = batch["mask"].astype(np.float64)
  y_hat = np.asarray(outputs["render"]["linear_srgb"], np.float64)
  i_d = np.asarray(outputs["shading"], np.float64)
  s = batch["shading"].astype(np.float64)
  app = (255.0**2 / 224.0**2) * np.sum((m[..., None] * (x_lin - y_hat)) ** 2, axis=(1, 2, 3))
  cam = np.sum(np.asarray(outputs["b"], np.float64) ** 2, axis=1)
  spec = np.sum(np.asarray(outputs["render"]["specular"], np.float64), axis=(1, 2, 3))
  k = np.sum(m * s * i_d, axis=(1, 2)) / np.sum(m * i_d**2, axis=(1, 2))
  sh = np.sum((m * (s - k[:, None, None] * i_d)) ** 2, axis=(1, 2))
  if normalise:
    n = m.sum(axis=(1, 2))
    app, spec, sh = app / n, spec / n, sh / n
  terms = {"appearance": app.mean(), "camera_prior": cam.mean(),
           "specular_sparsity": spec.mean(), "shading": sh.mean(), "shading_scale": k.mean()}
  total = np.mean(weights[0] * app + weights[1] * cam + weights[2] * spec + weights[3] * sh)
  return total, terms


@pytest.mark.parametrize("normalise", [False, True])
def test_compute_loss_against_numpy(spectra, lut, small_bioface, normalise):
  config = bf.BioFaceNetConfig(base_filters=4, depth=2, fc_width=8,
                               normalise_by_foreground=normalise)
  batch = _random_batch(np.random.default_rng(10))
  params, stats = small_bioface
  # The loss assembly is compared in float64 (batch, spectra and table in float64, so the terms
  # are computed in float64 from the model's outputs): float64 rounding of sums of <= 1e3 terms
  # is < 1e3 eps64 ~ 2e-13 relative; 1e-10 leaves margin and would catch a float32 stage.
  with jax.enable_x64(True):
    batch64 = {k: v.astype(np.float64) for k, v in batch.items()}
    p64, s64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), (params, stats))
    loss, (terms, _, outputs) = bf.compute_loss(
        p64, s64, batch64, physics.load_spectra(), jnp.asarray(np.asarray(lut), jnp.float64),
        dataclasses.replace(config, dtype="float64"), train=True)
    assert loss.dtype == jnp.float64
  total_ref, terms_ref = _reference_loss(batch64, outputs, config.loss_weights, normalise)
  np.testing.assert_allclose(loss, total_ref, rtol=1e-10)
  np.testing.assert_allclose(terms["total"], total_ref, rtol=1e-10)
  for name, ref in terms_ref.items():
    np.testing.assert_allclose(terms[name], ref, rtol=1e-10, err_msg=name)
  # And the float32 run, whose statistics update and outputs are checked below.
  loss, (terms, new_stats, outputs) = bf.compute_loss(params, stats, batch, spectra, lut,
                                                      config, train=True)
  # The specular term is the unmasked raw specular i_s * light colour, before white balance.
  np.testing.assert_allclose(
      outputs["render"]["specular"],
      np.asarray(outputs["specular"])[..., None]
      * np.asarray(outputs["render"]["light_colour"])[:, None, None, :],
      rtol=np.finfo(np.float32).eps)  # one float32 product vs its float64 value: <= eps32 / 2
  assert jax.tree.structure(new_stats) == jax.tree.structure(stats)
  assert not np.allclose(new_stats["unet"]["enc_0"]["bn_0"]["mean"],
                         stats["unet"]["enc_0"]["bn_0"]["mean"])


def test_compute_loss_gradients_jit(spectra, lut, small_bioface):
  config = SMALL
  batch = {k: jnp.asarray(v) for k, v in _random_batch(np.random.default_rng(12)).items()}
  batch["mask"] = batch["mask"][..., None]  # a trailing channel is accepted
  params, stats = small_bioface

  @jax.jit
  def step(p, s, bt):
    return jax.value_and_grad(bf.compute_loss, has_aux=True)(p, s, bt, spectra, lut, config)

  (loss, (terms, _, _)), grads = step(params, stats, batch)
  assert np.isfinite(loss) and all(np.isfinite(v) for v in terms.values())
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  g = grads["unet"]
  for part in ("enc_0", "bottleneck", "head", "decoder_0", "decoder_1", "decoder_2",
               "decoder_3"):
    assert sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(g[part])) > 0, part
  with pytest.raises(KeyError, match="shading"):
    bf.compute_loss(params, stats, {"image": batch["image"], "mask": batch["mask"]}, spectra,
                    lut, config)
  with pytest.raises(ValueError, match="mask"):
    bf.compute_loss(params, stats, dict(batch, mask=jnp.ones((2, 8, 8))), spectra, lut, config)


# ----------------------------------------------------------------------- config, optimiser


def test_config_from_mapping():
  cd = ml_collections.ConfigDict({"base_filters": 8, "loss_weights": [1.0, 2.0, 3.0, 4.0]})
  config = bf.BioFaceNetConfig.from_mapping(cd)
  assert config.base_filters == 8 and config.loss_weights == (1.0, 2.0, 3.0, 4.0)
  hash(config)  # usable as a static jit argument
  with pytest.raises(ValueError, match="unknown.*'lr'"):
    bf.BioFaceNetConfig.from_mapping({"lr": 1.0})
  with pytest.raises(ValueError, match="upsample"):
    bf.BioFaceNetConfig(upsample="cubic")


def test_sgd_matches_authors_update():
  lr, wd, mom, mult = 0.1, 0.01, 0.9, 2.0
  config = bf.BioFaceNetConfig(learning_rate=lr, weight_decay=wd, momentum=mom,
                               bn_scale_lr_multiplier=mult)
  rng = np.random.default_rng(14)
  params = {"blk": {
      "conv_0": {"kernel": rng.normal(size=(3, 3, 2, 2)), "bias": rng.normal(size=2)},
      "bn_0": {"scale": rng.normal(size=2), "bias": rng.normal(size=2)}}}
  grads = [jax.tree.map(lambda a: rng.normal(size=a.shape), params) for _ in range(2)]
  tx = bf.optimizer(config)
  # Run in float64 so the comparison with the float64 replica is to float64 rounding: 2 steps
  # of a few operations each, < 1e2 eps64 relative; 1e-12 leaves margin.
  with jax.enable_x64(True):
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    state = tx.init(p)
    for g in grads:
      updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, p)
      p = optax.apply_updates(p, updates)
    p = jax.tree.map(np.asarray, p)
  assert p["blk"]["conv_0"]["kernel"].dtype == np.float64

  # MatConvNet: v <- mom v - (g + wd_p w); w <- w + lr_p v. Decay on conv kernels only,
  # lr multiplier 2 on BN scales.
  lr_mult = {("conv_0", "kernel"): 1, ("conv_0", "bias"): 1, ("bn_0", "scale"): mult,
             ("bn_0", "bias"): 1}
  for (layer, name), lm in lr_mult.items():
    w = params["blk"][layer][name].copy()
    v = np.zeros_like(w)
    for g in grads:
      decay = wd if name == "kernel" else 0.0
      v = mom * v - (g["blk"][layer][name] + decay * w)
      w = w + lr * lm * v
    np.testing.assert_allclose(p["blk"][layer][name], w, rtol=1e-12, atol=1e-14,
                               err_msg=f"{layer}/{name}")

  adam = bf.optimizer(bf.BioFaceNetConfig(optimizer="adam", learning_rate=1e-3))
  updates, _ = adam.update(jax.tree.map(jnp.asarray, grads[0]), adam.init(p), p)
  assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_logit_max_bounds_shading_smoothly_and_keeps_gradients():
  maps = jnp.stack([jnp.zeros(5), jnp.zeros(5), jnp.array([-20.0, 0.0, 2.0, 10.0, 50.0]),
                    jnp.array([-20.0, 0.0, 2.0, 10.0, 50.0])], axis=-1)
  vector = jnp.zeros(17)
  out = bf.scale_outputs(maps, vector, logit_max=3.0)
  m = np.array([-20.0, 0.0, 2.0, 10.0, 50.0])
  expected = np.exp(3.0 - np.log1p(np.exp(3.0 - m)))  # c - softplus(c - m), in float64
  np.testing.assert_allclose(out["shading"], expected, rtol=1e-5)
  np.testing.assert_allclose(out["specular"], expected, rtol=1e-5)
  assert float(out["shading"].max()) <= np.exp(3.0) * (1 + 1e-6)
  grads = jax.grad(lambda x: bf.scale_outputs(
      maps.at[:, 2].set(x), vector, logit_max=3.0)["shading"].sum())(maps[:, 2])
  assert np.all(np.asarray(grads) > 0)  # saturated pixels still get a gradient


@pytest.mark.parametrize("kind", ["constant", "step", "cosine"])
def test_learning_rate_schedule_follows_formula(kind):
  # The rate at update n, from the documented formula in float64; optax evaluates it in
  # float32, so compare to ~4 eps32 relative (a handful of roundings of numbers of size lr).
  lr, total, start_frac, f = 3e-4, 120, 0.25, 0.1
  config = bf.BioFaceNetConfig(optimizer="adam", learning_rate=lr, lr_schedule=kind,
                               lr_schedule_steps=total, lr_decay_start=start_frac,
                               lr_final_factor=f)
  schedule = bf.learning_rate_schedule(config)
  n0 = round(start_frac * total)
  for n in [0, 1, n0 - 1, n0, n0 + 1, 50, 100, total - 1, total, total + 10]:
    if kind == "constant":
      want = lr
    elif kind == "step":
      want = lr if n < n0 else lr * f
    else:
      t = min(max(n - n0, 0), total - n0) / (total - n0)
      want = lr * (f + (1 - f) * 0.5 * (1 + np.cos(np.pi * t)))
    got = float(schedule(n)) if callable(schedule) else schedule
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, err_msg=f"n={n}")


def test_step_schedule_scales_adam_updates():
  # Adam's update is -lr(n) * (direction); with the same gradients the update after the drop
  # is lr_final_factor times the constant-rate one (up to float32 rounding of the product).
  params = {"w": jnp.ones(3)}
  grads = {"w": jnp.array([0.5, -1.0, 2.0])}
  kw = dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0)
  step = bf.optimizer(bf.BioFaceNetConfig(lr_schedule="step", lr_schedule_steps=4,
                                          lr_decay_start=0.5, lr_final_factor=0.25, **kw))
  const = bf.optimizer(bf.BioFaceNetConfig(**kw))
  s_step, s_const = step.init(params), const.init(params)
  for n in range(4):
    u_step, s_step = step.update(grads, s_step, params)
    u_const, s_const = const.update(grads, s_const, params)
    ratio = 1.0 if n < 2 else 0.25
    np.testing.assert_allclose(u_step["w"], ratio * u_const["w"],
                               rtol=4 * np.finfo(np.float32).eps, err_msg=f"update {n}")


def test_lr_schedule_validation():
  with pytest.raises(ValueError, match="lr_schedule"):
    bf.BioFaceNetConfig(lr_schedule="linear")
  with pytest.raises(ValueError, match="lr_schedule_steps"):
    bf.BioFaceNetConfig(lr_schedule="step", lr_schedule_steps=0, lr_decay_start=0.5)
