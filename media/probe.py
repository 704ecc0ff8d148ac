"""Probing up: how a line held down by its subscriber's estimate learns whether more would fit.

Chrome's receive-side estimate (its REMB) grows only with what arrives: it is capped near one and
a half times the rate received. A line held on a low layer therefore keeps an estimate that never
admits the layer above, however wide the subscriber's downlink is. So a line held below what its
tile wants tries the next layer up: PROBE_FIRST after it was first held down, and after each
failed try twice as long as before (up to PROBE_MAX_WAIT). One line per subscriber probes at a
time. The probe stands while the estimate climbs toward the layer's rate with little loss; it
ends when the layer fits the estimate (the line stays), or fails when loss is reported, the
estimate falls, it has not risen for PROBE_STALL, or PROBE_LIMIT has passed (the line goes back
down at the lower layer's next key frame).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.forward import Producer

#: Held below what its tile wants this long, a line tries the layer above.
PROBE_FIRST = 4.0
#: The longest wait between tries after failures (each failure doubles the wait).
PROBE_MAX_WAIT = 60.0
#: A probe whose estimate has not risen for this long has found the line's limit.
PROBE_STALL = 3.0
#: No probe lasts longer than this (Chrome's estimate climbs by about 8 % a second).
PROBE_LIMIT = 20.0
#: An estimate below this fraction of the highest seen during the probe has fallen.
PROBE_FALL = 0.95


class Verdict(Enum):
    FITS = "fits"
    FAILED = "failed"


class Probe:
    """One line's try of `layer`, with the budget it started from and the highest it reached."""

    __slots__ = ("best", "layer", "rose_at", "started_at")

    def __init__(self, layer: Producer, budget: int, now: float) -> None:
        self.layer = layer
        self.started_at = now
        self.best = budget
        self.rose_at = now

    def verdict(self, budget: int, lossy: bool, rate: int, now: float) -> Verdict | None:
        """FITS or FAILED once the probe is over; None while it stands."""
        if lossy:
            return Verdict.FAILED
        if budget >= rate:
            return Verdict.FITS
        if budget > self.best:
            self.best, self.rose_at = budget, now
        elif budget < self.best * PROBE_FALL:
            return Verdict.FAILED
        if now - self.rose_at > PROBE_STALL or now - self.started_at > PROBE_LIMIT:
            return Verdict.FAILED
        return None


def next_wait(wait: float) -> float:
    """The wait before the next try after a failed one."""
    return min(2.0 * wait, PROBE_MAX_WAIT)
