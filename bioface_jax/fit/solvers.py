"""Solvers of the per-pixel skin fit: Levenberg-Marquardt with variable projection, Adam, L-BFGS.

All solvers minimise the same objective over a (H, W) map of pixels, all pixels at once:

    E = sum_p valid_p * mean_lambda (l_p - e (i_d,p R(f_mel,p, f_blood,p) + i_s,p))^2
        + smoothness * sum_{neighbouring valid p, q} |theta_p - theta_q|^2,

theta = (f_mel, f_blood) in [-1, 1] (network coordinates), i_d, i_s >= 0, 4-neighbourhood.

* `gauss_newton`: variable projection. For fixed theta the shadings have a closed form
  (`projection.project`), so Levenberg-Marquardt runs on theta only, with the Jacobian of the
  projected residual from `jax.jacfwd`, batched 2x2 solves, an active set for pigments at
  the bounds and clipping to [-1, 1]. On a lookup table, when the full step does not descend
  it also tries, inside the current table cell, the clipped full step and the two
  one-pigment steps, so that optima on the table's node lines (kinks of the bilinear model)
  are reached exactly. With smoothness the 2x2 systems are solved with the neighbours held
  at the previous iterate (block Jacobi); a fixed point is a stationary point of E because
  each pixel's local objective has the same gradient as E. It stops when every pixel's step
  is below ``xtol``, its cost no longer decreases beyond round-off or its damping has blown
  up, at most ``iterations`` times.
* `adam` / `lbfgs`: first-order, on all four parameters, constraints kept by construction:
  f = tanh(u), i = softplus(v). L-BFGS runs independently per pixel (vmapped: each pixel
  has its own curvature memory and line search) unless smoothness couples the pixels, when
  it runs on the whole map.

Everything is traceable; the caller jits (see `multispectral`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from bioface_jax.fit import projection

Reflect = Callable[[jax.Array, jax.Array], jax.Array]

MU_INIT = 1e-3      # initial Levenberg-Marquardt damping (relative to diag(J^T J))
MU_MIN = 1e-12
MU_MAX = 1e12       # a pixel whose damping reaches this has no descent left: done
INIT_MARGIN = 1e-3  # first-order solvers start |f| <= 1 - INIT_MARGIN (tanh is flat at +-1)
SHADING_FLOOR = 1e-4


# ------------------------------------------------------------------------------------------
# Smoothness on the pixel grid.


def _shifts(x: jax.Array) -> list[jax.Array]:
  """The four 4-neighbour shifts of a (H, W, ...) map, zero-padded at the border."""
  pad = [(0, 0)] * (x.ndim - 2)
  return [jnp.pad(x[1:], [(0, 1), (0, 0)] + pad), jnp.pad(x[:-1], [(1, 0), (0, 0)] + pad),
          jnp.pad(x[:, 1:], [(0, 0), (0, 1)] + pad), jnp.pad(x[:, :-1], [(0, 0), (1, 0)] + pad)]


def neighbour_sums(theta: jax.Array, valid: jax.Array):
  """Per pixel: number of valid neighbours, sum of their theta and of their |theta|^2.

  Args:
    theta: (H, W, k); valid: (H, W) bool.

  Returns:
    count (H, W), total (H, W, k), sum_sq (H, W); zero at invalid pixels.
  """
  v = valid.astype(theta.dtype)
  vt = theta * v[..., None]
  count = sum(_shifts(v)) * v
  total = sum(_shifts(vt)) * v[..., None]
  sum_sq = sum(_shifts(jnp.sum(vt * theta, -1))) * v
  return count, total, sum_sq


def smoothness_energy(theta: jax.Array, valid: jax.Array) -> jax.Array:
  """sum over neighbouring valid pixel pairs (each pair once) of |theta_p - theta_q|^2."""
  v = valid.astype(theta.dtype)
  dy = jnp.sum((theta[1:] - theta[:-1])**2, -1) * v[1:] * v[:-1]
  dx = jnp.sum((theta[:, 1:] - theta[:, :-1])**2, -1) * v[:, 1:] * v[:, :-1]
  return jnp.sum(dy) + jnp.sum(dx)


# ------------------------------------------------------------------------------------------
# Levenberg-Marquardt with variable projection.


def _safe_divide(a, b):
  ok = b > 0
  return jnp.where(ok, a / jnp.where(ok, b, 1.0), 0.0)


def _cell_box(theta: jax.Array, size: int):
  """Bounds of the table cell that the corner-aligned sampler uses at theta."""
  position = (jnp.clip(theta, -1.0, 1.0) + 1.0) / 2.0 * (size - 1)
  lower = jnp.clip(jnp.floor(position), 0, size - 2)
  return 2.0 * lower / (size - 1) - 1.0, 2.0 * (lower + 1.0) / (size - 1) - 1.0


def _solve_2x2(m00, m01, m11, r0, r1):
  det = m00 * m11 - m01 * m01
  ok = det > 0
  det = jnp.where(ok, det, 1.0)
  d0 = jnp.where(ok, (m11 * r0 - m01 * r1) / det, 0.0)
  d1 = jnp.where(ok, (m00 * r1 - m01 * r0) / det, 0.0)
  return jnp.stack([d0, d1], -1)


def gauss_newton(reflect: Reflect, radiance: jax.Array, illuminant: jax.Array,
                 valid: jax.Array, theta0: jax.Array, *, with_specular: bool = True,
                 iterations: int = 50, smoothness: float = 0.0, xtol: float = 1e-12,
                 ftol: float = 1e-15, cell_size: int | None = None) -> dict:
  """Levenberg-Marquardt on (f_mel, f_blood) with closed-form shadings (variable projection).

  Args:
    reflect: (fmel, fblood) -> (..., n) reflectance.
    radiance: (H, W, n) spectra (zero at invalid pixels).
    illuminant: (n,) or (H, W, n).
    valid: (H, W) bool, pixels to fit.
    theta0: (H, W, 2) initial (f_mel, f_blood).
    with_specular: fit i_s (else i_s = 0).
    iterations: maximum number of iterations.
    smoothness: weight of the smoothness term of E.
    xtol: a pixel is converged when its proposed step is below this (max norm)...
    ftol: ... or an accepted step lowered its cost by less than this fraction (round-off
      level: ill-conditioned pixels of a noisy cube crawl on with 1e-9 steps otherwise).
    cell_size: nodes per axis of the lookup table behind ``reflect`` (for the in-cell
      candidate steps); None for a smooth model (full steps only).

  Returns:
    dict with ``theta`` (H, W, 2), ``diffuse``, ``specular`` (H, W), ``iterations`` (scalar
    int) and ``converged`` (H, W) bool.
  """
  h, w, n = radiance.shape
  lflat = radiance.reshape(-1, n)
  eflat = jnp.broadcast_to(illuminant, radiance.shape).reshape(-1, n)
  vflat = valid.reshape(-1)

  def residual(theta, l, e):
    r = projection.project(reflect(theta[0], theta[1]), l, e, with_specular)[2]
    return r, r

  residual_and_jacobian = jax.vmap(jax.jacfwd(residual, has_aux=True))
  residual_only = jax.vmap(lambda theta, l, e: residual(theta, l, e)[0])

  def local_cost(theta, r, sums):
    cost = jnp.mean(r * r, -1)
    if smoothness:
      count, total, sum_sq = sums
      cost += smoothness * (count * jnp.sum(theta * theta, -1)
                            - 2 * jnp.sum(theta * total, -1) + sum_sq)
    return cost

  def body(state):
    theta, mu, it, finished = state
    jac, r = residual_and_jacobian(theta, lflat, eflat)     # (P, n, 2), (P, n)
    grad = jnp.einsum("pnk,pn->pk", jac, r) / n
    hess = jnp.einsum("pnk,pnj->pkj", jac, jac) / n
    sums = None
    if smoothness:
      count, total, sum_sq = neighbour_sums(theta.reshape(h, w, 2), valid)
      sums = count.reshape(-1), total.reshape(-1, 2), sum_sq.reshape(-1)
      grad += smoothness * (sums[0][:, None] * theta - sums[1])
      hess += smoothness * sums[0][:, None, None] * jnp.eye(2, dtype=theta.dtype)
    cost = local_cost(theta, r, sums)
    diag = jnp.diagonal(hess, axis1=-2, axis2=-1)
    damp = mu[:, None] * (diag + 1e-9 * jnp.sum(diag, -1, keepdims=True))
    blocked = ((theta <= -1) & (grad > 0)) | ((theta >= 1) & (grad < 0))
    m00 = jnp.where(blocked[:, 0], 1.0, hess[:, 0, 0] + damp[:, 0])
    m11 = jnp.where(blocked[:, 1], 1.0, hess[:, 1, 1] + damp[:, 1])
    m01 = jnp.where(blocked[:, 0] | blocked[:, 1], 0.0, hess[:, 0, 1])
    rhs = jnp.where(blocked, 0.0, -grad)
    full = _solve_2x2(m00, m01, m11, rhs[:, 0], rhs[:, 1])
    trials = [jnp.clip(theta + full, -1.0, 1.0)]
    if cell_size is not None:
      # Within the current table cell: the full step and the two one-pigment steps. Optima on
      # a node line (a kink of the bilinear model) are reached by landing on the line and
      # then moving along it.
      single = jnp.stack([_safe_divide(rhs[:, 0], m00), _safe_divide(rhs[:, 1], m11)], -1)
      lo, hi = _cell_box(theta, cell_size)
      trials += [jnp.clip(theta + full, lo, hi),
                 jnp.clip(theta + single * jnp.array([1.0, 0.0], theta.dtype), lo, hi),
                 jnp.clip(theta + single * jnp.array([0.0, 1.0], theta.dtype), lo, hi)]
    trials = jnp.stack(trials)                                                     # (k, P, 2)
    k = trials.shape[0]
    trial_r = residual_only(trials.reshape(-1, 2), jnp.tile(lflat, (k, 1)),
                            jnp.tile(eflat, (k, 1)))
    trial_costs = jax.vmap(local_cost, in_axes=(0, 0, None))(
        trials, trial_r.reshape(k, -1, n), sums)                                   # (k, P)
    # The full step whenever it descends (bold steps escape the spurious kink minima of the
    # flat low-pigment corner), else the best in-cell candidate.
    pick = (jnp.where(trial_costs[0] < cost, 0, 1 + jnp.argmin(trial_costs[1:], 0))
            if k > 1 else jnp.zeros(cost.shape, jnp.int32))
    trial = jnp.take_along_axis(trials, pick[None, :, None], 0)[0]
    new_cost = jnp.take_along_axis(trial_costs, pick[None], 0)[0]
    accept = (new_cost < cost) & vflat
    step = jnp.max(jnp.abs(jnp.where(accept[:, None], trial, trials[0]) - theta), -1)
    if not smoothness:
      # Independent pixels stop for good once converged; otherwise a pixel alternating
      # between a round-off step and a rejected one would never let the loop end.
      accept &= ~finished
    theta = jnp.where(accept[:, None], trial, theta)
    mu = jnp.where(accept, jnp.maximum(mu * 0.3, MU_MIN), jnp.maximum(mu, MU_INIT) * 10.0)
    done = ~vflat | (step <= xtol) | (mu >= MU_MAX) | (accept & (cost - new_cost <= ftol * cost))
    return theta, mu, it + 1, done | finished if not smoothness else done

  def cond(state):
    return (state[2] < iterations) & ~jnp.all(state[3])

  dtype = radiance.dtype
  state = (theta0.reshape(-1, 2).astype(dtype), jnp.full((h * w,), MU_INIT, dtype),
           jnp.zeros((), jnp.int32), jnp.zeros((h * w,), bool))
  theta, _, it, done = jax.lax.while_loop(cond, body, state)
  i_d, i_s, _ = projection.project(reflect(theta[:, 0], theta[:, 1]), lflat, eflat,
                                   with_specular)
  return dict(theta=theta.reshape(h, w, 2), diffuse=i_d.reshape(h, w),
              specular=i_s.reshape(h, w), iterations=it, converged=done.reshape(h, w))


# ------------------------------------------------------------------------------------------
# First-order solvers on (u_mel, u_blood, v_d, v_s): f = tanh(u), i = softplus(v).


def _inverse_softplus(x):
  return x + jnp.log(-jnp.expm1(-x))


def to_unconstrained(theta0: jax.Array, i_d0: jax.Array, i_s0: jax.Array) -> jax.Array:
  """(..., 4) unconstrained parameters for the first-order solvers."""
  u = jnp.arctanh(jnp.clip(theta0, -1 + INIT_MARGIN, 1 - INIT_MARGIN))
  v = _inverse_softplus(jnp.maximum(jnp.stack([i_d0, i_s0], -1), SHADING_FLOOR))
  return jnp.concatenate([u, v], -1)


def from_unconstrained(params: jax.Array, with_specular: bool = True):
  """(theta (..., 2), i_d (...), i_s (...)) from unconstrained parameters."""
  theta = jnp.tanh(params[..., :2])
  i_d = jax.nn.softplus(params[..., 2])
  i_s = jax.nn.softplus(params[..., 3]) if with_specular else jnp.zeros_like(i_d)
  return theta, i_d, i_s


def _objective(reflect, radiance, illuminant, valid, with_specular, smoothness):
  """E as a function of unconstrained parameters of any (..., 4) shape matching radiance."""
  def energy(params):
    theta, i_d, i_s = from_unconstrained(params, with_specular)
    model = illuminant * (i_d[..., None] * reflect(theta[..., 0], theta[..., 1])
                          + i_s[..., None])
    value = jnp.sum(jnp.where(valid, jnp.mean((radiance - model)**2, -1), 0.0))
    if smoothness:
      value += smoothness * smoothness_energy(theta, valid)
    return value
  return energy


def adam(reflect: Reflect, radiance: jax.Array, illuminant: jax.Array, valid: jax.Array,
         params0: jax.Array, *, with_specular: bool = True, iterations: int = 2000,
         smoothness: float = 0.0, learning_rate: float = 0.05) -> jax.Array:
  """Adam with a cosine-decayed step size on the whole map.

  Adam's per-parameter normalisation makes every pixel take steps of about the learning
  rate in (u, v) whatever its brightness, so one global sum works for all pixels.

  Returns:
    (H, W, 4) final unconstrained parameters.
  """
  energy = _objective(reflect, radiance, illuminant, valid, with_specular, smoothness)
  schedule = optax.cosine_decay_schedule(learning_rate, iterations, alpha=1e-4)
  opt = optax.adam(schedule)

  def step(_, carry):
    params, state = carry
    grad = jax.grad(energy)(params)
    updates, state = opt.update(grad, state, params)
    return optax.apply_updates(params, updates), state

  params, _ = jax.lax.fori_loop(0, iterations, step, (params0, opt.init(params0)))
  return params


def _run_lbfgs(energy, params0, iterations):
  """``iterations`` L-BFGS steps; returns the best parameters seen.

  At the round-off floor of a zero-residual fit the zoom line search can fail and L-BFGS then
  takes a wild step (seen here: 1e-16 -> 0.5 error in a pigment); keeping the best iterate
  makes the result monotone in ``iterations``.
  """
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(energy)

  def step(_, carry):
    params, state, best, best_value = carry
    value, grad = value_and_grad(params, state=state)
    better = value < best_value
    best = jnp.where(better, params, best)
    best_value = jnp.where(better, value, best_value)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=energy)
    return optax.apply_updates(params, updates), state, best, best_value

  init = (params0, opt.init(params0), params0, jnp.asarray(jnp.inf, params0.dtype))
  params, _, best, best_value = jax.lax.fori_loop(0, iterations, step, init)
  return jnp.where(energy(params) < best_value, params, best)


def lbfgs(reflect: Reflect, radiance: jax.Array, illuminant: jax.Array, valid: jax.Array,
          params0: jax.Array, *, with_specular: bool = True, iterations: int = 200,
          smoothness: float = 0.0) -> jax.Array:
  """``optax.lbfgs`` (zoom line search), per pixel when smoothness is 0, else on the map.

  Returns:
    (H, W, 4) final unconstrained parameters.
  """
  if smoothness:
    energy = _objective(reflect, radiance, illuminant, valid, with_specular, smoothness)
    return _run_lbfgs(energy, params0, iterations)

  def one_pixel(p0, l, e, v):
    energy = _objective(reflect, l, e, v, with_specular, 0.0)
    return _run_lbfgs(energy, p0, iterations)

  h, w, n = radiance.shape
  params = jax.vmap(one_pixel)(params0.reshape(-1, 4), radiance.reshape(-1, n),
                               jnp.broadcast_to(illuminant, radiance.shape).reshape(-1, n),
                               valid.reshape(-1))
  return params.reshape(h, w, 4)
