"""The scene's light and camera behind one small interface (rig dicts and camera knobs).

The scene generator (`data.synth.scene`) only calls the functions here, with the data layout
of the light rigs and camera chain of issue 18 (`data.synth.lighting`, `light_render`,
`camera_chain`): a rig is a JSON-able dict with ``groups`` (illuminants) and ``lights``;
`shade` returns per-group grey diffuse / specular maps; `render_skin` renders skin spectrally
per group and white-balances once for group 0; `light_colours` is the colour of each group's
light on a white reflector; camera knobs are a JSON-able dict.

This module implements the "sh" light, the generator's light so far: one group, its
illuminant drawn from the model's priors (`data.synth.faces.sample_illuminant`), second-order
SH diffuse shading (`appearance.sample_sh_lighting`) and a Blinn-Phong specular along the
SH's dominant direction; and the "srgb" camera: exact sRGB, 8 bits, optional Gaussian noise
and JPEG (`data.synth.faces`). The "rig" light, the "chain" camera and the "photo"
backgrounds are those of `data.synth.lighting`, `camera_chain` and `backgrounds` (imported
when chosen); every function here dispatches on the rig's or knobs' ``kind``.
"""

from __future__ import annotations

import numpy as np

from bioface_jax import physics
from bioface_jax.physics.shading import shading_target_numpy
from data.synth import appearance, faces

MAX_GROUPS = {"sh": 1, "rig": 4}  # Light groups a batch carries (unused ones are dark).


def sample_rig(rng: np.random.Generator, options: faces.FaceOptions, kind: str = "sh") -> dict:
  """A light rig: "sh" (SH environment + its illuminant (weights, t) and the camera's b) or
  "rig" (`data.synth.lighting.sample_rig`)."""
  if kind == "rig":
    from data.synth import lighting  # pylint: disable=g-import-not-at-top
    rig = lighting.sample_rig(rng)
    if len(rig["groups"]) > MAX_GROUPS["rig"]:
      raise ValueError(f"rig has {len(rig['groups'])} light groups; at most "
                       f"{MAX_GROUPS['rig']} are carried")
    return rig
  if kind != "sh":
    raise ValueError(f"light kind must be 'sh' or 'rig', got {kind!r}")
  sh = appearance.sample_sh_lighting(rng)
  weights, t, b = faces.sample_illuminant(rng, options)
  return dict(kind="sh", mixed=False, groups=[dict(source="sh", weights=weights.tolist(),
                                                   t=float(t))],
              lights=[dict(type="environment", group=0, intensity=1.0, sh=sh.tolist())],
              b=b.tolist())


def dominant_direction(rig: dict) -> np.ndarray:
  """(3,) unit direction of the strongest light (for catch-lights and hair highlights)."""
  if rig["kind"] != "sh":
    from data.synth import lighting  # pylint: disable=g-import-not-at-top
    return lighting.dominant_direction(rig)
  env = [l for l in rig["lights"] if l["type"] == "environment"]
  return appearance.dominant_direction(np.asarray(env[0]["sh"], np.float32))


def shade(rig: dict, normals: np.ndarray, depth: np.ndarray, mask: np.ndarray,
          shininess: float = 20.0) -> dict:
  """Per-group diffuse and specular shading (layout of `lighting.shade`).

  Returns:
    dict(groups=[dict(diffuse (H, W), specular (H, W), weights (14,), t ())]), float32, 0 off
    the mask; the specular is the unit-strength lobe (the scene scales it by its surfaces'
    specular strength).
  """
  if rig["kind"] != "sh":
    from data.synth import lighting  # pylint: disable=g-import-not-at-top
    return lighting.shade(rig, normals, depth, mask, shininess)
  del depth  # The SH light casts no shadows.
  sh = np.asarray(rig["lights"][0]["sh"], np.float32)
  mask = np.asarray(mask, bool)
  on = np.asarray(normals)[mask][None]  # Shaded on the mask's pixels only: (1, n, 3).
  diffuse = np.zeros(mask.shape, np.float32)
  lobe = np.zeros(mask.shape, np.float32)
  diffuse[mask] = shading_target_numpy(on, np.tile(sh, (3, 1)))[0]
  lobe[mask] = appearance.blinn_phong(on, dominant_direction(rig), shininess=shininess)[0]
  g = rig["groups"][0]
  return dict(groups=[dict(diffuse=diffuse, specular=lobe,
                           weights=np.asarray(g["weights"], np.float32), t=np.float32(g["t"]))])


