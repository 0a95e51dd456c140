"""The fixed spectral tables of the BioFaceNet renderer, as one immutable pytree.

`load_spectra` reads the public tables from the assets directory (see `bioface_jax.assets`),
checks every array's shape and values, and derives what the renderer needs once:

* unit-sum illuminant bases (CIE A, the 22 daylight rows 4000..25000 K, FL1..FL12);
* the CIE 1931 colour-matching functions;
* the four chromophore extinction spectra of the skin model;
* the statistical camera model: PCA of the 28 camera sensitivities of Jiang et al. (2013),
  with MATLAB's sign convention and square-root-eigenvalue scaling (spec section 3);
* the authors' 128x128 RAW->XYZ table and its row-sum targets;
* the CIE daylight basis S0, S1, S2 (from colour-science) for continuous colour temperature.

The PCA is done in float64 NumPy at load time (it is a fixed preprocessing of data, not part
of the differentiable model); all arrays are then cast to the working dtype: float32 by
default, float64 when ``jax_enable_x64`` is on.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import assets

WAVELENGTHS_NM = np.arange(400.0, 721.0, 10.0)
N_BANDS = 33
N_DAYLIGHT = 22
N_FLUORESCENT = 12
N_ILLUMINANTS = 2 + N_FLUORESCENT  # A, D(t), F1..F12: the 14 softmax weights.


class SpectraFormatError(ValueError):
  """A spectral table has the wrong keys, shape or values."""


class Spectra(NamedTuple):
  """All fixed spectra, sampled at 400:10:720 nm (33 bands). A pytree of arrays.

  Attributes:
    wavelengths: (33,) nm.
    illum_a: (33,) CIE A, unit sum.
    illum_d: (22, 33) CIE daylight at 4000, 5000, ..., 25000 K, each row unit sum.
    illum_f: (12, 33) CIE FL1..FL12, each row unit sum.
    cmf: (33, 3) CIE 1931 2-degree colour-matching functions, columns x, y, z.
    eumelanin: (33,) extinction, cm^-1/(mg/ml).
    pheomelanin: (33,) extinction, cm^-1/(mg/ml).
    oxy_haemoglobin: (33,) molar extinction, cm^-1/M.
    deoxy_haemoglobin: (33,) molar extinction, cm^-1/M.
    camera_mean: (99,) PCA mean of the unit-sum sensitivities, stacked R, G, B.
    camera_pcs: (99, 2) principal directions scaled by sqrt(eigenvalue), MATLAB signs.
    camera_eigenvalues: (2,) the two eigenvalues (N-1 covariance).
    tmatrix: (128, 128, 9) the authors' RAW->XYZ table over b in [-3, 3]^2.
    xyz_row_sums: (3,) the row sums the authors scaled T to (D65 white, Y = 0.3425).
    daylight_basis: (3, 33) CIE daylight S0, S1, S2.
  """
  wavelengths: jax.Array
  illum_a: jax.Array
  illum_d: jax.Array
  illum_f: jax.Array
  cmf: jax.Array
  eumelanin: jax.Array
  pheomelanin: jax.Array
  oxy_haemoglobin: jax.Array
  deoxy_haemoglobin: jax.Array
  camera_mean: jax.Array
  camera_pcs: jax.Array
  camera_eigenvalues: jax.Array
  tmatrix: jax.Array
  xyz_row_sums: jax.Array
  daylight_basis: jax.Array


def default_dtype():
  """float64 when ``jax_enable_x64`` is on, else float32."""
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _read(directory: os.PathLike | None, name: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
  """Reads one array from ``spectra/<name>.npz`` and checks its shape and finiteness."""
  if directory is None:
    path = assets.asset_path(f"spectra/{name}.npz")
  else:
    path = os.path.join(directory, f"{name}.npz")
    if not os.path.isfile(path):
      raise assets.MissingAssetError(f"spectral table {path} not found (expected {name}.npz "
                                     f"with array {key!r} of shape {shape}).")
  try:
    with np.load(path, allow_pickle=False) as data:
      if key not in data.files:
        raise SpectraFormatError(f"{path}: missing array {key!r} (has {sorted(data.files)}).")
      array = np.asarray(data[key], dtype=np.float64)
      if "wavelength_nm" in data.files and name != "Tmatrix":
        wavelengths = np.asarray(data["wavelength_nm"], dtype=np.float64).ravel()
        if wavelengths.shape != (N_BANDS,) or not np.allclose(wavelengths, WAVELENGTHS_NM):
          raise SpectraFormatError(f"{path}: 'wavelength_nm' must be 400:10:720 nm (33 bands).")
  except (OSError, ValueError) as error:
    if isinstance(error, SpectraFormatError):
      raise
    raise SpectraFormatError(f"{path}: cannot read as .npz ({error}).") from error
  if array.shape != shape:
    raise SpectraFormatError(f"{path}: array {key!r} has shape {array.shape}, expected {shape}.")
  if not np.all(np.isfinite(array)):
    raise SpectraFormatError(f"{path}: array {key!r} contains non-finite values.")
  return array


def _unit_sum(rows: np.ndarray, what: str) -> np.ndarray:
  total = rows.sum(axis=-1, keepdims=True)
  if np.any(total <= 0):
    raise SpectraFormatError(f"{what}: a spectrum sums to <= 0 and cannot be normalised.")
  return rows / total


def camera_pca(red: np.ndarray, green: np.ndarray, blue: np.ndarray, n_components: int = 2):
  """PCA of camera sensitivities exactly as the authors' MATLAB code (spec section 3).

  Args:
    red, green, blue: (33, n_cameras) sensitivities.
    n_components: how many components to keep.

  Returns:
    (mean (99,), pcs (99, k) = eigenvectors * sqrt(eigenvalues), eigenvalues (k,),
    explained ratio (k,)). Signs follow MATLAB ``pca``: the largest-magnitude entry of
    each eigenvector is positive.
  """
  stacked = np.concatenate([_unit_sum(c.T, "camera channel").T for c in (red, green, blue)], axis=0)
  samples = stacked.T  # (n_cameras, 99)
  mean = samples.mean(axis=0)
  covariance = np.cov(samples, rowvar=False, ddof=1)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  order = np.argsort(eigenvalues)[::-1][:n_components]
  eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
  largest = np.argmax(np.abs(eigenvectors), axis=0)
  signs = np.sign(eigenvectors[largest, np.arange(n_components)])
  eigenvectors = eigenvectors * signs
  explained = eigenvalues / np.trace(covariance)
  return mean, eigenvectors * np.sqrt(eigenvalues), eigenvalues, explained


def _daylight_basis() -> np.ndarray:
  """CIE daylight S0, S1, S2 at 400:10:720 nm, from colour-science (imported lazily)."""
  # Imported lazily: colour-science takes ~1 s to import and only this table needs it.
  from colour.colorimetry import (  # pylint: disable=g-import-not-at-top
      SDS_BASIS_FUNCTIONS_CIE_ILLUMINANT_D_SERIES as basis)
  rows = []
  for name in ("S0", "S1", "S2"):
    sd = basis[name]
    rows.append(np.interp(WAVELENGTHS_NM, sd.wavelengths, sd.values))
  return np.stack(rows)


def load_spectra(path: os.PathLike | str | None = None, dtype=None) -> Spectra:
  """Loads every fixed spectrum of the renderer.

  Args:
    path: a directory holding the ``.npz`` tables; default ``<assets>/spectra``.
    dtype: working dtype; default float32 (float64 when ``jax_enable_x64`` is on).

  Returns:
    A `Spectra` pytree.

  Raises:
    bioface_jax.assets.MissingAssetError: a table file is missing.
    SpectraFormatError: a table has a wrong key, shape or non-finite values.
  """
  dtype = dtype or default_dtype()
  read = lambda name, key, shape: _read(path, name, key, shape)  # noqa: E731
  red = read("rgbCMF", "red", (N_BANDS, 28))
  green = read("rgbCMF", "green", (N_BANDS, 28))
  blue = read("rgbCMF", "blue", (N_BANDS, 28))
  mean, pcs, eigenvalues, _ = camera_pca(red, green, blue)
  arrays = dict(
      wavelengths=WAVELENGTHS_NM,
      illum_a=_unit_sum(read("illumA", "illumA", (N_BANDS,)), "illumA"),
      illum_d=_unit_sum(read("illumDmeasured", "illumD", (N_DAYLIGHT, N_BANDS)), "illumD"),
      illum_f=_unit_sum(read("illF", "illF", (N_BANDS, N_FLUORESCENT)).T, "illF"),
      cmf=read("XYZspace", "xyz_cmf", (N_BANDS, 3)),
      eumelanin=read("eumelanin_ext", "eumelanin_ext", (N_BANDS,)),
      pheomelanin=read("pheomelanin_ext", "pheomelanin_ext", (N_BANDS,)),
      oxy_haemoglobin=read("oxy_hemo_ext_coeff", "oxy_hemo_ext_coeff", (N_BANDS,)),
      deoxy_haemoglobin=read("deoxy_hemo_ext_coeff", "deoxy_hemo_ext_coeff", (N_BANDS,)),
      camera_mean=mean,
      camera_pcs=pcs,
      camera_eigenvalues=eigenvalues,
      tmatrix=read("Tmatrix", "Tmatrix", (128, 128, 9)),
      xyz_row_sums=read("Tmatrix", "row_sum_targets", (3,)),
      daylight_basis=_daylight_basis(),
  )
  return Spectra(**{k: jnp.asarray(v, dtype=dtype) for k, v in arrays.items()})
