"""Reads and writes MATLAB `.mat` files (v5/v6/v7 and v7.3) as plain Python values.

The ISET scene reader/writer (`data.iset`) needs both MAT-file generations: ISET's own files
are mostly v5, but large scenes (the Hyspex faces) are v7.3, which is HDF5 in MATLAB's layout.
This module hides the difference: `load_mat` returns the variables with structs as dicts, char
arrays as str, cell arrays as lists and numeric arrays squeezed; `save_mat` writes a dict of the
same kinds of value. It knows nothing about ISET.

MATLAB v5/v6/v7 files are read and written with scipy. For v7.3, MATLAB stores arrays
column-major (dataset dims reversed), structs as groups (field order in `MATLAB_fields`), char as
uint16 code points, empty arrays as their dims with `MATLAB_empty` = 1, cells as object
references, and the file starts with a 512-byte MAT header in the HDF5 userblock.
"""

from __future__ import annotations

import pathlib
import time
from typing import Mapping

import h5py
import numpy as np
import scipy.io

# What `load_mat` raises for a file that is not a readable MAT-file (scipy and h5py errors;
# scipy's MatReadError, e.g. for an empty file, derives from Exception alone).
READ_ERRORS = (OSError, ValueError, TypeError, KeyError, NotImplementedError,
               scipy.io.matlab.MatReadError)


def _attr_str(value) -> str:
  value = value.decode("ascii") if isinstance(value, (bytes, np.bytes_)) else value
  return str(value)


def _h5_value(f: h5py.File, obj):
  """One MATLAB v7.3 object -> Python (dict for structs, str for char, squeezed ndarray)."""
  cls = _attr_str(obj.attrs.get("MATLAB_class", ""))
  if isinstance(obj, h5py.Group):
    return {k: _h5_value(f, obj[k]) for k in obj if not k.startswith("#")}
  if int(np.asarray(obj.attrs.get("MATLAB_empty", 0)).ravel()[0]):
    return "" if cls == "char" else np.zeros((0,))
  data = np.asarray(obj[()]).T  # HDF5 dims are MATLAB's reversed.
  if cls == "char":
    rows = ["".join(map(chr, row)) for row in np.atleast_2d(data)]
    return "\n".join(rows)
  if cls == "cell":
    return [_h5_value(f, f[ref]) for ref in data.ravel(order="F")]
  if data.dtype.names:  # complex is stored as a compound (real, imag)
    raise TypeError("complex arrays are not valid scene data")
  return np.squeeze(data.astype(bool) if cls == "logical" else data)


def load_mat(path: pathlib.Path) -> tuple[dict, str]:
  """Reads every variable of a MAT-file.

  Args:
    path: an existing `.mat` file, v5/v6/v7 or v7.3.

  Returns:
    ({variable: value}, "v5" | "v7.3") with structs as dicts, arrays squeezed.

  Raises:
    One of `READ_ERRORS` (from scipy or h5py) when the file is not a readable MAT-file.
  """
  if h5py.is_hdf5(path):
    with h5py.File(path, "r") as f:
      return {k: _h5_value(f, f[k]) for k in f if not k.startswith("#")}, "v7.3"
  raw = scipy.io.loadmat(path, simplify_cells=True)
  return {k: v for k, v in raw.items() if not k.startswith("__")}, "v5"


def _h5_write(parent: h5py.Group, key: str, value) -> None:
  """Writes one variable in MATLAB v7.3's HDF5 layout."""
  if isinstance(value, Mapping):
    group = parent.create_group(key)
    group.attrs["MATLAB_class"] = np.bytes_("struct")
    names = np.empty(len(value), dtype=object)
    names[:] = [np.frombuffer(k.encode("ascii"), dtype="S1") for k in value]
    group.attrs.create("MATLAB_fields", names, dtype=h5py.vlen_dtype(np.dtype("S1")))
    for k, v in value.items():
      _h5_write(group, k, v)
  elif isinstance(value, str):
    if value:  # a 1 x N char row -> HDF5 dims (N, 1)
      ds = parent.create_dataset(key, data=np.array([[ord(c)] for c in value], np.uint16))
    else:  # MATLAB stores an empty array's dims with MATLAB_empty = 1
      ds = parent.create_dataset(key, data=np.zeros(2, np.uint64))
      ds.attrs["MATLAB_empty"] = np.uint8(1)
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)
  else:
    arr = np.asarray(value, np.float64)
    arr = arr.reshape(1, -1) if arr.ndim < 2 else arr  # scalars 1x1, vectors 1xN rows
    ds = parent.create_dataset(key, data=np.ascontiguousarray(arr.T))
    ds.attrs["MATLAB_class"] = np.bytes_("double")


def save_v73(path: pathlib.Path, variables: Mapping) -> None:
  """Writes a MATLAB 7.3 MAT-file: HDF5 with MATLAB's 512-byte userblock header.

  Args:
    path: output file.
    variables: {name: value}; values are dicts (structs), str (char) or numeric (stored as
      double). MATLAB-specific details beyond these (e.g. chunking, `#refs#` for cells) are not
      reproduced.
  """
  with h5py.File(path, "w", userblock_size=512) as f:
    for k, v in variables.items():
      _h5_write(f, k, v)
  text = ("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
          f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .")
  header = text.encode("ascii").ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
  with open(path, "r+b") as fh:
    fh.write(header.ljust(512, b"\x00"))


def save_mat(path: pathlib.Path, variables: Mapping, version: str = "v5") -> None:
  """Writes a MAT-file.

  Args:
    path: output file (no extension is appended).
    variables: {name: value} (dicts for structs, str, numeric arrays).
    version: "v5" (scipy.io.savemat, compressed, 1-D arrays as rows) or "v7.3" (`save_v73`).

  Raises:
    ValueError: an unknown `version`.
  """
  if version == "v5":
    scipy.io.savemat(path, variables, appendmat=False, format="5", oned_as="row",
                     do_compression=True)
  elif version == "v7.3":
    save_v73(path, variables)
  else:
    raise ValueError(f"version must be 'v5' or 'v7.3', got {version!r}")
