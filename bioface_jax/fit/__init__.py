"""Least-squares biophysical decomposition of multispectral skin images (ICIP 2019 fit).

`fit_cube` decomposes a spectral radiance cube into melanin, haemoglobin, diffuse and
specular shading maps; `fit_reflectance` fits pigments to measured reflectance spectra.
"""

from bioface_jax.fit.multispectral import fit_cube
from bioface_jax.fit.multispectral import fit_reflectance
from bioface_jax.fit.multispectral import SOLVERS

__all__ = ["SOLVERS", "fit_cube", "fit_reflectance"]
