"""The multispectral least-squares fit: exact recovery, noise, solver agreement, bad pixels.

Synthetic cubes are rendered with the independent NumPy transcription of the bilinear lookup
(`tests.numpy_reference.bilinear`) from the float64 table at random *non-node* coordinates;
reflectance spectra for `fit_reflectance` come from the literal Kubelka-Munk transcription
(`tests.numpy_reference.reflectance`).
"""

import jax
import numpy as np
import pytest
import scipy.optimize

from bioface_jax import fit
from bioface_jax import physics
from bioface_jax.fit import projection
from tests import numpy_reference as ref

H, W = 12, 10
# A spiky illuminant: half daylight 6500 K, half fluorescent F2 (weights A, D, F1..F12).
ILLUMINANT_WEIGHTS = np.eye(14)[1] * 0.5 + np.eye(14)[3] * 0.5


@pytest.fixture(scope="module")
def x64():
  """(float64 spectra, float64 LUT as NumPy, illuminant (33,)) built with 64-bit JAX."""
  with jax.enable_x64(True):
    spectra = physics.load_spectra()
    table = np.asarray(physics.skin_lut(spectra))
  return spectra, table, ref.illuminant(ILLUMINANT_WEIGHTS, 3.5)


def off_node(f):
  """Moves coordinates at least 0.05 cell widths away from the table's nodes."""
  position = (f + 1) / 2 * 255
  cell = np.floor(position)
  return 2 * (cell + np.clip(position - cell, 0.05, 0.95)) / 255 - 1


def truth(seed, fmel_range=(-0.8, 0.9), fblood_range=(-0.8, 0.9)):
  rng = np.random.default_rng(seed)
  fmel = off_node(rng.uniform(*fmel_range, (H, W)))
  fblood = off_node(rng.uniform(*fblood_range, (H, W)))
  return dict(fmel=fmel, fblood=fblood, diffuse=rng.uniform(0.5, 2.0, (H, W)) * 1e3,
              specular=rng.uniform(0.02, 0.3, (H, W)) * 1e3)


def render(table, e, t):
  """Radiance cube e (i_d R + i_s) with the NumPy bilinear lookup, pixel by pixel."""
  refl = np.array([[ref.bilinear(table, t["fblood"][i, j], t["fmel"][i, j]) for j in range(W)]
                   for i in range(H)])
  return e * (t["diffuse"][..., None] * refl + t["specular"][..., None])


def noisy(cube, sigma, seed=0):
  """Adds Gaussian noise of std sigma times the RMS of the cube."""
  rng = np.random.default_rng(seed)
  return cube + sigma * np.sqrt(np.mean(cube**2)) * rng.standard_normal(cube.shape)


def rmse(a, b):
  return float(np.sqrt(np.mean((a - b)**2)))


