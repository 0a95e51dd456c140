"""`physics.render` against the float64 NumPy transcription, gradients, batching, bad input."""

import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bioface_jax import physics
from tests import numpy_reference as ref


EPS32 = float(np.finfo(np.float32).eps)


def _srgb_scale(out):
  """|M_srgb| |T| |wb|: the sum of |terms| of linear sRGB, the scale of its float32 rounding."""
  return np.einsum("ij,...jk,...hwk->...hwi", np.abs(physics.display.XYZ_TO_LINEAR_SRGB),
                   np.abs(np.asarray(out["raw_to_xyz"], np.float64)),
                   np.abs(np.asarray(out["white_balanced"], np.float64)))


def random_inputs(rng, batch=(), hw=(3, 4)):
  shape = batch + hw
  return dict(
      fmel=rng.uniform(-0.95, 0.95, shape), fblood=rng.uniform(-0.95, 0.95, shape),
      shading=rng.uniform(0.2, 2.0, shape), specular=rng.uniform(0.0, 0.3, shape),
      weights=rng.dirichlet(np.ones(14), size=batch or None), t=rng.uniform(1.5, 21.5, batch),
      b=rng.uniform(-2.5, 2.5, batch + (2,)))


def test_render_matches_float64_reference():
  rng = np.random.default_rng(0)
  inputs = random_inputs(rng)
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    lut = physics.skin_lut(spectra, size=9)
    for path in ("spectral", "folded"):
      out = physics.render(spectra, lut, **inputs, path=path)
      expected = ref.render(np.asarray(lut), **inputs)
      for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(out[key]), value, rtol=1e-11, atol=1e-14,
                                   err_msg=f"{key} ({path})")


def test_folded_path_equals_spectral_path_to_rounding():
  # Both paths in float64: they are the same function summed in a different order. Rule:
  # gamma_n eps64-level with n ~ 33 bands x 3 x 3 matrix terms and matrix |row| sums < 10:
  # 1e3 * eps64 * scale (a wrong fold, e.g. a missing band weight, is >= 1e-3 relative).
  rng = np.random.default_rng(1)
  inputs = random_inputs(rng, batch=(2,), hw=(16, 16))
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    lut = physics.skin_lut(spectra)
    spectral = physics.render(spectra, lut, **inputs, path="spectral")
    folded = physics.render(spectra, lut, **inputs, path="folded")
  for key in ("raw", "diffuse_albedo", "linear_srgb"):
    assert spectral[key].dtype == np.float64, key
    scale = float(np.abs(np.asarray(spectral[key])).max())
    np.testing.assert_allclose(folded[key], spectral[key], rtol=0,
                               atol=1e3 * float(np.finfo(np.float64).eps) * scale, err_msg=key)


def test_batched_equals_unbatched(spectra, lut):
  rng = np.random.default_rng(2)
  inputs = random_inputs(rng, batch=(2, 3))
  batched = physics.render(spectra, lut, **inputs)
  for i in range(2):
    for j in range(3):
      single = physics.render(spectra, lut, **{
          k: (v[i, j] if np.ndim(v) > 0 and np.shape(v)[:2] == (2, 3) else v)
          for k, v in inputs.items()})
      # Two float32 evaluations that may reduce in different orders: each is within 48 eps32
      # of the sum of |terms| (33-band sums, 3x3 products: <= ~45 roundings), so 96 together.
      np.testing.assert_array_less(
          np.abs(batched["linear_srgb"][i, j] - single["linear_srgb"]),
          96 * EPS32 * _srgb_scale(single) + 1e-30)


def test_shared_light_and_camera_broadcast_over_batch(spectra, lut):
  rng = np.random.default_rng(3)
  inputs = random_inputs(rng, batch=(4,))
  shared = dict(inputs, weights=inputs["weights"][0], t=inputs["t"][0], b=inputs["b"][0])
  out = physics.render(spectra, lut, **shared)
  one = physics.render(spectra, lut, **{k: (v[0] if k in ("fmel", "fblood", "shading",
                                                          "specular") else v)
                                        for k, v in shared.items()})
  # raw = shading * albedo + specular has positive terms only; each float32 evaluation is within
  # ~40 roundings (33-band albedo sum, products), so two differ by <= 96 eps32 relative.
  np.testing.assert_allclose(out["raw"][0], one["raw"], rtol=96 * EPS32, atol=0)


