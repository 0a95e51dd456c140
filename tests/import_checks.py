"""Shared by the weight-import tests: the tolerance rule and running the command.

Each import test builds the authors' network from its published definition with random weights
(random BatchNorm statistics too), saves it exactly as the authors' code does, imports it with
``python -m train.import_weights`` and compares `pretrained.load(...).apply` with the authors'
framework on the same input. Tolerance (`assert_matches`): the authors' framework is run in
float32 and float64; its own float32 deviation from float64 on this input measures the float32
rounding of the network, and ours may deviate from the float64 result by at most 8 times that
plus 8 ulps of the output scale (another summation order rounds differently but by the same
order of magnitude; a wrong layout, epsilon or statistic is off by orders of magnitude more, as
the negative control in test_import_sdps.py shows).

The frameworks are optional (``pip install 'bioface_jax[weights]'``: TensorFlow, PyTorch; the
face VAE's Keras 2 ``.h5`` also needs ``pip install --no-deps tf-keras==2.21.0``); each test is
skipped with a message when its framework is absent.
"""

from __future__ import annotations

import numpy as np

from train import import_weights

EPS32 = float(np.finfo(np.float32).eps)
SKIP = "needs {} (the 'weights' extra: pip install 'bioface_jax[weights]')"


def assert_matches(ours, theirs32, theirs64, what, mask=None):
  """|ours - theirs64| <= 8 |theirs32 - theirs64|_max + 8 eps32 |theirs64|_max (docstring)."""
  ours, theirs32, theirs64 = (np.asarray(a, np.float64) for a in (ours, theirs32, theirs64))
  assert ours.shape == theirs64.shape, (what, ours.shape, theirs64.shape)
  sel = np.broadcast_to(mask, ours.shape) if mask is not None else np.ones(ours.shape, bool)
  noise = np.abs(theirs32 - theirs64)[sel].max()
  tol = 8 * noise + 8 * EPS32 * np.abs(theirs64)[sel].max()
  err = np.abs(ours - theirs64)[sel].max()
  assert err <= tol, f"{what}: max |ours - authors'| {err:.3g} > tolerance {tol:.3g} " \
                     f"(authors' float32 rounding {noise:.3g})"
  return err, tol


def run_import(*args) -> int:
  """Runs ``python -m train.import_weights ARGS`` in-process; its exit status."""
  return import_weights.main([str(a) for a in args])
