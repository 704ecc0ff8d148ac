"""The slow-step instrument names the task that held the loop, and only that one."""

from __future__ import annotations

import gc
import logging
import time

import pytest
import trio

from waitroom.cli import slow_step_ms
from waitroom.slow_steps import SlowSteps

#: A step this long is slow against the threshold below; the quick task's steps are far under it.
HOLD_S = 0.06
THRESHOLD_S = 0.03


def test_a_step_that_holds_the_loop_is_logged_with_its_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def hog() -> None:
        until = time.perf_counter() + HOLD_S
        while time.perf_counter() < until:  # a step that never yields: what this is for
            pass
        gc.collect()  # inside the same step: counted as its GC share

    async def polite() -> None:
        for _ in range(20):
            await trio.lowlevel.checkpoint()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hog, name="the hog")
            nursery.start_soon(polite, name="the polite one")

    steps = SlowSteps(THRESHOLD_S)
    with caplog.at_level(logging.WARNING, logger="waitroom.slow_steps"):
        trio.run(main, instruments=[steps])
    assert steps.by_task == {"the hog": 1}
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("slow step: task the hog ran ")
    assert "without yielding (GC " in line and line.endswith(", generation 2)")  # gc.collect()
    assert gc.callbacks.count(steps._gc) == 0  # removed when the run ends


def test_the_threshold_comes_from_the_environment_or_is_off() -> None:
    assert slow_step_ms({}) == 0.0
    assert slow_step_ms({"WAITROOM_SLOW_STEP_MS": " 50 "}) == 50.0
    for bad in ("fast", "0", "-5", "1e9"):
        with pytest.raises(SystemExit, match="WAITROOM_SLOW_STEP_MS"):
            slow_step_ms({"WAITROOM_SLOW_STEP_MS": bad})
