"""Rendering demo: the skin colour chart of the physics model under three lights.

    python -m eval.render_demo [--out figures/render_demo.png]

Renders the whole melanin x haemoglobin range of the skin table through the mean camera
(b = 0) under CIE A, daylight at 6500 K and fluorescent FL2, with unit diffuse shading and no
specular, then converts to 8-bit sRGB; also plots the illuminants and camera sensitivities.
Rows run from no blood (top) to 7 % blood (bottom), columns from no melanin (left) to 43 %.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bioface_jax import physics  # noqa: E402

LIGHTS = {"CIE A (2856 K)": (0, 1.0), "daylight 6500 K": (1, physics.cct_to_index(6500.0)),
          "fluorescent FL2": (3, 1.0)}


def skin_chart(spectra, lut, weight_index: int, t: float, n: int = 48) -> np.ndarray:
  """(n, n, 3) uint8 sRGB chart over fblood (rows) x fmel (columns) in [-1, 1]."""
  grid = np.linspace(-1.0, 1.0, n)
  fblood, fmel = np.meshgrid(grid, grid, indexing="ij")
  weights = np.eye(14)[weight_index]
  out = physics.render(spectra, lut, fmel, fblood, np.ones((n, n)), np.zeros((n, n)), weights,
                       float(t), np.zeros(2))
  return physics.to_uint8(out["linear_srgb"])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default="figures/render_demo.png", help="output PNG path")
  args = parser.parse_args(argv)

  spectra = physics.load_spectra()
  lut = physics.skin_lut(spectra)
  fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
  for ax, (name, (index, t)) in zip(axes[:3], LIGHTS.items()):
    ax.imshow(skin_chart(spectra, lut, index, t), extent=(-1, 1, 1, -1))
    ax.set_title(name)
    ax.set_xlabel("melanin  fmel")
    ax.set_ylabel("haemoglobin  fblood")
  lam = np.asarray(spectra.wavelengths)
  for name, (index, t) in LIGHTS.items():
    axes[3].plot(lam, physics.illuminant(spectra, np.eye(14)[index], float(t)), label=name)
  axes[3].set_title("illuminants (unit sum)")
  axes[3].set_xlabel("wavelength (nm)")
  axes[3].legend(fontsize=7)
  for b, style in (((0.0, 0.0), "-"), ((2.0, -1.0), "--")):
    s = np.asarray(physics.camera_sensitivity(spectra, np.array(b)))
    for c, colour in enumerate("rgb"):
      axes[4].plot(lam, s[c], style, color=colour, label=f"b={b}" if c == 0 else None)
  axes[4].set_title("camera sensitivities")
  axes[4].set_xlabel("wavelength (nm)")
  axes[4].legend(fontsize=7)
  fig.tight_layout()
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
