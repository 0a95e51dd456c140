"""Where the public data tables live, resolved in exactly one place.

The spectral tables and face geometry are public data that is never committed to this
repository. They are read from an *assets directory* laid out like ``../shared``
(``spectra/``, ``faces/``):

1. the ``BIOFACE_ASSETS`` environment variable, if set;
2. otherwise ``../shared`` beside the checkout (the directory that holds ``bioface_jax/``).
"""

from __future__ import annotations

import os
import pathlib

ENV_VAR = "BIOFACE_ASSETS"

_CHECKOUT = pathlib.Path(__file__).resolve().parent.parent


class MissingAssetError(FileNotFoundError):
  """An asset file is not in the assets directory."""


def assets_dir() -> pathlib.Path:
  """Returns the assets directory (it may not exist; `asset_path` checks files)."""
  env = os.environ.get(ENV_VAR)
  if env:
    return pathlib.Path(env).expanduser()
  return _CHECKOUT.parent / "shared"


def asset_path(relative: str | os.PathLike) -> pathlib.Path:
  """Returns the path of one asset file, e.g. ``asset_path("spectra/illF.npz")``.

  Raises:
    MissingAssetError: naming the file, the directory searched and how to provide it.
  """
  root = assets_dir()
  path = root / relative
  if not path.is_file():
    origin = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "../shared beside the checkout"
    raise MissingAssetError(
        f"asset file {relative!s} not found at {path} (assets directory {root}, from {origin}). "
        f"The spectral tables and face geometry are not shipped in the repository: point "
        f"{ENV_VAR} at a directory laid out like ../shared (spectra/*.npz, faces/prnet_uv/*) "
        f"or place that directory as 'shared' beside the checkout.")
  return path
