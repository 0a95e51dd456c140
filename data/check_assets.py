"""Check an assets directory (spectral tables, PRNet UV face geometry) against the documented files.

    python -m data.check_assets            # the directory the library reads (BIOFACE_ASSETS,
                                           # else ../shared beside the checkout)
    python -m data.check_assets /path/to/assets

Every file of `bioface_jax.assets.MANIFEST` is looked up in DIR and its SHA-256 compared with
the documented one (docs/assets.md says where each file comes from); a file whose bytes
differ is also opened to say whether its arrays still have the documented names, shapes and
dtypes. One line per file, then a summary. Exit status 0 when every file the project reads is
present and identical, 1 when one is missing or a file differs, 2 when DIR is not a
directory. Files the project does not read (e.g. the camera database text) are reported but
never make the check fail by being absent. Nothing is copied or written.
"""

from __future__ import annotations

import argparse
import os
import sys

from bioface_jax import assets


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m data.check_assets",
                                   description=__doc__.split("\n\n", 2)[2],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("directory", nargs="?", default=None,
                      help="assets directory (default: as the library resolves it: "
                           f"${assets.ENV_VAR}, else ../shared beside the checkout)")
  return parser


def main(argv=None, stream=sys.stdout) -> int:
  args = build_parser().parse_args(argv)
  root = assets.assets_dir() if args.directory is None else args.directory
  origin = ("given" if args.directory is not None else
            f"${assets.ENV_VAR}" if os.environ.get(assets.ENV_VAR) else
            "../shared beside the checkout")
  if not os.path.isdir(root):
    print(f"error: assets directory {root} ({origin}) does not exist or is not a directory; "
          "see docs/assets.md for where the files come from", file=sys.stderr)
    return 2
  print(f"assets directory: {root} ({origin})", file=stream)
  failed, notes = 0, 0
  for result in assets.check_assets(root):
    entry = result.entry
    used = f"read by {entry.read_by}" if entry.required else "not read by the project"
    if result.status == "ok":
      print(f"  ok         {entry.path}", file=stream)
    elif result.status == "missing":
      print(f"  MISSING    {entry.path} ({used})", file=stream)
      failed += entry.required
      notes += not entry.required
    else:
      print(f"  DIFFERENT  {entry.path} ({used}): {result.detail}", file=stream)
      failed += 1
  total = len(assets.MANIFEST)
  if failed:
    print(f"{failed} of {total} files missing or different: see docs/assets.md for the "
          "sources and checksums", file=stream)
    return 1
  if notes:
    print(f"the {total - notes} files the project reads are present and match their "
          f"checksums ({notes} file(s) it does not read are absent)", file=stream)
  else:
    print(f"all {total} files are present and match their checksums", file=stream)
  return 0


if __name__ == "__main__":
  sys.exit(main())
