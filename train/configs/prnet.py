"""PRNet training configs: ``--config train/configs/prnet.py[:variant]``.

Every field can be overridden, e.g. ``--config.num_train_steps=300 --config.model.encoder=resnet18``.
Commands run from the repository root; CPU times are on the 2 shared, busy development cores.

* ``smoke``: ResFCN, R 64, width 0.125, 32 synthetic pairs, 2 steps of 8: seconds (tests)::

    python -m train.prnet --config train/configs/prnet.py:smoke --workdir /tmp/prnet_smoke

* ``resfcn_cpu`` / ``resnet18_cpu`` / ``mobilenet_v2_cpu``: R 128, width 0.25, BN momentum 0.9,
  1,024 synthetic training pairs (seed 0) + 256 held out (seed 1), generated on first use
  (~4 min on the busy cores, cached in ~/.cache/bioface_jax) and shared by the three; batch 16,
  ``num_epochs`` 30 (1,920 steps), augmentation on; not run to completion on the busy
  development CPU (ResFCN at R 128, w 0.25 trained at ~2 img/s there under load 10+: ~4 h).
  What was measured instead (docs/prnet.md, table and command) is R 64, w 0.25, Adam 1e-3,
  1,500 steps (``--config.data.size=64 --config.model.width_multiplier=0.25
  --config.learning_rate=1e-3 --config.num_train_steps=1500``): 14-25 min per encoder at
  23-43 img/s; held-out NME (mean of yaw bins) ResNet18 16.0 %, ResFCN 25.4 %, MobileNetV2
  24.8 %, against 24.7 % for the mean-map baseline (only ResNet18 had learned). ResFCN is not
  broken but slow to start at this setting: resumed to 2,700 steps it leaves the plateau at
  2,100-2,400 and reaches 18.8 % (docs/prnet.md, diagnosis)::

    python -m train.prnet --config train/configs/prnet.py:resnet18_cpu --workdir runs/prnet_r18

* ``resfcn`` / ``resnet18`` / ``mobilenet_v2``: the full 256 settings for a GPU: width 1,
  3,584 synthetic pairs (~ IBUG with flips), 512 held out, batch 16, 150 / 500 / 420 epochs
  (the seed report's schedules), Adam 1e-4 / 1e-4 / 1e-5, decay 0.99 every 5 epochs.
* ``photo_cpu``: for real photos (issue 19): ResNet18, R 128, w 0.25, 2,048 synthetic faces with
  painted head context (``data.context``), Adam 1e-3, 1,600 steps. Not run yet; its R 64
  precursors are measured in docs/prnet.md ("Real photos")::

    python -m train.prnet --config train/configs/prnet.py:photo_cpu --workdir runs/photo_cpu

* ``scenes_cpu``: ResNet18, R 64, w 0.25, Adam 1e-3, 3,000 steps on 2,048 pairs of the
  face-scene world (``config.data.world="scenes"``: `data.synth.scene_render.prnet_pairs`, the
  world BioFaceNet and the face VAE train on, with its identity and expression space, parts,
  occluders, light rigs and camera chain; held-out pairs from seed 1). ~7 steps/s on the 2
  cores (5-8 min + 2 min of scenes); one run: held-out face scenes 2-D NME 12.5 % (posed mean
  face, flip-averaged; mean map 24.8 %), 29 real faces against dlib 12.0 % (docs/prnet.md).
  Longer training lowers the synthetic error and raises the real one. **The shipped PRNet is
  an ensemble of five such runs** (seeds 0-4; `prnet.predict` averages their maps):
  9.3 % on held-out scenes, 10.0 % (posed and raw map) on the real faces (three runs: 10.5 %,
  10.5 / 10.3 %). Four times the scenes for one run (``--config.data.num_train=8192``) did not
  help (real 13.6 %)::

    for S in 0 1 2 3 4; do python -m train.prnet --config train/configs/prnet.py:scenes_cpu \
        --config.seed=$S --workdir runs/prnet_scenes_$S; done
    python -m train.export --workdir runs/prnet_scenes_0 --workdir runs/prnet_scenes_1 \
        --workdir runs/prnet_scenes_2 --workdir runs/prnet_scenes_3 \
        --workdir runs/prnet_scenes_4 --out runs/prnet_ensemble

* ``paper``: ResFCN 256 with the paper's optimiser (lr 1e-4 halved every 5 epochs) on 300W-LP
  (``--config.data.dir``). With ``--config.data.bfm_path=.../BFM.mat`` (user-supplied Basel Face
  Model in face3d's layout, ``BFM_UV.mat`` beside it) it trains on dense position maps built
  from each image's 3DMM parameters (`data.prnet.bfm`); without it, with the landmark-only loss
  (+ synthetic batches). Neither was run here (no 300W-LP / BFM offline).
* ``real_landmarks``: 300W-LP IBUG (direct reader) landmark-only loss mixed half and half with
  synthetic pairs for z and dense shape.

``--config.init_workdir=DIR`` starts from the network variables of DIR (a run, an export, or the
official weights imported by ``python -m train.import_weights prnet_tf1 ...``; docs/weights.md),
with a fresh optimiser; the config must build the same network (ResFCN, width 1 for the
official weights)::

    python -m train.prnet --config train/configs/prnet.py:resfcn \
        --config.init_workdir=weights/prnet --workdir runs/prnet_finetune
"""

