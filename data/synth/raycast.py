"""Orthographic ray casting of quadrics for the parts of a scene that are not the face mesh.

A *frame* is the affine map from a part's own model coordinates to the screen, screen =
A v + t (`geometry.screen_transform`): x = column, y = row, z = depth toward the camera, all
in pixels. Each pixel's camera ray is the line of screen points (col + 0.5, row + 0.5, z), i.e.
v(z) = o + z d in model coordinates. Intersections are closed-form (quadratics), so depth and
normals are exact, and everything is vectorised over the image.

Returned normals are unit vectors in the camera frame (x right, y up, z toward the camera):
n_cam = R n_model with A = k diag(1, -1, 1) R.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Frame:
  """screen = a @ v + t for model points v; `rotation` maps model normals to camera normals."""
  a: np.ndarray
  t: np.ndarray

  @property
  def scale(self) -> float:
    return float(np.cbrt(abs(np.linalg.det(self.a))))

  @property
  def rotation(self) -> np.ndarray:
    return np.diag([1.0, -1.0, 1.0]) @ self.a / self.scale

  def to_screen(self, v: np.ndarray) -> np.ndarray:
    return np.asarray(v, np.float64) @ self.a.T + self.t

  def moved(self, origin_model: np.ndarray, rotation: np.ndarray) -> Frame:
    """A frame of the same scale whose origin sits at `origin_model` of this frame and whose
    axes are rotated by `rotation` (camera frame) instead of this frame's rotation."""
    a = self.scale * np.diag([1.0, -1.0, 1.0]) @ rotation
    return Frame(a, self.to_screen(origin_model))


@dataclasses.dataclass(frozen=True)
class Rays:
  """Per-pixel rays of an (h, w) image in a frame's model coordinates: v(z) = o + z d."""
  origin: np.ndarray     # (h, w, 3)
  direction: np.ndarray  # (3,)


def rays(frame: Frame, size: int | tuple[int, int]) -> Rays:
  h, w = (size, size) if np.isscalar(size) else size
  inv = np.linalg.inv(frame.a)
  x = np.arange(w) + 0.5 - frame.t[0]
  y = np.arange(h) + 0.5 - frame.t[1]
  # origin = inv @ (x, y, -t_z): separable in x and y.
  origin = (y[:, None, None] * inv[:, 1] + x[None, :, None] * inv[:, 0]
            - frame.t[2] * inv[:, 2])
  return Rays(origin, inv[:, 2].copy())


@dataclasses.dataclass
class Hit:
  """A surface seen through every pixel: depth (h, w) (-inf where missed), model-frame point
  (h, w, 3), camera-frame unit normal (h, w, 3), and `margin` (h, w): how far inside the
  silhouette the ray passes (0 on it, 1 through the centre), for soft edges."""
  depth: np.ndarray
  point: np.ndarray
  normal: np.ndarray
  margin: np.ndarray

  @property
  def mask(self) -> np.ndarray:
    return np.isfinite(self.depth)

  def where(self, keep: np.ndarray) -> Hit:
    """The same hit with pixels outside `keep` missed."""
    return Hit(np.where(keep, self.depth, -np.inf), self.point, self.normal, self.margin)


def _at(value: np.ndarray, ok: np.ndarray) -> np.ndarray:
  """A per-pixel parameter at the hit pixels (constants pass through)."""
  value = np.asarray(value)
  return value[ok] if value.ndim >= ok.ndim and value.shape[:ok.ndim] == ok.shape else value


def _finish(z, ok, r: Rays, frame: Frame, grad_fn, margin, normals: bool = True):
  """Points and camera normals on the hit pixels only (zeros elsewhere)."""
  n = np.zeros(ok.shape + (3,), np.float32)
  if not normals:
    p = r.origin + np.where(ok, z, 0.0)[..., None] * r.direction
    return Hit(np.where(ok, z, -np.inf), p, n, np.where(ok, margin, 0.0))
  p = np.zeros(ok.shape + (3,))
  if ok.any():
    p_ok = r.origin[ok] + z[ok][:, None] * r.direction
    p[ok] = p_ok
    g = grad_fn(p_ok, ok)
    g = g / np.maximum(np.sqrt(np.einsum("...i,...i->...", g, g))[..., None], 1e-12)
    n[ok] = g @ frame.rotation.T
  return Hit(np.where(ok, z, -np.inf), p, n, np.where(ok, margin, 0.0))


def ellipsoid_mask(r: Rays, centre, radii) -> np.ndarray:
  """Pixels whose rays meet the ellipsoid (a cheap bound before texturing)."""
  c = np.asarray(centre, np.float32)
  rad = np.asarray(radii, np.float32)
  o = (r.origin.astype(np.float32) - c) / rad
  d = (r.direction / rad).astype(np.float32)
  a = float(d @ d)
  b = o @ d
  return b * b - a * ((o * o).sum(-1) - 1.0) >= 0


