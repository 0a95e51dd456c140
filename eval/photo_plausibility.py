"""Are BioFaceNet's maps of a real photo plausible? Landmark-free numbers for `eval.photo_rmse`.

A real photo has no ground-truth pigments, but physiology says what a plausible decomposition
looks like: lips and cheeks carry more haemoglobin than the forehead, faces with darker skin
carry more melanin, and melanin should not follow the shading (shadows are not pigment). All
regions come from the training framing of `bioface_jax.photo.detect` (the detector's box spans
columns 0.19-0.81 and rows 0.12-0.74 of the crop; the synthetic faces are framed the same), so
they need no landmarks but assume a roughly frontal, upright face centred by the detector:

* ``forehead``: rows 0.15-0.25, columns 0.38-0.62 of the crop;
* ``cheeks``: rows 0.44-0.54, columns 0.27-0.39 and 0.61-0.73;
* ``lips``: rows 0.57-0.65, columns 0.42-0.58;
  each region counts only its skin pixels (below; that drops teeth and clothing), or all its
  pixels when fewer than 3 are skin;
* ``skin``: pixels inside the detector's box whose colour passes the YCbCr skin rule of Chai
  and Ngan (1999): 77 <= Cb <= 127 and 133 <= Cr <= 173 (8-bit, ITU-R BT.601).

The skin tone of the photo is the individual typology angle ITA = atan2(L* - 50, b*) in
degrees of the mean CIELAB colour of the skin pixels (higher = lighter; > 55 very light, < -30
dark), computed from the input photo alone (sRGB, D65).
"""

from __future__ import annotations

import numpy as np

REGIONS = {  # (row from, row to, [(column from, column to), ...]) as fractions of the crop
    "forehead": (0.15, 0.25, [(0.38, 0.62)]),
    "cheeks": (0.44, 0.54, [(0.27, 0.39), (0.61, 0.73)]),
    "lips": (0.57, 0.65, [(0.42, 0.58)]),
}
SATURATED = 0.95  # |pigment| above this (network coordinates, range -1..1): at the table's end
FACE_BOX = (0.12, 0.74, 0.19, 0.81)  # rows, columns of the detector's box in the crop

# sRGB (D65) linear RGB -> XYZ, IEC 61966-2-1, and the D65 white point (Y = 1).
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE = _RGB_TO_XYZ.sum(axis=1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """CIELAB (D65) of gamma-encoded sRGB values in [0, 1], float64, shape (..., 3)."""
  c = np.asarray(rgb, np.float64)
  linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055)**2.4)
  t = (linear @ _RGB_TO_XYZ.T) / _WHITE
  f = np.where(t > (6 / 29)**3, np.cbrt(t), t / (3 * (6 / 29)**2) + 4 / 29)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                   200 * (f[..., 1] - f[..., 2])], -1)


def ita_degrees(rgb: np.ndarray) -> float:
  """Individual typology angle of the mean CIELAB colour of the given sRGB pixels (N, 3)."""
  lab = srgb_to_lab(np.asarray(rgb, np.float64).reshape(-1, 3)).mean(axis=0)
  return float(np.degrees(np.arctan2(lab[0] - 50.0, lab[2])))


def skin_mask(image: np.ndarray) -> np.ndarray:
  """(H, W) bool: inside the detector's box and skin-coloured by the YCbCr rule."""
  x = np.asarray(image, np.float64) * 255.0
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
  cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
  rule = (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)
  return rule & _box(x.shape[:2], FACE_BOX[:2], [FACE_BOX[2:]])


def _box(shape, rows, cols) -> np.ndarray:
  h, w = shape
  out = np.zeros((h, w), bool)
  for c0, c1 in cols:
    out[int(round(rows[0] * h)):int(round(rows[1] * h)),
        int(round(c0 * w)):int(round(c1 * w))] = True
  return out


def region_mask(shape: tuple[int, int], name: str) -> np.ndarray:
  """(H, W) bool mask of a named region of `REGIONS`."""
  if name not in REGIONS:
    raise ValueError(f"unknown region {name!r}; known: {sorted(REGIONS)}")
  rows0, rows1, cols = REGIONS[name]
  return _box(shape, (rows0, rows1), cols)


