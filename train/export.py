"""Export a trained model for inference: ``python -m train.export --workdir W --out DIR``.

Works for every system (BioFaceNet, face VAE, SDPS-Net, PRNet; which one is read from the
run's config). Writes ``DIR/variables.msgpack`` (parameters and BatchNorm statistics, float16
by default: a few MB), ``DIR/meta.json`` (system, model config, input size, step, the run
config and the training command) and a copy of the run's ``metrics.jsonl``. DIR then works
with ``pretrained.load(name, DIR)`` and every command of that system. An existing DIR is
never replaced unless ``--overwrite`` is given (and then only once the new export is
complete).

PRNet ensembles: ``--workdir`` given several times (runs or single-network exports of the same
network, e.g. seeds) writes one export whose variables stack the runs' along a new leading axis and whose model
config says ``ensemble: N``; `bioface_jax.models.prnet.predict` then averages the N position
maps, and every PRNet command and ``pretrained.load("prnet", DIR)`` use it as one model.
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
  parser.add_argument("--workdir", required=True, action="append",
                      help="training run directory (checkpoints/); PRNet: repeat it to export "
                           "an ensemble of the runs (or of single-network exports)")
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
  from bioface_jax.pretrained import store  # pylint: disable=g-import-not-at-top
  workdirs = [pathlib.Path(w) for w in args.workdir]
  try:
    name = args.model or store.system_of(workdirs[0])
    sources = [store.read(name, w) for w in workdirs]
    if len(sources) == 1 and sources[0].kind != "run":
      raise ValueError(f"{workdirs[0]} is already an export, not a training run")
    source = sources[0] if len(sources) == 1 else _ensemble(name, workdirs, sources)
    log = workdirs[0] / "metrics.jsonl"
    store.save(out, name, source.variables, source.model_config,
               input_size=source.input_size, step=source.step, run_config=source.run_config,
               source=f"train.export of {' + '.join(map(str, workdirs))}",
               extra_meta={"training_command": args.command,
                           **({"members": [{"workdir": str(w), "step": s.step}
                                           for w, s in zip(workdirs, sources)]}
                              if len(sources) > 1 else {})},
               extra_files={"metrics.jsonl": str(log)} if log.is_file() else {},
               overwrite=args.overwrite, dtype=np.float32 if args.float32 else np.float16)
  except (FileNotFoundError, FileExistsError, ValueError, OSError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
  what = (f"step {source.step} of {workdirs[0]}" if len(workdirs) == 1 else
          f"an ensemble of {len(workdirs)} runs ({', '.join(map(str, workdirs))})")
  print(f"exported {name} {what} to {out} ({size:.1f} MB)")
  return 0


def _ensemble(name: str, workdirs, sources):
  """One PRNet source whose variables stack the runs' (`prnet.predict` averages them).

  Raises:
    ValueError: not PRNet, or the runs build different networks (config or variable shapes).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  if name != "prnet":
    raise ValueError(f"ensembles are for PRNet runs; {workdirs[0]} is a {name} run")
  for w, s in zip(workdirs, sources):
    if s.model_config.ensemble != 1:
      raise ValueError(f"{w} is already an ensemble; give its members' runs")
  first = sources[0]
  for w, s in zip(workdirs[1:], sources[1:]):
    if s.model_config != first.model_config or s.input_size != first.input_size:
      raise ValueError(f"{w} builds another network than {workdirs[0]} "
                       f"({s.model_config} against {first.model_config})")
    shapes = jax.tree.map(np.shape, s.variables)
    if shapes != jax.tree.map(np.shape, first.variables):
      raise ValueError(f"{w} holds variables of other shapes than {workdirs[0]}")
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *[s.variables for s in sources])
  return dataclasses.replace(first, variables=stacked, model_config=dataclasses.replace(
      first.model_config, ensemble=len(sources)))


if __name__ == "__main__":
  sys.exit(main())
