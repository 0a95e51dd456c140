"""Face-parsing label maps -> the face VAE's soft masks, and the authors' image preprocessing.

face-vae-spec.md section 1: the mask is 1 on face.PyTorch labels {1 skin, 2/3 brows, 4/5 eyes,
6 glasses, 10 nose, 11 mouth, 12/13 lips, 17 hair, 18 hat} and 0 on {0 background, 7/8 ears,
9 earring, 14 neck, 15 necklace, 16 cloth}; it is resized bilinearly (cv2 INTER_LINEAR, no
antialiasing) to the model size and *not* re-binarised. Images are squashed (not cropped) to the
model size with the same interpolation, then divided by 255.

CelebAMask-HQ numbers its classes differently (13 hair, 14 hat, 17 neck, 18 cloth: excluded set
{0, 8, 9, 15, 16, 17, 18}); `labels_to_mask(..., order="celebamask_hq")` handles that order.
"""

from __future__ import annotations

import numpy as np

# face-parsing.PyTorch order (the authors' mask_faceparsing PNGs).
FACEPARSING_EXCLUDED = (0, 7, 8, 9, 14, 15, 16)
CELEBAMASK_HQ_EXCLUDED = (0, 8, 9, 15, 16, 17, 18)
NUM_LABELS = 19
EXCLUDED = {"faceparsing": FACEPARSING_EXCLUDED, "celebamask_hq": CELEBAMASK_HQ_EXCLUDED}


def labels_to_mask(labels: np.ndarray, order: str = "faceparsing", *, source: str = "labels"
                   ) -> np.ndarray:
  """uint8 label map (..., H, W) -> float32 {0, 1} mask (1 = face incl. hair and hat).

  Raises:
    ValueError: unknown order, or labels outside 0..18 (naming `source`).
  """
  if order not in EXCLUDED:
    raise ValueError(f"label order must be one of {sorted(EXCLUDED)}, got {order!r}")
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_LABELS):
    raise ValueError(f"{source}: face-parsing labels must lie in 0..{NUM_LABELS - 1}, found "
                     f"values in [{labels.min()}, {labels.max()}]; is this a label map?")
  return (~np.isin(labels, EXCLUDED[order])).astype(np.float32)


def resize_like_cv2(image: np.ndarray, size: int) -> np.ndarray:
  """cv2.resize(image, (size, size), INTER_LINEAR) without OpenCV: half-pixel-centre bilinear,
  no antialiasing, edge clamping; float32 out (round yourself to keep uint8 semantics)."""
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]

  def coords(n_in):
    pos = (np.arange(size, dtype=np.float64) + 0.5) * (n_in / size) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)

  y0, y1, fy = coords(h)
  x0, x1, fx = coords(w)
  expand = (slice(None),) + (None,) * (image.ndim - 1)
  rows = image[y0] * (1 - fy[expand]) + image[y1] * fy[expand]
  expand_x = (slice(None),) + (None,) * (image.ndim - 2)
  return rows[:, x0] * (1 - fx[expand_x]) + rows[:, x1] * fx[expand_x]


def preprocess(image_uint8: np.ndarray, labels: np.ndarray | None, size: int, *,
               order: str = "faceparsing", source: str = "example"
               ) -> tuple[np.ndarray, np.ndarray | None]:
  """The authors' pipeline: (H, W, 3) uint8 RGB + label map -> (size, size, 3) in [0, 1] and a
  soft (size, size) mask. The label map may have any resolution (it covers the full frame).

  Raises:
    ValueError: an image that is not (H, W, 3) uint8 (naming `source`).
  """
  image_uint8 = np.asarray(image_uint8)
  if image_uint8.ndim != 3 or image_uint8.shape[-1] != 3 or image_uint8.dtype != np.uint8:
    raise ValueError(f"{source}: image must be (H, W, 3) uint8 RGB, got {image_uint8.shape} "
                     f"{image_uint8.dtype}")
  # cv2 keeps uint8 through the resize (rounding), then the code divides by 255.
  image = np.clip(np.round(resize_like_cv2(image_uint8, size)), 0, 255) / np.float32(255.0)
  mask = None
  if labels is not None:
    labels = np.asarray(labels)
    if labels.ndim != 2:
      raise ValueError(f"{source}: label map must be (H, W), got shape {labels.shape}")
    mask = resize_like_cv2(labels_to_mask(labels, order, source=source), size)
  return image.astype(np.float32), mask


def check_mask(mask: np.ndarray, image_shape: tuple[int, ...], source: str) -> np.ndarray:
  """Validates a soft mask against its image: shape (H, W) = image's, finite values in [0, 1]."""
  mask = np.asarray(mask, np.float32)
  if mask.shape != tuple(image_shape[:2]):
    raise ValueError(f"{source}: mask shape {mask.shape} does not match the image's "
                     f"{tuple(image_shape[:2])}")
  if not np.all(np.isfinite(mask)) or mask.min() < 0 or mask.max() > 1:
    raise ValueError(f"{source}: mask values must lie in [0, 1], found "
                     f"[{np.nanmin(mask)}, {np.nanmax(mask)}]")
  return mask
