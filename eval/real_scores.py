"""Per-crop scores of BioFaceNet and the face VAE for the real-photo judge (`eval.real_judge`).

The same numbers on real crops and on held-out synthetic ones, so the two can sit side by side
(issue 18, item 3).

BioFaceNet (crops framed as its training faces, `bioface_jax.photo.biofacenet_fit.prepare`):
* median central-region sRGB RMSE of the reconstruction
  (`bioface_jax.photo.biofacenet_fit.central_srgb_rmse`; goal <= 0.05), and what of it is the
  light's colour and what is brightness (`eval.photo_plausibility.reconstruction_error_parts`);
* pigment confinement: the share of the melanin (and haemoglobin) volume-fraction mass that
  lies outside the face region. Real photos have no face mask, so the face region is the
  ellipse that holds the synthetic faces' masks in this framing (centre (0.50, 0.49) of the
  crop, semi-axes 0.30 x 0.36 of its side: it holds 80 % of the mask pixels and is 88 % face,
  measured on 64 synthetic faces); synthetic faces also report it against their true mask;
* haemoglobin of lips and cheeks minus forehead, and the Pearson r of melanin and log shading
  over the skin (`eval.photo_plausibility`);
* light estimates: correlated colour temperature of the predicted illuminant SPD (McCamy's
  formula on its CIE xy) across photos: median and interquartile range (synthetic: also the
  truth's).

Face VAE (crops framed as its training scenes: the BioFaceNet crop is 0.72 of the VAE crop's
side, its centre at 0.45 of the VAE crop's height, as `data.vae_scenes` places faces; padded
with edge pixels where the crop leaves the photo):
* SSIM (TF definition, `bioface_jax.image_metrics.ssim`) of the raw decoder output against the
  input over the whole crop (goal >= 0.70), beside the mean-image baseline (the mean of
  ``--mean-images`` synthetic training scenes scored the same way);
* the same over the face ellipse only (SSIM maps weighted by the ellipse): a mask model
  (H9) is trained to reconstruct only under its mask (the background is composited from
  the input), so the whole crop mixes in a region it was never asked to draw;
* the authors' prediction (`face-vae-spec.md` section 3: the decoder composited with the
  predicted mask, so the background is the input's), beside the mean image composited with
  the same mask: the background is shared, the difference is what the decoder adds;
* mask coverage: mean predicted mask over skin-coloured pixels of the face ellipse (want 1),
  over a band above the face (hair or forehead, want 1) and over the four corner squares of
  0.15 side (background or clothing, want 0); synthetic scenes also report the IoU of the
  mask (> 0.5) with the true face + hair mask.
"""

from __future__ import annotations

import numpy as np

FACE_ELLIPSE = (0.50, 0.49, 0.30, 0.36)  # centre x, y, semi-axes x, y (crop sides)
VAE_FRAME = (0.72, 0.45)  # BioFaceNet crop side / VAE crop side, its centre row / VAE side


def ellipse(size: int, centre_x: float, centre_y: float, ax: float, ay: float) -> np.ndarray:
  """(size, size) bool: pixel centres inside the ellipse (in crop sides)."""
  g = (np.arange(size) + 0.5) / size
  return ((g[None, :] - centre_x) / ax) ** 2 + ((g[:, None] - centre_y) / ay) ** 2 <= 1


def illuminant_cct(spectra, weights: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Correlated colour temperature (K) of illuminant SPDs, McCamy (1992) on CIE 1931 xy."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  e = np.asarray(physics.illuminant(spectra, np.asarray(weights, np.float32),
                                    np.asarray(t, np.float32)), np.float64)
  xyz = e @ np.asarray(spectra.cmf, np.float64)
  x, y = xyz[:, 0] / xyz.sum(1), xyz[:, 1] / xyz.sum(1)
  n = (x - 0.3320) / (0.1858 - y)
  return 449 * n**3 + 3525 * n**2 + 6823.3 * n + 5520.33


