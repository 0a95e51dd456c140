"""Synthetic PRNet training pairs: a posed, deformed mean face and its exact UV position map.

A pair is a pure function of ``(seed, index)`` (all draws from
``np.random.default_rng([seed, index, 12])``). Per face (prnet-spec.md §6):

* shape: `data.synth.geometry.sample_shape` plus expression-like fields on the UV grid (jaw
  opening: lower lip and chin down by U(0, 0.08) face heights and back by 30 % of that, with a
  3-pixel UV ramp at the lip line, fading past the mouth corners; mouth-corner pull +-0.03;
  brow raise -0.01..0.03);
* pose: yaw U(+-90), pitch U(+-25), roll U(+-20) degrees;
* framing = PRNet's training crop on the projected 68-landmark box: side 1.5 mean(w, h)
  U(0.9, 1.1), centre jitter U(+-0.1) mean(w, h);
* appearance, light, illuminant, camera, background, exposure, sRGB, 8 bit: exactly as
  `data.synth.faces` (rendered by `FaceGenerator.render`).

Truth in **PRNet's convention**: ``posmap`` (R, R, 3) = (x, y, z) of every UV point in image
pixels with pixel centres at integers (our rasteriser's +1/2 subtracted), z = depth in pixels,
larger = closer, min over the 43,867 vertices = 0, zero off the face mask; at R < 256 the map is
the block mean of `bioface_jax.face3d.resize_uv_map`. ``landmarks`` (68, 3) are the exact
landmark vertices in the same frame (= ``posmap`` at ``uv_kpt_ind`` at R = 256).

What differs from the spec: the mouth interior is not shaded darker (stretched lip-line
triangles keep the skin colour).
"""

from __future__ import annotations

import functools

import numpy as np

from bioface_jax.face3d import uv as uv_lib
from data.synth import faces, geometry

GENERATOR_VERSION = 1


@functools.lru_cache(maxsize=2)
def _expression_basis(template: geometry.FaceTemplate) -> dict[str, np.ndarray]:
  """Per-vertex weights of the expression fields (they depend only on the template)."""
  k = template.landmarks_uv  # (68, 2) (column, row)
  col, row = template.cols.astype(np.float64), template.rows.astype(np.float64)
  lip = k[60:68, 1].mean()
  left, right = k[48, 0], k[54, 0]
  centre, half = 0.5 * (left + right), 0.5 * (right - left)
  outside = np.maximum(np.abs(col - centre) - half, 0.0)
  jaw = (1.0 / (1.0 + np.exp(-(row - lip) / 1.5))) * np.exp(-0.5 * (outside / 25.0) ** 2)
  jaw *= row <= k[8, 1] + 20  # Nothing below the chin moves.

  def blob(c, r, sigma):
    return np.exp(-0.5 * ((col - c) ** 2 + (row - r) ** 2) / sigma ** 2)

  corner_l, corner_r = blob(*k[48], 8.0), blob(*k[54], 8.0)
  brow = sum(blob(*k[i], 10.0) for i in range(17, 27))
  brow = brow / brow.max()
  return dict(jaw=jaw, corner_l=corner_l, corner_r=corner_r, brow=brow)


