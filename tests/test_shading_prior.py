"""photo.shading_prior and the refinement's shading term, against closed forms."""

import numpy as np
import pytest

from bioface_jax import face3d, physics
from bioface_jax.photo import shading_prior

C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708


def _irradiance(n, l):
  x, y, z = n[..., 0], n[..., 1], n[..., 2]
  return (C1 * l[8] * (x * x - y * y) + C3 * l[6] * z * z + C4 * l[0] - C5 * l[6]
          + 2 * C1 * (l[4] * x * y + l[7] * x * z + l[5] * y * z)
          + 2 * C2 * (l[3] * x + l[1] * y + l[2] * z))


def test_box_position_map_maps_the_box_onto_the_crop():
  pm = np.array([[[10.0, 20.0, 4.0], [49.0, 59.0, 8.0]]])  # pixel centres of the box corners
  out = shading_prior.box_position_map(pm, (10, 20, 50, 60), 80)
  # Pixel 10 covers [9.5, 10.5) of the photo -> [0, 2) of the crop: centre 0.5.
  np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 8.0])
  np.testing.assert_allclose(out[0, 1], [78.5, 78.5, 16.0])
  with pytest.raises(ValueError, match="square"):
    shading_prior.box_position_map(pm, (10, 20, 50, 70), 80)


def test_prior_of_a_sphere_lit_by_sh_is_its_true_shading():
  # A hemisphere of radius 30 photo pixels centred at (100, 80) as a 64 x 64 position map;
  # BioFaceNet's crop is the box (60, 40)-(140, 120) at 32 px.
  r, c = np.mgrid[0:64, 0:64].astype(np.float64)
  u, v = (c - 31.5) / 32, (r - 31.5) / 32
  valid = u * u + v * v < 0.95**2
  pm = np.stack([100 + 30 * u, 80 + 30 * v, 30 * np.sqrt(np.clip(1 - u * u - v * v, 0, 1))],
                -1)
  crop = shading_prior.box_position_map(pm, (60, 40, 140, 120), 32)
  geo = face3d.rasterise_position_map(crop, 32, valid)
  light = np.array([0.9, 0.1, 0.4, -0.3, 0.02, -0.05, 0.1, 0.05, -0.02])
  shading = np.maximum(_irradiance(geo["normals"].astype(np.float64), light), 0)
  image = np.where(geo["mask"][..., None], (0.3 * shading[..., None] * [1.0, 0.8, 0.7])**(1 / 2.2),
                   0.0)
  prior = shading_prior.shading_prior(image, geo["normals"], geo["mask"], trim=(0, 1))
  m = geo["mask"]
  want = shading / shading[m].mean()
  np.testing.assert_allclose(prior[m], want[m], rtol=1e-4, atol=1e-5)
  assert not prior[~m].any()
  np.testing.assert_allclose(prior[m].mean(), 1.0, rtol=1e-6)


def test_refinement_shading_term_is_the_weighted_shading_loss():
  import jax.numpy as jnp
  from bioface_jax.models import biofacenet
  from bioface_jax.photo import biofacenet_fit
  rng = np.random.default_rng(0)
  model = biofacenet.BioFaceNetConfig()
  lin, ren = (jnp.asarray(rng.uniform(size=(1, 8, 8, 3)), jnp.float32) for _ in range(2))
  spec = jnp.asarray(rng.uniform(size=(1, 8, 8, 3)), jnp.float32)
  b = jnp.asarray([[0.3, -0.2]], jnp.float32)
  mask = jnp.ones((1, 8, 8), jnp.float32)
  shading = jnp.asarray(rng.uniform(0.1, 1, (1, 8, 8)), jnp.float32)
  target = np.asarray(rng.uniform(0.1, 1, (1, 8, 8)), np.float32)
  target[0, :2] = 0  # no prior there: left out of the term
  base = biofacenet_fit._photo_loss_terms(lin, ren, spec, b, mask, model)
  with_prior = biofacenet_fit._photo_loss_terms(lin, ren, spec, b, mask, model, shading,
                                                jnp.asarray(target), 0.5)
  m = (target > 0).astype(np.float64)
  t, s = target.astype(np.float64), np.asarray(shading, np.float64)
  k = (m * t * s).sum() / (m * s * s).sum()
  np.testing.assert_allclose(float(with_prior[0] - base[0]),
                             0.5 * float((m * (t - k * s)**2).sum()), rtol=1e-4)


def test_decompose_rejects_a_bad_shading_target(tmp_path):
  from bioface_jax import pretrained
  from bioface_jax.photo import biofacenet_fit
  from tests import tiny_models
  model = pretrained.load("biofacenet", tiny_models.export("biofacenet", tmp_path / "m"))
  x = np.full((16, 16, 3), 0.5, np.float32)
  with pytest.raises(ValueError, match="shading_target"):
    biofacenet_fit.decompose(model, x, refine_steps=1, shading_target=np.ones((8, 8)))
  with pytest.raises(ValueError, match="shading_target"):
    biofacenet_fit.decompose(model, x, refine_steps=1, shading_target=-np.ones((16, 16)))
