"""Deprecated location: the face detector lives in `bioface_jax.photo.detect` (re-exported here)."""

from bioface_jax.photo.detect import *  # noqa: F401,F403
from bioface_jax.photo.detect import (BOX_TO_CROP, DetectorUnavailable, detect_faces,  # noqa: F401
                                      face_crops, training_frame)
