"""Where the public data tables live, resolved in exactly one place.

The spectral tables and face geometry are public data that is never committed to this
repository. They are read from an *assets directory* laid out like ``../shared``
(``spectra/``, ``faces/``):

1. the ``BIOFACE_ASSETS`` environment variable, if set;
2. otherwise ``../shared`` beside the checkout (the directory that holds ``bioface_jax/``).

`MANIFEST` lists every file of that directory with its SHA-256, size and array shapes;
`check_assets` compares a directory with it (``python -m data.check_assets [DIR]``; where each
table comes from: docs/assets.md). Nothing here copies an asset anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Mapping

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


@dataclasses.dataclass(frozen=True)
class AssetFile:
  """One file of the assets directory as documented (docs/assets.md).

  Attributes:
    path: relative to the assets directory.
    sha256: hex digest of the documented file.
    size: bytes.
    read_by: the module that reads it ("" = not read by the project: checked, not required).
    content: what `describe` finds in it: ``{array: (shape, dtype)}`` for .npz, ``{"": (shape,
      dtype)}`` for .npy and numeric .txt tables, ``{"": ((width, height), mode)}`` for .png.
  """
  path: str
  sha256: str
  size: int
  read_by: str
  content: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

  @property
  def required(self) -> bool:
    return bool(self.read_by)


_SPECTRA, _UV = "bioface_jax.physics.spectra", "faces/prnet_uv/"
_W = ((33,), "float64")
MANIFEST: tuple[AssetFile, ...] = (
    AssetFile("spectra/Tmatrix.npz",
              "06a3d8eb6d06a217996aaacf031c0454e382c508de0ecfd1bdc33a7e2256d0b4", 568338, _SPECTRA,
              {"Tmatrix": ((128, 128, 9), "float64"), "b_grid": ((128,), "float64"),
               "row_sum_targets": ((3,), "float64")}),
    AssetFile("spectra/XYZspace.npz",
              "444437659df7ccaffbf381b9ffc2106c027f8a7e31b0a8990227d6dba56c89d9", 1211, _SPECTRA,
              {"xyz_cmf": ((33, 3), "float64"), "wavelength_nm": _W}),
    AssetFile("spectra/deoxy_hemo_ext_coeff.npz",
              "6ddb14634dba08235daffbbaf14b5d6db680426ef1929165df12d567ae6617a3", 710, _SPECTRA,
              {"deoxy_hemo_ext_coeff": _W, "wavelength_nm": _W}),
    AssetFile("spectra/eumelanin_ext.npz",
              "0cc44128856d5357c485220c38983126d2811e1f7b1bc8e219a0e613bb88d985", 795, _SPECTRA,
              {"eumelanin_ext": _W, "wavelength_nm": _W}),
    AssetFile("spectra/illF.npz",
              "abe7fcb60a61b79e4c6c9220e03c93b0bd57092cde05e6a8121867e216e58a04", 2031, _SPECTRA,
              {"illF": ((33, 12), "float64"), "wavelength_nm": _W, "names": ((12,), "<U4")}),
    AssetFile("spectra/illumA.npz",
              "9a18e2514c2bca51fabfe68935b2bd9ffdecd1a2c3bf57a98fe56984b523b1d7", 680, _SPECTRA,
              {"illumA": _W, "wavelength_nm": _W}),
    AssetFile("spectra/illumDmeasured.npz",
              "377f2f1a21b77438a7a409270f6e66bf67838e31a434685b53cc711c209c91b8", 3613, _SPECTRA,
              {"illumD": ((22, 33), "float64"), "cct_K": ((22,), "float64"),
               "wavelength_nm": _W}),
    AssetFile("spectra/oxy_hemo_ext_coeff.npz",
              "f15ee85b3cd3e75287ca7e9bdcffa6da4f17a572885d69ea5f44a95bf01b058a", 685, _SPECTRA,
              {"oxy_hemo_ext_coeff": _W, "wavelength_nm": _W}),
    AssetFile("spectra/pheomelanin_ext.npz",
              "cf3cdcf21b9718ed81916f36d7611c73a8cdbb88b1239511df40896a79e2879c", 803, _SPECTRA,
              {"pheomelanin_ext": _W, "wavelength_nm": _W}),
    AssetFile("spectra/rgbCMF.npz",
              "2bfcf6d6409c2236f40fedfce0e77c5432d9e16656308e055cbf7977519af9f8", 43055, _SPECTRA,
              {"red": ((33, 28), "float64"), "green": ((33, 28), "float64"),
               "blue": ((33, 28), "float64"), "rgbCMF": ((3, 33, 28), "float64"),
               "camera_names": ((28,), "<U29"), "wavelength_nm": _W}),
    AssetFile("spectra/camspec_database.txt",
              "203e79674066b246a5f7fd47303e81c3d833b8d8195d1acc0921158b5b721a37", 24472, ""),
    AssetFile(_UV + "canonical_vertices.npy",
              "724ceae7e9be10a86670159f3cdc4a4abd5bd8d3c29a475c17115b6ada55112c", 1052888,
              "data.synth.geometry", {"": ((43867, 3), "float64")}),
    AssetFile(_UV + "face_ind.txt",
              "86a7ce5131d3c827c368fd3c1236ded6b5d80802f1abd5cf98940ba0595ab231", 1096675,
              "data.synth.geometry", {"": ((43867,), "float64")}),
    AssetFile(_UV + "uv_kpt_ind.txt",
              "158f329a0e5518b7553195cf2373f91b9ada697b6071cdafb52b573d488a1c60", 3400,
              "bioface_jax.face3d.uv", {"": ((2, 68), "float64")}),
    AssetFile(_UV + "uv_face_mask.png",
              "66e0c5e555619d708202639058adbeece545b67fef52a22eabd46cc71494a6c6", 859,
              "bioface_jax.face3d.uv", {"": ((256, 256), "L")}),
    AssetFile(_UV + "uv_weight_mask.png",
              "a97882fbac6920ad08c6e314ea327db2b0a7d7fbf6a6a56be5e696b66fde0ae7", 2148,
              "bioface_jax.face3d.uv", {"": ((256, 256), "L")}),
    AssetFile(_UV + "uv_kpt_mask.png",
              "befe84bcf0c61c9db13c94725d8bc71e4649c676230dddfb840fa0d801aadfb1", 594, "",
              {"": ((256, 256), "L")}),
    AssetFile(_UV + "uv_face.png",
              "5ad30efe3723da2e26d928c517291605b9520a6ff0498e40140ce4f4cf842d2c", 47264, "",
              {"": ((256, 256), "RGB")}),
    AssetFile(_UV + "uv_face_eyes.png",
              "46398c6222361c49c348dfb4ce9750dfe19a4a9c86540577190471fb1341f14c", 56016, "",
              {"": ((256, 256), "RGBA")}),
)


def sha256(path: str | os.PathLike) -> str:
  """Hex SHA-256 of a file (read in 1 MiB chunks)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return digest.hexdigest()


