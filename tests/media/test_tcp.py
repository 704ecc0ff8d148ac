"""ICE-TCP on a real worker and real sockets: a peer connects over TCP alone (STUN, DTLS, SRTP in
RFC 4571 frames) and trades media with a UDP peer; garbage, oversized frames, a slow reader and a
silent connection are closed alone while everyone else's media keeps flowing."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator

import pytest
import trio

from media.pool import MediaPool
from media.tcp import TcpServer, key_for, real_address
from media.tcpframing import MAX_FRAME, Deframer, frame
from media.worker import WorkerConfig
from tests.media.conftest import RecordingWorker
from tests.media.fakepeer import FakePeer
from tests.media.test_hostile import assert_flows, eventually

CALL = "call-tcp"
_TCP_CANDIDATE = re.compile(r"a=candidate:\S+ 1 tcp \d+ (\S+) (\d+) typ host tcptype passive")


class TcpSock:
    """What MediaPeer needs of its socket (sendto, recvfrom), over one ICE-TCP connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.deframer = Deframer()
        self.packets: deque[bytes] = deque()

    async def sendto(self, data: bytes, _addr: object) -> int:
        await self.stream.send_all(frame(data))
        return len(data)

    async def recvfrom(self, _size: int) -> tuple[bytes, tuple[str, int]]:
        while not self.packets:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("the worker closed the ICE-TCP connection")
            self.packets.extend(self.deframer.feed(chunk))
        return self.packets.popleft(), ("tcp", 0)

    def close(self) -> None:
        """MediaPeer closes its socket; the stream is closed by its owner (the fixture)."""


class TcpPeer(FakePeer):
    """A fake browser that uses only the answer's passive TCP candidate."""

    stream: trio.SocketStream | None = None

    async def open_tcp(self, worker: RecordingWorker, peer_id: str) -> None:
        answer_sdp = await worker.open_peer(CALL, peer_id, self.offer(2))
        self.accept(answer_sdp)
        found = _TCP_CANDIDATE.search(answer_sdp)
        assert found is not None, answer_sdp
        self.stream = await trio.open_tcp_stream(found[1], int(found[2]))
        self.sock = TcpSock(self.stream)  # type: ignore[assignment]
        await self.establish()


@pytest.fixture
async def tcp_worker() -> AsyncIterator[RecordingWorker]:
    w = RecordingWorker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1", tcp_port=0)
    )
    w.events = []
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()


@pytest.fixture
async def mixed(tcp_worker: RecordingWorker) -> AsyncIterator[tuple[FakePeer, TcpPeer]]:
    """A UDP peer and a TCP-only peer, connected in one call."""
    udp, tcp = FakePeer(), TcpPeer()
    try:
        await udp.connect(tcp_worker, CALL, "udp")
        await tcp.open_tcp(tcp_worker, "tcp")
        yield udp, tcp
    finally:
        udp.close()
        tcp.close()
        if tcp.stream is not None:
            await tcp.stream.aclose()


def test_synthetic_keys_never_look_like_udp_addresses() -> None:
    key = key_for("127.0.0.1", 5000)
    assert key != ("127.0.0.1", 5000)
    assert real_address(key) == ("127.0.0.1", 5000)
    assert real_address(("127.0.0.1", 5000)) == ("127.0.0.1", 5000)


async def test_answer_offers_a_passive_tcp_candidate_below_udp(
    tcp_worker: RecordingWorker,
) -> None:
    answer = await tcp_worker.open_peer(CALL, "p", FakePeer().offer(1))
    udp = re.search(r"a=candidate:\S+ 1 udp (\d+) ", answer)
    tcp = re.search(r"a=candidate:\S+ 1 tcp (\d+) \S+ (\d+) typ host tcptype passive", answer)
    assert udp and tcp, answer
    assert int(tcp[1]) < int(udp[1])  # the browser prefers UDP when both work
    assert int(tcp[2]) == tcp_worker.tcp_port != tcp_worker.port


