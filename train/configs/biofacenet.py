"""BioFaceNet training configs: ``--config train/configs/biofacenet.py[:variant]``.

Every field can be overridden on the command line, e.g. ``--config.num_train_steps=500
--config.batch_size=32 --config.learning_rate=3e-4 --config.model.base_filters=8``.
``--config.init_workdir=DIR`` starts from the network variables of DIR (a run or an export, e.g.
the shipped model ``bioface_jax/pretrained/shipped/biofacenet``) with a fresh optimiser and
schedule; the config must build the same network.

Variants (commands run from the repository root; times are on the 2-core CPU this project is
developed on unless stated):

* ``smoke``: a tiny network on 64 tiny synthetic faces, 4 steps; seconds. For tests and for
  checking an installation::

    python -m train.biofacenet --config train/configs/biofacenet.py:smoke --workdir /tmp/smoke

* ``default`` (no suffix): a reduced-width BioFaceNet (the authors' topology: 3 conv-BN-ReLU
  per level, four decoders, FC head; 8 base filters, FC width 128, 1.76M parameters) on 4096
  synthetic 64x64 face scenes (`data.synth.scene`: shape space, expressions, eyes, teeth,
  hair, neck, clothes, occluders, light rigs with cast shadows, photographic backgrounds;
  docs/synthetic_world.md) with the world's camera *without* its processing chain (exact sRGB
  curve, noise, 8 bits), generated on first use (5.5 min on 2 cores with two layout workers)
  and cached in ~/.cache/bioface_jax. Documented deviations from the authors: Adam at 3e-4 (the
  authors' SGD at lr 1e-5 needs ~10^5 steps), ``model.logit_max=3`` (a smooth upper bound on
  the shading/specular logits; the authors' exp lets a few pixels reach ~1e3 at
  initialisation), ``model.truth_weights = DEFAULT_TRUTH_WEIGHTS`` (supervised terms on the
  synthetic ground truth: melanin, haemoglobin, camera b, illuminant; without them the network
  reconstructs the image but recovers no pigment, docs/biofacenet_recovery.md),
  ``model.lr_schedule="step"`` (5250 steps of 16, 3e-4 for 4500 then 1e-4) and
  ``model.input_features="rgb+logchroma"`` (three shading-free log-chromaticity input
  channels), the authors' appearance term weighted 3x (``model.loss_weights[0]`` 3e-3
  instead of 1e-3) and extended from the skin over brows, eyes and mouth
  (``model.face_region_weight=1``, from the scene labels), and no pigment more than 10 px off
  the skin mask (``model.off_skin_weight=0.2``, ``model.off_skin_margin=10``; authors: no
  such term). The held-out recovery metrics are logged as ``eval/recovery/*`` every 250
  steps. Measured from scratch (2026-12-07; `eval.recovery`, 256 held-out scenes of its
  world): melanin RMSE 0.138 (baseline 0.304), haemoglobin 0.096 (0.187), per-face melanin /
  haemoglobin r 0.93 / 0.93, reconstruction 0.033, diffuse shading 0.076; illuminant 9.1 deg
  and camera b 1.32 are no better than the constant (9.0 deg, 1.18); a second seed: 0.136 /
  0.093, r 0.94 / 0.92. On 29 real faces (`python -m eval.real_judge --biofacenet RUN`,
  network alone): melanin mass outside the face 0.45 (seed 1: 0.47) against 0.90 (0.88)
  without the off-skin term (``appearance``), melanin uncorrelated with shading (r +0.07;
  seed 1 -0.26) against -0.37 (-0.47), central sRGB RMSE 0.067 (seed 1: 0.069) against 0.065
  (0.063); refined per photo (`eval.photo_rmse --refine-steps 200`) 0.024 against 0.025;
  light estimates that vary with the photo (daylight component 8,034 K, IQR 6,714-8,733).
  With a 2- or 5-px margin the off-skin term makes melanin follow shading (r +0.32, +0.21)
  and misses the haemoglobin target (docs/synthetic_world.md, "No pigment off the skin, on
  the shipped default"). Runtime: 5.5 min of scene generation + 37 min for the 5250 steps on
  the 2 cores (niced, with short test and evaluation jobs beside it)::

    python -m train.biofacenet --config train/configs/biofacenet.py --workdir runs/default

  The shipped model is this run continued twice by the same recipe on 4,096 fresh scenes each
  (``--config.init_workdir=runs/default --config.data.seed=1 --workdir runs/more1``, then
  ``--config.init_workdir=runs/more1 --config.data.seed=2 --workdir runs/more2``; 33-46 min
  each): held-out melanin / haemoglobin RMSE 0.133 / 0.080, r 0.96 / 0.94, reconstruction
  0.024; on the 29 real faces central sRGB RMSE 0.050 network alone (better than the run above
  on all 29), 0.020 refined (docs/synthetic_world.md, "More training on fresh scenes").

  With ``--config.model.base_filters=12`` (3.73M parameters, ~1.7x the time per step): better
  on its own world (central sRGB RMSE 0.045 vs 0.047, shading 0.071), no better on real
  photos (0.070; docs/synthetic_world.md, "A wider network").

* ``appearance``: the default without its off-skin term: the model shipped from the morning
  of 2026-12-07 until the default above replaced it the same day (before that a variant of the
  same name). Measured from scratch: melanin RMSE 0.148, haemoglobin 0.098, per-face melanin
  / haemoglobin r 0.92 / 0.92, reconstruction 0.034 on 256 held-out scenes (a second seed:
  0.137 / 0.089, r 0.93); on 29 real faces central sRGB RMSE 0.065 (seed 1: 0.063) against
  0.077 with the authors' weight over the skin only (``skin_appearance``; paired -0.015 +-
  0.004, better on 24 of 29 faces), refined 0.025, daylight component 7,794 K (IQR
  6,898-8,456), but 90 % of the melanin mass outside the face and melanin following shading
  (r -0.37). With the appearance weight 10x (1e-2): real RMSE 0.066 and recovery 0.158 /
  0.113, off the targets (docs/synthetic_world.md, "Weighting the appearance term")::

    python -m train.biofacenet --config train/configs/biofacenet.py:appearance --workdir runs/appearance

* ``skin_appearance``: ``appearance`` with the authors' appearance term (weight 1e-3, skin
  mask only): the model shipped from 2026-12-07 until ``appearance`` replaced it the same day.
  Measured from scratch: melanin RMSE 0.137, haemoglobin 0.093, per-face melanin r 0.92,
  reconstruction 0.037 on 256 held-out scenes; on 29 real faces central sRGB RMSE 0.077,
  daylight component 6,805 K (IQR 6,255-7,269)::

    python -m train.biofacenet --config train/configs/biofacenet.py:skin_appearance --workdir runs/skin_appearance

* ``scenes``: ``skin_appearance`` on the full face-scene world, camera processing chain included (tone
  curves, saturation, white-balance and exposure errors, blur, JPEG). Measured (step 5250): on
  its own held-out scenes melanin RMSE 0.197, haemoglobin 0.115, camera b 1.16, illuminant
  9.3 deg, reconstruction 0.044, i.e. *not* within the recovery targets (0.15 / 0.10): the
  chain makes a face's colour ambiguous between pigments and processing (the realism
  ablation, docs/synthetic_world.md); on 29 real faces central sRGB RMSE 0.078, light
  estimates that vary with the photo (6,317 K, IQR 5,280-7,254), haemoglobin higher on lips
  and cheeks than on the forehead in 93 % / 90 % of faces, melanin uncorrelated with shading
  (r -0.01), but more pigment mass outside the face (melanin 0.92)::

    python -m train.biofacenet --config train/configs/biofacenet.py:scenes --workdir runs/scenes

  With ``--config.model.off_skin_weight=0.5`` (no pigment more than 2 px off the skin mask;
  off here): real-photo pigment mass outside the face 0.27 / 0.26 instead of 0.92 / 0.75, but
  melanin then follows shading (r 0.51) and recovery is 0.193 / 0.127
  (docs/synthetic_world.md, "No pigment off the skin").

  With ``--config.model.face_region_weight=1.0`` (the appearance term also over brows, eyes and
  mouth, from the scene labels; off here): real-photo RMSE 0.074 instead of 0.078, melanin
  then follows shading (r -0.15), recovery 0.198 / 0.120 (docs/synthetic_world.md).

* ``faces``: the default until 2026-12-07 (the model shipped until then): the ``skin_appearance`` recipe on
  4096 skin-only synthetic faces (`data.synth.faces`: one deformed mean face over colour
  gradients, SH light, an exact sRGB camera), generated in about 2 minutes (40 faces/s).
  Measured from scratch (`eval.recovery`, 256 held-out faces of its world): melanin RMSE 0.118
  (baseline 0.318), haemoglobin 0.086 (0.161), per-face melanin r 0.94, reconstruction 0.025,
  diffuse shading 0.100, illuminant angle 19.7 deg (23.2); camera b 1.32 is worse than the
  baseline's 1.24; on real faces 0.093 with the light estimate stuck near 14,000 K. Runtime:
  25.8 min (1546 s) for the 5250 steps on the 2 cores at load ~2
  (docs/biofacenet_recovery.md, section 4)::

    python -m train.biofacenet --config train/configs/biofacenet.py:faces --workdir runs/faces

* ``selfsup``: the previous default, purely self-supervised (truth_weights = 0): reconstructs
  well (held-out reconstruction RMSE 0.030) but recovers no pigments (melanin RMSE 0.396 vs a
  constant baseline 0.318, see docs/biofacenet_recovery.md)::

    python -m train.biofacenet --config train/configs/biofacenet.py:selfsup --workdir runs/selfsup

  Diagnostic (ladder rung c, docs/biofacenet_recovery.md): ``--config.model.oracle_light_camera=True``
  renders with each synthetic face's true light and camera instead of the head's (synthetic
  data only; never for a model to ship). Measured: self-supervised + oracle, 500 steps,
  melanin 0.451 / haemoglobin 0.629 on 128 held-out faces, no better than the network with
  its own head at 500 steps (0.426 / 0.672) and worse than the constant baseline::

    python -m train.biofacenet --config train/configs/biofacenet.py:selfsup \
        --config.num_train_steps=500 --config.model.oracle_light_camera=True --workdir runs/oracle

* ``nfe``: the authors' architecture on the Neural Face Editing HDF5 shards in
  ``--config.data.dir`` (shard 20 held out), Adam at 1e-4 for faster convergence::

    python -m train.biofacenet --config train/configs/biofacenet.py:nfe \\
        --config.data.dir=/path/to/nfe_shards --workdir runs/nfe

* ``paper``: exactly the authors' settings on the NFE shards: SGD momentum 0.9, weight decay
  5e-4 on conv kernels, lr 1e-5, batch 64, 200 epochs of the 50,765 images (158,640 steps):
  days on one GPU::

    python -m train.biofacenet --config train/configs/biofacenet.py:paper \\
        --config.data.dir=/path/to/nfe_shards --workdir runs/paper

* ``synthetic_full``: the authors' architecture and optimiser on 50,000 synthetic faces (for a
  GPU; no download needed).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

VARIANTS = ("smoke", "default", "appearance", "skin_appearance", "scenes", "faces", "selfsup",
            "nfe", "paper", "synthetic_full")
NFE_IMAGES = 50765
# Supervised-term weights (melanin, haemoglobin, camera b, illuminant) of the default config;
# see docs/biofacenet_recovery.md for why and for their measured effect.
DEFAULT_TRUTH_WEIGHTS = (1.0, 1.0, 0.01, 0.1)


def scene_switches() -> ml_collections.ConfigDict:
  """The scene world's realism switches (`data.synth.scene.SceneOptions` fields), defaults."""
  return ml_collections.ConfigDict(dict(parts=True, context=True, occluders=True,
                                        expressions=True, identity_scale=1.0, light="rig",
                                        camera="chain", background="photo"))


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = "default"
  c.seed = 0
  c.num_train_steps = 1500
  c.batch_size = 16
  c.learning_rate = 3e-4
  c.log_every_steps = 25
  c.checkpoint_every_steps = 250
  c.figure_every_steps = 250
  c.init_workdir = ""             # warm start from this run / export (same network)
  c.eval_every_steps = 250
  c.eval_examples = 128
  c.max_to_keep = 3
  c.async_checkpointing = True

  c.model = ml_collections.ConfigDict()
  c.model.base_filters = 8
  c.model.depth = 4
  c.model.fc_width = 128
  c.model.upsample = "nearest"
  c.model.dtype = "float32"
  c.model.logit_clip = config_dict.placeholder(float)
  c.model.logit_max = 3.0   # smooth bound: i_d, i_s < e^3 (None = authors' unbounded exp)
  c.model.xyz_mode = "exact"
  c.model.daylight = "table"
  c.model.loss_weights = (1e-3, 1e-4, 1e-5, 1e-5)
  c.model.normalise_by_foreground = False
  c.model.stop_gradient_shading_scale = True
  c.model.optimizer = "adam"
  c.model.momentum = 0.9
  c.model.weight_decay = 5e-4
  c.model.bn_scale_lr_multiplier = 2.0
  # Learning-rate schedule (BioFaceNetConfig.lr_schedule): "constant" (authors), "step" or
  # "cosine": the rate stays at learning_rate for the first lr_decay_start of the
  # lr_schedule_steps updates (0 = num_train_steps), then drops (step) or anneals (cosine) to
  # learning_rate * lr_final_factor.
  c.model.lr_schedule = "constant"
  c.model.lr_schedule_steps = 0
  c.model.lr_decay_start = 0.0
  c.model.lr_final_factor = 1.0
  # Supervised terms on the synthetic faces' ground truth (melanin, haemoglobin, camera b,
  # illuminant); (0, 0, 0, 0) = the authors' purely self-supervised loss.
  c.model.truth_weights = (0.0, 0.0, 0.0, 0.0)
  # No pigment off the skin mask (BioFaceNetConfig.off_skin_weight; authors: 0).
  c.model.off_skin_weight = 0.0
  c.model.off_skin_margin = 2   # pixels around the skin mask that the off-skin term leaves free
  # Appearance term also over the non-skin face pixels (brows, eyes, mouth; scene world only;
  # BioFaceNetConfig.face_region_weight; authors: 0).
  c.model.face_region_weight = 0.0
  # "gamma" = authors' x**2.2 input linearisation; "srgb" = the exact curve the synthetic
  # generator encodes with (docs/biofacenet_recovery.md, convention audit).
  c.model.input_decode = "gamma"
  # "rgb" = authors; "rgb+logchroma" adds shading-free log-chromaticity input channels.
  c.model.input_features = "rgb"
  # Diagnostic (ladder rung c): render with the batch's true light and camera instead of the
  # head's; synthetic data only. Never on in a shipped model.
  c.model.oracle_light_camera = False

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"
  # Synthetic world: "faces" = the skin-only faces of data.synth.faces (runs whose config lacks
  # the key used it; the `faces` variant, the default until 2026-12-07); "scenes" =
  # data.synth.scene (faces with eyes, mouths, hair, neck, clothes, occluders, light rigs, a
  # camera chain and photographic backgrounds; docs/synthetic_world.md): the default (without
  # the camera chain) and the `scenes` variant (with it).
  c.data.world = "faces"
  c.data.workers = 2             # processes that lay out synthetic scenes on first use
  c.data.scene = scene_switches()  # world "scenes": realism switches (data.synth.scene)
  c.data.dir = ""                # NFE shards directory (source = "nfe")
  c.data.cache_dir = ""          # synthetic cache; "" = ~/.cache/bioface_jax
  c.data.num_faces = 4096
  c.data.size = 64
  c.data.seed = 0
  c.data.holdout_fraction = 0.1
  c.data.holdout_shards = ("20",)  # NFE: shard 20 is held out
  c.data.synth_options = ml_collections.ConfigDict()
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config of a variant (see the module docstring)."""
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
  c = _base()
  c.variant = variant
  # `appearance` is the default without its off-skin term: the recipe shipped on the morning
  # of 2026-12-07 (a variant before that), built by the default's steps below.
  recipe = "default" if variant == "appearance" else variant
  if recipe in ("default", "skin_appearance", "scenes", "faces"):
    c.model.truth_weights = DEFAULT_TRUTH_WEIGHTS
    # 5250 steps: 4500 at 3e-4, then 750 at 1e-4 (step decay at 6/7 of the run).
    c.num_train_steps = 5250
    c.model.input_features = "rgb+logchroma"
    c.model.lr_schedule = "step"
    c.model.lr_decay_start = 6 / 7
    c.model.lr_final_factor = 1 / 3
  if recipe in ("default", "skin_appearance", "scenes"):
    c.data.world = "scenes"
  if recipe == "default":
    # The appearance term weighted 3x and extended over brows, eyes and mouth: closer to real
    # photos, pigment recovery kept at its targets (module docstring).
    c.model.loss_weights = (3e-3,) + tuple(c.model.loss_weights[1:])
    c.model.face_region_weight = 1.0
  if variant == "default":
    # No pigment more than 10 px off the skin mask: confines the maps to the face without the
    # melanin-shading leak a narrower margin causes (module docstring).
    c.model.off_skin_weight = 0.2
    c.model.off_skin_margin = 10
  if recipe in ("default", "skin_appearance"):
    # The world's camera without its processing chain (exact sRGB curve, noise, 8 bits): with
    # the chain's tone curves, saturation and white-balance errors a face's colour no longer
    # identifies its pigments (docs/synthetic_world.md, the realism ablation).
    c.data.scene.camera = "srgb"
  if variant == "smoke":
    c.num_train_steps = 4
    c.batch_size = 8
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.figure_every_steps = 4
    c.eval_every_steps = 4
    c.eval_examples = 8
    c.async_checkpointing = False
    c.model.base_filters = 4
    c.model.depth = 2
    c.model.fc_width = 16
    c.data.num_faces = 64
    c.data.size = 32
    c.data.holdout_fraction = 0.25
    c.data.world = "faces"  # Seconds: the scene world takes ~0.1 s a face (tests use smoke).
    c.data.workers = 0
  elif variant in ("nfe", "paper", "synthetic_full"):
    c.model.base_filters = 32
    c.model.fc_width = 512
    c.model.logit_max = 3.0 if variant == "nfe" else None
    c.batch_size = 64
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2000
    c.figure_every_steps = 2000
    c.eval_every_steps = 2000
    c.eval_examples = 1024
    c.data.source = "nfe" if variant != "synthetic_full" else "synthetic"
    c.data.num_faces = 50000
    c.num_train_steps = 200 * NFE_IMAGES // c.batch_size
    if variant == "nfe":
      c.model.optimizer = "adam"
      c.learning_rate = 1e-4
      c.num_train_steps = 50000
    else:
      c.model.optimizer = "sgd"
      c.learning_rate = 1e-5
  return c
