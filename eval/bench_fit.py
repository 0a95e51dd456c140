"""Benchmark of the multispectral skin fit (`bioface_jax.fit.fit_cube`) against SciPy.

    python -m eval.bench_fit [--sizes 64 256] [--noise 0 1e-3] [--scipy-pixels 200]
    python -m eval.bench_fit --noise-curve [--sizes 64]

Synthetic cubes: pigments uniform in [-0.9, 0.9] (network coordinates, off the table's
nodes almost surely), i_d in [0.5, 2], i_s in [0, 0.3], a daylight illuminant, radiance
rendered in float64 with the table's bilinear sampler; noise is Gaussian with standard
deviation sigma times the RMS of the cube.

Each of our solvers is timed on the whole cube (first call, which compiles, and a second
"warm" call when the first took under a minute). The reference is what a user would otherwise
write: `scipy.optimize.least_squares` (bounded, "trf", finite-difference Jacobian) pixel by
pixel with the same bilinear table in NumPy, started from the same coarse-grid start as ours
(whose cost is not counted for SciPy), with tolerances 1e-12 so that it reaches the accuracy
it can. It runs on a random subset of pixels; its time is extrapolated per pixel to the
whole cube (marked "extrapolated"), its accuracy is measured on the subset.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from bioface_jax import fit
from bioface_jax import physics
from bioface_jax.fit import projection

DEFAULT_RUNS = ("gauss_newton:float64", "gauss_newton:float32", "lbfgs:float64", "adam:float32")
NOISE_CURVE = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
BAD = 1e-3  # a pixel with a pigment error above this counts as a failed fit


def synthetic_cube(spectra, lut, size, sigma, seed=0):
  """(cube (size, size, 33), illuminant (33,), truth dict), float64 NumPy."""
  rng = np.random.default_rng(seed)
  shape = (size, size)
  truth = dict(fmel=rng.uniform(-0.9, 0.9, shape), fblood=rng.uniform(-0.9, 0.9, shape),
               diffuse=rng.uniform(0.5, 2.0, shape), specular=rng.uniform(0.0, 0.3, shape))
  e = np.asarray(physics.illuminant(spectra, jnp.eye(14)[1], 3.5), np.float64)  # 6500 K
  refl = np.asarray(physics.skin_reflectance(lut, truth["fmel"], truth["fblood"]), np.float64)
  cube = e * (truth["diffuse"][..., None] * refl + truth["specular"][..., None])
  cube += sigma * np.sqrt(np.mean(cube**2)) * rng.standard_normal(cube.shape)
  return cube, e, truth


def accuracy(fmel, fblood, truth, index=None):
  """RMSE of each pigment, worst error and fraction of failed pixels, on ``index`` pixels."""
  tm, tb = truth["fmel"].ravel(), truth["fblood"].ravel()
  if index is not None:
    tm, tb = tm[index], tb[index]
  dm, db = np.ravel(fmel) - tm, np.ravel(fblood) - tb
  worst = np.maximum(np.abs(dm), np.abs(db))
  return dict(rmse_mel=float(np.sqrt(np.mean(dm**2))), rmse_blood=float(np.sqrt(np.mean(db**2))),
              worst=float(worst.max()), bad=float(np.mean(worst > BAD)))


def _bilinear(table, row, col):
  """The corner-aligned bilinear lookup of `physics.skin_reflectance`, scalar NumPy."""
  n = table.shape[0]
  r = (min(max(row, -1.0), 1.0) + 1) / 2 * (n - 1)
  c = (min(max(col, -1.0), 1.0) + 1) / 2 * (n - 1)
  r0, c0 = min(int(r), n - 2), min(int(c), n - 2)
  wr, wc = r - r0, c - c0
  return ((1 - wr) * ((1 - wc) * table[r0, c0] + wc * table[r0, c0 + 1])
          + wr * ((1 - wc) * table[r0 + 1, c0] + wc * table[r0 + 1, c0 + 1]))


def scipy_fit(table, cube, e, starts, index):
  """Per-pixel bounded least_squares; returns (fmel, fblood) on ``index`` and seconds."""
  flat = cube.reshape(-1, cube.shape[-1])
  out = np.zeros((len(index), 2))
  lower, upper = np.array([-1.0, -1.0, 0.0, 0.0]), np.array([1.0, 1.0, np.inf, np.inf])
  start = time.perf_counter()
  for k, p in enumerate(index):
    def residual(x, l=flat[p]):
      return e * (x[2] * _bilinear(table, x[1], x[0]) + x[3]) - l
    x0 = np.clip(starts[p], lower + 1e-9, upper)
    sol = scipy.optimize.least_squares(residual, x0, bounds=(lower, upper), method="trf",
                                       x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    out[k] = sol.x[:2]
  return out[:, 0], out[:, 1], time.perf_counter() - start


def coarse_starts(lut, cube, e):
  """The same coarse-grid start as `fit_cube`, as (P, 4) [fmel, fblood, i_d, i_s]."""
  scale_l, scale_e = np.sqrt(np.mean(cube**2)), np.sqrt(np.mean(e**2))
  reflect = functools.partial(physics.skin_reflectance, lut)
  flat = jnp.asarray(cube.reshape(-1, cube.shape[-1]) / scale_l)
  e_n = jnp.asarray(e / scale_e)
  grid = fit.multispectral.DEFAULT_GRID["gauss_newton"]
  fmel, fblood = projection.grid_search(reflect, flat, e_n,
                                        projection.candidate_grid(lut.shape[0], grid, flat.dtype))
  i_d, i_s, _ = projection.project(reflect(fmel, fblood), flat, e_n)
  shading = scale_l / scale_e
  return np.stack([fmel, fblood, np.asarray(i_d) * shading, np.asarray(i_s) * shading], -1)


def time_ours(spectra, lut, cube, e, solver, dtype, repeats=5):
  """(first-call seconds, median warm seconds or None, min warm seconds, result) of `fit_cube`.

  The warm time is the median of ``repeats`` calls after the first (compiling) one, when that
  took under a minute: on a shared machine single timings vary several-fold.
  """
  def run():
    return fit.fit_cube(spectra, cube, e, lut=lut, solver=solver, dtype=dtype)
  start = time.perf_counter()
  out = run()
  first = time.perf_counter() - start
  warm = fastest = None
  if first < 60:
    times = []
    for _ in range(max(1, repeats)):
      start = time.perf_counter()
      out = run()
      times.append(time.perf_counter() - start)
    warm, fastest = float(np.median(times)), float(np.min(times))
  return first, warm, fastest, out


def benchmark(spectra, lut, args):
  table = np.asarray(lut, np.float64)
  print("RMSE and worst: pigment errors against the truth (SciPy: on its pixels only); vs GN64: "
        "RMSE of both pigments against ours gauss_newton:float64, the reference optimum (SciPy: "
        f"on its pixels); failed: pixels with a pigment error > {BAD:g} (noiseless cubes only)")
  print(f"warm s: median of {args.repeats} calls after the compiling one; min s: their minimum; "
        f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
  print(f"{'size':>5} {'noise':>7} {'method':<24} {'first s':>8} {'warm s':>8} {'min s':>7} "
        f"{'RMSE mel':>9} {'RMSE blood':>10} {'worst':>8} {'vs GN64':>8} {'failed':>7}")

  def row(size, sigma, name, first, warm, fastest, acc, versus, note=""):
    warm_text = f"{warm:8.3f}" if warm is not None else f"{'-':>8}"
    min_text = f"{fastest:7.3f}" if fastest is not None else f"{'-':>7}"
    failed = f"{acc['bad']:7.2%}" if sigma == 0 else f"{'-':>7}"
    print(f"{size:5d} {sigma:7.0e} {name:<24} {first:8.2f} {warm_text} {min_text} "
          f"{acc['rmse_mel']:9.1e} {acc['rmse_blood']:10.1e} {acc['worst']:8.1e} "
          f"{versus:8.1e} {failed}{note}", flush=True)

  for size in args.sizes:
    for sigma in args.noise:
      cube, e, truth = synthetic_cube(spectra, lut, size, sigma)
      optimum = fit.fit_cube(spectra, cube, e, lut=lut, dtype="float64")
      optimum = dict(fmel=optimum["fmel"], fblood=optimum["fblood"])

      def versus(fmel, fblood, index=None):
        acc = accuracy(fmel, fblood, optimum, index)
        return float(np.hypot(acc["rmse_mel"], acc["rmse_blood"]))

      for run in args.runs:
        solver, dtype = run.split(":")
        first, warm, fastest, out = time_ours(spectra, lut, cube, e, solver, dtype,
                                              args.repeats)
        row(size, sigma, "ours " + run, first, warm, fastest,
            accuracy(out["fmel"], out["fblood"], truth), versus(out["fmel"], out["fblood"]))
      starts = coarse_starts(lut, cube, e)
      rng = np.random.default_rng(1)
      n_pixels = size * size
      index = rng.choice(n_pixels, min(n_pixels, args.scipy_pixels), replace=False)
      fmel, fblood, seconds = scipy_fit(table, cube, e, starts, index)
      note = "" if len(index) == n_pixels else f"  (extrapolated from {len(index)} pixels)"
      row(size, sigma, "scipy least_squares", seconds * n_pixels / len(index), None, None,
          accuracy(fmel, fblood, truth, index), versus(fmel, fblood, index), note)


def noise_curve(spectra, lut, args):
  size = args.sizes[0]
  print(f"noise curve: gauss_newton float64 on a {size}x{size} cube; sigma = noise std / cube "
        "RMS; RMSE against the true pigments (network coordinates) and relative RMSE of i_d")
  print("| sigma | RMSE f_mel | RMSE f_blood | median abs f_mel | median abs f_blood "
        "| rel. RMSE i_d | out of range |")
  print("|---|---|---|---|---|---|---|")
  for sigma in NOISE_CURVE:
    cube, e, truth = synthetic_cube(spectra, lut, size, sigma)
    out = fit.fit_cube(spectra, cube, e, lut=lut)
    acc = accuracy(out["fmel"], out["fblood"], truth)
    rel = np.sqrt(np.mean((out["diffuse"] / truth["diffuse"] - 1)**2))
    med_mel = np.median(np.abs(out["fmel"] - truth["fmel"]))
    med_blood = np.median(np.abs(out["fblood"] - truth["fblood"]))
    print(f"| {sigma:.0e} | {acc['rmse_mel']:.2e} | {acc['rmse_blood']:.2e} | {med_mel:.2e} "
          f"| {med_blood:.2e} | {rel:.2e} | {np.mean(out['out_of_range']):.2%} |", flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 1e-3],
                      help="noise std as a fraction of the cube's RMS")
  parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS),
                      help="solver:dtype pairs of ours")
  parser.add_argument("--scipy-pixels", type=int, default=200,
                      help="pixels fitted by SciPy (time extrapolated to the cube)")
  parser.add_argument("--repeats", type=int, default=5,
                      help="warm calls per solver (their median and minimum are printed)")
  parser.add_argument("--noise-curve", action="store_true",
                      help="print the error-vs-noise table instead of the timings")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)  # float64 runs; float32 runs pass dtype.

  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  print(f"command: python -m eval.bench_fit {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
        f"scipy {scipy.__version__}")
  if args.noise_curve:
    noise_curve(spectra, lut, args)
  else:
    benchmark(spectra, lut, args)


if __name__ == "__main__":
  main()
