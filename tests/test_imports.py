"""Every command module imports cleanly beside every other (one pytest process imports them all).

Command-line flags are defined only when a module runs as a program (`define_flags()` under
`__main__`); two modules defining the same absl flag at import time break test collection.
"""
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = sorted(f"{pkg}.{p.stem}" for pkg in ("eval", "train")
                 for p in (ROOT / pkg).glob("*.py") if p.stem != "__init__")


def test_all_command_modules_import_together():
  failures = {}
  for name in MODULES:
    try:
      importlib.import_module(name)
    except ImportError as e:  # optional extras (torch, tensorflow) may be absent
      if "No module named" not in str(e):
        failures[name] = repr(e)
    except Exception as e:  # pylint: disable=broad-except
      failures[name] = repr(e)
  assert not failures, failures
