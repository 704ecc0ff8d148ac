"""STUN against hostile senders: failed checks answered at a bounded rate, no reflector, no
product name on the wire, and every dropped datagram counted under a reason (issue 15)."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest
import trio
from aioice import stun as astun

from media import stun
from media.worker import Worker, WorkerConfig
from runtime import Registry
from tests.media.fakepeer import FakePeer
from waitroom.loadtest.http import parse_prometheus
from waitroom.metrics import LoopLag, Metrics

SOURCE = ("198.51.100.7", 40000)
KNOWN_UFRAG = "known"
KNOWN_PWD = "p" * 22
#: A flood larger than any bucket, small enough for loopback buffers.
FLOOD = 50
CALL = "call-stun-limits"
FINGERPRINT_LENGTH = 8
POLL = 0.01


def password_of(ufrag: str) -> str | None:
    return KNOWN_PWD if ufrag == KNOWN_UFRAG else None


def request(username: str | None, password: str | None, *, fingerprint: bool = True) -> bytes:
    """A binding request as a browser writes it (aioice's writer, not ours).

    aioice adds FINGERPRINT with MESSAGE-INTEGRITY; `fingerprint=False` cuts it off again.
    """
    message = astun.Message(astun.Method.BINDING, astun.Class.REQUEST)
    if username is not None:
        message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1853824767
    message.attributes["ICE-CONTROLLING"] = 1
    if password is not None:
        message.add_message_integrity(password.encode())
    message.add_fingerprint()
    data = bytes(message)
    if fingerprint:
        return data
    length = struct.unpack_from("!H", data, 2)[0] - FINGERPRINT_LENGTH
    return data[:2] + struct.pack("!H", length) + data[4:-FINGERPRINT_LENGTH]


def bare_request() -> bytes:
    """The 20-byte binding request anyone can send from a forged address."""
    return struct.pack("!HHI12s", stun.METHOD_BINDING, 0, stun.MAGIC_COOKIE, os.urandom(12))


def stun_message(method: int, klass: int) -> bytes:
    message = astun.Message(astun.Method(method), astun.Class(klass))
    message.add_fingerprint()
    return bytes(message)


# ---- sans-IO ---------------------------------------------------------------------------------


def test_error_replies_are_no_larger_than_their_request() -> None:
    cases = [
        request("nobody:x", None),  # 400: no MESSAGE-INTEGRITY
        request("nobody:remote", "x" * 22),  # 401: unknown ufrag
        request(f"{KNOWN_UFRAG}:remote", "wrong-password"),  # 401: bad integrity
    ]
    for data in cases:
        outcome = stun.handle_datagram(data, SOURCE, password_of)
        assert outcome.response is not None
        assert len(outcome.response) <= len(data), (outcome.verdict, len(outcome.response))


def test_a_bare_binding_request_gets_no_reply() -> None:
    data = bare_request()
    outcome = stun.handle_datagram(data, SOURCE, password_of)
    assert outcome.response is None
    outcome = stun.handle_datagram(request(None, None), SOURCE, password_of)
    assert outcome.response is None


def test_no_reply_names_the_software() -> None:
    for data in (
        request("nobody:x", None),
        request("nobody:remote", "x" * 22),
        request(f"{KNOWN_UFRAG}:remote", KNOWN_PWD),
    ):
        outcome = stun.handle_datagram(data, SOURCE, password_of)
        assert outcome.response is not None
        assert stun.ATTR_SOFTWARE not in stun.parse(outcome.response).attributes
        assert b"waitroom" not in outcome.response


def test_cheap_checks_come_before_the_password_lookup() -> None:
    looked_up: list[str] = []

    def recording(ufrag: str) -> str | None:
        looked_up.append(ufrag)
        return password_of(ufrag)

    wrong_cookie = bytearray(request(f"{KNOWN_UFRAG}:remote", KNOWN_PWD, fingerprint=False))
    wrong_cookie[4:8] = b"\x00\x00\x00\x00"
    outcome = stun.handle_datagram(bytes(wrong_cookie), SOURCE, recording)
    assert outcome.response is None
    assert looked_up == []


def test_a_known_ufrag_with_a_bad_fingerprint_is_still_dropped() -> None:
    corrupt = bytearray(request(f"{KNOWN_UFRAG}:remote", KNOWN_PWD))
    corrupt[-1] ^= 0xFF
    outcome = stun.handle_datagram(bytes(corrupt), SOURCE, password_of)
    assert outcome.verdict is stun.Verdict.MALFORMED and outcome.response is None


def test_reply_limiter_gives_each_source_a_small_bucket_that_refills() -> None:
    limiter = stun.ReplyLimiter()
    allowed = [limiter.allow(SOURCE, 0.0) for _ in range(stun.REPLY_BURST + 5)]
    assert allowed == [True] * stun.REPLY_BURST + [False] * 5
    assert limiter.allow(("198.51.100.8", 40000), 0.0), "another source has its own bucket"
    assert not limiter.allow(SOURCE, 0.5 / stun.REPLY_RATE)
    assert limiter.allow(SOURCE, 1.0 / stun.REPLY_RATE)
    assert not limiter.allow(SOURCE, 1.0 / stun.REPLY_RATE)


def test_reply_limiter_table_is_bounded_and_forgets_the_oldest() -> None:
    limiter = stun.ReplyLimiter(global_burst=10**9, global_rate=10**9)
    for n in range(stun.REPLY_TABLE_SIZE + 100):
        limiter.allow((f"10.0.{n // 256}.{n % 256}", 9), float(n))
    assert len(limiter) == stun.REPLY_TABLE_SIZE
    assert ("10.0.0.0", 9) not in limiter
    assert ("10.0.0.200", 9) in limiter


def test_reply_limiter_bounds_the_replies_to_forged_sources_altogether() -> None:
    limiter = stun.ReplyLimiter()
    sources = [(f"10.1.{n // 256}.{n % 256}", 9) for n in range(stun.REPLY_GLOBAL_BURST * 3)]
    allowed = sum(limiter.allow(source, 0.0) for source in sources)
    assert allowed == stun.REPLY_GLOBAL_BURST


def test_failed_checks_beyond_the_bucket_are_dropped_unanswered() -> None:
    limiter = stun.ReplyLimiter()
    data = request("nobody:remote", "x" * 22)
    outcomes = [
        stun.handle_datagram(data, SOURCE, password_of, limiter=limiter, now=0.0)
        for _ in range(FLOOD)
    ]
    answered = [o for o in outcomes if o.response is not None]
    assert len(answered) == stun.REPLY_BURST
    assert all(o.verdict is stun.Verdict.UNAUTHORIZED for o in outcomes)
    assert sum(o.limited for o in outcomes) == FLOOD - stun.REPLY_BURST
    # An authenticated check from the same source is answered whatever its bucket holds.
    good = stun.handle_datagram(
        request(f"{KNOWN_UFRAG}:remote", KNOWN_PWD), SOURCE, password_of, limiter=limiter, now=0.0
    )
    assert good.verdict is stun.Verdict.ACCEPTED and good.response is not None


# ---- through a worker on a real socket --------------------------------------------------------


@pytest.fixture
async def frozen_worker() -> AsyncIterator[Worker]:
    """A worker whose clock stands still: no bucket refills while a test floods it."""
    worker = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        clock=lambda: 0.0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield worker
        nursery.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], seconds: float = 2.0) -> None:
    """Poll for what real sockets bring (real time: the datagrams travel through the kernel)."""
    for _ in range(int(seconds / POLL)):
        if predicate():
            return
        await trio.sleep(POLL)
    raise AssertionError("condition not reached")


def stranger() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


async def test_a_flood_of_bad_checks_from_one_source_gets_a_bounded_number_of_replies(
    frozen_worker: Worker,
) -> None:
    worker = frozen_worker
    sock = stranger()
    try:
        data = request("nobody:remote", "x" * 22)
        for _ in range(FLOOD):
            sock.sendto(data, ("127.0.0.1", worker.port))
        await until(lambda: worker.stats()["stun_in"] == FLOOD)
        await trio.sleep(0.05)  # real time: the replies sent cross loopback
        replies = drain(sock)
    finally:
        sock.close()
    stats = worker.stats()
    assert len(replies) == stun.REPLY_BURST
    assert stats["stun_unauthorized"] == FLOOD
    assert stats["stun_errors_sent"] == stun.REPLY_BURST
    assert stats["dropped_stun_rate_limited"] == FLOOD - stun.REPLY_BURST


async def test_a_bare_binding_request_from_anywhere_gets_no_reply(frozen_worker: Worker) -> None:
    worker = frozen_worker
    sock = stranger()
    try:
        sock.sendto(bare_request(), ("127.0.0.1", worker.port))
        await until(lambda: worker.stats()["stun_in"] == 1)
        await trio.sleep(0.05)
        replies = drain(sock)
    finally:
        sock.close()
    assert replies == []
    assert worker.stats()["dropped_stun_no_credentials"] == 1


async def test_every_unanswered_stun_datagram_is_counted_under_a_reason(
    frozen_worker: Worker,
) -> None:
    worker = frozen_worker
    hostile = {
        "stun_unsolicited": [
            stun_message(stun.METHOD_BINDING, stun.CLASS_RESPONSE),
            stun_message(stun.METHOD_BINDING, stun.CLASS_ERROR),
        ],
        "stun_indication": [stun_message(stun.METHOD_BINDING, stun.CLASS_INDICATION)],
        "stun_method": [stun_message(0x003, stun.CLASS_REQUEST)],  # TURN Allocate
        "stun_no_credentials": [bare_request()],
        "malformed": [b"\x00\x01\x00"],
    }
    sent = [data for datagrams in hostile.values() for data in datagrams]
    before = worker.stats()
    sock = stranger()
    try:
        for data in sent:
            sock.sendto(data, ("127.0.0.1", worker.port))
        await until(lambda: worker.stats()["datagrams_in"] == len(sent))
        await trio.sleep(0.05)
        assert drain(sock) == []
    finally:
        sock.close()
    after = worker.stats()
    for reason, datagrams in hostile.items():
        key = f"dropped_{reason}"
        assert after[key] - before.get(key, 0) == len(datagrams), key
    dropped = sum(after[k] - before.get(k, 0) for k in after if k.startswith("dropped_"))
    assert dropped == len(sent)


async def test_a_peer_still_passes_its_checks_after_emptying_its_bucket(
    frozen_worker: Worker,
) -> None:
    worker = frozen_worker
    peer = FakePeer()
    try:
        await peer.open(worker, CALL, "a")
        for _ in range(stun.REPLY_BURST * 3):
            await peer.sock.sendto(peer.binding_request(password="wrong-password"), peer.server)
        await until(lambda: worker.stats()["stun_in"] == stun.REPLY_BURST * 3)
        classes = []
        for _ in range(stun.REPLY_BURST + 1):  # the error replies queued first are read first
            classes.append((await peer.check()).message_class)
            if classes[-1] == astun.Class.RESPONSE:
                break
        assert classes[-1] == astun.Class.RESPONSE, classes
    finally:
        peer.close()
    assert worker.stats()["stun_responses"] >= 1


# ---- /metrics ----------------------------------------------------------------------------------


def test_dropped_datagrams_are_exported_by_reason() -> None:
    stats = {"dropped_stun_unsolicited": 3, "dropped_unbound": 2, "forwarded": 1}
    metrics = Metrics(
        Registry(),
        lambda: (0, 0),
        LoopLag(),
        media_stats=lambda: stats,
        media_worker_stats=lambda: {"0": stats},
    )
    figures = parse_prometheus(metrics.render())
    assert figures['waitroom_media_datagrams_dropped_total{reason="stun_unsolicited"}'] == 3
    assert figures['waitroom_media_datagrams_dropped_total{reason="unbound"}'] == 2
    worker = 'waitroom_media_worker_datagrams_dropped_total{reason="stun_unsolicited",worker="0"}'
    assert figures[worker] == 3
