"""Where is the biophysics lost? Per-pixel inversions of the renderer on synthetic faces.

    python -m eval.recovery_ladder [--n 32] [--grid 128] [--candidates 128] [--out DIR]

Rungs (each on the same held-out faces of the default synthetic data set, 64x64):

* ``a``: *identifiability ceiling*. The true light and camera are given, the true specular
  shading is subtracted, the diffuse shading is a free per-pixel scale; every pixel's
  (fmel, fblood) is the node of a ``grid`` x ``grid`` subsample of the skin table whose
  rendered colour (linear sRGB, through white balance and RAW->XYZ) has the smallest
  scale-free residual (dense search: the same least-squares model as `bioface_jax.fit`, on 3
  RGB values instead of 33 bands). Inputs: the clean linear image; with Gaussian noise;
  the stored 8-bit sRGB file decoded with the exact sRGB curve, and with the network's
  x^2.2; a JPEG round trip (quality 90 and 75).
* ``b``: the same, but light and camera unknown and shared by all pixels of the face: each of
  ``candidates`` (illuminant, camera) pairs drawn from the generator's own prior is tried
  (on 400 pixels and a 64 x 64 table, for speed), the one with the smallest summed residual is
  kept and the pigments are inverted with it. Also reported: how often the *true* pair has
  a lower residual than the best drawn one (if rarely, the residual cannot tell them apart).

Errors follow `eval.recovery`: per-face RMSE over the mask in network coordinates, mean over
faces; the baseline predicts the mean coordinate of the evaluated faces (which favours it).
Writes ``ladder.json`` and ``ladder.md`` to ``--out`` (default runs/ladder).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from eval import metrics

NOISE_SIGMA = 0.005  # linear sRGB; faces have mean luminance 0.05-0.25


def colour_tables(spectra, lut, weights, t, b, grid: int):
  """(K, grid*grid, 3) linear-sRGB colour of unit-shaded skin at the table subsample, the
  (grid*grid, 2) (fmel, fblood) of its nodes and (K, 3) linear sRGB of a unit white specular.

  Exactly the renderer's pipeline per node: a = sum_l R e S / lc, XYZ = T(b) a, M_sRGB XYZ
  (without the final ReLU, which the search does not need)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.physics import camera, display  # pylint: disable=g-import-not-at-top
  size = lut.shape[0]
  sel = np.unique(np.round(np.linspace(0, size - 1, grid)).astype(np.int64))
  sub = jnp.asarray(lut)[sel][:, sel]                                   # (g, g, 33) rows=blood
  e = physics.illuminant(spectra, jnp.asarray(weights), jnp.asarray(t))  # (K, 33)
  s = physics.camera_sensitivity(spectra, jnp.asarray(b))               # (K, 3, 33)
  lc = physics.light_colour(e, s)                                        # (K, 3)
  tm = camera.raw_to_xyz_exact(spectra, s)                               # (K, 3, 3)
  raw = jnp.einsum("rml,kcl->krmc", sub, s * e[:, None, :]) / lc[:, None, None, :]
  m = jnp.asarray(display.XYZ_TO_LINEAR_SRGB, jnp.float32)
  table = jnp.einsum("ij,kjc,krmc->krmi", m, tm, raw)
  white = jnp.einsum("ij,kjc->ki", m, tm)
  f = 2.0 * sel / (size - 1) - 1.0
  coords = np.stack(np.meshgrid(f, f, indexing="xy"), -1).reshape(-1, 2)  # (fmel=col, fblood=row)
  g = len(sel)
  return np.asarray(table, np.float64).reshape(-1, g * g, 3), coords, np.asarray(white, np.float64)


def invert(y: np.ndarray, table: np.ndarray, coords: np.ndarray, chunk: int = 512):
  """Per-pixel best node: argmax over nodes of (y.A)^2/|A|^2 (y.A > 0), i.e. the smallest
  residual with a free non-negative scale. y (P, 3), table (N, 3). Returns ((P, 2) coordinates,
  (P,) residual |y|^2 - max (y.A)^2/|A|^2)."""
  an = table / np.maximum(np.linalg.norm(table, axis=-1, keepdims=True), 1e-30)
  best = np.empty(len(y), np.int64)
  gain = np.empty(len(y))
  for s in range(0, len(y), chunk):
    d = y[s:s + chunk] @ an.T
    d = np.where(d > 0, d * d, 0.0)
    best[s:s + chunk] = d.argmax(1)
    gain[s:s + chunk] = d.max(1)
  return coords[best], np.maximum((y * y).sum(-1) - gain, 0.0)


