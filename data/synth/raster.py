"""The triangle rasteriser now lives in the library (`bioface_jax.face3d.raster`); re-exported
here for the data generators that import it from `data.synth`."""

from bioface_jax.face3d.raster import _rasterise_flat  # noqa: F401
from bioface_jax.face3d.raster import rasterise_triangles  # noqa: F401
