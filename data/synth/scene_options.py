"""Options of the face-scene world (`data.synth.scene`) and the framing of each system."""

from __future__ import annotations

import dataclasses

import numpy as np

from data.prnet import synth as prnet_synth
from data.synth import faces, geometry

FRAMINGS = ("face", "portrait", "prnet")


@dataclasses.dataclass(frozen=True)
class SceneOptions:
  """What a scene holds and how it is framed (realism factors can be switched off one by one).

  Attributes:
    framing: face | portrait | prnet (module docstring).
    size: output side in pixels.
    supersample: render at size x supersample and average down (None: 2 up to 128 px, else 1).
    max_yaw: pose range in degrees (None: 90 for prnet, else 45); max_pitch, max_roll too.
    identity_scale: standard deviation of the identity modes (0 = the mean face's proportions).
    expressions: draw expressions (else neutral).
    parts: eyes, mouth interior and teeth, brow and lash hair (else the whole mesh is skin).
    context: hair, skull, neck, body and a textured background (else a floating face on the
      old smooth background).
    occluders: beards, glasses, hands and objects, other people.
    light: "sh" (SH environment, one illuminant: the previous generator's light) or "rig"
      (`data.synth.lighting`: lights with shadows, AO, coloured groups).
    camera: "srgb" (exact sRGB, 8 bits: the previous generator's) or "chain"
      (`data.synth.camera_chain`: exposure / white-balance error, tone, noise, blur, JPEG).
    background: "textures" (`data.vae_scenes` textures) or "photo" (`data.synth.backgrounds`).
    melanin_range, haemoglobin_range: ranges of the face's base pigment coordinates. The skin
      model turns melanin above ~15 % (coordinate ~0.45) into a nearly blue-free orange once
      exposed, and base blood above ~0.5 % (coordinate ~-0.2) into saturated reds; skin in
      real portraits (`data.portraits`) is less saturated (HSV saturation of the cheeks: a
      median 0.41, 10-90 % 0.15-0.60). `data.synth.faces` draws -0.6..0.7 and -0.3..0.2.
    exposure_albedo_power: how much the exposure follows the skin's brightness: the face's
      mean luminance target is ``face_luminance x (albedo / 0.1)^power`` with albedo the
      mean linear luminance of the skin's albedo (0 = every skin exposed to the same mean,
      as `data.synth.faces` does, which makes dark skin bright and saturated).
    face: the skin, light and camera options shared with `data.synth.faces` (luminance target,
      here of a skin of albedo luminance 0.1, brighter than the faces world's 0.05-0.25 since
      real portraits are: cheeks' HSV value a median 0.71 against 0.54; specular ranges,
      illuminant priors, noise, JPEG).
  """
  framing: str = "face"
  size: int = 64
  supersample: int | None = None
  max_yaw: float | None = None
  max_pitch: float = 20.0
  max_roll: float = 15.0
  identity_scale: float = 1.0
  expressions: bool = True
  parts: bool = True
  context: bool = True
  occluders: bool = True
  light: str = "sh"
  camera: str = "srgb"
  background: str = "textures"
  melanin_range: tuple[float, float] = (-0.8, 0.4)
  haemoglobin_range: tuple[float, float] = (-0.5, 0.1)
  exposure_albedo_power: float = 0.5
  face: faces.FaceOptions = faces.FaceOptions(face_luminance=(0.08, 0.4))

  def __post_init__(self):
    if self.framing not in FRAMINGS:
      raise ValueError(f"SceneOptions.framing must be one of {FRAMINGS}, got {self.framing!r}")
    if not (isinstance(self.size, (int, np.integer)) and self.size >= 16):
      raise ValueError(f"SceneOptions.size must be an int >= 16, got {self.size!r}")
    if self.supersample is not None and not 1 <= int(self.supersample) <= 4:
      raise ValueError(f"SceneOptions.supersample must be in 1..4, got {self.supersample}")
    for name, kinds in (("light", ("sh", "rig")), ("camera", ("srgb", "chain")),
                        ("background", ("textures", "photo"))):
      if getattr(self, name) not in kinds:
        raise ValueError(f"SceneOptions.{name} must be one of {kinds}, got "
                         f"{getattr(self, name)!r}")
    for name in ("melanin_range", "haemoglobin_range"):
      lo, hi = getattr(self, name)
      if not -1.0 <= lo <= hi <= 1.0:
        raise ValueError(f"SceneOptions.{name} must satisfy -1 <= low <= high <= 1, got "
                         f"{getattr(self, name)}")
    if not self.identity_scale >= 0:
      raise ValueError(f"SceneOptions.identity_scale must be >= 0, got {self.identity_scale}")

  @property
  def factor(self) -> int:
    return int(self.supersample or (2 if self.size <= 128 else 1))

  @property
  def render_size(self) -> int:
    return self.size * self.factor

  @property
  def yaw_range(self) -> float:
    return float(self.max_yaw if self.max_yaw is not None
                 else (90.0 if self.framing == "prnet" else 45.0))


def framing_pose(rng, options: SceneOptions, vertices, template, angles) -> geometry.Pose:
  """The pose (scale, shift) of the framing at the render size.

  The face crop matches how the photo commands crop real portraits
  (`bioface_jax.photo.detect.training_frame`): on the 12 faces of `data.portraits` where the
  Haar eye cascade finds both eyes, their distance is a median 0.21 (0.20-0.25) of the crop
  side and their row 0.41 of it; the mean face's eye centres are 0.36 face heights apart and
  0.17 above the face's centre, so scale U(0.5, 0.72) gives 0.18-0.26 and rows ~0.40. (The
  skin-only faces of `data.synth.faces` use 0.6-0.85: eyes 0.22-0.31 apart.)

  The portrait matches the face VAE's crop of a photo (`bioface_jax.photo.framing`: the
  BioFaceNet square grown by 1 / 0.72, its top 0.09 higher), where those eyes are 0.21 x 0.72
  = 0.15 of the frame apart on row 0.09 + 0.72 x 0.41 = 0.38: scale U(0.38, 0.52) gives
  0.14-0.19, and the face's centre 0.42-0.5 down puts the eyes near row 0.38.
  """
  yaw, pitch, roll = (float(a) for a in angles)
  size = options.render_size
  if options.framing == "prnet":
    return prnet_synth.framing_pose(vertices, template, yaw, pitch, roll, size, rng)
  if options.framing == "portrait":
    scale, tx, ty = rng.uniform(0.38, 0.52), rng.uniform(-0.06, 0.06), rng.uniform(-0.08, 0.0)
  else:  # Eye-centre distance 0.36 x scale = 0.18-0.26 of the crop, as on real portraits.
    scale, (tx, ty) = rng.uniform(0.5, 0.72), rng.uniform(-0.04, 0.04, 2)
  return geometry.Pose(yaw, pitch, roll, float(scale), float(tx), float(ty))
