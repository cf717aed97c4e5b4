"""Memory pressure: stretches of a run where a GPU's memory in use passed `MEMORY_LIMIT`.

The same limit sizes the `auto` token budgets (`models.budget`): a step may peak at 90%
of the device, the rest absorbing steps whose shapes differ from the probe's, allocator
fragmentation and whatever else starts on the GPU. Going above it during a run means
the budget was too bold (or something else took memory), so the report lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MEMORY_LIMIT = 0.9


@dataclass(frozen=True)
class PressureInterval:
    """A stretch of consecutive readings above the threshold."""

    start: float  # time of its first reading above
    end: float  # time of its last reading above (= start for a single reading)
    peak_fraction: float  # highest used / total within it


def memory_pressure(
    samples: Iterable[tuple[float, int, int]], threshold: float = MEMORY_LIMIT
) -> list[PressureInterval]:
    """Stretches where memory use was above `threshold` of the total, in time order.

    `samples` are `(time, used bytes, total bytes)` readings of one GPU, in any order;
    readings with no total (unreadable) are skipped. Use strictly above the threshold
    counts; a reading at or below it ends a stretch.
    """
    intervals: list[PressureInterval] = []
    current: PressureInterval | None = None
    for when, used, total in sorted(samples):
        if total <= 0:
            continue
        fraction = used / total
        if fraction <= threshold:
            if current is not None:
                intervals.append(current)
            current = None
        elif current is None:
            current = PressureInterval(when, when, fraction)
        else:
            current = PressureInterval(current.start, when, max(current.peak_fraction, fraction))
    if current is not None:
        intervals.append(current)
    return intervals
