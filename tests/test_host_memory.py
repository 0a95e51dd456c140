"""bioface_jax.host_memory: the restart with glibc's huge-page tunable, and what it changes.

A fresh interpreter runs a small script that calls `reexec_with_huge_pages()` (or not), then
calls a jitted function with a 64 MiB output a few times and counts the minor page faults of
one call. glibc maps a block that large afresh on every call, so with 4 KiB pages a call takes
one fault per page (16,384); with 2 MiB pages it takes ~32. The bounds are far apart on both
sides of that, so the test does not depend on the machine's speed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bioface_jax import host_memory

_SCRIPT = r"""
import os, resource, sys
from bioface_jax import host_memory
print("start", sys.argv[1:], flush=True)
if sys.argv[1] == "huge":
  host_memory.reexec_with_huge_pages()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: x * 2.0 + 1.0)
x = jnp.ones((16, 1024, 1024), jnp.float32)  # 64 MiB
jax.block_until_ready(f(x))
faults = []
for _ in range(3):
  r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  y = f(x)
  jax.block_until_ready(y)
  del y
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print("tunables", os.environ.get("GLIBC_TUNABLES", "unset"), "faults", min(faults))
"""

PAGES = 64 * 2**20 // 4096


def _run(mode: str) -> list[str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("GLIBC_TUNABLES", None)
  env.pop("XLA_FLAGS", None)  # conftest's fake devices are not needed here
  return subprocess.run([sys.executable, "-c", _SCRIPT, mode, "--an-argument"],
                        capture_output=True, text=True, env=env, check=True,
                        timeout=120).stdout.splitlines()


def test_with_huge_pages_appends_the_tunable_once():
  assert host_memory.with_huge_pages({})["GLIBC_TUNABLES"] == host_memory.TUNABLE
  env = host_memory.with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "b"})
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:" + host_memory.TUNABLE, "A": "b"}
  assert host_memory.with_huge_pages(env) == env
  assert host_memory.huge_pages_requested(env) and not host_memory.huge_pages_requested({})


@pytest.mark.skipif(not host_memory.huge_pages_possible(),
                    reason="needs Linux, glibc and transparent huge pages (always / madvise)")
def test_restart_keeps_the_command_line_and_cuts_the_page_faults():
  plain = _run("plain")
  huge = _run("huge")
  assert plain[0] == "start ['plain', '--an-argument']"
  # The restarted process ran the same script with the same arguments, once more.
  assert huge[:2] == ["start ['huge', '--an-argument']"] * 2, huge
  _, tunables, _, faults_plain = plain[-1].split()
  assert tunables == "unset" and int(faults_plain) >= PAGES // 2, plain
  _, tunables, _, faults_huge = huge[-1].split()
  assert tunables == host_memory.TUNABLE, huge
  assert int(faults_huge) < PAGES // 20, huge
