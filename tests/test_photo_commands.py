"""Photos in, files out: `bioface_jax.photo` (reading, framing) and the four inference commands.

Reading is checked against independent references (Pillow's own ``ImageOps.exif_transpose``
for all eight EXIF orientations, hand values for 16-bit and alpha), framing on hand values, and
the commands end to end on tiny untrained exports of the four systems (`tests.tiny_models`)
with photos the tests write: a batch mixing good photos with a 1x1 image and an unreadable file
(the good ones are written, exit status 1), folders, quoted globs, two photos with the same
stem, an output path that is a file, a missing file, ``--help``. Each command's saved arrays
equal ``pretrained.load(path).apply`` on the saved crop.
"""

from __future__ import annotations

import pathlib
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from bioface_jax import pretrained
from bioface_jax.photo import framing, read
from eval import cli, predict, prnet_predict, sdps_predict, vae_predict
from tests import tiny_models


def _random_photo(h, w, seed=0):
  yy, xx = np.mgrid[0:h, 0:w]
  rng = np.random.default_rng(seed)
  base = np.stack([150 + 60 * np.sin(xx / 7), 110 + 40 * np.cos(yy / 9),
                   90 + 20 * np.sin((xx + yy) / 11)], -1)
  return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
  image = Image.fromarray(_random_photo(6, 9, orientation))
  exif = image.getexif()
  exif[0x0112] = orientation
  image.save(tmp_path / "o.png", exif=exif)
  photo = read.read_photo(tmp_path / "o.png", min_side=1)
  with Image.open(tmp_path / "o.png") as opened:
    upright = np.asarray(ImageOps.exif_transpose(opened)).astype(np.float32) / 255
  np.testing.assert_array_equal(photo.pixels, upright)
  assert photo.original_size == (upright.shape[1], upright.shape[0])
  assert bool(photo.notes) == (orientation != 1)


def test_phone_jpeg_is_turned_upright(tmp_path):
  stored = np.zeros((20, 40, 3), np.uint8)
  stored[:, :10] = 255                          # a white band at the stored left edge
  image = Image.fromarray(stored)
  exif = image.getexif()
  exif[0x0112] = 6                              # "rotate 90 clockwise to view"
  image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
  photo = read.read_photo(tmp_path / "phone.jpg")
  assert photo.pixels.shape == (40, 20, 3)      # viewer: portrait
  assert photo.pixels[:8].mean() > 0.95 and photo.pixels[-25:].mean() < 0.05  # band on top


def test_sixteen_bit_grey_alpha_and_colour_depths(tmp_path):
  grey16 = np.array([[0, 1000, 65535, 40000]] * 16, np.uint16)
  Image.fromarray(grey16).save(tmp_path / "g16.png")
  photo = read.read_photo(tmp_path / "g16.png", min_side=4)
  expected = grey16.astype(np.float64) / 65535           # not 1.0 (white) everywhere
  np.testing.assert_allclose(photo.pixels, np.repeat(expected[..., None], 3, -1), atol=1e-7)
  assert photo.bits == 16
  rgba = np.zeros((16, 16, 4), np.uint8)
  rgba[..., 0], rgba[..., 3] = 200, np.arange(16, dtype=np.uint8)[None] * 17
  Image.fromarray(rgba).save(tmp_path / "a.png")
  alpha = rgba[..., 3] / 255.0
  on_white = np.stack([200 / 255 * alpha + 1 - alpha, 1 - alpha, 1 - alpha], -1)
  photo = read.read_photo(tmp_path / "a.png")
  np.testing.assert_allclose(photo.pixels, on_white, atol=1e-6)
  assert "white" in photo.notes[0]
  png = pytest.importorskip("png")
  rgb16 = np.full((16, 16, 3), 40000, np.uint16)
  with open(tmp_path / "c16.png", "wb") as f:
    png.Writer(16, 16, greyscale=False, bitdepth=16).write(f, rgb16.reshape(16, 48))
  np.testing.assert_allclose(read.read_photo(tmp_path / "c16.png").pixels, 40000 / 65535,
                             atol=1e-7)


def _png_header_only(path, width, height):
  """A PNG that declares width x height but holds one byte of image data."""
  def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
      ">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0"))
                   + chunk(b"IEND", b""))


