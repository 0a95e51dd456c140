"""The fixed, differentiable spectral face renderer of BioFaceNet (pure JAX, no Flax).

The public API is the contract of ``design/architecture.md``: every function is pure,
accepts leading batch dimensions, works in float32 by default (float64 with
``jax_enable_x64``) and is differentiable in every continuous argument.
"""

from bioface_jax.physics.camera import camera_sensitivity
from bioface_jax.physics.camera import light_colour
from bioface_jax.physics.camera import raw_to_xyz
from bioface_jax.physics.display import gamma_decode
from bioface_jax.physics.display import gamma_encode
from bioface_jax.physics.display import srgb_decode
from bioface_jax.physics.display import srgb_encode
from bioface_jax.physics.display import to_uint8
from bioface_jax.physics.display import xyz_to_linear_srgb
from bioface_jax.physics.illumination import cct_to_index
from bioface_jax.physics.illumination import daylight_cie
from bioface_jax.physics.illumination import daylight_table
from bioface_jax.physics.illumination import illuminant
from bioface_jax.physics.illumination import index_to_cct
from bioface_jax.physics.render import fold_lut
from bioface_jax.physics.render import render
from bioface_jax.physics.shading import decode_normals
from bioface_jax.physics.shading import sh_irradiance
from bioface_jax.physics.shading import shading_target
from bioface_jax.physics.sh_fit import fit_sh_lighting
from bioface_jax.physics.sh_fit import sh_shading
from bioface_jax.physics.skin import fractions_to_network
from bioface_jax.physics.skin import network_to_fractions
from bioface_jax.physics.skin import skin_lut
from bioface_jax.physics.skin import skin_model
from bioface_jax.physics.skin import skin_reflectance
from bioface_jax.physics.spectra import load_spectra
from bioface_jax.physics.spectra import Spectra
from bioface_jax.physics.spectra import SpectraFormatError

__all__ = [
    "camera_sensitivity", "cct_to_index", "daylight_cie", "daylight_table", "decode_normals",
    "fit_sh_lighting", "fold_lut", "fractions_to_network", "gamma_decode", "gamma_encode", "illuminant",
    "index_to_cct", "light_colour", "load_spectra", "network_to_fractions", "raw_to_xyz", "render",
    "sh_irradiance", "sh_shading", "shading_target", "skin_lut", "skin_model", "skin_reflectance", "Spectra",
    "SpectraFormatError", "srgb_decode", "srgb_encode", "to_uint8", "xyz_to_linear_srgb",
]
