"""The realistic-light options of data.photometric.synth.render_scenes, against closed forms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from data.photometric import synth


def _scene(size=8):
  i, j = np.mgrid[0:size, 0:size]
  u, v = (j + 0.5 - size / 2) / (0.45 * size), -(i + 0.5 - size / 2) / (0.45 * size)
  mask = (u * u + v * v < 1).astype(np.float32)
  n = np.stack([u, v, np.sqrt(np.clip(1 - u * u - v * v, 0, None))], -1) * mask[..., None]
  rng = np.random.default_rng(0)
  z = np.zeros((size, size), np.float32)
  s = {"normals": n, "mask": mask, "depth": z, "albedo": rng.uniform(0.2, 1, (size, size, 3)),
       "bp_k": z, "bp_s": z + 1, "ct_k": z, "ct_r": z + 0.5, "ct_f0": z + 0.04}
  return {k: jnp.asarray(np.stack([a, a]), jnp.float32) for k, a in s.items()}


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _render(ambient, tint, shot):
  kw = dict(cast=False, noise=0.0, factor_range=(1.0, 1.0))
  return [synth.render_scenes(jax.random.key(3), _scene(), 5, ambient=a, tint=t, shot_noise=s,
                              **kw)[0] for a, t, s in ((0.0, 0.0, 0.0), (ambient, 0.0, 0.0),
                                                       (0.0, tint, 0.0), (0.0, 0.0, shot))]


def test_realistic_light_options():
  plain, lit, tinted, noisy = (np.asarray(x, np.float64) for x in _render(0.3, 0.2, 1e-2))
  scene = _scene()
  albedo = (np.asarray(scene["albedo"], np.float64)
            * np.asarray(scene["mask"], np.float64)[..., None])[:, None]  # (B, 1, H, W, 3)
  on = np.broadcast_to(albedo > 0.05, lit.shape)
  # Ambient: lit - plain = a * albedo with one level a in [0, 0.3] per sample (all 5 images).
  level = (lit - plain) / np.where(on, albedo, 1)
  for s in range(2):
    np.testing.assert_allclose(level[s][on[s]], level[s][on[s]][0], rtol=1e-4)
    assert 0 <= level[s][on[s]][0] <= 0.3
  # Coloured lights: one factor per image and channel, exp(+-0.2), channel mean 1.
  lit_px = plain > 1e-3
  ratio = np.where(lit_px, tinted / np.where(lit_px, plain, 1), np.nan)
  per_image = np.nanmean(ratio, axis=(2, 3))
  np.testing.assert_allclose(np.nanstd(ratio, axis=(2, 3)), 0, atol=1e-5)
  np.testing.assert_allclose(per_image.mean(-1), 1.0, rtol=1e-5)
  assert np.all(np.abs(np.log(per_image)) <= 0.4 + 1e-5) and per_image.std() > 0.01
  # Shot noise: none where there is no signal, some where there is.
  diff = noisy - plain
  assert not diff[plain == 0].any() and np.abs(diff[plain > 0.1]).min() > 0


def test_nenet_scale_runs_the_same_network_at_k_times_the_resolution():
  from bioface_jax.models import sdps
  base = sdps.SDPSConfig(net="nenet", width_multiplier=1 / 16)
  scaled = sdps.SDPSConfig(net="nenet", width_multiplier=1 / 16, nenet_scale=2)
  params, _ = sdps.init(jax.random.key(0), (1, 2, 8, 8, 3), base)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(size=(1, 2, 8, 8, 3)), jnp.float32)
  batch = {"images": images, "mask": jnp.ones((1, 8, 8)),
           "dirs": jnp.asarray([[[0.3, 0.1, 0.95], [-0.4, 0.2, 0.89]]]),
           "intensities": jnp.ones((1, 2))}
  out = np.asarray(sdps.apply(params, batch, scaled)["normals"], np.float64)
  up = jax.image.resize(images, (1, 2, 16, 16, 3), "bilinear", antialias=False)
  big = np.asarray(sdps.apply(params, dict(batch, images=up, mask=jnp.ones((1, 16, 16))),
                              base)["normals"], np.float64)
  want = big.reshape(1, 8, 2, 8, 2, 3).mean((2, 4))
  want /= np.linalg.norm(want, axis=-1, keepdims=True)
  np.testing.assert_allclose(out, want, atol=1e-5)
  assert out.shape == (1, 8, 8, 3)
