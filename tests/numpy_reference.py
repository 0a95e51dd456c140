"""An independent float64 NumPy transcription of the BioFaceNet equations (spec sections 1-5).

Written from the specification, not from the JAX code: different algorithms where there is
a choice (SVD instead of an eigendecomposition for the PCA, the literal e^{Kd} form of
Kubelka-Munk, explicit per-pixel index arithmetic for the bilinear lookup, lstsq instead of
normal equations for RAW->XYZ). Tests compare the JAX renderer against it.
"""

from __future__ import annotations

import numpy as np

from bioface_jax import assets

LAM = np.arange(400.0, 721.0, 10.0)
M_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415],
                   [0.0557, -0.2040, 1.0570]])


def table(name, key):
  with np.load(assets.asset_path(f"spectra/{name}.npz")) as data:
    return np.array(data[key], dtype=np.float64)


def reflectance(f_mel: float, f_bl: float) -> np.ndarray:
  """Skin reflectance (33,) for volume fractions, literal Kubelka-Munk form."""
  eu, ph = table("eumelanin_ext", "eumelanin_ext"), table("pheomelanin_ext", "pheomelanin_ext")
  hbo2 = table("oxy_hemo_ext_coeff", "oxy_hemo_ext_coeff")
  hb = table("deoxy_hemo_ext_coeff", "deoxy_hemo_ext_coeff")
  out = np.zeros(33)
  for k, lam in enumerate(LAM):
    mu_mel = 0.02 * (0.61 * 80.0 * eu[k] + 0.39 * 12.0 * ph[k])
    mu_ox = 0.75 * 2.303 * hbo2[k] * 150.0 / 66500.0
    mu_de = 0.25 * 2.303 * hb[k] * 150.0 / 66500.0
    mu_base = 0.0244 + 8.53 * np.exp(-(lam - 154.0) / 66.2)
    mu_s = 2e5 * lam**-1.5 + 2e12 * lam**-4
    c_e = 0.25 * f_bl
    a_epi = f_mel * mu_mel + c_e * (0.75 * mu_ox + 0.25 * mu_de) + (1 - f_mel - c_e) * mu_base
    a_der = f_bl * (mu_ox + mu_de) + (1 - f_bl) * mu_base
    kk = np.sqrt(a_der * (a_der + 2 * mu_s))
    beta = np.sqrt(a_der / (a_der + 2 * mu_s))
    d = 0.3
    r_der = ((1 - beta**2) * (np.exp(kk * d) - np.exp(-kk * d))
             / ((1 + beta)**2 * np.exp(kk * d) - (1 - beta)**2 * np.exp(-kk * d)))
    out[k] = np.exp(-a_epi)**2 * r_der
  return out


def camera_basis():
  """(mu (99,), P (99, 2), eigenvalues (2,)) via SVD of the centred data."""
  cams = table("rgbCMF", "rgbCMF")  # (3, 33, 28)
  y = np.concatenate([cams[c] / cams[c].sum(axis=0, keepdims=True) for c in range(3)], axis=0).T
  mu = y.mean(axis=0)
  _, sv, vt = np.linalg.svd(y - mu, full_matrices=False)
  eig = sv[:2]**2 / (y.shape[0] - 1)
  vecs = vt[:2].T.copy()
  for j in range(2):
    if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
      vecs[:, j] *= -1
  return mu, vecs * np.sqrt(eig), eig


def sensitivity(b):
  mu, pcs, _ = camera_basis()
  return np.maximum(0.0, pcs @ np.asarray(b) + mu).reshape(3, 33)


def t_matrix(b):
  """Closed-form RAW->XYZ via lstsq, rows rescaled to the authors' D65 targets."""
  s = sensitivity(b)
  cmf = table("XYZspace", "xyz_cmf")
  m = np.linalg.lstsq(s.T, cmf, rcond=None)[0]
  t = m.T
  targets = table("Tmatrix", "row_sum_targets")
  return t * (targets / t.sum(axis=1))[:, None]


def illuminant(weights, t):
  a = table("illumA", "illumA")
  d = table("illumDmeasured", "illumD")
  f = table("illF", "illF").T
  a, d, f = a / a.sum(), d / d.sum(1, keepdims=True), f / f.sum(1, keepdims=True)
  i0 = int(min(max(np.floor(t), 1), 21))
  alpha = t - i0
  e_d = (1 - alpha) * d[i0 - 1] + alpha * d[i0]
  e = weights[0] * a + weights[1] * e_d + sum(weights[2 + j] * f[j] for j in range(12))
  return e / e.sum()


def bilinear(lut, row_coord, col_coord):
  n_r, n_c = lut.shape[:2]
  r = (row_coord + 1) / 2 * (n_r - 1)
  c = (col_coord + 1) / 2 * (n_c - 1)
  r0, c0 = min(int(np.floor(r)), n_r - 2), min(int(np.floor(c)), n_c - 2)
  dr, dc = r - r0, c - c0
  return ((1 - dr) * (1 - dc) * lut[r0, c0] + (1 - dr) * dc * lut[r0, c0 + 1]
          + dr * (1 - dc) * lut[r0 + 1, c0] + dr * dc * lut[r0 + 1, c0 + 1])


def lut(size):
  u = np.linspace(0.01, 1.0, size)
  mel, hb = 0.43 * u**3, 0.07 * u**3
  return np.stack([np.stack([reflectance(mel[c], hb[r]) for c in range(size)])
                   for r in range(size)])


def render(table_lut, fmel, fblood, shading, specular, weights, t, b):
  """Renders one image (H, W) the slow way; returns dict of (H, W, 3) arrays."""
  e = illuminant(weights, t)
  s = sensitivity(b)
  lc = s @ e
  tm = t_matrix(b)
  h, w = fmel.shape
  out = {k: np.zeros((h, w, 3)) for k in ("raw", "diffuse_albedo", "white_balanced",
                                           "linear_srgb", "specular")}
  for i in range(h):
    for j in range(w):
      refl = bilinear(table_lut, fblood[i, j], fmel[i, j])
      albedo = s @ (refl * e)
      spec = specular[i, j] * lc
      raw = shading[i, j] * albedo + spec
      wb = raw / lc
      out["raw"][i, j] = raw
      out["diffuse_albedo"][i, j] = albedo
      out["specular"][i, j] = spec
      out["white_balanced"][i, j] = wb
      out["linear_srgb"][i, j] = np.maximum(0, M_SRGB @ (tm @ wb))
  return out


SH_C = (0.429043, 0.511664, 0.743125, 0.886227, 0.247708)  # Ramamoorthi-Hanrahan c1..c5


def sh_irradiance(n, l):
  """Irradiance E(n; L) of spec 9.3 (coefficients first: l[k] may be an array), float64."""
  c1, c2, c3, c4, c5 = SH_C
  x, y, z = n[..., 0], n[..., 1], n[..., 2]
  return (c1 * l[8] * (x * x - y * y) + c3 * l[6] * z * z + c4 * l[0] - c5 * l[6]
          + 2 * c1 * (l[4] * x * y + l[7] * x * z + l[5] * y * z)
          + 2 * c2 * (l[3] * x + l[1] * y + l[2] * z))