from __future__ import annotations

import ml_collections

ENCODERS = ("resfcn", "resnet18", "mobilenet_v2")
VARIANTS = ("smoke", "paper", "real_landmarks", "photo_cpu", "scenes_cpu") + ENCODERS + tuple(
    f"{e}_cpu" for e in ENCODERS)
GPU_EPOCHS = {"resfcn": 150, "resnet18": 500, "mobilenet_v2": 420}
GPU_LR = {"resfcn": 1e-4, "resnet18": 1e-4, "mobilenet_v2": 1e-5}


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = "resfcn"
  c.seed = 0
  c.num_epochs = 150
  c.num_train_steps = 0          # 0 = num_epochs * (num_train // batch_size)
  c.batch_size = 16
  c.learning_rate = 1e-4
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000
  c.figure_every_steps = 1000
  c.eval_every_steps = 1000
  c.eval_examples = 512
  c.max_to_keep = 3
  c.async_checkpointing = True
  c.init_workdir = ""             # warm start from this run / export / imported weights

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "resfcn"
  c.model.width_multiplier = 1.0
  c.model.bn_momentum = 0.999
  c.model.lr_decay = 0.99
  c.model.lr_decay_epochs = 5
  c.model.l2 = 2e-4
  c.model.landmark_weight = 1.0

  # Training augmentation (prnet-spec.md §5; bioface_jax.face3d.augment): image, position map
  # and landmarks transformed together. Only training batches; evaluation never augments.
  c.augment = ml_collections.ConfigDict()
  c.augment.enabled = True
  c.augment.rotation_deg = 45.0
  c.augment.translation = 0.1
  c.augment.scale = (0.9, 1.2)
  c.augment.color = (0.6, 1.4)
  c.augment.erase_prob = 0.5
  c.augment.erase_size = (0.1, 0.4)

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"    # or "300wlp"
  c.data.dir = ""                # 300W-LP root for source = "300wlp"
  c.data.subsets = ()            # 300W-LP subsets (e.g. ("IBUG",)); () = all
  c.data.real_fraction = 1.0     # share of real images per batch (rest synthetic)
  c.data.bfm_path = ""           # BFM.mat (face3d layout): dense 300W-LP truth; "" = landmarks only
  c.data.bfm_uv_path = ""        # BFM_UV.mat; "" = beside bfm_path
  c.data.cache_dir = ""          # "" = ~/.cache/bioface_jax
  c.data.world = "faces"         # synthetic pairs: "faces" (data.prnet.synth) or "scenes"
                                 # (the face-scene world, data.synth.scene_render.prnet_pairs)
  c.data.workers = 2             # processes laying out scenes (world "scenes") on first use
  c.data.context = False         # paint hair, neck, eyes, mouth (data.prnet.context; "faces")
  c.data.size = 256
  c.data.num_train = 3584
  c.data.num_eval = 512
  c.data.seed = 0
  c.data.eval_seed = 1
  return c


