"""A training progress display: step/total, loss, steps/s, images/s and ETA.

On a terminal it is one line redrawn in place (carriage return); when the output is a file or
a CI log it prints a plain line every `every_steps` steps (and at the end), so logs stay
readable. Rates are measured over the steps since the previous update, so the first update
(which includes compilation) does not distort the later ones; the ETA uses the rate since the
first update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
  """`3725.0 -> '1:02:05'`; `'?'` when unknown."""
  if seconds is None or seconds != seconds or seconds == float("inf") or seconds < 0:
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
  """Reports training progress to a stream.

  Args:
    total_steps: the step training stops at.
    start_step: the step training (re)starts from (0 for a fresh run).
    batch_size: global images (examples) per step, for images/s.
    every_steps: in plain-line mode, print every this many steps.
    stream: where to write (default `sys.stdout`).
    enabled: False on non-primary processes (prints nothing).
    interactive: force single-line (True) or plain-line (False) mode; default: whether
      `stream` is a terminal.
    clock: time source (seconds), replaceable in tests.
  """

  def __init__(self, total_steps: int, start_step: int = 0, batch_size: int = 0,
               every_steps: int = 100, stream: TextIO | None = None, enabled: bool = True,
               interactive: bool | None = None, clock=time.perf_counter):
    self.total_steps = int(total_steps)
    self.batch_size = int(batch_size)
    self.every_steps = max(1, int(every_steps))
    self.stream = sys.stdout if stream is None else stream
    self.enabled = enabled
    if interactive is None:
      isatty = getattr(self.stream, "isatty", None)
      interactive = bool(isatty and isatty())
    self.interactive = interactive
    self._clock = clock
    self._first = (int(start_step), clock())  # (step, time) at start; refined at 1st update.
    self._last = self._first
    self._seen_update = False
    self._last_draw = float("-inf")
    self._width = 0
    self._rate = float("nan")

  def _line(self, step: int, metrics: Mapping[str, Any]) -> str:
    parts = [f"step {step}/{self.total_steps}"]
    for k, v in metrics.items():
      try:
        parts.append(f"{k} {float(v):.4g}")
      except (TypeError, ValueError):
        continue
    if self._rate == self._rate:
      parts.append(f"{self._rate:.2f} steps/s")
      if self.batch_size:
        parts.append(f"{self._rate * self.batch_size:.1f} img/s")
    first_step, first_t = self._first
    done = step - first_step
    elapsed = self._clock() - first_t
    eta = (self.total_steps - step) * elapsed / done if done > 0 else float("nan")
    parts.append(f"ETA {format_duration(eta)}")
    return " | ".join(parts)

  def update(self, step: int, metrics: Mapping[str, Any] | None = None,
             force: bool = False) -> None:
    """Reports that `step` is complete, with the (host) scalar `metrics` to show.

    Args:
      step: the completed step.
      metrics: scalars to show, e.g. `{"loss": 0.12}`.
      force: print even in plain-line mode when `step` is not a multiple of `every_steps`.
    """
    if not self.enabled:
      return
    now = self._clock()
    if not self._seen_update:
      # Rates and ETA start after the first completed step (which includes compilation).
      self._seen_update = True
      self._first = self._last = (step, now)
    if self.interactive:
      due = force or step == self.total_steps or now - self._last_draw >= 0.1
    else:
      due = force or step % self.every_steps == 0 or step == self.total_steps
    if not due:
      return
    last_step, last_t = self._last
    # Refresh the rate over at least half a second in terminal mode (one step is too noisy).
    if step > last_step and now - last_t >= (0.5 if self.interactive else 0.0) and now > last_t:
      self._rate = (step - last_step) / (now - last_t)
      self._last = (step, now)
    self._last_draw = now
    line = self._line(step, metrics or {})
    if self.interactive:
      pad = " " * max(0, self._width - len(line))
      self._width = len(line)
      self.stream.write("\r" + line + pad)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def message(self, text: str) -> None:
    """Prints a message on its own line (ending the in-place line first if needed)."""
    if not self.enabled:
      return
    if self.interactive and self._width:
      self.stream.write("\n")
      self._width = 0
    self.stream.write(text + "\n")
    self.stream.flush()

  def close(self) -> None:
    """Ends the in-place line so later output starts on a fresh line."""
    if self.enabled and self.interactive and self._width:
      self.stream.write("\n")
      self.stream.flush()
      self._width = 0
