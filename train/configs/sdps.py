"""SDPS-Net training configs: ``--config train/configs/sdps.py:TASK[,MOD...]``.

TASK (sdps-spec.md §9):

* ``smoke``: 2 steps of LCNet on 8 tiny scenes (16², 4 images, α = 1/16); seconds; the tests
  also run ``smoke,nenet`` / ``smoke,fused`` / ``smoke,psfcn`` (the smoke sizes with that task).
* ``lcnet``: stage 1, LCNet with the three cross-entropy losses.
* ``nenet``: stage 2, NENet on the *frozen* argmax lights of a trained LCNet
  (``--config.lcnet_workdir=RUN``; its model config is restored from that run). The LCNet
  parameters are stored (not trained) in this run's checkpoints, so the run is self-contained.
* ``psfcn``: NENet with the true lights and intensities (calibrated PS-FCN).
* ``fused``: FusedNet (LCNet -> soft decode -> NENet) trained end to end with the normal loss
  only (``--config.model.light_w`` > 0 adds the light losses as an ablation).

MOD: ``ds`` (depthwise-separable convs), ``res`` (residual blocks), ``w1``/``w0.5``/``w0.25``
(width multiplier), ``ints_high`` / ``ints_strat`` (the student's intensity sampling),
``faces_mix`` (add faces to the scene mix at 0.25; session 3's fine-tune, then called ``faces``),
``faces`` (the face recipe of docs/face_geometry.md: 80 % faces, realistic light (ambient,
coloured lights, shot noise: `data.photometric.synth.render_scenes`), evaluated on the
held-out ``faces`` set), ``scenes`` (the same recipe with the face-scene world's portraits,
`data.synth.scene`, in place of the floating face masks: hair, ears, neck, clothes, glasses and
beards with their own materials; evaluated on the held-out ``scenes`` set), ``gpu`` (S = 128, α = 1, N = 32, batch 32 LCNet /
16 others, 2,000 steps), ``paper`` (§7's schedules in steps: 53,258 steps; days).

CPU default (no ``gpu``/``paper``): S = 64 scenes, LCNet at input_size 64 on the full images,
NENet / PS-FCN on random 32² crops with ≥ 25 % mask, FusedNet on the full 64² images;
α = 0.25, N = 16 images, batch 8, Adam 5e-4 halved at 25/50/75 %; a bank of 1,024 scenes
(spec: 4,096; reduced so the first run generates it in ~2 min on a busy CPU). Steps: LCNet
1,500, NENet / PS-FCN 600, FusedNet 400 (spec: 3,000 / 3,000 / 4,000; cut to what the shared
CPU allowed). Measured on 2 shared, busy cores (load 10-16):

* ``lcnet``: 1,500 steps in 26 min (1-2 steps/s); held-out ``objects`` at N = 16: light
  direction error 15.5° (step 500) -> 11.7° (1,000) -> 10.8° (1,500), intensity error 0.093
  (always predicting +z would score ≈ 57°; the quantisation floor is 1.73°).
* ``nenet`` on that LCNet: 600 steps in 13 min (≈0.8 steps/s); held-out ``objects`` MAE at
  N = 16 with LCNet's lights: 12.0° (200) -> 9.6° (400) -> 9.6° (600).
* ``nenet,ds,res`` on the same LCNet (NENet 18,848 parameters instead of 139,328): 600 steps in
  19 min (0.4-0.9 steps/s, beside other jobs); held-out ``objects`` MAE at N = 16: 23.8° (200)
  -> 14.9° (400) -> 14.1° (600).
* ``fused``: 0.16 steps/s at load 10-16, 0.5-0.9 steps/s at load ≈5 (full 64² images through
  both parts); 400 steps (32 + 368 resumed) in ≈14 min; held-out ``objects`` MAE at N = 16:
  9.7° at step 400 (docs/sdps.md).

Commands (repository root)::

  python -m train.sdps --config train/configs/sdps.py:lcnet --workdir runs/sdps_lcnet
  python -m train.sdps --config train/configs/sdps.py:nenet \\
      --config.lcnet_workdir=runs/sdps_lcnet --workdir runs/sdps_nenet
  python -m train.sdps --config train/configs/sdps.py:fused --workdir runs/sdps_fused
  python -m train.sdps --config train/configs/sdps.py:lcnet,ds,res --workdir runs/sdps_lcnet_dsres
  python -m train.sdps --config train/configs/sdps.py:nenet,ds,res \\
      --config.lcnet_workdir=runs/sdps_lcnet --workdir runs/sdps_nenet_dsres

Lighter / other variants and the faces fine-tune (session 3; results in docs/sdps.md)::

  python -m train.sdps --config train/configs/sdps.py:lcnet,ds,res --workdir runs/sdps_lcnet_dsres
      # stopped (SIGTERM) after the step-500 eval, to compare with lcnet's step-500 eval
  python -m train.sdps --config train/configs/sdps.py:nenet,w0.09 \
      --config.lcnet_workdir=runs/sdps_lcnet --workdir runs/sdps_nenet_w009   # 19,243 params
  python -m train.sdps --config train/configs/sdps.py:lcnet,ints_high --workdir runs/sdps_lcnet_ints_high
  python -m train.sdps --config train/configs/sdps.py:lcnet,ints_strat --workdir runs/sdps_lcnet_ints_strat
      # both stopped after the step-500 eval (same schedule as lcnet)
  python -m train.sdps --config train/configs/sdps.py:fused,ds,res --workdir runs/sdps_fused_dsres
  python -m train.sdps --config train/configs/sdps.py:lcnet,faces_mix --config.init_workdir=runs/sdps_lcnet \
      --config.num_train_steps=200 --workdir runs/sdps_lcnet_faces
  python -m train.sdps --config train/configs/sdps.py:nenet,faces_mix --config.init_workdir=runs/sdps_nenet \
      --config.lcnet_workdir=runs/sdps_lcnet_faces --config.num_train_steps=200 \
      --workdir runs/sdps_nenet_faces

``--config.init_workdir=RUN`` warm-starts from RUN's parameters (same network; fresh Adam and
schedule over ``num_train_steps``). RUN (and ``lcnet_workdir``) may also be an export or the
authors' weights imported by ``python -m train.import_weights sdps_torch`` (docs/weights.md):
the task takes the network it trains from it (LCNet for ``lcnet`` and ``lcnet_workdir``, NENet
for ``nenet`` / ``psfcn``, both as FusedNet's parts for ``fused``)::

  python -m train.sdps --config train/configs/sdps.py:nenet,paper \
      --config.lcnet_workdir=weights/sdps --config.init_workdir=weights/sdps --workdir runs/ft Measured step times and results are in docs/sdps.md
(2 shared, busy CPU cores).
"""

