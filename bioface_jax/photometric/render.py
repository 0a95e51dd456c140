"""Image formation under directional lights: Lambertian (+ Blinn-Phong / Cook-Torrance lobes).

Orthographic camera, view v = (0, 0, 1); normals (..., H, W, 3) in the camera frame (x right,
y up, z toward the camera; zero vector = background, renders 0); lights (..., N, 3) unit with
z > 0; intensities None, (..., N) or (..., N, 3); albedo None (1), grey (..., H, W) or RGB
(..., H, W, 3). Outputs are always (..., N, H, W, 3) linear radiance, never clipped
(sdps-spec.md §4):

  I = E · V · [ ρ max(0, n·l) + 1[n·l > 0] · ( k_bp max(0, n·h)^s
                                              + k_ct · π·D·F·G / (4 max(n_v, 1e-3)) ) ]

`cast_shadows` computes V from a depth map by marching toward each light.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bioface_jax.photometric import _checks


def _prepare(normals, lights, intensities, albedo):
  """Checks the shapes and values; returns arrays broadcastable to (..., N, H, W[, 3])."""
  _checks.check_last_dim("normals", normals, 3, min_ndim=3)
  _checks.check_lights("lights", lights)
  _checks.check_finite("normals", normals)
  normals = jnp.asarray(normals)
  if not jnp.issubdtype(normals.dtype, jnp.floating):
    normals = normals.astype(jnp.float32)
  dtype = normals.dtype
  lights = jnp.asarray(lights, dtype)
  n = lights.shape[-2]
  hw = normals.shape[-3:-1]
  if intensities is None:
    e = jnp.ones(lights.shape[:-1] + (1,), dtype)
  else:
    _checks.check_finite("intensities", intensities)
    e = jnp.asarray(intensities, dtype)
    if e.ndim >= 2 and e.shape[-2:] == (n, 3) and e.shape[:-2] == lights.shape[:-2]:
      pass
    elif e.ndim >= 1 and e.shape[-1] == n:
      e = e[..., None]
    else:
      raise ValueError(f"intensities must have shape (..., {n}) or (..., {n}, 3) to match "
                       f"lights {tuple(lights.shape)}, got {tuple(e.shape)}")
  if albedo is None:
    rho = jnp.ones((1, 1, 3), dtype)
  else:
    _checks.check_finite("albedo", albedo)
    rho = jnp.asarray(albedo, dtype)
    if rho.shape[-2:] == hw:  # grey: the same albedo in the three channels
      rho = jnp.broadcast_to(rho[..., None], rho.shape + (3,))
    elif not (rho.ndim >= 3 and rho.shape[-3:] == hw + (3,)):
      raise ValueError(f"albedo must have shape (..., {hw[0]}, {hw[1]}) or "
                       f"(..., {hw[0]}, {hw[1]}, 3), got {tuple(rho.shape)}")
  return normals, lights, e[..., :, None, None, :], rho[..., None, :, :, :]


def _dot(normals, vectors):
  """(..., H, W, 3) · (..., N, 3) -> (..., N, H, W)."""
  return jnp.sum(normals[..., None, :, :, :] * vectors[..., :, None, None, :], -1)


def render_lambertian(normals, lights, intensities=None, albedo=None):
  """albedo · intensity · max(0, n·l): (..., N, H, W, 3). See the module docstring for shapes."""
  normals, lights, e, rho = _prepare(normals, lights, intensities, albedo)
  shading = jnp.maximum(_dot(normals, lights), 0.0)
  return e * rho * shading[..., None]


def _specular_map(k, name, hw):
  k = jnp.asarray(k)
  if k.ndim < 2 or k.shape[-2:] != hw:
    raise ValueError(f"{name} must be a (..., {hw[0]}, {hw[1]}) map, got {tuple(k.shape)}")
  return k[..., None, :, :]  # broadcast over N


def _param(x):
  """A scalar or a (..., H, W) map of a lobe parameter, broadcast over N."""
  x = jnp.asarray(x)
  return x[..., None, :, :] if x.ndim >= 2 else x


def render(normals, lights, intensities=None, albedo=None, *, blinn_phong=None,
           cook_torrance=None, visibility=None):
  """Lambertian plus optional specular lobes and cast-shadow visibility: (..., N, H, W, 3).

  Args:
    normals, lights, intensities, albedo: as `render_lambertian`.
    blinn_phong: None or (k_bp (..., H, W), s): k·max(0, n·h)^s, s scalar or map.
    cook_torrance: None or (k_ct (..., H, W), r, F0): GGX with α = r², Schlick Fresnel and
      Smith-Schlick G with k = α/2; π·D·F·G/(4 max(n_v, 1e-3)) (SDPS's diffuse scale, no 1/π).
    visibility: None or (..., N, H, W) cast-shadow visibility V.
  """
  normals, lights, e, rho = _prepare(normals, lights, intensities, albedo)
  hw = normals.shape[-3:-1]
  dtype = normals.dtype
  ndl = _dot(normals, lights)
  lit = ndl > 0
  diffuse = rho * jnp.maximum(ndl, 0.0)[..., None]
  view = jnp.asarray([0.0, 0.0, 1.0], dtype)
  half = lights + view
  half = half / jnp.linalg.norm(half, axis=-1, keepdims=True)
  ndh = jnp.maximum(_dot(normals, half), 0.0)
  spec = jnp.zeros((), dtype)
  if blinn_phong is not None:
    k_bp, s = blinn_phong
    spec = spec + _specular_map(k_bp, "blinn_phong k", hw) * ndh ** _param(s)
  if cook_torrance is not None:
    k_ct, r, f0 = cook_torrance
    alpha = _param(r) ** 2
    a2 = alpha * alpha
    d = a2 / (np.pi * (ndh * ndh * (a2 - 1.0) + 1.0) ** 2)
    vdh = half[..., 2][..., :, None, None]
    f = _param(f0) + (1.0 - _param(f0)) * (1.0 - vdh) ** 5
    kk = alpha / 2.0
    nv = normals[..., 2][..., None, :, :]

    def g1(x):
      x = jnp.maximum(x, 0.0)
      return x / (x * (1.0 - kk) + kk)

    g = g1(ndl) * g1(nv)
    spec = spec + _specular_map(k_ct, "cook_torrance k", hw) * (
        np.pi * d * f * g / (4.0 * jnp.maximum(nv, 1e-3)))
  out = diffuse + jnp.where(lit, spec, 0.0)[..., None]
  if visibility is not None:
    v = jnp.asarray(visibility, dtype)
    if v.shape[-3:] != (lights.shape[-2],) + hw:
      raise ValueError(f"visibility must be (..., {lights.shape[-2]}, {hw[0]}, {hw[1]}), "
                       f"got {tuple(v.shape)}")
    out = out * v[..., None]
  return e * out


def cast_shadows(depth, mask, lights, num_steps: int, step: float = 1.0, bias: float = 0.5):
  """Cast-shadow visibility V ∈ {0, 1}, (..., N, H, W), by marching toward each light.

  Depth is in pixels, larger = closer (`data.synth.geometry.rasterise`). For a light with
  ‖(l_x, l_y)‖ > 1e-6, pixel p is shadowed if, for some t = step·k (k = 1..num_steps), the
  nearest pixel to p + t·d, d = (l_x, −l_y)/‖(l_x, l_y)‖ in (column, row), is inside the mask
  and its depth exceeds z(p) + t·l_z/‖(l_x, l_y)‖ + bias. Pixels outside the mask get V = 1.
  """
  depth = jnp.asarray(depth)
  if depth.ndim < 2:
    raise ValueError(f"depth must be (..., H, W), got {tuple(depth.shape)}")
  if np.shape(mask) != depth.shape:
    raise ValueError(f"mask {tuple(np.shape(mask))} must match depth {tuple(depth.shape)}")
  _checks.check_lights("lights", lights)
  h, w = depth.shape[-2:]
  lights = jnp.asarray(lights, depth.dtype)
  inside = jnp.asarray(mask) > 0.5
  lxy = jnp.sqrt(lights[..., 0] ** 2 + lights[..., 1] ** 2)  # (..., N)
  safe = jnp.maximum(lxy, 1e-6)
  dc = (lights[..., 0] / safe)[..., None, None]  # (..., N, 1, 1)
  dr = (-lights[..., 1] / safe)[..., None, None]
  rise = (lights[..., 2] / safe)[..., None, None]
  rows = jnp.arange(h, dtype=depth.dtype)[:, None]
  cols = jnp.arange(w, dtype=depth.dtype)[None, :]
  occluder = jnp.where(inside, depth, -jnp.inf).reshape(depth.shape[:-2] + (h * w,))
  occluder = occluder[..., None, :]  # (..., 1, H·W), broadcast over N
  z0 = depth[..., None, :, :]

  def body(k, shadow):
    t = step * k.astype(depth.dtype)
    r = jnp.round(rows + t * dr)
    c = jnp.round(cols + t * dc)
    valid = (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)
    idx = (jnp.clip(r, 0, h - 1) * w + jnp.clip(c, 0, w - 1)).astype(jnp.int32)
    flat = idx.reshape(idx.shape[:-2] + (h * w,))
    occ = jnp.broadcast_to(occluder, flat.shape[:-1] + (h * w,))
    zq = jnp.take_along_axis(occ, flat, axis=-1).reshape(idx.shape)
    return shadow | (valid & (zq > z0 + t * rise + bias))

  shape = jnp.broadcast_shapes(depth.shape[:-2] + (1, h, w), lights.shape[:-1] + (h, w))
  shadow = jax.lax.fori_loop(1, num_steps + 1, body, jnp.zeros(shape, bool))
  shadow = shadow & (lxy > 1e-6)[..., None, None] & inside[..., None, :, :]
  return jnp.where(shadow, 0.0, 1.0).astype(depth.dtype)
