"""Mirror averaging for SDPS-Net (`bioface_jax.models.sdps_mirror`): the mirror follows the
data's camera frame, and the averaged predictors are exactly mirror-equivariant where the
networks alone are not."""

import jax
import numpy as np

from bioface_jax import photometric as ps
from bioface_jax.models import sdps, sdps_mirror
from data.photometric import shapes


def test_mirrored_normal_map_is_the_mirrored_surface():
  """Normals of the left-right mirrored depth map (finite differences, x = column, y = -row)
  equal `mirror_normal_map` of the surface's exact normals."""
  b = shapes.blob(np.random.default_rng(1), 48)
  z = b["depth"][:, ::-1].astype(np.float64)  # the mirrored surface
  m = b["mask"][:, ::-1]
  dzdx = (z[1:-1, 2:] - z[1:-1, :-2]) / 2
  dzdy = -(z[2:, 1:-1] - z[:-2, 1:-1]) / 2
  fd = np.stack([-dzdx, -dzdy, np.ones_like(dzdx)], -1)
  mirrored = np.asarray(sdps_mirror.mirror_normal_map(b["normals"][None]))[0]
  inner = m[1:-1, 1:-1] & m[2:, 1:-1] & m[:-2, 1:-1] & m[1:-1, 2:] & m[1:-1, :-2]
  inner &= mirrored[1:-1, 1:-1, 2] > 0.5  # away from steep silhouettes
  err = np.asarray(ps.angular_error(fd, mirrored[1:-1, 1:-1]))[inner]
  assert inner.sum() > 100 and np.median(err) < 2.0
  # Flipping rows instead (the wrong axis) would not match: the blob is not symmetric.
  wrong = b["normals"][::-1] * np.asarray(sdps_mirror.MIRROR_X)
  assert np.median(np.asarray(ps.angular_error(fd, wrong[1:-1, 1:-1]))[inner]) > 5.0


def test_mirrored_batch_renders_as_the_mirrored_scene():
  """Lambertian images of the mirrored scene (mirrored normals, mirrored lights) are the
  mirrored images."""
  b = shapes.blob(np.random.default_rng(2), 32)
  rng = np.random.default_rng(3)
  dirs = np.asarray(ps.sample_light_directions(jax.random.key(0), (1, 5)), np.float64)
  render = lambda n, d: np.maximum(np.einsum("hwc,nc->nhw", n, d), 0.0)  # noqa: E731
  images = render(b["normals"].astype(np.float64), dirs[0])[None, ..., None].repeat(3, -1)
  batch = {"images": images, "mask": b["mask"][None].astype(np.float64), "dirs": dirs,
           "intensities": rng.uniform(0.5, 2, (1, 5))}
  mb = {k: np.asarray(v) for k, v in sdps_mirror.mirror_batch(batch).items()}
  n_m = np.asarray(sdps_mirror.mirror_normal_map(b["normals"][None].astype(np.float64)))[0]
  # JAX holds the batch in float32: values <= 1 rounded once (half an eps) on each side.
  eps32 = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(mb["images"][0, ..., 0], render(n_m, mb["dirs"][0]), atol=2 * eps32)
  np.testing.assert_array_equal(mb["mask"][0], b["mask"][:, ::-1])
  np.testing.assert_array_equal(mb["intensities"], batch["intensities"].astype(np.float32))


def test_averaged_predictions_are_exactly_mirror_equivariant():
  kw = dict(width_multiplier=1 / 16, input_size=16)
  lc, ne = sdps.SDPSConfig(net="lcnet", **kw), sdps.SDPSConfig(net="nenet", nenet_scale=2, **kw)
  lp, _ = sdps.init(jax.random.key(0), (1, 4, 16, 16, 3), lc)
  npar, _ = sdps.init(jax.random.key(1), (1, 4, 16, 16, 3), ne)
  rng = np.random.default_rng(0)
  batch = {"images": rng.uniform(0, 1, (2, 4, 16, 16, 3)).astype(np.float32),
           "mask": (rng.uniform(size=(2, 16, 16)) > 0.2).astype(np.float32)}

  @jax.jit
  def averaged(b):
    dirs, ints = sdps_mirror.lcnet_lights(lp, b, lc)
    normals = sdps_mirror.nenet_normals(npar, {**b, "dirs": dirs, "intensities": ints}, ne)
    return dirs, ints, normals

  @jax.jit
  def plain(b):
    dirs, ints = sdps.lcnet_predict(sdps.apply(lp, b, lc))
    return dirs, ints, sdps.apply(npar, {**b, "dirs": dirs, "intensities": ints}, ne)["normals"]

  mirrored = sdps_mirror.mirror_batch(batch)
  d, i, n = (np.asarray(x) for x in averaged(batch))
  dm, im, nm = (np.asarray(x) for x in averaged(mirrored))
  # Exact: the two answers are the same two network outputs, added in the other order.
  np.testing.assert_array_equal(dm, np.asarray(sdps_mirror.mirror_vectors(d)))
  np.testing.assert_array_equal(im, i)
  np.testing.assert_array_equal(nm, np.asarray(sdps_mirror.mirror_normal_map(n)))
  np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-6)
  # The networks alone are not mirror-equivariant (random weights): the test can fail.
  _, _, n0 = (np.asarray(x) for x in plain(batch))
  _, _, n0m = (np.asarray(x) for x in plain(mirrored))
  assert np.abs(n0m - np.asarray(sdps_mirror.mirror_normal_map(n0))).max() > 1e-3
