"""Metric logging: a JSONL file plus TensorBoard event files, without TensorFlow.

`workdir/metrics.jsonl` holds one JSON object per logged step (`{"step": 100, "loss": ...}`),
appended as training goes; it is the machine-readable record (plots, tests, acceptance
checks). `workdir/tb/` holds TensorBoard event files written by tensorboardX (pure Python;
CLU's and Flax's writers import TensorFlow).

Resuming: when a run restarts from checkpoint step `s`, rows for steps `> s` (written after
that checkpoint by the run that died) are removed from the JSONL file, and TensorBoard is
told to purge its events from step `s + 1` on, so that every step appears once.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter


def _to_python(value: Any) -> Any:
  """A JSON-friendly Python scalar for a NumPy/JAX scalar (NaN/Inf become strings)."""
  value = np.asarray(value)
  if value.size != 1:
    raise ValueError(f"metrics must be scalars, got shape {value.shape}.")
  value = value.reshape(()).item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/Inf; keep the row valid and visible.
  return value


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Reads a metrics JSONL file (missing file -> empty list; a torn last line is skipped)."""
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue  # A line cut short by a crash.
  return rows


def truncate_jsonl(path: str | os.PathLike, last_step: int) -> None:
  """Keeps only rows with `step <= last_step` (rewritten atomically via a temporary file)."""
  if not os.path.exists(path):
    return
  rows = [r for r in read_jsonl(path) if int(r.get("step", -1)) <= last_step]
  tmp = f"{os.fspath(path)}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)


def to_uint8_image(image: Any) -> np.ndarray:
  """Validates an (H, W, 3|4) image (uint8 or float in [0, 1]) and returns it as uint8 RGB."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] not in (3, 4):
    raise ValueError(f"images must be (H, W, 3) or (H, W, 4), got shape {image.shape}.")
  image = image[..., :3]
  if image.dtype == np.uint8:
    return image
  if not np.all(np.isfinite(image)):
    raise ValueError("image holds NaN or Inf values.")
  return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class MetricWriter:
  """Writes scalars (JSONL + TensorBoard) and images (TensorBoard) for one work directory.

  Args:
    workdir: the run's work directory; files go to `metrics.jsonl` and `tb/` inside it.
    resume_step: the step training restarts from (the restored checkpoint step, or 0 for a
      fresh start); logged rows beyond it are dropped. None leaves existing files untouched.
    enabled: False on non-primary processes of a multi-host run (writes nothing).
    tensorboard: also write TensorBoard event files.
  """

  def __init__(self, workdir: str | os.PathLike, resume_step: int | None = None,
               enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self.jsonl_path = os.path.join(os.fspath(workdir), "metrics.jsonl")
    self.tb_dir = os.path.join(os.fspath(workdir), "tb")
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step is not None:
      truncate_jsonl(self.jsonl_path, resume_step)
    if tensorboard:
      purge = None if resume_step is None else resume_step + 1
      self._tb = SummaryWriter(logdir=self.tb_dir, purge_step=purge)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Appends one JSONL row `{"step": step, **scalars}` and the TensorBoard scalars."""
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({str(k): _to_python(v) for k, v in scalars.items()})
    with open(self.jsonl_path, "a", encoding="utf-8") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        if k != "step" and isinstance(v, (int, float)):
          self._tb.add_scalar(k, v, global_step=int(step))

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    """Writes (H, W, 3) images (uint8, or float in [0, 1]) to TensorBoard."""
    if not self.enabled or self._tb is None:
      return
    for k, img in images.items():
      self._tb.add_image(k, to_uint8_image(img), global_step=int(step), dataformats="HWC")

  def flush(self) -> None:
    """Flushes TensorBoard events to disk (JSONL rows are written immediately)."""
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer."""
    if self._tb is not None:
      self._tb.close()
      self._tb = None
