"""Tests for data/iset.py: ISET multispectral scene files, every layout, v5 and v7.3.

References are closed forms: an analytic energy cube linear in wavelength (so linear resampling
is exact), photons = E * lambda / (h c) with ISET's constants written out here, and files built
directly with scipy.io.savemat / raw h5py in ISET's layouts, independently of `write_scene`.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from data import iset

H_ISET, C_ISET = 6.626176e-34, 2.99792458e8  # ISET vcConstants('h'), vcConstants('c')
W33 = np.arange(400.0, 721.0, 10.0)
W31 = np.arange(400.0, 701.0, 10.0)


def _energy(wave, h=6, w=5, seed=0):
  """Energy cube linear in wavelength: a(y,x) + b(y,x) (lambda - 400) / 300."""
  rng = np.random.default_rng(seed)
  a = rng.uniform(0.2, 1.0, (h, w, 1))
  b = rng.uniform(0.0, 0.5, (h, w, 1))
  return a + b * (np.asarray(wave) - 400.0) / 300.0


def _ill(wave):
  return 1.0 + 0.002 * (np.asarray(wave) - 400.0)


def _photons(energy, wave):
  return energy * (np.asarray(wave) * 1e-9) / (H_ISET * C_ISET)


def _modern_il(wave, energy):
  return {"name": "test", "type": "illuminant", "spectrum": {"wave": wave},
          "data": {"photons": _photons(energy, wave)}}


def _save(path, variables):
  scipy.io.savemat(path, variables, appendmat=False, oned_as="row")
  return path


def test_photons_to_energy_closed_form(tmp_path):
  # One photon/s at 500 nm carries h c / 500e-9 J; with ISET's h (CODATA 2018 would give
  # 3.9728917e-19, 1.6e-5 lower).
  np.testing.assert_allclose(iset.photons_to_energy(1.0, 500.0), 3.9729552e-19, rtol=1e-7)
  rng = np.random.default_rng(1)
  photons = rng.uniform(1e15, 1e17, (6, 5, 33))
  il_photons = rng.uniform(1e16, 2e16, 33)
  path = _save(tmp_path / "p.mat", {
      "photons": photons, "wave": W33, "illuminant": {
          "type": "illuminant", "spectrum": {"wave": W33}, "data": {"photons": il_photons}}})
  scene = iset.read_scene(path)
  expected = photons * H_ISET * C_ISET / (W33 * 1e-9)
  np.testing.assert_allclose(scene.radiance, expected, rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant, il_photons * H_ISET * C_ISET / (W33 * 1e-9),
                             rtol=1e-12)
  assert scene.radiance.dtype == np.float64 and not scene.extrapolated.any()
  assert scene.metadata["radiance_units_stored"] == "photons"


def test_v5_photons_roundtrip_and_stored_layout(tmp_path):
  energy, ill = _energy(W33), _ill(W33)
  path = iset.write_scene(tmp_path / "face01.mat", energy, W33, ill, comment="synthetic")
  raw = scipy.io.loadmat(path, simplify_cells=True)
  np.testing.assert_allclose(raw["photons"], _photons(energy, W33), rtol=1e-14)
  np.testing.assert_array_equal(raw["wave"], W33)
  assert raw["illuminant"]["type"] == "illuminant"
  np.testing.assert_allclose(raw["illuminant"]["data"]["photons"], _photons(ill, W33),
                             rtol=1e-14)
  scene = iset.read_scene(path)
  np.testing.assert_allclose(scene.radiance, energy, rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant, ill, rtol=1e-12)
  np.testing.assert_array_equal(scene.wavelengths, W33)
  assert (scene.name, scene.comment) == ("face01", "synthetic")
  assert scene.illuminant_map is None and scene.metadata["mat_version"] == "v5"


def test_v5_mccoef_with_img_mean_exact_for_low_rank(tmp_path):
  energy, ill = _energy(W31), _ill(W31)
  path = iset.write_scene(tmp_path / "m.mat", energy, W31, ill, format="mccoef", n_basis=2)
  raw = scipy.io.loadmat(path, simplify_cells=True)
  assert raw["mcCOEF"].shape == (6, 5, 2) and raw["basis"]["basis"].shape == (31, 2)
  np.testing.assert_array_equal(raw["basis"]["wave"], W31)
  # ISET's reconstruction (vcReadImage), done here from the raw variables.
  rebuilt = raw["mcCOEF"] @ raw["basis"]["basis"].T + raw["imgMean"]
  np.testing.assert_allclose(rebuilt, _photons(energy, W31), rtol=1e-10)
  scene = iset.read_scene(path)
  np.testing.assert_allclose(scene.radiance[..., :31], energy, rtol=1e-10)
  np.testing.assert_allclose(scene.illuminant[:31], ill, rtol=1e-12)
  assert scene.metadata["layout"] == "mccoef" and scene.metadata["n_basis"] == 2
  assert scene.metadata["has_img_mean"]
  # One basis function cannot hold a rank-2 cube: the comparison above can fail.
  lossy = iset.read_scene(iset.write_scene(tmp_path / "m1.mat", energy, W31, ill,
                                           format="mccoef", n_basis=1))
  assert np.abs(lossy.radiance[..., :31] - energy).max() > 1e-4


def test_v5_full_scene_struct(tmp_path):
  energy, ill = _energy(W33), _ill(W33)
  path = _save(tmp_path / "s.mat", {"scene": {
      "type": "scene", "name": "person 3", "spectrum": {"wave": W33},
      "data": {"photons": _photons(energy, W33)}, "illuminant": _modern_il(W33, ill),
      "distance": 1.0, "wAngular": 15.0}})
  scene = iset.read_scene(path)
  np.testing.assert_allclose(scene.radiance, energy, rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant, ill, rtol=1e-12)
  assert scene.name == "person 3" and scene.metadata["layout"] == "scene"
  assert (scene.metadata["fov"], scene.metadata["dist"]) == (15.0, 1.0)
  written = iset.read_scene(iset.write_scene(tmp_path / "w.mat", energy, W33, ill,
                                             format="scene", name="person 3"))
  np.testing.assert_allclose(written.radiance, energy, rtol=1e-12)
  assert written.name == "person 3"


def test_v73_mccoef_matlab_layout(tmp_path):
  energy, ill = _energy(W31), _ill(W31)
  path = iset.write_scene(tmp_path / "v73.mat", energy, W31, ill, format="mccoef",
                          version="v7.3", n_basis=2, comment="HDF5")
  head = path.read_bytes()[:128]
  assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:] == b"\x00\x02IM"
  assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)
  with h5py.File(path, "r") as f:
    assert f["mcCOEF"].shape == (2, 5, 6)  # MATLAB (6, 5, 2), column-major
    assert f["mcCOEF"].attrs["MATLAB_class"] == b"double"
    assert f["basis"].attrs["MATLAB_class"] == b"struct"
    assert f["basis/basis"].shape == (2, 31)
    assert f["comment"].dtype == np.uint16 and f["comment"].attrs["MATLAB_class"] == b"char"
    fields = ["".join(c.decode() for c in v) for v in f["illuminant"].attrs["MATLAB_fields"]]
    assert set(fields) == set(f["illuminant"].keys())
  scene = iset.read_scene(path)
  np.testing.assert_allclose(scene.radiance[..., :31], energy, rtol=1e-10)
  np.testing.assert_allclose(scene.illuminant[:31], ill, rtol=1e-12)
  assert scene.comment == "HDF5" and scene.metadata["mat_version"] == "v7.3"


def test_v73_hand_built_transposed_photons_old_illuminant(tmp_path):
  """A v7.3 file written with raw h5py as MATLAB lays it out (not by write_scene)."""
  energy, ill = _energy(W33, h=7, w=4, seed=3), _ill(W33)
  path = tmp_path / "raw73.mat"
  with h5py.File(path, "w", userblock_size=512) as f:
    f["photons"] = _photons(energy, W33).T  # MATLAB (7, 4, 33) -> HDF5 (33, 4, 7)
    f["wavelength"] = W33.reshape(-1, 1)  # MATLAB 1x33 row -> HDF5 (33, 1)
    for key in ("photons", "wavelength"):
      f[key].attrs["MATLAB_class"] = np.bytes_("double")
    il = f.create_group("illuminant")
    il.attrs["MATLAB_class"] = np.bytes_("struct")
    il["data"] = ill.reshape(-1, 1)  # old format: energy, 1x33
    il["wavelength"] = W33.reshape(-1, 1)
    f["name"] = np.array([[ord(c)] for c in "Raw face"], np.uint16)
    f["name"].attrs["MATLAB_class"] = np.bytes_("char")
  scene = iset.read_scene(path)
  assert scene.radiance.shape == (7, 4, 33)
  np.testing.assert_allclose(scene.radiance, energy, rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant, ill, rtol=1e-14)
  assert scene.name == "Raw face" and scene.metadata["illuminant_units_stored"] == "energy"


def test_file_stopping_at_700nm_holds_last_value(tmp_path):
  energy, ill = _energy(W31), _ill(W31)
  scene = iset.read_scene(iset.write_scene(tmp_path / "s700.mat", energy, W31, ill))
  assert scene.radiance.shape == (6, 5, 33) and scene.source_wavelengths.size == 31
  np.testing.assert_array_equal(scene.extrapolated, W33 > 700)
  np.testing.assert_allclose(scene.radiance[..., :31], energy, rtol=1e-12)
  for k in (31, 32):  # 710 and 720 nm hold the 700 nm value
    np.testing.assert_allclose(scene.radiance[..., k], energy[..., 30], rtol=1e-12)
    np.testing.assert_allclose(scene.illuminant[k], ill[30], rtol=1e-12)
  assert np.all(np.isfinite(scene.radiance))


def test_off_grid_wavelengths_interpolate_linearly(tmp_path):
  wave = np.array([405.0, 412.5, 431.0, 470.0, 523.3, 580.0, 640.0, 690.0, 702.5])
  energy, ill = _energy(wave), _ill(wave)
  scene = iset.read_scene(iset.write_scene(tmp_path / "hyspex.mat", energy, wave, ill))
  inside = (W33 >= 405) & (W33 <= 702.5)
  np.testing.assert_array_equal(scene.extrapolated, ~inside)
  np.testing.assert_allclose(scene.radiance[..., inside], _energy(W33[inside]), rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant[inside], _ill(W33[inside]), rtol=1e-12)
  np.testing.assert_allclose(scene.radiance[..., 0], energy[..., 0], rtol=1e-12)
  np.testing.assert_allclose(scene.radiance[..., -1], energy[..., -1], rtol=1e-12)


def _variant(name):
  """(variables, expected energy cube, expected illuminant energy) for one ISET variant."""
  e33, i33 = _energy(W33), _ill(W33)
  p33 = _photons(e33, W33)
  il = _modern_il(W33, i33)
  if name == "data_numeric_wavelength":
    return {"data": p33, "wavelength": W33, "illuminant": il}, e33, i33
  if name == "data_struct_photons":
    return {"data": {"photons": p33}, "wave": W33, "illuminant": il}, e33, i33
  if name == "basis_plain_matrix_no_mean":
    x = p33.reshape(-1, 33)
    basis = np.linalg.svd(x, full_matrices=False)[2][:2].T  # 'canonical' SVD, rank 2
    coef = (x @ basis).reshape(6, 5, 2)
    return {"mcCOEF": coef, "basis": basis, "wave": W33, "illuminant": il}, e33, i33
  if name == "old_illuminant_energy":
    return {"photons": p33, "wave": W33,
            "illuminant": {"data": i33, "wavelength": W33}}, e33, i33
  if name == "plain_numeric_illuminant":
    return {"photons": p33, "wave": W33, "illuminant": i33}, e33, i33
  if name == "legacy_compressed_scene":
    codes = np.arange(6 * 5 * 33, dtype=np.uint16).reshape(6, 5, 33) * 7
    lo, hi = 1e15, 3e17
    photons = (hi - lo) / 65535.0 * codes + lo  # ieUncompressData, written out
    scene = {"spectrum": {"wave": W33}, "illuminant": il, "name": "old",
             "data": {"photons": codes, "dmin": lo, "dmax": hi, "bitDepth": 16.0}}
    return {"scene": scene}, photons * H_ISET * C_ISET / (W33 * 1e-9), i33
  raise ValueError(name)


@pytest.mark.parametrize("name", [
    "data_numeric_wavelength", "data_struct_photons", "basis_plain_matrix_no_mean",
    "old_illuminant_energy", "plain_numeric_illuminant", "legacy_compressed_scene"])
def test_layout_variants(tmp_path, name):
  variables, energy, ill = _variant(name)
  scene = iset.read_scene(_save(tmp_path / f"{name}.mat", variables))
  np.testing.assert_allclose(scene.radiance, energy, rtol=1e-10)
  np.testing.assert_allclose(scene.illuminant, ill, rtol=1e-12)


def test_spatial_spectral_illuminant(tmp_path):
  energy = _energy(W33)
  gain = np.linspace(0.5, 1.0, 30).reshape(6, 5, 1)
  il_map = gain * _ill(W33)
  path = iset.write_scene(tmp_path / "ss.mat", energy, W33, il_map, format="mccoef",
                          n_basis=2, version="v7.3")
  scene = iset.read_scene(path)
  np.testing.assert_allclose(scene.illuminant_map, il_map, rtol=1e-12)
  np.testing.assert_allclose(scene.illuminant, gain.mean() * _ill(W33), rtol=1e-12)


def _malformed(name):
  p33 = _photons(_energy(W33), W33)
  il = _modern_il(W33, _ill(W33))
  coef = np.ones((6, 5, 2))
  cases = {
      "missing_wave": ({"photons": p33, "illuminant": il}, "'wave'"),
      "basis_wave_mismatch": ({"mcCOEF": coef, "basis": {"basis": np.ones((30, 2)),
                                                         "wave": W33}, "illuminant": il},
                              "'basis.basis'"),
      "coef_basis_mismatch": ({"mcCOEF": np.ones((6, 5, 3)), "basis": {
          "basis": np.ones((33, 2)), "wave": W33}, "illuminant": il}, "'mcCOEF'"),
      "img_mean_size": ({"mcCOEF": coef, "basis": {"basis": np.ones((33, 2)), "wave": W33},
                         "imgMean": np.ones(31), "illuminant": il}, "'imgMean'"),
      "non_finite": ({"photons": np.where(p33 > p33.mean(), np.nan, p33), "wave": W33,
                      "illuminant": il}, "'photons'.*not finite"),
      "no_radiance": ({"wave": W33, "illuminant": il}, "'photons': no radiance field"),
      "no_illuminant": ({"photons": p33, "wave": W33}, "'illuminant'"),
      "illuminant_length": ({"photons": p33, "wave": W33, "illuminant": _modern_il(
          W31, _ill(W31)) | {"spectrum": {"wave": W33}}}, "'illuminant.data.photons'"),
      "wave_not_increasing": ({"photons": p33, "wave": W33[::-1], "illuminant": il},
                              "'wave'.*increasing"),
      "photons_vs_wave": ({"photons": p33, "wave": W31, "illuminant": il}, "'photons'"),
  }
  return cases[name]


@pytest.mark.parametrize("name", [
    "missing_wave", "basis_wave_mismatch", "coef_basis_mismatch", "img_mean_size",
    "non_finite", "no_radiance", "no_illuminant", "illuminant_length",
    "wave_not_increasing", "photons_vs_wave"])
def test_malformed_files_name_file_and_field(tmp_path, name):
  variables, pattern = _malformed(name)
  path = _save(tmp_path / f"bad_{name}.mat", variables)
  with pytest.raises(iset.IsetFormatError, match=f"bad_{name}.mat: field {pattern}") as info:
    iset.read_scene(path)
  assert isinstance(info.value, ValueError) and info.value.path == str(path)


def test_not_a_mat_file(tmp_path):
  path = tmp_path / "junk.mat"
  path.write_bytes(b"this is not a MATLAB file" * 20)
  with pytest.raises(iset.IsetFormatError, match="junk.mat: field '<file>'"):
    iset.read_scene(path)
  with pytest.raises(FileNotFoundError, match="missing.mat"):
    iset.read_scene(tmp_path / "missing.mat")
  path.write_bytes(b"")  # scipy's MatReadError (an Exception, not a ValueError)
  with pytest.raises(iset.IsetFormatError, match="junk.mat: field '<file>': not a readable"):
    iset.read_scene(path)


def test_write_scene_rejects_bad_input(tmp_path):
  energy, ill = _energy(W31), _ill(W31)
  with pytest.raises(ValueError, match="radiance shape"):
    iset.write_scene(tmp_path / "a.mat", energy, W33, _ill(W33))
  with pytest.raises(ValueError, match="illuminant shape"):
    iset.write_scene(tmp_path / "a.mat", energy, W31, ill[:30])
  with pytest.raises(ValueError, match="n_basis"):
    iset.write_scene(tmp_path / "a.mat", energy, W31, ill, format="mccoef", n_basis=32)
  with pytest.raises(ValueError, match="format"):
    iset.write_scene(tmp_path / "a.mat", energy, W31, ill, format="npz")
  with pytest.raises(ValueError, match="version"):
    iset.write_scene(tmp_path / "a.mat", energy, W31, ill, version="v4")
  with pytest.raises(ValueError, match="finite"):
    iset.write_scene(tmp_path / "a.mat", energy * np.nan, W31, ill)