def ellipsoid(r: Rays, frame: Frame, centre, radii, back: bool = False,
              normals: bool = True) -> Hit:
  """Front (or back) intersection with the ellipsoid sum(((v - c) / radii)^2) = 1.

  `radii` may be (3,) or (h, w, 3) (per-pixel radii give displaced, e.g. noisy, shells);
  `normals=False` leaves the normals at 0 (cheaper when only points are needed)."""
  c = np.asarray(centre, np.float64)
  rad = np.asarray(radii, np.float64)
  o = (r.origin - c) / rad
  d = r.direction / rad
  dot = lambda u, v: np.einsum("...i,...i->...", u, v)  # noqa: E731
  a = dot(d, d)
  b = dot(o, d)
  cc = dot(o, o) - 1.0
  disc = b * b - a * cc
  ok = disc >= 0
  root = np.sqrt(np.maximum(disc, 0.0))
  z = (-b - root) / a if back else (-b + root) / a
  margin = np.sqrt(np.maximum(disc, 0.0) / np.maximum(a * a, 1e-30)) * np.sqrt(a)
  sign = -1.0 if back else 1.0  # The inside of the shell faces the camera.
  return _finish(z, ok, r, frame, lambda p, ok: sign * (p - c) / _at(rad, ok) ** 2,
                 np.clip(margin, 0, 1), normals)


def cylinder_y(r: Rays, frame: Frame, centre_xz, radii_xz, y_range, back: bool = False) -> Hit:
  """Front (or back) intersection with the elliptic cylinder around the model y axis through
  (x, z) = centre_xz, limited to y in y_range = (low, high)."""
  cx, cz = centre_xz
  rx, rz = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in radii_xz))
  ox, oz = (r.origin[..., 0] - cx) / rx, (r.origin[..., 2] - cz) / rz
  dx, dz = r.direction[0] / rx, r.direction[2] / rz
  a = dx * dx + dz * dz
  b = ox * dx + oz * dz
  disc = b * b - a * (ox * ox + oz * oz - 1.0)
  ok = (disc >= 0) & (a > 1e-12)
  root = np.sqrt(np.maximum(disc, 0.0))
  a_safe = np.maximum(a, 1e-12)
  z = (-b - root) / a_safe if back else (-b + root) / a_safe
  y = r.origin[..., 1] + z * r.direction[1]
  ok &= (y >= y_range[0]) & (y <= y_range[1])
  margin = np.clip(np.sqrt(np.maximum(disc, 0.0)) / np.sqrt(a_safe), 0.0, 1.0)
  sign = -1.0 if back else 1.0

  def grad(p, ok):
    g = np.zeros_like(p)
    g[..., 0] = sign * (p[..., 0] - cx) / _at(rx, ok) ** 2
    g[..., 2] = sign * (p[..., 2] - cz) / _at(rz, ok) ** 2
    return g
  return _finish(z, ok, r, frame, grad, margin)


def subset(r: Rays, keep: np.ndarray) -> Rays:
  """The rays of the pixels in `keep` (flattened), to cast only where a part can show."""
  return Rays(r.origin[keep], r.direction)


def expand(hit: Hit, keep: np.ndarray) -> Hit:
  """A hit cast on `subset(r, keep)` back at image size (missed outside `keep`)."""
  depth = np.full(keep.shape, -np.inf)
  point = np.zeros(keep.shape + (3,))
  normal = np.zeros(keep.shape + (3,), np.float32)
  margin = np.zeros(keep.shape)
  depth[keep], point[keep], normal[keep], margin[keep] = (hit.depth, hit.point, hit.normal,
                                                          hit.margin)
  return Hit(depth, point, normal, margin)


def screen_box(frame: Frame, low, high, size: int | tuple[int, int], pad: float = 2.0
               ) -> np.ndarray:
  """(h, w) bool: the pixels whose centres lie within `pad` pixels of the screen bounding box
  of the model-frame box [low, high] (a bound of any surface inside that box: rays outside it
  miss the surface by more than `pad` pixels, far beyond rounding)."""
  h, w = (size, size) if np.isscalar(size) else size
  low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
  centre = frame.a @ (0.5 * (low + high)) + frame.t
  half = np.abs(frame.a) @ (0.5 * (high - low)) + pad
  cols = (np.arange(w) + 0.5 >= centre[0] - half[0]) & (np.arange(w) + 0.5 <= centre[0] + half[0])
  rows = (np.arange(h) + 0.5 >= centre[1] - half[1]) & (np.arange(h) + 0.5 <= centre[1] + half[1])
  return rows[:, None] & cols[None, :]


def cast_in(cast, r: Rays, keep: np.ndarray) -> Hit:
  """`cast(rays)` (a function of image-shaped rays, e.g. `ellipsoid` with its other arguments
  bound) on the pixels in `keep` only, missed elsewhere: the same hit as casting on every
  pixel and dropping those outside `keep`, where `keep` holds every pixel the surface can
  show in (`screen_box`); `cast` must give missed pixels point, normal and margin 0 (the
  default ``normals=True``)."""
  return expand(cast(subset(r, keep)), keep)


def nearest(*hits: Hit) -> tuple[np.ndarray, Hit]:
  """Per pixel the closest of several hits: (index (h, w) of the winner, -1 = none; merged)."""
  depth = np.stack([h.depth for h in hits])
  idx = np.argmax(depth, 0)
  best = np.take_along_axis(depth, idx[None], 0)[0]

  def pick(attr):  # Each hit's values on the pixels it wins (a copy of the first elsewhere).
    values = [getattr(h, attr) for h in hits]
    out = np.array(values[0], dtype=np.result_type(*values))
    for i, v in enumerate(values[1:], 1):
      won = idx == i
      out[won] = v[won]
    return out
  hit = Hit(best, pick("point"), pick("normal"), pick("margin"))
  return np.where(np.isfinite(best), idx, -1), hit
