"""The Chromium journey of test_browser.py, with the SFU in a media worker process of a pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from media.pool import MediaPool
from media.worker import WorkerConfig
from tests.media.test_browser import LATE_JOIN_DEADLINE, browser_scenario

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def pool() -> AsyncIterator[MediaPool]:
    p = MediaPool(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"), workers=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        yield p
        nursery.cancel_scope.cancel()


async def test_chromium_pages_call_through_a_worker_process(
    pool: MediaPool, tmp_path: Path
) -> None:
    timings = await trio.to_thread.run_sync(browser_scenario, pool, tmp_path)
    assert timings["late_join_video"] < LATE_JOIN_DEADLINE, timings
    stats = await pool.refresh_stats()
    carrying = [s for s in stats.values() if s["forwarded"] > 0]
    assert len(carrying) == 1, stats  # one call: one worker forwarded everything
    assert carrying[0]["dropped_srtp_auth"] == 0 and carrying[0]["internal_errors"] == 0
    print("browser timings through a worker process", timings)
