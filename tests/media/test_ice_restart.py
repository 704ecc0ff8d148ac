"""ICE restart: a connected peer offers again with new ICE credentials (a browser's restartIce()
after a network change) and keeps its DTLS session, SRTP keys and slots; the old credentials stop
working. Anything else that is offered again still replaces the peer."""

from __future__ import annotations

import re
import secrets

import trio

from media.worker import WorkerConfig
from tests.media.conftest import RecordingWorker
from tests.media.fakepeer import FakePeer
from tests.media.test_hostile import assert_flows, eventually

CALL = "call-restart"
UFRAG = re.compile(r"a=ice-ufrag:(\S+)")


async def test_an_ice_restart_keeps_dtls_and_media_with_new_credentials(
    worker: RecordingWorker,
) -> None:
    a, b = FakePeer(), FakePeer()
    try:
        await a.connect(worker, CALL, "a")
        await b.connect(worker, CALL, "b")
        await assert_flows(a, b)
        old = a.answer
        assert old is not None
        handshakes = worker.stats()["dtls_handshakes"]

        a.ufrag, a.pwd = secrets.token_hex(4), secrets.token_hex(12)
        answer = await worker.open_peer(CALL, "a", a.offer(2))
        new_ufrag = UFRAG.search(answer)
        assert new_ufrag is not None and new_ufrag[1] != old.ufrag
        a.accept(answer)
        assert a.answer is not None and a.answer.slot_ssrcs == old.slot_ssrcs  # same slots
        assert a.answer.fingerprint == old.fingerprint

        response = await a.check()  # new credentials: accepted
        assert response.message_class.name == "RESPONSE"
        stale = await a.check(password=old.pwd)  # old password with new ufrag: refused
        assert stale.message_class.name == "ERROR"
        # No new DTLS handshake: the SRTP keys from before still carry media both ways.
        await assert_flows(a, b)
        await assert_flows(b, a)
        stats = worker.stats()
        assert stats["dtls_handshakes"] == handshakes and stats["ice_restarts"] == 1
        assert worker.peer_state(CALL, "a") == "connected"
    finally:
        a.close()
        b.close()


async def test_a_new_certificate_is_a_new_session_not_a_restart(worker: RecordingWorker) -> None:
    a = FakePeer()
    try:
        await a.connect(worker, CALL, "a")
        again = FakePeer()  # another certificate: a page that reloaded
        try:
            again.bind()
            again.accept(await worker.open_peer(CALL, "a", again.offer(2)))
            assert worker.peer_state(CALL, "a") == "new"
            await again.establish()
            await eventually(lambda: worker.peer_state(CALL, "a") == "connected")
            assert worker.stats()["ice_restarts"] == 0
        finally:
            again.close()
    finally:
        a.close()


async def test_a_restart_answer_keeps_the_tcp_candidate() -> None:
    w = RecordingWorker(WorkerConfig(bind_address="127.0.0.1", tcp_port=0))
    w.events = []
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        a = FakePeer()
        try:
            await a.connect(w, CALL, "a")
            a.ufrag = secrets.token_hex(4)
            answer = await w.open_peer(CALL, "a", a.offer(2))
            assert "tcptype passive" in answer and w.stats()["ice_restarts"] == 1
        finally:
            a.close()
        nursery.cancel_scope.cancel()
