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
    assert heap.frozen_after > 0 and heap.frozen_after == gc.get_freeze_count()
    assert heap.resident_after is not None and heap.resident_after > 1_000_000  # Linux: /proc


def test_survivors_of_a_middle_collection_are_frozen_not_of_a_young_one(process_gc: None) -> None:
    heap = FrozenHeap()
    heap.start(0.0)
    kept = [Cycle() for _ in range(100)]
    with heap.installed():
        frozen = gc.get_freeze_count()
        gc.collect(0)
        assert gc.get_freeze_count() == frozen  # a young collection's may still die young
        gc.collect(1)
        assert gc.get_freeze_count() >= frozen + len(kept)


def test_an_audit_frees_a_cycle_that_died_frozen(process_gc: None) -> None:
    heap = FrozenHeap()
    heap.start(0.0)
    dead = Cycle()
    gc.freeze()
    del dead
    assert gc.collect() == 0  # frozen: no collection sees it
    assert heap.audit(5.0) >= 1
    assert heap.audits == 1 and heap.found >= 1 and heap.audit_seconds > 0
    assert heap.frozen_after > 0


class Measured(FrozenHeap):
    """A heap whose resident memory the test sets."""

    size: int | None = 0

    def resident(self) -> int | None:
        return self.size


def test_an_audit_is_due_after_the_interval_when_memory_grew() -> None:
    heap = Measured(growth=1.25, interval=3600.0)
    heap.resident_after, heap.size = 400, 600
    assert not heap.due(10.0)  # grown, but within the interval of the start
    assert heap.due(3600.0)
    heap.size = 450
    assert not heap.due(7200.0)  # not grown by a quarter: never, however long ago
    heap.size = None
    assert heap.due(7200.0)  # no /proc to say: the interval alone


async def test_run_audits_when_due(
    process_gc: None, autojump_clock: trio.testing.MockClock
) -> None:
    heap = Measured(check_every=10.0, interval=100.0)
    heap.size = 1_000
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.run)
        assert heap.audits == 0 and heap.resident_after == 1_000
        heap.size = 2_000
        await trio.sleep(95)
        assert heap.audits == 0  # grown, but within the interval
        await trio.sleep(10)
        assert heap.audits == 1 and heap.resident_after == 2_000
        await trio.sleep(200)
        assert heap.audits == 1  # not grown since
        nursery.cancel_scope.cancel()


async def test_run_collects_the_young_generations_every_second_and_freezes_survivors(
    process_gc: None, autojump_clock: trio.testing.MockClock
) -> None:
    """Under churn CPython's own young collections can wait far past their threshold (a frozen
    object freed counts against it), and a full collection then walks everything young: `run`
    collects the young generations every `young_every`, freezing what survived."""
    heap = Measured(check_every=10.0, interval=100.0, young_every=1.0)
    heap.size = 1_000
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.run)
        frozen = gc.get_freeze_count()
        kept = [Cycle() for _ in range(500)]  # young survivors
        await trio.sleep(1.5)
        assert heap.young_collections == 1
        assert gc.get_freeze_count() >= frozen + len(kept)
        await trio.sleep(10)
        assert heap.young_collections == 11
        nursery.cancel_scope.cancel()
