"""The serving process's GC: the frozen heap and its audits, and the figures ``/metrics`` exports
(bench/README.md)."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from runtime.registry import Registry
from waitroom.frozen_heap import GC_THRESHOLDS, FrozenHeap
from waitroom.metrics import GcPauses, LoopLag, Metrics


@pytest.fixture
def process_gc() -> Iterator[None]:
    """The test process's GC as it was: FrozenHeap changes process-wide settings."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_gc_pauses_and_the_heap_are_exported(process_gc: None) -> None:
    pauses = GcPauses()
    heap = FrozenHeap()
    with pauses.installed():
        gc.collect()
        assert len(pauses.recent) == 1
        assert pauses.total > 0
        heap.start(0.0)
        heap.audit(1.0)
        metrics = Metrics(Registry(), lambda: (0, 0), LoopLag(), gc_pauses=pauses, heap=heap)
        text = metrics.render()
    gc.collect()
    assert len(pauses.recent) == 3  # uninstalled: no longer called (start and audit collected)
    assert f"waitroom_gc_pause_max_seconds {pauses.recent_max!r}" in text
    assert 'python_gc_collections_total{generation="2"} ' in text
    frozen = re.search(r"^waitroom_gc_frozen_objects (\S+)$", text, re.MULTILINE)
    assert frozen is not None and float(frozen.group(1)) > 0
    assert "waitroom_gc_audits_total 1.0" in text
    assert "waitroom_gc_audit_freed_objects_total" in text


def test_start_freezes_start_up_objects_and_raises_thresholds(process_gc: None) -> None:
    heap = FrozenHeap()
    heap.start(0.0)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert heap.frozen() > 0 and heap.after_audit == heap.frozen()


def test_survivors_of_a_middle_collection_are_frozen_not_of_a_young_one(process_gc: None) -> None:
    heap = FrozenHeap()
    heap.start(0.0)
    kept = [Cycle() for _ in range(100)]
    with heap.installed():
        frozen = heap.frozen()
        gc.collect(0)
        assert heap.frozen() == frozen  # a young collection's survivors may still die young
        gc.collect(1)
        assert heap.frozen() >= frozen + len(kept)
    assert len(kept) == 100


def test_an_audit_frees_a_cycle_that_died_frozen(process_gc: None) -> None:
    heap = FrozenHeap()
    heap.start(0.0)
    dead = Cycle()
    gc.freeze()
    del dead
    assert gc.collect() == 0  # frozen: no collection sees it
    assert heap.audit(5.0) >= 1
    assert heap.audits == 1 and heap.found >= 1 and heap.audit_seconds > 0
    assert heap.after_audit > 0


class Counted(FrozenHeap):
    """A heap whose frozen count the test sets."""

    count = 0

    def frozen(self) -> int:
        return self.count


def test_an_audit_is_due_when_grown_and_small_or_after_the_interval() -> None:
    heap = Counted(growth=1.25, small=1_000, interval=3600.0)
    heap.after_audit, heap.count = 400, 450
    assert not heap.due(10.0)  # not grown enough
    heap.count = 500
    assert heap.due(10.0)  # grown by a quarter, and small
    heap.after_audit, heap.count = 2_000, 2_600
    assert not heap.due(10.0)  # grown but large: waits for the interval
    assert heap.due(3600.0)
    heap.count = 2_400
    assert not heap.due(7200.0)  # not grown: never, however long ago


async def test_run_audits_when_due(
    process_gc: None, autojump_clock: trio.testing.MockClock
) -> None:
    heap = FrozenHeap(check_every=10.0, interval=100.0, small=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.run)
        assert heap.audits == 0
        await trio.sleep(95)
        assert heap.audits == 0  # grown or not, large (small=0) and within the interval
        heap.after_audit = 0  # as if everything frozen had come since
        await trio.sleep(20)
        assert heap.audits == 1
        nursery.cancel_scope.cancel()
