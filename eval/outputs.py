"""Where evaluation commands write when no ``--out`` is given.

A training run's evaluations go to ``WORKDIR/eval`` beside its checkpoints. A model inside the
installed package (the shipped models in ``bioface_jax/pretrained/shipped/``) must stay exactly
as shipped, so its evaluations go to ``./eval_<model directory name>`` in the working
directory instead. Every command that writes or reads these files asks `evaluation_dir`, so
``eval.recovery`` and ``eval.recovery_curve`` find each other's files either way.
"""

from __future__ import annotations

import pathlib

import bioface_jax

PACKAGE = pathlib.Path(bioface_jax.__file__).resolve().parent


def inside_package(path: str | pathlib.Path) -> bool:
  """Is `path` inside the installed `bioface_jax` package (e.g. a shipped model)?"""
  return pathlib.Path(path).resolve().is_relative_to(PACKAGE)


def evaluation_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  """``WORKDIR/eval``, or ``./eval_<name>`` when `workdir` is inside the package."""
  workdir = pathlib.Path(workdir)
  if inside_package(workdir):
    return pathlib.Path.cwd() / f"eval_{workdir.resolve().name}"
  return workdir / "eval"
