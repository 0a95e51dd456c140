"""Matching a source's named tensors to our variable tree: the name map, shapes and layouts.

Every importer describes the authors' network as a list of `Rule`s, one per tensor: the
authors' name, our variable path (``("params", "encoder", "Conv", "kernel")``) and a `Layout`
that turns their array into ours. `convert` checks the file's tensors against the rules (every
expected name present, no unexpected one, every shape what our network needs) and builds the
nested variables. The expected shapes come from our network (`jax.eval_shape` of its init), so
a rule can never disagree with the model it fills.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np


class WeightsError(ValueError):
  """A weights file does not hold the authors' network: names the tensors or file at fault."""


class MissingFrameworkError(ImportError):
  """Reading this source needs a framework that is not installed (names the pip extra)."""


EXTRA = "pip install 'bioface_jax[weights]'"


def need(module: str, framework: str, what: str):
  """Imports `module` or raises MissingFrameworkError naming the `weights` extra."""
  import importlib  # pylint: disable=g-import-not-at-top
  try:
    return importlib.import_module(module)
  except ImportError as error:
    raise MissingFrameworkError(
        f"reading {what} needs {framework}, which is not installed ({error}); install the "
        f"optional extra: {EXTRA}") from error


@dataclasses.dataclass(frozen=True)
class Layout:
  """How one tensor's array maps onto ours.

  Attributes:
    name: shown in the name map (e.g. "OIHW -> HWIO").
    to_ours: their array -> our array.
    their_shape: our shape -> the shape their tensor must have.
  """
  name: str
  to_ours: Callable[[np.ndarray], np.ndarray]
  their_shape: Callable[[tuple[int, ...]], tuple[int, ...]]


SAME = Layout("as stored", lambda a: a, lambda s: tuple(s))
# PyTorch Conv2d weight (out, in, kh, kw) -> Flax Conv kernel (kh, kw, in, out).
TORCH_CONV = Layout("OIHW -> HWIO", lambda a: np.transpose(a, (2, 3, 1, 0)),
                    lambda s: (s[3], s[2], s[0], s[1]))
# PyTorch ConvTranspose2d weight (in, out, kh, kw) -> Flax ConvTranspose(transpose_kernel=False)
# kernel (kh, kw, in, out) flipped in both spatial axes: Flax's default transposed conv is a
# dilated correlation with the kernel as given, PyTorch's the adjoint of a correlation.
TORCH_CONV_TRANSPOSE = Layout(
    "(in, out, kh, kw) -> (kh, kw, in, out), flipped in kh and kw",
    lambda a: np.ascontiguousarray(np.transpose(a, (2, 3, 0, 1))[::-1, ::-1]),
    lambda s: (s[2], s[3], s[0], s[1]))


@dataclasses.dataclass(frozen=True)
class Rule:
  """One tensor: the authors' name -> our variable path, and the layout conversion."""
  theirs: str
  ours: tuple[str, ...]
  layout: Layout = SAME


def _listing(names: list[str], limit: int = 6) -> str:
  shown = ", ".join(names[:limit])
  return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def convert(tensors: Mapping[str, np.ndarray], rules: Iterable[Rule],
            expected: Mapping[tuple[str, ...], tuple[int, ...]], where: str,
            ignored: Callable[[str], bool] = lambda name: False) -> dict[str, Any]:
  """Our nested float32 variables from the authors' named tensors.

  Args:
    tensors: the authors' name -> array, as read from the file(s).
    rules: the name map (one rule per tensor of the network).
    expected: our variable path -> shape (from the network's init); the rules must cover it.
    where: the file(s), for the messages.
    ignored: names that are not part of the network (optimiser slots, step counters).

  Raises:
    WeightsError: names missing from or unexpected in `tensors`, or of the wrong shape, each
      listed by name; a tensor that is not finite.
  """
  rules = list(rules)
  covered = {r.ours for r in rules}
  if covered != set(expected) or len(covered) != len(rules):  # a bug in a name map, not a file
    raise AssertionError(f"name map does not match the network: {sorted(covered ^ set(expected))}")
  names = {name for name in tensors if not ignored(name)}
  wanted = {r.theirs: r for r in rules}
  missing = sorted(set(wanted) - names)
  extra = sorted(names - set(wanted))
  wrong = []
  for name in sorted(set(wanted) & names):
    rule = wanted[name]
    want = tuple(rule.layout.their_shape(expected[rule.ours]))
    got = tuple(np.shape(tensors[name]))
    if got != want:
      wrong.append(f"{name} {got} (expected {want})")
  problems = []
  if missing:
    problems.append(f"{len(missing)} tensor(s) missing: {_listing(missing)}")
  if extra:
    problems.append(f"{len(extra)} unexpected tensor(s): {_listing(extra)}")
  if wrong:
    problems.append(f"{len(wrong)} of the wrong shape: {_listing(wrong, 4)}")
  if problems:
    raise WeightsError(f"{where} does not hold the expected network: {'; '.join(problems)}")
  flat = {}
  for rule in rules:
    array = np.asarray(rule.layout.to_ours(np.asarray(tensors[rule.theirs])), np.float32)
    if not np.all(np.isfinite(array)):
      raise WeightsError(f"{where}: tensor {rule.theirs} has non-finite values")
    flat[rule.ours] = array
  return unflatten(flat)


def unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def shapes(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tuple]:
  """Flattened path -> shape of a nested mapping of arrays / ShapeDtypeStructs."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(shapes(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = tuple(value.shape)
  return out


def table(rules: Iterable[Rule]) -> list[tuple[str, str, str]]:
  """(their name, our path, layout) rows of a name map, for documentation and --name-map."""
  return [(r.theirs, "/".join(r.ours), r.layout.name) for r in rules]