async def test_no_tcp_candidate_when_ice_tcp_is_off(worker: RecordingWorker) -> None:
    answer = await worker.open_peer(CALL, "p", FakePeer().offer(1))
    assert " tcp " not in answer and "tcp_connections" not in worker.stats()


async def test_udp_candidates_can_be_left_out_for_tests() -> None:
    w = RecordingWorker(WorkerConfig(bind_address="127.0.0.1", tcp_port=0, udp_candidates=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        answer = await w.open_peer(CALL, "p", FakePeer().offer(1))
        nursery.cancel_scope.cancel()
    assert " udp " not in answer and "tcptype passive" in answer


async def test_a_tcp_only_peer_trades_media_with_a_udp_peer(
    tcp_worker: RecordingWorker, mixed: tuple[FakePeer, TcpPeer]
) -> None:
    udp, tcp = mixed
    await assert_flows(udp, tcp)
    await assert_flows(tcp, udp)
    [transport] = [t for t in tcp_worker._transports.values() if t.peer_id == "tcp"]
    assert transport.addr is not None and transport.addr[0] == "tcp:127.0.0.1"
    stats = tcp_worker.stats()
    assert stats["tcp_connections"] == 1 and stats["tcp_frames_in"] > 0
    assert stats["tcp_frames_out"] > 0 and stats["internal_errors"] == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00",  # an empty frame
        (MAX_FRAME + 1).to_bytes(2, "big") + bytes(64),  # oversized
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # someone else's protocol: a 18245-byte "frame"
    ],
    ids=["empty", "oversized", "http"],
)
async def test_garbage_closes_only_that_connection(
    tcp_worker: RecordingWorker, mixed: tuple[FakePeer, TcpPeer], garbage: bytes
) -> None:
    udp, tcp = mixed
    stranger = await trio.open_tcp_stream("127.0.0.1", tcp_worker.tcp_port)
    async with stranger:
        await stranger.send_all(garbage)
        with trio.fail_after(2):
            assert await stranger.receive_some(100) == b""  # closed by the worker
    assert tcp_worker.stats()["tcp_closed_garbage"] == 1
    await assert_flows(udp, tcp)
    await assert_flows(tcp, udp)
    assert tcp_worker.stats()["tcp_connections"] == 1


async def test_a_frame_from_an_unknown_peer_is_dropped_like_a_udp_datagram(
    tcp_worker: RecordingWorker, mixed: tuple[FakePeer, TcpPeer]
) -> None:
    udp, tcp = mixed
    before = tcp_worker.stats()["dropped_unbound"]
    stranger = await trio.open_tcp_stream("127.0.0.1", tcp_worker.tcp_port)
    async with stranger:
        await stranger.send_all(frame(b"\x80\x60" + bytes(100)))  # RTP, never authenticated
        await eventually(lambda: tcp_worker.stats()["dropped_unbound"] > before)
    await assert_flows(udp, tcp)


# ---- the listener alone, with an echo service: slow readers and silent connections -------------


