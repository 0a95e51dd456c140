"""Physics-based synthetic faces: the offline default training data and the ground-truth benchmark.

Faces are drawn and rendered by `data.synth.faces` (geometry, skin maps, SH light, illuminant and
camera from the model's priors, BioFaceNet's own renderer) and written by
`data.synth.dataset.write_dataset` in the Neural Face Editing layout that `data.nfe.NFEDataset`
reads, with one ground-truth file per shard. ``--iset K`` also writes K spectral scenes as ISET
``.mat`` files with per-pixel ground truth, for the least-squares fit and the Table 1
benchmark (`eval.iset_table1`).

Usage:

  python -m data.synth_faces --out /tmp/synth --n 20000 --size 64 --seed 0 \\
      [--shard-size 4096] [--iset 25] [--noise 0.005] [--jpeg-quality 90] \\
      [--figure samples.png] [--workers 8]

Face i depends only on (seed, i), so a run is reproducible by its seed, whatever the batch size
or number of workers. ISET scene k is face ``ISET_INDEX_BASE + k`` of the same seed, so
benchmark scenes never coincide with training faces 0..n-1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
from collections.abc import Sequence

if __name__ == "__main__":
  # Before NumPy loads: OpenBLAS threads make the sampler's small matrix products ~10x slower
  # on a busy machine (measured 0.16 vs 22 ms for 256x20 @ 20x256 on 2 shared cores), and the
  # spawned --workers inherit the setting.
  os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bioface_jax import physics  # noqa: E402
from data import iset, nfe  # noqa: E402
from data.synth import dataset as synth_dataset  # noqa: E402
from data.synth import faces as synth_faces  # noqa: E402

ISET_INDEX_BASE = 1_000_000_000
ISET_DIR = "iset"
ISET_TRUTH_KEYS = ("fmel", "fblood", "melanin", "haemoglobin", "diffuse", "specular", "mask",
                   "normals", "weights", "t", "b", "sh", "linear_image", "image", "index")
FIGURE_COLUMNS = ("image", "mask", "normals", "diffuse", "specular", "melanin", "haemoglobin",
                  "albedo")


def write_iset_scenes(directory: str | pathlib.Path, count: int, size: int = 64, seed: int = 0,
                      options: synth_faces.FaceOptions | None = None, *, scale: float = 33.0,
                      batch_size: int = 32) -> list[pathlib.Path]:
  """Writes `count` spectral scenes ``scene_XXX.mat`` (ISET "photons" layout, MATLAB v5).

  Each scene's radiance is ``l = e (i_d R(fmel, fblood) + i_s)`` on the mask (see
  `synth_faces.spectral_radiance`), ``e`` the face's illuminant times `scale`; beside it
  ``scene_XXX_truth.npz`` holds the per-pixel truth (fmel, fblood, melanin, haemoglobin,
  diffuse, specular, mask, normals), the face's weights, t, b, sh, its rendered images, and the
  illuminant, scale and background reflectance used for the cube. Files are written under a
  temporary name and renamed.

  Returns:
    The scene paths.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  gen = synth_faces.FaceGenerator(size, seed, options, min(batch_size, count))
  paths = []
  indices = range(ISET_INDEX_BASE, ISET_INDEX_BASE + count)
  for batch in gen.batches(indices):
    for row in range(len(batch["index"])):
      face = {k: v[row] for k, v in batch.items()}
      k = int(face["index"]) - ISET_INDEX_BASE
      radiance, e, rho = synth_faces.spectral_radiance(gen.spectra, gen.lut, face, scale)
      path = directory / f"scene_{k:03d}.mat"
      tmp = path.with_name(f"{path.stem}.partial.mat")
      iset.write_scene(tmp, radiance, iset.TARGET_WAVELENGTHS, e, format="photons",
                       version="v5", name=path.stem,
                       comment=f"bioface_jax synthetic face {k} (seed {seed})")
      tmp.replace(path)
      truth = {key: face[key] for key in ISET_TRUTH_KEYS}
      tmp_npz = directory / f"scene_{k:03d}_truth.partial.npz"
      np.savez_compressed(tmp_npz, **truth, illuminant=e, scale=np.float64(scale),
                          background=rho, seed=np.int64(seed))
      tmp_npz.replace(directory / f"scene_{k:03d}_truth.npz")
      paths.append(path)
  return paths


