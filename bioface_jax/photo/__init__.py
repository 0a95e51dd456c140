"""Real photographs in and out of the four systems: face detection and framing.

`detect`: face boxes on photos (BlazeFace, `blazeface`, or OpenCV's Haar cascade as a
fallback), in one stated box convention, and BioFaceNet's training framing of them (PRNet's:
`bioface_jax.face3d.face_box_transform`). Optional dependencies (BlazeFace's runtime, OpenCV)
are imported only when called, so the library imports without them.
"""
