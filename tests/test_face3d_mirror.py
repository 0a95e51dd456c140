"""Mirror images of position maps (`bioface_jax.face3d.mirror`) against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from bioface_jax import face3d


def test_landmark_mirror_is_an_involution_of_the_ibug_pairs():
  m = face3d.LANDMARK_MIRROR
  np.testing.assert_array_equal(np.sort(m), np.arange(68))
  np.testing.assert_array_equal(m[m], np.arange(68))
  assert m[0] == 16 and m[36] == 45 and m[48] == 54 and m[30] == 30 and m[62] == 62


def test_mirror_is_exact_and_its_own_inverse():
  rng = np.random.default_rng(0)
  pm = rng.uniform(0, 64, (2, 64, 64, 3)).astype(np.float32)
  out = np.asarray(face3d.mirror_position_map(pm))
  np.testing.assert_array_equal(out[..., 0], 63.0 - pm[:, :, ::-1, 0])
  np.testing.assert_array_equal(out[..., 1:], pm[:, :, ::-1, 1:])
  # Twice: 63 - (63 - x) rounds once per subtraction in float32 (values < 64: ulp 2^-18).
  np.testing.assert_allclose(np.asarray(face3d.mirror_position_map(out)), pm, rtol=0,
                             atol=2 * 2.0**-18)
  with pytest.raises(ValueError, match="R, R, 3"):
    face3d.mirror_position_map(pm[..., :2])


@pytest.mark.parametrize("size", [256, 64])
def test_mirrored_map_holds_the_mirrored_landmarks(size):
  """A map whose x and y are affine in the UV texel (u, v): the landmarks of its mirror are
  the mirrored landmarks of the mirror partners, up to the layout's asymmetry of one texel at
  256 (|du| <= 1: |dx| <= |a|; the bilinear read of an affine map is exact) plus float32
  rounding: values below 64 (half an ulp 2^-19), two reads (got, want) of at most 8 rounded
  operations each (the mirror's subtraction, four products and three sums)."""
  f = 256 // size
  a, b, c, d = 0.2, 3.0, 0.25, 5.0  # x = a * u256 + b, y = c * v256 + d
  centres = (np.arange(size) + 0.5) * f - 0.5  # texel centres on the 256 grid
  u, v = np.meshgrid(centres, centres)
  pm = np.stack([a * u + b, c * v + d, np.zeros_like(u)], -1).astype(np.float64)
  lmk = np.asarray(face3d.landmarks_from_position_map(pm))
  got = np.asarray(face3d.landmarks_from_position_map(face3d.mirror_position_map(pm)))
  want = lmk[face3d.LANDMARK_MIRROR].copy()
  want[:, 0] = (size - 1) - want[:, 0]
  kpt = face3d.base_assets()["kpt_ind"]
  asym_u = np.abs(kpt[0] + kpt[0][face3d.LANDMARK_MIRROR] - 255).max()
  asym_v = np.abs(kpt[1] - kpt[1][face3d.LANDMARK_MIRROR]).max()
  assert asym_u <= 1 and asym_v <= 1  # The asset's symmetry (module docstring).
  rounding = 16 * 2.0**-19
  np.testing.assert_allclose(got[:, 0], want[:, 0], atol=a * asym_u + rounding)
  np.testing.assert_allclose(got[:, 1], want[:, 1], atol=c * asym_v + rounding)


def test_flip_average_of_an_equivariant_predictor_is_its_map():
  """A predictor that maps the mirrored crop to the mirrored map is left unchanged; one that
  ignores the image is averaged with its mirror."""
  rng = np.random.default_rng(1)
  crops = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
  maps = rng.uniform(0, 16, (3, 16, 16, 3)).astype(np.float32)
  mirrored = np.asarray(face3d.mirror_position_map(maps))

  def equivariant(x):
    assert x.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(x[3:], crops[:, :, ::-1])
    return np.concatenate([maps, mirrored])

  np.testing.assert_allclose(face3d.flip_averaged(equivariant, crops), maps, atol=1e-5)
  blind = face3d.flip_averaged(lambda x: np.broadcast_to(maps[:1], x.shape), crops[:1])
  np.testing.assert_allclose(blind[0], 0.5 * (maps[0] + mirrored[0]), atol=1e-5)
