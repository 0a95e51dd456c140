"""What every photo command shares: flags, inputs, outputs, and one error boundary.

The four inference commands (`eval.predict`, `eval.vae_predict`, `eval.prnet_predict`,
`eval.sdps_predict`) and `eval.edit` are built from these pieces, so they behave alike:

* **flags**: ``--workdir DIR`` (optional; default the model shipped with the project),
  ``--out DIR`` (default ``./predictions``), ``--box L T R B`` (four space-separated integers,
  the face's box in photo pixels), ``--crop auto|face|center``; ``--help`` explains and exits 0;
  a flag error prints one line and exits 2;
* **inputs** (`expand_inputs`): files, folders (their image files, sorted) and glob patterns
  (quoted, so the shell leaves them to us; ``**`` searches sub-folders). An input that is
  missing or matches nothing is reported and skipped;
* **outputs**: each written file is named after its input's stem (`output_names`: made unique
  with ``_2``, ``_3``... when two inputs share a stem) and written under a temporary name, then
  renamed (`write_atomic`), so no half-written file is left. The output folder is checked
  (`check_output_dir`: not a file, writable, not inside the model's folder or the installed
  package) before any model is loaded or photo processed;
* **errors** (`run`, `run_batch`): a user mistake (missing or unreadable file, a bad box, a
  folder without images, an output path that is a file, a model of another system...) ends in
  one line on stderr naming it, never a traceback; in a batch a bad input is reported and
  skipped, the good ones are still written, and the exit status is 1 at the end (2 when
  nothing could be done at all).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import os
import pathlib
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff",
                  ".webp", ".gif")
DEFAULT_OUT = "predictions"
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
  """A mistake in what the user asked for; the command prints its message and exits 2."""


def user_errors() -> tuple[type[BaseException], ...]:
  """Exception types that are user mistakes (one line, no traceback), not bugs."""
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  return (UserError, ValueError, OSError, ImportError, detect.DetectorUnavailable)


def say_error(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split()) or type(error).__name__
  if isinstance(error, ImportError) and "No module named" in text:
    text += " (an optional dependency; see the README's install section)"
  return text


# ----------------------------------------------------------------------------- parser


class Parser(argparse.ArgumentParser):
  """argparse with one-line errors (exit 2) and the description shown as written."""

  def __init__(self, prog: str, description: str, epilog: str | None = None):
    super().__init__(prog=prog, description=description, epilog=epilog,
                     formatter_class=argparse.RawDescriptionHelpFormatter)

  def error(self, message):
    say_error(f"{self.prog}: {message} (see --help)")
    raise SystemExit(EXIT_USAGE)


def add_model_argument(parser: argparse.ArgumentParser, name: str) -> None:
  parser.add_argument(
      "--workdir", default=None, metavar="DIR",
      help=f"the {name} model: a training run directory (python -m train.{name} --workdir DIR),"
           " an inference export (python -m train.export) or imported authors' weights; "
           "default: the model shipped with the project")


def add_output_argument(parser: argparse.ArgumentParser, default: str = DEFAULT_OUT) -> None:
  parser.add_argument("--out", default=default, metavar="DIR",
                      help="output folder, created if needed (default: ./%(default)s)")


def add_crop_arguments(parser: argparse.ArgumentParser) -> None:
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  parser.add_argument(
      "--box", type=int, nargs=4, metavar=("L", "T", "R", "B"), default=None,
      help="the face's box in photo pixels as four space-separated integers LEFT TOP RIGHT "
           "BOTTOM (x to the right, y down, in the photo as a viewer shows it), e.g. --box 178 "
           "62 310 194; the command frames its own crop around it as its training faces are "
           "framed; the same box for every photo. Default: see --crop")
  parser.add_argument(
      "--crop", choices=framing.CROP_MODES, default="auto", metavar="auto|face|center",
      help="without --box: auto = the largest detected face, else the central square (with a "
           "message); face = a detected face or an error for that photo; center = the "
           "central square (default: %(default)s)")


# ----------------------------------------------------------------------------- inputs


def _is_image(path: pathlib.Path) -> bool:
  return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def expand_inputs(patterns: Iterable[str], *, folders: bool = False, recursive: bool = False,
                  log: Callable[[str], None] = say_error
                  ) -> tuple[list[pathlib.Path], int]:
  """The inputs named on the command line, in order, each once, and how many were bad.

  Args:
    patterns: files, folders or glob patterns.
    folders: the command takes folders (`eval.sdps_predict`): a folder is one input and a
      pattern matches folders; otherwise a folder stands for its image files (sorted by name;
      with `recursive`, also those in sub-folders) and a pattern matches image files.
    recursive: see `folders`.
    log: where problems are reported (one line each).

  Returns:
    (paths, problems): the inputs found; the number of patterns that named nothing usable
    (reported through `log`).
  """
  found, problems = [], 0
  for text in patterns:
    path = pathlib.Path(text).expanduser()
    matches: list[pathlib.Path]
    if path.exists():
      matches = [path]
    elif glob.has_magic(str(path)):
      matches = [pathlib.Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
      matches = [m for m in matches if (m.is_dir() if folders else _is_image(m))]
      if not matches:
        log(f"{text}: no {'folder' if folders else 'image file'} matches this pattern")
        problems += 1
        continue
    else:
      log(f"{text}: no such {'folder' if folders else 'file or folder'}")
      problems += 1
      continue
    for match in matches:
      if folders:
        if not match.is_dir():
          log(f"{match}: is a file; give a folder holding one object's or face's images")
          problems += 1
          continue
        found.append(match)
      elif match.is_dir():
        files = sorted(p for p in (match.rglob("*") if recursive else match.iterdir())
                       if _is_image(p))
        if not files:
          log(f"{match}: folder holds no image file ({', '.join(IMAGE_SUFFIXES)})")
          problems += 1
        found += files
      else:
        found.append(match)
  unique = list(dict.fromkeys(p.resolve() for p in found))
  by_resolved = {p.resolve(): p for p in reversed(found)}
  return [by_resolved[r] for r in unique], problems


def output_names(paths: Sequence[pathlib.Path]) -> list[str]:
  """One output name per input: its stem (a folder: its name), ``_2``, ``_3``... on repeats."""
  names, used = [], set()
  for path in paths:
    stem = path.name if path.is_dir() else path.stem
    name, k = stem, 1
    while name in used:
      k += 1
      name = f"{stem}_{k}"
    used.add(name)
    names.append(name)
  return names


# ----------------------------------------------------------------------------- outputs


def _inside(path: pathlib.Path, folder: pathlib.Path) -> bool:
  try:
    path.resolve().relative_to(folder.resolve())
    return True
  except ValueError:
    return False


def check_output_dir(out: str | os.PathLike, model_dir: str | os.PathLike | None = None
                     ) -> pathlib.Path:
  """The output folder, checked before any work (created when the first file is written).

  Raises:
    UserError: `out` is a file, lies inside the model's folder or the installed package, or
      cannot be written (probed with a temporary file in it or its nearest existing parent).
  """
  import bioface_jax  # pylint: disable=g-import-not-at-top
  out = pathlib.Path(out).expanduser()
  package = pathlib.Path(bioface_jax.__file__).resolve().parent
  if model_dir is not None and _inside(out, pathlib.Path(model_dir)):
    raise UserError(f"--out {out} lies inside the model folder {model_dir}; choose another "
                    "folder")
  if _inside(out, package):
    raise UserError(f"--out {out} lies inside the installed package {package}; choose another "
                    "folder")
  probe = out
  while not probe.exists():
    probe = probe.parent
  if not probe.is_dir():
    raise UserError(f"--out {out}: {probe} is a file, not a folder")
  try:
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as error:
    raise UserError(f"--out {out}: cannot write in {probe} ({error.strerror or error})") from error
  return out


def write_atomic(path: pathlib.Path, write: Callable[[object], None], binary: bool = True
                 ) -> pathlib.Path:
  """Writes a file through ``write(file object)`` under a temporary name, then renames it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
  try:
    with open(tmp, "wb" if binary else "w") as f:
      write(f)
    os.replace(tmp, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      tmp.unlink()
  return path


def save_npz(path: pathlib.Path, **arrays) -> pathlib.Path:
  return write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def save_npy(path: pathlib.Path, array) -> pathlib.Path:
  return write_atomic(path, lambda f: np.save(f, array))


def save_figure(path: pathlib.Path, figure, dpi: int = 100) -> pathlib.Path:
  return write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=dpi))