def pigment_errors(pred_mel, pred_hb, truth, means):
  """Per-face melanin/haemoglobin RMSE, baseline RMSE and predicted/true per-face means."""
  m = truth["mask"].astype(bool)
  out = {}
  for key, p, t, mean in (("melanin", pred_mel, truth["fmel"], means[0]),
                          ("haemoglobin", pred_hb, truth["fblood"], means[1])):
    out[key] = dict(model=metrics.masked_rmse(p, t, m),
                    baseline=metrics.masked_rmse(np.full_like(t, mean), t, m),
                    face_pred=metrics.masked_mean(p, m), face_true=metrics.masked_mean(t, m))
  return out


def srgb_decode_np(x):
  x = np.asarray(x, np.float64)
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def inputs_for(variant: str, images, truth, rng):
  """(B, H, W, 3) linear image seen by the inversion for one input variant."""
  from data.synth.faces import jpeg_round_trip  # pylint: disable=g-import-not-at-top
  clean = np.asarray(truth["linear_image"], np.float64)
  if variant == "clean linear":
    return clean
  if variant == "linear + noise":
    return clean + rng.normal(0.0, NOISE_SIGMA, clean.shape)
  if variant == "8-bit sRGB, sRGB decode":
    return srgb_decode_np(images)
  if variant == "8-bit sRGB, x^2.2 decode (network input)":
    return np.asarray(images, np.float64) ** 2.2
  if variant.startswith("JPEG q"):
    q = int(variant.split("q")[1])
    return srgb_decode_np(np.stack([jpeg_round_trip(x, q) for x in images]))
  raise ValueError(variant)


VARIANTS_A = ("clean linear", "linear + noise", "8-bit sRGB, sRGB decode",
              "8-bit sRGB, x^2.2 decode (network input)", "JPEG q90", "JPEG q75")


def run(n: int = 32, grid: int = 128, candidates: int = 128, seed: int = 0, stream=sys.stdout):
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from data.synth import faces as synth_faces  # pylint: disable=g-import-not-at-top
  from train.biofacenet_task import load_datasets  # pylint: disable=g-import-not-at-top
  from train.configs.biofacenet import get_config  # pylint: disable=g-import-not-at-top
  say = lambda text: print(text, file=stream, flush=True)  # noqa: E731
  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  _, holdout = load_datasets(get_config())
  idx = np.arange(min(n, len(holdout)))
  images = holdout.get(idx)["image"]
  truth = holdout.truth(idx, ("fmel", "fblood", "mask", "specular", "linear_image", "weights",
                              "t", "b"))
  mask = truth["mask"].astype(bool)
  means = (float(truth["fmel"][mask].mean()), float(truth["fblood"][mask].mean()))
  rng = np.random.default_rng(seed)
  rows, t0 = [], time.perf_counter()
  true_tab, coords, true_white = colour_tables(spectra, lut, truth["weights"], truth["t"],
                                               truth["b"], grid)
  # Rung a: true light and camera.
  for variant in VARIANTS_A:
    lin = inputs_for(variant, images, truth, rng)
    mel = np.zeros(mask.shape)
    hb = np.zeros(mask.shape)
    for i in range(len(idx)):
      y = lin[i][mask[i]] - truth["specular"][i][mask[i]][:, None] * true_white[i]
      c, _ = invert(y, true_tab[i], coords)
      mel[i][mask[i]], hb[i][mask[i]] = c[:, 0], c[:, 1]
    rows.append(("a", variant, pigment_errors(mel, hb, truth, means), None))
    say(f"a | {variant}: {time.perf_counter() - t0:.0f} s")
  # Rung b: unknown light and camera shared per face, drawn from the generator's prior.
  opts = synth_faces.FaceOptions()
  draws = [synth_faces.sample_illuminant(np.random.default_rng([seed, 7, k]), opts)
           for k in range(candidates)]
  cw, ct, cb = (np.stack([d[j] for d in draws]) for j in range(3))
  cand_small, coords_small, cand_white = colour_tables(spectra, lut, cw, ct, cb, 64)
  true_small, _, _ = colour_tables(spectra, lut, truth["weights"], truth["t"], truth["b"], 64)
  lin = srgb_decode_np(images)
  mel, hb = np.zeros(mask.shape), np.zeros(mask.shape)
  truth_better, chosen_b, chosen_e = [], [], []
  for i in range(len(idx)):
    pix = np.flatnonzero(mask[i].ravel())
    sub = rng.choice(pix, min(400, pix.size), replace=False)
    y_all = lin[i].reshape(-1, 3)
    spec = truth["specular"][i].ravel()
    res = [invert(y_all[sub] - spec[sub, None] * cand_white[k], cand_small[k],
                  coords_small)[1].sum() for k in range(candidates)]
    k = int(np.argmin(res))
    res_true = invert(y_all[sub] - spec[sub, None] * true_white[i], true_small[i],
                      coords_small)[1].sum()
    truth_better.append(res_true < res[k])
    full_tab, _, white = colour_tables(spectra, lut, cw[k:k + 1], ct[k:k + 1], cb[k:k + 1], grid)
    y = y_all[pix] - spec[pix, None] * white[0]
    c, _ = invert(y, full_tab[0], coords)
    mel[i].ravel()[pix], hb[i].ravel()[pix] = c[:, 0], c[:, 1]
    chosen_b.append(cb[k])
    chosen_e.append(k)
  e_true = np.asarray(physics.illuminant(spectra, truth["weights"], truth["t"]))
  e_all = np.asarray(physics.illuminant(spectra, cw, ct))
  e_pick = e_all[np.asarray(chosen_e)]
  extra = dict(
      truth_residual_lower=float(np.mean(truth_better)),
      camera_b=dict(model=metrics.vector_distance(np.stack(chosen_b), truth["b"]),
                    baseline=metrics.vector_distance(np.zeros_like(truth["b"]), truth["b"])),
      illuminant_angle=dict(model=metrics.spectral_angle(e_pick, e_true),
                            baseline=metrics.spectral_angle(
                                np.broadcast_to(e_all.mean(0), e_true.shape), e_true)))
  rows.append(("b", f"8-bit sRGB, light+camera chosen from {candidates} prior draws",
               pigment_errors(mel, hb, truth, means), extra))
  say(f"b: {time.perf_counter() - t0:.0f} s")
  return rows


