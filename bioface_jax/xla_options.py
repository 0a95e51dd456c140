"""XLA:CPU compile options under which our convolution networks train 1.5-3x faster.

Measured in docs/performance.md: XLA:CPU (jaxlib 0.10) hands every convolution to YNNPACK,
whose kernel for the *weight gradient* of a convolution (a convolution whose window is the
whole H x W activation and whose output is the small kh x kw kernel) runs at a third of the
speed of XLA's own Eigen convolution on the same problem; forward and input-gradient
convolutions run at the same speed in both. Leaving convolutions to Eigen (and everything else
YNNPACK takes by default, dots and reductions, to YNNPACK) therefore only speeds training up.

The option cannot be attached to an operation from inside a model, and setting ``XLA_FLAGS`` at
import would be a side effect on every other user of JAX in the process, so it is applied by
whoever compiles the step (entry points, benchmarks, the trainer), in one of two ways:

  jax.jit(train_step, compiler_options=xla_options.cpu_compiler_options())   # per function
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution    # per process

Nothing here runs at import. On other backends, or a jaxlib that does not know the option,
`cpu_compiler_options` returns ``{}`` (the option is then simply not used).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# XLA's default YNNPACK set on CPU is {INDIVIDUAL_DOT, INDIVIDUAL_CONVOLUTION, REDUCE}; this is
# the same set without convolutions (per-compilation options need the full list).
YNN_WITHOUT_CONVOLUTIONS = {
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
# The same through the environment (XLA's flag parser accepts "-" to remove one type).
XLA_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


@functools.lru_cache(maxsize=None)
def _accepted(items: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's CPU compiler accepts the options (one tiny compile, cached)."""
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros(())).compile(dict(items))
  except Exception:  # pylint: disable=broad-except  # unknown option or enum value
    return False
  return True


def cpu_compiler_options(backend: str | None = None) -> dict[str, str]:
  """Compile options for `jax.jit(..., compiler_options=...)`: convolutions to Eigen on CPU.

  Args:
    backend: the platform the function will be compiled for; default `jax.default_backend()`.

  Returns:
    `YNN_WITHOUT_CONVOLUTIONS` on CPU if this jaxlib accepts it, else ``{}``.
  """
  if (backend or jax.default_backend()) != "cpu":
    return {}
  items = tuple(sorted(YNN_WITHOUT_CONVOLUTIONS.items()))
  return dict(items) if _accepted(items) else {}