def _photo_recipe(c: ml_collections.ConfigDict, *, size: int, steps: int,
                  checkpoint_every: int, figure_every: int) -> None:
  """The CPU recipe for real photos shared by ``photo_cpu`` and ``scenes_cpu``: ResNet18,
  width 0.25, BN momentum 0.9, Adam 1e-3, 2,048 training / 256 held-out faces, evaluation on
  all 256 at every checkpoint."""
  c.model.encoder = "resnet18"
  c.learning_rate = 1e-3
  c.model.width_multiplier = 0.25
  c.model.bn_momentum = 0.9
  c.data.size = size
  c.data.num_train = 2048
  c.data.num_eval = 256
  c.num_train_steps = steps
  c.log_every_steps = 50
  c.checkpoint_every_steps = checkpoint_every
  c.eval_every_steps = checkpoint_every
  c.figure_every_steps = figure_every
  c.eval_examples = 256


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config of a variant (see the module docstring)."""
  variant = arg or "resfcn"
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
  c = _base()
  c.variant = variant
  encoder = variant.removesuffix("_cpu")
  if variant == "smoke":
    c.num_epochs = 0
    c.num_train_steps = 2
    c.batch_size = 8
    c.log_every_steps = 1
    c.checkpoint_every_steps = 1
    c.figure_every_steps = 2
    c.eval_every_steps = 2
    c.eval_examples = 8
    c.async_checkpointing = False
    c.model.width_multiplier = 0.125
    c.model.bn_momentum = 0.9
    c.data.size = 64
    c.data.num_train = 32
    c.data.num_eval = 8
  elif variant == "photo_cpu":
    # For real photos (issue 19; docs/prnet.md, "Real photos"): ResNet18 at R 128, w 0.25, the
    # synthetic faces with painted head context (data.prnet.context), 2,048 of them, Adam 1e-3,
    # 1,600 steps: planned to fit ~45 min on the 2 development cores; NOT RUN YET (the R 64
    # runs with and without context are in docs/prnet.md: neither beats the mean face on
    # near-frontal real faces).
    _photo_recipe(c, size=128, steps=1600, checkpoint_every=200, figure_every=800)
    c.data.context = True
  elif variant == "scenes_cpu":
    # The face-scene world shared by every system (issue 18: identity and expression space,
    # eyes, teeth, hair, occluders, light rigs, camera chain), PRNet's 1.5x landmark-box
    # framing; ResNet18 at R 64, w 0.25 as the shipped context model, 2,048 scenes, 3,000 steps.
    _photo_recipe(c, size=64, steps=3000, checkpoint_every=500, figure_every=1000)
    c.data.world = "scenes"
  elif variant in ENCODERS:
    c.model.encoder = encoder
    c.num_epochs = GPU_EPOCHS[encoder]
    c.learning_rate = GPU_LR[encoder]
  elif variant.endswith("_cpu"):
    c.model.encoder = encoder
    c.learning_rate = GPU_LR[encoder]
    c.model.width_multiplier = 0.25
    c.model.bn_momentum = 0.9
    c.data.size = 128
    c.data.num_train = 1024
    c.data.num_eval = 256
    c.num_epochs = 30
    c.log_every_steps = 20
    c.checkpoint_every_steps = 200
    c.figure_every_steps = 200
    c.eval_every_steps = 200
    c.eval_examples = 128
  elif variant == "paper":
    c.model.lr_decay = 0.5
    c.data.source = "300wlp"
    c.data.real_fraction = 0.5
    c.num_train_steps = 100000
  elif variant == "real_landmarks":
    c.data.source = "300wlp"
    c.data.subsets = ("IBUG",)
    c.data.real_fraction = 0.5
    c.num_train_steps = 150 * 3571 // 16
  if not c.num_train_steps:
    c.num_train_steps = c.num_epochs * (c.data.num_train // c.batch_size)
  return c