class Echo:
    """A TcpServer whose every packet is answered with `reply_size` bytes to its sender."""

    def __init__(self, reply_size: int, **limits: float) -> None:
        self.reply_size = reply_size
        self.server = TcpServer(
            self.on_packet,
            self.udp_sendto,
            is_bound=lambda key: True,
            **limits,  # type: ignore[arg-type]
        )
        self.errors = 0

    def on_packet(self, data: bytes, key: tuple[str, int]) -> None:
        try:
            for _ in range(4):
                self.server.sendto(bytes([data[0]]) * self.reply_size, key)
        except OSError:
            self.errors += 1

    def udp_sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        raise AssertionError(f"no UDP here: {addr}")


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    e = Echo(MAX_FRAME, max_pending=64 * 1024, write_timeout=1.0, idle_timeout=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(e.server.run, "127.0.0.1", 0)
        yield e
        nursery.cancel_scope.cancel()


async def read_frames(stream: trio.SocketStream, count: int) -> list[bytes]:
    deframer, out = Deframer(), list[bytes]()
    with trio.fail_after(5):
        while len(out) < count:
            chunk = await stream.receive_some(65536)
            assert chunk, "closed"
            out += deframer.feed(chunk)
    return out


async def test_a_slow_reader_is_dropped_and_a_fast_one_is_not_delayed(echo: Echo) -> None:
    slow = await trio.open_tcp_stream("127.0.0.1", echo.server.port)
    fast = await trio.open_tcp_stream("127.0.0.1", echo.server.port)
    async with slow, fast:
        # slow asks for megabytes and never reads: its queue fills up past 64 KiB.
        for _ in range(2000):
            try:
                await slow.send_all(frame(b"s"))
            except trio.BrokenResourceError:
                break  # already dropped
            if echo.server.counters["tcp_closed_slow"]:
                break
        await eventually(lambda: echo.server.counters["tcp_closed_slow"] == 1)
        assert echo.errors >= 1  # the send that overflowed was refused, synchronously
        start = trio.current_time()
        await fast.send_all(frame(b"f"))
        replies = await read_frames(fast, 4)
        assert all(r == b"f" * MAX_FRAME for r in replies)
        assert trio.current_time() - start < 1.0
        assert len(echo.server.connections) == 1


async def test_a_silent_connection_is_closed_after_the_idle_timeout(echo: Echo) -> None:
    quiet = await trio.open_tcp_stream("127.0.0.1", echo.server.port)
    async with quiet:
        with trio.fail_after(3):
            assert await quiet.receive_some(10) == b""
    assert echo.server.counters["tcp_closed_idle"] == 1


async def test_an_unauthenticated_connection_is_closed_and_full_listener_refuses() -> None:
    server = TcpServer(
        lambda data, key: None,
        lambda data, addr: 0,
        is_bound=lambda key: False,
        auth_timeout=0.3,
        max_connections=1,
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run, "127.0.0.1", 0)
        first = await trio.open_tcp_stream("127.0.0.1", port)
        await eventually(lambda: len(server.connections) == 1)
        second = await trio.open_tcp_stream("127.0.0.1", port)
        async with first, second:
            with trio.fail_after(2):
                assert await second.receive_some(10) == b""  # refused: one is the limit
                assert await first.receive_some(10) == b""  # never authenticated
        assert server.counters["tcp_refused_full"] == 1
        assert server.counters["tcp_closed_unbound"] == 1
        nursery.cancel_scope.cancel()


async def test_sending_to_a_closed_connection_never_reaches_the_udp_socket() -> None:
    server = TcpServer(lambda data, key: None, lambda data, addr: 0)
    with pytest.raises(OSError):
        server.sendto(b"x", key_for("127.0.0.1", 1))
    assert server.sendto(b"x", ("127.0.0.1", 1)) == 0


async def test_pool_workers_each_listen_on_their_own_tcp_port() -> None:
    """Through worker processes: --tcp-port reaches each child, and a TCP-only peer connects."""
    pool = MediaPool(WorkerConfig(bind_address="127.0.0.1", tcp_port=0), workers=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        ports = set()
        for call in ("call-p1", "call-p2", "call-p3", "call-p4"):
            answer = await pool.open_peer(call, "p", FakePeer().offer(1))
            found = _TCP_CANDIDATE.search(answer)
            assert found is not None, answer
            ports.add(int(found[2]))
        assert len(ports) == 2 and not ports & set(pool.ports)  # one each, not the UDP ports
        peer = TcpPeer()
        try:
            await peer.open_tcp(pool, "tcp")  # type: ignore[arg-type]
            await eventually(lambda: pool.peer_state(CALL, "tcp") == "connected", 5.0)
        finally:
            peer.close()
            if peer.stream is not None:
                await peer.stream.aclose()
        nursery.cancel_scope.cancel()
