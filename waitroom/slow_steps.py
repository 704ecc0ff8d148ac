"""Which task held the event loop: an opt-in Trio instrument for finding the cause of a stall.

``/metrics`` says *that* the loop stalled (``waitroom_loop_lag_seconds``: how late a sleep woke);
this says *who*. Every task step that runs longer than a threshold without yielding is logged with
the task's name and how much of it was a cyclic-GC collection (a collection runs inside whatever
step allocated last, so a long step of an innocent task can be the collector's). Off unless
``WAITROOM_SLOW_STEP_MS`` is set: it adds two clock reads to every task step.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from typing import Any

import trio

log = logging.getLogger(__name__)


class SlowSteps(trio.abc.Instrument):
    """Logs each task step of at least ``threshold`` seconds; ``by_task`` counts them by name."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.by_task: Counter[str] = Counter()
        self._step_began = 0.0
        self._gc_began = 0.0
        self._gc_in_step = 0.0
        #: The oldest generation collected during the current step (-1: none).
        self._gc_generation = -1

    def before_run(self) -> None:
        gc.callbacks.append(self._gc)

    def after_run(self) -> None:
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self._gc_in_step += time.perf_counter() - self._gc_began
            self._gc_generation = max(self._gc_generation, int(info.get("generation", 0)))

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._gc_in_step = 0.0
        self._gc_generation = -1
        self._step_began = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._step_began
        if took < self.threshold:
            return
        self.by_task[task.name] += 1
        log.warning(
            "slow step: task %s ran %.0f ms without yielding (GC %.0f ms of it%s)",
            task.name,
            took * 1000,
            self._gc_in_step * 1000,
            f", generation {self._gc_generation}" if self._gc_generation >= 0 else "",
        )
