"""Export a trained model for inference: ``python -m train.export --workdir W --out DIR``.

Works for every system (BioFaceNet, face VAE, SDPS-Net, PRNet; which one is read from the
run's config). Writes ``DIR/variables.msgpack`` (parameters and BatchNorm statistics, float16
by default: a few MB), ``DIR/meta.json`` (system, model config, input size, step, the run
config and the training command) and a copy of the run's ``metrics.jsonl``. DIR then works
with ``pretrained.load(name, DIR)`` and every command of that system. An existing DIR is
never replaced unless ``--overwrite`` is given (and then only once the new export is
complete).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m train.export",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="training run directory (checkpoints/)")
  parser.add_argument("--out", required=True, help="export directory to create")
  parser.add_argument("--model", choices=("biofacenet", "face_vae", "sdps", "prnet"),
                      help="the system (default: read from the run's config)")
  parser.add_argument("--float32", action="store_true", help="store float32 instead of float16")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing export at --out")
  parser.add_argument("--command", default="", help="the training command, recorded in meta.json")
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  out = pathlib.Path(args.out)
  if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
    print(f"error: {out} already exists; choose another --out or add --overwrite",
          file=sys.stderr)
    return 2
  from bioface_jax.pretrained import store, systems  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(args.workdir)
  try:
    name = args.model
    if name is None:
      if not (workdir / "checkpoints").is_dir():
        raise FileNotFoundError(f"{workdir} is not a training run (no checkpoints/)")
      from bioface_jax.train_lib import checkpoint  # pylint: disable=g-import-not-at-top
      with store._quiet_absl(), checkpoint.Checkpointer(  # pylint: disable=protected-access
          workdir / "checkpoints", async_save=False, read_only=True) as ckpt:
        steps = ckpt.all_steps()
        if not steps:
          raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
        name = systems.identify_run(ckpt.read_meta(steps[-1]).get("config", {}))
    source = store.read(name, workdir)
    if source.kind != "run":
      raise ValueError(f"{workdir} is already an export, not a training run")
    log = workdir / "metrics.jsonl"
    store.save(out, name, source.variables, source.model_config,
               input_size=source.input_size, step=source.step, run_config=source.run_config,
               source=f"train.export of {workdir}",
               extra_meta={"training_command": args.command},
               extra_files={"metrics.jsonl": str(log)} if log.is_file() else {},
               overwrite=args.overwrite, dtype=np.float32 if args.float32 else np.float16)
  except (FileNotFoundError, FileExistsError, ValueError, OSError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
  print(f"exported {name} step {source.step} of {workdir} to {out} ({size:.1f} MB)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
