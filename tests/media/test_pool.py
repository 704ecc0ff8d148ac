"""Media worker processes: placement, media through a child, supervision, a hostile pipe.

Real time throughout: the workers are child processes, whose start, death and answers come
through real pipes and sockets, which Trio's virtual clock cannot move (it would jump past them).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import msgpack
import pytest
import trio

from media.control import MAX_FRAME, FrameReader, Refused, encode
from media.pool import PEER_CLOSED_WORKER_DIED, MediaPool
from media.worker import MediaError, MediaEvent, PeerClosed, PeerConnected, WorkerConfig
from tests.media.fakepeer import FakePeer

WORKERS = 2
RESTART_DEADLINE = 15.0
POLL = 0.05
CHILD_TIMEOUT = 15.0


class RecordingPool(MediaPool):
    events: list[MediaEvent]


@pytest.fixture
async def pool() -> AsyncIterator[RecordingPool]:
    events: list[MediaEvent] = []
    p = RecordingPool(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        workers=WORKERS,
        on_event=events.append,
    )
    p.events = events
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        yield p
        nursery.cancel_scope.cancel()


async def connected_pair(pool: MediaPool, call_id: str) -> tuple[FakePeer, FakePeer]:
    a, b = FakePeer(), FakePeer()
    await a.connect(pool, call_id, "a")  # type: ignore[arg-type]
    await b.connect(pool, call_id, "b")  # type: ignore[arg-type]
    return a, b


async def exchange(a: FakePeer, b: FakePeer, pool: MediaPool, call_id: str) -> None:
    """a's video reaches b in b's slot 0 with the server's own SSRC for that slot."""
    assert b.answer is not None
    slot_ssrc = b.answer.slot_ssrcs[(0, "video")]
    await wait_until(lambda: pool.slots(call_id, "b") == {0: "a"}, 5, "b receives a")
    for _ in range(20):
        await a.send_media(1)
        try:
            plain = await b.receive_media(slot_ssrc, timeout=0.25)
        except trio.TooSlowError:
            continue
        assert struct.unpack_from("!I", plain, 8)[0] == slot_ssrc
        return
    raise AssertionError("no media forwarded through the worker process")


async def wait_until(predicate: Callable[[], bool], deadline: float, what: str) -> None:
    for _ in range(int(deadline / POLL) + 1):
        if predicate():
            return
        await trio.sleep(POLL)
    raise AssertionError(f"not within {deadline} s: {what}")


def all_exited(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie still answers kill(0); its state letter says it has exited.
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1][0] != "Z":
                return False
    return True


async def test_calls_spread_over_workers_and_peers_of_a_call_share_one(
    pool: RecordingPool,
) -> None:
    assert len(set(pool.ports)) == WORKERS and all(pool.ports)
    pids = pool.worker_pids()
    assert len({p for p in pids if p}) == WORKERS and os.getpid() not in pids
    a, b = await connected_pair(pool, "call-1")
    c, d = await connected_pair(pool, "call-2")
    try:
        first, second = pool.placement("call-1"), pool.placement("call-2")
        assert first is not None and second is not None and first != second
        # Each answer names the port of the worker its call was placed on.
        assert a.server[1] == b.server[1] == pool.ports[first]
        assert c.server[1] == d.server[1] == pool.ports[second]
        await exchange(a, b, pool, "call-1")
        await exchange(c, d, pool, "call-2")
        await wait_until(lambda: pool.peer_state("call-1", "a") == "connected", 5, "connected")
        assert PeerConnected("call-1", "a") in pool.events
        # The stats poll runs every second; both workers forwarded something.
        await wait_until(
            lambda: all(s.get("forwarded", 0) > 0 for s in pool.worker_stats().values()),
            5,
            "both workers report forwarded packets",
        )
        total = pool.stats()
        assert total["forwarded"] == sum(s["forwarded"] for s in pool.worker_stats().values())
        assert total["workers_up"] == WORKERS and total["calls"] == 2
        # Closing every peer of a call forgets its placement.
        pool.close_peer("call-1", "a")
        assert pool.placement("call-1") == first
        pool.close_peer("call-1", "b")
        assert pool.placement("call-1") is None and pool.peers("call-1") == []
        pool.close_call("call-2")
        assert pool.placement("call-2") is None and pool.slots("call-2", "d") == {}
    finally:
        for peer in (a, b, c, d):
            peer.close()


async def test_bad_offer_is_refused_and_leaves_no_placement(pool: RecordingPool) -> None:
    with pytest.raises(MediaError):
        await pool.open_peer("call-bad", "x", "v=0\r\nnot an offer\r\n")
    assert pool.placement("call-bad") is None


