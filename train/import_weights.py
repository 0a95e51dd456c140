"""Import the authors' trained weights: ``python -m train.import_weights SOURCE FILE... --out DIR``.

SOURCE and its FILEs:

  prnet_tf1       PRNet's official TensorFlow 1 checkpoint, given by its prefix (without
                  .index / .data-*): Data/net-data/256_256_resfcn256_weight
  sdps_torch      SDPS-Net's two PyTorch checkpoints, LCNet's then NENet's:
                  LCNet_CVPR2019.pth.tar NENet_CVPR2019.pth.tar
  face_vae_keras  one face-VAE hypothesis's Keras save_weights .h5 (the training model's
                  weights.*.h5 or the converted *.predict.h5), with or without the mask decoder

DIR becomes an inference export (float32 variables.msgpack + meta.json): it works with
``pretrained.load(name, DIR)``, with every command of that system (--workdir DIR) and as a
training starting point (--config.init_workdir=DIR). Every tensor is matched by name and shape
(a missing, unexpected or wrongly shaped one is an error that names it); optimiser state in the
files is ignored. Reading TensorFlow checkpoints needs TensorFlow and reading .pth.tar files
PyTorch: pip install 'bioface_jax[weights]'. The .h5 files need only h5py. An existing DIR is
replaced only with --overwrite, and only once the new export is complete. See docs/weights.md
for where to get the files and the numbers the authors publish for them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys

SOURCES = ("prnet_tf1", "sdps_torch", "face_vae_keras")
COMMANDS = {"prnet": "python -m eval.prnet_predict IMAGE --workdir {out}",
            "sdps": "python -m eval.sdps_predict OBJECT_DIR --workdir {out}",
            "face_vae": "python -m eval.vae_predict IMAGE --workdir {out}"}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m train.import_weights",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("source", choices=SOURCES, metavar="SOURCE",
                      help=f"the authors' format: {', '.join(SOURCES)}")
  parser.add_argument("files", nargs="*", metavar="FILE", help="the authors' file(s), as above")
  parser.add_argument("--out", help="export directory to create")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  parser.add_argument("--name-map", action="store_true",
                      help="print SOURCE's name map (their tensor -> our variable) and exit")
  return parser


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _file_hashes(source: str, files) -> dict[str, str]:
  """sha256 of every file read (a TF checkpoint: its .index and .data-* files)."""
  paths = []
  for f in files:
    if source == "prnet_tf1":
      from bioface_jax.pretrained.importers import prnet_tf1  # pylint: disable=g-import-not-at-top
      prefix = prnet_tf1.checkpoint_prefix(f)
      paths += sorted(prefix.parent.glob(prefix.name + ".index"))
      paths += sorted(prefix.parent.glob(prefix.name + ".data-*"))
    else:
      paths.append(pathlib.Path(f))
  return {p.name: _sha256(p) for p in paths}


def print_name_map(source: str) -> None:
  from bioface_jax.pretrained import importers  # pylint: disable=g-import-not-at-top
  from bioface_jax.pretrained.importers import matching  # pylint: disable=g-import-not-at-top
  module = importers.source(source)
  if source == "prnet_tf1":
    rules = module.rules(module.model_config())
  elif source == "sdps_torch":
    rules = module.lcnet_rules() + module.nenet_rules()
  else:
    rules = module.rules(module.model_config(mask_branch=True))
  for theirs, ours, layout in matching.table(rules):
    print(f"{theirs}\t{ours}\t{layout}")


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
  if args.name_map:
    print_name_map(args.source)
    return 0
  want = 2 if args.source == "sdps_torch" else 1
  if len(args.files) != want:
    print(f"error: {args.source} takes {want} FILE(s), got {len(args.files)} (see --help)",
          file=sys.stderr)
    return 2
  if not args.out:
    print("error: --out DIR is required", file=sys.stderr)
    return 2
  out = pathlib.Path(args.out).expanduser()
  if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
    print(f"error: {out} already exists; choose another --out or add --overwrite",
          file=sys.stderr)
    return 2
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  from bioface_jax.pretrained import importers  # pylint: disable=g-import-not-at-top
  module = importers.source(args.source)
  try:
    print(f"reading {' '.join(args.files)} ({args.source})", flush=True)
    imported = importers.load(args.source, args.files)
    files = [str(pathlib.Path(f).expanduser().resolve()) for f in args.files]
    pretrained.save(out, module.SYSTEM, imported["variables"], imported["model_config"],
                    input_size=imported["input_size"], step=0,
                    source=f"the authors' weights ({args.source}): {' '.join(files)}",
                    extra_meta={"imported": {"source": args.source, "files": files,
                                             "sha256": _file_hashes(args.source, args.files)}},
                    overwrite=args.overwrite, dtype=np.float32)
    model = pretrained.load(module.SYSTEM, out)  # the export reads back
  except (FileNotFoundError, FileExistsError, ValueError, OSError, ImportError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  import jax  # pylint: disable=g-import-not-at-top
  parts = model.variables.values() if module.SYSTEM == "sdps" else [model.variables]
  counts = {c: sum(int(np.size(a)) for a in jax.tree.leaves([p.get(c, {}) for p in parts]))
            for c in ("params", "batch_stats")}
  size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
  stats = f", {counts['batch_stats']:,} BatchNorm statistics" if counts["batch_stats"] else ""
  print(f"imported {module.SYSTEM}: {counts['params']:,} parameters{stats} -> {out} "
        f"({size:.1f} MB)\nuse it with pretrained.load({module.SYSTEM!r}, {str(out)!r}) or "
        + COMMANDS[module.SYSTEM].format(out=out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