def save_png(path: pathlib.Path, image) -> pathlib.Path:
  """(H, W, 3) floats in [0, 1] or uint8 as an 8-bit PNG."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  a = np.asarray(image)
  if a.dtype != np.uint8:
    a = np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
  return write_atomic(path, lambda f: Image.fromarray(a).save(f, format="PNG"))


# ----------------------------------------------------------------------------- photos


@dataclasses.dataclass(frozen=True)
class Example:
  """A sample portrait that ships with an installed package (``--example``)."""
  name: str

  def __str__(self):
    return f"example {self.name}"


def load_example(name: str) -> np.ndarray:
  """(H, W, 3) uint8 RGB of a sample portrait (no download).

  Raises:
    ImportError: scikit-image (astronaut) is not installed (names the pip command).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if name == "grace_hopper":
    from matplotlib import cbook  # pylint: disable=g-import-not-at-top
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
      return np.asarray(image.convert("RGB"))
  try:
    import skimage.data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("--example astronaut needs scikit-image: pip install scikit-image"
                      ) from error
  return getattr(skimage.data, name)()


def read_source(source):
  """`read.Photo` of a file, or of an `Example`."""
  from bioface_jax.photo import read  # pylint: disable=g-import-not-at-top
  if isinstance(source, Example):
    pixels = load_example(source.name).astype(np.float32) / 255.0
    return read.Photo(pixels, pathlib.Path(source.name), (pixels.shape[1], pixels.shape[0]))
  return read.read_photo(source)


