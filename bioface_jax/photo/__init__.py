"""Real photographs in and out of the four systems: face detection and framing.

`detect`: face boxes on photos and the square crops that frame a face as the training faces
are framed. Optional dependencies (OpenCV and the like) are imported only when called, so the
library imports without them.
"""
