"""Chromium reaches the SFU over ICE-TCP when the answer offers no UDP candidate (issue 16).

The worker listens on TCP and answers with its passive TCP candidate only (a test-only setting),
as if UDP to the media port were blocked: both pages decode each other's video and hear each
other, and every address the worker bound is a TCP connection. Run under the machine-wide lock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from media.worker import Worker, WorkerConfig
from tests.chromium import launch_persistent
from tests.media.test_browser import MEDIA_JS, ORIGIN, Participant, receiving_from, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = Path(__file__).with_name("ice_page.html")
CALL = "call-ice"
#: Seconds until both pages decode each other: ICE over TCP or a relay takes longer than UDP.
CONNECT_DEADLINE = 15.0


def two_pages(
    worker: Worker,
    tmp: Path,
    ice: dict[str, Any],
    then: Callable[[Participant, Participant], None] | None = None,
    extra_args: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Two Chromium pages with `ice` (iceServers, iceTransportPolicy) call each other through
    `worker` until each decodes the other's video and audio, then run `then` on them; returns
    their connection states."""
    from playwright.sync_api import Route, sync_playwright

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/static/js/media.js":
            route.fulfill(body=MEDIA_JS.read_text(), content_type="text/javascript")
        elif path == "/page.html":
            route.fulfill(body=PAGE.read_text(), content_type="text/html")
        else:
            route.fulfill(status=404, body="")

    with sync_playwright() as pw:
        context = launch_persistent(pw, tmp, extra_args)
        try:
            context.route(f"{ORIGIN}/**", serve)
            context.add_init_script(f"window.ICE = {json.dumps(ice)};")

            def join(peer_id: str) -> Participant:
                page = context.new_page()

                def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
                    if kind == "media.offer":
                        answer = trio.from_thread.run(worker.open_peer, CALL, peer_id, body["sdp"])
                        return {"sdp": answer, "slots": worker.slots(CALL, peer_id)}
                    return {}

                page.expose_function("waitroomSignal", signal)
                page.goto(f"{ORIGIN}/page.html")
                page.wait_for_function("() => window.pageReady === true")
                page.evaluate("() => window.join()")
                return Participant(page, peer_id)

            a, b = join("alice"), join("bob")
            for p in (a, b):
                slots = trio.from_thread.run_sync(worker.slots, CALL, p.peer_id)
                p.page.evaluate("(m) => window.call.setSlots(m)", slots)
            wait_until(
                lambda: receiving_from(a, ["bob"]) and receiving_from(b, ["alice"]),
                CONNECT_DEADLINE,
                "alice and bob decode each other",
            )
            if then is not None:
                then(a, b)
            return {p.peer_id: p.page.evaluate("() => window.connectionStates") for p in (a, b)}
        finally:
            context.close()


def bound_addresses(worker: Worker) -> dict[str, set[tuple[str, int]]]:
    """Every address each peer's transport was bound to by an authenticated check."""
    return {t.peer_id: set(t.addrs) | {t.addr} for t in worker._transports.values() if t.addr}


@pytest.fixture
async def tcp_only_worker() -> AsyncIterator[Worker]:
    w = Worker(
        WorkerConfig(
            announced_address="127.0.0.1",
            bind_address="127.0.0.1",
            tcp_port=0,
            udp_candidates=False,
        )
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()


async def test_chromium_connects_over_ice_tcp_when_no_udp_candidate_is_offered(
    tcp_only_worker: Worker, tmp_path: Path
) -> None:
    states = await trio.to_thread.run_sync(two_pages, tcp_only_worker, tmp_path, {})
    assert all("connected" in s for s in states.values()), states
    bound = bound_addresses(tcp_only_worker)
    assert set(bound) == {"alice", "bob"}
    for peer, addrs in bound.items():
        assert addrs and all(a[0] == "tcp:127.0.0.1" for a in addrs), (peer, addrs)
    stats = tcp_only_worker.stats()
    assert stats["tcp_frames_in"] > 0 and stats["forwarded"] > 0, stats
    assert stats["internal_errors"] == 0 and stats["tcp_closed_garbage"] == 0, stats


@pytest.fixture
async def udp_worker() -> AsyncIterator[Worker]:
    w = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()


async def test_chromium_restarts_ice_and_keeps_its_dtls_session(
    udp_worker: Worker, tmp_path: Path
) -> None:
    """media.js's restartIce(): new ICE credentials, the same DTLS session, media goes on."""
    seen: dict[str, int] = {}

    def restart(a: Participant, b: Participant) -> None:
        seen["handshakes"] = trio.from_thread.run_sync(udp_worker.stats)["dtls_handshakes"]
        before = a.page.evaluate("() => window.call.pc.remoteDescription.sdp")
        assert a.page.evaluate("() => window.call.restartIce()") is True
        after = a.page.evaluate("() => window.call.pc.remoteDescription.sdp")
        assert _ufrag(after) != _ufrag(before)
        frames = a.slots_by_peer()["bob"]["framesDecoded"]
        wait_until(
            lambda: (
                a.slots_by_peer()["bob"]["framesDecoded"] > frames + 10
                and a.stats()["connectionState"] == "connected"
            ),
            CONNECT_DEADLINE,
            "alice decodes bob after her ICE restart",
        )

    await trio.to_thread.run_sync(two_pages, udp_worker, tmp_path, {}, restart)
    stats = udp_worker.stats()
    assert stats["ice_restarts"] == 1 and stats["dtls_handshakes"] == seen["handshakes"], stats
    assert stats["internal_errors"] == 0


def _ufrag(sdp: str) -> str:
    return sdp.split("a=ice-ufrag:", 1)[1].split()[0]