def test_check_grads_in_every_continuous_input():
  rng = np.random.default_rng(4)
  inputs = random_inputs(rng, hw=(2, 2))
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    lut = physics.skin_lut(spectra, size=16)
    names = list(inputs)

    def f(*args):
      out = physics.render(spectra, lut, **dict(zip(names, args)))
      return out["linear_srgb"].sum() + out["raw"].sum()

    args = [jnp.asarray(inputs[n], jnp.float64) for n in names]
    # Keep t away from integer nodes and pigments away from table nodes (piecewise linear).
    # float64 central differences with step 1e-5: truncation ~ step^2 |f'''| ~ 1e-10 and
    # rounding eps64 |f| / step ~ 1e-11, relative; 1e-4 keeps a wide margin for the inputs'
    # distance to the piecewise-linear kinks (kept >> step away, see above).
    check_grads(f, args, order=1, modes=("rev",), eps=1e-5, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("extreme", ["dark_shading", "huge_shading", "huge_specular",
                                     "edge_pigments", "extreme_camera", "pure_fluorescent"])
def test_gradients_finite_over_the_whole_parameter_range(spectra, lut, extreme):
  rng = np.random.default_rng(5)
  x = random_inputs(rng, batch=(2,), hw=(4, 4))
  if extreme == "dark_shading":
    x["shading"] = np.full_like(x["shading"], 1e-30)
  elif extreme == "huge_shading":
    x["shading"] = np.full_like(x["shading"], 1e6)
  elif extreme == "huge_specular":
    x["specular"] = np.full_like(x["specular"], 1e6)
  elif extreme == "edge_pigments":
    x["fmel"] = np.where(rng.random(x["fmel"].shape) < 0.5, -1.0, 1.0)
    x["fblood"] = np.where(rng.random(x["fblood"].shape) < 0.5, -1.0, 1.0)
  elif extreme == "extreme_camera":
    x["b"] = np.array([[3.0, 3.0], [-3.0, -3.0]])
  elif extreme == "pure_fluorescent":
    x["weights"] = np.tile(np.eye(14)[13], (2, 1))  # near-zero light in the deep red

  def loss(args):
    out = physics.render(spectra, lut, **args)
    return jnp.mean(out["linear_srgb"]) + jnp.mean(out["white_balanced"])

  args = {k: jnp.asarray(v, jnp.float32) for k, v in x.items()}
  value, grads = jax.value_and_grad(loss)(args)
  assert np.isfinite(float(value))
  for name, g in grads.items():
    assert np.all(np.isfinite(np.asarray(g))), name


def test_near_zero_light_colour_is_guarded(spectra, lut):
  # A camera whose channels are all clipped to ~0 by the ReLU would divide by zero.
  e = physics.illuminant(spectra, jnp.eye(14)[0], 5.0)
  s = jnp.zeros((3, 33))
  assert float(jnp.abs(physics.light_colour(e, s)).max()) == 0.0
  out = physics.render(spectra, lut, np.zeros((2, 2)), np.zeros((2, 2)), np.ones((2, 2)),
                       np.zeros((2, 2)), np.eye(14)[0], 5.0, np.zeros(2))
  assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values())


def test_no_retracing_across_calls(spectra, lut):
  rng = np.random.default_rng(6)
  traced = chex.assert_max_traces(n=1)(lambda *a: physics.render(spectra, lut, *a)["raw"])
  jitted = jax.jit(traced)
  for _ in range(3):
    x = random_inputs(rng, batch=(2,), hw=(8, 8))
    jitted(*[jnp.asarray(v, jnp.float32) for v in x.values()])
  # The eager entry point reuses its compiled core too.
  render_module = importlib.import_module("bioface_jax.physics.render")
  size = render_module._render._cache_size()  # pylint: disable=protected-access
  for _ in range(3):
    physics.render(spectra, lut, **random_inputs(rng, batch=(2,), hw=(8, 8)))
  assert render_module._render._cache_size() <= size + 1  # pylint: disable=protected-access


@pytest.mark.parametrize("field,value,message", [
    ("shading", np.ones((3, 5)), r"shading has shape \(3, 5\)"),
    ("weights", np.ones(13) / 13, r"weights has shape \(13,\)"),
    ("b", np.zeros(3), r"b has shape \(3,\)"),
    ("fmel", np.full((3, 4), np.nan), "fmel contains NaN"),
    ("fblood", np.full((3, 4), 1.5), r"fblood must lie in \[-1.0, 1.0\]"),
    ("shading", -np.ones((3, 4)), r"shading must lie in \[0.0, inf\]"),
    ("t", 30.0, r"t must lie in \[1.0, 22.0\]"),
    ("weights", np.full(14, 0.5), "weights must sum to 1"),
])
def test_bad_input_raises_clear_error(spectra, lut, field, value, message):
  inputs = random_inputs(np.random.default_rng(7))
  inputs[field] = value
  with pytest.raises(ValueError, match=message):
    physics.render(spectra, lut, **inputs)


def test_specular_is_neutral_after_white_balance(spectra, lut):
  x = random_inputs(np.random.default_rng(8))
  x["shading"] = np.zeros_like(x["shading"])
  out = physics.render(spectra, lut, **x)
  # (i_s * lc) / lc in float32: one product and one quotient, <= 2 ulp; 4 eps32 relative.
  np.testing.assert_allclose(out["white_balanced"], np.repeat(x["specular"][..., None], 3, -1),
                             rtol=4 * EPS32, atol=0)
