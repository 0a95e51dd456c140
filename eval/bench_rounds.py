"""Interleaved timing rounds for the side-by-side benchmarks (ours against a peer framework).

On a shared machine the load changes from minute to minute. Timing one side and then the other
lets that drift decide the ratio; alternating short rounds (A B, B A, A B, ...) exposes both
sides to the same load, and the median over rounds of the per-round ratio is robust to the
rounds in which someone else's job started. ``ratio`` = our rate / their rate (> 1: ours
is faster).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def timed_rounds(sides: Mapping[str, Callable[[], object]], rounds: int, steps: int
                 ) -> dict[str, list[float]]:
  """Seconds per call of each side: one median of `steps` calls per round, the side order
  reversed every other round. Each callable must block until its work is done."""
  if rounds < 1 or steps < 1:
    raise ValueError(f"rounds and steps must be >= 1, got {rounds}, {steps}")
  names = list(sides)
  out = {n: [] for n in names}
  for r in range(rounds):
    for n in (names if r % 2 == 0 else names[::-1]):
      times = []
      for _ in range(steps):
        t0 = time.perf_counter()
        sides[n]()
        times.append(time.perf_counter() - t0)
      out[n].append(statistics.median(times))
  return out


def summary(ours_s: list[float], theirs_s: list[float], items: int) -> dict[str, float]:
  """Rates (items / s, median of rounds) and the per-round ratio ours / theirs: its median,
  and the ratio of the two sides' fastest rounds."""
  ratios = [t / o for o, t in zip(ours_s, theirs_s)]
  return dict(ours=items / statistics.median(ours_s), theirs=items / statistics.median(theirs_s),
              ratio=statistics.median(ratios), ratio_fastest=min(theirs_s) / min(ours_s),
              ratio_min=min(ratios), ratio_max=max(ratios), rounds=len(ratios))


def format_row(label: str, s: Mapping[str, float], unit: str = "img/s") -> str:
  return (f"  {label}: ours {s['ours']:.2f} {unit}, peer {s['theirs']:.2f} {unit}; ratio "
          f"{s['ratio']:.2f} (median of {s['rounds']} rounds, range {s['ratio_min']:.2f}-"
          f"{s['ratio_max']:.2f}; fastest rounds {s['ratio_fastest']:.2f})")
