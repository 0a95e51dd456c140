"""TFDS builder ``celeba_faceparsing``: CelebA aligned images paired with face-parsing labels.

Needs the optional extra ``tfds`` (tensorflow-datasets + TensorFlow); the core install never
imports this module. The manual directory holds CelebA's files and the masks in the layout of
`data.celeba_faceparsing.reader` (``img_align_celeba.zip``, ``list_eval_partition.txt``,
``mask_faceparsing.zip`` or the unzipped directories). Each example stores the image (as in the
zip), the label map (uint8 PNG, its own resolution) and the id; the splits are CelebA's
partition file (train / validation / test). Images without a mask are skipped and counted (the
count is logged). Prepare once, then read with `data.celeba_faceparsing.load_splits`::

  python -c "import data.celeba_faceparsing.builder as b, tensorflow_datasets as tfds; \
    tfds.builder('celeba_faceparsing', data_dir=DATA_DIR).download_and_prepare(\
    download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR), \
    file_format='array_record')"
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from absl import logging

from data.celeba_faceparsing import reader


class CelebaFaceparsing(tfds.core.GeneratorBasedBuilder):
  """CelebA aligned images + face-parsing.PyTorch label maps (the face VAE's data)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put in the manual directory: img_align_celeba.zip and list_eval_partition.txt (CelebA,
  https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) and mask_faceparsing.zip holding
  mask_faceparsing/<id>.png, the face-parsing.PyTorch label map of each aligned image
  (labels 0..18 in that project's order; any resolution covering the full frame).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "labels": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
            "id": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage="https://github.com/zllrunning/face-parsing.PyTorch",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    partition, images, masks, missing = reader.pair_files(dl_manager.manual_dir)
    for split, count in missing.items():
      if count:
        logging.warning("celeba_faceparsing: %d %s images have no mask and are skipped",
                        count, split)
    return {split: self._generate_examples(ids, images, masks)
            for split, ids in partition.items()}

  def _generate_examples(self, ids, images, masks):
    for ident in ids:
      image = reader.decode_image(images.read(ident), images.name(ident))
      labels = reader.decode_labels(masks.read(ident), masks.name(ident))
      yield ident, {"image": image, "labels": labels[..., None], "id": ident}
