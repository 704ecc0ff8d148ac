"""The serving process's GC settings and the GC figures ``/metrics`` exports (bench/README.md)."""

from __future__ import annotations

import gc

from runtime.registry import Registry
from waitroom.metrics import GcPauses, LoopLag, Metrics
from waitroom.server import GC_THRESHOLDS, tune_gc


def test_gc_pauses_are_timed_while_installed_and_exported() -> None:
    pauses = GcPauses()
    with pauses.installed():
        gc.collect()
        assert len(pauses.recent) == 1
        assert pauses.total > 0
        text = Metrics(Registry(), lambda: (0, 0), LoopLag(), gc_pauses=pauses).render()
    gc.collect()
    assert len(pauses.recent) == 1  # uninstalled: no longer called
    assert f"waitroom_gc_pause_max_seconds {pauses.recent_max!r}" in text
    assert 'python_gc_collections_total{generation="2"} ' in text


def test_tune_gc_freezes_start_up_objects_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
