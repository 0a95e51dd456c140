"""Test set-up: 4 fake CPU devices so every run exercises data parallelism.

The environment must be set before JAX is imported anywhere, hence at the top of conftest.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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

