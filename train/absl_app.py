"""The error boundary of every absl command (`train.<model>` and the absl-based `eval.*`).

`absl.app.run` exits 1 after ``--help``, prints a multi-line "FATAL Flags parsing error" for a
bad flag and a Python traceback for a missing file. `run(main)` keeps absl's flag handling but:

* ``--help`` / ``-h`` / ``--helpshort`` / ``--helpfull`` print the help and exit 0;
* a bad flag (unknown name, value of the wrong type) prints one line and exits 2;
* a user mistake raised by `main` (a missing or unreadable file, a bad value: `OSError`,
  `ValueError`, `ImportError` of an optional extra, `absl.app.UsageError`) prints
  ``error: <message>`` on one line and exits 2. Set ``BIOFACE_TRACEBACK=1`` to get the Python
  traceback instead (for bug reports).

Programming errors of other types still end in a traceback, as they should.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from absl import app
from absl import flags

HELP_FLAGS = frozenset({"help", "h", "?", "helpshort", "helpfull", "helpxml"})
# What a command reports as a user mistake (one line, exit 2) rather than as a bug.
USER_ERRORS = (OSError, ValueError, ImportError, app.UsageError)
USAGE_EXIT = 2


def one_line(error: BaseException | str) -> str:
  """An exception's message on one line (newlines and runs of spaces collapsed)."""
  text = str(error) if not isinstance(error, str) else error
  if isinstance(error, KeyError) and len(error.args) == 1:
    text = str(error.args[0])
  return " ".join(text.split()) or type(error).__name__


def fail(message: str | BaseException, code: int = USAGE_EXIT) -> None:
  """Prints ``error: <message>`` on one line to stderr and exits with `code`."""
  print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
  sys.exit(code)


def check_output_file(path: str | os.PathLike) -> None:
  """Raises `ValueError` naming `path` when a file cannot be written there (checked up front,
  so that no work is lost at the end): it is a directory, or its folder cannot be created or
  written. The folder is created; no file is left behind."""
  path = os.path.abspath(os.fspath(path))
  if os.path.isdir(path):
    raise ValueError(f"output {path} is a directory; give a file name")
  folder = os.path.dirname(path)
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise ValueError(f"cannot write {path}: {folder} is a file, not a directory")
  probe = None
  try:
    os.makedirs(folder, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write_test_")
    os.close(fd)
  except OSError as error:
    raise ValueError(f"cannot write {path} ({error.strerror or error})") from error
  finally:
    if probe:
      os.unlink(probe)


def help_requested(argv: Sequence[str]) -> bool:
  """Does `argv` ask for help (``-h``, ``--help``, ``--helpfull``...) before any ``--``?"""
  for arg in argv[1:]:
    if arg == "--":
      return False
    if arg.startswith("-") and arg.lstrip("-").split("=", 1)[0] in HELP_FLAGS:
      return True
  return False


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with help -> exit 0 and a flag error -> one line, exit 2.

  ``-h`` is read as ``--help`` (absl itself only knows ``--help`` and ``-?``).
  """
  if "-h" in argv[1:argv.index("--") if "--" in argv else len(argv)]:
    argv = [("--help" if a == "-h" else a) for a in argv]
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    fail(f"{error} (see --help)")
  except SystemExit as done:  # absl's help flags print the help, then exit 1.
    if help_requested(argv) and done.code in (0, 1, None):
      sys.exit(0)
    raise
  return []  # Not reached.


def define_huge_pages_flag(default: bool = True, note: str = "") -> None:
  """Defines ``--huge_pages``, the one switch of `bioface_jax.host_memory` for every command.

  Honoured by `restart_with_huge_pages_if_asked`, which each command calls first thing in its
  main, before JAX starts. The flag belongs to the calling module, so its ``--help`` lists it.
  """
  caller = sys._getframe(1).f_globals.get("__name__", "")  # pylint: disable=protected-access
  flags.DEFINE_bool("huge_pages", default,
                    "Restart once with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (bioface_jax."
                    "host_memory: transparent huge pages for XLA's per-call buffers, fewer page "
                    "faults; the computation is unchanged) where glibc and the kernel allow it."
                    + (f" {note}" if note else ""),
                    module_name=sys.argv[0] if caller == "__main__" else caller)


def restart_with_huge_pages_if_asked() -> None:
  """Restarts the process with glibc's huge-page tunable when ``--huge_pages`` is on.

  Returns at once when the flag is off, when the tunable is already set (after the restart) or
  where huge pages are not possible. Call it before any work: the process is replaced.
  """
  from bioface_jax import host_memory  # pylint: disable=g-import-not-at-top
  if flags.FLAGS.huge_pages:
    host_memory.reexec_with_huge_pages()


def guarded(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int]:
  """`main` with user mistakes reported on one line (exit 2) instead of a traceback."""
  def wrapped(argv: list[str]) -> int:
    try:
      code = main(argv)
    except USER_ERRORS as error:
      if os.environ.get("BIOFACE_TRACEBACK"):
        raise
      print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
      return USAGE_EXIT
    return 0 if code is None else int(code)
  return wrapped


def run(main: Callable[[list[str]], int | None]) -> None:
  """`absl.app.run(main)` behind the boundary above; exits with `main`'s return code."""
  guarded_main = guarded(main)
  app.run(lambda argv: sys.exit(guarded_main(argv)), flags_parser=parse_flags)
