"""BioFaceNet on one photo: the network's decomposition, optionally refined on that photo alone.

Used by `eval.predict`, `eval.edit`, `eval.photo_rmse` (and, for batches of images,
`eval.recovery` and `eval.iset_table1` through `outputs_in_batches`). The model is a
`bioface_jax.pretrained.Pretrained` of BioFaceNet (``pretrained.load("biofacenet", path)``).

`decompose` runs the network (evaluation mode) and, with ``refine_steps > 0``, then minimises
the self-supervised loss on this one image, which needs no labels: the appearance loss
(rendered vs linearised photo, inside the mask) plus the authors' camera prior and specular
sparsity terms (there is no shading target for a photo, so that term is off). The network
alone leaves real photos red and blurred (median central sRGB RMSE 0.106 on 20 real faces
against 0.030 refined by 200 steps, docs/biofacenet_edit_and_photos.md), which is why `eval.predict`
refines by default. Two ways:

* ``mode="maps"`` (default): optimise the physical parameters directly (per-pixel logits of
  the four maps and the 17-vector), starting from the network's prediction, with two extra
  terms that keep them plausible: an anchor ``anchor * mean |z - z0|^2`` (default 0.03) to the
  network's melanin, haemoglobin and specular logits and a total-variation smoothness
  ``smoothness * mean |grad f|`` (default 0.01) on the pigment maps. Fast (one jitted loop,
  compiled once per setting). The anchor trades fit for closeness to the network: on 22 real
  face crops 0.1 / 0.03 / 0.01 gave a median central RMSE of 0.039 / 0.030 / 0.024 (worst
  0.058 / 0.049 / 0.042) with the same plausibility numbers, but a specular share of the skin
  shading rising from 0.09 to 0.11 (worst 0.15 / 0.21 / 0.30); 0.03 is the default: every
  face under 0.05, with less specular spread than 0.01 (docs/biofacenet_edit_and_photos.md,
  section 2).
* ``mode="network"``: fine-tune the network's weights (BatchNorm statistics frozen, evaluation
  mode) with Adam, starting from the trained ones. The maps stay outputs of the U-Net, so they
  keep its spatial structure; slower (a backward pass through the network per step).

`central_srgb_rmse` is the reconstruction error measure of the docs (see its docstring).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

REFINE_MODES = ("network", "maps")
DEFAULT_LEARNING_RATE = {"network": 3e-4, "maps": 2e-2}
CENTRAL_FRACTION = 0.5
ANCHORED = ("mel", "blood", "spec")  # logits that mode "maps" keeps near the network's


def central_region(height: int, width: int, fraction: float = CENTRAL_FRACTION
                   ) -> tuple[slice, slice]:
  """(rows, columns) of the central ``fraction`` x ``fraction`` square that
  `central_srgb_rmse` scores (at least one pixel each way)."""
  dh, dw = max(1, round(height * fraction)), max(1, round(width * fraction))
  top, left = (height - dh) // 2, (width - dw) // 2
  return slice(top, top + dh), slice(left, left + dw)


def central_srgb_rmse(image_srgb: np.ndarray, reconstruction_linear: np.ndarray,
                      fraction: float = CENTRAL_FRACTION) -> float:
  """RMS difference of input and reconstruction in display sRGB over the central region.

  The reconstruction (linear sRGB, the renderer's output) is clipped to [0, 1] and encoded
  with the power 1/2.2 (the inverse of the network's input linearisation x^2.2), so both sides
  are on the input's 0..1 scale. The region is the central ``fraction`` x ``fraction`` square
  of the crop (default the middle half of each side: mostly face, little background); the mean
  runs over its pixels and the three channels.

  Args:
    image_srgb: (H, W, 3) gamma-encoded input in [0, 1].
    reconstruction_linear: (H, W, 3) linear sRGB reconstruction.
    fraction: side of the central square relative to the image side, in (0, 1].

  Raises:
    ValueError: shapes differ or are not (H, W, 3), non-finite values, bad fraction.
  """
  x = np.asarray(image_srgb, np.float64)
  y = np.asarray(reconstruction_linear, np.float64)
  if x.shape != y.shape or x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f"central_srgb_rmse: need two (H, W, 3) images of the same shape, got "
                     f"{x.shape} and {y.shape}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("central_srgb_rmse: non-finite values in the input or reconstruction")
  if not 0 < fraction <= 1:
    raise ValueError(f"central_srgb_rmse: fraction must lie in (0, 1], got {fraction}")
  shown = np.clip(y, 0.0, 1.0)**(1.0 / 2.2)
  diff = (x - shown)[central_region(*x.shape[:2], fraction)]
  return float(np.sqrt(np.mean(diff**2)))


@dataclasses.dataclass
class Refinement:
  """How the per-image refinement went: steps, mode, loss and central RMSE before and after."""
  steps: int
  mode: str
  learning_rate: float
  loss_before: float
  loss_after: float
  rmse_before: float
  rmse_after: float


def _to_numpy(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree.map(np.asarray, tree)


@functools.lru_cache(maxsize=8)
def _predict_fn(model):
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top

  @jax.jit
  def run(params, batch_stats, image, spectra, lut):
    return biofacenet.predict(params, batch_stats, image, model, spectra=spectra, lut=lut)
  return run


def _photo_loss_terms(linear_input, rendered_linear, specular_rgb, b, mask, model,
                      shading=None, shading_target=None, shading_weight=0.0):
  """Weighted appearance + camera prior + specular sparsity (the authors' weights), per image.

  With a ``shading_target`` (B, H, W) (a shading prior for the photo, e.g. `shading_prior`),
  adds ``shading_weight`` times BioFaceNet's scale-invariant shading loss on the mask;
  otherwise there is no shading term (no target for a photo).
  """
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
  w_app, w_cam, w_spec, _ = model.loss_weights
  loss = (w_app * biofacenet.appearance_loss(linear_input, rendered_linear, mask)
          + w_cam * biofacenet.camera_prior_loss(b)
          + w_spec * biofacenet.specular_sparsity_loss(specular_rgb))
  if shading_target is not None:
    target_mask = mask * (shading_target > 0)
    loss = loss + shading_weight * biofacenet.shading_loss(shading_target, shading,
                                                           target_mask)[0]
  return loss


@functools.lru_cache(maxsize=8)
def _network_refiner(model, lr, shading_weight=0.0):
  """One jitted Adam step of mode "network", cached so that a folder of photos compiles once.

  The steps run as a Python loop over it: inside ``lax.scan`` XLA:CPU ran this step (the whole
  U-Net's forward and backward passes) about 1.7x slower and compiled it on every call
  (50 + 150 steps on one 64 px photo: 27 + 38 s against 18 + 16 s, 2026-12-07, AMD EPYC).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
  tx = optax.adam(lr)

  def loss_fn(p, batch_stats, image, mask, spectra, lut, target):
    out = biofacenet.predict(p, batch_stats, image, model, spectra=spectra, lut=lut)
    render = out["render"]
    return _photo_loss_terms(out["linear_input"], render["linear_srgb"], render["specular"],
                             out["b"], mask, model, out["shading"], target,
                             shading_weight).mean()

  @jax.jit
  def step(p, state, batch_stats, image, mask, spectra, lut, target):
    grad = jax.grad(loss_fn)(p, batch_stats, image, mask, spectra, lut, target)
    updates, state = tx.update(grad, state, p)
    return optax.apply_updates(p, updates), state
  return tx, step


def _refine_network(params, batch_stats, model, image, mask, spectra, lut, steps, lr,
                    shading_target=None, shading_weight=0.0):
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top
  tx, step = _network_refiner(model, float(lr),
                              float(shading_weight) if shading_target is not None else 0.0)
  p, state = params, tx.init(params)
  for _ in range(steps):
    p, state = step(p, state, batch_stats, image, mask, spectra, lut, shading_target)
  return biofacenet.predict(p, batch_stats, image, model, spectra=spectra, lut=lut)


def _to_logits(out):
  """Unconstrained parameters z whose `_from_logits` is the prediction ``out``."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def logit(p):
    p = jnp.clip(p, 1e-6, 1 - 1e-6)
    return jnp.log(p) - jnp.log1p(-p)
  return dict(mel=logit((out["fmel"] + 1) / 2), blood=logit((out["fblood"] + 1) / 2),
              shade=jnp.log(jnp.maximum(out["shading"], 1e-12)),
              spec=jnp.log(jnp.maximum(out["specular"], 1e-12)),
              light=jnp.log(jnp.maximum(out["weights"], 1e-12)),
              t=logit((out["t"] - 1) / 21), b=logit((out["b"] + 3) / 6))


def _from_logits(z):
  import jax  # pylint: disable=g-import-not-at-top
  return dict(fmel=2 * jax.nn.sigmoid(z["mel"]) - 1, fblood=2 * jax.nn.sigmoid(z["blood"]) - 1,
              shading=jax.numpy.exp(z["shade"]), specular=jax.numpy.exp(z["spec"]),
              weights=jax.nn.softmax(z["light"], -1), t=1 + 21 * jax.nn.sigmoid(z["t"]),
              b=6 * jax.nn.sigmoid(z["b"]) - 3)


def render_maps(maps, spectra, lut, model):
  """`physics.render` of a parameter dict with the model's colour-pipeline options."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  return physics.render(spectra, lut, maps["fmel"], maps["fblood"], maps["shading"],
                        maps["specular"], maps["weights"], maps["t"], maps["b"],
                        xyz_mode=model.xyz_mode, daylight=model.daylight)


@functools.lru_cache(maxsize=8)
def _maps_refiner(model, steps, lr, anchor, smoothness, shading_weight=0.0):
  """Jitted refinement loop of mode "maps", cached so that a folder of photos compiles once."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  tx = optax.adam(lr)

  def loss_fn(z, z0, linear, mask, spectra, lut, target):
    maps = _from_logits(z)
    render = render_maps(maps, spectra, lut, model)
    loss = _photo_loss_terms(linear, render["linear_srgb"], render["specular"], maps["b"],
                             mask, model, maps["shading"], target, shading_weight).mean()
    for key in ANCHORED:
      loss += anchor * jnp.mean((z[key] - z0[key])**2)
    for f in (maps["fmel"], maps["fblood"]):
      loss += smoothness * (jnp.mean(jnp.abs(jnp.diff(f, axis=-1)))
                            + jnp.mean(jnp.abs(jnp.diff(f, axis=-2))))
    return loss

  @jax.jit
  def run(z0, linear, mask, spectra, lut, target):
    def step(carry, _):
      z, state = carry
      loss, grad = jax.value_and_grad(loss_fn)(z, z0, linear, mask, spectra, lut, target)
      updates, state = tx.update(grad, state, z)
      return (optax.apply_updates(z, updates), state), loss
    (z, _), losses = jax.lax.scan(step, (z0, tx.init(z0)), None, length=steps)
    return z, losses
  return run


def _refine_maps(out, model, mask, spectra, lut, steps, lr, anchor, smoothness,
                 shading_target=None, shading_weight=0.0):
  z, _ = _maps_refiner(model, steps, lr, float(anchor), float(smoothness),
                       float(shading_weight) if shading_target is not None else 0.0)(
      _to_logits(out), out["linear_input"], mask, spectra, lut, shading_target)
  maps = _from_logits(z)
  return dict(maps, linear_input=out["linear_input"],
              render=render_maps(maps, spectra, lut, model))


def assets():
  """(spectra, skin LUT) of the assets directory, read once per process."""
  return _assets()


@functools.lru_cache(maxsize=1)
def _assets():
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  spectra = physics.load_spectra()
  return spectra, physics.skin_lut(spectra)


def _network(model) -> tuple[Any, Any, Any]:
  """(params, batch_stats, BioFaceNetConfig) of a `pretrained.Pretrained` BioFaceNet."""
  if getattr(model, "name", None) != "biofacenet":
    raise ValueError(f"a BioFaceNet model is needed (pretrained.load('biofacenet', ...)), got "
                     f"{getattr(model, 'name', type(model).__name__)!r}")
  return model.variables["params"], model.variables["batch_stats"], model.config


def prepare(pixels: np.ndarray, size: int, box=None) -> np.ndarray:
  """(size, size, 3) float32 network input: the crop box (or the central square), area-resized.

  Args:
    pixels: (H, W, 3) gamma-encoded RGB in [0, 1] (`read.Photo.pixels`).
    size: the network's input size (`Pretrained.input_size`).
    box: (left, top, right, bottom) crop inside the photo (`framing.crop_for`); None: the
      central square.

  Raises:
    ValueError: the image is not (H, W, 3), the box is empty or outside the photo.
  """
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(pixels)
  if pixels.ndim != 3 or pixels.shape[2] != 3:
    raise ValueError(f"expected an RGB image (H, W, 3), got shape {pixels.shape}")
  if pixels.dtype == np.uint8:
    pixels = pixels.astype(np.float32) / 255.0
  h, w = pixels.shape[:2]
  return framing.resize_crop(pixels, framing.central_square(w, h) if box is None else box, size)


def decompose(model, image: np.ndarray, mask: np.ndarray | None = None, *,
              refine_steps: int = 0, mode: str = "maps", learning_rate: float | None = None,
              anchor: float = 0.03, smoothness: float = 1e-2, spectra=None, lut=None,
              shading_target: np.ndarray | None = None, shading_weight: float = 1e-4
              ) -> tuple[dict[str, Any], Refinement | None]:
  """Network prediction for one prepared photo, optionally refined on it.

  Args:
    model: a BioFaceNet `pretrained.Pretrained`.
    image: (H, W, 3) gamma-encoded sRGB in [0, 1] at the network's input size (`prepare`).
    mask: optional (H, W) face mask for the refinement's loss (default: whole crop).
    refine_steps: Adam steps of per-image refinement (0: the network's prediction as is).
    mode: "network" (fine-tune the weights) or "maps" (optimise the maps directly).
    learning_rate: Adam step (default 3e-4 for "network", 2e-2 for "maps").
    anchor, smoothness: the extra terms of mode "maps" (see the module docstring).
    shading_target: optional (H, W) shading prior of the photo (>= 0; 0 = no prior at that
      pixel), e.g. `shading_prior.shading_prior` from PRNet's normals; the refinement then
      adds ``shading_weight`` times BioFaceNet's scale-invariant shading loss.
    shading_weight: weight of that term (the authors' NFE shading weight is 1e-5).
    spectra, lut: `physics.load_spectra()`, `physics.skin_lut(spectra)` (default: `assets()`).

  Returns:
    (outputs, refinement): ``outputs`` as `biofacenet.predict` with ``render`` (NumPy, batch
    of 1); ``refinement`` None when refine_steps is 0 (its losses are the photo loss without
    the shading-prior term).

  Raises:
    ValueError: not a BioFaceNet model, an unknown mode, negative steps, an image of the wrong
      shape or outside [0, 1].
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  params, batch_stats, config = _network(model)
  if mode not in REFINE_MODES:
    raise ValueError(f"refinement mode must be one of {REFINE_MODES}, got {mode!r}")
  if refine_steps < 0:
    raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
  image = np.asarray(image, np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must be (H, W, 3), got {image.shape}")
  if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
    raise ValueError("image must hold finite gamma-encoded sRGB values in [0, 1]")
  if spectra is None or lut is None:
    spectra, lut = assets()
  x = jnp.asarray(image[None])
  m = jnp.ones(x.shape[:3], jnp.float32) if mask is None else jnp.asarray(mask[None],
                                                                           jnp.float32)
  target = None
  if shading_target is not None:
    t = np.asarray(shading_target, np.float32)
    if t.shape != image.shape[:2] or not np.isfinite(t).all() or t.min() < 0:
      raise ValueError(f"shading_target must be a finite (H, W) = {image.shape[:2]} map >= 0, "
                       f"got shape {t.shape}")
    target = jnp.asarray(t[None])
  out = _predict_fn(config)(params, batch_stats, x, spectra, lut)
  if not refine_steps:
    return _to_numpy(out), None

  def loss_of(o):
    return float(_photo_loss_terms(o["linear_input"], o["render"]["linear_srgb"],
                                   o["render"]["specular"], o["b"], m, config).mean())

  lr = float(learning_rate if learning_rate is not None else DEFAULT_LEARNING_RATE[mode])
  if mode == "network":
    refined = _refine_network(params, batch_stats, config, x, m, spectra, lut,
                              int(refine_steps), lr, target, shading_weight)
  else:
    refined = _refine_maps(out, config, m, spectra, lut, int(refine_steps), lr, anchor,
                           smoothness, target, shading_weight)
  before, after = _to_numpy(out), _to_numpy(refined)
  info = Refinement(
      steps=int(refine_steps), mode=mode, learning_rate=lr, loss_before=loss_of(out),
      loss_after=loss_of(refined),
      rmse_before=central_srgb_rmse(image, before["render"]["linear_srgb"][0]),
      rmse_after=central_srgb_rmse(image, after["render"]["linear_srgb"][0]))
  return after, info


OUTPUT_KEYS = ("fmel", "fblood", "shading", "specular", "weights", "t", "b", "linear_input")
RENDER_KEYS = ("linear_srgb", "albedo_linear_srgb", "illuminant")


@functools.lru_cache(maxsize=8)
def _flat_fn(config):
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax.models import biofacenet  # pylint: disable=g-import-not-at-top

  def run(params, batch_stats, image, spectra, lut):
    out = biofacenet.predict(params, batch_stats, image, config, spectra=spectra, lut=lut)
    return {k: out[k] for k in OUTPUT_KEYS} | {k: out["render"][k] for k in RENDER_KEYS}
  return jax.jit(run)


def outputs_in_batches(model, images: np.ndarray, batch_size: int = 32, spectra=None, lut=None
                       ) -> dict[str, np.ndarray]:
  """The network's outputs (`OUTPUT_KEYS` + the render's `RENDER_KEYS`, flat) for N images.

  Runs in fixed-size jitted batches (the last one padded by repeating its last image, so one
  compilation serves any N) in evaluation mode.

  Args:
    model: a BioFaceNet `pretrained.Pretrained`.
    images: (N, H, W, 3) gamma-encoded sRGB in [0, 1].

  Raises:
    ValueError: not a BioFaceNet model; images of the wrong shape or outside [0, 1].
  """
  params, batch_stats, config = _network(model)
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
  if not (np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1):
    raise ValueError("images must hold finite gamma-encoded sRGB values in [0, 1]")
  if spectra is None or lut is None:
    spectra, lut = assets()
  run, b = _flat_fn(config), int(batch_size)
  parts = []
  for start in range(0, len(images), b):
    chunk = images[start:start + b]
    pad = b - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
    out = run(params, batch_stats, chunk, spectra, lut)
    parts.append({k: np.asarray(v)[:b - pad] for k, v in out.items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


__all__ = ["CENTRAL_FRACTION", "DEFAULT_LEARNING_RATE", "OUTPUT_KEYS", "REFINE_MODES",
           "RENDER_KEYS", "Refinement", "assets", "central_region", "central_srgb_rmse",
           "decompose", "outputs_in_batches", "prepare", "render_maps"]
