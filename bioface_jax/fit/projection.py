"""Closed-form shading for fixed pigments, and the coarse grid search that starts every solver.

For fixed (f_mel, f_blood) the model l = e (i_d R + i_s) is linear in the shadings: with
columns a = e R and b = e, the best (i_d, i_s) >= 0 is a two-variable non-negative least
squares problem. Its solution has a closed form: solve the 2x2 normal equations; if a
coefficient comes out negative, the constrained optimum lies on an edge of the feasible
quadrant, i.e. it is the better of the two one-variable non-negative solutions. This is the
"variable projection" that lets the Gauss-Newton solver work on the two pigments only, and it
evaluates the exact best cost of every candidate pigment pair in the grid search.

Every function here is pure jnp, differentiable (``jnp.where`` with safe denominators, so the
unselected branch never produces inf/NaN gradients) and works on any leading batch shape.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

# Relative threshold below which the 2x2 Gram matrix counts as singular (a and b collinear,
# i.e. a flat reflectance): the edge solutions are used instead of the interior one.
SINGULAR_RTOL = 1e-10


def _safe(x: jax.Array, ok: jax.Array) -> jax.Array:
  return jnp.where(ok, x, jnp.ones_like(x))


def nnls_two(aa, ab, bb, al, bl):
  """Non-negative least squares in two variables from the normal-equation entries.

  Minimises ||l - x_d a - x_s b||^2 over x_d, x_s >= 0 given aa = a.a, ab = a.b, bb = b.b,
  al = a.l and bl = b.l (all broadcastable arrays).

  Returns:
    (x_d, x_s, reduction) where reduction = ||l||^2 - min cost >= 0.
  """
  det = aa * bb - ab * ab
  regular = det > SINGULAR_RTOL * aa * bb
  det = _safe(det, regular)
  xd_free = (bb * al - ab * bl) / det
  xs_free = (aa * bl - ab * al) / det
  interior = regular & (xd_free >= 0) & (xs_free >= 0)
  al_pos, bl_pos = jnp.maximum(al, 0), jnp.maximum(bl, 0)
  xd_only = al_pos / _safe(aa, aa > 0)
  xs_only = bl_pos / _safe(bb, bb > 0)
  red_d, red_s = xd_only * al_pos, xs_only * bl_pos
  use_d = red_d >= red_s
  zero = jnp.zeros_like(xd_only)
  x_d = jnp.where(interior, xd_free, jnp.where(use_d, xd_only, zero))
  x_s = jnp.where(interior, xs_free, jnp.where(use_d, zero, xs_only))
  reduction = jnp.where(interior, xd_free * al + xs_free * bl, jnp.maximum(red_d, red_s))
  return x_d, x_s, reduction


def nnls_one(aa, al):
  """Non-negative least squares in one variable: (x, reduction) with x = max(a.l, 0) / a.a."""
  al_pos = jnp.maximum(al, 0)
  x = al_pos / _safe(aa, aa > 0)
  return x, x * al_pos


def project(reflectance: jax.Array, radiance: jax.Array, illuminant: jax.Array,
            with_specular: bool = True) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Optimal shadings and residual for given reflectances.

  Args:
    reflectance: (..., n) skin reflectance R at the current pigments.
    radiance: (..., n) measured l.
    illuminant: (n,) or (..., n) illuminant e.
    with_specular: fit l = e (i_d R + i_s) if True, else l = i_d e R (i_s = 0).

  Returns:
    (i_d, i_s, residual): (...), (...), (..., n) with residual = l - e (i_d R + i_s).
  """
  a = illuminant * reflectance
  al = jnp.sum(a * radiance, axis=-1)
  aa = jnp.sum(a * a, axis=-1)
  if with_specular:
    b = jnp.broadcast_to(illuminant, radiance.shape)
    x_d, x_s, _ = nnls_two(aa, jnp.sum(a * b, -1), jnp.sum(b * b, -1), al,
                           jnp.sum(b * radiance, -1))
  else:
    x_d, _ = nnls_one(aa, al)
    x_s = jnp.zeros_like(x_d)
  residual = radiance - illuminant * (x_d[..., None] * reflectance + x_s[..., None])
  return x_d, x_s, residual


def candidate_grid(size: int, points: int, dtype) -> jax.Array:
  """(points,) network coordinates of evenly spread table nodes, -1 and +1 included.

  The coordinates are exact node positions of a ``size``-node corner-aligned table, so the
  candidates' reflectances are table entries, not interpolations.
  """
  nodes = jnp.round(jnp.linspace(0.0, size - 1.0, points))
  return (2.0 * nodes / (size - 1.0) - 1.0).astype(dtype)


def grid_search(reflect: Callable[[jax.Array, jax.Array], jax.Array], radiance: jax.Array,
                illuminant: jax.Array, coords: jax.Array, with_specular: bool = True,
                chunk: int = 2048) -> tuple[jax.Array, jax.Array]:
  """Best (f_mel, f_blood) per pixel among all pairs of ``coords``, with closed-form shading.

  The normal-equation entries of all candidates are matrix products: with R (K^2, n) the
  candidates' reflectances, a.l = (e l) R^T, a.a = e^2 (R^2)^T, a.b = e^2 R^T.

  Args:
    reflect: (fmel, fblood) -> (..., n) reflectance.
    radiance: (P, n) measured spectra.
    illuminant: (n,) shared or (P, n) per-pixel illuminant.
    coords: (K,) candidate coordinates, used for both pigments (K^2 pairs).
    with_specular: as in `project`.
    chunk: pixels per vectorised block (memory ~ chunk * K^2 * 8 values).

  Returns:
    (fmel, fblood), each (P,), of the candidate pair with the smallest cost.
  """
  fmel, fblood = jnp.meshgrid(coords, coords, indexing="xy")
  fmel, fblood = fmel.ravel(), fblood.ravel()
  refl = reflect(fmel, fblood)                        # (K^2, n)
  n_pixels, n = radiance.shape
  e = jnp.broadcast_to(illuminant, (n_pixels, n))

  def best(block):                                    # (C, n) x 2 -> (C,) candidate index
    l, e = block
    al = (l * e) @ refl.T                             # (C, K^2)
    aa = (e * e) @ (refl * refl).T
    if with_specular:
      ab = (e * e) @ refl.T
      bb = jnp.sum(e * e, -1, keepdims=True)
      bl = jnp.sum(e * l, -1, keepdims=True)
      _, _, reduction = nnls_two(aa, ab, bb, al, bl)
    else:
      _, reduction = nnls_one(aa, al)
    return jnp.argmax(reduction, axis=-1)

  chunk = max(1, min(chunk, n_pixels))
  padded = -(-n_pixels // chunk) * chunk

  def blocks(x):
    return jnp.pad(x, ((0, padded - n_pixels), (0, 0))).reshape(padded // chunk, chunk, n)

  index = jax.lax.map(best, (blocks(radiance), blocks(e))).reshape(-1)[:n_pixels]
  return fmel[index], fblood[index]