from __future__ import annotations

import ml_collections

TASKS = ("smoke", "lcnet", "nenet", "psfcn", "fused")
MODS = ("ds", "res", "w1", "w0.5", "w0.25", "ints_high", "ints_strat", "faces", "faces_mix",
        "scenes", "gpu", "paper", "nenet", "fused", "psfcn", "lcnet")
FACES_MIX = {"sphere": 0.0, "blob": 0.25, "face": 1.0}  # 80 % faces
SCENES_MIX = {"sphere": 0.0, "blob": 0.25, "face": 0.0, "scene": 1.0}  # 80 % face-scene portraits
FACES_LIGHT = (0.3, 0.15, 1e-3)  # ambient, tint, shot_noise (render_scenes)
# Photos in [0, 1] (the `pretrained` contract) are darker than SDPS-Net's U(1, 3) exposures.
FACES_EXPOSURE = (0.3, 3.0)
SYNTH_SAMPLES = 85212  # PS Blobby + Sculpture


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = "lcnet"
  c.task = "lcnet"
  c.seed = 0
  c.num_train_steps = 1500       # per task below: nenet / psfcn 600, fused 400
  c.batch_size = 8
  c.learning_rate = 5e-4
  c.milestones = (0.25, 0.5, 0.75)
  c.log_every_steps = 25
  c.checkpoint_every_steps = 500
  c.figure_every_steps = 500
  c.eval_every_steps = 500
  c.max_to_keep = 2
  c.async_checkpointing = True
  c.lcnet_workdir = ""
  c.init_workdir = ""             # warm start: the parameters of this run (same network)

  c.model = ml_collections.ConfigDict()
  c.model.conv = "standard"
  c.model.residual = False
  c.model.width_multiplier = 0.25
  c.model.input_size = 64
  c.model.light_w = 0.0
  c.model.masked_loss = False
  c.model.nenet_scale = 1         # NENet's internal resolution factor (models/sdps.py)

  c.data = ml_collections.ConfigDict()
  c.data.size = 64
  c.data.bank_size = 1024
  c.data.seed = 0
  c.data.mix = ml_collections.ConfigDict({"sphere": 0.1, "blob": 0.9, "face": 0.0})
  c.data.num_images = 16
  c.data.strategy = "uniform"
  c.data.num_strata = 0          # 0 = N strata (stratified only)
  c.data.crop = 32               # NENet / PS-FCN crop (0 = full images)
  c.data.min_crop_fraction = 0.25
  c.data.cast_shadows = True
  c.data.max_polar_deg = 90.0
  c.data.noise = 0.025
  c.data.exposure = 1.0
  c.data.factor_range = (1.0, 3.0)  # colour / exposure factor per sample and channel
  c.data.ambient = 0.0           # realistic light (data.photometric.synth.render_scenes)
  c.data.tint = 0.0
  c.data.shot_noise = 0.0
  c.data.cache_dir = ""          # "" = ~/.cache/bioface_jax/photometric
  c.data.eval_set = "objects"
  c.data.eval_scenes = 8
  c.data.eval_images = 16
  return c


