"""Per-pixel class labels of the synthetic face world, and their face-parsing equivalents.

Labels 0-18 are face-parsing.PyTorch's classes (`data.face_masks`, the order of the face VAE's
masks) with the same meaning; 19-23 are classes that set has no name for. `LEFT` / `RIGHT`
classes are the image left / right of a frontal face (the eye of landmarks 36-41 is
`EYE_LEFT`). Every pixel of a scene carries exactly one label; `SKIN_LABELS` are surfaces
rendered through the spectral skin model of the subject, which is where skin truth
(melanin, haemoglobin, shading) exists, unless an overlay (brows, lashes, stubble, glasses
lens, hair strands) covers the pixel.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 0
SKIN = 1
BROW_LEFT, BROW_RIGHT = 2, 3
EYE_LEFT, EYE_RIGHT = 4, 5
GLASSES = 6
EAR_LEFT, EAR_RIGHT = 7, 8
EARRING = 9
NOSE = 10
MOUTH = 11
UPPER_LIP, LOWER_LIP = 12, 13
NECK = 14
NECKLACE = 15
CLOTH = 16
HAIR = 17
HAT = 18
TEETH = 19
BEARD = 20
HAND = 21          # A hand or held object at the frame edge.
OTHER_PERSON = 22  # Another face, head or body partly in frame.
OBJECT = 23        # Any other occluder (cup, phone, microphone).

NAMES = ("background", "skin", "brow_left", "brow_right", "eye_left", "eye_right", "glasses",
         "ear_left", "ear_right", "earring", "nose", "mouth", "upper_lip", "lower_lip", "neck",
         "necklace", "cloth", "hair", "hat", "teeth", "beard", "hand", "other_person", "object")
NUM_LABELS = len(NAMES)

# Subject surfaces drawn with the spectral skin model.
SKIN_LABELS = (SKIN, EAR_LEFT, EAR_RIGHT, NOSE, UPPER_LIP, LOWER_LIP, NECK)
# Our classes in face-parsing.PyTorch order (teeth -> mouth, beard -> hair, hand / other
# person / object -> background, as a face parser would label them).
TO_FACEPARSING = np.array(list(range(19)) + [MOUTH, HAIR, BACKGROUND, BACKGROUND, BACKGROUND],
                          np.uint8)
# The face VAE's mask: face incl. hair and hat (face_masks.FACEPARSING_EXCLUDED are 0).
_MASK_EXCLUDED = (BACKGROUND, EAR_LEFT, EAR_RIGHT, EARRING, NECK, NECKLACE, CLOTH, HAND,
                  OTHER_PERSON, OBJECT)
# The face as a face parser outlines it: skin and its parts (brows, eyes, nose, mouth, lips,
# teeth), with what covers them inside the outline (glasses, beard); no hair, ears or neck.
FACE_REGION_LABELS = (SKIN, BROW_LEFT, BROW_RIGHT, EYE_LEFT, EYE_RIGHT, GLASSES, NOSE, MOUTH,
                      UPPER_LIP, LOWER_LIP, TEETH, BEARD)
VAE_MASK = np.array([0.0 if i in _MASK_EXCLUDED else 1.0 for i in range(NUM_LABELS)],
                    np.float32)


def to_faceparsing(labels: np.ndarray) -> np.ndarray:
  """uint8 label map (..., H, W) of this module -> face-parsing.PyTorch labels 0..18."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_LABELS):
    raise ValueError(f"labels must lie in 0..{NUM_LABELS - 1}, got [{labels.min()}, "
                     f"{labels.max()}]")
  return TO_FACEPARSING[labels]


def vae_mask(labels: np.ndarray) -> np.ndarray:
  """float32 {0, 1} map (..., H, W): 1 on face, facial parts, hair, beard, glasses, hat."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_LABELS):
    raise ValueError(f"labels must lie in 0..{NUM_LABELS - 1}, got [{labels.min()}, "
                     f"{labels.max()}]")
  return VAE_MASK[labels]


def face_region(labels: np.ndarray) -> np.ndarray:
  """float32 {0, 1} map (..., H, W): 1 on `FACE_REGION_LABELS` (the face and its parts)."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_LABELS):
    raise ValueError(f"labels must lie in 0..{NUM_LABELS - 1}, got [{labels.min()}, "
                     f"{labels.max()}]")
  return np.isin(labels, FACE_REGION_LABELS).astype(np.float32)