def save_figure(path: str | pathlib.Path, batch: dict[str, np.ndarray], rows: int = 6) -> None:
  """Figure of `rows` faces: image and ground-truth maps (`FIGURE_COLUMNS`)."""
  import matplotlib
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # No pyplot: no GUI backend.
  from matplotlib.figure import Figure
  rows = min(rows, len(batch["index"]))
  fig = Figure(figsize=(1.3 * len(FIGURE_COLUMNS), 1.35 * rows + 0.3), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(rows, len(FIGURE_COLUMNS), squeeze=False)
  encode = lambda x: np.clip(np.asarray(physics.srgb_encode(x)), 0, 1)  # noqa: E731
  for r in range(rows):
    m = batch["mask"][r]
    off = lambda x: np.ma.masked_where(~m, x)  # noqa: E731
    cmap = lambda name: matplotlib.colormaps[name].with_extremes(bad="black")  # noqa: E731
    albedo = batch["albedo"][r]
    shown = dict(image=(batch["image"][r], {}), mask=(m, dict(cmap="gray")),
                 normals=(np.where(m[..., None], (batch["normals"][r] + 1) / 2, 0), {}),
                 diffuse=(batch["diffuse"][r], dict(cmap="gray")),
                 specular=(batch["specular"][r], dict(cmap="gray")),
                 melanin=(off(batch["melanin"][r]), dict(cmap=cmap("copper_r"), vmin=0,
                                                          vmax=0.3)),
                 haemoglobin=(off(batch["haemoglobin"][r]), dict(cmap=cmap("Reds"), vmin=0,
                                                                  vmax=0.04)),
                 albedo=(encode(albedo / max(np.percentile(albedo[m], 99), 1e-6)), {}))
    for c, name in enumerate(FIGURE_COLUMNS):
      ax = axes[r, c]
      image, kw = shown[name]
      ax.imshow(image, interpolation="nearest", **kw)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(name, fontsize=9)
  fig.suptitle("bioface_jax synthetic faces: image and ground truth (melanin 0-30 %, "
               "haemoglobin 0-4 % volume fractions; albedo scaled per face)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path)


def _positive(kind, minimum, name):
  def parse(text):
    try:
      value = kind(text)
    except ValueError:
      what = "an integer" if kind is int else "a number"
      raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
    if not value >= minimum:
      raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {text}")
    return value
  return parse


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m data.synth_faces", formatter_class=argparse.RawDescriptionHelpFormatter,
      description=(
          "Renders synthetic faces with exact ground truth through BioFaceNet's own spectral\n"
          "renderer (random shape, pose, melanin/haemoglobin maps, SH light, illuminant and\n"
          "camera from the model's priors). Face i depends only on (seed, i)."),
      epilog=(
          "output in DIR:\n"
          "  zx_7_d10_inmc_celebA_XX.hdf5, zx_7_d3_lrgb_celebA_XX.hdf5\n"
          "                       NFE layout (training data, read by data.nfe.NFEDataset)\n"
          "  synth_truth_XX.hdf5  ground truth of the same rows (data.synth.dataset.load_truth)\n"
          "  synth_meta.json      seed, size, options, timing (written last)\n"
          "  iset/scene_XXX.mat + scene_XXX_truth.npz  with --iset (spectral benchmark scenes)\n"
          "\nexample: python -m data.synth_faces --out /tmp/synth --n 20000 --iset 25 "
          "--figure /tmp/synth/samples.png"))
  p.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                 help="output directory")
  p.add_argument("--n", required=True, type=_positive(int, 0, "--n"), metavar="N",
                 help="number of training faces (0 allowed with --iset)")
  p.add_argument("--size", type=_positive(int, 8, "--size"), default=64, metavar="S",
                 help="image height = width (default %(default)s)")
  p.add_argument("--seed", type=_positive(int, 0, "--seed"), default=0,
                 metavar="SEED",
                 help="dataset seed; face i depends only on (seed, i) (default %(default)s)")
  p.add_argument("--shard-size", type=_positive(int, 1, "--shard-size"), default=4096,
                 metavar="M",
                 help="faces per NFE shard (default %(default)s)")
  p.add_argument("--iset", type=_positive(int, 0, "--iset"), default=0, metavar="K",
                 help="also write K spectral ISET scenes with ground truth into DIR/iset")
  p.add_argument("--noise", type=_positive(float, 0.0, "--noise"), default=0.0, metavar="SIGMA",
                 help="Gaussian sensor noise std in linear sRGB, added before the sRGB curve "
                      "(default 0: off)")
  p.add_argument("--jpeg-quality", type=_positive(int, 1, "--jpeg-quality"), default=None,
                 metavar="Q",
                 help="also round trip images through a real JPEG at quality Q (1-100; "
                      "default: 8-bit quantisation only)")
  p.add_argument("--no-quantise", action="store_true",
                 help="store float images instead of 8-bit quantised values")
  p.add_argument("--figure", type=pathlib.Path, default=None, metavar="PATH",
                 help="write a figure of sample faces and their ground-truth maps")
  p.add_argument("--batch-size", type=_positive(int, 1, "--batch-size"), default=32,
                 metavar="B",
                 help="faces per (jitted, fixed-shape) render call (default %(default)s)")
  p.add_argument("--workers", type=_positive(int, 0, "--workers"), default=0,
                 metavar="W",
                 help="worker processes sampling geometry (default 0: in this process)")
  p.add_argument("--world", choices=synth_dataset.WORLDS, default="faces",
                 help="faces: the skin-only faces (default); scenes: the face-scene world of "
                      "data.synth.scene (BioFaceNet's crop; the ISET scenes stay faces)")
  p.add_argument("--overwrite", action="store_true", help="replace existing output files")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.jpeg_quality is not None and args.jpeg_quality > 100:
    parser.error(f"--jpeg-quality must be in [1, 100], got {args.jpeg_quality}")
  if args.n == 0 and args.iset == 0:
    parser.error("nothing to do: give --n >= 1 and/or --iset K >= 1")
  if args.figure is not None and args.figure.suffix.lower() not in (".png", ".pdf", ".svg",
                                                                      ".jpg"):
    parser.error(f"--figure must end in .png, .pdf, .svg or .jpg, got {args.figure}")
  if args.out.exists() and not args.out.is_dir():
    parser.error(f"--out {args.out} exists and is not a directory")
  existing = [p.name for pattern in ("zx_7_*.hdf5", "synth_truth_*.hdf5", "synth_meta.json",
                                     f"{ISET_DIR}/scene_*")
              for p in args.out.glob(pattern)] if args.out.is_dir() else []
  if existing and not args.overwrite:
    parser.error(f"--out {args.out} already holds synthetic data ({', '.join(existing[:3])}"
                 f"{', ...' if len(existing) > 3 else ''}); pass --overwrite to replace it")
  if existing:
    for pattern in ("zx_7_*.hdf5", "synth_truth_*.hdf5", "synth_meta.json", f"{ISET_DIR}/scene_*"):
      for p in args.out.glob(pattern):
        p.unlink()
  options = synth_faces.FaceOptions(noise=args.noise, jpeg_quality=args.jpeg_quality,
                                    quantise=not args.no_quantise)
  if args.n:
    world_options = options
    if args.world == "scenes":
      from data.synth import scene  # pylint: disable=g-import-not-at-top
      default = scene.SceneOptions().face
      world_options = scene.SceneOptions(
          framing="face", size=args.size,
          face=dataclasses.replace(default, noise=args.noise, jpeg_quality=args.jpeg_quality,
                                   quantise=not args.no_quantise))
    meta = synth_dataset.write_dataset(args.out, args.n, args.size, args.seed, world_options,
                                       shard_size=args.shard_size, batch_size=args.batch_size,
                                       workers=args.workers, world=args.world)
    print(f"wrote {args.n} faces in {len(meta['shards'])} shard(s) to {args.out} "
          f"({meta['faces_per_second']:.1f} faces/s overall)")
  if args.iset:
    paths = write_iset_scenes(args.out / ISET_DIR, args.iset, args.size, args.seed, options,
                              batch_size=args.batch_size)
    print(f"wrote {len(paths)} ISET scenes to {args.out / ISET_DIR}")
  if args.figure is not None:
    if args.n:
      rows = np.sort(np.random.default_rng(args.seed).choice(args.n, min(6, args.n), False))
      batch = synth_dataset.load_truth(args.out, rows)
      nfe_rows = nfe.NFEDataset(args.out).get(rows)
      batch["image"] = nfe_rows["image"]
    else:
      batch = synth_faces.generate_faces(min(6, args.iset), args.size, args.seed,
                                         start=ISET_INDEX_BASE, options=options)
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    save_figure(args.figure, batch)
    print(f"wrote figure {args.figure}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
