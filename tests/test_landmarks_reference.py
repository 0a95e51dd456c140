"""The real-photo landmark reference (eval.landmarks_reference) and the painted head context.

Yaw fit: exact on orthographic projections of the template (closed form), within a few degrees
on the exact landmarks of synthetic faces with shape and expression. Box mapping and the oracle
baseline on hand values. dlib (optional extra ``reference``) on scikit-image's astronaut against
the hand-drawn face box. Context painting: deterministic, the truth unchanged, skin away from
the painted features unchanged, eyes painted inside their eyelid polygons only, the far eye of a
profile left closed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from data.prnet import context, synth
from data.synth import geometry
from eval import landmarks_reference as ref


@pytest.mark.parametrize("yaw", [-80.0, -35.0, 0.0, 20.0, 65.0])
def test_fit_yaw_is_exact_for_an_orthographic_template(yaw):
  t = geometry.load_template()
  screen = geometry.project(t.vertices, t, geometry.Pose(yaw, 0.0, 0.0, 0.7), 200)
  assert ref.fit_yaw(screen[t.landmark_vertices]) == pytest.approx(yaw, abs=1e-6)


def test_fit_yaw_on_synthetic_faces_with_shape_and_expression():
  errors = []
  for i in range(6):
    pair = synth.sample_pair(7, i, 64)
    errors.append(ref.fit_yaw(pair["landmarks3d"]) - pair["pose"][0])
  # Measured on 150 such faces: mean |error| 2-3 degrees, at most 13.
  assert np.max(np.abs(errors)) < 15.0


def test_dlib_box_own_or_mapped():
  face = (100, 200, 50, 50)
  box, kind = ref.dlib_box(face, [(0, 0, 10, 10), (98, 196, 150, 248)])
  assert kind == "own" and box == (98, 196, 150, 248)
  box, kind = ref.dlib_box(face, [(0, 0, 10, 10)])
  side = 50 * ref.DLIB_SIDE
  cy = 225 + ref.DLIB_SHIFT_Y * 50
  assert kind == "mapped"
  np.testing.assert_allclose(box, (125 - side / 2, cy - side / 2, 125 + side / 2, cy + side / 2))


def test_oracle_mean_face_fills_the_reference_box():
  mean = np.array([[0.0, 0.0, 5.0], [2.0, 1.0, 0.0], [4.0, 4.0, 1.0]])
  reference = np.array([[10.0, 20.0], [30.0, 60.0]])
  np.testing.assert_allclose(ref.oracle_mean_face(mean, reference),
                             [[10, 20], [20, 30], [30, 60]])


def test_dlib_finds_the_astronaut_landmarks():
  try:
    ref.dlib_models()
  except ref.ReferenceUnavailable as error:
    pytest.skip(f"optional extra 'reference' not installed: {error}")
  skimage_data = pytest.importorskip("skimage.data")
  from eval import predict  # pylint: disable=g-import-not-at-top
  image = skimage_data.astronaut()
  (pts, _, kind), = ref.dlib_landmarks(image, [(172, 74, 105, 105)])
  left, top, right, bottom = predict.EXAMPLES["astronaut"]
  assert kind == "own" and pts.shape == (68, 2)
  assert (pts[:, 0] > left - 10).all() and (pts[:, 0] < right + 10).all()
  assert (pts[:, 1] > top - 10).all() and (pts[:, 1] < bottom + 30).all()
  assert abs(ref.fit_yaw(pts)) < 30  # a frontal portrait


# ------------------------------------------------------------------------- context painting


def test_polygon_and_ellipse_masks_hand_values():
  m = context.polygon_mask(np.array([[0.5, 0.5], [3.5, 0.5], [3.5, 3.5], [0.5, 3.5]]), 6)
  assert m.sum() == 9 and m[1:4, 1:4].all()
  e = context.ellipse_mask(21, 10, 10, 6, 3)
  assert e[10, 10] == 1.0 and e[10, 20] == 0.0 and e[0, 10] == 0.0 and e[10, 14] == 1.0


def _face(index, size=64):
  batch = next(synth.generate_pairs(7, [index], size, batch_size=1))
  pair = synth.sample_pair(7, index, size)
  return batch["image"][0].astype(np.float32) / 255.0, pair["mask"], pair["landmarks3d"], \
      float(pair["pose"][0])


def test_context_is_deterministic_and_keeps_the_cheeks():
  image, mask, lmk, yaw = _face(6)  # yaw 12 degrees
  a = context.paint_context(image, mask, lmk, yaw, np.random.default_rng(3))
  b = context.paint_context(image, mask, lmk, yaw, np.random.default_rng(3))
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.float32 and a.shape == image.shape and 0 <= a.min() and a.max() <= 1
  # A cheek pixel (between the nose tip and the jaw) is skin: never painted.
  x, y = np.round(0.5 * (lmk[31, :2] + lmk[3, :2])).astype(int)
  assert mask[y, x]
  np.testing.assert_array_equal(a[y, x], image[y, x])
  # The eyes are painted, inside their polygons only.
  inside = context.polygon_mask(lmk[36:42], 64) & mask
  assert np.abs(a - image)[inside].max() > 0.05
  # Nothing else on the face changes, but its outline (blended with hair and neck over <= 3 px).
  interior = ndimage.binary_erosion(mask, iterations=3)
  assert not (np.abs(a - image).max(-1) > 1e-4)[interior & ~np.any(
      [context.polygon_mask(lmk[s:e], 64) for s, e in ((36, 42), (42, 48), (60, 68))], 0)
      & ~_near_brows_or_forehead(lmk, 64)].any()


def _near_brows_or_forehead(lmk, size):
  yy, _ = np.mgrid[0:size, 0:size]
  return yy <= lmk[36:48, 1].mean()  # brows and a possible fringe sit above the eye line


def test_context_hides_the_far_eye_of_a_profile():
  image, mask, lmk, yaw = _face(1)  # yaw 82 degrees
  assert abs(yaw) > 55
  a = context.paint_context(image, mask, lmk, yaw, np.random.default_rng(0))
  far = (36, 42) if lmk[36:42, 2].mean() < lmk[42:48, 2].mean() else (42, 48)
  inside = context.polygon_mask(lmk[far[0]:far[1]], 64) & mask
  np.testing.assert_array_equal(a[inside], image[inside])


def test_context_leaves_the_truth_unchanged():
  plain = next(synth.generate_pairs(7, [4], 64, batch_size=1))
  painted = next(synth.generate_pairs(7, [4], 64, batch_size=1, context=True))
  np.testing.assert_array_equal(plain["posmap"], painted["posmap"])
  np.testing.assert_array_equal(plain["landmarks"], painted["landmarks"])
  assert np.abs(plain["image"].astype(int) - painted["image"]).max() > 50


class _FakeRun:
  """A stand-in for PRNetRun: fixed landmarks in crop pixels (``follows="box"``) or in photo
  pixels (``follows="image"``), whatever the crop."""

  size = 64

  def __init__(self, follows: str):
    rng = np.random.default_rng(4)
    self.follows, self.points = follows, rng.uniform(10, 50, (68, 3))

  def landmarks_in(self, image, t):
    from bioface_jax import face3d  # pylint: disable=g-import-not-at-top
    if self.follows == "image":
      return self.points * [4.0, 4.0, 1.0] + [100.0, 80.0, 0.0]
    return face3d.uncrop_points(self.points, t)


@pytest.mark.parametrize("follows, want", [("box", (1.0, 1.0)), ("image", (0.0, 0.0))])
def test_box_response_is_one_when_the_box_decides_and_zero_when_the_image_does(follows, want):
  size, move = ref.box_response(_FakeRun(follows), np.zeros((300, 300, 3), np.uint8),
                                (100, 90, 80, 80))
  np.testing.assert_allclose((size, move), want, atol=1e-9)
