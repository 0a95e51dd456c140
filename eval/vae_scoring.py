"""Per-image scores of a trained face VAE on a test set, in the two protocols of the spec.

* (A) "as deployed", the paper's comparison: mask models composite the decoder output with the
  *predicted* mask, no-mask models with the *ground-truth* mask (the paper's figures show the
  original background in the no-mask columns; face-vae-spec.md section 3); whole-image metrics.
* (B) "face pixels": the decoder output ``image_pre`` scored with ``mask=`` the label mask
  (SSIM, MS-SSIM, l1, l2 only).

Metrics: SSIM (TF defaults, f = 11), MS-SSIM with f = 9 and the largest K <= 5 scales whose
coarsest side is >= 9 px, the first K power factors renormalised to sum to 1 (TF's 5 scales need
>= 161 px; the choice is returned in `ms_ssim_scales`), l1, l2 = RMSE, and VIF-P (`sewar.vifp`
on BT.601 luma x 255, sigma_n^2 = 2) when sewar is installed. LPIPS is not offered: every
maintained LPIPS package downloads its backbone weights, and this machine is offline.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax import image_metrics
from bioface_jax.models import face_vae

MS_FILTER = 9


def ms_ssim_scales(size: int, filter_size: int = MS_FILTER) -> int:
  """Largest K <= 5 with the coarsest MS-SSIM scale >= filter_size."""
  k, side = 1, size
  while k < 5 and (side + 1) // 2 >= filter_size:
    side = (side + 1) // 2
    k += 1
  return k


def ms_power_factors(size: int) -> tuple[float, ...]:
  k = ms_ssim_scales(size)
  p = np.asarray(image_metrics.MS_SSIM_POWER_FACTORS[:k])
  return tuple(float(v) for v in p / p.sum())


def vif(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
  """VIF-P per image of (N, H, W, 3) images in [0, 1] (None without sewar)."""
  try:
    from sewar.full_ref import vifp  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  w = np.array([0.299, 0.587, 0.114])
  lx, ly = (np.asarray(x, np.float64) @ w) * 255, (np.asarray(y, np.float64) @ w) * 255
  return np.array([vifp(a, b, sigma_nsq=2) for a, b in zip(lx, ly)])


@functools.partial(jax.jit, static_argnames=("power",))
def metrics_for(x, pre, a_mask, gt_mask, power):
  """Protocol A (``pre`` composited over x with `a_mask`, whole image) and B (``pre`` on the
  `gt_mask` face pixels) scores of a batch, per image."""
  deployed = face_vae.composite(pre, x, a_mask)
  res = {}
  for tag, img, m in (("A", deployed, None), ("B", pre, gt_mask)):
    res[f"{tag}/ssim"] = image_metrics.ssim(x, img, mask=m)
    res[f"{tag}/ms_ssim"] = image_metrics.ms_ssim(x, img, mask=m, filter_size=MS_FILTER,
                                                  power_factors=power)
    res[f"{tag}/l1"] = image_metrics.l1(x, img, mask=m)
    res[f"{tag}/l2"] = image_metrics.l2(x, img, mask=m)
  return res, deployed


_predict = jax.jit(face_vae.predict, static_argnames=("config",))


def score(params, batch_stats, config: face_vae.FaceVAEConfig, test_set, batch_size: int = 32,
          constant_pre: np.ndarray | None = None
          ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """({"A/ssim": (N,), ..., "A/vif": (N,) if sewar}, deployed reconstructions (N, s, s, 3)).

  With `constant_pre` (an (s, s, 3) image), scores that image as every decoder output instead
  of the model (a trivial baseline, composited with the ground-truth mask in protocol A).
  """
  power = ms_power_factors(config.input_size)
  n = len(test_set)
  parts, recons = [], []
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(n, start + batch_size))
    batch = test_set.get(idx)
    x, gt = jnp.asarray(batch["image"]), jnp.asarray(batch["mask"])
    if constant_pre is None:
      out = _predict(params, batch_stats, x, config)
      pre, a_mask = out["image_pre"], out.get("mask", gt)
    else:
      pre, a_mask = jnp.broadcast_to(jnp.asarray(constant_pre, x.dtype), x.shape), gt
    res, deployed = metrics_for(x, pre, a_mask, gt, power)
    res = jax.tree.map(np.asarray, res)
    v = vif(batch["image"], np.asarray(deployed))
    if v is not None:
      res["A/vif"] = v
    parts.append(res)
    recons.append(np.asarray(deployed))
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  return out, np.concatenate(recons)


def paired(a: np.ndarray, b: np.ndarray, higher_is_better: bool) -> tuple[str, float, float]:
  """Paired comparison of per-image scores: ("a", "b" or "tie", mean diff, its SE).

  A difference within 2 standard errors of the paired mean is a tie.
  """
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
  if abs(mean) <= 2 * se:
    return "tie", mean, se
  better_a = (mean > 0) == higher_is_better
  return ("a" if better_a else "b"), mean, se
