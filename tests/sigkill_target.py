"""A tiny training run that tests/test_train_sigkill.py kills with SIGKILL and reruns.

    python -m tests.sigkill_target WORKDIR NUM_STEPS

Linear regression with Adam, an RNG-dependent term (so the per-step keys must survive the
restarts) and an 8 MB "ballast" leaf updated every step, so that each asynchronous checkpoint
takes long enough to be killed in the middle of. Checkpoints every 2 steps, asynchronously.
"""

from __future__ import annotations

import itertools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bioface_jax import train_lib

BALLAST = 1 << 21  # float32 entries: 8 MB per checkpoint.
_rng = np.random.default_rng(0)
X = _rng.normal(size=(64, 3)).astype(np.float32)
Y = (X @ np.array([1.5, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
TX = optax.adam(0.05)


def config(num_steps: int) -> dict:
  return dict(num_train_steps=num_steps, batch_size=8, seed=0, log_every_steps=1,
              checkpoint_every_steps=2, max_to_keep=2, async_checkpointing=True)


def make_task() -> train_lib.Task:
  def init(rng, batch):
    del rng, batch
    params = {"w": jnp.zeros(3, jnp.float32), "b": jnp.zeros((), jnp.float32)}
    return {"params": params, "opt_state": TX.init(params),
            "ballast": jnp.zeros(BALLAST, jnp.float32)}

  def train_step(state, batch, rng):
    jitter = 1e-3 * jax.random.normal(rng, ())  # Depends on the step's key.

    def loss_fn(p):
      return jnp.mean((batch["x"] @ p["w"] + p["b"] + jitter - batch["y"]) ** 2)

    loss, g = jax.value_and_grad(loss_fn)(state["params"])
    updates, opt_state = TX.update(g, state["opt_state"], state["params"])
    return ({"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
             "ballast": state["ballast"] * 0.5 + loss},
            {"loss": loss})

  def make_batches(start):
    for i in itertools.count(start):
      rows = (i * 8 + np.arange(8) * 7) % 64
      yield {"x": X[rows], "y": Y[rows]}

  return train_lib.Task(init=init, train_step=train_step, make_batches=make_batches)


def main(argv: list[str]) -> int:
  workdir, num_steps = argv[1], int(argv[2])
  train_lib.train(make_task(), config(num_steps), workdir)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
