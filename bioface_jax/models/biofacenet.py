"""BioFaceNet: image -> U-Net -> physical parameters -> spectral renderer, and its loss.

The network (`unet.BioFaceUNet`) predicts four maps and a 17-vector; `scale_outputs` turns them
into the physical parameters of the fixed renderer (`bioface_jax.physics.render`), and the
self-supervised loss compares the rendered image with the linearised input (biofacenet-spec.md
sections 0, 6-8). Everything is pure: parameters and BatchNorm statistics are explicit pytrees,
the spectral tables and skin LUT are call arguments (fixed arrays, never Flax params, so they are
not trained, decayed or checkpointed), and the config is a frozen, hashable dataclass so it can
be closed over or passed as a static argument to `jax.jit`.

Trainer-facing API (all pure functions):

  config = BioFaceNetConfig(...)  # or BioFaceNetConfig.from_mapping(config_dict.model)
  params, batch_stats = init(rng, (B, H, W, 3), config)
  outputs, new_batch_stats = apply(params, batch_stats, image, config, train=...,
                                   spectra=spectra, lut=lut)
  outputs = predict(params, batch_stats, image, config, spectra=None, lut=None)
  loss, (terms, new_batch_stats, outputs) = compute_loss(
      params, batch_stats, batch, spectra, lut, config, train=True)
  tx = optimizer(config)  # optax.GradientTransformation over `params`

The loss terms and the optimiser are in `biofacenet_loss` (re-exported here).

``batch`` is a dict: ``image`` (B, H, W, 3) gamma-encoded sRGB in [0, 1], ``mask`` (B, H, W)
binary face mask (a trailing singleton channel is accepted), ``shading`` (B, H, W) pseudo ground
truth shading, already clamped with max(0, .). ``outputs`` holds the physical parameters
(``fmel``, ``fblood``, ``shading``, ``specular`` (B, H, W); ``weights`` (B, 14); ``t`` (B,);
``b`` (B, 2)), ``linear_input`` (B, H, W, 3) and, when spectra and lut are given, ``render``
(the dict returned by `physics.render`). ``terms`` holds the batch means of the unweighted
terms (``appearance``, ``camera_prior``, ``specular_sparsity``, ``shading``), the mean
least-squares shading scale ``shading_scale`` and ``total`` (= loss).

Deviations from the authors' code, all documented options or guards that are inactive in the
authors' regime:
* ``logit_max`` (default None = authors' unbounded exp): a smooth upper bound on m_shade and
  m_spec, ``m <- c - softplus(c - m)``, so shading and specular stay below e^c. The authors'
  freshly initialised network has heavy-tailed logits: a few pixels reach i_d, i_s ~ 1e3
  while the median is ~1 (measured), and those pixels dominate the summed squared error, so
  the loss jumps by orders of magnitude between batches. Unlike a hard clip, the bound keeps a
  gradient everywhere, so saturated pixels can come back.
* ``logit_clip`` (default None = authors' unbounded exp): clips m_shade and m_spec to
  [-c, c] before exp, so the shading maps cannot overflow float32.
* The shading scale k uses a NaN-safe division: an image whose mask is empty (or whose masked
  shading underflows to 0) gets k = 0 instead of the authors' 0/0.
* ``input_decode`` (default "gamma" = authors' x**2.2): "srgb" linearises the input with the
  exact sRGB curve instead. The synthetic generator encodes with that curve, and decoding its
  8-bit files with x**2.2 instead raises the per-pixel identifiability ceiling of the pigments
  from RMSE 0.023/0.015 to 0.103/0.060 (docs/biofacenet_recovery.md, eval.recovery_ladder).
* ``input_features`` (default "rgb" = authors): "rgb+logchroma" appends three channels to the
  network input, the log-chromaticity of the linear image (`log_chromaticity`). They do not
  change when a pixel's colour is scaled, so diffuse shading is absent from them: a
  physics-informed hint that pigments are a function of colour, not brightness (the RGB-only
  network's pigment maps carried its shading; with these channels haemoglobin RMSE fell from
  0.103 to 0.086 and the illuminant beat the constant baseline, docs/biofacenet_recovery.md
  section 4).
* ``normalise_by_foreground`` (default False = authors' code): the paper's choice of dividing
  the three pixel-wise per-image sums by the number of foreground pixels.
* ``truth_weights`` (default all 0 = authors' purely self-supervised loss): weights of four
  optional supervised terms for training images that carry ground truth (the synthetic faces):
  melanin and haemoglobin (mean over the mask of the squared error in network coordinates),
  camera (||b - b_true||^2) and illuminant (mean over bands of the squared difference of the
  spectra, each divided by its band mean). The batch must then also hold ``fmel``, ``fblood``
  (B, H, W), ``b`` (B, 2), ``weights`` (B, 14) and ``t`` (B,). Why: docs/biofacenet_recovery.md
  measures that the appearance loss alone does not identify the pigments once light and camera
  are unknown; these terms bring in the information that the images lack.
* ``off_skin_weight`` (default 0 = authors): weight of a term that asks for no pigment off the
  skin: the mean over the pixels more than ``off_skin_margin`` (default 2) pixels from the mask of
  ((fmel + 1)^2 + (fblood + 1)^2) / 2, i.e. the squared distance of both maps from their
  lowest value (-1, a volume fraction of ~1e-6 of the maximum); the margin leaves the
  partly-skin pixels at the mask's edges free (`biofacenet_loss.off_skin_region`). The authors' loss looks only inside the mask, so the maps off the skin
  are free, and a network trained on scenes with hair, eyes and backgrounds spreads pigment
  over them (on real photos most of the pigment mass lies outside the face). With this term
  the maps also say where skin is. Needs only the mask, no other ground truth.
* ``face_region_weight`` (default 0 = authors): weight, relative to the appearance term's, of
  the same squared error over the face pixels that the skin mask leaves out (brows, eyes,
  mouth, teeth, beard, glasses: the batch's ``face_region`` map (B, H, W) minus the mask). The
  authors' appearance loss covers the skin mask only, so nothing asks the network to
  reproduce the 1-2 px dark detail inside a face, which on real photographs is most of its
  reconstruction error in the central region (docs/synthetic_world.md). Needs a data set with
  label maps (the scene world); no pigment truth is used there.
* ``oracle_light_camera`` (default False = authors): a diagnostic, not a model to ship. The
  renderer in `compute_loss` uses the batch's true illuminant (``weights``, ``t``) and camera
  (``b``) instead of the head's, so the network only has to find the pigments, shading and
  specular (rung c of docs/biofacenet_recovery.md: separates "light/camera are ambiguous" from
  "the network cannot learn pigments"). The batch must hold ``b``, ``weights`` and ``t``; the
  outputs' ``weights``, ``t``, ``b`` are then the true ones (the head's are in ``head_weights``,
  ``head_t``, ``head_b``). `apply`/`predict` (no batch, no truth) still use the head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import physics
from bioface_jax.models.unet import BioFaceUNet

VGG_MEAN = (129.1863, 104.7624, 93.5940)  # R, G, B; `averageImage` in mainBioFaces.m
INPUT_GAMMA = 2.2  # getBatch.m linearises with a plain power law
INPUT_FEATURES = ("rgb", "rgb+logchroma")
LR_SCHEDULES = ("constant", "step", "cosine")  # BioFaceNetConfig.lr_schedule
LOG_CHROMA_EPS = 1e-3   # linear-intensity floor of `log_chromaticity` (8-bit black is 0)
LOG_CHROMA_SCALE = 64.0  # brings log-ratios (~±1) to the spread of the VGG-centred input
APPEARANCE_SCALE = 255.0**2 / 224.0**2  # [m (I - P)]^2 / 224^2 with I - P = 255 (x_lin - y)
N_LIGHT_WEIGHTS = 14  # A, D, F1..F12
N_VECTOR = 17  # 14 weights, 1 CCT index, 2 camera coefficients
N_MAPS = 4  # mel, blood, shade, spec
TRUTH_KEYS = ("fmel", "fblood", "b", "weights", "t")  # batch keys of the supervised terms
ORACLE_KEYS = ("weights", "t", "b")  # batch keys the oracle renderer reads
FACE_REGION_KEY = "face_region"  # batch key of the face_region_weight term's map


@dataclasses.dataclass(frozen=True)
class BioFaceNetConfig:
  """Model, loss and optimiser settings (defaults = the authors' final MATLAB code).

  Attributes:
    base_filters, depth, fc_width, upsample: network size; see `unet.BioFaceUNet`.
    dtype: computation dtype name, "float32" or "bfloat16".
    logit_clip: if set, clip the shading/specular logits to [-c, c] before exp (deviation).
    logit_max: if set, bound the shading/specular logits smoothly from above by c (deviation).
    xyz_mode, daylight: passed to `physics.render` ("exact" closed-form or "table" RAW->XYZ;
      "table" or "cie" daylight).
    loss_weights: (appearance, camera prior, specular sparsity, shading).
    normalise_by_foreground: divide the pixel-wise per-image sums by the foreground count.
    stop_gradient_shading_scale: treat the least-squares shading scale k as a constant in
      the backward pass. At k = k* the loss is stationary in k (dL/dk = 0), so by the envelope
      theorem the gradient is unchanged; stopping it only avoids differentiating a division.
    input_decode: how the gamma-encoded input is linearised: "gamma" (authors: x**2.2) or
      "srgb" (the exact sRGB curve the synthetic generator encodes with; deviation).
    input_features: network input: "rgb" (authors) or "rgb+logchroma" (deviation; see the
      module docstring and `log_chromaticity`).
    truth_weights: see the module docstring (supervised terms; authors: all 0).
    off_skin_weight: weight of the no-pigment-off-the-skin term (module docstring; authors: 0).
    off_skin_margin: pixels around the skin mask that the off-skin term leaves free (>= 0).
    face_region_weight: weight of the appearance term over the non-skin face pixels (module
      docstring; authors: 0).
    oracle_light_camera: render with the batch's true light and camera in `compute_loss`
      (diagnostic, rung c; authors: False); see the module docstring.
    optimizer: "sgd" (authors: SGD + momentum with L2 decay on conv kernels) or "adam".
    learning_rate, momentum, weight_decay: optimiser constants (authors: 1e-5, 0.9, 5e-4).
    bn_scale_lr_multiplier: learning-rate multiplier of BN scales (autonn: 2).
    lr_schedule: learning rate over the optimiser's update count n (authors: "constant"):
      "constant": lr;
      "step": lr for n < n0, lr * lr_final_factor for n >= n0;
      "cosine": lr for n < n0, then lr * (f + (1 - f) (1 + cos(pi (n - n0) / (N - n0))) / 2)
        for n0 <= n <= N and lr * f after, with f = lr_final_factor;
      where N = lr_schedule_steps (the run's number of steps) and
      n0 = round(lr_decay_start * N) (deviation; see `learning_rate_schedule`).
    lr_schedule_steps, lr_decay_start, lr_final_factor: N, n0 / N and f above.
  """
  base_filters: int = 32
  depth: int = 4
  fc_width: int = 512
  upsample: str = "nearest"
  dtype: str = "float32"
  logit_clip: float | None = None
  logit_max: float | None = None
  xyz_mode: str = "exact"
  daylight: str = "table"
  loss_weights: tuple[float, float, float, float] = (1e-3, 1e-4, 1e-5, 1e-5)
  normalise_by_foreground: bool = False
  stop_gradient_shading_scale: bool = True
  optimizer: str = "sgd"
  learning_rate: float = 1e-5
  momentum: float = 0.9
  weight_decay: float = 5e-4
  bn_scale_lr_multiplier: float = 2.0
  input_decode: str = "gamma"
  input_features: str = "rgb"
  lr_schedule: str = "constant"
  lr_schedule_steps: int = 0
  lr_decay_start: float = 0.0
  lr_final_factor: float = 1.0
  truth_weights: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
  off_skin_weight: float = 0.0
  off_skin_margin: int = 2
  face_region_weight: float = 0.0
  oracle_light_camera: bool = False

  @property
  def supervised(self) -> bool:
    """True when any ground-truth term is on (the batch must then carry `TRUTH_KEYS`)."""
    return any(w != 0.0 for w in self.truth_weights)

  @property
  def needs_truth(self) -> bool:
    """True when training batches must carry ground truth (supervised terms or the oracle)."""
    return self.supervised or self.oracle_light_camera

  def __post_init__(self):
    if self.upsample not in ("nearest", "bilinear"):
      raise ValueError(f"BioFaceNetConfig.upsample must be 'nearest' or 'bilinear', "
                       f"got {self.upsample!r}")
    if self.dtype not in ("float32", "bfloat16", "float64"):
      raise ValueError(f"BioFaceNetConfig.dtype must be 'float32', 'bfloat16' or 'float64', "
                       f"got {self.dtype!r}")
    if self.input_decode not in ("gamma", "srgb"):
      raise ValueError(f"BioFaceNetConfig.input_decode must be 'gamma' or 'srgb', "
                       f"got {self.input_decode!r}")
    if self.input_features not in INPUT_FEATURES:
      raise ValueError(f"BioFaceNetConfig.input_features must be one of {INPUT_FEATURES}, "
                       f"got {self.input_features!r}")
    if self.optimizer not in ("sgd", "adam"):
      raise ValueError(f"BioFaceNetConfig.optimizer must be 'sgd' or 'adam', "
                       f"got {self.optimizer!r}")
    if self.lr_schedule not in LR_SCHEDULES:
      raise ValueError(f"BioFaceNetConfig.lr_schedule must be one of {LR_SCHEDULES}, "
                       f"got {self.lr_schedule!r}")
    if self.lr_schedule != "constant" and not (
        self.lr_schedule_steps > 0 and 0.0 <= self.lr_decay_start < 1.0
        and self.lr_final_factor >= 0.0):
      raise ValueError("BioFaceNetConfig: a non-constant lr_schedule needs lr_schedule_steps "
                       "> 0, 0 <= lr_decay_start < 1 and lr_final_factor >= 0, got "
                       f"{self.lr_schedule_steps}, {self.lr_decay_start}, "
                       f"{self.lr_final_factor}")
    if self.xyz_mode not in ("exact", "table") or self.daylight not in ("table", "cie"):
      raise ValueError(f"BioFaceNetConfig: xyz_mode must be 'exact'/'table' and daylight "
                       f"'table'/'cie', got {self.xyz_mode!r}, {self.daylight!r}")
    if len(self.loss_weights) != 4:
      raise ValueError(f"BioFaceNetConfig.loss_weights needs 4 values, got {self.loss_weights}")
    if self.logit_clip is not None and not self.logit_clip > 0:
      raise ValueError(f"BioFaceNetConfig.logit_clip must be positive or None, "
                       f"got {self.logit_clip}")
    object.__setattr__(self, "loss_weights", tuple(float(w) for w in self.loss_weights))
    if len(self.truth_weights) != 4 or any(not float(w) >= 0 for w in self.truth_weights):
      raise ValueError("BioFaceNetConfig.truth_weights needs 4 values >= 0 (melanin, "
                       f"haemoglobin, camera, illuminant), got {self.truth_weights}")
    object.__setattr__(self, "truth_weights", tuple(float(w) for w in self.truth_weights))
    if not float(self.off_skin_weight) >= 0:
      raise ValueError(f"BioFaceNetConfig.off_skin_weight must be >= 0, "
                       f"got {self.off_skin_weight}")
    object.__setattr__(self, "off_skin_weight", float(self.off_skin_weight))
    if int(self.off_skin_margin) != self.off_skin_margin or self.off_skin_margin < 0:
      raise ValueError(f"BioFaceNetConfig.off_skin_margin must be an integer >= 0, "
                       f"got {self.off_skin_margin}")
    object.__setattr__(self, "off_skin_margin", int(self.off_skin_margin))
    if not float(self.face_region_weight) >= 0:
      raise ValueError(f"BioFaceNetConfig.face_region_weight must be >= 0, "
                       f"got {self.face_region_weight}")
    object.__setattr__(self, "face_region_weight", float(self.face_region_weight))
    if not isinstance(self.oracle_light_camera, (bool, np.bool_)):
      raise ValueError("BioFaceNetConfig.oracle_light_camera must be True or False, "
                       f"got {self.oracle_light_camera!r}")

  @classmethod
  def from_mapping(cls, mapping: Mapping[str, Any]) -> BioFaceNetConfig:
    """Builds a config from a dict or ml_collections ConfigDict; unknown keys are an error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - fields)
    if unknown:
      raise ValueError(f"unknown BioFaceNet config keys {unknown}; valid keys: {sorted(fields)}")
    kwargs = dict(mapping)
    for key in ("loss_weights", "truth_weights"):
      if key in kwargs:
        kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


# ------------------------------------------------------------------ preprocessing and scaling


def _check_unit_range(x: jax.Array, name: str) -> None:
  """Raises if a concrete (non-traced) array has values outside [0, 1] or non-finite ones."""
  if isinstance(x, jax.core.Tracer):
    return
  a = np.asarray(x)
  if a.size and not (np.all(np.isfinite(a)) and a.min() >= 0.0 and a.max() <= 1.0):
    raise ValueError(f"{name} must hold finite values in [0, 1] (gamma-encoded sRGB), "
                     f"got range [{np.nanmin(a)}, {np.nanmax(a)}]")


def preprocess(image_srgb: jax.Array, decode: str = "gamma") -> tuple[jax.Array, jax.Array]:
  """Linearises an image and makes the network input (spec section 7).

  Args:
    image_srgb: (..., 3) gamma-encoded RGB in [0, 1]. Checked when not traced; under jit the
      caller (the data pipeline) guarantees the range (a negative value would give NaN).
    decode: "gamma" (authors: x**2.2) or "srgb" (the exact sRGB curve, which the synthetic
      generator and most cameras use; see ``input_decode``).

  Returns:
    net_input: 255 * linear - mu_VGG, mu_VGG = (129.1863, 104.7624, 93.5940).
    linear: the linearised image (x**2.2 by default), the appearance target.
  """
  if image_srgb.shape[-1] != 3:
    raise ValueError(f"image must have 3 channels last, got shape {image_srgb.shape}")
  if decode not in ("gamma", "srgb"):
    raise ValueError(f"decode must be 'gamma' or 'srgb', got {decode!r}")
  _check_unit_range(image_srgb, "image")
  linear = (image_srgb**INPUT_GAMMA if decode == "gamma"
            else physics.srgb_decode(image_srgb))
  net_input = 255.0 * linear - jnp.asarray(VGG_MEAN, linear.dtype)
  return net_input, linear


def log_chromaticity(linear: jax.Array) -> jax.Array:
  """Shading-free colour features: ``log(x_c + eps) - mean_c log(x_c + eps)`` per pixel.

  For a diffuse pixel x = s * albedo, the features do not depend on the shading s (up to the
  floor ``eps`` = `LOG_CHROMA_EPS`); they sum to 0 over the three channels.

  Args:
    linear: (..., 3) linear RGB, >= 0.

  Returns:
    (..., 3) log-chromaticity times `LOG_CHROMA_SCALE`, so its spread matches the RGB input's.
  """
  log = jnp.log(linear + LOG_CHROMA_EPS)
  return LOG_CHROMA_SCALE * (log - jnp.mean(log, axis=-1, keepdims=True))


def scale_outputs(maps: jax.Array, vector: jax.Array, logit_clip: float | None = None,
                  logit_max: float | None = None) -> dict[str, jax.Array]:
  """Raw network outputs -> physical parameters (``scalingNet.m``, spec section 6).

  Args:
    maps: (..., H, W, 4) raw maps in the order m_mel, m_blood, m_shade, m_spec.
    vector: (..., 17) raw head output: 14 lighting weights, CCT index, 2 camera coefficients.
    logit_clip: None (authors) or c > 0 to clip m_shade and m_spec to [-c, c] before exp.
    logit_max: None (authors) or c to bound m_shade and m_spec by c - softplus(c - m).

  Returns:
    dict with ``fmel``, ``fblood`` in (-1, 1) and ``shading``, ``specular`` in (0, inf), each
    (..., H, W); ``weights`` (..., 14) on the simplex; ``t`` (...,) in (1, 22); ``b`` (..., 2)
    in (-3, 3).
  """
  if maps.shape[-1] != N_MAPS:
    raise ValueError(f"maps must have {N_MAPS} channels last, got shape {maps.shape}")
  if vector.shape[-1] != N_VECTOR:
    raise ValueError(f"vector must have {N_VECTOR} entries last, got shape {vector.shape}")
  m_shade, m_spec = maps[..., 2], maps[..., 3]
  if logit_clip is not None:
    m_shade = jnp.clip(m_shade, -logit_clip, logit_clip)
    m_spec = jnp.clip(m_spec, -logit_clip, logit_clip)
  if logit_max is not None:
    m_shade = logit_max - jax.nn.softplus(logit_max - m_shade)
    m_spec = logit_max - jax.nn.softplus(logit_max - m_spec)
  return {
      "fmel": 2.0 * jax.nn.sigmoid(maps[..., 0]) - 1.0,
      "fblood": 2.0 * jax.nn.sigmoid(maps[..., 1]) - 1.0,
      "shading": jnp.exp(m_shade),
      "specular": jnp.exp(m_spec),
      "weights": jax.nn.softmax(vector[..., :N_LIGHT_WEIGHTS], axis=-1),
      "t": 1.0 + 21.0 * jax.nn.sigmoid(vector[..., N_LIGHT_WEIGHTS]),
      "b": 6.0 * jax.nn.sigmoid(vector[..., N_LIGHT_WEIGHTS + 1:]) - 3.0,
  }


# ------------------------------------------------------------------------------ the model


class BioFaceNet(nn.Module):
  """Preprocessing, U-Net, output scaling and (optionally) the physics renderer.

  Attributes: as in `BioFaceNetConfig` (network fields only).
  """
  base_filters: int = 32
  depth: int = 4
  fc_width: int = 512
  upsample: str = "nearest"
  dtype: Any = jnp.float32
  logit_clip: float | None = None
  logit_max: float | None = None
  xyz_mode: str = "exact"
  daylight: str = "table"
  input_decode: str = "gamma"
  input_features: str = "rgb"

  @nn.compact
  def __call__(self, image_srgb: jax.Array, spectra: Any = None, lut: jax.Array | None = None,
               *, train: bool) -> dict[str, Any]:
    """Predicts the physical parameters and, given spectra and lut, renders them.

    Args:
      image_srgb: (B, H, W, 3) gamma-encoded sRGB in [0, 1].
      spectra: a `physics.Spectra` pytree, or None to skip rendering.
      lut: the skin lookup table from `physics.skin_lut`, or None to skip rendering.
      train: BatchNorm on batch statistics (needs ``mutable=["batch_stats"]``) if True.

    Returns:
      The ``outputs`` dict described in the module docstring.
    """
    net_input, linear = preprocess(image_srgb, self.input_decode)
    if self.input_features == "rgb+logchroma":
      net_input = jnp.concatenate([net_input, log_chromaticity(linear)], axis=-1)
    maps, vector = BioFaceUNet(self.base_filters, self.depth, self.fc_width, n_decoders=N_MAPS,
                               n_vector=N_VECTOR, upsample=self.upsample, dtype=self.dtype,
                               name="unet")(net_input, train)
    outputs = scale_outputs(maps, vector, self.logit_clip, self.logit_max)
    outputs["linear_input"] = linear
    if (spectra is None) != (lut is None):
      raise ValueError("pass both spectra and lut to render, or neither")
    if spectra is not None:
      outputs["render"] = physics.render(spectra, lut, outputs["fmel"], outputs["fblood"],
                                         outputs["shading"], outputs["specular"],
                                         outputs["weights"], outputs["t"], outputs["b"],
                                         xyz_mode=self.xyz_mode, daylight=self.daylight)
    return outputs


def make_model(config: BioFaceNetConfig) -> BioFaceNet:
  """The Flax module described by ``config``."""
  return BioFaceNet(base_filters=config.base_filters, depth=config.depth,
                    fc_width=config.fc_width, upsample=config.upsample,
                    dtype=jnp.dtype(config.dtype), logit_clip=config.logit_clip,
                    logit_max=config.logit_max,
                    xyz_mode=config.xyz_mode, daylight=config.daylight,
                    input_decode=config.input_decode, input_features=config.input_features)


def init(rng: jax.Array, image_shape: tuple[int, ...],
         config: BioFaceNetConfig) -> tuple[Any, Any]:
  """Initialises the network.

  Args:
    rng: a PRNG key.
    image_shape: (B, H, W, 3); H and W divisible by 2**config.depth.
    config: the model config.

  Returns:
    (params, batch_stats) pytrees.
  """
  variables = make_model(config).init(rng, jnp.zeros(image_shape, jnp.float32), train=False)
  return variables["params"], variables["batch_stats"]


def apply(params: Any, batch_stats: Any, image_srgb: jax.Array, config: BioFaceNetConfig, *,
          train: bool, spectra: Any = None, lut: jax.Array | None = None
          ) -> tuple[dict[str, Any], Any]:
  """Runs the model; returns (outputs, batch_stats), the latter updated only if ``train``."""
  variables = {"params": params, "batch_stats": batch_stats}
  model = make_model(config)
  if train:
    outputs, updates = model.apply(variables, image_srgb, spectra, lut, train=True,
                                   mutable=["batch_stats"])
    return outputs, updates["batch_stats"]
  return model.apply(variables, image_srgb, spectra, lut, train=False), batch_stats


def predict(params: Any, batch_stats: Any, image_srgb: jax.Array, config: BioFaceNetConfig,
            spectra: Any = None, lut: jax.Array | None = None) -> dict[str, Any]:
  """Evaluation-mode forward pass (running BatchNorm statistics)."""
  return apply(params, batch_stats, image_srgb, config, train=False, spectra=spectra,
               lut=lut)[0]


# ------------------------------------------------------------------- loss and optimiser
# They live in `biofacenet_loss` so that this file stays the model; re-exported here because
# `biofacenet.compute_loss` / `biofacenet.optimizer` are the public API.
from bioface_jax.models.biofacenet_loss import (  # noqa: E402
    appearance_loss, camera_prior_loss, compute_loss, decay_mask,
    learning_rate_schedule, loss_from_outputs, masked_mse, off_skin_pigment_loss,
    off_skin_region, optimizer,
    oracle_render,
    scale_by_lr_multiplier, shading_loss, shading_scale, specular_sparsity_loss,
    spectrum_shape_loss, truth_losses)

__all__ = ["APPEARANCE_SCALE", "BioFaceNet", "BioFaceNetConfig", "INPUT_FEATURES", "LR_SCHEDULES",
           "FACE_REGION_KEY", "ORACLE_KEYS", "TRUTH_KEYS", "VGG_MEAN", "appearance_loss", "apply",
           "camera_prior_loss", "compute_loss", "decay_mask", "init", "learning_rate_schedule",
           "log_chromaticity", "loss_from_outputs", "make_model", "masked_mse",
           "off_skin_pigment_loss", "off_skin_region", "optimizer",
           "oracle_render", "predict", "preprocess", "scale_by_lr_multiplier", "scale_outputs",
           "shading_loss", "shading_scale", "specular_sparsity_loss", "spectrum_shape_loss",
           "truth_losses"]
