"""Estimated waits from what happened recently, never from who else is waiting (issue 14).

The estimate is the median of recent waits (request to claim for on-demand requests; queued to
joined for callers in a waiting area): robust against one patient who waited all afternoon, and it
says nothing about anyone in particular (not the queue's length, not a position). Too few samples
give ``None`` ("no estimate yet") rather than a number made of one data point. Pure: no trio.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

#: Fewer recent waits than this and there is no estimate.
MIN_SAMPLES = 3
#: How many recent waits count.
SAMPLES = 20
#: Waits older than this (seconds) no longer say anything about now.
WINDOW = 4 * 3600.0


def typical_wait(waits: Sequence[float]) -> float | None:
    """The median of ``waits`` (seconds), or ``None`` with fewer than :data:`MIN_SAMPLES`."""
    usable = [w for w in waits if w >= 0]
    if len(usable) < MIN_SAMPLES:
        return None
    return float(statistics.median(usable))


def in_whole_minutes(seconds: float | None) -> float | None:
    """``seconds`` rounded to whole minutes as a page shows them (half a minute up, like the
    pages' ``Math.round``), still in seconds: who is told an estimate is told again only when
    what they see would change, not on every join that moves the median by a second."""
    if seconds is None:
        return None
    return float(math.floor(seconds / 60 + 0.5) * 60)


class RecentWaits:
    """The last :data:`SAMPLES` waits, each stamped with when it ended (seconds, any clock)."""

    __slots__ = ("_waits",)

    def __init__(self, waits: Sequence[tuple[float, float]] = ()) -> None:
        self._waits: deque[tuple[float, float]] = deque(waits, maxlen=SAMPLES)

    def add(self, at: float, wait: float) -> None:
        self._waits.append((at, max(0.0, wait)))

    def estimate(self, now: float) -> float | None:
        """The typical wait among those that ended within :data:`WINDOW` of ``now``."""
        return typical_wait([w for at, w in self._waits if now - at <= WINDOW])

    def __len__(self) -> int:
        return len(self._waits)


@dataclass(frozen=True)
class WaitEstimate:
    """Told by a waiting area to a waiting caller's room: the typical wait now (seconds, or
    ``None``), for the caller's own ``room.state``; it says nothing about anyone else."""

    seconds: float | None