def _apply_mod(c: ml_collections.ConfigDict, mod: str) -> None:
  if mod in ("lcnet", "nenet", "psfcn", "fused"):
    c.task = mod
  elif mod == "ds":
    c.model.conv = "depthwise_separable"
  elif mod == "res":
    c.model.residual = True
  elif mod.startswith("w"):
    c.model.width_multiplier = float(mod[1:])
  elif mod == "ints_high":
    c.data.strategy = "high"
  elif mod == "ints_strat":
    c.data.strategy = "stratified"
  elif mod == "faces_mix":
    c.data.mix.face = 0.25
  elif mod in ("faces", "scenes"):
    c.data.mix = ml_collections.ConfigDict(dict(FACES_MIX if mod == "faces" else SCENES_MIX))
    c.data.ambient, c.data.tint, c.data.shot_noise = FACES_LIGHT
    c.data.factor_range = FACES_EXPOSURE
    c.data.eval_set = mod
    c.data.eval_scenes = 16
  elif mod == "gpu":
    c.data.size = 128
    c.model.input_size = 128
    c.data.crop = 0
    c.model.width_multiplier = 1.0
    c.data.num_images = 32
    c.data.bank_size = 8192
    c.batch_size = 32 if c.task == "lcnet" else 16
    c.num_train_steps = 2000
    c.log_every_steps = 50
    c.data.eval_scenes = 64
  elif mod == "paper":
    _apply_mod(c, "gpu")
    c.num_train_steps = -(-(20 if c.task == "lcnet" else 10) * SYNTH_SAMPLES // c.batch_size)
    if c.task == "psfcn":
      c.num_train_steps = -(-30 * SYNTH_SAMPLES // 32)
      c.batch_size = 32
      c.learning_rate = 1e-3
      c.milestones = (1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6)
    elif c.task != "lcnet":
      c.milestones = (0.2, 0.4, 0.6, 0.8)
    c.checkpoint_every_steps = 5000
    c.figure_every_steps = 5000
    c.eval_every_steps = 5000
    c.data.bank_size = 16384
  else:
    raise ValueError(f"unknown config modifier {mod!r}; choose from {', '.join(MODS)}")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``TASK[,MOD...]``, e.g. ``lcnet``, ``nenet,ds,res``, ``smoke,fused`` (module docstring)."""
  parts = [p.strip() for p in (arg or "lcnet").split(",") if p.strip()]
  task, mods = parts[0], parts[1:]
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
  c = _base()
  c.variant = ",".join(parts)
  c.task = "lcnet" if task == "smoke" else task
  for mod in [m for m in mods if m in ("lcnet", "nenet", "psfcn", "fused")]:
    _apply_mod(c, mod)
  c.num_train_steps = {"lcnet": 1500, "nenet": 600, "psfcn": 600, "fused": 400}[c.task]
  if task == "smoke":
    c.num_train_steps = 2
    c.batch_size = 4
    c.log_every_steps = 1
    c.checkpoint_every_steps = 1
    c.figure_every_steps = 2
    c.eval_every_steps = 2
    c.async_checkpointing = False
    c.model.width_multiplier = 1 / 16
    c.model.input_size = 16
    c.data.size = 16
    c.data.crop = 8
    c.data.bank_size = 8
    c.data.num_images = 4
    c.data.eval_scenes = 4
    c.data.eval_images = 4
  for mod in [m for m in mods if m not in ("lcnet", "nenet", "psfcn", "fused")]:
    _apply_mod(c, mod)
  return c
