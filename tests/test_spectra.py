"""The shared spectral tables against independent references (colour-science, published values)."""

import colour
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import assets, physics
from tests import numpy_reference as ref

LAM = np.arange(400, 721, 10)


EPS32 = float(np.finfo(np.float32).eps)


def _colour_sd(sd):
  return np.interp(LAM, sd.wavelengths, sd.values)


def _unit_sum_bound(f, dmax):
  """Bound on |t/sum(t) - f/sum(f)| when |t - f| <= dmax per band, plus float32 rounding.

  d(t_i / S) <= dmax / S + f_i * 33 dmax / S^2 (first order), and the float32 table storage and
  33-term normalisation add <= 40 eps32 * f_i / S.
  """
  total = f.sum()
  return dmax / total + (f / total) * (33 * dmax / total + 40 * EPS32)


def test_cie_a_and_fluorescent_match_colour_science(spectra):
  a = _colour_sd(colour.SDS_ILLUMINANTS["A"])
  # README: the table differs from colour-science by max 7e-6 (printed to 1 digit: < 7.5e-6).
  np.testing.assert_array_less(np.abs(np.asarray(spectra.illum_a) - a / a.sum()),
                               _unit_sum_bound(a, 7.5e-6))
  for j in range(12):
    f = _colour_sd(colour.SDS_ILLUMINANTS[f"FL{j + 1}"])
    # README: max abs diff from colour-science FL1-FL12 is 1.5e-6 (< 1.55e-6 at 2 digits).
    np.testing.assert_array_less(np.abs(np.asarray(spectra.illum_f[j]) - f / f.sum()),
                                 _unit_sum_bound(f, 1.55e-6))


def test_cmf_matches_colour_science(spectra):
  cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
  expected = np.stack([np.interp(LAM, cmfs.wavelengths, cmfs.values[:, i]) for i in range(3)], 1)
  # README: identical to colour-science; only the float32 storage rounds (<= eps32/2 relative).
  np.testing.assert_allclose(np.asarray(spectra.cmf), expected, rtol=EPS32 / 2, atol=0)


def test_daylight_rows_are_cie_daylight_at_4000_to_25000K(spectra):
  table = np.load(assets.asset_path("spectra/illumDmeasured.npz"))["illumD"]
  for i, cct in enumerate(range(4000, 25001, 1000)):
    xy = colour.temperature.CCT_to_xy_CIE_D(cct)
    sd = _colour_sd(colour.sd_CIE_illuminant_D_series(xy))
    # README: max abs diff from colour-science (M1, M2 conventions) 0.021 on the 100 scale,
    # printed to 3 decimals, so < 0.0215 (a difference between two tables, not rounding).
    np.testing.assert_allclose(table[i], sd, rtol=0, atol=0.0215)
    # float32 sum of 33 positive values normalised to 1: <= 40 roundings.
    np.testing.assert_allclose(float(jnp.sum(spectra.illum_d[i])), 1.0, rtol=40 * EPS32)


def test_camera_pca_matches_published_eigenvalues_and_svd_reference(spectra):
  # Published to 5 significant digits: half a unit of the last digit (5e-8) + float32 storage.
  np.testing.assert_allclose(np.asarray(spectra.camera_eigenvalues), [2.1997e-3, 2.1090e-3],
                             rtol=EPS32, atol=5e-8)
  mu, pcs, _ = ref.camera_basis()
  # float64 PCA stored in float32: <= eps32/2 relative per entry; eps32 * max|x| absolute also
  # covers the float64 eigh-vs-SVD difference (~1e-15).
  np.testing.assert_allclose(np.asarray(spectra.camera_mean), mu, rtol=0,
                             atol=EPS32 * np.abs(mu).max())
  np.testing.assert_allclose(np.asarray(spectra.camera_pcs), pcs, rtol=0,
                             atol=EPS32 * np.abs(pcs).max())
  cams = np.load(assets.asset_path("spectra/rgbCMF.npz"))["rgbCMF"]
  *_, explained = physics.spectra.camera_pca(*cams)
  # Our measured 0.547 printed to 3 decimals (half unit 5e-4); not the paper's 97 %.
  np.testing.assert_allclose(explained.sum(), 0.547, rtol=0, atol=5e-4)


def test_missing_asset_names_file_and_remedy(tmp_path, monkeypatch):
  monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
  with pytest.raises(assets.MissingAssetError, match=r"spectra/rgbCMF.npz not found.*BIOFACE_ASSETS"):
    physics.load_spectra()


def test_malformed_table_names_file_key_and_shape(tmp_path):
  src = assets.asset_path("spectra/illumA.npz").parent
  for f in src.glob("*.npz"):
    (tmp_path / f.name).write_bytes(f.read_bytes())
  np.savez(tmp_path / "illumA.npz", illumA=np.ones(31))
  with pytest.raises(physics.SpectraFormatError, match=r"illumA.npz.*shape \(31,\).*\(33,\)"):
    physics.load_spectra(tmp_path)
  np.savez(tmp_path / "illumA.npz", wrong=np.ones(33))
  with pytest.raises(physics.SpectraFormatError, match=r"illumA.npz: missing array 'illumA'"):
    physics.load_spectra(tmp_path)
  (tmp_path / "illumA.npz").write_bytes(b"not a zip file")
  with pytest.raises(physics.SpectraFormatError, match=r"illumA.npz: cannot read"):
    physics.load_spectra(tmp_path)
  a = np.ones(33)
  a[3] = np.nan
  np.savez(tmp_path / "illumA.npz", illumA=a)
  with pytest.raises(physics.SpectraFormatError, match="non-finite"):
    physics.load_spectra(tmp_path)