async def test_a_killed_worker_closes_its_peers_restarts_and_takes_new_calls(
    pool: RecordingPool,
) -> None:
    a, b = await connected_pair(pool, "call-k")
    other_a, other_b = await connected_pair(pool, "call-other")
    try:
        index = pool.placement("call-k")
        assert index is not None
        victim = pool.worker_pids()[index]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        died = {
            PeerClosed("call-k", "a", PEER_CLOSED_WORKER_DIED),
            PeerClosed("call-k", "b", PEER_CLOSED_WORKER_DIED),
        }
        await wait_until(
            lambda: {e for e in pool.events if isinstance(e, PeerClosed)} == died,
            RESTART_DEADLINE,
            "PeerClosed for the killed worker's peers",
        )
        await wait_until(
            lambda: pool.worker_pids()[index] not in (None, victim),
            RESTART_DEADLINE,
            "the worker restarted",
        )
        assert pool.placement("call-k") is None
        assert pool.worker_stats()[str(index)]["restarts"] == 1
        # The other call never noticed.
        await exchange(other_a, other_b, pool, "call-other")
        # The participants come back (a new offer each) and the call works again.
        a2, b2 = await connected_pair(pool, "call-k")
        try:
            await exchange(a2, b2, pool, "call-k")
        finally:
            a2.close()
            b2.close()
    finally:
        for peer in (a, b, other_a, other_b):
            peer.close()


async def test_an_open_answered_after_a_close_does_not_bring_the_peer_back(
    pool: RecordingPool,
) -> None:
    a, b = await connected_pair(pool, "call-race")
    late = FakePeer()
    try:
        index = pool.placement("call-race")
        assert index is not None
        pid = pool.worker_pids()[index]
        assert pid is not None
        answers: list[str] = []
        os.kill(pid, signal.SIGSTOP)  # the worker answers nothing until SIGCONT
        try:
            async with trio.open_nursery() as nursery:

                async def open_late() -> None:
                    late.bind()
                    answers.append(await pool.open_peer("call-race", "late", late.offer(2)))

                nursery.start_soon(open_late)
                await trio.sleep(0.2)  # real: the open must be on the child's pipe, unanswered
                pool.close_peer("call-race", "late")  # sent after the open, before its answer
                pool.close_peer("call-race", "a")
                pool.close_peer("call-race", "b")
                assert pool.placement("call-race") == index  # an open is still under way
                os.kill(pid, signal.SIGCONT)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert answers and "a=ice-lite" in answers[0]
        assert pool.peers("call-race") == [] and pool.slots("call-race", "late") == {}
        assert pool.placement("call-race") is None
        stats = await pool.refresh_stats()
        assert stats[str(index)]["peers"] == 0  # the worker agrees: the close won there too
    finally:
        for peer in (a, b, late):
            peer.close()


