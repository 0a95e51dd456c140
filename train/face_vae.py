"""Train the face VAE: ``python -m train.face_vae --config train/configs/face_vae.py[:ARG]``.

Data-parallel over every visible device (a ``('data',)`` mesh; multi-host runs call
``jax.distributed.initialize()`` when launched by SLURM/MPI or with JAX_COORDINATOR_ADDRESS).
Checkpoints, metrics (metrics.jsonl, TensorBoard in tb/) and figures go to ``--workdir``;
rerunning the same command resumes from the latest sound checkpoint (damaged ones are set
aside, never deleted). Ctrl-C saves and exits. `--help` lists the flags; mistakes (a config key
typo, a missing config file, an unusable --workdir) end in one line naming them.
See train/configs/face_vae.py for ARG (configuration + preset) and what each does; figures
show input | label mask | predicted mask | decoder output | composite.
"""

from __future__ import annotations

from absl import flags

from train import launch



def make_task(config):
  """The face_vae `Task` (imported here so that --help answers without loading JAX)."""
  from train import face_vae_task  # pylint: disable=g-import-not-at-top
  return face_vae_task.make_task(config)


if __name__ == "__main__":
  launch.define_flags("face_vae", "train/configs/face_vae.py:ssim_l2_mask,smoke")
  flags.adopt_module_key_flags(launch)  # --help lists --config and --workdir.
  launch.run("face_vae", make_task)
