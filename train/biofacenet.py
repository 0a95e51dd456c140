"""Train BioFaceNet: ``python -m train.biofacenet --config train/configs/biofacenet.py[:variant]``.

Data-parallel over every visible device (a ``('data',)`` mesh; multi-host runs call
``jax.distributed.initialize()`` when launched by SLURM/MPI or with JAX_COORDINATOR_ADDRESS).
Checkpoints, metrics (metrics.jsonl, TensorBoard in tb/) and figures go to ``--workdir``;
rerunning the same command resumes from the latest sound checkpoint (damaged ones are set
aside, never deleted). Ctrl-C saves and exits. `--help` lists the flags; mistakes (a config key
typo, a missing config file, an unusable --workdir) end in one line naming them.
See train/configs/biofacenet.py for the variants and what each is expected to do.
"""

from __future__ import annotations

from absl import flags

from train import launch



def make_task(config):
  """The biofacenet `Task` (imported here so that --help answers without loading JAX)."""
  from train import biofacenet_task  # pylint: disable=g-import-not-at-top
  return biofacenet_task.make_task(config)


if __name__ == "__main__":
  launch.define_flags("biofacenet", "train/configs/biofacenet.py:smoke")
  flags.adopt_module_key_flags(launch)  # --help lists --config and --workdir.
  launch.run("biofacenet", make_task)
