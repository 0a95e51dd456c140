"""The ``celeba_faceparsing`` TFDS builder on fake data in exactly the real layout.

Skipped cleanly when tensorflow-datasets (optional extra ``tfds``) or its testing utilities are
not installed: the core install needs no TensorFlow.
"""

import tempfile

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
try:
  from tensorflow_datasets import testing as tfds_testing
except ImportError as error:  # e.g. tfds.testing needs `dill`
  pytest.skip(f"tensorflow_datasets.testing unavailable: {error}", allow_module_level=True)

from data import celeba_faceparsing  # noqa: E402
from data.celeba_faceparsing import builder  # noqa: E402
from data.celeba_faceparsing import reader  # noqa: E402


class CelebaFaceparsingTest(tfds_testing.DatasetBuilderTestCase):
  """TFDS's own builder checks: registration, splits, example counts, features."""
  DATASET_CLASS = builder.CelebaFaceparsing
  SPLITS = {"train": 2, "validation": 2, "test": 2}  # 3 train images, one without a mask
  SKIP_CHECKSUMS = True
  MOCK_OUT_FORBIDDEN_OS_FUNCTIONS = False

  @classmethod
  def setUpClass(cls):
    cls._tmp = tempfile.TemporaryDirectory()
    cls.EXAMPLE_DIR = str(reader.write_fake_manual_dir(cls._tmp.name))
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    cls._tmp.cleanup()


def _fake_source(split, **kwargs):
  del kwargs
  rng = np.random.default_rng({"train": 0, "validation": 1, "test": 2}[str(split)])
  labels = rng.integers(0, 19, (40, 40, 1)).astype(np.uint8)
  return [{"image": rng.integers(0, 256, (50, 30, 3)).astype(np.uint8), "labels": labels,
           "id": f"{split}{k}".encode()} for k in range(3)]


def test_load_splits_on_mock_data():
  with tfds_testing.mock_data(as_data_source_fn=lambda *a, **k: _fake_source(k["split"])):
    train, val, test = celeba_faceparsing.load_splits(24)
    batch = train.get(np.arange(3))
  assert len(val) == 3 and len(test) == 3
  assert batch["image"].shape == (3, 24, 24, 3) and batch["mask"].shape == (3, 24, 24)
  assert 0 <= batch["image"].min() and batch["image"].max() <= 1
  assert 0 <= batch["mask"].min() and batch["mask"].max() <= 1


def test_load_splits_rejects_a_non_label_map_naming_the_example():
  with tfds_testing.mock_data(num_examples=2, policy=tfds_testing.MockPolicy.USE_CODE):
    train, _, _ = celeba_faceparsing.load_splits(24)
    with pytest.raises(ValueError, match="celeba_faceparsing/train/.*labels must lie in 0..18"):
      train.get(np.arange(2))
