"""Reads and writes ISET (ISETCam / ISET toolbox) multispectral scene `.mat` files.

BioFaceNet's Table 1 benchmark uses the Stanford ISET multispectral faces. This module turns such
a file into a float64 spectral-radiance cube in *energy* units on our 33-band grid (400:10:720 nm),
and writes files in the same layouts (the synthetic benchmark scenes are written with it).

What ISET writes (checked in ISET/isetcam and ISET/isethyperspectral sources):

* `utility/file/ieSaveMultiSpectralImage.m`: linear-model files hold `mcCOEF` (rows, cols, nBases),
  `basis` (struct: `basis` (nWave, nBases), `wave`), optionally `imgMean`, plus `comment`,
  `illuminant`, `fov`, `dist`, `name`. Its docstring: "The photons are derived
  basis*coefficients".
* `utility/file/vcReadImage.m` (what `sceneFromFile` calls): photons = mcCOEF * basis.basis'
  (+ imgMean when stored; "Saved using principal component method"), then `max(photons, 0)`.
  Without `mcCOEF`, the radiance is the variable `photons`, else `data`; wavelengths are `wave`,
  else `wavelength` ("Ask Joyce why"). ISET itself resamples with `interp1(..., 'linear', 0)`,
  i.e. zero outside the measured range; we hold the end values instead (below).
* `scene/sceneToFile.m`: the uncompressed layout saves `photons`, `wave`, `comment`,
  `illuminant`, `fov`, `dist`, `name`, `spectrum`, `type`, `magnification`, `data`; the
  compressed one runs `hcBasis(..., 'meansvd')` (mean removed, SVD) and calls
  `ieSaveMultiSpectralImage`. The Hyspex faces (`hyspex2scene/faces1M/s_hyspexFaces1M.m`) were
  saved this way with 6 bases and a *spatial-spectral* illuminant (rows, cols, nWave).
* `scene/sceneFromFile.m`: a file holding a variable `scene` is loaded as that struct:
  `scene.data.photons` (rows, cols, nWave), `scene.spectrum.wave`, `scene.illuminant`
  (`scene/sceneSet.m`). Legacy scenes store `data.photons` as uint16/uint32 with `data.dmin`,
  `data.dmax`, `data.bitDepth`, decoded by `ieUncompressData`: (dmax-dmin)/(2^bits-1)*c + dmin
  (arokem/vset `utility/ieUncompressData.m`; ISET/isetL3 `s_convertSceneOI.m`).
* Illuminants (`scene/illumination/illuminantCreate.m`, `illuminantSet.m`,
  `illuminantModernize.m`): modern = struct with `type` 'illuminant', `spectrum.wave` and
  `data.photons` [photons/(s sr m^2 nm)]; old = `data` numeric "(energy units)" with
  `wavelength`; some old ones had `data.photons` (possibly compressed with `data.min/max`).

Units, decided from the field names: every stored scene radiance (`photons`, `data`, `mcCOEF`
reconstruction, `scene.data.photons`) is photons; an illuminant is photons under a key named
`photons` and energy under a key named `energy` or as a plain numeric `data` / plain numeric
`illuminant` (old format). (ISET's own `illuminantModernize` converts an untyped struct's
`data.photons` as energy; we follow the field name.) Photons -> energy: E = N * h * c / lambda with
ISET's constants (`vcConstants`: h = 6.626176e-34 J s, c = 2.99792458e8 m/s), so a file ISET wrote
from energy converts back to that energy exactly.

Resampling: linear interpolation of the energy spectra onto the target wavelengths; outside the
file's range the nearest measured value is held constant (flagged in `IsetScene.extrapolated`),
never NaN or zero. MATLAB v5/v6/v7 and v7.3 (HDF5) files are read and written by
`data.matfile`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
from typing import Any, Mapping

import numpy as np

from data import matfile

TARGET_WAVELENGTHS = np.arange(400, 721, 10)
PLANCK_H = 6.626176e-34  # J s, ISET vcConstants('h').
SPEED_OF_LIGHT = 2.99792458e8  # m/s, ISET vcConstants('c').


class IsetFormatError(ValueError):
  """A `.mat` file is not a readable ISET scene; names the file and the field."""

  def __init__(self, path, field: str, message: str):
    self.path, self.field = str(path), field
    super().__init__(f"{path}: field '{field}': {message}")


@dataclasses.dataclass(frozen=True, eq=False)
class IsetScene:
  """A multispectral scene on the target wavelength grid, float64, energy units.

  Attributes:
    radiance: (H, W, n) spectral radiance, W sr^-1 m^-2 nm^-1 (up to the file's scale).
    illuminant: (n,) illuminant energy (the spatial mean when the file's is spatial-spectral).
    wavelengths: (n,) target wavelengths in nm.
    source_wavelengths: the file's radiance wavelengths in nm.
    extrapolated: (n,) bool, target bands outside the radiance or illuminant range (held values).
    name: the file's scene name, else the file stem.
    comment: the file's comment ('' if none).
    illuminant_map: (H, W, n) spatial-spectral illuminant energy, or None.
    metadata: read-only mapping: path, mat_version, layout, units, n_basis, fov, dist, ...
  """
  radiance: np.ndarray
  illuminant: np.ndarray
  wavelengths: np.ndarray
  source_wavelengths: np.ndarray
  extrapolated: np.ndarray
  name: str
  comment: str
  illuminant_map: np.ndarray | None = None
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def photons_to_energy(photons, wavelengths_nm):
  """Quanta [photons/(s sr m^2 nm)] -> energy [W/(sr m^2 nm)]; wavelengths on the last axis."""
  lam = np.asarray(wavelengths_nm, np.float64) * 1e-9
  return np.asarray(photons, np.float64) * (PLANCK_H * SPEED_OF_LIGHT / lam)


def energy_to_photons(energy, wavelengths_nm):
  """Energy [W/(sr m^2 nm)] -> quanta [photons/(s sr m^2 nm)]; the inverse of the above."""
  lam = np.asarray(wavelengths_nm, np.float64) * 1e-9
  return np.asarray(energy, np.float64) * (lam / (PLANCK_H * SPEED_OF_LIGHT))


# ----------------------------------------------------------------------------- MAT loading


def _load_mat(path: pathlib.Path) -> tuple[dict, str]:
  """`matfile.load_mat`, with an unreadable file reported as an `IsetFormatError`."""
  try:
    return matfile.load_mat(path)
  except matfile.READ_ERRORS as e:
    raise IsetFormatError(path, "<file>", f"not a readable MATLAB .mat file ({e})") from e


# ----------------------------------------------------------------------------- field access


def _get(struct: Mapping, dotted: str):
  """`struct['a']['b']` for 'a.b', or None when any level is missing or not a struct."""
  value = struct
  for key in dotted.split("."):
    if not isinstance(value, Mapping) or key not in value:
      return None
    value = value[key]
  return value


def _array(value, path, field: str) -> np.ndarray:
  """A finite numeric float64 array, or IsetFormatError naming the field."""
  if value is None:
    raise IsetFormatError(path, field, "missing")
  try:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
      raise TypeError(arr.dtype)
    arr = arr.astype(np.float64)
  except (TypeError, ValueError) as e:
    raise IsetFormatError(path, field, f"not a numeric array ({type(value).__name__})") from e
  bad = ~np.isfinite(arr)
  if bad.any():
    raise IsetFormatError(path, field, f"{int(bad.sum())} of {arr.size} values are not finite")
  return arr


def _wave(path, struct: Mapping, candidates: tuple[str, ...],
          prefix: str = "") -> tuple[np.ndarray, str]:
  """The first present wavelength field among `candidates`, validated (nm, increasing)."""
  for key in candidates:
    field = prefix + key
    if _get(struct, key) is not None:
      wave = _array(_get(struct, key), path, field).ravel()
      if wave.size < 2 or np.any(np.diff(wave) <= 0):
        raise IsetFormatError(path, field, f"wavelengths must be >= 2 strictly increasing "
                              f"values, got {wave.size}: {wave[:5]}...")
      return wave, field
  raise IsetFormatError(path, prefix + candidates[0], "missing wavelengths (looked for "
                        + ", ".join(repr(prefix + c) for c in candidates) + ")")


def _cube(arr: np.ndarray, path, field: str, n_wave: int, wave_field: str) -> np.ndarray:
  if arr.ndim != 3 or arr.shape[2] != n_wave:
    raise IsetFormatError(path, field, f"shape {arr.shape} is not (rows, cols, {n_wave}) "
                          f"matching '{wave_field}' ({n_wave} wavelengths)")
  return arr


def _uncompress(value, lo, hi, bits, path, field) -> np.ndarray:
  """ISET's legacy ieUncompressData: (max - min) / (2^bits - 1) * code + min."""
  codes = _array(value, path, field)
  lo, hi = (_array(v, path, f"{field}<range>").ravel()[0] for v in (lo, hi))
  scale = hi if hi == lo else hi - lo
  return scale / (2.0 ** float(bits) - 1.0) * codes + lo


# ----------------------------------------------------------------------------- ISET layouts


def _radiance_photons(v: Mapping, path) -> dict:
  """Finds the radiance (photons, H x W x nWave) in any ISET layout."""
  if "scene" in v:
    scene = v["scene"]
    if not isinstance(scene, Mapping):
      raise IsetFormatError(path, "scene", "is not a struct")
    wave, wf = _wave(path, scene, ("spectrum.wave", "spectrum.wavelength", "wave"))
    data = _get(scene, "data")
    raw = _get(scene, "data.photons")
    if raw is not None and np.asarray(raw).dtype.kind in "ui" and "dmin" in data:
      photons = _uncompress(raw, data.get("dmin"), data.get("dmax"),
                            data.get("bitDepth", 16), path, "scene.data.photons")
    else:
      photons = _array(raw, path, "scene.data.photons")
    return dict(layout="scene", photons=_cube(photons, path, "scene.data.photons", wave.size,
                                             f"scene.{wf}"),
                wave=wave, illuminant=scene.get("illuminant"), il_field="scene.illuminant",
                name=scene.get("name"), fov=scene.get("wAngular"), dist=scene.get("distance"))
  if "mcCOEF" in v:
    basis = v.get("basis")
    if isinstance(basis, Mapping):
      wave, wf = _wave(path, v, ("basis.wave", "wave", "wavelength"))
      basis_mat, bf = _array(basis.get("basis"), path, "basis.basis"), "basis.basis"
    else:
      wave, wf = _wave(path, v, ("wave", "wavelength"))
      basis_mat, bf = _array(basis, path, "basis"), "basis"
    basis_mat = basis_mat.reshape(-1, 1) if basis_mat.ndim == 1 else basis_mat
    if basis_mat.ndim != 2 or basis_mat.shape[0] != wave.size:
      raise IsetFormatError(path, bf, f"shape {basis_mat.shape} is not (nWave, nBases) with "
                            f"nWave = {wave.size} from '{wf}'")
    coef = _array(v["mcCOEF"], path, "mcCOEF")
    coef = coef[..., None] if coef.ndim == 2 and basis_mat.shape[1] == 1 else coef
    if coef.ndim != 3 or coef.shape[2] != basis_mat.shape[1]:
      raise IsetFormatError(path, "mcCOEF", f"shape {coef.shape} does not match {bf} "
                            f"{basis_mat.shape}: need (rows, cols, {basis_mat.shape[1]})")
    photons = coef @ basis_mat.T
    if "imgMean" in v:
      mean = _array(v["imgMean"], path, "imgMean").ravel()
      if mean.size != wave.size:
        raise IsetFormatError(path, "imgMean", f"has {mean.size} values, '{wf}' has {wave.size}")
      photons = photons + mean
    n_neg = int((photons < 0).sum())
    return dict(layout="mccoef", photons=np.maximum(photons, 0.0), wave=wave,
                n_basis=basis_mat.shape[1], has_img_mean="imgMean" in v, n_clipped_negative=n_neg)
  if "photons" in v or "data" in v:
    field = "photons" if "photons" in v else "data"
    raw = v[field]
    if isinstance(raw, Mapping):
      raw, field = raw.get("photons"), f"{field}.photons"
    wave, wf = _wave(path, v, ("wave", "wavelength", "spectrum.wave"))
    photons = _cube(_array(raw, path, field), path, field, wave.size, wf)
    return dict(layout=field.split(".")[0], photons=photons, wave=wave)
  raise IsetFormatError(path, "photons", "no radiance field found: expected a variable named "
                        "'scene', 'mcCOEF', 'photons' or 'data'; file has " + repr(sorted(v)))


def _illuminant_energy(il, path, field: str, scene_wave: np.ndarray) -> dict:
  """The illuminant in energy units at its own wavelengths ((n,) or (H, W, n))."""
  if il is None:
    raise IsetFormatError(path, field, "missing: the scene illuminant is required")
  name = None
  if isinstance(il, Mapping):
    name = il.get("name")
    wave, wf = _wave(path, il, ("spectrum.wave", "wave", "wavelength"), prefix=f"{field}.")
    data = il.get("data")
    if isinstance(data, Mapping) and "photons" in data:
      vf, units = f"{field}.data.photons", "photons"
      raw = data["photons"]
      if np.asarray(raw).dtype.kind in "ui" and "min" in data:
        bits = {1: 8, 2: 16, 4: 32, 8: 64}[np.asarray(raw).dtype.itemsize]
        values = _uncompress(raw, data.get("min"), data.get("max"), bits, path, vf)
      else:
        values = _array(raw, path, vf)
    elif isinstance(data, Mapping) and "energy" in data:
      vf, units = f"{field}.data.energy", "energy"
      values = _array(data["energy"], path, vf)
    elif data is not None and not isinstance(data, Mapping):
      vf, units = f"{field}.data", "energy"
      values = _array(data, path, vf)
    elif "photons" in il or "energy" in il:
      units = "photons" if "photons" in il else "energy"
      vf = f"{field}.{units}"
      values = _array(il[units], path, vf)
    else:
      raise IsetFormatError(path, f"{field}.data", "no 'photons' or 'energy' spectrum")
  else:
    wave, wf = scene_wave, "<radiance wavelengths>"
    vf, units, values = field, "energy", _array(il, path, field)
  if values.ndim not in (1, 3) or values.shape[-1] != wave.size:
    raise IsetFormatError(path, vf, f"shape {values.shape} does not end in {wave.size} "
                          f"wavelengths from '{wf}'")
  energy = photons_to_energy(values, wave) if units == "photons" else values
  return dict(energy=energy, wave=wave, units=units, name=name)


def _interp_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """(len(dst), len(src)) linear interpolation; end values held outside [src[0], src[-1]]."""
  eye = np.eye(src.size)
  return np.stack([np.interp(dst, src, eye[i]) for i in range(src.size)], axis=1)


def _outside(target: np.ndarray, wave: np.ndarray) -> np.ndarray:
  return (target < wave[0] - 1e-9) | (target > wave[-1] + 1e-9)


def _text(value) -> str | None:
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, (list, tuple, np.ndarray)):
    return "\n".join(str(x) for x in np.ravel(np.asarray(value, dtype=object)))
  return str(value)


def _scalar(value) -> float | None:
  try:
    return float(np.asarray(value, dtype=np.float64).ravel()[0])
  except (TypeError, ValueError, IndexError):
    return None


def read_scene(path, wavelengths=TARGET_WAVELENGTHS) -> IsetScene:
  """Reads an ISET multispectral scene file (MATLAB v5 or v7.3) into energy units.

  Args:
    path: the `.mat` file.
    wavelengths: target wavelengths in nm (default 400:10:720, 33 bands).

  Returns:
    An `IsetScene`; see the module docstring for the layouts, units and extrapolation rule.

  Raises:
    FileNotFoundError: no such file.
    IsetFormatError: a malformed file, naming the file and the field.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"ISET scene file not found: {path}")
  target = np.asarray(wavelengths, np.float64).ravel()
  if target.size < 1 or not np.all(np.isfinite(target)):
    raise ValueError(f"target wavelengths must be finite, got {target}")
  variables, version = _load_mat(path)
  found = _radiance_photons(variables, path)
  wave = found["wave"]
  energy = photons_to_energy(found["photons"], wave)
  il_field = found.get("il_field", "illuminant")
  il_value = found.get("illuminant")
  if il_value is None:  # a scene struct without one may sit beside a top-level illuminant
    il_field, il_value = "illuminant", variables.get("illuminant")
  il = _illuminant_energy(il_value, path, il_field, wave)
  if il["energy"].ndim == 3 and il["energy"].shape[:2] != energy.shape[:2]:
    raise IsetFormatError(path, il_field, "spatial illuminant "
                          f"{il['energy'].shape[:2]} != radiance {energy.shape[:2]}")
  radiance = energy @ _interp_matrix(wave, target).T
  il_t = il["energy"] @ _interp_matrix(il["wave"], target).T
  illuminant_map = il_t if il_t.ndim == 3 else None
  illuminant = il_t.reshape(-1, target.size).mean(axis=0)
  name = _text(found.get("name", variables.get("name"))) or path.stem
  meta = dict(path=str(path), mat_version=version, layout=found["layout"],
              radiance_units_stored="photons", illuminant_units_stored=il["units"],
              illuminant_name=_text(il["name"]), illuminant_wavelengths=il["wave"],
              n_basis=found.get("n_basis"), has_img_mean=found.get("has_img_mean", False),
              n_clipped_negative=found.get("n_clipped_negative", 0),
              fov=_scalar(found.get("fov", variables.get("fov"))),
              dist=_scalar(found.get("dist", variables.get("dist"))))
  return IsetScene(radiance=radiance, illuminant=illuminant, wavelengths=target,
                   source_wavelengths=wave,
                   extrapolated=_outside(target, wave) | _outside(target, il["wave"]),
                   name=name, comment=_text(variables.get("comment")) or "",
                   illuminant_map=illuminant_map, metadata=types.MappingProxyType(meta))


# ----------------------------------------------------------------------------- writing


def _pca(photons: np.ndarray, n_basis: int):
  """ISET hcBasis 'meansvd': imgMean, basis (nWave, n), coefficients (H, W, n)."""
  h, w, n = photons.shape
  x = photons.reshape(-1, n)
  mean = x.mean(axis=0)
  _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
  basis = vt[:n_basis].T
  basis = basis * np.where(basis.sum(axis=0) < 0, -1.0, 1.0)  # deterministic signs
  return mean, basis, ((x - mean) @ basis).reshape(h, w, n_basis)


def write_scene(path, radiance, wavelengths, illuminant, *, format: str = "photons",
                version: str = "v5", n_basis: int = 6, name: str | None = None,
                comment: str | None = None, fov: float = 10.0,
                dist: float = 1.2) -> pathlib.Path:
  """Writes a scene in an ISET layout (radiance stored as photons, as ISET does).

  Args:
    path: output `.mat` path.
    radiance: (H, W, n) spectral radiance in energy units.
    wavelengths: (n,) strictly increasing, nm.
    illuminant: (n,) or (H, W, n) illuminant in energy units.
    format: "photons" (sceneToFile uncompressed: `photons`, `wave`, ...), "mccoef"
      (ieSaveMultiSpectralImage: `mcCOEF`, `basis`, `imgMean` from a mean-removed SVD) or
      "scene" (a `scene` struct with `data.photons`, `spectrum.wave`, `illuminant`).
    version: "v5" (scipy.io.savemat) or "v7.3" (HDF5 in MATLAB's layout: transposed
      datasets, MATLAB_class / MATLAB_fields attributes, 512-byte MAT header). MATLAB-specific
      details beyond these (e.g. chunking, `#refs#` for cells) are not reproduced.
    n_basis: number of basis functions for "mccoef" (ISET's faces used 6); lossless when the
      mean-removed cube has rank <= n_basis.
    name: scene name (default: file stem). comment: free text. fov, dist: as ISET stores them.

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  wave = np.asarray(wavelengths, np.float64).ravel()
  rad = np.asarray(radiance, np.float64)
  ill = np.asarray(illuminant, np.float64)
  if wave.size < 2 or np.any(np.diff(wave) <= 0):
    raise ValueError(f"wavelengths must be >= 2 strictly increasing values, got {wave}")
  if rad.ndim != 3 or rad.shape[2] != wave.size:
    raise ValueError(f"radiance shape {rad.shape} is not (H, W, {wave.size})")
  if ill.shape not in ((wave.size,), rad.shape):
    raise ValueError(f"illuminant shape {ill.shape} is not ({wave.size},) or {rad.shape}")
  if not (np.all(np.isfinite(rad)) and np.all(np.isfinite(ill))):
    raise ValueError("radiance and illuminant must be finite")
  name = path.stem if name is None else name
  comment = f"Scene: {name}" if comment is None else comment
  photons = energy_to_photons(rad, wave)
  il = {"name": name, "type": "illuminant", "spectrum": {"wave": wave},
        "data": {"photons": energy_to_photons(ill, wave)}}
  if format == "photons":
    variables = {"photons": photons, "wave": wave, "comment": comment, "illuminant": il,
                 "fov": fov, "dist": dist, "name": name, "spectrum": {"wave": wave},
                 "type": "scene", "magnification": 1.0}
  elif format == "mccoef":
    if not 1 <= n_basis <= min(wave.size, rad.shape[0] * rad.shape[1]):
      raise ValueError(f"n_basis={n_basis} must be in [1, min(nWave, pixels)]")
    mean, basis, coef = _pca(photons, int(n_basis))
    variables = {"mcCOEF": coef, "basis": {"basis": basis, "wave": wave}, "imgMean": mean,
                 "comment": comment, "illuminant": il, "fov": fov, "dist": dist, "name": name}
  elif format == "scene":
    variables = {"scene": {"type": "scene", "name": name, "spectrum": {"wave": wave},
                           "data": {"photons": photons, "bitDepth": 64.0}, "illuminant": il,
                           "distance": dist, "wAngular": fov, "magnification": 1.0}}
  else:
    raise ValueError(f"format must be 'photons', 'mccoef' or 'scene', got {format!r}")
  matfile.save_mat(path, variables, version)
  return path
