"""Hostile input is dropped or refused and counted; the other peers' media keeps flowing."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing
from aioice import stun

from media.dtls import Certificate
from media.events import MediaEvent, PeerClosed, PeerConnected
from media.worker import CONNECT_TIMEOUT, CONSENT_TIMEOUT, Worker, WorkerConfig
from tests.media.conftest import RecordingWorker
from tests.media.fakepeer import FakePeer
from waitroom.loadtest.pacer import CONSENT_INTERVAL

CALL = "call-hostile"


async def eventually(predicate: Callable[[], bool], seconds: float = 2.0) -> None:
    """Poll for what real sockets bring (real time: the datagrams travel through the kernel)."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
async def pair(worker: RecordingWorker) -> AsyncIterator[tuple[FakePeer, FakePeer]]:
    """Two connected fake browsers in one call; their sockets are closed afterwards."""
    a, b = FakePeer(), FakePeer()
    try:
        await a.connect(worker, CALL, "a")
        await b.connect(worker, CALL, "b")
        yield a, b
    finally:
        a.close()
        b.close()


async def assert_flows(a: FakePeer, b: FakePeer) -> None:
    """a's video reaches b in b's slot 0, rewritten to the SSRC the server announced."""
    assert b.answer is not None
    slot_ssrc = b.answer.slot_ssrcs[(0, "video")]
    await a.send_media(3)
    packet = await b.receive_media(slot_ssrc)
    assert packet[1] & 0x7F == 96