def pigment_share_outside(fmel, fblood, region: np.ndarray) -> tuple[float, float]:
  """Share of the melanin and haemoglobin volume-fraction mass outside `region` (H, W)."""
  from bioface_jax import physics  # pylint: disable=g-import-not-at-top
  mel, hb = (np.asarray(v, np.float64) for v in physics.network_to_fractions(
      np.asarray(fmel, np.float32), np.asarray(fblood, np.float32)))
  out = ~np.asarray(region, bool)
  return tuple(float(m[out].sum() / max(m.sum(), 1e-12)) for m in (mel, hb))


def apply_batched(model, images: np.ndarray, **kwargs) -> dict[str, np.ndarray]:
  """`model.apply` over batches of 32 (keyword arguments passed on)."""
  out = {}
  for start in range(0, len(images), 32):
    for k, v in model.apply(np.asarray(images[start:start + 32], np.float32), **kwargs).items():
      out.setdefault(k, []).append(v)
  return {k: np.concatenate(v) for k, v in out.items()}


def biofacenet_rows(model, spectra, images: np.ndarray, masks=None, mirror: bool = False
                    ) -> tuple[list[dict], dict[str, np.ndarray]]:
  """(per-image numbers, network outputs) of BioFaceNet on prepared crops (N, S, S, 3);
  `masks`: the true face masks of synthetic faces; `mirror`: average each crop's decomposition
  with its mirror image's (`bioface_jax.models.biofacenet_mirror`)."""
  from bioface_jax.photo import biofacenet_fit as photo_fit  # pylint: disable=g-import-not-at-top
  from eval import photo_plausibility  # pylint: disable=g-import-not-at-top
  out = apply_batched(model, images, mirror=mirror)
  size = images.shape[1]
  region = ellipse(size, *FACE_ELLIPSE)
  cct = illuminant_cct(spectra, out["weights"], out["t"])
  rows = []
  for i, x in enumerate(images):
    one = {k: out[k][i:i + 1] for k in ("fmel", "fblood", "shading", "specular")}
    stats = photo_plausibility.face_statistics(x, one)
    mel_out, hb_out = pigment_share_outside(one["fmel"][0], one["fblood"][0], region)
    row = dict(rmse=photo_fit.central_srgb_rmse(x, out["linear_srgb"][i]), cct=float(cct[i]),
               daylight_cct=float(1000.0 * (out["t"][i] + 3.0)),
               melanin_outside=mel_out, haemoglobin_outside=hb_out,
               lips_minus_forehead=stats["haemoglobin_lips"] - stats["haemoglobin_forehead"],
               cheeks_minus_forehead=stats["haemoglobin_cheeks"]
               - stats["haemoglobin_forehead"], melanin_shading_r=stats["melanin_shading_r"],
               **photo_plausibility.reconstruction_error_parts(x, out["linear_srgb"][i]))
    if masks is not None:
      row["melanin_outside_mask"], row["haemoglobin_outside_mask"] = pigment_share_outside(
          one["fmel"][0], one["fblood"][0], masks[i])
    rows.append(row)
  return rows, out


def vae_box(box, width: int, height: int) -> tuple[int, int, int, int]:
  """The face-VAE crop (may extend past the photo) around a BioFaceNet-framed crop box."""
  if box is None:
    side = min(width, height)
    box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
  left, top, right, bottom = box
  side = (right - left) / VAE_FRAME[0]
  cx, cy = (left + right) / 2, (top + bottom) / 2
  vleft, vtop = int(round(cx - side / 2)), int(round(cy - VAE_FRAME[1] * side))
  return vleft, vtop, vleft + int(round(side)), vtop + int(round(side))


def crop_padded(image: np.ndarray, box, size: int) -> np.ndarray:
  """Square crop of a uint8 or [0, 1] float photo, edge-padded where the box leaves the photo,
  area-resized to `size` in floating point (`framing.resize_crop`): float32 in [0, 1]."""
  from bioface_jax.photo import framing  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(image, np.float32)
  if image.dtype == np.uint8:
    pixels = pixels / np.float32(255.0)
  left, top, right, bottom = (int(v) for v in box)
  h, w = pixels.shape[:2]
  pad = max(0, -left, -top, right - w, bottom - h)
  padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
  return framing.resize_crop(padded, (left + pad, top + pad, right + pad, bottom + pad), size)


