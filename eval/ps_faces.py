"""Photometric stereo on faces: synthetic face scenes and one real portrait relit with SH shading.

  python -m eval.ps_faces --runs sdps=runs/sdps_nenet,fused=runs/sdps_fused \\
      --out docs/sdps_faces.png

* Synthetic: the held-out ``faces`` test set (random face shape and pose, specular materials,
  cast shadows, noise) at N = 16 lights.
* Portrait (the seed report's use case): skimage's ``astronaut`` face crop is the albedo, laid on
  the project's mean-face geometry (`data.synth.geometry`, frontal; the photo's true geometry is
  unknown, so the mean face is the ground truth we can score against), relit into N images by
  the project's second-order SH shading (`bioface_jax.physics.sh_irradiance`) of N directional
  lights of known direction and intensity (SH coefficients of a delta light, e·Y_lm(l)).
Each network's normal map and MAE are shown beside Woodham with the true lights.
"""

from __future__ import annotations

import sys

from absl import flags
from absl import logging

from train import absl_app

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a program, so the module imports cleanly)."""
  flags.DEFINE_list("runs", [], "label=WORKDIR of train.sdps runs with a normal output "
                    "(label=NENET_WORKDIR+LCNET_WORKDIR or +true swaps NENet's lights, as in "
                    "eval.ps_benchmark).")
  flags.DEFINE_integer("dpi", 80, "figure resolution (keep the PNG under 300 KB).")
  flags.DEFINE_integer("images", 16, "number of input images.")
  flags.DEFINE_integer("size", 64, "image size.")
  flags.DEFINE_string("out", "docs/sdps_faces.png", "figure path.")


def sh_delta_light(direction, intensity):
  """NFE-order SH coefficients (9,) of a delta light: e·Y_lm(l) (real SH, orthonormal)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  x, y, z = direction
  return intensity * np.asarray([
      0.282095, 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y,
      1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
      0.546274 * (x * x - y * y)])


def portrait_scene(size, n, seed=0):
  """The relit portrait: images (N, S, S, 3), mask, normals, dirs, intensities."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from skimage import data as skdata  # pylint: disable=g-import-not-at-top
  from skimage.transform import resize  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric, physics  # pylint: disable=g-import-not-at-top
  from data.synth import geometry  # pylint: disable=g-import-not-at-top
  template = geometry.load_template()
  geo = geometry.rasterise(template.vertices, template, geometry.Pose(0, 0, 0, 0.9, 0, 0),
                           size=size)
  mask = geo["mask"] & (geo["normals"][..., 2] > 0)
  normals = np.where(mask[..., None], geo["normals"], 0).astype(np.float32)
  crop = skdata.astronaut()[45:185, 160:300] / 255.0
  albedo = np.asarray(physics.srgb_decode(resize(crop, (size, size), anti_aliasing=True)))
  key = jax.random.key(seed)
  dirs = np.asarray(photometric.sample_light_directions(key, (n,), max_polar_deg=60.0))
  ints = np.asarray(photometric.sample_light_intensities(jax.random.fold_in(key, 1), (n,)))
  coeffs = np.stack([sh_delta_light(d, e) for d, e in zip(dirs, ints)])  # (N, 9)
  shading = np.asarray(physics.sh_irradiance(normals[None], coeffs[:, None, None, :]))
  shading = np.maximum(shading, 0) * mask
  images = (albedo[None] * shading[..., None]).astype(np.float32)
  return {"images": images, "mask": mask.astype(np.float32), "normals": normals,
          "dirs": dirs.astype(np.float32), "intensities": ints.astype(np.float32)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # quiet Orbax's INFO lines
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bioface_jax import photometric as ps  # pylint: disable=g-import-not-at-top
  from data.photometric import synth  # pylint: disable=g-import-not-at-top
  from eval.ps_methods import Method  # pylint: disable=g-import-not-at-top
  from train import sdps_task  # pylint: disable=g-import-not-at-top
  methods = []
  for spec in FLAGS.runs:
    label, _, workdir = spec.partition("=")
    workdir, _, lights = workdir.partition("+")
    if lights and lights != "true":
      lights = sdps_task.restore_run(lights)
    methods.append(Method(label, sdps_task.restore_run(workdir), lights or None))
  n, s = FLAGS.images, FLAGS.size
  faces = synth.test_set("faces", 2, s)
  scenes = []
  for i in range(2):
    scenes.append((f"synthetic face {i}", {
        "images": synth.render_test_scene(faces, i, subset=np.arange(n)),
        "mask": faces["mask"][i], "normals": faces["normals"][i],
        "dirs": faces["dirs"][i, :n], "intensities": faces["intensities"][i, :n]}))
  scenes.append(("astronaut relit (SH)", portrait_scene(s, n)))
  cols = 3 + len(methods)
  fig = matplotlib.figure.Figure(figsize=(2.1 * cols, 2.3 * len(scenes)))
  axes = fig.subplots(len(scenes), cols, squeeze=False)
  for r, (name, d) in enumerate(scenes):
    mask, gt = d["mask"], d["normals"]
    img = d["images"][0]
    axes[r, 0].imshow(np.clip(img / max(np.percentile(img, 99), 1e-6), 0, 1))
    axes[r, 0].set_title(f"{name}\ninput 1 of {n}", fontsize=7)
    axes[r, 1].imshow(sdps_task.normals_to_rgb(gt, mask))
    axes[r, 1].set_title("true normals", fontsize=7)
    est, _ = ps.woodham(d["images"], d["dirs"], d["intensities"], mask)
    mae = float(ps.mean_angular_error(est, gt, mask))
    axes[r, 2].imshow(sdps_task.normals_to_rgb(np.asarray(est), mask))
    axes[r, 2].set_title(f"Woodham, true lights\nMAE {mae:.1f}°", fontsize=7)
    print(f"{name}: woodham (true lights) {mae:.2f}°")
    for c, m in enumerate(methods):
      out = m(d["images"][None], mask[None], d["dirs"][None], d["intensities"][None])
      pred = out["normals"][0]
      mae = float(ps.mean_angular_error(pred, gt, mask))
      print(f"{name}: {m.label} {mae:.2f}°")
      axes[r, 3 + c].imshow(sdps_task.normals_to_rgb(pred, mask))
      axes[r, 3 + c].set_title(f"{m.label}\nMAE {mae:.1f}°", fontsize=7)
  for a in axes.ravel():
    a.axis("off")
  fig.tight_layout()
  fig.savefig(FLAGS.out, dpi=FLAGS.dpi)
  print(f"wrote {FLAGS.out}")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
