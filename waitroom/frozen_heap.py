"""Keep the serving process's long-lived objects out of Python's cyclic collections (issue 17).

A node holding 10,000 waiting callers holds about 2.3 million objects the cyclic collector
tracks, and CPython's full collection walks every one of them while the event loop waits: 1.6 s
at 10,000 (bench/README.md, session 17). Under a steady churn of arrivals and departures one
comes about every quarter of an hour, although almost nothing it walks is garbage: a departing
caller's objects are freed by reference count the moment they go (no reference cycle is left
behind; ``tests/web/test_departure_garbage.py``).

So the survivors of every middle or full collection (objects that outlived at least two) are
frozen (`gc.freeze`): later collections never walk them. A frozen object that becomes unreachable
is still freed at once by its reference count. Only one caught in a reference cycle stays, and
for that there is the **audit**: unfreeze, one full collection, freeze again. It runs when the
frozen heap has grown by `AUDIT_GROWTH` since the last audit and is small enough to walk in a few
tens of milliseconds (`AUDIT_SMALL`), or once it has also gone `AUDIT_INTERVAL` without one (which
bounds what a cycle-leaking path can hold, at the cost of one long pause an hour at most). A
node whose waiting list is steady therefore never walks it.

Process-wide, so only the CLI's server runs it; tests that run a server keep Python's defaults.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator

import trio

log = logging.getLogger(__name__)

#: Cyclic-GC thresholds (Python's defaults are 700, 10, 10). Rarer young collections let request
#: objects die by reference count instead of being promoted; a middle collection walks what three
#: young ones kept (about 30,000 objects at most). Full collections walk only what is not frozen.
GC_THRESHOLDS = (10_000, 3, 333)
#: The frozen heap must have grown by this factor since the last audit before another is due.
AUDIT_GROWTH = 1.25
#: Frozen objects an audit may walk whenever it is due: about 80 ms of one core here (0.4 us an
#: object), where a server holds about 140,000 right after start-up.
AUDIT_SMALL = 200_000
#: Seconds after which a due audit runs however large the heap (the bound on a leak).
AUDIT_INTERVAL = 3600.0
#: Seconds between looks at whether an audit is due.
CHECK_EVERY = 10.0


class FrozenHeap:
    """The freeze after each collection, and the audits (see the module doc)."""

    def __init__(
        self,
        *,
        growth: float = AUDIT_GROWTH,
        small: int = AUDIT_SMALL,
        interval: float = AUDIT_INTERVAL,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.growth = growth
        self.small = small
        self.interval = interval
        self.check_every = check_every
        #: Frozen objects right after the last audit (or the start).
        self.after_audit = 0
        self.audits = 0
        #: Unreachable objects the audits found: what reference cycles kept among frozen ones.
        self.found = 0
        #: Seconds the audits took, all together.
        self.audit_seconds = 0.0
        self._last_audit = 0.0

    @staticmethod
    def frozen() -> int:
        return gc.get_freeze_count()

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        # After a middle or full collection the young generations are empty: what is frozen here
        # outlived at least two collections, never a request's short-lived cycle.
        if phase == "stop" and info["generation"] >= 1:
            gc.freeze()

    @contextlib.contextmanager
    def installed(self) -> Iterator[FrozenHeap]:
        """Freeze after each collection while the block runs (gc callbacks are process-wide)."""
        gc.callbacks.append(self._after_collection)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._after_collection)

    def due(self, now: float) -> bool:
        frozen = self.frozen()
        if frozen < self.after_audit * self.growth:
            return False
        return frozen <= self.small or now - self._last_audit >= self.interval

    def audit(self, now: float) -> int:
        """Walk everything once: free what cycles kept, freeze the rest again. Returns what it freed."""
        began = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        took = time.perf_counter() - began
        self.audits += 1
        self.found += found
        self.audit_seconds += took
        self.after_audit = self.frozen()
        self._last_audit = now
        log.info("heap audit: %d unreachable freed, %d kept, %.3f s", found, self.after_audit, took)
        return found

    def start(self, now: float) -> None:
        """Collect and freeze what start-up made, then collect at `GC_THRESHOLDS`."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.after_audit = self.frozen()
        self._last_audit = now

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start (see `start`), then audit when due, until cancelled."""
        self.start(trio.current_time())
        with self.installed():
            task_status.started()
            while True:
                await trio.sleep(self.check_every)
                now = trio.current_time()
                if self.due(now):
                    self.audit(now)
