"""The assets manifest, `python -m data.check_assets` and the rule that no asset is committed."""

from __future__ import annotations

import hashlib
import io
import pathlib
import subprocess

import numpy as np
from PIL import Image

from bioface_jax import assets
from data import check_assets

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_manifest_matches_the_assets_directory():
  """Every documented checksum and array shape is the one of the files the tests run on."""
  results = assets.check_assets()
  assert [(r.entry.path, r.status) for r in results if r.status != "ok"] == []
  for entry in assets.MANIFEST:
    if entry.content:
      assert assets.describe(assets.assets_dir() / entry.path) == dict(entry.content), entry.path


def _fake_assets(root: pathlib.Path) -> tuple[assets.AssetFile, ...]:
  """Writes three small files and returns a manifest describing them (one optional)."""
  (root / "spectra").mkdir(parents=True)
  np.savez(root / "spectra" / "t.npz", table=np.arange(6.0).reshape(2, 3), names=np.array(["a"]))
  Image.fromarray(np.zeros((4, 5), np.uint8)).save(root / "mask.png")
  (root / "notes.txt").write_text("1 2\n3 4\n")

  def entry(path, read_by):
    full = root / path
    digest = hashlib.sha256(full.read_bytes()).hexdigest()
    return assets.AssetFile(path, digest, full.stat().st_size, read_by, assets.describe(full))

  return (entry("spectra/t.npz", "m.spectra"), entry("mask.png", "m.uv"),
          entry("notes.txt", ""))


def _run(directory) -> tuple[int, str]:
  out = io.StringIO()
  return check_assets.main([str(directory)], stream=out), out.getvalue()


def test_check_names_missing_and_different_files(tmp_path, monkeypatch):
  manifest = _fake_assets(tmp_path)
  assert dict(manifest[0].content) == {"table": ((2, 3), "float64"), "names": ((1,), "<U1")}
  assert dict(manifest[1].content) == {"": ((5, 4), "L")}
  monkeypatch.setattr(assets, "MANIFEST", manifest)
  code, text = _run(tmp_path)
  assert code == 0 and "all 3 files are present" in text
  (tmp_path / "notes.txt").unlink()  # not read by the project: reported, not a failure
  code, text = _run(tmp_path)
  assert code == 0 and "MISSING    notes.txt (not read by the project)" in text
  # Same arrays, other bytes (a different NumPy or zip layout): different, content named same.
  np.savez_compressed(tmp_path / "spectra" / "t.npz", table=np.arange(6.0).reshape(2, 3),
                      names=np.array(["a"]))
  code, text = _run(tmp_path)
  assert code == 1 and "DIFFERENT  spectra/t.npz (read by m.spectra)" in text
  assert "same array names, shapes and dtypes" in text
  np.savez(tmp_path / "spectra" / "t.npz", table=np.zeros((2, 4)), names=np.array(["a"]))
  code, text = _run(tmp_path)
  assert code == 1 and "array 'table' is ((2, 4), 'float64'), expected ((2, 3), 'float64')" in text
  (tmp_path / "mask.png").unlink()
  code, text = _run(tmp_path)
  assert code == 1 and "MISSING    mask.png (read by m.uv)" in text
  assert "2 of 3 files missing or different" in text
  (tmp_path / "mask.png").write_bytes(b"not a png")
  code, text = _run(tmp_path)
  assert "mask.png: cannot be read as a .png file" in text


def test_check_refuses_a_directory_that_does_not_exist(tmp_path, capsys):
  assert _run(tmp_path / "nowhere")[0] == 2
  assert "nowhere" in capsys.readouterr().err


def test_docs_list_every_file_and_checksum():
  doc = (ROOT / "docs" / "assets.md").read_text()
  for entry in assets.MANIFEST:
    assert f"| `{entry.path}` | {entry.size:,} |" in doc and entry.sha256 in doc, entry.path


def test_no_asset_file_is_committed():
  """The repository never holds a copy of an asset (compared by content, not by name)."""
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
  by_size = {}
  for entry in assets.MANIFEST:
    by_size.setdefault(entry.size, set()).add(entry.sha256)
  for name in filter(None, tracked):
    path = ROOT / name
    if path.is_file() and path.stat().st_size in by_size:
      assert assets.sha256(path) not in by_size[path.stat().st_size], name