def face_statistics(image: np.ndarray, outputs) -> dict[str, float]:
  """Plausibility numbers of one decomposed photo.

  Args:
    image: (H, W, 3) the prepared input (gamma-encoded sRGB in [0, 1]).
    outputs: `bioface_jax.photo.biofacenet_fit.decompose` outputs (``fmel``, ``fblood``,
      ``shading``: (1, H, W)).

  Returns:
    dict: skin_fraction (of the crop), ita (degrees; nan without skin pixels), melanin_skin
    (mean fmel over the skin, network coordinates), haemoglobin_<region> (mean fblood per
    region), melanin_shading_r (Pearson r of fmel and log diffuse shading over the skin),
    saturated (fraction of skin pixels with melanin or haemoglobin beyond +-`SATURATED`: run
    to the end of the pigment table), specular_share (specular / (diffuse + specular)
    shading summed over the skin).
  """
  image = np.asarray(image, np.float64)
  fmel = np.asarray(outputs["fmel"], np.float64)[0]
  fblood = np.asarray(outputs["fblood"], np.float64)[0]
  shading = np.asarray(outputs["shading"], np.float64)[0]
  specular = np.asarray(outputs["specular"], np.float64)[0]
  if not image.shape[:2] == fmel.shape == fblood.shape == shading.shape == specular.shape:
    raise ValueError(f"image {image.shape} and maps {fmel.shape} differ in size")
  skin = skin_mask(image)
  stats = dict(skin_fraction=float(skin.mean()), ita=float("nan"),
               melanin_skin=float("nan"), melanin_shading_r=float("nan"),
               saturated=float("nan"), specular_share=float("nan"))
  if skin.sum() >= 3:
    extreme = (np.abs(fmel[skin]) > SATURATED) | (np.abs(fblood[skin]) > SATURATED)
    stats.update(ita=ita_degrees(image[skin]), melanin_skin=float(fmel[skin].mean()),
                 saturated=float(extreme.mean()),
                 specular_share=float(specular[skin].sum() / max(
                     (specular[skin] + shading[skin]).sum(), 1e-12)))
    log_shading = np.log(np.maximum(shading[skin], 1e-6))
    if fmel[skin].std() > 0 and log_shading.std() > 0:
      stats["melanin_shading_r"] = float(np.corrcoef(fmel[skin], log_shading)[0, 1])
  for name in REGIONS:  # skin pixels of the region (no teeth, no shirt), else all of it
    region = region_mask(fmel.shape, name)
    region = region & skin if (region & skin).sum() >= 3 else region
    stats[f"haemoglobin_{name}"] = float(fblood[region].mean())
  return stats


def summarise(stats: list[dict[str, float]]) -> dict[str, float]:
  """Over a set of faces: Spearman rho (and p) of ITA vs mean skin melanin (expected < 0:
  lighter skin, less melanin), the fraction of faces with lips / cheeks above the forehead in
  haemoglobin and the medians of those differences, the medians of the melanin-shading r, of
  the saturated fraction and of the specular share."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  ita = np.array([s["ita"] for s in stats])
  mel = np.array([s["melanin_skin"] for s in stats])
  ok = np.isfinite(ita) & np.isfinite(mel)
  defined = ok.sum() >= 3 and np.ptp(ita[ok]) > 0 and np.ptp(mel[ok]) > 0  # else no ranks
  rho, p = scipy_stats.spearmanr(ita[ok], mel[ok]) if defined else (np.nan, np.nan)
  lips = np.array([s["haemoglobin_lips"] - s["haemoglobin_forehead"] for s in stats])
  cheeks = np.array([s["haemoglobin_cheeks"] - s["haemoglobin_forehead"] for s in stats])
  shading_r = np.array([s["melanin_shading_r"] for s in stats])

  def nanmedian(key):
    values = np.array([s.get(key, np.nan) for s in stats], np.float64)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
  return dict(faces=len(stats), faces_with_skin=int(ok.sum()), spearman_ita_melanin=float(rho),
              spearman_p=float(p), lips_above_forehead=float(np.mean(lips > 0)),
              cheeks_above_forehead=float(np.mean(cheeks > 0)),
              median_lips_minus_forehead=float(np.median(lips)),
              median_cheeks_minus_forehead=float(np.median(cheeks)),
              median_melanin_shading_r=float(np.nanmedian(shading_r)) if np.isfinite(
                  shading_r).any() else float("nan"),
              median_saturated=nanmedian("saturated"),
              median_specular_share=nanmedian("specular_share"))


def reconstruction_error_parts(image_srgb: np.ndarray, reconstruction_linear: np.ndarray
                               ) -> dict[str, float]:
  """How much of the central sRGB RMSE is the light's colour, and how much is brightness.

  Two counterfactual reconstructions, each scored like `central_srgb_rmse` (same region):

  * ``rmse_rgb_gain``: the reconstruction times the per-channel gain that best fits the photo
    in linear light over the central region (least squares): what a perfect global light
    colour and camera white balance would leave;
  * ``rmse_chromaticity``: every central pixel rescaled so that its linear R + G + B equals the
    photo's: only the reconstruction's chromaticity is left to be wrong, so the difference to
    the plain RMSE is the error of its brightness (shading and specular maps).

  Args:
    image_srgb: (H, W, 3) gamma-encoded input in [0, 1] (the network's input, linearised as
      x^2.2 like `central_srgb_rmse` encodes).
    reconstruction_linear: (H, W, 3) linear sRGB reconstruction.
  """
  # pylint: disable-next=g-import-not-at-top
  from bioface_jax.photo.biofacenet_fit import central_region, central_srgb_rmse
  x = np.asarray(image_srgb, np.float64)
  y = np.asarray(reconstruction_linear, np.float64)
  central_srgb_rmse(x, y)  # validates shapes and values
  c = central_region(*x.shape[:2])
  xl, yc = x[c]**2.2, y[c]
  gain = (yc * xl).sum((0, 1)) / np.maximum((yc * yc).sum((0, 1)), 1e-300)
  rescaled = y.copy()
  rescaled[c] = yc * (xl.sum(-1, keepdims=True) / np.maximum(yc.sum(-1, keepdims=True), 1e-300))
  return dict(rmse_rgb_gain=central_srgb_rmse(x, y * gain),
              rmse_chromaticity=central_srgb_rmse(x, rescaled))