def test_bad_files_are_refused_with_their_name(tmp_path):
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "one.png")
  with pytest.raises(ValueError, match=r"one\.png: 1x1 pixels is too small"):
    read.read_photo(tmp_path / "one.png")
  (tmp_path / "notes.jpg").write_text("not an image")
  with pytest.raises(ValueError, match=r"notes\.jpg: not a readable image"):
    read.read_photo(tmp_path / "notes.jpg")
  with pytest.raises(FileNotFoundError, match="gone.png"):
    read.read_photo(tmp_path / "gone.png")
  _png_header_only(tmp_path / "huge.png", 13_500, 13_500)   # no decompression bomb
  for reader in (read.read_photo, read.probe):
    with pytest.raises(ValueError, match=r"huge\.png: 13500x13500 pixels \(182\.2 megapixels\)"):
      reader(tmp_path / "huge.png")


def test_large_jpeg_is_decoded_reduced(tmp_path):
  Image.fromarray(np.full((64, 80, 3), 100, np.uint8)).save(tmp_path / "big.jpg")
  photo = read.read_photo(tmp_path / "big.jpg", max_pixels=1000, min_side=1)
  assert photo.pixels.shape[0] * photo.pixels.shape[1] <= 1000
  assert photo.scale == 80 / photo.pixels.shape[1] and photo.original_size == (80, 64)
  assert "read at 1/" in photo.notes[-1]
  np.testing.assert_allclose(photo.pixels, 100 / 255, atol=3 / 255)
  # Pixel i of a reduction by s covers originals s*i .. s*i + s - 1.
  np.testing.assert_allclose(photo.to_original(np.array([[0.0, 1.0, 2.0]])),
                             [[(photo.scale - 1) / 2, photo.scale + (photo.scale - 1) / 2,
                               2 * photo.scale]])


# ------------------------------------------------------------------------------ framing


def test_face_boxes_and_crops_on_hand_values():
  assert framing.face_box((10, 20, 50, 80), 100, 100) == (10, 20, 40, 60)
  with pytest.raises(ValueError, match="outside the 100x60 photo"):
    framing.face_box((120, 0, 140, 20), 100, 60)
  with pytest.raises(ValueError, match="empty"):
    framing.face_box((10, 10, 10, 30), 100, 60)
  assert framing.central_square(100, 60) == (20, 0, 80, 60)   # square, never stretched
  from bioface_jax.photo import detect
  assert framing.crop_for("biofacenet", (100, 100, 62, 62), 1000, 1000) == \
      detect.training_frame((100, 100, 62, 62), 1000, 1000)
  # VAE: side 62 / (BOX_TO_CROP * 0.72); the box centre (131) at 0.09 + 0.72 BOX_CENTRE_Y.
  side = 62 / (detect.BOX_TO_CROP * 0.72)
  top = 131 - (0.09 + 0.72 * detect.BOX_CENTRE_Y) * side
  assert framing.crop_for("face_vae", (100, 100, 62, 62), 1000, 1000) == (
      round(131 - side / 2), round(top), round(131 - side / 2) + round(side),
      round(top) + round(side))
  # Area averaging: a 2x2 crop of 4 values -> their mean.
  pixels = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 16
  np.testing.assert_allclose(framing.resize_crop(pixels, (0, 0, 2, 2), 1)[0, 0, 0],
                             (0 + 1 + 4 + 5) / 64, rtol=1e-6)


def test_prnet_central_square_maps_pixel_centres():
  t = framing.prnet_central_transform(100, 60, 32)
  corners = np.array([[20.0, 0.0, 1.0], [79.0, 59.0, 1.0]]) @ t.T
  np.testing.assert_allclose(corners[:, :2], [[0, 0], [31, 31]], atol=1e-12)
  crop = framing.prnet_crop(np.full((60, 100, 3), 0.25, np.float32), t, 32)
  np.testing.assert_allclose(crop, 0.25, atol=1e-6)


def test_crop_modes_with_and_without_faces(monkeypatch):
  from bioface_jax.photo import detect
  image = np.zeros((30, 40, 3), np.uint8)
  monkeypatch.setattr(detect, "detect_faces", lambda image: [])
  assert framing.find_faces(image, "center") == ([], None)
  faces, note = framing.find_faces(image, "auto")
  assert faces == [] and "central square" in note
  with pytest.raises(ValueError, match="no face found.*--box"):
    framing.find_faces(image, "face")

  def unavailable(image):
    raise detect.DetectorUnavailable("face detection needs OpenCV")
  monkeypatch.setattr(detect, "detect_faces", unavailable)
  assert "OpenCV" in framing.find_faces(image, "auto")[1]
  monkeypatch.setattr(detect, "detect_faces", lambda image: [(1, 2, 5, 6), (0, 0, 2, 2)])
  assert framing.find_faces(image, "face") == ([(1, 2, 5, 6)], None)
  with pytest.raises(ValueError, match="crop must be one of"):
    framing.find_faces(image, "middle")