def sample_expression(rng: np.random.Generator, template: geometry.FaceTemplate,
                      vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Adds jaw opening, mouth-corner pull and brow raise (model frame: x right, y up, z out).

  Returns:
    (vertices, params (4,)): jaw, corner, brow (fractions of the face height).
  """
  b = _expression_basis(template)
  ref = template.ref_size
  jaw = rng.uniform(0.0, 0.08)
  corner = rng.uniform(-0.03, 0.03)
  brow = rng.uniform(-0.01, 0.03)
  d = np.zeros_like(vertices)
  d[:, 1] -= jaw * ref * b["jaw"]
  d[:, 2] -= 0.3 * jaw * ref * b["jaw"]
  d[:, 0] += corner * ref * (b["corner_r"] - b["corner_l"])
  d[:, 1] += 0.5 * corner * ref * (b["corner_r"] + b["corner_l"])
  d[:, 1] += brow * ref * b["brow"]
  return vertices + d, np.array([jaw, corner, brow])


def framing_pose(vertices, template, yaw, pitch, roll, size, rng) -> geometry.Pose:
  """The pose whose projection is PRNet's training crop of the 68-landmark box."""
  pose0 = geometry.Pose(yaw, pitch, roll, 1.0, 0.0, 0.0)
  screen0 = geometry.project(vertices, template, pose0, size)
  lmk = screen0[template.landmark_vertices, :2]
  lo, hi = lmk.min(0), lmk.max(0)
  m = float(np.mean(hi - lo))
  side = 1.5 * m * rng.uniform(0.9, 1.1)
  centre = 0.5 * (lo + hi) + rng.uniform(-0.1, 0.1, 2) * m
  f = size / side
  t = (0.5 * size - centre) * f / size
  return geometry.Pose(yaw, pitch, roll, f, float(t[0]), float(t[1]))


def position_map(screen: np.ndarray, template: geometry.FaceTemplate, size: int) -> np.ndarray:
  """(R, R, 3) float32 PRNet-convention map from (N, 3) screen positions (+1/2 centres)."""
  p = screen - np.array([0.5, 0.5, 0.0])
  p[:, 2] -= p[:, 2].min()
  grid = np.zeros((uv_lib.UV_SIZE, uv_lib.UV_SIZE, 3))
  grid[template.rows, template.cols] = p
  return uv_lib.resize_uv_map(grid, template.uv_index >= 0, size).astype(np.float32)


def sample_pair(seed: int, index: int, size: int = 128, options: faces.FaceOptions = faces.FaceOptions(),
                max_yaw: float = 90.0) -> dict[str, np.ndarray]:
  """Everything of face `index` but the rendered image (render with `FaceGenerator.render`).

  Returns the keys of `data.synth.faces.sample_face` plus ``posmap`` (R, R, 3),
  ``landmarks3d`` (68, 3) (PRNet convention), ``expression`` (3,).
  """
  template = geometry.load_template()
  rng = np.random.default_rng([seed, index, 12])
  vertices = geometry.sample_shape(rng, template, options.shape_amplitude)
  vertices, expr = sample_expression(rng, template, vertices)
  yaw, pitch, roll = rng.uniform(-1, 1, 3) * np.array([max_yaw, 25.0, 20.0])
  pose = framing_pose(vertices, template, float(yaw), float(pitch), float(roll), size, rng)
  geo = geometry.rasterise(vertices, template, pose, size)
  screen = geometry.project(vertices, template, pose, size)
  posmap = position_map(screen, template, size)
  lmk = screen[template.landmark_vertices] - np.array([0.5, 0.5, 0.0])
  lmk[:, 2] -= (screen[:, 2]).min()
  mask, normals = geo["mask"], geo["normals"]
  fmel, fblood, diffuse, specular, sh, scale, shininess = faces.sample_skin_and_lighting(
      rng, template, geo, size, options)
  lo, hi = np.log(options.face_luminance)
  weights, t, b = faces.sample_illuminant(rng, options)
  f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
  return dict(
      index=np.int64(index), fmel=f32(fmel), fblood=f32(fblood), diffuse=f32(diffuse),
      specular=f32(specular), mask=mask, normals=f32(normals),
      background=faces.sample_background(rng, size), noise=np.zeros((size, size, 3), np.float32),
      sh=sh, weights=weights, t=t, b=b, luminance=np.float32(np.exp(rng.uniform(lo, hi))),
      specular_scale=np.float32(scale), shininess=np.float32(shininess),
      pose=f32([pose.yaw, pose.pitch, pose.roll, pose.scale, pose.tx, pose.ty]),
      posmap=posmap, landmarks3d=f32(lmk), expression=f32(expr))


def _stack(items):
  return {k: np.stack([f[k] for f in items]) for k in items[0]}


def generate_pairs(seed: int, indices, size: int = 128, batch_size: int = 32,
                   max_yaw: float = 90.0, context: bool = False):
  """Yields rendered batches: image (B, R, R, 3) uint8, posmap, landmarks (68, 3), yaw/pitch/roll.

  ``context``: paint hair, neck, clothes, ear, open eyes and mouth interior around / into the
  rendered face (`data.prnet.context`, its own stream ``default_rng([seed, index, 13])``);
  the truth is unchanged.
  """
  gen = faces.FaceGenerator(size, seed, faces.FaceOptions(), batch_size=batch_size)
  indices = list(indices)
  for start in range(0, len(indices), batch_size):
    raw = _stack([sample_pair(seed, i, size, gen.options, max_yaw)
                  for i in indices[start:start + batch_size]])
    out = gen.render(raw)
    if context:
      from data.prnet import context as context_lib  # pylint: disable=g-import-not-at-top
      out["image"] = np.stack([
          context_lib.paint_context(img, m, lmk, pose[0], np.random.default_rng([seed, int(i), 13]))
          for img, m, lmk, pose, i in zip(out["image"], raw["mask"], raw["landmarks3d"],
                                          raw["pose"], raw["index"])])
    yield dict(image=np.round(out["image"] * 255).astype(np.uint8), posmap=raw["posmap"],
               landmarks=raw["landmarks3d"], pose=raw["pose"][:, :3],
               index=raw["index"].astype(np.int64))


__all__ = ["GENERATOR_VERSION", "framing_pose", "generate_pairs", "position_map",
           "sample_expression", "sample_pair"]