def test_closed_form_shading_equals_scipy_nnls():
  rng = np.random.default_rng(9)
  e = rng.uniform(0.2, 1.0, 33)
  refl = rng.uniform(0.05, 0.8, (200, 33))
  # Mixtures with negative coefficients too, plus noise: every branch of the closed form.
  coef = rng.uniform(-1.0, 2.0, (200, 2))
  radiance = e * (coef[:, :1] * refl + coef[:, 1:]) + 0.05 * rng.standard_normal((200, 33))
  with jax.enable_x64(True):
    i_d, i_s, residual = (np.asarray(x) for x in projection.project(refl, radiance, e))
    i_d1, _, residual1 = (np.asarray(x) for x in projection.project(
        refl, radiance, e, with_specular=False))
  for k in range(200):
    x, norm = scipy.optimize.nnls(np.stack([e * refl[k], e], -1), radiance[k])
    np.testing.assert_allclose([i_d[k], i_s[k]], x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(residual[k]), norm, rtol=1e-9)
    x, norm = scipy.optimize.nnls((e * refl[k])[:, None], radiance[k])
    np.testing.assert_allclose(i_d1[k], x[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(residual1[k]), norm, rtol=1e-9)
  assert (i_d == 0).any() and (i_s == 0).any() and ((i_d > 0) & (i_s > 0)).any()


def test_truth_is_off_the_table_nodes():
  t = truth(0)
  for key in ("fmel", "fblood"):
    position = (t[key] + 1) / 2 * 255
    assert np.min(np.abs(position - np.round(position))) > 0.04


def test_gauss_newton_recovers_noiseless_parameters_to_machine_precision(x64):
  spectra, table, e = x64
  t = truth(0)
  cube = render(table, e, t)
  with jax.enable_x64(True):
    out = fit.fit_cube(spectra, cube, e, lut=table)
    mel, hb = physics.network_to_fractions(t["fmel"], t["fblood"])
  for key in ("fmel", "fblood"):
    np.testing.assert_allclose(out[key], t[key], rtol=0, atol=1e-10)
  for key in ("diffuse", "specular"):
    np.testing.assert_allclose(out[key], t[key], rtol=1e-9)
  np.testing.assert_allclose(out["melanin"], mel, rtol=1e-8)
  np.testing.assert_allclose(out["haemoglobin"], hb, rtol=1e-8)
  assert np.max(out["relative_residual"]) < 1e-12
  assert out["info"]["iterations"] < 50 and out["converged"].all()
  assert not out["out_of_range"].any()


def test_spatially_varying_illuminant_is_recovered_exactly(x64):
  spectra, table, e = x64
  t = truth(10)
  lam = np.linspace(0.0, 1.0, 33)
  tilt = np.linspace(-0.5, 0.5, W)[None, :, None] * (lam - 0.5)     # bluer left, redder right
  e_map = e * (1 + tilt) * np.linspace(0.5, 1.5, H)[:, None, None]  # and brighter downwards
  refl = render(table, np.ones(33), dict(t, specular=np.zeros((H, W))))
  cube = e_map * (refl + t["specular"][..., None])
  with jax.enable_x64(True):
    out = fit.fit_cube(spectra, cube, e_map, lut=table)
  for key in ("fmel", "fblood"):
    np.testing.assert_allclose(out[key], t[key], rtol=0, atol=1e-10)
  for key in ("diffuse", "specular"):
    np.testing.assert_allclose(out[key], t[key], rtol=1e-9)


@pytest.mark.parametrize("solver,atol", [("lbfgs", 1e-8), ("adam", 2e-3)])
def test_first_order_solvers_recover_noiseless_parameters(x64, solver, atol):
  spectra, table, e = x64
  t = truth(1, (-0.6, 0.6), (-0.6, 0.6))
  cube = render(table, e, t)
  with jax.enable_x64(True):
    out = fit.fit_cube(spectra, cube, e, lut=table, solver=solver)
  for key in ("fmel", "fblood"):
    np.testing.assert_allclose(out[key], t[key], rtol=0, atol=atol)
    assert np.median(np.abs(out[key] - t[key])) < atol / 10
  np.testing.assert_allclose(out["diffuse"], t["diffuse"], rtol=atol * 10)
  assert not out["out_of_range"].any()


def test_float32_gauss_newton_recovers_parameters(x64, spectra, lut):
  _, table, e = x64
  t = truth(2)
  out = fit.fit_cube(spectra, render(table, e, t), e, lut=lut)
  assert out["info"]["dtype"] == "float32"
  for key in ("fmel", "fblood"):
    np.testing.assert_allclose(out[key], t[key], rtol=0, atol=2e-4)
  np.testing.assert_allclose(out["diffuse"], t["diffuse"], rtol=5e-4)


def test_errors_grow_smoothly_with_noise(x64):
  spectra, table, e = x64
  t = truth(3, (-0.6, 0.6), (-0.6, 0.6))
  cube = render(table, e, t)
  sigmas = [1e-4, 1e-3, 1e-2]
  errors = []
  with jax.enable_x64(True):
    for sigma in sigmas:
      out = fit.fit_cube(spectra, noisy(cube, sigma), e, lut=table)
      assert all(np.isfinite(out[k]).all() for k in ("fmel", "fblood", "diffuse", "specular"))
      errors.append(rmse(out["fmel"], t["fmel"]) + rmse(out["fblood"], t["fblood"]))
      if sigma <= 1e-3:  # at 1 % of the mean RMS, dark pixels exceed a 5 % relative residual
        assert not out["out_of_range"].any()
  # Linear error propagation: error / sigma stays within a small factor across 2 decades.
  ratios = np.array(errors) / np.array(sigmas)
  assert np.all(np.diff(errors) > 0)
  assert ratios.max() / ratios.min() < 3, ratios


def test_solvers_agree_on_a_noisy_cube(x64):
  spectra, table, e = x64
  t = truth(4, (-0.6, 0.6), (-0.6, 0.6))
  cube = noisy(render(table, e, t), 1e-2)
  with jax.enable_x64(True):
    outs = {s: fit.fit_cube(spectra, cube, e, lut=table, solver=s) for s in fit.SOLVERS}
  gn = outs["gauss_newton"]
  # L-BFGS can stall a little short at a kink of the piecewise-bilinear table (a pixel whose
  # optimum sits on a node line): looser pigment tolerance, same objective to 1e-7.
  for solver, atol in (("lbfgs", 1e-3), ("adam", 1e-4)):
    for key in ("fmel", "fblood"):
      np.testing.assert_allclose(outs[solver][key], gn[key], rtol=0, atol=atol)
    np.testing.assert_allclose(outs[solver]["diffuse"], gn["diffuse"], rtol=10 * atol)
    objective = outs[solver]["info"]["objective"]
    assert gn["info"]["objective"] <= objective * (1 + 1e-10)
    np.testing.assert_allclose(objective, gn["info"]["objective"], rtol=1e-7)


def test_smoothness_matches_a_global_optimiser_and_reduces_error(x64):
  spectra, table, e = x64
  yy, xx = np.mgrid[0:H, 0:W] / 10.0
  t = dict(fmel=-0.2 + 0.3 * np.sin(2 * xx + yy), fblood=0.1 + 0.3 * np.cos(xx - 2 * yy),
           diffuse=1 + 0.3 * xx, specular=0.05 + 0.05 * yy)
  cube = noisy(render(table, e, t), 2e-2, seed=1)
  with jax.enable_x64(True):
    plain = fit.fit_cube(spectra, cube, e, lut=table)
    smooth = fit.fit_cube(spectra, cube, e, lut=table, smoothness=1e-2)
    # Adam on the whole coupled map: an independent optimiser of the same objective.
    coupled = fit.fit_cube(spectra, cube, e, lut=table, smoothness=1e-2, solver="adam")
  assert smooth["converged"].all()
  for key in ("fmel", "fblood"):
    np.testing.assert_allclose(smooth[key], coupled[key], rtol=0, atol=2e-6)
    assert rmse(smooth[key], t[key]) < 0.9 * rmse(plain[key], t[key])
  assert smooth["info"]["objective"] <= coupled["info"]["objective"]


def test_pixels_outside_the_model_are_flagged_not_nan(x64):
  spectra, table, e = x64
  cube = render(table, e, truth(5, (-0.6, 0.6), (-0.6, 0.6)))
  lam = np.arange(400.0, 721.0, 10.0)
  cube[0, 0] = 2e3 * e                                               # flat grey
  cube[0, 1] = 2e3 * e * np.exp(-0.5 * ((lam - 530) / 20)**2)        # pure green
  cube[0, 2] = 0.0                                                   # black
  cube[0, 3] = 2e3 * e * np.exp(-0.5 * ((lam - 450) / 20)**2)        # pure blue
  cube[1, 1] = np.nan
  with jax.enable_x64(True):
    with pytest.raises(ValueError, match=r"non-finite.*1 masked pixel.*row 1, col 1"):
      fit.fit_cube(spectra, cube, e, lut=table)
    outs = [fit.fit_cube(spectra, cube, e, lut=table, solver=solver, invalid="flag")
            for solver in ("gauss_newton", "adam")]
  expected = np.zeros((H, W), bool)
  expected[0, :4] = expected[1, 1] = True
  for out in outs:
    np.testing.assert_array_equal(out["out_of_range"], expected)
    fitted = out["mask"]
    assert fitted.sum() == H * W - 1 and not fitted[1, 1]
    for key in ("fmel", "fblood", "melanin", "haemoglobin", "diffuse", "specular", "residual"):
      assert np.isfinite(out[key][fitted]).all(), (out["info"]["solver"], key)
      assert np.isnan(out[key][1, 1])
    assert out["diffuse"][0, 0] < 1e-3 * out["specular"][0, 0]  # grey = specular only


def test_mask_limits_the_fit(x64, spectra, lut):
  _, table, e = x64
  cube = render(table, e, truth(6))
  mask = np.zeros((H, W), bool)
  mask[2:9, 3:7] = True
  cube[~mask] = np.nan  # never read
  out = fit.fit_cube(spectra, cube, e, mask=mask, lut=lut)
  assert np.isnan(out["fmel"][~mask]).all() and np.isfinite(out["fmel"][mask]).all()
  assert not out["out_of_range"][~mask].any()
  assert out["info"]["n_pixels"] == mask.sum()


def test_bad_inputs_raise_clear_errors(spectra, lut):
  cube = np.ones((4, 5, 33))
  e = np.ones(33)
  with pytest.raises(ValueError, match=r"cube must have shape \(H, W, 33\)"):
    fit.fit_cube(spectra, cube[..., :31], e)
  with pytest.raises(ValueError, match=r"illuminant must have shape \(33,\)"):
    fit.fit_cube(spectra, cube, e[:31])
  with pytest.raises(ValueError, match="illuminant must be finite, non-negative"):
    fit.fit_cube(spectra, cube, -e)
  with pytest.raises(ValueError, match=r"mask must be a bool array of shape \(4, 5\)"):
    fit.fit_cube(spectra, cube, e, mask=np.ones((5, 4), bool))
  with pytest.raises(ValueError, match="solver must be one of"):
    fit.fit_cube(spectra, cube, e, lut=lut, solver="newton")
  with pytest.raises(ValueError, match="enable_x64"):
    fit.fit_cube(spectra, cube, e, lut=lut, dtype="float64")


def test_fit_reflectance_recovers_fractions_from_the_continuous_model(x64):
  spectra, _, _ = x64
  rng = np.random.default_rng(7)
  mel, hb = rng.uniform(0.01, 0.3, 4), rng.uniform(0.002, 0.05, 4)
  scale = rng.uniform(0.5, 2.0, 4)
  refl = np.stack([ref.reflectance(m, b) for m, b in zip(mel, hb)]) * scale[:, None]
  with jax.enable_x64(True):
    out33 = fit.fit_reflectance(spectra, refl, model="continuous")
    out31 = fit.fit_reflectance(spectra, refl[:, :31], model="continuous")
  for out in (out33, out31):
    np.testing.assert_allclose(out["melanin"], mel, rtol=1e-9)
    np.testing.assert_allclose(out["haemoglobin"], hb, rtol=1e-9)
    np.testing.assert_allclose(out["scale"], scale, rtol=1e-9)
    assert out["rmse"].max() < 1e-12


def test_fit_reflectance_at_table_nodes_is_exact_and_checks_wavelengths(x64):
  spectra, _, _ = x64
  nodes = np.array([[40, 200], [128, 30], [90, 160]])
  f = 2 * nodes / 255 - 1
  u = 0.01 + 0.99 * nodes / 255  # spec 1.6: node k at 0.43 u_k^3, 0.07 u_k^3
  refl = np.stack([ref.reflectance(0.43 * a**3, 0.07 * b**3) for a, b in u]) * 0.7
  # Off the nodes the table interpolates reflectance, not fractions: close, not exact.
  off_node = (0.12, 0.021)
  refl = np.concatenate([refl, ref.reflectance(*off_node)[None]])
  lam = np.arange(400.0, 701.0, 10.0)
  with jax.enable_x64(True):
    out = fit.fit_reflectance(spectra, refl[:, :31], wavelengths=lam)
    single = fit.fit_reflectance(spectra, refl[0, :31])
  np.testing.assert_allclose(out["fmel"][:3], f[:, 0], atol=1e-10)
  np.testing.assert_allclose(out["fblood"][:3], f[:, 1], atol=1e-10)
  np.testing.assert_allclose(out["scale"], [0.7, 0.7, 0.7, 1.0], rtol=1e-3)
  np.testing.assert_allclose(out["scale"][:3], 0.7, rtol=1e-10)
  np.testing.assert_allclose([out["melanin"][3], out["haemoglobin"][3]], off_node, rtol=1e-3)
  assert out["fmel"].shape == (4,)
  assert single["fmel"].shape == () and abs(single["fmel"] - f[0, 0]) < 1e-10
  with pytest.raises(ValueError, match="30 bands"):
    fit.fit_reflectance(spectra, refl[:, :30])
  with pytest.raises(ValueError, match=r"not on it: \[405.0"):
    fit.fit_reflectance(spectra, refl[:, :31], wavelengths=lam + 5)
  with pytest.raises(ValueError, match="non-finite"):
    fit.fit_reflectance(spectra, np.full(33, np.nan))
