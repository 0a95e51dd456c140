"""Two-layer spectral skin model and its lookup table (spec section 1).

Reflectance R(lambda; f_mel, f_bl) = T_epi(lambda)^2 * R_der(lambda): Lambert-Beer
transmittance through a melanin-bearing epidermis, Kubelka-Munk reflectance of a
blood-bearing dermis. The constants and the two quirks of the authors' SkinModel code
(thickness only on the melanin term; oxygenation weights applied twice to epidermal blood)
are kept for parity.

The network does not evaluate the model per pixel: it samples a 256x256x33 table
(axis 0 = haemoglobin, axis 1 = melanin, cubic node spacing) with corner-aligned bilinear
interpolation, exactly like MatConvNet's ``vl_nnbilinearsampler`` in the authors' code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from bioface_jax.physics.spectra import Spectra

# Constants of SkinModel/preparedModel.m and skinModel.m.
EUMELANIN_CONCENTRATION = 80.0      # mg/ml
PHEOMELANIN_CONCENTRATION = 12.0    # mg/ml
EUMELANIN_SHARE = 0.61
EPIDERMIS_THICKNESS = 0.02          # cm, used only in the melanin term
OXYGEN_SATURATION = 0.75
HAEMOGLOBIN_CONCENTRATION = 150.0   # g/L
HAEMOGLOBIN_MOLAR_WEIGHT = 66500.0  # g/mol
DERMIS_THICKNESS = 0.3              # cm
EPIDERMAL_BLOOD_SHARE = 0.25
EPIDERMAL_OXYGENATION = 0.75

# Grid of SkinModel/Demo.m: node value = max * u**3, u = linspace(0.01, 1, size).
MELANIN_MAX = 0.43
HAEMOGLOBIN_MAX = 0.07
GRID_START = 0.01


def absorption_spectra(spectra: Spectra) -> dict[str, jax.Array]:
  """The fixed absorption and scattering spectra of spec section 1.2.

  Returns:
    dict with ``melanin`` (optical depth), ``oxy``, ``deoxy``, ``blood``, ``baseline`` and
    ``scattering`` (cm^-1), each (33,).
  """
  lam = spectra.wavelengths
  melanin = EPIDERMIS_THICKNESS * (
      EUMELANIN_SHARE * EUMELANIN_CONCENTRATION * spectra.eumelanin
      + (1.0 - EUMELANIN_SHARE) * PHEOMELANIN_CONCENTRATION * spectra.pheomelanin)
  molar = 2.303 * HAEMOGLOBIN_CONCENTRATION / HAEMOGLOBIN_MOLAR_WEIGHT
  oxy = OXYGEN_SATURATION * molar * spectra.oxy_haemoglobin
  deoxy = (1.0 - OXYGEN_SATURATION) * molar * spectra.deoxy_haemoglobin
  baseline = 0.0244 + 8.53 * jnp.exp(-(lam - 154.0) / 66.2)
  scattering = 2e5 * lam**-1.5 + 2e12 * lam**-4.0
  return dict(melanin=melanin, oxy=oxy, deoxy=deoxy, blood=oxy + deoxy, baseline=baseline,
              scattering=scattering)


def skin_model(spectra: Spectra, melanin: jax.Array, haemoglobin: jax.Array) -> jax.Array:
  """Spectral reflectance of skin from volume fractions (spec sections 1.3-1.5).

  Args:
    spectra: the fixed spectra.
    melanin: (...) epidermal melanosome volume fraction f_mel (0..0.43 in the table).
    haemoglobin: (...) dermal blood volume fraction f_bl (0..0.07 in the table).

  Returns:
    (..., 33) diffuse reflectance.
  """
  mu = absorption_spectra(spectra)
  f_mel = jnp.asarray(melanin)[..., None]
  f_bl = jnp.asarray(haemoglobin)[..., None]
  epidermal_blood = EPIDERMAL_BLOOD_SHARE * f_bl
  a_epi = (f_mel * mu["melanin"]
           + epidermal_blood * (EPIDERMAL_OXYGENATION * mu["oxy"]
                                + (1.0 - EPIDERMAL_OXYGENATION) * mu["deoxy"])
           + (1.0 - f_mel - epidermal_blood) * mu["baseline"])
  transmittance = jnp.exp(-a_epi)
  a_der = f_bl * mu["blood"] + (1.0 - f_bl) * mu["baseline"]
  k = jnp.sqrt(a_der * (a_der + 2.0 * mu["scattering"]))
  beta = jnp.sqrt(a_der / (a_der + 2.0 * mu["scattering"]))
  # R_der with numerator and denominator divided by exp(K d): no overflow (spec 1.4 note).
  decay = jnp.exp(-2.0 * k * DERMIS_THICKNESS)
  r_der = (1.0 - beta**2) * (1.0 - decay) / ((1.0 + beta)**2 - (1.0 - beta)**2 * decay)
  return transmittance**2 * r_der


def lut_grid(size: int = 256, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
  """Node values of the lookup table: (haemoglobin (size,), melanin (size,)) fractions."""
  u = jnp.linspace(GRID_START, 1.0, size, dtype=dtype)
  return HAEMOGLOBIN_MAX * u**3, MELANIN_MAX * u**3


@functools.partial(jax.jit, static_argnames=("size",))
def skin_lut(spectra: Spectra, size: int = 256) -> jax.Array:
  """The skin reflectance table ``Newskincolour``, computed from the chromophore spectra.

  Args:
    spectra: the fixed spectra.
    size: nodes per axis (256 in the authors' code).

  Returns:
    (size, size, 33): ``lut[r, c] = R(f_mel = melanin[c], f_bl = haemoglobin[r])``; axis 0 is
    haemoglobin (blood), axis 1 melanin.
  """
  haemoglobin, melanin = lut_grid(size, spectra.wavelengths.dtype)
  return skin_model(spectra, melanin[None, :], haemoglobin[:, None])


def network_to_fractions(fmel: jax.Array, fblood: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Volume fractions at network coordinates in [-1, 1] (exact at the table's nodes).

  Between nodes the table interpolates reflectance, not concentration; this maps the
  coordinate through the same cubic node spacing, ``u = 0.01 + 0.99 (f + 1) / 2``.

  Returns:
    (melanin, haemoglobin) volume fractions.
  """
  def to_u(f):
    return GRID_START + (1.0 - GRID_START) * (jnp.clip(f, -1.0, 1.0) + 1.0) / 2.0
  return MELANIN_MAX * to_u(fmel)**3, HAEMOGLOBIN_MAX * to_u(fblood)**3


def fractions_to_network(melanin: jax.Array, haemoglobin: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Inverse of `network_to_fractions`: (fmel, fblood) in [-1, 1] for volume fractions."""
  def to_f(value, maximum):
    u = jnp.cbrt(jnp.clip(value / maximum, 0.0, 1.0))
    return jnp.clip(2.0 * (u - GRID_START) / (1.0 - GRID_START) - 1.0, -1.0, 1.0)
  return to_f(melanin, MELANIN_MAX), to_f(haemoglobin, HAEMOGLOBIN_MAX)


def corner_aligned_coordinates(value: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
  """Index and weight of corner-aligned bilinear sampling along one axis.

  ``value`` in [-1, 1] maps to the continuous index (value + 1) / 2 * (size - 1), where -1
  and +1 are the centres of the first and last nodes ("align_corners=True"). Values outside
  [-1, 1] are clamped to the edge nodes (documented clamping).

  Returns:
    (lower index (int32), weight of the upper node), such that the sample is
    ``(1 - w) * table[i] + w * table[i + 1]``.
  """
  position = (jnp.clip(value, -1.0, 1.0) + 1.0) / 2.0 * (size - 1)
  lower = jnp.clip(jnp.floor(position), 0, size - 2)
  return lower.astype(jnp.int32), position - lower


def bilinear_sample(table: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
  """Corner-aligned bilinear sampling of ``table (R, C, K)`` at coordinates in [-1, 1].

  Args:
    table: (R, C, K) table.
    row: (...) row coordinate in [-1, 1].
    col: (...) column coordinate in [-1, 1], same shape as ``row``.

  Returns:
    (..., K) interpolated values.
  """
  r0, wr = corner_aligned_coordinates(row, table.shape[0])
  c0, wc = corner_aligned_coordinates(col, table.shape[1])
  wr, wc = wr[..., None], wc[..., None]
  top = (1 - wc) * table[r0, c0] + wc * table[r0, c0 + 1]
  bottom = (1 - wc) * table[r0 + 1, c0] + wc * table[r0 + 1, c0 + 1]
  return (1 - wr) * top + wr * bottom


def skin_reflectance(lut: jax.Array, fmel: jax.Array, fblood: jax.Array) -> jax.Array:
  """Spectral reflectance at network coordinates, sampled from the lookup table.

  Args:
    lut: (size, size, 33) table from `skin_lut` (axis 0 = blood, axis 1 = melanin).
    fmel: (...) melanin coordinate in [-1, 1].
    fblood: (...) haemoglobin coordinate in [-1, 1], same shape as ``fmel``.

  Returns:
    (..., 33) reflectance. Row = (fblood + 1) / 2 * (size - 1),
    column = (fmel + 1) / 2 * (size - 1); out-of-range coordinates clamp to the edge.
  """
  fmel, fblood = jnp.broadcast_arrays(jnp.asarray(fmel), jnp.asarray(fblood))
  return bilinear_sample(lut, fblood, fmel)