async def test_two_fake_peers_forward_with_rewritten_ssrc(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    await assert_flows(a, b)
    assert [e for e in worker.events if isinstance(e, PeerConnected)]
    assert worker.stats()["forwarded"] >= 1


async def test_garbage_truncated_and_oversized_datagrams_are_counted_and_harmless(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    before = worker.stats()
    junk = [
        b"",
        b"\x00",
        b"\x01\x01\x00",  # truncated STUN
        bytes([0x17]) + os.urandom(5),  # truncated DTLS record
        b"\x80",  # truncated RTP
        bytes([0x80, 0x60]) + os.urandom(7),  # short RTP header
        bytes([0x90]) + os.urandom(11),  # RTP with an extension bit and no extension
        bytes([0xFF]) + os.urandom(200),  # no protocol starts with 0xFF
        os.urandom(60000),  # oversized
    ]
    junk += [os.urandom(n) for n in (1, 13, 100, 1200, 1500)]
    for data in junk:
        await a.sock.sendto(data, a.server)  # from a bound address
        await trio.lowlevel.checkpoint()
    stranger = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await stranger.bind(("127.0.0.1", 0))
    for data in junk:
        await stranger.sendto(data, a.server)  # from an unknown address
    stranger.close()
    await assert_flows(a, b)
    after = worker.stats()
    dropped = sum(
        after[k] - before[k]
        for k in after
        if k.startswith("dropped_") or k in ("stun_bad_request", "stun_unauthorized")
    )
    assert dropped >= len(junk), (before, after)
    assert after["internal_errors"] == 0
    assert worker.peer_state(CALL, "a") == "connected"


async def test_stun_with_bad_integrity_gets_401_and_missing_integrity_gets_400(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    response = await a.check(password="not-the-password")
    assert response.message_class == stun.Class.ERROR
    assert response.attributes["ERROR-CODE"][0] == 401
    assert "MESSAGE-INTEGRITY" not in response.attributes

    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = "nobody:x"
    request.add_fingerprint()
    await a.sock.sendto(bytes(request), a.server)
    response = stun.parse_message(await a.recv_kind(range(0, 4)))
    assert response.attributes["ERROR-CODE"][0] == 400

    unknown = a.binding_request(username="unknown:user")
    await a.sock.sendto(unknown, a.server)
    response = stun.parse_message(await a.recv_kind(range(0, 4)))
    assert response.attributes["ERROR-CODE"][0] == 401

    corrupt = bytearray(a.binding_request())
    corrupt[-1] ^= 0xFF  # FINGERPRINT no longer matches: dropped without an answer
    await a.sock.sendto(bytes(corrupt), a.server)
    stats = worker.stats()
    assert stats["stun_unauthorized"] == 2 and stats["stun_bad_request"] == 1
    await assert_flows(a, b)
    assert worker.stats()["dropped_malformed"] >= 1


async def test_rtp_from_an_unbound_address_is_dropped(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    assert a.srtp is not None
    intruder = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await intruder.bind(("127.0.0.1", 0))
    # Validly protected with a's own keys, but from an address that never passed a check.
    for _ in range(5):
        await intruder.sendto(a.srtp.tx.protect(a.rtp(a.video_ssrc)), a.server)
    intruder.close()
    await assert_flows(a, b)
    assert worker.stats()["dropped_unbound"] >= 5


async def test_srtp_with_bad_tags_is_dropped_and_counted(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    assert a.srtp is not None
    for _ in range(5):
        packet = bytearray(a.srtp.tx.protect(a.rtp(a.video_ssrc)))
        packet[-1] ^= 0x01
        await a.sock.sendto(bytes(packet), a.server)
    # RTCP with a bad tag too.
    rtcp = bytearray(a.srtp.tx.protect_rtcp(struct.pack("!BBHI", 0x80, 201, 1, a.video_ssrc)))
    rtcp[-1] ^= 0x01
    await a.sock.sendto(bytes(rtcp), a.server)
    await assert_flows(a, b)
    stats = worker.stats()
    assert stats["dropped_srtp_auth"] == 5
    assert stats["dropped_srtcp_auth"] == 1


async def test_dtls_peer_with_the_wrong_certificate_is_refused_alone(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    impostor = FakePeer(
        certificate=Certificate.generate(), announce=Certificate.generate().fingerprint
    )
    try:
        await impostor.open(worker, CALL, "mallory")
        await impostor.check()
        with contextlib.suppress(Exception):  # the server aborts with an alert, or silence
            await impostor.handshake()
    finally:
        impostor.close()
    await eventually(lambda: worker.peer_state(CALL, "mallory") is None)
    assert worker.stats()["dtls_fingerprint_mismatch"] == 1
    closed = [e for e in worker.events if isinstance(e, PeerClosed)]
    assert [(e.peer_id, e.reason) for e in closed] == [("mallory", "dtls_fingerprint_mismatch")]
    await assert_flows(a, b)


async def test_held_caller_stops_receiving_at_once_and_resumes(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    a, b = pair
    await assert_flows(a, b)
    worker.set_receiving(CALL, "b", False)
    forwarded = worker.stats()["forwarded"]
    await a.send_media(5)
    await trio.sleep(0.2)  # real time: long enough for loopback datagrams to have been forwarded
    assert worker.stats()["forwarded"] == forwarded, "nothing forwarded to a held peer"
    worker.set_receiving(CALL, "b", True)
    await assert_flows(a, b)


def virtual_worker(events: list[MediaEvent]) -> Worker:
    """A worker that reads Trio's clock, so a test on the virtual clock moves its timers too."""
    return Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        on_event=events.append,
        clock=trio.current_time,
    )


async def test_a_peer_that_never_connects_is_freed_after_the_connect_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[MediaEvent] = []
    worker = virtual_worker(events)
    peer = FakePeer()
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            await peer.open(worker, CALL, "silent")  # answered, but no check and no DTLS
            opened = trio.current_time()
            await trio.sleep(CONNECT_TIMEOUT - 1)
            assert worker.peer_state(CALL, "silent") == "new"
            await trio.sleep(2)
        finally:
            peer.close()
        nursery.cancel_scope.cancel()
    assert worker.peer_state(CALL, "silent") is None
    assert trio.current_time() - opened >= CONNECT_TIMEOUT
    assert [(e.peer_id, e.reason) for e in events if isinstance(e, PeerClosed)] == [
        ("silent", "connect_timeout")
    ]
    assert worker.stats()["dtls_timeouts"] == 1


async def test_consent_expiry_frees_a_silent_peer(autojump_clock: trio.testing.MockClock) -> None:
    """On Trio's virtual clock the real 30 s consent timeout passes at once.

    The sockets are real loopback sockets: a datagram is queued by `sendto` itself, so the worker
    sees it before the clock may jump (Trio polls I/O before jumping to the next deadline).
    """
    events: list[MediaEvent] = []
    worker = virtual_worker(events)
    a, b = FakePeer(), FakePeer()
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            await a.connect(worker, CALL, "a")
            await b.connect(worker, CALL, "b")
            started = trio.current_time()
            # a keeps refreshing consent as a browser does; b goes silent.
            while worker.peer_state(CALL, "b") is not None:
                assert trio.current_time() - started < CONSENT_TIMEOUT + 2 * CONSENT_INTERVAL
                await a.check()
                await trio.sleep(CONSENT_INTERVAL)
        finally:
            a.close()
            b.close()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - started >= CONSENT_TIMEOUT
    assert worker.stats()["consent_expired"] == 1
    assert [(e.peer_id, e.reason) for e in events if isinstance(e, PeerClosed)] == [
        ("b", "consent_expired")
    ]
    assert worker.slots(CALL, "a") == {}


async def test_a_bad_stun_flood_from_a_stranger_is_answered_a_few_times_and_counted(
    worker: RecordingWorker, pair: tuple[FakePeer, FakePeer]
) -> None:
    """Issue 15: every bad check used to get an error reply (with SOFTWARE) from the worker."""
    a, b = pair
    assert a.answer is not None
    flood = 200
    request = a.binding_request(password="not-the-password")  # a's ufrag, wrong password
    intruder = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await intruder.bind(("127.0.0.1", 0))
    before = worker.stats()
    replies = 0
    try:
        for _ in range(flood):
            await intruder.sendto(request, a.server)
        await eventually(lambda: worker.stats()["stun_in"] - before["stun_in"] >= flood)
        await assert_flows(a, b)
        while True:
            with trio.move_on_after(0.05):  # real time: loopback replies arrive at once
                response = stun.parse_message(await intruder.recv(2048))
                assert "SOFTWARE" not in response.attributes
                replies += 1
                continue
            break
    finally:
        intruder.close()
    after = worker.stats()
    assert after["stun_unauthorized"] - before["stun_unauthorized"] == flood
    limited = after["dropped_stun_rate_limited"] - before["dropped_stun_rate_limited"]
    assert replies == after["stun_errors_sent"] - before["stun_errors_sent"]
    assert replies + limited == flood
    assert replies < flood // 10, replies
    assert worker.peer_state(CALL, "a") == "connected"