def render_skin(spectra, lut, fmel, fblood, diffuse, specular, weights, t, b) -> dict:
  """Linear sRGB of skin under G light groups (jnp; G = 1: `physics.render`, else
  `data.synth.light_render.render_skin`).

  Args: fmel, fblood (..., H, W); diffuse, specular (..., G, H, W); weights (..., G, 14);
  t (..., G); b (..., 2). Returns dict(linear_srgb (..., H, W, 3), albedo (..., H, W, 3)).
  """
  if diffuse.shape[-3] > 1:
    from data.synth import light_render  # pylint: disable=g-import-not-at-top
    return light_render.render_skin(spectra, lut, fmel, fblood, diffuse, specular, weights, t,
                                    b)
  out = physics.render(spectra, lut, fmel, fblood, diffuse[..., 0, :, :],
                       specular[..., 0, :, :], weights[..., 0, :], t[..., 0], b)
  return dict(linear_srgb=out["linear_srgb"], albedo=out["albedo_linear_srgb"])


def light_colours(spectra, weights, t, b):
  """(..., G, 3) linear sRGB of each group's light on a white reflector, white-balanced for
  group 0: with one group, M_sRGB T(b) (1, 1, 1)."""
  if weights.shape[-2] > 1:
    from data.synth import light_render  # pylint: disable=g-import-not-at-top
    return light_render.light_colours(spectra, weights, t, b)
  del weights, t
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  t_matrix = physics.raw_to_xyz(spectra, b)
  white = physics.xyz_to_linear_srgb(t_matrix.sum(-1))
  return jnp.asarray(white)[..., None, :]


def sample_camera(rng: np.random.Generator, options: faces.FaceOptions,
                  kind: str = "srgb") -> dict:
  """Camera knobs: "srgb" (the options' noise and JPEG quality, nothing random) or "chain"
  (`data.synth.camera_chain.sample_camera`)."""
  if kind == "chain":
    from data.synth import camera_chain  # pylint: disable=g-import-not-at-top
    return dict(camera_chain.sample_camera(rng), kind="chain")
  if kind != "srgb":
    raise ValueError(f"camera kind must be 'srgb' or 'chain', got {kind!r}")
  return dict(kind="srgb", noise=float(options.noise), quantise=bool(options.quantise),
              jpeg_quality=options.jpeg_quality)


def srgb_encode(x: np.ndarray) -> np.ndarray:
  """The exact sRGB curve in NumPy (`physics.srgb_encode`'s formula), negatives to 0."""
  x = np.maximum(np.asarray(x, np.float32), 0.0)
  return np.where(x <= 0.0031308, 12.92 * x,
                  1.055 * np.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(y: np.ndarray) -> np.ndarray:
  """Inverse of `srgb_encode` (NumPy)."""
  y = np.asarray(y, np.float32)
  return np.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4).astype(np.float32)


def apply_camera(linear: np.ndarray, knobs: dict, rng: np.random.Generator,
                 out_size: int) -> np.ndarray:
  """Linear sRGB at the render size -> stored image in [0, 1] at `out_size` (float32).

  "srgb": box downsampling in linear light, Gaussian noise (sd ``noise``), the exact sRGB
  curve, clipping, 8-bit rounding and optionally a JPEG round trip. "chain":
  `data.synth.camera_chain.apply_camera` (its 8-bit output / 255).
  """
  if knobs["kind"] == "chain":
    from data.synth import camera_chain  # pylint: disable=g-import-not-at-top
    chain = {k: v for k, v in knobs.items() if k != "kind"}
    return camera_chain.apply_camera(linear, chain, rng, out_size).astype(np.float32) / 255.0
  x = np.asarray(linear, np.float32)
  k = x.shape[0] // out_size
  if k * out_size != x.shape[0]:
    raise ValueError(f"render size {x.shape[0]} is not a multiple of the output {out_size}")
  x = x.reshape(out_size, k, out_size, k, 3).mean((1, 3))
  if knobs["noise"]:
    x = x + knobs["noise"] * rng.standard_normal(x.shape).astype(np.float32)
  y = np.clip(srgb_encode(x), 0.0, 1.0)
  if knobs["quantise"] or knobs["jpeg_quality"] is not None:
    y = np.round(y * 255.0) / 255.0
  if knobs["jpeg_quality"] is not None:
    y = faces.jpeg_round_trip(y, knobs["jpeg_quality"])
  return y.astype(np.float32)
