"""Per-photo latent refinement of the face VAE (`bioface_jax.models.face_vae_refine`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax.models import face_vae as fv
from bioface_jax.models import face_vae_loss as fl
from bioface_jax.models import face_vae_refine as fr

EPS = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def tiny():
  """A random 16 px model with the mask branch, four random crops and its evaluation outputs."""
  config = fv.FaceVAEConfig(input_size=16, latent_dim=8, width_multiplier=0.125,
                            losses=("ssim", "l1", "l2"))  # every reconstruction term
  params, stats = jax.jit(fv.init, static_argnums=(1, 2))(jax.random.key(0), (4, 16, 16, 3),
                                                          config)
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)), jnp.float32)
  first = jax.jit(fv.predict, static_argnums=3)(params, stats, x, config)
  return config, params, stats, x, first


def test_decode_of_the_posterior_mean_is_predicts_output(tiny):
  """The decoders alone on z = mean give `predict`'s image and mask. Both are sigmoids in
  [0, 1] after the same 14 float32 layers, whose fusion may differ between the two programs:
  a bound of 256 float32 epsilons of 1."""
  config, params, stats, _, first = tiny
  out = jax.jit(fv.decode, static_argnums=3)(params, stats, first["mean"], config)
  for key in ("image_pre", "mask"):
    np.testing.assert_allclose(out[key], first[key], rtol=0, atol=256 * EPS, err_msg=key)
  assert set(fv.decode(params, stats, first["mean"], config, mask=False)) == {"image_pre"}
  with pytest.raises(ValueError, match=r"z must have shape \(batch, 8\)"):
    fv.decode(params, stats, first["mean"][:, :4], config)


def test_objective_is_the_training_loss_seen_as_a_function_of_the_latent(tiny):
  """For one crop, with its predicted mask as the composite's mask, the objective at z = mean
  is the training loss's SSIM + l1 + l2 terms plus the KL term minus the KL's parts that do not
  depend on z (those with logvar): `compute_loss` computed independently."""
  config, params, stats, x, first = tiny
  for i in range(2):
    xi, mi = x[i:i + 1], first["mask"][i:i + 1]
    _, (terms, _, _) = fl.compute_loss(params, stats, {"image": xi, "mask": mi}, config,
                                       train=False)
    logvar = first["logvar"][i]
    constant = config.kl_weight * 0.5 * jnp.mean(1.0 + logvar - jnp.exp(logvar))
    want = float(terms["ssim"] + terms["l1"] + terms["l2"] + terms["kl"] + constant)
    got = float(fr.objective(first["mean"][i:i + 1], params, stats, xi, mi, config)[0])
    # Sums of at most 768 float32 terms of size ~1: a few hundred epsilons of the total.
    assert abs(got - want) <= 512 * EPS * abs(want), (i, got, want)


@pytest.mark.parametrize("sampling", ["standard", "authors"])
def test_latent_prior_is_the_kl_terms_dependence_on_the_mean(sampling):
  """KL(mean, logvar) - KL(0, logvar) = kl_weight / 2 * mean(mean^2) for both samplings, per
  image (`face_vae_loss.kl_loss`, a mean over one image's latent)."""
  config = fv.FaceVAEConfig(input_size=16, latent_dim=8, sampling=sampling)
  rng = np.random.default_rng(1)
  mean = jnp.asarray(rng.normal(0, 3, (3, 8)), jnp.float32)
  logvar = jnp.asarray(rng.normal(0, 0.5, (3, 8)), jnp.float32)
  want = [float(fl.kl_loss(mean[i], logvar[i], sampling, config.kl_weight)
                - fl.kl_loss(jnp.zeros(8), logvar[i], sampling, config.kl_weight))
          for i in range(3)]
  np.testing.assert_allclose(fr.latent_prior(mean, config), want, rtol=64 * EPS)


def test_each_crops_objective_depends_on_its_own_latent_only(tiny):
  """The Jacobian of the per-crop objectives with respect to the latents is block diagonal,
  exactly (evaluation-mode BatchNorm, per-image losses): with Adam's elementwise update, crops
  refined together are refined as if alone."""
  config, params, stats, x, first = tiny
  n = 3  # the Jacobian's cost grows with the square of the batch
  jac = jax.jit(jax.jacobian(lambda z: fr.objective(z, params, stats, x[:n], first["mask"][:n],
                                                    config)))(first["mean"][:n])  # (n, n, latent)
  off = np.asarray(jac) * (1 - np.eye(n))[:, :, None]
  assert np.all(off == 0.0)
  assert np.all(np.abs(np.asarray(jac)[np.arange(n), np.arange(n)]).sum(-1) > 0)


def test_refinement_lowers_every_crops_objective_and_zero_steps_is_the_network(tiny):
  config, params, stats, x, first = tiny
  none = fr.predict(params, stats, x, config, steps=0)
  np.testing.assert_allclose(none["image_pre"], first["image_pre"], rtol=0, atol=256 * EPS)
  np.testing.assert_array_equal(none["mask"], first["mask"])
  np.testing.assert_array_equal(none["latent"], first["mean"])
  np.testing.assert_allclose(none["objective_after"], none["objective_before"],
                             rtol=64 * EPS)
  out = fr.predict(params, stats, x, config, steps=20)
  assert out["image_pre"].shape == x.shape and out["latent"].shape == (4, 8)
  np.testing.assert_array_equal(out["mask"], first["mask"])  # the network's mask, held fixed
  assert np.all(np.asarray(out["objective_after"]) < np.asarray(out["objective_before"]))
  assert np.all(np.isfinite(np.asarray(out["image_pre"])))
  # The returned image is the decoder's output at the returned latent.
  np.testing.assert_allclose(out["image_pre"],
                             fv.decode(params, stats, out["latent"], config)["image_pre"],
                             rtol=0, atol=256 * EPS)


def test_refinement_never_makes_a_photos_objective_worse_and_names_divergence(tiny):
  """With an absurd step Adam overshoots: photos whose objective rose keep the network's
  latent and output; a non-finite objective is an error naming the photos."""
  config, params, stats, x, first = tiny
  out = fr.predict(params, stats, x, config, steps=3, learning_rate=1e3)
  before, after = np.asarray(out["objective_before"]), np.asarray(out["objective_after"])
  assert np.all(after <= before)
  kept = after == before
  assert kept.any()  # the overshoot happened: the test exercises the fallback
  np.testing.assert_array_equal(np.asarray(out["latent"])[kept], np.asarray(first["mean"])[kept])
  with pytest.raises(FloatingPointError, match=r"diverged .* images \[0, 1, 2, 3\]"):
    fr.predict(params, stats, x.at[:, 0, 0, 0].set(jnp.nan), config, steps=1)


def test_bad_arguments_name_the_problem(tiny):
  config, params, stats, x, _ = tiny
  with pytest.raises(ValueError, match="steps must be an int >= 0"):
    fr.predict(params, stats, x, config, steps=-1)
  with pytest.raises(ValueError, match="learning_rate must be > 0"):
    fr.predict(params, stats, x, config, steps=1, learning_rate=0.0)
  with pytest.raises(ValueError, match=r"shape \(batch, 16, 16, 3\)"):
    fr.predict(params, stats, x[:, :8], config, steps=1)
