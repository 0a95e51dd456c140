"""Photometric stereo physics (pure jnp, no Flax): rendering, Woodham, lights, metrics.

The public contract (../shared/design/architecture.md, sdps-spec.md §2): frame x right, y up,
z toward the camera (orthographic view (0, 0, 1)), image row 0 at the top; images
(..., N, H, W, 3) linear and never clipped; lights (..., N, 3) unit with z > 0; angles in
degrees. Shape errors are raised at trace time; value errors (NaN, non-unit or lower-hemisphere
lights) on concrete inputs.
"""

from bioface_jax.photometric.lights import decode_light_direction
from bioface_jax.photometric.lights import decode_light_intensity
from bioface_jax.photometric.lights import diligent_like_lights
from bioface_jax.photometric.lights import encode_light_direction
from bioface_jax.photometric.lights import encode_light_intensity
from bioface_jax.photometric.lights import expected_light_direction
from bioface_jax.photometric.lights import expected_light_intensity
from bioface_jax.photometric.lights import sample_light_directions
from bioface_jax.photometric.lights import sample_light_intensities
from bioface_jax.photometric.metrics import angular_error
from bioface_jax.photometric.metrics import intensity_error
from bioface_jax.photometric.metrics import light_direction_error
from bioface_jax.photometric.metrics import mean_angular_error
from bioface_jax.photometric.metrics import normal_error_stats
from bioface_jax.photometric.render import cast_shadows
from bioface_jax.photometric.render import render
from bioface_jax.photometric.render import render_lambertian
from bioface_jax.photometric.woodham import woodham

__all__ = [
    "angular_error", "cast_shadows", "decode_light_direction", "decode_light_intensity",
    "diligent_like_lights", "encode_light_direction", "encode_light_intensity",
    "expected_light_direction", "expected_light_intensity", "intensity_error",
    "light_direction_error", "mean_angular_error", "normal_error_stats", "render",
    "render_lambertian", "sample_light_directions", "sample_light_intensities", "woodham",
]
