"""The four systems as pure-functional Flax linen modules, each with its loss.

* `unet` - the authors' U-Net: one encoder, four independent decoders, a fully connected head.
* `biofacenet` - preprocessing, output scaling, rendering through `bioface_jax.physics`, the
  loss, and the optimiser; its module docstring documents the trainer-facing API.
* `face_vae` - the face VAE with a mask decoder (Toledo & Antonelo, ENIAC 2021).
* `sdps` - SDPS-Net's LCNet, NENet and FusedNet, with lighter-convolution options.
* `prnet` - PRNet's ResFCN256 and the ResNet18 / MobileNetV2 encoders, weighted UV loss.
"""

from bioface_jax.models.biofacenet import BioFaceNet
from bioface_jax.models.biofacenet import BioFaceNetConfig
from bioface_jax.models.biofacenet import compute_loss
from bioface_jax.models.biofacenet import init
from bioface_jax.models.biofacenet import optimizer
from bioface_jax.models.biofacenet import predict
from bioface_jax.models.unet import BioFaceUNet
from bioface_jax.models import face_vae  # noqa: E402  (face VAE: models.face_vae.init, ...)
from bioface_jax.models import prnet  # noqa: E402  PRNet (models.prnet.init, ...)
from bioface_jax.models import sdps  # noqa: E402  (SDPS-Net: LCNet, NENet, FusedNet)

__all__ = ["BioFaceNet", "BioFaceNetConfig", "BioFaceUNet", "compute_loss", "init",
           "optimizer", "predict"]
