"""Face VAE data: label sets, the cv2-style resize, synthetic scenes, the CelebA reader, and
bad input errors that name the file and the problem."""

import io
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from data import face_masks
from data import synth_vae
from data.celeba_faceparsing import reader

U32 = 2.0**-24


def test_label_sets_both_orders():
  labels = np.arange(19, dtype=np.uint8)
  fp = face_masks.labels_to_mask(labels)
  assert set(np.nonzero(fp == 0)[0]) == {0, 7, 8, 9, 14, 15, 16}  # spec section 1
  assert fp[17] == 1 and fp[18] == 1  # hair and hat are in the mask
  hq = face_masks.labels_to_mask(labels, "celebamask_hq")
  assert set(np.nonzero(hq == 0)[0]) == {0, 8, 9, 15, 16, 17, 18}
  with pytest.raises(ValueError, match="x.png: face-parsing labels must lie in 0..18"):
    face_masks.labels_to_mask(np.array([[3, 200]]), source="x.png")


def test_resize_matches_jax_linear_without_antialias():
  # Both are half-pixel-centre bilinear with edge clamping. JAX forms each weight from a
  # float32 sample position of magnitude <= n_in, so a weight is off by <= n_in u; on values
  # <= 255 with 2 x 2 taps that bounds the difference by 4 n_in u 255.
  img = np.random.default_rng(0).integers(0, 256, (37, 29, 3)).astype(np.float32)
  for size in (72, 16):
    ours = face_masks.resize_like_cv2(img, size)
    ref = jax.image.resize(jnp.asarray(img), (size, size, 3), "linear", antialias=False)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=4 * 37 * U32 * 255)


def test_preprocess_and_bad_images():
  image = np.random.default_rng(1).integers(0, 256, (218, 178, 3), np.uint8)
  labels = np.zeros((512, 512), np.uint8)
  labels[100:400, 100:400] = 1
  x, m = face_masks.preprocess(image, labels, 32)
  assert x.shape == (32, 32, 3) and m.shape == (32, 32)
  assert np.all(x * 255 == np.round(x * 255)) and 0 <= m.min() and m.max() == 1
  with pytest.raises(ValueError, match="a.jpg: image must be .* uint8"):
    face_masks.preprocess(image.astype(np.float32), labels, 32, source="a.jpg")
  with pytest.raises(ValueError, match="mask shape .* does not match"):
    face_masks.check_mask(np.ones((5, 5)), (6, 6, 3), "m.png")
  with pytest.raises(ValueError, match=r"m.png: mask values must lie in \[0, 1\]"):
    face_masks.check_mask(np.full((6, 6), 2.0), (6, 6, 3), "m.png")


def test_synthetic_scenes_deterministic_with_exact_soft_masks():
  a_img, a_mask = synth_vae.generate(np.array([3, 5]), 16, seed=2)
  b_img, b_mask = synth_vae.generate(np.array([5]), 16, seed=2)
  np.testing.assert_array_equal(a_img[1], b_img[0])  # face 5 does not depend on its batch
  np.testing.assert_array_equal(a_mask[1], b_mask[0])
  assert a_img.dtype == np.uint8 and a_img.shape == (2, 16, 16, 3)
  np.testing.assert_array_equal(a_mask * 4, np.round(a_mask * 4))  # 2x2 coverage fractions
  assert 0 < a_mask.mean() < 1 and a_mask.min() == 0 and a_mask.max() == 1


def test_scene_cache_errors_name_the_file(tmp_path):
  bad = tmp_path / "vae_train.npz"
  bad.write_bytes(b"not an npz")
  with pytest.raises(ValueError, match="vae_train.npz: not a readable VAE scene cache"):
    synth_vae.load_scenes(bad)
  with pytest.raises(ValueError, match="masks .* do not match images"):
    synth_vae.SceneArrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 7)), "s")


def test_direct_reader_on_fake_manual_dir(tmp_path):
  root = reader.write_fake_manual_dir(tmp_path / "manual")
  train = reader.DirectSplit(root, "train", 32)
  assert len(train) == 2 and train.missing_masks == 1
  assert len(reader.DirectSplit(root, "test", 32)) == 2
  batch = train.get(np.arange(2))
  assert batch["image"].shape == (2, 32, 32, 3) and batch["mask"].shape == (2, 32, 32)
  # The fake label map: hair (17) on the top fifth and skin in the centre are in the mask,
  # cloth (16) at the bottom is out.
  assert batch["mask"][0, 0].min() == 1 and batch["mask"][0, -1].max() == 0


def test_reader_bad_inputs_name_file_and_problem(tmp_path):
  root = reader.write_fake_manual_dir(tmp_path / "m")
  (root / reader.PARTITION_FILE).rename(root / "elsewhere.txt")
  with pytest.raises(FileNotFoundError, match="missing split file .*list_eval_partition.txt"):
    reader.DirectSplit(root, "train", 32)
  (root / reader.PARTITION_FILE).write_text("000001.jpg 0\n000002.jpg seven\n")
  with pytest.raises(ValueError, match=r"list_eval_partition.txt:2: expected"):
    reader.DirectSplit(root, "train", 32)
  (root / reader.PARTITION_FILE).write_text("000001.jpg 0\n999999.jpg 0\n")
  with pytest.raises(FileNotFoundError, match="missing, e.g. .*999999.jpg"):
    reader.DirectSplit(root, "train", 32)
  (root / reader.PARTITION_FILE).write_text("000001.jpg 0\n000002.jpg 0\n")
  src = zipfile.ZipFile(root / "img_align_celeba.zip")
  entries = {n: src.read(n) for n in src.namelist()}
  src.close()
  entries["img_align_celeba/000001.jpg"] = b"\xff\xd8 truncated"
  with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as z:
    for n, data in entries.items():
      z.writestr(n, data)
  split = reader.DirectSplit(root, "train", 32)
  with pytest.raises(ValueError, match="000001.jpg: corrupt or unreadable image"):
    split.get(np.array([0]))
  rgb = io.BytesIO()
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb, "PNG")
  with pytest.raises(ValueError, match="9.png: not a face-parsing label map .*mode RGB"):
    reader.decode_labels(rgb.getvalue(), "9.png")
  grey = io.BytesIO()
  Image.fromarray(np.full((4, 4), 255, np.uint8)).save(grey, "PNG")
  with pytest.raises(ValueError, match="8.png: face-parsing labels must lie in 0..18"):
    reader.decode_labels(grey.getvalue(), "8.png")
