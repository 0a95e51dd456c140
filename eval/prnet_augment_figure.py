"""A picture of PRNet's training augmentation on held-out synthetic faces (docs/prnet.md).

    python -m eval.prnet_augment_figure --size 128 --num 4 --out docs/prnet_augmentation.png

Per face: the original crop with its landmarks, then three augmented draws (rotation, scale,
shift, colour, erasing; `bioface_jax.face3d.augment`) with the augmented landmarks (green) and
the landmarks read from the augmented position map (red, drawn smaller): they must coincide,
and both must sit on the moved face. The faces are the cached held-out synthetic set (seed 1),
generated on first use.
"""

from __future__ import annotations

import pathlib

from absl import flags

from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_integer("size", 128, "Input size R (64 or 128 have cached sets).")
  flags.DEFINE_integer("num", 4, "Number of faces (rows).")
  flags.DEFINE_integer("draws", 3, "Augmented draws per face.")
  flags.DEFINE_integer("n_set", 256, "Size of the held-out synthetic set to read from.")
  flags.DEFINE_integer("seed", 0, "Augmentation key.")
  flags.DEFINE_string("out", "prnet_augmentation.png", "Output PNG.")


def make_figure(batch, draws: int, seed: int):
  """matplotlib Figure: per row the original and `draws` augmented versions."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
  from bioface_jax.face3d import augment  # pylint: disable=g-import-not-at-top
  n = len(batch["image"])
  fig = Figure(figsize=(2.0 * (draws + 1), 2.0 * n))
  run = jax.jit(augment.augment_batch)
  outs = [jax.tree.map(np.asarray, run(jax.random.fold_in(jax.random.key(seed), d), batch))
          for d in range(draws)]
  for i in range(n):
    for j in range(draws + 1):
      src = batch if j == 0 else outs[j - 1]
      ax = fig.add_subplot(n, draws + 1, i * (draws + 1) + j + 1)
      ax.imshow(np.clip(src["image"][i], 0, 1))
      lmk = np.asarray(src["landmarks"][i])
      from_map = np.asarray(face3d.landmarks_from_position_map(src["posmap"][i]))
      ax.plot(lmk[:, 0], lmk[:, 1], "g.", ms=3)
      ax.plot(from_map[:, 0], from_map[:, 1], "r.", ms=1)
      if i == 0:
        ax.set_title("original" if j == 0 else f"augmented {j}", fontsize=8)
      ax.axis("off")
  fig.tight_layout()
  return fig


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  from data.prnet import dataset  # pylint: disable=g-import-not-at-top
  ds = dataset.synthetic_set(None, FLAGS.n_set, FLAGS.size, 1)
  batch = ds.get(np.arange(min(FLAGS.num, len(ds))))
  batch = {k: batch[k] for k in ("image", "posmap", "landmarks")}
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig = make_figure(batch, FLAGS.draws, FLAGS.seed)
  tmp = out.with_name(f".{out.name}.partial.png")
  fig.savefig(tmp, dpi=64)
  tmp.replace(out)
  print(f"wrote {out}")


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
