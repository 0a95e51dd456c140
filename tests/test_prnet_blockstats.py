"""eval.prnet_blockstats: the diagnostic statistics against closed forms."""

import numpy as np

from eval import prnet_blockstats as bs


def test_image_dependence_closed_forms():
  rng = np.random.default_rng(0)
  same = np.broadcast_to(rng.normal(size=(1, 4, 4, 3)), (8, 4, 4, 3)).astype(np.float32)
  # Identical images: zero spread over the batch (float32 sum rounding only).
  assert bs._img_dep(same) < 1e-5
  # Features constant over positions and channels, varying only between images: spread over
  # the batch equals the overall spread, ratio 1 (up to float32 rounding).
  per_image = np.broadcast_to(rng.normal(size=(8, 1, 1, 1)), (8, 4, 4, 3)).astype(np.float32)
  assert abs(bs._img_dep(per_image) - 1.0) < 1e-5


def test_alive_and_dead_channels():
  x = np.zeros((2, 3, 3, 4), np.float32)
  x[0, 0, 0, 1] = 1.0   # channel 1 alive at one position
  x[:, :, :, 2] = 2.0   # channel 2 always alive
  assert bs._dead(x) == 2                       # channels 0 and 3
  # 19 positive entries of 72; the float32 mean is within one float32 ulp of 19/72.
  assert abs(bs._alive(x) - 19 / 72) <= np.finfo(np.float32).eps
