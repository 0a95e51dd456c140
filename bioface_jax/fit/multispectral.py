"""Per-pixel biophysical decomposition of multispectral images (Alotaibi & Smith, ICIP 2019).

Model per pixel: spectral radiance l(lambda) = e(lambda) (i_d R(lambda; f_mel, f_blood) + i_s)
with the skin reflectance R of `physics` (by default sampled from the skin lookup table with
the renderer's corner-aligned bilinear sampler, so the fit is exactly invertible by the
renderer), f_mel, f_blood in [-1, 1] (network coordinates), diffuse and specular shading
i_d, i_s >= 0 and the scene illuminant e. The fit minimises sum_lambda (l - model)^2 per pixel
(plus an optional spatial smoothness term on the pigments), for all pixels at once:

1. a coarse search over a grid x grid set of table nodes, each with its closed-form shading
   (`projection`), picks every pixel's start;
2. a solver refines it (`solvers`): ``"gauss_newton"`` (variable projection +
   Levenberg-Marquardt on the two pigments, a few tens of iterations; with the table it is
   first run loosely on the continuous skin model, whose lack of kinks keeps starts out of
   the table's spurious local minima, then on the table), ``"adam"`` or ``"lbfgs"`` (first
   order on all four parameters, constraints by reparametrisation, table only).

Scale: the objective is evaluated on the normalised spectra l / c and e / d, where d is the
RMS of e over bands and c the median over fitted pixels of the RMS of l. The data term is the
mean over bands, so it reads as a squared *relative* error and ``smoothness`` is invariant to
the units of l and e. Returned shadings are in the input units (model = e (i_d R + i_s)).

Both entry points return NumPy arrays and are jitted inside (one compilation per input shape
and option set).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics
from bioface_jax.fit import projection
from bioface_jax.physics import skin
from bioface_jax.fit import solvers

SOLVERS = ("gauss_newton", "adam", "lbfgs")
MODELS = ("lut", "continuous")
DEFAULT_ITERATIONS = {"gauss_newton": 50, "adam": 2000, "lbfgs": 100}
# float32 reaches its round-off floor within a few iterations of each stage: on the benchmark
# cubes (`eval.bench_fit`, 64x64, noise 0 and 1e-3) 5 smooth + 5 table iterations give the
# same pigment errors (RMSE ~1e-6 noiseless, worst vs the float64 optimum 7e-5 / 6e-3) as
# 10 + 15, at about half the time; 1.5 % (noiseless) to 6 % (noisy) of the pixels are then not
# flagged ``converged`` (still moving by round-off-sized steps). float64 keeps 50 (exact).
FLOAT32_GAUSS_NEWTON_ITERATIONS = 5
# Start candidates per pigment axis: 16 x 16 for gauss_newton (its smooth stage makes it as
# good as 32 x 32, at a quarter of the cost), 32 x 32 for the first-order solvers (measured:
# Adam from the 16 x 16 start misses one pixel of a noisy test cube by 1.6e-4).
DEFAULT_GRID = {"gauss_newton": 16, "adam": 32, "lbfgs": 32}
MODEL_WAVELENGTHS = np.arange(400.0, 721.0, 10.0)
DARK_RTOL = 1e-6  # pixels with RMS below this times the median RMS carry no signal
CONTINUOUS_GRID_SIZE = 256  # the coarse search of model "continuous" uses the table's nodes
SMOOTH_ITERATIONS = 10  # gauss_newton's warm start on the continuous model: at most this many
SMOOTH_XTOL = 1e-6      # iterations, to this step size (the table polish does the rest)


def _dtype(dtype):
  x64 = bool(jax.config.jax_enable_x64)
  dtype = jnp.dtype(dtype) if dtype is not None else jnp.dtype(jnp.float64 if x64 else jnp.float32)
  if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
    raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
  if dtype == jnp.float64 and not x64:
    raise ValueError("dtype float64 needs 64-bit JAX: call the fit inside "
                     "`with jax.enable_x64(True):`.")
  return dtype


def _reflectance_fn(model, table, spectra, bands):
  if model == "lut":
    reflect = functools.partial(physics.skin_reflectance, table)
  else:
    def reflect(fmel, fblood):
      return physics.skin_model(spectra, *physics.network_to_fractions(fmel, fblood))
  if bands is None:
    return reflect
  index = np.asarray(bands)
  return lambda fmel, fblood: reflect(fmel, fblood)[..., index]


@functools.partial(jax.jit, static_argnames=(
    "model", "bands", "solver", "with_specular", "iterations", "smoothness", "grid", "chunk",
    "learning_rate", "xtol", "ftol", "smooth_start"))
def _fit_map(table, spectra, radiance, illuminant, valid, *, model, bands, solver,
             with_specular, iterations, smoothness, grid, chunk, learning_rate, xtol, ftol,
             smooth_start):
  """Grid search + solver on a normalised (H, W, n) map; see `fit_cube`."""
  reflect = _reflectance_fn(model, table, spectra, bands)
  table_size = table.shape[0] if model == "lut" else CONTINUOUS_GRID_SIZE
  h, w, n = radiance.shape
  coords = projection.candidate_grid(table_size, grid, radiance.dtype)
  fmel0, fblood0 = projection.grid_search(
      reflect, radiance.reshape(-1, n),
      illuminant if illuminant.ndim == 1 else illuminant.reshape(-1, n), coords, with_specular,
      chunk)
  theta0 = jnp.stack([fmel0, fblood0], -1).reshape(h, w, 2)
  kwargs = dict(with_specular=with_specular, iterations=iterations, smoothness=smoothness)
  if solver == "gauss_newton":
    theta, done, converged = _gauss_newton(
        reflect, _fraction_reflectance_fn(spectra, bands)
        if model == "lut" and smooth_start else None,
        radiance, illuminant, valid, theta0, xtol=xtol, ftol=ftol,
        cell_size=table_size if model == "lut" else None, **kwargs)
    i_d, i_s, _ = projection.project(reflect(theta[..., 0], theta[..., 1]), radiance,
                                     illuminant, with_specular)
  else:
    i_d0, i_s0, _ = projection.project(reflect(theta0[..., 0], theta0[..., 1]), radiance,
                                       illuminant, with_specular)
    params0 = solvers.to_unconstrained(theta0, i_d0, i_s0)
    if solver == "adam":
      params = solvers.adam(reflect, radiance, illuminant, valid, params0,
                            learning_rate=learning_rate, **kwargs)
    else:
      params = solvers.lbfgs(reflect, radiance, illuminant, valid, params0, **kwargs)
    theta, i_d, i_s = solvers.from_unconstrained(params, with_specular)
    done, converged = jnp.asarray(iterations, jnp.int32), jnp.ones((h, w), bool)
  diffuse_part = illuminant * i_d[..., None] * reflect(theta[..., 0], theta[..., 1])
  specular_part = illuminant * i_s[..., None]
  model_spectra = diffuse_part + specular_part
  objective = jnp.sum(jnp.where(valid, jnp.mean((radiance - model_spectra)**2, -1), 0.0))
  if smoothness:
    objective += smoothness * solvers.smoothness_energy(theta, valid)
  return dict(theta=theta, diffuse=i_d, specular=i_s, model=model_spectra,
              diffuse_norm=jnp.linalg.norm(diffuse_part, axis=-1),
              specular_norm=jnp.linalg.norm(specular_part, axis=-1),
              iterations=done, converged=converged & valid, objective=objective)


_FRACTION_START = skin.GRID_START**3  # fraction / maximum at coordinate -1


def _to_fraction_coords(theta):
  """Network coordinates -> coordinates linear in the volume fractions, also in [-1, 1]."""
  u = skin.GRID_START + (1.0 - skin.GRID_START) * (theta + 1.0) / 2.0
  return 2.0 * (u**3 - _FRACTION_START) / (1.0 - _FRACTION_START) - 1.0


def _from_fraction_coords(phi):
  """Inverse of `_to_fraction_coords` (clipped to [-1, 1])."""
  s = _FRACTION_START + (1.0 - _FRACTION_START) * (jnp.clip(phi, -1.0, 1.0) + 1.0) / 2.0
  return jnp.clip(2.0 * (jnp.cbrt(s) - skin.GRID_START)
                  / (1.0 - skin.GRID_START) - 1.0, -1.0, 1.0)


def _fraction_reflectance_fn(spectra, bands):
  """The continuous skin model as a function of `_to_fraction_coords` coordinates."""
  def reflect(phi_mel, phi_blood):
    def fraction(phi, maximum):
      return maximum * (_FRACTION_START + (1.0 - _FRACTION_START) * (phi + 1.0) / 2.0)
    return physics.skin_model(spectra, fraction(phi_mel, skin.MELANIN_MAX),
                              fraction(phi_blood, skin.HAEMOGLOBIN_MAX))
  if bands is None:
    return reflect
  index = np.asarray(bands)
  return lambda phi_mel, phi_blood: reflect(phi_mel, phi_blood)[..., index]


def _gauss_newton(reflect, smooth, radiance, illuminant, valid, theta0, *, cell_size,
                  **kwargs):
  """Gauss-Newton on the table, warm-started on the continuous model when ``smooth`` is given.

  Continuation: the continuous skin model has none of the table's kinks, whose spurious
  local minima in the flat low-pigment corners trap about 7 % of starts from the coarse grid
  on the table alone (measured: noiseless 64x64 cubes, pigments uniform in [-0.98, 0.98],
  5 seeds). Solved on the smooth model first (loosely), then polished on the table, all
  5 x 4096 of those pixels were recovered to 1e-13.

  The smooth stage runs in coordinates linear in the volume fractions (``smooth`` takes
  `_to_fraction_coords` coordinates), not in the network's cubic coordinates: log R is
  linear in the melanin fraction, so Gauss-Newton is nearly exact there, while near -1 the
  cubic node spacing makes dR/dtheta ~ u^2 vanish and the iteration crawl. Measured on the
  float32 64x64 benchmark cube (`eval.bench_fit`): 9 instead of 28 smooth iterations, same
  result.

  Returns:
    (theta (H, W, 2), iterations of both stages (scalar), converged (H, W)).
  """
  done = jnp.zeros((), jnp.int32)
  if smooth is not None:
    first = dict(kwargs, iterations=min(kwargs["iterations"], SMOOTH_ITERATIONS),
                 xtol=max(kwargs["xtol"], SMOOTH_XTOL))
    out = solvers.gauss_newton(smooth, radiance, illuminant, valid,
                               _to_fraction_coords(theta0), **first)
    theta0, done = _from_fraction_coords(out["theta"]), out["iterations"]
  out = solvers.gauss_newton(reflect, radiance, illuminant, valid, theta0, cell_size=cell_size,
                             **kwargs)
  return out["theta"], done + out["iterations"], out["converged"]


def _model_inputs(spectra, model, lut, dtype):
  """(table or None, spectra cast to dtype) for `_fit_map`."""
  if model not in MODELS:
    raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
  spectra = jax.tree.map(lambda x: jnp.asarray(x, dtype), spectra)
  if model == "continuous":
    return None, spectra
  table = physics.skin_lut(spectra) if lut is None else lut
  table = jnp.asarray(table, dtype)
  if table.ndim != 3 or table.shape[0] != table.shape[1] or table.shape[0] < 2:
    raise ValueError(f"lut must have shape (size, size, bands), got {table.shape}.")
  return table, spectra


def _solver_options(solver, iterations, dtype, smoothness=0.0):
  if solver not in SOLVERS:
    raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
  if iterations is None:
    # The block-Jacobi coupling of the smoothness term needs more (cheap) iterations.
    iterations = DEFAULT_ITERATIONS[solver]
    if solver == "gauss_newton" and dtype == jnp.float32:
      iterations = FLOAT32_GAUSS_NEWTON_ITERATIONS
    iterations *= 4 if smoothness and solver == "gauss_newton" else 1
  iterations = int(iterations)
  if iterations < 0:
    raise ValueError(f"iterations must be >= 0, got {iterations}.")
  xtol = 1e-13 if dtype == jnp.float64 else 1e-6
  return iterations, xtol, 10 * float(jnp.finfo(dtype).eps)


def _median_rms(spectra: np.ndarray) -> float:
  rms = np.sqrt(np.mean(spectra**2, -1))
  rms = rms[rms > 0]
  return float(np.median(rms)) if rms.size else 1.0


def fit_cube(spectra: physics.Spectra, cube, illuminant, mask=None, *,
             solver: str = "gauss_newton", iterations: int | None = None, lut=None,
             smoothness: float = 0.0, dtype=None, model: str = "lut",
             grid: int | None = None,
             residual_threshold: float = 0.05, min_diffuse_fraction: float = 0.01,
             pin_tol: float = 1e-6, invalid: str = "raise", learning_rate: float = 0.05,
             smooth_start: bool = True, chunk: int = 2048) -> dict:
  """Fits melanin, haemoglobin, diffuse and specular shading to a spectral radiance cube.

  Args:
    spectra: the fixed spectra (`physics.load_spectra`).
    cube: (H, W, 33) spectral radiance at 400:10:720 nm (any linear units).
    illuminant: (33,) scene illuminant e, or (H, W, 33) for a spatially varying one (ISET's
      spatial-spectral illuminants); its scale goes into i_d, i_s.
    mask: optional (H, W) bool; only these pixels are fitted. Default: all.
    solver: "gauss_newton" (variable projection + Levenberg-Marquardt; default), "adam" or
      "lbfgs".
    iterations: maximum (gauss_newton, stops early when converged) or exact (adam, lbfgs)
      iteration count; default 50 (200 with smoothness; float32: 5 / 20) / 2000 / 100.
    lut: optional precomputed `physics.skin_lut(spectra)` (model "lut").
    smoothness: weight of sum over 4-neighbour pixel pairs of |theta_p - theta_q|^2, theta =
      (f_mel, f_blood), against the per-pixel mean squared relative residual. Default 0.
    dtype: float32 or float64 (needs ``jax.enable_x64``); default float64 when x64 is on.
    model: "lut" (the renderer's bilinear table sampling; default) or "continuous"
      (`physics.skin_model` at `physics.network_to_fractions` of the coordinates).
    grid: candidates per pigment axis in the coarse search (grid^2 pairs of table nodes);
      default 16 for gauss_newton, 32 for adam and lbfgs (`DEFAULT_GRID`).
    residual_threshold: relative residual |l - model| / |l| above which a pixel is out of range.
    min_diffuse_fraction: pixels whose diffuse part |i_d e R| is below this fraction of
      |i_d e R| + |i_s e| are out of range (e.g. a grey spectrum explained by i_s alone).
    pin_tol: a pigment with |f| >= 1 - pin_tol is pinned at the table's edge: out of range.
    invalid: non-finite spectra inside the mask: "raise" (ValueError naming the count and
      first pixel) or "flag" (not fitted, NaN outputs, reported in ``out_of_range``).
    learning_rate: Adam's initial step (in tanh / softplus parameter space).
    smooth_start: gauss_newton with model "lut" first runs on the continuous model (see
      `_gauss_newton`); False skips that stage (faster, more pixels stuck in wrong basins).
    chunk: pixels per block of the coarse search.

  Returns:
    dict of NumPy arrays (H, W) unless noted; float maps are NaN at pixels not fitted:
      fmel, fblood: network coordinates in [-1, 1];
      melanin, haemoglobin: volume fractions (`physics.network_to_fractions`);
      diffuse, specular: i_d, i_s in input units;
      residual: RMS over bands of l - e (i_d R + i_s), input units;
      relative_residual: |l - model| / |l| (0 where l = 0);
      diffuse_fraction: |i_d e R| / (|i_d e R| + |i_s e|) (0 where both are 0);
      pinned: bool, a pigment at the edge of [-1, 1];
      out_of_range: bool, pixels the skin model cannot explain: relative residual above the
        threshold, no diffuse part, pinned, dark (RMS below 1e-6 of the median RMS: no
        signal) or non-finite input with invalid="flag";
      model: (H, W, 33) fitted radiance; mask: bool, the pixels fitted; converged: bool
        (gauss_newton: step below tolerance; first-order solvers: all fitted pixels);
      info: dict with solver, model, dtype, iterations, objective (normalised units, see the
        module docstring), radiance_scale c, illuminant_scale d, n_pixels, converged_fraction.
  """
  dtype = _dtype(dtype)
  n_bands = int(np.shape(spectra.wavelengths)[0])
  cube = np.asarray(cube, np.float64)
  if cube.ndim != 3 or cube.shape[-1] != n_bands:
    raise ValueError(f"cube must have shape (H, W, {n_bands}), got {cube.shape}.")
  h, w, _ = cube.shape
  e = np.asarray(illuminant, np.float64)
  if e.shape not in ((n_bands,), (h, w, n_bands)):
    raise ValueError(f"illuminant must have shape ({n_bands},) or {(h, w, n_bands)}, got "
                     f"{e.shape}.")
  if not np.all(np.isfinite(e)) or np.any(e < 0) or not np.any(e > 0):
    raise ValueError("illuminant must be finite, non-negative and not all zero.")
  mask = np.ones((h, w), bool) if mask is None else np.asarray(mask)
  if mask.shape != (h, w) or mask.dtype != bool:
    raise ValueError(f"mask must be a bool array of shape {(h, w)}, got {mask.dtype} "
                     f"{mask.shape}.")
  if invalid not in ("raise", "flag"):
    raise ValueError(f"invalid must be 'raise' or 'flag', got {invalid!r}.")
  bad = mask & ~np.all(np.isfinite(cube), -1)
  if bad.any() and invalid == "raise":
    row, col = np.argwhere(bad)[0]
    raise ValueError(f"cube has non-finite values at {int(bad.sum())} masked pixel(s), first at "
                     f"(row {row}, col {col}); pass a mask excluding them or invalid='flag'.")
  fit = mask & ~bad
  iterations, xtol, ftol = _solver_options(solver, iterations, dtype, smoothness)
  table, spectra = _model_inputs(spectra, model, lut, dtype)

  clean = np.where(fit[..., None], cube, 0.0)
  radiance_scale = _median_rms(clean[fit]) if fit.any() else 1.0
  illuminant_scale = float(np.sqrt(np.mean(e**2)))
  out = _fit_map(table, spectra, jnp.asarray(clean / radiance_scale, dtype),
                 jnp.asarray(e / illuminant_scale, dtype), jnp.asarray(fit), model=model,
                 bands=None, solver=solver, with_specular=True, iterations=iterations,
                 smoothness=float(smoothness), grid=int(grid or DEFAULT_GRID[solver]),
                 chunk=int(chunk),
                 learning_rate=float(learning_rate), xtol=xtol,
                 ftol=ftol, smooth_start=smooth_start)
  out = jax.tree.map(lambda x: np.asarray(x, np.float64) if x.dtype.kind == "f"
                     else np.asarray(x), out)

  theta = out["theta"]
  melanin, haemoglobin = (np.asarray(x, np.float64) for x in
                          physics.network_to_fractions(theta[..., 0], theta[..., 1]))
  model_spectra = out["model"] * radiance_scale
  diff = clean - model_spectra
  norm_l = np.linalg.norm(clean, axis=-1)
  relative = np.linalg.norm(diff, axis=-1) / np.where(norm_l > 0, norm_l, 1.0)
  parts = out["diffuse_norm"] + out["specular_norm"]
  diffuse_fraction = out["diffuse_norm"] / np.where(parts > 0, parts, 1.0)
  pinned = np.any(np.abs(theta) >= 1.0 - pin_tol, -1) & fit
  dark = np.sqrt(np.mean(clean**2, -1)) <= DARK_RTOL * radiance_scale
  out_of_range = fit & ((relative > residual_threshold) | pinned | dark
                        | (diffuse_fraction < min_diffuse_fraction)) | bad
  shading = radiance_scale / illuminant_scale

  def masked(x):
    return np.where(fit[(...,) + (None,) * (x.ndim - 2)], x, np.nan)

  return dict(
      fmel=masked(theta[..., 0]), fblood=masked(theta[..., 1]),
      melanin=masked(melanin), haemoglobin=masked(haemoglobin),
      diffuse=masked(out["diffuse"] * shading), specular=masked(out["specular"] * shading),
      residual=masked(np.sqrt(np.mean(diff**2, -1))), relative_residual=masked(relative),
      diffuse_fraction=masked(diffuse_fraction), pinned=pinned, out_of_range=out_of_range,
      model=masked(model_spectra), mask=fit, converged=out["converged"],
      info=dict(solver=solver, model=model, dtype=str(dtype), iterations=int(out["iterations"]),
                objective=float(out["objective"]), radiance_scale=radiance_scale,
                illuminant_scale=illuminant_scale, n_pixels=int(fit.sum()),
                converged_fraction=float(out["converged"][fit].mean()) if fit.any() else 1.0))


def _bands(n: int, wavelengths) -> tuple[int, ...]:
  """Indices into the 33 model bands for measured spectra with n bands."""
  if wavelengths is None:
    if n == 33:
      return tuple(range(33))
    if n == 31:
      return tuple(range(31))
    raise ValueError(f"reflectance has {n} bands; without `wavelengths` it must have 33 "
                     "(400:10:720 nm) or 31 (400:10:700 nm).")
  lam = np.asarray(wavelengths, np.float64).ravel()
  if lam.shape != (n,):
    raise ValueError(f"wavelengths has {lam.size} values but reflectance has {n} bands.")
  index = np.abs(lam[:, None] - MODEL_WAVELENGTHS[None, :]).argmin(-1)
  off = np.abs(MODEL_WAVELENGTHS[index] - lam) > 1e-6
  if off.any() or len(set(index.tolist())) != n or n < 3:
    raise ValueError(f"wavelengths must be >= 3 distinct values of the model grid 400:10:720 nm; "
                     f"not on it: {lam[off].tolist()}.")
  return tuple(int(i) for i in index)


def fit_reflectance(spectra: physics.Spectra, reflectance, wavelengths=None, *,
                    solver: str = "gauss_newton", iterations: int | None = None, lut=None,
                    dtype=None, model: str = "lut", grid: int | None = None,
                    learning_rate: float = 0.05, smooth_start: bool = True) -> dict:
  """Fits pigments and an overall scale to measured skin reflectance spectra.

  Model: reflectance(lambda) = scale * R(lambda; f_mel, f_blood), scale >= 0 (measurement
  geometry differs from the model's), no specular term; the model's bands are chosen to match
  the input.

  Args:
    spectra: the fixed spectra.
    reflectance: (n,) or (..., n) reflectance spectra.
    wavelengths: (n,) nm, each on the model grid 400:10:720; default 400:10:720 for n = 33 and
      400:10:700 for n = 31.
    solver, iterations, lut, dtype, model, grid, learning_rate, smooth_start: as in
      `fit_cube`.

  Returns:
    dict of NumPy arrays of shape (...): fmel, fblood (network coordinates), melanin,
    haemoglobin (volume fractions), scale, rmse (RMS over bands of reflectance - scale R).
  """
  dtype = _dtype(dtype)
  data = np.asarray(reflectance, np.float64)
  if data.ndim < 1:
    raise ValueError(f"reflectance must have shape (..., bands), got {data.shape}.")
  if not np.all(np.isfinite(data)):
    raise ValueError(f"reflectance has {int((~np.isfinite(data)).sum())} non-finite values.")
  bands = _bands(data.shape[-1], wavelengths)
  batch = data.shape[:-1]
  flat = data.reshape(-1, 1, data.shape[-1])
  iterations, xtol, ftol = _solver_options(solver, iterations, dtype)
  table, spectra = _model_inputs(spectra, model, lut, dtype)
  scale = _median_rms(flat[:, 0])
  count = flat.shape[0]
  # Pad the batch to a power of two (>= 8) so that varying batch sizes share compilations.
  padded = max(8, 1 << (count - 1).bit_length())
  valid = np.arange(padded)[:, None] < count
  spectra_in = np.concatenate([flat / scale, np.zeros((padded - count,) + flat.shape[1:])])
  out = _fit_map(table, spectra, jnp.asarray(spectra_in, dtype),
                 jnp.ones((len(bands),), dtype), jnp.asarray(valid), model=model, bands=bands,
                 solver=solver, with_specular=False, iterations=iterations, smoothness=0.0,
                 grid=int(grid or DEFAULT_GRID[solver]), chunk=2048,
                 learning_rate=float(learning_rate), xtol=xtol,
                 ftol=ftol, smooth_start=smooth_start)
  out = {k: np.asarray(v, np.float64)[:count, 0] for k, v in out.items()
         if k in ("theta", "model", "diffuse")}
  theta = out["theta"]
  melanin, haemoglobin = physics.network_to_fractions(theta[:, 0], theta[:, 1])
  fitted = out["model"] * scale
  rmse = np.sqrt(np.mean((flat[:, 0] - fitted)**2, -1))
  return dict(fmel=theta[:, 0].reshape(batch), fblood=theta[:, 1].reshape(batch),
              melanin=np.asarray(melanin, np.float64).reshape(batch),
              haemoglobin=np.asarray(haemoglobin, np.float64).reshape(batch),
              scale=(out["diffuse"] * scale).reshape(batch),
              rmse=rmse.reshape(batch))
