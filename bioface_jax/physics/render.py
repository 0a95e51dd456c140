"""Image formation: biophysical maps + light + camera -> raw, white-balanced and sRGB images.

Per pixel x and camera channel c (spec sections 4-5):

    a_c(x)   = sum_lambda R(lambda; fmel(x), fblood(x)) e(lambda) S_c(lambda)   diffuse albedo
    raw_c(x) = i_d(x) a_c(x) + i_s(x) lc_c,      lc_c = sum_lambda S_c e        light colour
    wb_c(x)  = raw_c(x) / lc_c                                                  von Kries
    xyz(x)   = T(b) wb(x);   linear_srgb(x) = max(0, M_sRGB xyz(x))

Two equivalent ways compute the albedo:

* ``path="spectral"`` samples the 33-band reflectance per pixel, then integrates.
* ``path="folded"`` first folds the table with the light and camera into a per-image RGB table
  ``LUT x diag(e) x S^T`` (size x size x 3), then samples it. The integral is linear in
  reflectance and the lookup is bilinear, so both agree to rounding (tested).

``eval.bench_render`` measures both: on 2 CPU cores at batch 64 of 64x64 the spectral path is
slightly faster forward-only (2270 vs 1894 images/s) but the folded path is 1.8x faster
forward and backward (532 vs 296 images/s), because the gradient of a per-pixel 33-band gather
is expensive while the folded table's gradient is one dense contraction; at 256x256 the folded
path is faster in both (553 vs 144 and 69 vs 21 images/s). Training needs the
backward pass, so ``path="folded"`` is the default.

Bad input: shape mismatches raise `ValueError` at trace time. When the inputs are concrete
(not traced inside a ``jit``), `render` also checks values and raises on NaN/inf, on pigment
coordinates outside [-1, 1], negative shading, weights off the simplex or t outside [1, 22].
Inside a trace, the documented clamping applies instead: pigment coordinates and b (table
mode) clamp to the table edge, t clamps to [1, 22], and the light colour is floored at 1e-9
before white balance (the authors divide without a guard).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax.physics import camera, display, illumination, skin
from bioface_jax.physics.spectra import N_ILLUMINANTS, Spectra

LIGHT_COLOUR_FLOOR = 1e-9


def fold_lut(lut: jax.Array, e: jax.Array, sensitivity: jax.Array) -> jax.Array:
  """Per-image RGB table: ``rgb_lut[..., r, c, k] = sum_l lut[r, c, l] e[..., l] S[..., k, l]``.

  Args:
    lut: (size, size, 33) reflectance table.
    e: (..., 33) illuminant.
    sensitivity: (..., 3, 33) camera.

  Returns:
    (..., size, size, 3) raw diffuse albedo at every table node.
  """
  return jnp.einsum("rml,...kl->...rmk", lut, sensitivity * e[..., None, :])


def _albedo_spectral(lut, fmel, fblood, e, sensitivity):
  reflectance = skin.skin_reflectance(lut, fmel, fblood)             # (..., H, W, 33)
  weighted = sensitivity * e[..., None, :]                            # (..., 3, 33)
  return jnp.einsum("...hwl,...kl->...hwk", reflectance, weighted)


def _albedo_folded(lut, fmel, fblood, e, sensitivity):
  table = fold_lut(lut, e, sensitivity)                               # (..., s, s, 3)
  batch = fmel.shape[:-2]
  flat = lambda x, tail: x.reshape((-1,) + x.shape[len(batch):]) if batch else x[None]  # noqa: E731
  sampled = jax.vmap(skin.bilinear_sample)(flat(table, 3), flat(fblood, 2), flat(fmel, 2))
  return sampled.reshape(fmel.shape + (3,))


@functools.partial(jax.jit, static_argnames=("path", "daylight", "xyz_mode"))
def _render(spectra, lut, fmel, fblood, shading, specular, weights, t, b, *, path, daylight,
            xyz_mode):
  e = illumination.illuminant(spectra, weights, t, daylight=daylight)          # (..., 33)
  sensitivity = camera.camera_sensitivity(spectra, b)                           # (..., 3, 33)
  lc = camera.light_colour(e, sensitivity)                                       # (..., 3)
  albedo_fn = _albedo_folded if path == "folded" else _albedo_spectral
  albedo = albedo_fn(lut, fmel, fblood, e, sensitivity)                          # (..., H, W, 3)
  lc_map = lc[..., None, None, :]
  specular_rgb = specular[..., None] * lc_map
  raw = shading[..., None] * albedo + specular_rgb
  lc_safe = jnp.maximum(lc_map, LIGHT_COLOUR_FLOOR)
  t_matrix = (camera.raw_to_xyz_exact(spectra, sensitivity) if xyz_mode == "exact"
              else camera.raw_to_xyz_table(spectra, b))                         # (..., 3, 3)
  to_xyz = lambda image: jnp.einsum("...ij,...hwj->...hwi", t_matrix, image)  # noqa: E731
  white_balanced = raw / lc_safe
  xyz = to_xyz(white_balanced)
  return dict(
      raw=raw,
      diffuse_albedo=albedo,
      specular=specular_rgb,
      white_balanced=white_balanced,
      xyz=xyz,
      linear_srgb=display.xyz_to_linear_srgb(xyz),
      albedo_linear_srgb=display.xyz_to_linear_srgb(to_xyz(albedo / lc_safe)),
      illuminant=e,
      sensitivity=sensitivity,
      light_colour=lc,
      raw_to_xyz=t_matrix,
  )


def _check_shapes(fmel, fblood, shading, specular, weights, t, b):
  maps = dict(fmel=fmel, fblood=fblood, shading=shading, specular=specular)
  if fmel.ndim < 2:
    raise ValueError(f"render: maps must be (..., H, W); fmel has shape {fmel.shape}.")
  for name, value in maps.items():
    if value.shape != fmel.shape:
      raise ValueError(f"render: {name} has shape {value.shape}, expected {fmel.shape} "
                       f"like fmel (all maps are (..., H, W)).")
  batch = fmel.shape[:-2]
  for name, value, tail in (("weights", weights, (N_ILLUMINANTS,)), ("t", t, ()),
                            ("b", b, (2,))):
    lead = value.shape[:value.ndim - len(tail)]
    ok = value.shape[value.ndim - len(tail):] == tail
    try:
      ok = ok and np.broadcast_shapes(lead, batch) == batch
    except ValueError:
      ok = False
    if not ok:
      raise ValueError(f"render: {name} has shape {value.shape}, expected batch {batch} + "
                       f"{tail} for maps of shape {fmel.shape}.")


def _check_values(**named):
  """Eager value checks (only on concrete arrays)."""
  for name, value in named.items():
    if not np.all(np.isfinite(value)):
      raise ValueError(f"render: {name} contains NaN or inf.")
  ranges = dict(fmel=(-1.0, 1.0), fblood=(-1.0, 1.0), shading=(0.0, np.inf),
                specular=(0.0, np.inf), weights=(0.0, 1.0), t=(illumination.T_MIN,
                                                               illumination.T_MAX))
  tol = 1e-5
  for name, (low, high) in ranges.items():
    value = named[name]
    if value.size and (value.min() < low - tol or value.max() > high + tol):
      raise ValueError(f"render: {name} must lie in [{low}, {high}], got values in "
                       f"[{value.min():.4g}, {value.max():.4g}].")
  sums = named["weights"].sum(axis=-1)
  if sums.size and np.max(np.abs(sums - 1.0)) > 1e-3:
    raise ValueError("render: illuminant weights must sum to 1 (a softmax over [A, D, F1..F12]);"
                     f" sums range over [{sums.min():.4g}, {sums.max():.4g}].")


def _concrete(arrays):
  """NumPy copies of the arrays, or None when any is traced (inside jit/grad/vmap)."""
  try:
    return {k: np.asarray(v) for k, v in arrays.items()}
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def render(spectra: Spectra, lut: jax.Array, fmel: jax.Array, fblood: jax.Array,
           shading: jax.Array, specular: jax.Array, weights: jax.Array, t: jax.Array,
           b: jax.Array, *, path: str = "folded", daylight: str = "table",
           xyz_mode: str = "exact") -> dict[str, jax.Array]:
  """Renders face images from biophysical maps, illuminant and camera parameters.

  Args:
    spectra: the fixed spectra (`load_spectra`).
    lut: (size, size, 33) skin reflectance table (`skin_lut`).
    fmel: (..., H, W) melanin coordinate in [-1, 1].
    fblood: (..., H, W) haemoglobin coordinate in [-1, 1].
    shading: (..., H, W) diffuse shading i_d >= 0.
    specular: (..., H, W) specular shading i_s >= 0.
    weights: (..., 14) illuminant weights [A, D, F1..F12] on the simplex.
    t: (...) daylight index in [1, 22].
    b: (..., 2) camera parameters.
    path: "folded" (default, faster with gradients) or "spectral"; equal to rounding.
    daylight: "table" (authors) or "cie" (continuous CIE formula), see `illuminant`.
    xyz_mode: "exact" (closed form) or "table" (authors' 128x128 lookup), see `raw_to_xyz`.

  Returns:
    dict of arrays: ``raw``, ``diffuse_albedo`` (raw camera space, unshaded), ``specular``
    (i_s * light colour), ``white_balanced``, ``xyz``, ``linear_srgb`` and
    ``albedo_linear_srgb`` (the albedo through the same colour pipeline), each (..., H, W, 3);
    ``illuminant`` (..., 33), ``sensitivity`` (..., 3, 33), ``light_colour`` (..., 3),
    ``raw_to_xyz`` (..., 3, 3).
  """
  arrays = dict(fmel=fmel, fblood=fblood, shading=shading, specular=specular,
                weights=weights, t=t, b=b)
  dtype = spectra.wavelengths.dtype
  arrays = {k: jnp.asarray(v, dtype=dtype) for k, v in arrays.items()}
  _check_shapes(**arrays)
  concrete = _concrete(arrays)
  if concrete is not None:
    _check_values(**concrete)
  if path not in ("spectral", "folded"):
    raise ValueError(f"render: path must be 'spectral' or 'folded', got {path!r}.")
  batch = arrays["fmel"].shape[:-2]
  arrays["weights"] = jnp.broadcast_to(arrays["weights"], batch + (N_ILLUMINANTS,))
  arrays["t"] = jnp.broadcast_to(arrays["t"], batch)
  arrays["b"] = jnp.broadcast_to(arrays["b"], batch + (2,))
  return _render(spectra, lut, **arrays, path=path, daylight=daylight, xyz_mode=xyz_mode)
