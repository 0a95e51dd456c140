"""Skin and non-skin colour under several light groups, white-balanced once for the main group.

`physics.render` white-balances every image for its own illuminant (von Kries, dividing raw by
the light colour lc), so rendering each light group separately and adding the linear sRGB
results would make every light look white. A camera white-balances once: here raw images of all
groups are summed and divided by the **main group's** (group 0) light colour, then mapped to
XYZ and linear sRGB exactly as `physics.render` does (its ``raw_to_xyz`` depends only on b):

    raw_g    = diffuse_g * albedo(fmel, fblood; e_g, b) + specular_g * lc_g      (physics.render)
    linear   = max(0, M_sRGB T(b) (sum_g raw_g) / lc_0)

With one group this is exactly ``physics.render(...)["linear_srgb"]``. Non-skin materials with
a linear-sRGB reflectance ``rho`` (1 = a perfect white) are ``rho * sum_g colour_g * diffuse_g``
with ``colour_g = max(0, M_sRGB T(b) lc_g / lc_0)`` (`light_colours`): the same pipeline applied
to a spectrally flat reflector, so a white object under the main light has the colour of a
white skin-model reflector, ``M_sRGB T(b) (1, 1, 1)`` ~ (0.342, 0.343, 0.342) (the authors'
RAW->XYZ rows sum to the D65 white with Y = 0.3425, not 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bioface_jax import physics
from bioface_jax.physics.render import LIGHT_COLOUR_FLOOR


@jax.jit
def render_skin(spectra: physics.Spectra, lut: jax.Array, fmel: jax.Array, fblood: jax.Array,
                diffuse: jax.Array, specular: jax.Array, weights: jax.Array, t: jax.Array,
                b: jax.Array) -> dict[str, jax.Array]:
  """Linear sRGB of skin lit by G light groups, white-balanced for group 0.

  Args:
    spectra, lut: `physics.load_spectra()`, `physics.skin_lut(spectra)`.
    fmel, fblood: (..., H, W) pigment coordinates in [-1, 1].
    diffuse, specular: (..., G, H, W) shading per group (`lighting.shade`).
    weights: (..., G, 14) illuminant weights per group; t: (..., G) daylight indices.
    b: (..., 2) camera parameters (one camera).

  Returns:
    dict: linear_srgb (..., H, W, 3); albedo (..., H, W, 3) the diffuse albedo under the main
    group's light through the same pipeline (`physics.render`'s albedo_linear_srgb of group
    0); raw (..., H, W, 3) summed over groups; light_colour (..., G, 3) raw light colours
    lc_g; colours (..., G, 3) as `light_colours`.
  """
  diffuse = jnp.asarray(diffuse)
  if diffuse.ndim < 3:
    raise ValueError(f"diffuse must be (..., G, H, W), got shape {diffuse.shape}")
  groups = diffuse.shape[-3]
  expand = lambda x: jnp.broadcast_to(jnp.asarray(x)[..., None, :, :],  # noqa: E731
                                      x.shape[:-2] + (groups,) + x.shape[-2:])
  b = jnp.asarray(b)
  out = physics.render(spectra, lut, expand(jnp.asarray(fmel)), expand(jnp.asarray(fblood)),
                       diffuse, specular, weights, t,
                       jnp.broadcast_to(b[..., None, :], b.shape[:-1] + (groups, 2)))
  raw = out["raw"].sum(-4)
  lc = out["light_colour"]                                       # (..., G, 3)
  main = jnp.maximum(lc[..., 0, :], LIGHT_COLOUR_FLOOR)
  t_matrix = out["raw_to_xyz"][..., 0, :, :]
  xyz = jnp.einsum("...ij,...hwj->...hwi", t_matrix, raw / main[..., None, None, :])
  colours = physics.xyz_to_linear_srgb(jnp.einsum("...ij,...gj->...gi", t_matrix,
                                                  lc / main[..., None, :]))
  return dict(linear_srgb=physics.xyz_to_linear_srgb(xyz),
              albedo=out["albedo_linear_srgb"][..., 0, :, :, :], raw=raw, light_colour=lc,
              colours=colours)


@jax.jit
def light_colours(spectra: physics.Spectra, weights: jax.Array, t: jax.Array,
                  b: jax.Array) -> jax.Array:
  """(..., G, 3) linear-sRGB colour of each group's light on a white reflector, white-balanced
  for group 0 (multiply a non-skin linear-sRGB reflectance by sum_g colour_g diffuse_g).

  Args:
    weights: (..., G, 14); t: (..., G); b: (..., 2).
  """
  weights = jnp.asarray(weights)
  e = physics.illuminant(spectra, weights, t)
  b = jnp.asarray(b)
  sens = physics.camera_sensitivity(spectra, b)                      # (..., 3, 33)
  lc = jnp.einsum("...cl,...gl->...gc", sens, e)                    # (..., G, 3)
  t_matrix = physics.raw_to_xyz(spectra, b)                          # (..., 3, 3)
  main = jnp.maximum(lc[..., :1, :], LIGHT_COLOUR_FLOOR)
  return physics.xyz_to_linear_srgb(jnp.einsum("...ij,...gj->...gi", t_matrix, lc / main))