def vae_regions(size: int) -> dict[str, np.ndarray]:
  """Face ellipse, hair band and corner squares in the VAE framing, (S, S) bool each."""
  s, (cx, cy, ax, ay) = VAE_FRAME[0], FACE_ELLIPSE
  bio_top = VAE_FRAME[1] - s / 2
  fx, fy, fa, fb = 0.5 + (cx - 0.5) * s, bio_top + cy * s, ax * s, ay * s
  g = (np.arange(size) + 0.5) / size
  rows, cols = g[:, None], g[None, :]
  face = ellipse(size, fx, fy, fa, fb)
  hair = (rows >= fy - fb - 0.10) & (rows < fy - fb + 0.03) & (np.abs(cols - fx) < 0.15)
  corner = ((cols < 0.15) | (cols > 0.85)) & ((rows < 0.15) | (rows > 0.85))
  return dict(face=face, hair=hair & ~face, corners=corner)


def vae_rows(model, images: np.ndarray, mean_image: np.ndarray, masks=None, mirror: bool = False,
             refine_steps: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
  """(per-image numbers, network outputs) of the face VAE on VAE-framed crops; `masks`: the
  true face + hair masks of synthetic scenes; `mirror`: average each crop's reconstruction and
  mask with its mirror image's (`bioface_jax.models.face_vae_mirror`); `refine_steps`: decode
  from latents fitted to the crops (`bioface_jax.models.face_vae_refine`)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from bioface_jax import image_metrics  # pylint: disable=g-import-not-at-top
  from eval import photo_plausibility  # pylint: disable=g-import-not-at-top
  refine = {"refine_steps": refine_steps} if refine_steps else {}
  out = apply_batched(model, images, mirror=mirror, **refine)
  x = jnp.asarray(images)
  mean = jnp.broadcast_to(jnp.asarray(mean_image), x.shape)
  regions = vae_regions(images.shape[1])
  face_weights = jnp.broadcast_to(jnp.asarray(regions["face"], jnp.float32), x.shape[:3])
  scores = dict(ssim=image_metrics.ssim(x, jnp.asarray(out["image"])),
                ssim_mean_image=image_metrics.ssim(x, mean),
                ssim_face=image_metrics.ssim(x, jnp.asarray(out["image"]), mask=face_weights),
                ssim_face_mean_image=image_metrics.ssim(x, mean, mask=face_weights))
  if "mask" in out:  # The authors' prediction: the decoder composited with its own mask.
    m = jnp.asarray(out["mask"])[..., None]
    scores.update(ssim_composite=image_metrics.ssim(x, jnp.asarray(out["composite"])),
                  ssim_composite_mean_image=image_metrics.ssim(x, mean * m + x * (1 - m)))
  scores = {k: np.asarray(v) for k, v in scores.items()}
  rows = []
  for i, img in enumerate(images):
    row = {k: float(v[i]) for k, v in scores.items()}
    if "mask" in out:
      m = out["mask"][i]
      skin = photo_plausibility.skin_mask(img) | ~regions["face"]  # the rule, not the box
      face = regions["face"] & (skin if (regions["face"] & skin).sum() >= 10 else True)
      row.update(face_coverage=float(m[face].mean()), hair_coverage=float(m[regions["hair"]]
                                                                           .mean()),
                 corner_leak=float(m[regions["corners"]].mean()))
      if masks is not None:
        pred, true = m > 0.5, masks[i] > 0.5
        row["mask_iou"] = float((pred & true).sum() / max((pred | true).sum(), 1))
    rows.append(row)
  return rows, out


__all__ = ["FACE_ELLIPSE", "VAE_FRAME", "apply_batched", "biofacenet_rows", "crop_padded",
           "ellipse", "illuminant_cct", "pigment_share_outside", "vae_box", "vae_regions",
           "vae_rows"]
