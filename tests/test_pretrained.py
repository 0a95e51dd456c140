"""`bioface_jax.pretrained`: one way to load and run any of the four systems (the contract).

Runs are written directly with the trainer's `Checkpointer` from freshly initialised
smoke-size models (no training needed), so each check is about loading, storing and the
contract's keys, shapes, frames and errors.
"""

import dataclasses
import json
import pathlib
import warnings

import jax
import numpy as np
import pytest

from bioface_jax import pretrained
from bioface_jax.models import biofacenet, face_vae, prnet, sdps
from bioface_jax.pretrained import systems
from bioface_jax.train_lib import checkpoint as ckpt_lib
from train import export as export_command
from train.configs import biofacenet as biofacenet_configs
from train.configs import face_vae as face_vae_configs
from train.configs import prnet as prnet_configs
from train.configs import sdps as sdps_configs


def _random_like(tree, rng, positive=False):
  """Random arrays with the structure, shapes and dtypes of `tree` (ShapeDtypeStructs)."""
  def draw(path, leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) or 1
    if positive:
      return rng.uniform(0.1, 0.5, leaf.shape).astype(leaf.dtype)
    return (rng.normal(0, 1, leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(draw, tree)


def _state(name, run):
  """A train state of the smoke-size model with random variables (shapes from eval_shape: no
  initialiser is compiled, which takes minutes on a busy 2-core machine)."""
  rng = np.random.default_rng(0)
  key = jax.random.key(0)
  config = systems.SYSTEMS[name].model_config(run)
  if name == "sdps":
    shape = (1, 2, 16, 16, 3)
    abstract = {part: jax.eval_shape(lambda: sdps.init(key, shape, config[part])[0])
                for part in ("nenet", "lcnet")}
    return {"params": _random_like(abstract["nenet"], rng),
            "lcnet_params": _random_like(abstract["lcnet"], rng)}
  size = systems.SYSTEMS[name].input_size(run)
  init = {"biofacenet": biofacenet.init, "face_vae": face_vae.init, "prnet": prnet.init}[name]
  params, batch_stats = jax.eval_shape(lambda: init(key, (1, size, size, 3), config))
  # Positive, non-trivial BatchNorm statistics, so that a mix-up of mean and variance shows.
  return {"params": _random_like(params, rng),
          "batch_stats": _random_like(batch_stats, rng, positive=True)}


def _run_config(name):
  if name == "biofacenet":
    return biofacenet_configs.get_config("smoke")
  if name == "face_vae":
    return face_vae_configs.get_config("smoke")
  if name == "prnet":
    return prnet_configs.get_config("smoke")
  config = sdps_configs.get_config("smoke,nenet")
  config.lcnet_model = dict(config.model)
  return config


def write_run(directory, name, steps=(1,)):
  """A training-run directory holding checkpoints of a smoke-size `name` model."""
  run = _run_config(name)
  state = _state(name, run)
  with ckpt_lib.Checkpointer(pathlib.Path(directory) / "checkpoints", async_save=False) as ckpt:
    for step in steps:
      ckpt.save(step, state, {"config": run.to_dict(), "step": step})
  return run, state


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  return {name: (root / name, *write_run(root / name, name)) for name in systems.NAMES}


def _inputs(model, rng=np.random.default_rng(1)):
  s = model.input_size
  if model.name == "sdps":
    return rng.uniform(0, 1, (2, 3, 20, 24, 3)).astype(np.float32)
  return rng.uniform(0, 1, (2, s, s, 3)).astype(np.float32)


CONTRACT = {
    "biofacenet": {"fmel": "BSS", "fblood": "BSS", "shading": "BSS", "specular": "BSS",
                   "weights": ("B", 14), "t": ("B",), "b": ("B", 2), "linear_srgb": "BSS3"},
    "face_vae": {"image": "BSS3", "mask": "BSS", "composite": "BSS3"},
    "prnet": {"position_map": "BSS3"},
    "sdps": {"light_directions": ("B", "N", 3), "light_intensities": ("B", "N"),
             "normals": ("B", "H", "W", 3)},
}


def _expected_shape(spec, x):
  b = x.shape[0]
  if spec == "BSS":
    return (b, x.shape[1], x.shape[2])
  if spec == "BSS3":
    return (b, x.shape[1], x.shape[2], 3)
  sizes = {"B": b, "N": x.shape[1] if x.ndim == 5 else None,
           "H": x.shape[-3], "W": x.shape[-2]}
  return tuple(sizes.get(d, d) for d in spec)


@pytest.mark.parametrize("name", systems.NAMES)
def test_run_loads_and_apply_follows_the_contract(runs, name):
  path, run, state = runs[name]
  model = pretrained.load(name, path)
  assert model.name == name and model.step == 1 and model.path == path
  assert model.input_size == systems.SYSTEMS[name].input_size(run)
  x = _inputs(model)
  out = model.apply(x)
  assert set(out) == set(CONTRACT[name])
  for key, spec in CONTRACT[name].items():
    assert out[key].shape == _expected_shape(spec, x), key
    assert isinstance(out[key], np.ndarray) and np.all(np.isfinite(out[key])), key
  again = model.apply(x)
  for key in out:  # deterministic
    np.testing.assert_array_equal(out[key], again[key])


def test_apply_equals_the_models_own_predict(runs):
  """The loaded variables reach the network unchanged: the same jitted computation on the
  checkpoint's state gives bitwise the same outputs (both sides compile the same HLO)."""
  path, _, state = runs["prnet"]
  model = pretrained.load("prnet", path)
  x = _inputs(model)
  want = jax.jit(lambda p, s, x: prnet.predict(p, s, x, model.config))(
      state["params"], state["batch_stats"], x)
  np.testing.assert_array_equal(model.apply(x)["position_map"], want)

  path, _, state = runs["face_vae"]
  model = pretrained.load("face_vae", path)
  x = _inputs(model)
  out = model.apply(x)
  raw = jax.jit(lambda p, s, x: face_vae.predict(p, s, x, model.config))(
      state["params"], state["batch_stats"], x)
  np.testing.assert_array_equal(out["image"], raw["image_pre"])
  np.testing.assert_array_equal(out["mask"], raw["mask"])
  m = out["mask"][..., None]
  # composite = m * image + (1 - m) * input: two products and a sum of values in [0, 1].
  np.testing.assert_allclose(out["composite"], m * out["image"] + (1 - m) * x,
                             rtol=0, atol=4 * np.finfo(np.float32).eps)
  assert out["mask"].min() >= 0 and out["mask"].max() <= 1


def test_sdps_outputs_unit_vectors_in_the_mask(runs):
  path, _, _ = runs["sdps"]
  model = pretrained.load("sdps", path)
  x = _inputs(model)
  mask = np.zeros(x.shape[:1] + x.shape[2:4], np.float32)
  mask[:, 4:15, 6:20] = 1
  out = model.apply(x, mask=mask)
  n = np.linalg.norm(out["normals"], axis=-1)
  np.testing.assert_allclose(n[mask > 0], 1.0, atol=1e-5)
  assert np.all(out["normals"][mask == 0] == 0)
  np.testing.assert_allclose(np.linalg.norm(out["light_directions"], axis=-1), 1.0, atol=1e-5)
  with pytest.raises(ValueError, match=r"mask must have shape \(2, 20, 24\)"):
    model.apply(x, mask=mask[:, :10])
  # mirror=True: the answer on the mirrored photos is the mirrored answer, exactly.
  from bioface_jax.models import sdps_mirror  # pylint: disable=g-import-not-at-top
  a = model.apply(x, mask=mask, mirror=True)
  b = model.apply(x[:, :, :, ::-1], mask=mask[:, :, ::-1], mirror=True)
  np.testing.assert_allclose(np.linalg.norm(a["normals"], axis=-1)[mask > 0], 1.0, atol=1e-5)
  np.testing.assert_array_equal(b["normals"], np.asarray(sdps_mirror.mirror_normal_map(a["normals"])))
  np.testing.assert_array_equal(b["light_directions"],
                                np.asarray(sdps_mirror.mirror_vectors(a["light_directions"])))


def _apply_mirrored(runs, name):
  """(model, training state, inputs, ``apply(x, mirror=True)``) of system `name`'s test run,
  the outputs' shapes checked against the contract."""
  path, _, state = runs[name]
  model = pretrained.load(name, path)
  x = _inputs(model)
  out = model.apply(x, mirror=True)
  for key, spec in CONTRACT[name].items():
    assert out[key].shape == _expected_shape(spec, x), key
  return model, state, x, out


def _assert_float32_mean(actual, want, key):
  """`actual` is the float32 mean of two float32 numbers whose float64 mean is `want`: averaging
  rounds once (half an ulp of the result), and XLA:CPU flushes subnormal results to zero, so
  values below float32's smallest normal number (e.g. a light-basis weight of 1e-38) may come
  back as 0: atol = tiny."""
  np.testing.assert_allclose(actual, want, rtol=np.finfo(np.float32).eps,
                             atol=np.finfo(np.float32).tiny, err_msg=key)


def _answers_on_photos_and_mirrors(predict, model, state, x, keys):
  """The network's outputs `keys` on the photos `x` and on their mirror images (not mirrored
  back), computed in one batch as ``mirror=True`` runs them, in float64: two dicts."""
  both = jax.jit(lambda p, s, x: predict(p, s, x, model.config))(
      state["params"], state["batch_stats"], np.concatenate([x, x[:, :, ::-1]]))
  n = len(x)
  return ({k: np.asarray(both[k][:n], np.float64) for k in keys},
          {k: np.asarray(both[k][n:], np.float64) for k in keys})


def test_face_vae_mirror_averages_the_reconstructions_of_the_crop_and_its_mirror(runs):
  """``mirror=True``: image and mask are the mean of the network's on the crops and, mirrored
  back, on their mirror images; the composite is formed from the averaged image and mask."""
  model, state, x, out = _apply_mirrored(runs, "face_vae")
  a, b = _answers_on_photos_and_mirrors(face_vae.predict, model, state, x, ("image_pre", "mask"))
  for key, raw_key in (("image", "image_pre"), ("mask", "mask")):
    _assert_float32_mean(out[key], 0.5 * (a[raw_key] + b[raw_key][:, :, ::-1]), key)
  m = np.asarray(out["mask"], np.float64)[..., None]
  want = m * out["image"] + (1 - m) * x  # two products and a sum of values in [0, 1]
  np.testing.assert_allclose(out["composite"], want, rtol=0, atol=4 * np.finfo(np.float32).eps)
  plain = model.apply(x)
  assert np.abs(plain["image"] - out["image"]).max() > 1e-6  # the option changes the answer


def test_face_vae_refine_steps_fit_each_crops_latent_and_keep_the_contract(runs):
  """``refine_steps=N``: the contract's keys (plus the objective before and after), the
  network's own mask, a lower objective for every crop, the composite of the refined image;
  0 steps is the plain answer; mirror and refinement together are refused."""
  path, _, _ = runs["face_vae"]
  model = pretrained.load("face_vae", path)
  x = _inputs(model)
  plain = model.apply(x)
  np.testing.assert_array_equal(model.apply(x, refine_steps=0)["image"], plain["image"])
  out = model.apply(x, refine_steps=3)
  assert set(out) == set(CONTRACT["face_vae"]) | {"objective_before", "objective_after"}
  for key, spec in CONTRACT["face_vae"].items():
    assert out[key].shape == _expected_shape(spec, x), key
  assert out["objective_before"].shape == out["objective_after"].shape == (len(x),)
  np.testing.assert_array_equal(out["mask"], plain["mask"])
  assert np.all(out["objective_after"] < out["objective_before"])
  assert np.abs(plain["image"] - out["image"]).max() > 1e-6
  m = np.asarray(out["mask"], np.float64)[..., None]
  want = m * out["image"] + (1 - m) * x  # two products and a sum of values in [0, 1]
  np.testing.assert_allclose(out["composite"], want, rtol=0, atol=4 * np.finfo(np.float32).eps)
  with pytest.raises(ValueError, match="mirror and refine_steps are alternatives"):
    model.apply(x, mirror=True, refine_steps=2)
  with pytest.raises(ValueError, match="refine_steps must be an int >= 0"):
    model.apply(x, refine_steps=-1)


def test_biofacenet_mirror_averages_the_two_decompositions_and_renders_the_average(runs):
  """``mirror=True``: the maps are the mean of the network's maps on the photos and, mirrored
  back, on their mirror images; light and camera the mean of the two; ``linear_srgb`` is the
  renderer's image of those averaged parameters (one decomposition, not a mean of images)."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import biofacenet_mirror  # pylint: disable=g-import-not-at-top
  model, state, x, out = _apply_mirrored(runs, "biofacenet")
  # The network's answers on the photos and their mirror images, in one batch as `mirror` runs
  # them; their mean in float64.
  a, b = _answers_on_photos_and_mirrors(biofacenet.predict, model, state, x,
                                        biofacenet_mirror.MAP_KEYS + biofacenet_mirror.VECTOR_KEYS)
  for key in a:
    want = 0.5 * (a[key] + (b[key][:, :, ::-1] if key in biofacenet_mirror.MAP_KEYS else b[key]))
    _assert_float32_mean(out[key], want, key)
  # The image is the renderer's, of exactly the returned parameters (same function, same
  # float32 inputs; only XLA's fusion around it may differ: a few ulp).
  spectra, lut = pretrained._assets()  # pylint: disable=protected-access
  render = physics.render(spectra, lut, *(out[k] for k in biofacenet_mirror.MAP_KEYS
                                          + biofacenet_mirror.VECTOR_KEYS),
                          xyz_mode=model.config.xyz_mode, daylight=model.config.daylight)
  np.testing.assert_allclose(out["linear_srgb"], render["linear_srgb"],
                             rtol=16 * np.finfo(np.float32).eps, atol=1e-7)
  # Equivariance, exactly: the mirror images' averaged decomposition is the mirrored one.
  flipped = model.apply(np.ascontiguousarray(x[:, :, ::-1]), mirror=True)
  for key in biofacenet_mirror.MAP_KEYS + ("linear_srgb",):
    np.testing.assert_array_equal(flipped[key], out[key][:, :, ::-1], err_msg=key)
  for key in biofacenet_mirror.VECTOR_KEYS:
    np.testing.assert_array_equal(flipped[key], out[key], err_msg=key)
  # Off by default: the plain network's answer, which the average differs from.
  assert not np.allclose(model.apply(x)["fmel"], out["fmel"])


@pytest.mark.parametrize("name", ["face_vae", "sdps"])
def test_export_round_trip(runs, tmp_path, name):
  path, _, _ = runs[name]
  model = pretrained.load(name, path)
  x = _inputs(model)
  out = tmp_path / "export32"
  pretrained.save(out, name, model.variables, model.config, input_size=model.input_size,
                  step=model.step, run_config=model.run_config, dtype=np.float32)
  loaded = pretrained.load(name, out)
  assert loaded.config == model.config and loaded.input_size == model.input_size
  for key, value in model.apply(x).items():  # float32 storage is exact
    np.testing.assert_array_equal(loaded.apply(x)[key], value)
  half = pretrained.load(name, pretrained.save(tmp_path / "export16", name, model.variables,
                                               model.config, input_size=model.input_size))
  for a, b in zip(jax.tree.leaves(half.variables), jax.tree.leaves(model.variables)):
    np.testing.assert_array_equal(a, np.asarray(b).astype(np.float16).astype(np.float32))


def test_save_never_replaces_without_overwrite_and_never_half_writes(runs, tmp_path):
  path, _, _ = runs["prnet"]
  model = pretrained.load("prnet", path)
  args = ("prnet", model.variables, model.config)
  out = pretrained.save(tmp_path / "ship", *args, input_size=model.input_size, step=1)
  before = (out / "variables.msgpack").read_bytes()
  with pytest.raises(FileExistsError, match="already exists"):
    pretrained.save(out, *args, input_size=model.input_size, step=2)
  assert (out / "variables.msgpack").read_bytes() == before
  bad = jax.tree.map(lambda v: v * np.nan, model.variables)
  with pytest.raises(ValueError, match="not finite"):
    pretrained.save(out, "prnet", bad, model.config, input_size=model.input_size,
                    overwrite=True)
  assert (out / "variables.msgpack").read_bytes() == before  # the old export is intact
  assert [p.name for p in tmp_path.iterdir()] == ["ship"]  # no staging directory left
  pretrained.save(out, *args, input_size=model.input_size, step=2, overwrite=True)
  assert json.loads((out / "meta.json").read_text())["step"] == 2


def test_train_export_command(runs, tmp_path, capsys):
  path, _, _ = runs["sdps"]
  out = tmp_path / "sdps_export"
  assert export_command.main(["--workdir", str(path), "--out", str(out)]) == 0
  assert json.loads((out / "meta.json").read_text())["model"] == "sdps"
  assert pretrained.load("sdps", out).step == 1
  assert export_command.main(["--workdir", str(path), "--out", str(out)]) == 2
  assert "already exists" in capsys.readouterr().err
  assert export_command.main(["--workdir", str(tmp_path / "nothing"), "--out",
                              str(tmp_path / "x")]) == 2
  assert "not a training run" in capsys.readouterr().err


def test_errors_name_the_problem(runs, tmp_path):
  with pytest.raises(ValueError, match="unknown model 'prnett'; choose one of"):
    pretrained.load("prnett")
  with pytest.raises(ValueError, match="holds a face_vae model, not prnet"):
    pretrained.load("prnet", runs["face_vae"][0])
  with pytest.raises(FileNotFoundError, match="does not exist"):
    pretrained.load("prnet", tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="holds no model"):
    pretrained.load("prnet", tmp_path)
  (tmp_path / "file").write_text("x")
  with pytest.raises(FileNotFoundError, match="is a file"):
    pretrained.load("prnet", tmp_path / "file")
  model = pretrained.load("prnet", runs["prnet"][0])
  s = model.input_size
  with pytest.raises(ValueError, match=rf"shape \(\*, {s}, {s}, 3\), got \(1, 8, 8, 3\)"):
    model.apply(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    model.apply(np.full((1, s, s, 3), 255.0, np.float32))


def test_an_lcnet_run_is_not_a_normal_estimator(tmp_path):
  config = sdps_configs.get_config("smoke")
  params = sdps.init(jax.random.key(0), (1, 2, 16, 16, 3),
                     systems.sdps_net_config(config))[0]
  with ckpt_lib.Checkpointer(tmp_path / "checkpoints", async_save=False) as ckpt:
    ckpt.save(1, {"params": params}, {"config": config.to_dict()})
  with pytest.raises(ValueError, match="'lcnet' run cannot estimate normals"):
    pretrained.load("sdps", tmp_path)


def test_damaged_newest_checkpoint_falls_back_read_only(tmp_path):
  write_run(tmp_path, "prnet", steps=(1, 2))
  data = sorted((tmp_path / "checkpoints" / "2" / "state").rglob("*"),
                key=lambda p: -p.stat().st_size if p.is_file() else 0)[0]
  data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
  with pytest.warns(ckpt_lib.DamagedCheckpointWarning, match="2 .*using step 1"):
    model = pretrained.load("prnet", tmp_path)
  assert model.step == 1
  assert (tmp_path / "checkpoints" / "2").is_dir()  # inference moves nothing
  assert not (tmp_path / "damaged_checkpoints").exists()
  one = tmp_path / "checkpoints" / "1" / "state"
  for f in one.rglob("*"):
    if f.is_file() and f.stat().st_size > 100:
      f.write_bytes(b"")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ckpt_lib.DamagedCheckpointWarning)
    with pytest.raises(ValueError, match="every checkpoint in .* is damaged"):
      pretrained.load("prnet", tmp_path)


def test_shipped_biofacenet(tmp_path):
  model = pretrained.load("biofacenet")
  assert model.path == pretrained.shipped_path("biofacenet") and model.input_size == 64
  assert model.config.input_features == "rgb+logchroma"
  x = np.random.default_rng(0).uniform(0.2, 0.8, (1, 64, 64, 3)).astype(np.float32)
  out = model.apply(x)
  assert out["weights"].shape == (1, 14)
  np.testing.assert_allclose(out["weights"].sum(-1), 1.0, atol=1e-5)  # convex weights
  assert 1.0 <= float(out["t"][0]) <= 22.0


@pytest.mark.parametrize("name", pretrained.NAMES)
def test_every_system_ships_a_model_that_answers_the_contract(name):
  """The four shipped exports load and give finite outputs of the contract's shapes."""
  model = pretrained.load(name)
  assert model.path == pretrained.shipped_path(name) and model.step > 0
  s = model.input_size
  rng = np.random.default_rng(0)
  if name == "sdps":
    n = 4
    x = rng.uniform(0.05, 0.6, (1, n, s, s, 3)).astype(np.float32)
    out = model.apply(x, mask=np.ones((1, s, s), np.float32))
    assert out["normals"].shape == (1, s, s, 3) and out["light_directions"].shape == (1, n, 3)
    np.testing.assert_allclose(np.linalg.norm(out["normals"], axis=-1), 1.0, atol=1e-3)
  else:
    x = rng.uniform(0.2, 0.8, (1, s, s, 3)).astype(np.float32)
    out = model.apply(x)
    key = {"biofacenet": "linear_srgb", "face_vae": "composite", "prnet": "position_map"}[name]
    assert out[key].shape == (1, s, s, 3)
  for k, v in out.items():
    assert np.all(np.isfinite(np.asarray(v))), (name, k)


def test_prnet_ensemble_export_averages_its_members_maps(runs, tmp_path):
  """`train.export` with two PRNet runs: one model whose map is the mean of the two runs'."""
  first, run, state = runs["prnet"]
  second = tmp_path / "second"
  rng = np.random.default_rng(5)
  other = {"params": jax.tree.map(lambda a: a * rng.uniform(0.5, 1.5), state["params"]),
           "batch_stats": state["batch_stats"]}
  with ckpt_lib.Checkpointer(second / "checkpoints", async_save=False) as ckpt:
    ckpt.save(3, other, {"config": run.to_dict(), "step": 3})
  out = tmp_path / "ensemble"
  assert export_command.main(["--workdir", str(first), "--workdir", str(second), "--out",
                              str(out), "--float32"]) == 0
  model = pretrained.load("prnet", out)
  assert model.config.ensemble == 2
  assert [m["step"] for m in model.meta["members"]] == [1, 3]
  x = _inputs(model)
  assert model.apply(x)["position_map"].shape == x.shape
  # The mean, checked in float64 (the vmapped ensemble and a single network are different
  # float32 programs, whose roundings through ~40 layers differ by more than the mean's own).
  members = [pretrained.load("prnet", p).variables for p in (first, second)]
  single = dataclasses.replace(model.config, ensemble=1)
  with jax.enable_x64(True):
    f64 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float64), tree)  # noqa: E731
    x64 = x.astype(np.float64)
    maps = [np.asarray(prnet.predict(*(f64(m[k]) for k in ("params", "batch_stats")), x64,
                                     single)) for m in members]
    v = f64(model.variables)
    mean = np.asarray(prnet.predict(v["params"], v["batch_stats"], x64, model.config))
  assert mean.dtype == np.float64 and np.abs(maps[0] - maps[1]).max() > 1.0  # members differ
  np.testing.assert_allclose(mean, (maps[0] + maps[1]) / 2, rtol=1e-12, atol=1e-9)
  # The float32 model against that: float32 roundings through the network (~2e-3 px seen),
  # far below the members' own difference (> 1 px), which a wrong combination would show.
  np.testing.assert_allclose(model.apply(x)["position_map"], mean, rtol=0, atol=0.05)
  with pytest.raises(ValueError, match="ensemble of 2 prnet networks"):
    from bioface_jax.pretrained import warm_start  # pylint: disable=g-import-not-at-top
    warm_start.read("prnet", out)


def test_ensemble_export_refuses_other_systems_and_other_networks(runs, tmp_path, capsys):
  assert export_command.main(["--workdir", str(runs["face_vae"][0]), "--workdir",
                              str(runs["face_vae"][0]), "--out", str(tmp_path / "a")]) == 2
  assert "ensembles are for PRNet runs" in capsys.readouterr().err
  wider = prnet_configs.get_config("smoke")
  wider.model.width_multiplier = 2 * wider.model.width_multiplier
  other = tmp_path / "wider"
  config = systems.SYSTEMS["prnet"].model_config(wider)
  params, stats = jax.eval_shape(lambda: prnet.init(jax.random.key(0),
                                                    (1, config.input_size,
                                                     config.input_size, 3), config))
  rng = np.random.default_rng(0)
  with ckpt_lib.Checkpointer(other / "checkpoints", async_save=False) as ckpt:
    ckpt.save(1, {"params": _random_like(params, rng),
                  "batch_stats": _random_like(stats, rng, positive=True)},
              {"config": wider.to_dict(), "step": 1})
  assert export_command.main(["--workdir", str(runs["prnet"][0]), "--workdir", str(other),
                              "--out", str(tmp_path / "b")]) == 2
  assert "builds another network" in capsys.readouterr().err
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