# ------------------------------------------------------------------------------ CLI pieces


def test_inputs_outputs_and_output_checks(tmp_path):
  for name in ("a/x.png", "a/notes.txt", "b/x.jpg", "c.png"):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_bytes(b"")
  errors = []
  paths, problems = cli.expand_inputs(
      [str(tmp_path / "a"), str(tmp_path / "*.png"), str(tmp_path / "b" / "x.jpg"),
       str(tmp_path / "c.png"), str(tmp_path / "nope*.png"), str(tmp_path / "gone.jpg")],
      log=errors.append)
  assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a/x.png", "c.png", "b/x.jpg"]
  assert problems == 2 and "nope*.png" in errors[0] and "gone.jpg" in errors[1]
  assert cli.output_names(paths + [tmp_path / "x_2.png"]) == ["x", "c", "x_2", "x_2_2"]
  with pytest.raises(cli.UserError, match="is a file"):
    cli.check_output_dir(tmp_path / "c.png" / "sub")
  with pytest.raises(cli.UserError, match="inside the model folder"):
    cli.check_output_dir(tmp_path / "a" / "out", model_dir=tmp_path / "a")
  with pytest.raises(cli.UserError, match="inside the installed package"):
    cli.check_output_dir(pretrained.shipped_path("biofacenet") / "predictions")
  if pathlib.Path("/proc/self").is_dir():      # not writable, even for root
    with pytest.raises(cli.UserError, match="cannot write in /proc"):
      cli.check_output_dir("/proc/predictions")
  assert cli.check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
  assert not (tmp_path / "new").exists()            # nothing created by the check

  def broken(f):
    f.write(b"half")
    raise OSError("disk full")
  with pytest.raises(OSError):
    cli.write_atomic(tmp_path / "out.bin", broken)
  assert not list(tmp_path.glob("*out.bin*"))       # nothing half-written left


# ------------------------------------------------------------------------------ commands


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiny_models")
  return {name: tiny_models.export(name, root / name) for name in tiny_models.SIZES}


def _npz(path) -> dict[str, np.ndarray]:
  """The arrays of an .npz file, the file closed (an open one warns when collected)."""
  with np.load(path) as npz:
    return dict(npz)


@pytest.fixture()
def loaded(monkeypatch):
  """Records the model each command loads (through the real `pretrained.load`)."""
  seen = []
  real = cli.load_model

  def spy(name, workdir):
    model = real(name, workdir)
    seen.append(model)
    return model
  monkeypatch.setattr(cli, "load_model", spy)
  return seen