def say_notes(name: str, photo) -> None:
  for note in photo.notes:
    print(f"{name}: {note}")


def face_box(photo, args, name: str):
  """The face box (x, y, w, h) in photo pixels, from --box or the detector; None = the central
  square (a note is printed saying why)."""
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  if args.box is not None:
    return framing.face_box(photo.from_original(args.box), photo.width, photo.height)
  face, note = framing.largest_face(photo.pixels, args.crop)
  if note:
    print(f"{name}: {note}")
  return face


def photo_inputs(args, system: str) -> tuple[list[tuple[str, object]], pathlib.Path, int]:
  """(output name, source) per photo, the checked output folder and the inputs that failed.

  Inputs are expanded and their headers probed, and the output folder checked, before any
  model is loaded (`cli`); problems are reported as they are found.

  Raises:
    UserError: the output folder is unusable, or no input is usable at all.
  """
  from bioface_jax.photo import read  # pylint: disable=g-import-not-at-top
  paths, problems = expand_inputs(args.images)
  good = []
  for path in paths:
    try:
      read.probe(path)
      good.append(path)
    except (ValueError, OSError) as error:
      say_error(str(error))
      problems += 1
  if getattr(args, "mask", None):
    if len(good) + bool(getattr(args, "example", None)) != 1:
      raise UserError("--mask applies to a single photo")
    read.probe(args.mask)
  out = check_output_dir(args.out, model_dir(system, args.workdir))
  example = getattr(args, "example", None)
  sources = good + ([Example(example)] if example else [])
  if not sources:
    raise UserError("no photo to process (see the messages above)")
  names = output_names([pathlib.Path(s.name) if isinstance(s, Example) else s
                        for s in sources])
  return list(zip(names, sources)), out, problems


# ----------------------------------------------------------------------------- running


def _show_warning(message, category, filename, lineno, file=None, line=None):
  del filename, lineno, line
  print(f"warning: {category.__name__}: {' '.join(str(message).split())}",
        file=file or sys.stderr, flush=True)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
  """Calls ``main(argv)``; a user mistake becomes one line on stderr and exit status 2."""
  try:
    with warnings.catch_warnings():  # warnings (e.g. a damaged checkpoint skipped): one line
      warnings.showwarning = _show_warning
      return main(argv)
  except user_errors() as error:
    say_error(_one_line(error))
    return EXIT_USAGE
  except KeyboardInterrupt:
    say_error("interrupted")
    return 130


def run_batch(items: Sequence[tuple[str, object]], work: Callable[[str, object], str],
              problems: int = 0) -> int:
  """Runs ``work(name, item)`` on every item; a user mistake skips that item with one line.

  ``work`` returns a line saying what it wrote (printed). Returns 0 when nothing failed, 1 when
  an item failed or `problems` (inputs already found bad) is not 0.
  """
  failed = problems
  for name, item in items:
    try:
      print(work(name, item), flush=True)
    except user_errors() as error:
      text = _one_line(error)
      label = str(item)
      say_error(text if label in text else f"{label}: {text}")
      failed += 1
  if failed:
    say_error(f"{failed} of {len(items) + problems} inputs failed (see above); the other "
              f"{len(items) + problems - failed} were written")
  return EXIT_SOME_FAILED if failed else EXIT_OK


def load_model(name: str, workdir: str | None):
  """``pretrained.load(name, workdir)``; without --workdir and no shipped model, the error says
  which model is missing and how to make one."""
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  from bioface_jax.pretrained import systems  # pylint: disable=g-import-not-at-top
  try:
    return pretrained.load(name, workdir)
  except FileNotFoundError as error:
    if workdir is None:
      raise UserError(
          f"no shipped {name} model in this installation ({pretrained.shipped_path(name)}); "
          f"train one with `{systems.TRAIN_COMMANDS[name]} --workdir DIR` (or export one with "
          "python -m train.export) and pass --workdir DIR") from error
    raise


def model_dir(name: str, workdir: str | None) -> pathlib.Path:
  from bioface_jax import pretrained  # pylint: disable=g-import-not-at-top
  return pathlib.Path(workdir).expanduser() if workdir else pretrained.shipped_path(name)


__all__ = ["DEFAULT_OUT", "Example", "IMAGE_SUFFIXES", "Parser", "UserError",
           "add_crop_arguments", "add_model_argument", "add_output_argument",
           "check_output_dir", "expand_inputs", "face_box", "load_example", "load_model",
           "model_dir", "output_names", "photo_inputs", "read_source", "run", "run_batch",
           "save_figure", "save_npy", "save_npz", "save_png", "say_notes", "write_atomic"]