def _shape_dtype(array) -> tuple[tuple[int, ...], str]:
  """(shape, dtype name), with the byte order and width for text ("<U4")."""
  dtype = array.dtype
  return tuple(array.shape), dtype.str if dtype.kind in "US" else dtype.name


def describe(path: str | os.PathLike) -> dict[str, tuple]:
  """What a file holds, in `AssetFile.content`'s terms ({} for other kinds of file).

  Raises:
    ValueError: the file cannot be read as its extension says (the message names it).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  try:
    if suffix == ".npz":
      with np.load(path, allow_pickle=False) as data:
        return {k: _shape_dtype(data[k]) for k in data.files}
    if suffix == ".npy":
      return {"": _shape_dtype(np.load(path, allow_pickle=False))}
    if suffix == ".txt":
      return {"": _shape_dtype(np.loadtxt(path))}
    if suffix == ".png":
      from PIL import Image  # pylint: disable=g-import-not-at-top
      with Image.open(path) as img:
        return {"": (tuple(img.size), img.mode)}
  except Exception as error:  # noqa: BLE001 - numpy, zipfile and PIL raise many types
    raise ValueError(f"{path}: cannot be read as a {suffix} file ({error})") from error
  return {}


def _content_problems(entry: AssetFile, found: Mapping[str, tuple]) -> list[str]:
  out = []
  for key, want in entry.content.items():
    name = f"array {key!r}" if key else "the content"
    if key not in found:
      out.append(f"{name} is missing (has {sorted(found)})")
    elif tuple(found[key]) != tuple(want):
      out.append(f"{name} is {found[key]}, expected {want}")
  return out


@dataclasses.dataclass(frozen=True)
class AssetStatus:
  """The result of checking one `MANIFEST` file: status "ok", "missing" or "different"."""
  entry: AssetFile
  status: str
  detail: str = ""


def check_assets(directory: str | os.PathLike | None = None) -> list[AssetStatus]:
  """Compares an assets directory (default: `assets_dir()`) with `MANIFEST`, file by file.

  A file is "different" when its SHA-256 differs; the detail then also says whether its
  arrays still have the documented names, shapes and dtypes (e.g. a table re-saved with
  another NumPy differs in bytes only) or which do not.
  """
  root = pathlib.Path(assets_dir() if directory is None else directory).expanduser()
  out = []
  for entry in MANIFEST:
    path = root / entry.path
    if not path.is_file():
      out.append(AssetStatus(entry, "missing"))
      continue
    digest = sha256(path)
    if digest == entry.sha256:
      out.append(AssetStatus(entry, "ok"))
      continue
    try:
      problems = _content_problems(entry, describe(path)) if entry.content else []
    except ValueError as error:
      problems = [str(error)]
    detail = (f"SHA-256 {digest[:16]}..., expected {entry.sha256[:16]}... ({path.stat().st_size}"
              f" bytes, expected {entry.size}); ")
    detail += ("; ".join(problems) if problems else
               "same array names, shapes and dtypes (values not compared)")
    out.append(AssetStatus(entry, "different", detail))
  return out
