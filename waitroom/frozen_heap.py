"""Keep the serving process's long-lived objects out of Python's cyclic collections (issue 17).

A node holding 10,000 waiting callers holds about 2.5 million objects the cyclic collector
tracks, and CPython's full collection walks every one of them while the event loop waits: 1.6 s
at 10,000 (bench/README.md, session 17). Under a steady churn of arrivals and departures one
comes about every quarter of an hour, although almost nothing it walks is garbage: a departing
caller's objects are freed by reference count the moment they go (no reference cycle is left
behind; ``tests/web/test_departure_garbage.py``).

So the survivors of every middle or full collection (objects that outlived at least two) are
frozen (`gc.freeze`): later collections never walk them. A frozen object that becomes unreachable
is still freed at once by its reference count. Only one caught in a reference cycle stays, and
for that there is the **audit**: unfreeze, one full collection, freeze again. It runs at most
every `AUDIT_INTERVAL`, and only if the process's resident memory has grown by `AUDIT_GROWTH`
since the last audit (or start-up): a node whose waiting list stays the same size never walks
it, and what a cycle-leaking path could hold is bounded.

CPython counts a young generation by allocations minus deallocations, and a frozen object freed
by its reference count (a departing caller's) counts as a deallocation: under churn the young
generation grows far past its threshold before it is collected, and the next full collection
walks all of it (175,000-232,000 objects, 133-187 ms, after 1,000 arrivals; bench/README.md,
session 21). So `run` also collects the two young generations every `YOUNG_EVERY` seconds,
which freezes what survived: what a full collection walks is then at most about a second's worth.

Growth is read from the resident memory, not from the count of frozen objects: counting them
(`gc.get_freeze_count`) walks the whole frozen list, 25 ms at 2.5 million objects in a compact
heap and more in a real one, where reading ``/proc/self/statm`` takes a tenth of a millisecond.

Process-wide, so only the CLI's server runs it; tests that run a server keep Python's defaults.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Iterator

import trio

log = logging.getLogger(__name__)

#: Cyclic-GC thresholds (Python's defaults are 700, 10, 10). Rarer young collections let request
#: objects die by reference count instead of being promoted; a middle collection walks what three
#: young ones kept (about 30,000 objects at most). Full collections walk only what is not frozen.
GC_THRESHOLDS = (10_000, 3, 333)
#: Resident memory must have grown by this factor since the last audit before another is due.
AUDIT_GROWTH = 1.25
#: Seconds an audit waits after the last one (or start-up), however much memory grew: at 10,000
#: waiting callers an audit stops the loop for about 1.6 s, as every full collection used to.
AUDIT_INTERVAL = 3600.0
#: Seconds between looks at whether an audit is due.
CHECK_EVERY = 10.0
#: Seconds between collections of the young generations (their survivors are then frozen).
YOUNG_EVERY = 1.0
#: Where Linux tells a process its size in pages (second field: resident).
STATM = "/proc/self/statm"
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class FrozenHeap:
    """The freeze after each collection, and the audits (see the module doc)."""

    def __init__(
        self,
        *,
        growth: float = AUDIT_GROWTH,
        interval: float = AUDIT_INTERVAL,
        check_every: float = CHECK_EVERY,
        young_every: float = YOUNG_EVERY,
    ) -> None:
        self.growth = growth
        self.interval = interval
        self.check_every = check_every
        self.young_every = young_every
        #: Collections of the young generations `run` made (CPython's own are not counted).
        self.young_collections = 0
        #: Resident bytes right after the last audit (or the start); None: not known here.
        self.resident_after = self.resident()
        #: Objects frozen right after the last audit (or the start): counted then, never on a
        #: scrape (counting walks them all).
        self.frozen_after = 0
        self.audits = 0
        #: Unreachable objects the audits found: what reference cycles kept among frozen ones.
        self.found = 0
        #: Seconds the audits took, all together.
        self.audit_seconds = 0.0
        self._last_audit = 0.0

    @staticmethod
    def resident() -> int | None:
        """The process's resident memory, or None where ``/proc`` is not there to say."""
        try:
            with open(STATM, "rb") as statm:
                return int(statm.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            return None

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
        if now - self._last_audit < self.interval:
            return False
        resident, before = self.resident(), self.resident_after
        return resident is None or before is None or resident >= before * self.growth

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
        self.frozen_after = gc.get_freeze_count()
        self.resident_after = self.resident()
        self._last_audit = now
        log.info(
            "heap audit: %d unreachable freed, %d kept, %.3f s", found, self.frozen_after, took
        )
        return found

    def start(self, now: float) -> None:
        """Collect and freeze what start-up made, then collect at `GC_THRESHOLDS`."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.frozen_after = gc.get_freeze_count()
        self.resident_after = self.resident()
        self._last_audit = now

    def collect_young(self) -> int:
        """Collect the two young generations; the callback freezes what survives."""
        self.young_collections += 1
        return gc.collect(1)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start (see `start`), then collect the young generations every `young_every` and audit
        when due (looked at every `check_every`), until cancelled."""
        self.start(trio.current_time())
        next_check = trio.current_time() + self.check_every
        with self.installed():
            task_status.started()
            while True:
                await trio.sleep(self.young_every)
                self.collect_young()
                now = trio.current_time()
                if now >= next_check:
                    next_check = now + self.check_every
                    if self.due(now):
                        self.audit(now)