@pytest.fixture()
def photos(tmp_path):
  """A batch of photos of every kind; returns (folder, expected good names)."""
  root = tmp_path / "photos"
  (root / "one").mkdir(parents=True)
  (root / "two").mkdir()
  Image.fromarray(_random_photo(40, 30, 1)).save(root / "one" / "face.png")
  Image.fromarray(_random_photo(30, 44, 2)).save(root / "two" / "face.png")
  image = Image.fromarray(_random_photo(24, 36, 3))
  exif = image.getexif()
  exif[0x0112] = 8
  image.save(root / "phone.jpg", exif=exif)
  Image.fromarray((np.linspace(0, 60000, 34 * 28).reshape(34, 28)).astype(np.uint16)).save(
      root / "grey16.png")
  rgba = np.concatenate([_random_photo(32, 32, 4), np.full((32, 32, 1), 128, np.uint8)], -1)
  Image.fromarray(rgba).save(root / "glass.png")
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(root / "dot.png")
  (root / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
  return root


def test_help_exits_0_and_shows_the_box_form(capsys):
  for command in (predict, vae_predict, prnet_predict, sdps_predict):
    with pytest.raises(SystemExit) as exit_:
      command.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--out DIR" in text and "--workdir DIR" in text
    if command is not sdps_predict:
      assert "--box L T R B" in text and "--crop auto|face|center" in text
  assert predict.build_parser().parse_args(["p.jpg"]).refine_steps == 200
  assert predict.build_parser().parse_args(["p.jpg", "--no-refine"]).refine_steps == 0
  assert "red and blurred" in predict.__doc__
  with pytest.raises(SystemExit) as exit_:
    predict.main(["p.jpg", "--box", "1", "2", "3"])
  assert exit_.value.code == 2
  assert capsys.readouterr().err.count("\n") == 1


def test_mistakes_stop_before_the_model_loads(tmp_path, capsys, loaded, models):
  Image.fromarray(_random_photo(20, 20)).save(tmp_path / "p.png")
  (tmp_path / "taken").write_text("a file")
  assert predict.main([str(tmp_path / "missing.jpg")]) == 2
  assert predict.main([str(tmp_path / "p.png"), "--out", str(tmp_path / "taken")]) == 2
  assert vae_predict.main([str(tmp_path / "p.png"), "--out", str(models["face_vae"] / "x"),
                           "--workdir", str(models["face_vae"])]) == 2
  (tmp_path / "no_images").mkdir()
  assert sdps_predict.main([str(tmp_path / "no_images"), "--workdir", str(models["sdps"]),
                            "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith("error: ") and "missing.jpg" in err[0]
  assert any("taken is a file" in line for line in err)
  assert any("inside the model folder" in line for line in err)
  assert not loaded                                      # no model was loaded
  assert not (tmp_path / "predictions").exists()
  assert "Traceback" not in "".join(err)
  # A run of another system: one line naming it.
  assert predict.main([str(tmp_path / "p.png"), "--workdir", str(models["face_vae"]),
                       "--out", str(tmp_path / "o")]) == 2
  assert "holds a face_vae model" in capsys.readouterr().err


def test_predict_batch_writes_the_good_photos(photos, models, loaded, tmp_path, capsys,
                                              monkeypatch):
  from bioface_jax.photo import detect
  monkeypatch.setattr(detect, "detect_faces", lambda image: [])   # no face: central square
  out = tmp_path / "out"
  code = predict.main([str(photos / "one"), str(photos / "two" / "face.png"),
                       str(photos / "p*.jpg"), str(photos / "grey16.png"),
                       str(photos / "glass.png"), str(photos / "dot.png"),
                       str(photos / "broken.jpg"), "--workdir", str(models["biofacenet"]),
                       "--out", str(out), "--no-refine"])
  captured = capsys.readouterr()
  assert code == 1, captured.err
  assert "dot.png: 1x1 pixels is too small" in captured.err
  assert "broken.jpg" in captured.err and "Traceback" not in captured.err
  written = sorted(p.name for p in out.glob("*_maps.npz"))
  assert written == ["face_2_maps.npz", "face_maps.npz", "glass_maps.npz", "grey16_maps.npz",
                     "phone_maps.npz"]
  assert (out / "face_2_decomposition.png").stat().st_size > 0
  model, = loaded
  size = model.input_size
  grey = _npz(out / "grey16_maps.npz")
  # 16-bit grey stays grey (equal channels), neither white nor clipped.
  x = grey["input"]
  assert x.shape == (size, size, 3) and np.ptp(x, axis=-1).max() < 1e-6 and x.max() < 0.95
  # The saved input is the central square of the upright photo, area-resized.
  photo = read.read_photo(photos / "phone.jpg")
  crop = framing.resize_crop(photo.pixels, framing.central_square(photo.width, photo.height),
                             size)
  phone = _npz(out / "phone_maps.npz")
  np.testing.assert_array_equal(phone["input"], crop)
  np.testing.assert_array_equal(phone["crop_box"], framing.central_square(24, 36))  # upright
  # The saved maps are pretrained.load(path).apply on the saved crop. The command's
  # decomposition and `apply` are two XLA programs of the same float32 function (the former
  # also returns the render's extras), fused differently: they agree to float32 rounding of
  # the network's depth, bounded by 64 eps32 of each output's largest value (5 seen).
  eps = float(np.finfo(np.float32).eps)
  for name in ("face", "face_2", "phone"):
    saved = _npz(out / f"{name}_maps.npz")
    direct = model.apply(saved["input"][None])
    for key, saved_key in (("fmel", "fmel"), ("fblood", "fblood"), ("shading", "diffuse"),
                           ("specular", "specular"), ("weights", "weights"), ("b", "b"),
                           ("linear_srgb", "reconstruction_linear_srgb")):
      bound = 64 * eps * float(np.abs(direct[key]).max())
      np.testing.assert_allclose(saved[saved_key], direct[key][0], rtol=0, atol=bound,
                                 err_msg=f"{name}: {key}")


def test_predict_box_outside_the_photo_is_reported(photos, models, tmp_path, capsys):
  code = predict.main([str(photos / "one" / "face.png"), "--box", "100", "100", "120", "120",
                       "--workdir", str(models["biofacenet"]), "--out", str(tmp_path / "o"),
                       "--no-refine"])
  assert code == 1
  assert "box 100 100 120 120 lies outside the 30x40 photo" in capsys.readouterr().err


def test_vae_predict_equals_apply(photos, models, loaded, tmp_path, capsys):
  out = tmp_path / "vae"
  code = vae_predict.main([str(photos / "glass.png"), str(photos / "one" / "face.png"),
                           "--box", "4", "6", "24", "26", "--workdir", str(models["face_vae"]),
                           "--out", str(out)])
  assert code == 0, capsys.readouterr().err
  model, = loaded
  s = model.input_size
  saved = _npz(out / "glass_vae.npz")
  assert {k: saved[k].shape for k in ("input", "reconstruction", "mask", "composite")} == {
      "input": (s, s, 3), "reconstruction": (s, s, 3), "mask": (s, s), "composite": (s, s, 3)}
  assert saved["input"].dtype == np.float32 and 0 <= saved["input"].min() <= 1
  direct = model.apply(saved["input"][None])
  np.testing.assert_array_equal(saved["reconstruction"], direct["image"][0])
  np.testing.assert_array_equal(saved["mask"], direct["mask"][0])
  # composite = mask * reconstruction + (1 - mask) * input, in float32.
  m = saved["mask"][..., None]
  np.testing.assert_allclose(saved["composite"], m * saved["reconstruction"]
                             + (1 - m) * saved["input"], atol=2e-7)
  assert (out / "face_vae.png").stat().st_size > 0
  # --mirror: the mirror-averaged answer of the same crop.
  code = vae_predict.main([str(photos / "glass.png"), "--box", "4", "6", "24", "26", "--mirror",
                           "--workdir", str(models["face_vae"]), "--out", str(out / "m")])
  assert code == 0, capsys.readouterr().err
  mirrored = _npz(out / "m" / "glass_vae.npz")
  np.testing.assert_array_equal(mirrored["input"], saved["input"])
  np.testing.assert_array_equal(mirrored["reconstruction"],
                                model.apply(saved["input"][None], mirror=True)["image"][0])
  # --refine-steps: the reconstruction from the latent fitted to the same crop.
  code = vae_predict.main([str(photos / "glass.png"), "--box", "4", "6", "24", "26",
                           "--refine-steps", "2", "--workdir", str(models["face_vae"]),
                           "--out", str(out / "r")])
  assert code == 0, capsys.readouterr().err
  refined = _npz(out / "r" / "glass_vae.npz")
  want = model.apply(saved["input"][None], refine_steps=2)
  np.testing.assert_array_equal(refined["reconstruction"], want["image"][0])
  assert int(refined["refine_steps"]) == 2
  assert float(refined["objective_after"]) == float(want["objective_after"][0])
  assert float(refined["objective_after"]) < float(refined["objective_before"])
  with pytest.raises(SystemExit) as exit_:
    vae_predict.main([str(photos / "glass.png"), "--mirror", "--refine-steps", "2"])
  assert exit_.value.code == 2 and "alternatives" in capsys.readouterr().err


def test_prnet_predict_landmarks_in_photo_pixels(photos, models, loaded, tmp_path, capsys):
  from bioface_jax import face3d
  out = tmp_path / "prnet"
  code = prnet_predict.main([str(photos / "p*.jpg"), "--box", "2", "4", "22", "26",
                             "--workdir", str(models["prnet"]), "--out", str(out)])
  assert code == 0, capsys.readouterr().err
  model, = loaded
  kpt = np.load(out / "phone_kpt.npy")
  assert kpt.shape == (68, 3) and kpt.dtype == np.float32
  # Independently: the crop of the upright photo by PRNet's transform, the network, then the
  # landmarks of its position map taken back through the inverse transform.
  photo = read.read_photo(photos / "phone.jpg")
  t = framing.prnet_transform((2, 4, 20, 22), model.input_size)
  crop = face3d.warp_image(photo.pixels, t, model.input_size)
  x = np.clip(crop, 0, 1).astype(np.float32)
  posmap, mirrored = model.apply(np.stack([x, x[:, ::-1]]))["position_map"]
  # The command averages with the mirror image's map, taken back by hand here: UV columns
  # reversed, x -> R - 1 - x.
  back = np.array(mirrored[:, ::-1])
  back[..., 0] = model.input_size - 1 - back[..., 0]
  posmap = 0.5 * (posmap + back)
  np.testing.assert_allclose(np.load(out / "phone_posmap.npy"), posmap, rtol=1e-5, atol=1e-4)
  expected = face3d.uncrop_points(np.asarray(face3d.landmarks_from_position_map(posmap)), t)
  np.testing.assert_allclose(kpt, expected, rtol=1e-5, atol=1e-3)
  obj = (out / "phone.obj").read_text().splitlines()
  assert sum(line.startswith("v ") for line in obj) > 0
  assert (out / "phone_figure.png").stat().st_size > 0


def test_sdps_predict_scene_folders(models, loaded, tmp_path, capsys):
  scene = tmp_path / "scenes" / "cup"
  scene.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for name in ("b.png", "a.png", "c.png"):
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(scene / name)
  (scene / "names.txt").write_text("c.png\na.png\nb.png\n")
  mask = np.zeros((20, 24), np.uint8)
  mask[4:16, 5:20] = 255
  Image.fromarray(mask).save(scene / "mask.png")
  (tmp_path / "scenes" / "empty").mkdir()
  (tmp_path / "scenes" / "loose.png").write_bytes(b"")
  out = tmp_path / "sdps"
  code = sdps_predict.main([str(tmp_path / "scenes" / "*"), str(tmp_path / "scenes" / "loose.png"),
                            "--workdir", str(models["sdps"]), "--out", str(out)])
  err = capsys.readouterr().err
  assert code == 1 and "empty: no image file" in err and "loose.png: is a file" in err
  saved = _npz(out / "cup_normals.npz")
  assert list(saved["image_names"]) == ["c.png", "a.png", "b.png"]
  assert saved["normals"].shape == (20, 24, 3) and saved["mask"].shape == (20, 24)
  assert saved["light_directions"].shape == (3, 3) and saved["light_intensities"].shape == (3,)
  np.testing.assert_array_equal(saved["mask"], mask > 127)
  inside = saved["normals"][mask > 127]
  np.testing.assert_allclose(np.linalg.norm(inside, axis=-1), 1.0, atol=1e-5)
  assert np.all(saved["normals"][mask <= 127] == 0)
  np.testing.assert_allclose(np.linalg.norm(saved["light_directions"], axis=-1), 1, atol=1e-5)
  # 8-bit photos are sRGB-decoded (IEC 61966-2-1, float64 reference: within float32 rounding
  # of the value, plus that of the float32 input k/255 times the curve's slope <= 2.4 / 1.055).
  from bioface_jax.photo import light_stack
  stack = light_stack.read_light_stack(scene)
  linear = light_stack.linear_images(stack)
  images = np.stack([np.asarray(Image.open(scene / n)) for n in ("c.png", "a.png", "b.png")])
  v = images / 255.0
  reference = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055)**2.4)
  eps = np.finfo(np.float32).eps
  assert np.all(np.abs(linear - reference) <= eps * (reference + 2.4 / 1.055 * v))
  # ... then the network: pretrained.load(path).apply on those images and the mask.
  model, = loaded
  direct = model.apply(linear[None], mask=(mask > 127)[None].astype(np.float32))
  np.testing.assert_array_equal(saved["normals"], direct["normals"][0])
  np.testing.assert_array_equal(saved["light_directions"], direct["light_directions"][0])
  with Image.open(out / "cup_normals.png") as png:
    assert png.size == (24, 20)


def test_warnings_and_mistakes_print_one_line(capsys):
  import warnings

  def command(argv):
    warnings.warn(UserWarning("checkpoint 5 is damaged;\n  using step 3"))
    raise ValueError(f"{argv[0]}: not a readable image")
  with warnings.catch_warnings():
    warnings.simplefilter("default")
    assert cli.run(command, ["x.jpg"]) == 2
  assert capsys.readouterr().err == ("warning: UserWarning: checkpoint 5 is damaged; using step 3\n"
                                     "error: x.jpg: not a readable image\n")
