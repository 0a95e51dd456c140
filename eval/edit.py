"""Edit face photos through their biophysical maps, as in the paper's Figure 4.

    python -m eval.edit --example astronaut
    python -m eval.edit photo.jpg [--workdir W] [--box L T R B] [--melanin 0.4] \
        [--haemoglobin 0.4] [--lights A D65] [--refine-steps 200] [--out DIR]

Photos, folders, patterns, --box, --crop, --workdir (default: the shipped model) as in
`eval.predict`. For each photo the network (optionally refined on the photo,
``--refine-steps``, default 0 here; see `bioface_jax.photo.biofacenet_fit`) gives melanin,
haemoglobin, diffuse and specular shading, light and camera; the physics renderer
(`bioface_jax.physics.render`) then re-renders the face with

* melanin shifted down and up by ``--melanin`` (network coordinates, clipped to [-1, 1]);
* haemoglobin shifted down and up by ``--haemoglobin``;
* the specular shading set to zero (i_s = 0);
* each light of ``--lights`` instead of the estimated one: ``A``, ``D<kelvin>`` (daylight from
  the CIE table, e.g. D65 = 6500 K) or ``F1``..``F12``. The camera keeps the white balance of
  the estimated light (as a camera with fixed white balance would), so the new light's colour
  shows; the renderer's own per-light von Kries balance would cancel most of it.

Writes ``<name>_edits.png`` (input, reconstruction and every edit, display gamma 1/2.2),
``<name>_edit_<label>.png`` per edited image (8-bit, network resolution) and
``<name>_edits.npz`` (the linear sRGB images by label) to ``--out`` (default ./edits). A photo
that cannot be read is reported and skipped; the others are still written (exit status 1).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import numpy as np

from eval import cli, predict

DEFAULT_LIGHTS = ("A", "D65")


def light_parameters(name: str) -> tuple[np.ndarray, float]:
  """(weights (14,) over [A, D, F1..F12], daylight index t) of a named light.

  Raises:
    ValueError: unknown name, or a daylight outside the table's 4000-25000 K.
  """
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  weights = np.zeros(14, np.float32)
  match = re.fullmatch(r"(A|D(\d+)|F(\d+))", name.strip().upper())
  if not match:
    raise ValueError(f"unknown light {name!r}: use A, D<kelvin/100> (e.g. D65) or F1..F12")
  if match.group(1) == "A":
    weights[0] = 1.0
    return weights, 1.0
  if match.group(2):
    kelvin = int(match.group(2)) * (100 if int(match.group(2)) < 1000 else 1)
    t = float(physics.cct_to_index(float(kelvin)))
    if not 1.0 <= t <= 22.0:
      raise ValueError(f"daylight {name!r} = {kelvin} K is outside the table's 4000-25000 K")
    weights[1] = 1.0
    return weights, t
  k = int(match.group(3))
  if not 1 <= k <= 12:
    raise ValueError(f"fluorescent light {name!r}: use F1..F12")
  weights[1 + k] = 1.0
  return weights, 1.0


def shifted(maps: dict, melanin: float = 0.0, haemoglobin: float = 0.0) -> dict:
  """The maps with the pigment coordinates shifted (clipped to [-1, 1])."""
  return dict(maps, fmel=np.clip(maps["fmel"] + melanin, -1.0, 1.0),
              fblood=np.clip(maps["fblood"] + haemoglobin, -1.0, 1.0))


def relit_linear_srgb(maps: dict, spectra, lut, model, weights, t) -> np.ndarray:
  """Linear sRGB under another light, white-balanced for the maps' own (estimated) light.

  raw' = i_d a'(x) + i_s lc' under the new illuminant e'; then wb = raw' / lc with lc the
  light colour of the estimated illuminant, XYZ = T(b) wb, sRGB = max(0, M XYZ) (spec 4-5).
  """
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.photo import biofacenet_fit as photo_fit  # pylint: disable=g-import-not-at-top
  batch = np.shape(maps["fmel"])[:-2]
  new = dict(maps, weights=np.broadcast_to(weights, batch + (14,)),
             t=np.broadcast_to(np.float32(t), batch))
  original = photo_fit.render_maps(maps, spectra, lut, model)
  relit = photo_fit.render_maps(new, spectra, lut, model)
  lc = np.maximum(np.asarray(original["light_colour"]), 1e-9)[..., None, None, :]
  wb = np.asarray(relit["raw"]) / lc
  xyz = np.einsum("...ij,...hwj->...hwi", np.asarray(original["raw_to_xyz"]), wb)
  return np.asarray(physics.xyz_to_linear_srgb(xyz.astype(np.float32)))


def edits(maps: dict, spectra, lut, model, melanin: float = 0.4, haemoglobin: float = 0.4,
          lights=DEFAULT_LIGHTS) -> dict[str, np.ndarray]:
  """Linear sRGB images (batch as the maps) of every edit, by label, reconstruction first.

  Args:
    maps: ``fmel``, ``fblood``, ``shading``, ``specular`` (B, H, W), ``weights`` (B, 14),
      ``t`` (B,), ``b`` (B, 2), as from `biofacenet.predict`.
    spectra, lut, model: the fixed spectra, skin table and `BioFaceNetConfig` (colour options).
    melanin, haemoglobin: shift amounts (network coordinates).
    lights: names for `light_parameters`.
  """
  from bioface_jax.photo import biofacenet_fit as photo_fit  # pylint: disable=g-import-not-at-top

  def render(m):
    return np.asarray(photo_fit.render_maps(m, spectra, lut, model)["linear_srgb"])

  keys = ("fmel", "fblood", "shading", "specular", "weights", "t", "b")
  maps = {k: np.asarray(maps[k], np.float32) for k in keys}
  out = {"reconstruction": render(maps)}
  for label, kwargs in ((f"melanin -{melanin:g}", dict(melanin=-melanin)),
                        (f"melanin +{melanin:g}", dict(melanin=melanin)),
                        (f"haemoglobin -{haemoglobin:g}", dict(haemoglobin=-haemoglobin)),
                        (f"haemoglobin +{haemoglobin:g}", dict(haemoglobin=haemoglobin))):
    out[label] = render(shifted(maps, **kwargs))
  out["no specular"] = render(dict(maps, specular=np.zeros_like(maps["specular"])))
  for name in lights:
    weights, t = light_parameters(name)
    out[f"light {name}"] = relit_linear_srgb(maps, spectra, lut, model, weights, t)
  return out


def _display(linear: np.ndarray) -> np.ndarray:
  return np.clip(np.clip(linear, 0.0, None)**(1.0 / 2.2), 0.0, 1.0)


def save_figure(path, image: np.ndarray, images: dict[str, np.ndarray], title: str) -> None:
  """One row: input, then every image of `edits` (first of the batch), display gamma 1/2.2."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  panels = [("input", np.clip(image, 0, 1))] + [(k, _display(v[0])) for k, v in images.items()]
  fig = Figure(figsize=(1.5 * len(panels), 2.0))
  FigureCanvasAgg(fig)
  for i, (label, img) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    ax.imshow(img, interpolation="bilinear")
    ax.set_title(label, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(title, fontsize=8)
  fig.tight_layout()
  cli.save_figure(pathlib.Path(path), fig, dpi=100)


def _slug(label: str) -> str:
  """File-name form of an edit label: "melanin +0.4" -> "melanin_plus0p4"."""
  text = label.lower().replace("+", "plus").replace("-", "minus").replace(".", "p")
  return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def write_edits(out_dir: pathlib.Path, name: str, x: np.ndarray, images: dict[str, np.ndarray],
                title: str) -> list[pathlib.Path]:
  """``<name>_edits.png`` (input and every edit), ``<name>_edit_<label>.png`` per edit and
  ``<name>_edits.npz`` (linear sRGB by label, and the input)."""
  paths = [out_dir / f"{name}_edits.png"]
  save_figure(paths[0], x, images, f"{title}; pigment shifts in network coordinates; lights "
              "keep the estimated light's white balance")
  for label, image in images.items():
    paths.append(cli.save_png(out_dir / f"{name}_edit_{_slug(label)}.png", _display(image[0])))
  paths.append(cli.save_npz(out_dir / f"{name}_edits.npz",
                            **{_slug(k): v[0] for k, v in images.items()}, input=x))
  return paths


def build_parser() -> argparse.ArgumentParser:
  parser = cli.Parser("python -m eval.edit", __doc__)
  predict.add_photo_arguments(parser, default_out="edits", refine_steps=0)
  parser.add_argument("--melanin", type=float, default=0.4,
                      help="melanin shift, network coordinates (the map spans [-1, 1])")
  parser.add_argument("--haemoglobin", type=float, default=0.4,
                      help="haemoglobin shift, network coordinates")
  parser.add_argument("--lights", nargs="*", default=list(DEFAULT_LIGHTS),
                      help="lights to re-render under: A, D<kelvin/100> (D50, D65, ...), F1..F12")
  return parser


def _main(argv) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  predict.check_photo_arguments(parser, args)
  for name in args.lights:
    try:
      light_parameters(name)
    except ValueError as error:
      parser.error(str(error))
  items, out_dir, problems = cli.photo_inputs(args, "biofacenet")
  from bioface_jax.photo import biofacenet_fit  # pylint: disable=g-import-not-at-top
  model = cli.load_model("biofacenet", args.workdir)
  spectra, lut = biofacenet_fit.assets()

  def work(name, source):
    x, _, outputs, refinement, _ = predict.decompose_photo(model, args, name, source)
    images = edits(outputs, spectra, lut, model.config, args.melanin, args.haemoglobin,
                   args.lights)
    note = "" if refinement is None else f", refined {refinement.steps} steps"
    write_edits(out_dir, name, x, images, f"{name}: BioFaceNet edits (model step "
                f"{model.step}{note})")
    return (f"{name}: wrote {out_dir / (name + '_edits.png')}, {len(images)} edited images "
            f"({', '.join(images)}) and {name}_edits.npz")
  return cli.run_batch(items, work, problems)


def main(argv=None) -> int:
  return cli.run(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
