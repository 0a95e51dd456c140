"""Transparent huge pages for XLA:CPU's per-call buffers: a quarter of the face VAE's step.

Measured in docs/performance.md: every call of a jitted XLA:CPU executable allocates its
temporary and output buffers with ``malloc`` and frees them at the end. glibc serves blocks
above 32 MiB with a fresh ``mmap`` and returns them with ``munmap``, so every call touches its
buffers' pages for the first time again: the face VAE's 144 px train step (batch 16) took
~395,000 minor page faults (1.6 GB of 4 KiB pages, each zeroed by the kernel) and ~0.8 s of
kernel time per step. glibc's tunable ``glibc.malloc.hugetlb=1`` (glibc >= 2.35) makes it
``madvise(MADV_HUGEPAGE)`` those blocks, so the kernel backs them with 2 MiB pages where the
system allows transparent huge pages ("always" or "madvise"): 15-300x fewer faults, 2.2-2.4 s
instead of 3.0-3.4 s per face VAE step timed alone, 8-11 % more images/s in the side-by-side
benchmark with Keras. The computation is untouched (same programs, same
results, bit for bit).

(Keeping freed memory in the process instead, with ``mallopt(M_MMAP_MAX = 0,
M_TRIM_THRESHOLD = -1)``, does not work: XLA's aligned allocations do not fit the freed
blocks, so the heap grows by the buffers' size on every call.)

glibc reads tunables only when a process starts, from the ``GLIBC_TUNABLES`` environment
variable. Either set it yourself::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m train.face_vae ...

or let a command restart itself with it, first thing in its ``__main__`` block
(`reexec_with_huge_pages`; every ``python -m train.<model>``, ``eval.bench_vae`` and
``eval.profile_step`` do, through their ``--huge_pages`` flag, on by default). Nothing here runs
at import.
"""

from __future__ import annotations

import ctypes
import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def huge_pages_requested(environ=None) -> bool:
  """Whether `environ` (default: this process's) asks glibc for huge pages."""
  environ = os.environ if environ is None else environ
  return "glibc.malloc.hugetlb=" in environ.get("GLIBC_TUNABLES", "")


def huge_pages_possible() -> bool:
  """Linux with glibc, and the kernel lets a process ask for transparent huge pages."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    if not hasattr(ctypes.CDLL("libc.so.6"), "gnu_get_libc_version"):  # glibc only
      return False
    with open(_THP, encoding="ascii") as f:
      mode = f.read()
  except OSError:
    return False
  return "[always]" in mode or "[madvise]" in mode


def with_huge_pages(environ) -> dict[str, str]:
  """A copy of `environ` whose ``GLIBC_TUNABLES`` also holds `TUNABLE`."""
  env = dict(environ)
  if not huge_pages_requested(env):
    env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES", ""), TUNABLE) if t)
  return env


def reexec_with_huge_pages() -> None:
  """Restarts this process (same interpreter and command line) with `TUNABLE`, once.

  Returns without doing anything when the tunable is already set (so after the restart),
  or when huge pages are not possible here. Call it before the process does any work:
  ``os.execve`` replaces the process (flushing stdout and stderr first).
  """
  if huge_pages_requested() or not huge_pages_possible():
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], with_huge_pages(os.environ))
