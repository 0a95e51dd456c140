"""Real photographs in and out of the four systems (the library side of the photo commands).

* `read`: a photo as a viewer shows it (EXIF orientation, 16-bit and greyscale, transparency
  on white, huge images reduced or refused), as float32 RGB in [0, 1].
* `detect`: face boxes on photos in one box convention (BlazeFace, `blazeface`, with OpenCV's
  Haar cascade as a fallback; optional), and BioFaceNet's training framing of them.
* `framing`: each system's square crop from a face box, as its training faces are framed.
* `biofacenet_fit`: BioFaceNet's decomposition of a photo and its per-photo refinement.
* `prnet_face`: PRNet's landmarks and dense mesh of a photo, in photo pixels.
* `light_stack`: SDPS-Net on a folder of photos of one scene under different lights.

All work on `bioface_jax.pretrained.Pretrained` models. Optional dependencies (LiteRT, OpenCV,
pypng) are imported only when called, so the library imports without them; no module does I/O
at import.
"""
