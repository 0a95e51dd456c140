"""Export a trained BioFaceNet for inference: ``python -m train.export --workdir W --out DIR``.

Writes ``DIR/variables.msgpack`` (parameters and BatchNorm statistics, float16 by default),
``DIR/meta.json`` (step, config, the training command) and a copy of the run's
``metrics.jsonl`` (the training log). ``eval.predict``, ``eval.recovery`` and
``eval.iset_table1`` accept DIR wherever they accept a training run directory.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

import numpy as np


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m train.export",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="training run directory")
  parser.add_argument("--out", required=True, help="export directory")
  parser.add_argument("--float32", action="store_true", help="store float32 instead of float16")
  parser.add_argument("--command", default="", help="the training command, recorded in meta.json")
  args = parser.parse_args(argv)

  from bioface_jax.train_lib import export  # pylint: disable=g-import-not-at-top
  from train.biofacenet_task import restore_for_inference  # pylint: disable=g-import-not-at-top
  params, batch_stats, _, config, step = restore_for_inference(args.workdir)
  out = pathlib.Path(args.out)
  meta = dict(step=int(step), config=config.to_dict(), training_command=args.command,
              source_workdir=str(args.workdir))
  export.save_inference(out, dict(params=params, batch_stats=batch_stats), meta,
                        dtype=np.float32 if args.float32 else np.float16)
  log = pathlib.Path(args.workdir) / "metrics.jsonl"
  if log.is_file():
    shutil.copyfile(log, out / "metrics.jsonl")
  size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
  print(f"exported step {step} of {args.workdir} to {out} ({size:.1f} MB)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
