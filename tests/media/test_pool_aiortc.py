"""aiortc peers (asyncio processes) in two calls placed on two media worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from media.pool import MediaPool
from media.worker import MediaEvent, WorkerConfig
from tests.media.test_aiortc_interop import (
    FLOW_DEADLINE,
    AiortcPeer,
    receives,
    start_peer,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def pool() -> AsyncIterator[MediaPool]:
    events: list[MediaEvent] = []
    p = MediaPool(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        workers=2,
        on_event=events.append,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        yield p
        nursery.cancel_scope.cancel()


async def test_two_aiortc_calls_on_two_worker_processes_see_and_hear(pool: MediaPool) -> None:
    peers: list[AiortcPeer] = []
    try:
        async with trio.open_nursery() as nursery:
            for call_id in ("call-x", "call-y"):
                for peer_id in ("a", "b"):
                    peers.append(await start_peer(nursery, pool, call_id, peer_id))  # type: ignore[arg-type]
            assert {pool.placement("call-x"), pool.placement("call-y")} == {0, 1}
            await wait_for(
                lambda: all(
                    receives(pool, call_id, p, ["b" if p.peer_id == "a" else "a"])  # type: ignore[arg-type]
                    for call_id, p in zip(("call-x",) * 2 + ("call-y",) * 2, peers, strict=True)
                ),
                FLOW_DEADLINE,
                "both aiortc pairs decode each other through their own worker process",
            )
            for p in peers:
                await p.quit()
            nursery.cancel_scope.cancel()
    finally:
        for p in peers:
            if p.process.returncode is None:
                p.process.kill()
    stats = pool.worker_stats()
    assert all(s["dropped_srtp_auth"] == 0 and s["internal_errors"] == 0 for s in stats.values())