async def test_a_stuck_worker_is_restarted_and_its_peers_closed() -> None:
    events: list[MediaEvent] = []
    pool = MediaPool(
        WorkerConfig(bind_address="127.0.0.1"), workers=1, on_event=events.append, health_timeout=1
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        a, b = await connected_pair(pool, "call-stuck")
        try:
            stuck = pool.worker_pids()[0]
            assert stuck is not None
            os.kill(stuck, signal.SIGSTOP)
            await wait_until(
                lambda: PeerClosed("call-stuck", "a", PEER_CLOSED_WORKER_DIED) in events,
                RESTART_DEADLINE,
                "the stuck worker's peers are closed",
            )
            await wait_until(
                lambda: pool.worker_pids()[0] not in (None, stuck),
                RESTART_DEADLINE,
                "a new worker runs",
            )
            assert all_exited([stuck])  # killed, not left stopped
            a2, b2 = await connected_pair(pool, "call-stuck")
            await exchange(a2, b2, pool, "call-stuck")
            a2.close()
            b2.close()
        finally:
            a.close()
            b.close()
            nursery.cancel_scope.cancel()


async def test_cancelling_the_pool_leaves_no_worker_process() -> None:
    pool = MediaPool(WorkerConfig(bind_address="127.0.0.1"), workers=WORKERS)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        pids = [p for p in pool.worker_pids() if p is not None]
        assert len(pids) == WORKERS
        nursery.cancel_scope.cancel()
    assert all_exited(pids)


CONTROL_PLANE = """
import sys, trio
from media.pool import MediaPool
from media.worker import WorkerConfig

async def main():
    pool = MediaPool(WorkerConfig(bind_address="127.0.0.1"), workers=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        print(*pool.worker_pids(), flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_a_killed_control_plane_leaves_no_orphan_worker() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CONTROL_PLANE], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(CHILD_TIMEOUT * 2):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1024)
                assert chunk, "the control plane exited before its workers started"
                line += chunk
        pids = [int(p) for p in line.split()]
        assert len(pids) == WORKERS
        process.kill()  # no cleanup code runs: only the closed pipes tell the workers
        await wait_until(lambda: all_exited(pids), CHILD_TIMEOUT, "orphaned workers exit")
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(CHILD_TIMEOUT):
            await process.wait()


async def test_a_worker_that_cannot_bind_fails_the_start() -> None:
    taken = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        pool = MediaPool(WorkerConfig(bind_address="127.0.0.1", port=port), workers=1)
        with pytest.raises(MediaError, match=r"failed to start|exited before"):
            with trio.fail_after(CHILD_TIMEOUT):
                await pool.run()
    finally:
        taken.close()


# ---- the control pipe, spoken to directly -------------------------------------------------------


class Child:
    """A `python -m media.process` spoken to over its pipes, as the pool does."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.reader = FrameReader()
        self.frames: list[dict[str, object] | Refused] = []

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def next(self) -> dict[str, object]:
        assert self.process.stdout is not None
        with trio.fail_after(CHILD_TIMEOUT):
            while not self.frames:
                chunk = await self.process.stdout.receive_some(65536)
                assert chunk, "the worker process exited"
                self.frames += self.reader.feed(chunk)
        item = self.frames.pop(0)
        assert not isinstance(item, Refused), item
        return item

    async def reply_to(self, rid: int) -> dict[str, object]:
        while True:
            frame = await self.next()
            if frame.get("id") == rid:
                return frame


@pytest.fixture
async def child() -> AsyncIterator[Child]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "media.process", "--bind", "127.0.0.1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        yield Child(process)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(CHILD_TIMEOUT):
            await process.wait()


async def test_garbage_on_the_control_pipe_is_refused_and_counted(child: Child) -> None:
    ready = await child.next()
    assert ready["ev"] == "ready" and isinstance(ready["port"], int) and ready["port"] > 0
    hostile = [
        struct.pack("!I", 5) + b"\xc1\xc1\xc1\xc1\xc1",  # never-used msgpack byte
        encode({"op": "nonsense", "id": 1}),
        struct.pack("!I", 3) + msgpack.packb([1, 2]),  # not a map
        encode({"op": "open", "id": 2, "call": 7, "peer": "p", "sdp": "x"}),  # wrong type
        encode({"op": "receiving", "call": "c", "peer": "p", "on": "yes"}),
        encode({"op": "stats", "id": -4}),
        encode({"op": "open", "id": 3, "call": "c" * 10_000, "peer": "p", "sdp": "x"}),
        struct.pack("!I", MAX_FRAME + 1) + bytes(MAX_FRAME + 1),  # skipped, never buffered
    ]
    for frame in hostile:
        await child.send(frame)
    # An honest offer that fails parsing is an error reply, not a refusal.
    await child.send(encode({"op": "open", "id": 4, "call": "c", "peer": "p", "sdp": "v=0"}))
    failed = await child.reply_to(4)
    assert failed["ok"] is False and failed["present"] is False
    await child.send(encode({"op": "stats", "id": 5}))
    stats = (await child.reply_to(5))["stats"]
    assert isinstance(stats, dict)
    assert stats["control_refused"] == len(hostile)
    assert stats["peers"] == 0 and stats["internal_errors"] == 0
    assert child.process.returncode is None


async def test_the_worker_process_exits_when_its_pipe_closes(child: Child) -> None:
    assert (await child.next())["ev"] == "ready"
    assert child.process.stdin is not None
    await child.process.stdin.aclose()
    with trio.fail_after(CHILD_TIMEOUT):
        assert await child.process.wait() == 0


def test_frame_reader_splits_joins_and_skips() -> None:
    frames = encode({"op": "stats", "id": 1}) + encode({"op": "shutdown"})
    reader = FrameReader(max_frame=64)
    out = []
    for byte in frames:  # one byte at a time
        out += reader.feed(bytes([byte]))
    assert out == [{"op": "stats", "id": 1}, {"op": "shutdown"}]
    oversized = struct.pack("!I", 100) + bytes(100)
    assert reader.feed(oversized[:30]) == [Refused("frame_too_long")]
    assert reader.feed(oversized[30:] + frames) == [{"op": "stats", "id": 1}, {"op": "shutdown"}]
