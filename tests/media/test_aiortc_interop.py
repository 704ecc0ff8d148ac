"""aiortc peers, each in its own asyncio process, call each other through the Trio SFU."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from media.worker import PeerClosed
from tests.media.conftest import RecordingWorker

PEER_SCRIPT = Path(__file__).with_name("aiortc_peer.py")
FLOW_DEADLINE = 5.0
LATE_JOIN_DEADLINE = 2.0
PROCESS_EXIT_TIMEOUT = 10.0
POLL = 0.05

pytestmark = pytest.mark.slow


class AiortcPeer:
    """A child process running tests/media/aiortc_peer.py, spoken to over JSON lines."""

    def __init__(self, process: trio.Process, peer_id: str) -> None:
        self.process = process
        self.peer_id = peer_id
        self.latest: dict[str, Any] = {"video": {}, "audio": {}}
        self._buffer = b""

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise EOFError(f"{self.peer_id} exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all((json.dumps(message) + "\n").encode())

    async def follow(self) -> None:
        """Keep `latest` up to date until the process ends."""
        try:
            while True:
                self.latest = await self.read()
        except (EOFError, trio.ClosedResourceError):
            return

    def slot_counts(self, slot: int) -> tuple[int, int]:
        key = str(slot)
        return self.latest["video"].get(key, 0), self.latest["audio"].get(key, 0)

    async def quit(self) -> None:
        with trio.move_on_after(PROCESS_EXIT_TIMEOUT):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.write({"quit": True})
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()


async def start_peer(
    nursery: trio.Nursery, worker: RecordingWorker, call_id: str, peer_id: str
) -> AiortcPeer:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(PEER_SCRIPT), "--slots", "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    peer = AiortcPeer(process, peer_id)
    offer = (await peer.read())["offer"]
    answer = await worker.open_peer(call_id, peer_id, offer)
    await peer.write({"answer": answer})
    nursery.start_soon(peer.follow)
    return peer


async def wait_for(predicate: Any, deadline: float, what: str) -> float:
    """Poll in real time: the peers are aiortc processes, outside Trio's clock."""
    start = trio.current_time()
    for _ in range(int(deadline / POLL) + 1):
        if predicate():
            return trio.current_time() - start
        await trio.sleep(POLL)
    raise AssertionError(f"not within {deadline} s: {what}")


def receives(worker: RecordingWorker, call_id: str, peer: AiortcPeer, others: list[str]) -> bool:
    slots = worker.slots(call_id, peer.peer_id)
    by_peer = {owner: slot for slot, owner in slots.items()}
    return all(o in by_peer and min(peer.slot_counts(by_peer[o])) > 0 for o in others)


async def test_aiortc_processes_exchange_audio_and_video_join_leave_and_late_join(
    worker: RecordingWorker,
) -> None:
    call_id = "call-aiortc"
    peers: list[AiortcPeer] = []
    try:
        async with trio.open_nursery() as nursery:
            a = await start_peer(nursery, worker, call_id, "a")
            b = await start_peer(nursery, worker, call_id, "b")
            peers += [a, b]
            await wait_for(
                lambda: receives(worker, call_id, a, ["b"]) and receives(worker, call_id, b, ["a"]),
                FLOW_DEADLINE,
                "two aiortc peers decode each other",
            )
            c = await start_peer(nursery, worker, call_id, "c")
            peers.append(c)
            await wait_for(
                lambda: all(
                    receives(worker, call_id, p, [o.peer_id for o in (a, b, c) if o is not p])
                    for p in (a, b, c)
                ),
                FLOW_DEADLINE,
                "three aiortc peers decode the two others",
            )

            # b leaves; a and c go on.
            worker.close_peer(call_id, "b")
            await b.quit()
            slot_of_c = {v: k for k, v in worker.slots(call_id, "a").items()}["c"]
            before = a.slot_counts(slot_of_c)
            await trio.sleep(1.0)  # real: aiortc peers are asyncio processes sending in real time
            after = a.slot_counts(slot_of_c)
            assert after[0] > before[0] and after[1] > before[1], (before, after)

            d = await start_peer(nursery, worker, call_id, "d")
            peers.append(d)
            took = await wait_for(
                lambda: receives(worker, call_id, d, ["a", "c"]),
                LATE_JOIN_DEADLINE,
                "late joiner decodes the others",
            )
            assert took < LATE_JOIN_DEADLINE
            for p in peers:
                await p.quit()
            nursery.cancel_scope.cancel()
    finally:
        for p in peers:
            if p.process.returncode is None:
                p.process.kill()
    # Only the goodbyes at the end (close_notify) closed peers on the worker's side.
    closed = {e.reason for e in worker.events if isinstance(e, PeerClosed)}
    assert closed <= {"dtls_closed_by_peer"}, worker.events
    stats = worker.stats()
    assert stats["dropped_srtp_auth"] == 0 and stats["internal_errors"] == 0, stats