def summarise(rows, n):
  table = ["| rung | input | melanin RMSE | haemoglobin RMSE | per-face mean melanin r | notes |",
           "|---|---|---|---|---|---|"]
  out = []
  for rung, variant, err, extra in rows:
    mel, hb = err["melanin"], err["haemoglobin"]
    r = metrics.pearson(mel["face_true"], mel["face_pred"])
    note = ""
    if extra:
      note = (f"true light+camera fits better than the chosen draw on "
              f"{100 * extra['truth_residual_lower']:.0f} % of faces; camera b "
              f"{extra['camera_b']['model'].mean():.2f} (baseline 0 = "
              f"{extra['camera_b']['baseline'].mean():.2f}); illuminant angle "
              f"{extra['illuminant_angle']['model'].mean():.1f}° (baseline "
              f"{extra['illuminant_angle']['baseline'].mean():.1f}°)")
    table.append(f"| {rung} | {variant} | {mel['model'].mean():.3f} | {hb['model'].mean():.3f} "
                 f"| {r:.2f} | {note} |")
    out.append(dict(rung=rung, input=variant, melanin_rmse=float(mel["model"].mean()),
                    haemoglobin_rmse=float(hb["model"].mean()), melanin_face_r=r,
                    melanin_baseline=float(mel["baseline"].mean()),
                    haemoglobin_baseline=float(hb["baseline"].mean()), note=note))
  mel_b, hb_b = out[0]["melanin_baseline"], out[0]["haemoglobin_baseline"]
  table.append(f"| – | constant (mean of these {n} faces) | {mel_b:.3f} | {hb_b:.3f} | – | |")
  return "\n".join(table), out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m eval.recovery_ladder",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--n", type=int, default=32, help="held-out faces (default 32)")
  p.add_argument("--grid", type=int, default=128, help="table subsample per axis (default 128)")
  p.add_argument("--candidates", type=int, default=128,
                 help="light+camera draws tried per face in rung b (default 128)")
  p.add_argument("--out", default="runs/ladder", help="output directory")
  args = p.parse_args(argv)
  if args.n < 2 or args.grid < 2 or args.candidates < 1:
    p.error("--n >= 2, --grid >= 2 and --candidates >= 1 are required")
  rows = run(args.n, args.grid, args.candidates)
  table, out = summarise(rows, args.n)
  print("\n" + table)
  d = pathlib.Path(args.out)
  d.mkdir(parents=True, exist_ok=True)
  (d / "ladder.md").write_text(table + "\n")
  (d / "ladder.json").write_text(json.dumps(dict(n=args.n, grid=args.grid,
                                                 candidates=args.candidates, rows=out), indent=1))
  print(f"wrote {d / 'ladder.md'} and {d / 'ladder.json'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
