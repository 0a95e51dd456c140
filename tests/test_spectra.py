"""The shared spectral tables against independent references (colour-science, published values)."""

import colour
import jax.numpy as jnp
import numpy as np
import pytest

from bioface_jax import assets, physics
from tests import numpy_reference as ref

LAM = np.arange(400, 721, 10)


def _colour_sd(sd):
  return np.interp(LAM, sd.wavelengths, sd.values)


def test_cie_a_and_fluorescent_match_colour_science(spectra):
  a = _colour_sd(colour.SDS_ILLUMINANTS["A"])
  np.testing.assert_allclose(np.asarray(spectra.illum_a), a / a.sum(), rtol=1e-5)
  for j in range(12):
    f = _colour_sd(colour.SDS_ILLUMINANTS[f"FL{j + 1}"])
    np.testing.assert_allclose(np.asarray(spectra.illum_f[j]), f / f.sum(), rtol=2e-4, atol=1e-7)


def test_cmf_matches_colour_science(spectra):
  cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
  expected = np.stack([np.interp(LAM, cmfs.wavelengths, cmfs.values[:, i]) for i in range(3)], 1)
  np.testing.assert_allclose(np.asarray(spectra.cmf), expected, atol=1e-6)


def test_daylight_rows_are_cie_daylight_at_4000_to_25000K(spectra):
  table = np.load(assets.asset_path("spectra/illumDmeasured.npz"))["illumD"]
  for i, cct in enumerate(range(4000, 25001, 1000)):
    xy = colour.temperature.CCT_to_xy_CIE_D(cct)
    sd = _colour_sd(colour.sd_CIE_illuminant_D_series(xy))
    np.testing.assert_allclose(table[i], sd, atol=0.03)  # spec: max error 0.021 on a 100 scale
    np.testing.assert_allclose(float(jnp.sum(spectra.illum_d[i])), 1.0, rtol=1e-6)


def test_camera_pca_matches_published_eigenvalues_and_svd_reference(spectra):
  np.testing.assert_allclose(np.asarray(spectra.camera_eigenvalues), [2.1997e-3, 2.1090e-3],
                             rtol=5e-5)
  mu, pcs, _ = ref.camera_basis()
  np.testing.assert_allclose(np.asarray(spectra.camera_mean), mu, atol=1e-7)
  np.testing.assert_allclose(np.asarray(spectra.camera_pcs), pcs, atol=1e-7)
  cams = np.load(assets.asset_path("spectra/rgbCMF.npz"))["rgbCMF"]
  *_, explained = physics.spectra.camera_pca(*cams)
  np.testing.assert_allclose(explained.sum(), 0.547, atol=1e-3)  # not the paper's 97 %


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
