"""Test set-up: 4 fake CPU devices so every run exercises data parallelism.

The environment must be set before JAX is imported anywhere, hence at the top of conftest.

Compilation cache: XLA compilation is most of the suite's time, and many tests compile the same
programs again (train then resume, the same smoke config in several files, the commands the tests
start as subprocesses). A persistent JAX compilation cache in a fresh temporary directory of this
session (never the user's own cache: any JAX_COMPILATION_CACHE_DIR of the caller is overridden)
lets each program compile once; subprocesses inherit it through the environment. The directory is
removed when the session ends; pytest-xdist workers share their controller's. A worker may read
an entry another is still writing: JAX then warns and compiles (the warning is ignored in
pyproject.toml). BIOFACE_TEST_XLA_CACHE=0 turns the cache off.

Compiler effort: the tests compile hundreds of programs and run each a few times, so XLA's
LLVM back end runs at optimisation level 0 (`FAST_COMPILE_XLA_FLAGS`): a smoke BioFaceNet
training run then costs 46 s of CPU instead of 80 s. The HLO program (fusion, what is computed)
is the same; the machine code may round differently (vectorisation, FMA contraction): two steps
of that run end with losses that differ by up to 5e-7 relative from the default level's, float32
rounding. Every tolerance in the suite comes from float32 arithmetic, and bitwise comparisons are
between runs at the same level. Subprocesses that set their own XLA_FLAGS take it from
`xla_flags`.

Order: the tests marked `slow` (long end-to-end runs) are collected first, so that under
pytest-xdist (`-n auto`, as .ci/run runs the suite) they start early instead of leaving one worker
busy at the end while the other idles.
"""

import atexit
import os
import shutil
import tempfile

FAST_COMPILE_XLA_FLAGS = "--xla_backend_optimization_level=0"


def xla_flags(device_count: int) -> str:
  """XLA_FLAGS for a test subprocess: `device_count` fake CPU devices, fast compilation."""
  return f"{FAST_COMPILE_XLA_FLAGS} --xla_force_host_platform_device_count={device_count}"


os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(4)).strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("BIOFACE_TEST_XLA_CACHE", "1") != "0":
  if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("BIOFACE_TEST_XLA_CACHE_DIR"):
    _XLA_CACHE = os.environ["BIOFACE_TEST_XLA_CACHE_DIR"]  # pytest-xdist: the controller's.
  else:
    _XLA_CACHE = tempfile.mkdtemp(prefix="bioface_jax_tests_xla_cache_")
    atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
    os.environ["BIOFACE_TEST_XLA_CACHE_DIR"] = _XLA_CACHE
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
else:
  os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # Not the user's cache either.

import pathlib  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def spectra():
  """The spectral tables from the assets directory, as a float32 `Spectra`."""
  from bioface_jax import physics
  return physics.load_spectra()


@pytest.fixture(scope="session")
def lut(spectra):
  from bioface_jax import physics
  return physics.skin_lut(spectra)



def pytest_collection_modifyitems(config, items):
  """Moves the tests marked `slow` to the front (stable: otherwise collection order)."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
