"""Chromium pauses a simulcast layer nobody wants and resumes it when someone does (issue 11).

Two pages of one browser, as tests/media/test_simulcast_browser.py runs them: the publisher joins
with `simulcast: true` and a 1280x720 fake camera, the subscriber without. Signalling calls the
worker directly, and so does the subscriber's view (what its page's media.view carries). The
worker's `LayersWanted` events for the publisher are handed to its page's `call.setLayers` in
order, which is what the call core's `media.layers` push and the page's handler do. Once the
subscriber shows the publisher small, the publisher's outbound-rtp of rid `f` stops growing
(Chrome encodes and sends nothing of it) while `q` goes on; shown large again, `f` grows again
and the subscriber is forwarded it at its next key frame. Run under the machine-wide lock.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from media.events import LayersWanted, MediaEvent
from media.simulcast import PAUSE_AFTER
from media.worker import Worker, WorkerConfig
from tests.chromium import launch_persistent
from tests.polling import seconds_until, seconds_until_flat

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "web" / "static" / "js" / "media.js"
ORIGIN = "http://localhost"
CALL = "call-layer-pause"
DEADLINE = 15.0
POLL = 0.2
SMALL = 180
LARGE = 720
#: Chrome starts its top layer once its estimate covers all three (about 12 s on a busy machine).
TOP_LAYER_DEADLINE = 40.0
#: The pause comes PAUSE_AFTER after the switch down; Chrome then stops at once.
STOP_WITHIN = PAUSE_AFTER + 3.0
FLAT_FOR = 2.0

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>layer pause test page</title>
<div id="others"></div>
<script type="module">
  import { joinMedia } from "/static/js/media.js";
  window.join = async (simulcast) => {
    window.call = await joinMedia({
      signal: (type, body) => window.waitroomSignal(type, body),
      container: document.getElementById("others"),
      slots: 2,
      simulcast,
      constraints: simulcast
        ? { audio: true, video: { width: 1280, height: 720, frameRate: 30 } }
        : { audio: true, video: { width: 320, height: 240, frameRate: 15 } },
    });
    return true;
  };
  /* Bytes sent per rid, and which encodings the sender has active. */
  window.sending = async () => {
    const out = { bytes: {}, active: {} };
    (await window.call.pc.getStats()).forEach((r) => {
      if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) out.bytes[r.rid] = r.bytesSent ?? 0;
    });
    const sender = window.call.pc.getSenders().find((s) => s.track && s.track.kind === "video");
    for (const e of sender.getParameters().encodings) out.active[e.rid] = e.active;
    return out;
  };
  window.pageReady = true;
</script>
"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Relay:
    """The worker's LayersWanted for the publisher, kept in order until the page takes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[tuple[str, ...]] = []
        self.told: list[tuple[str, ...]] = []

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, LayersWanted) and event.peer_id == "pub":
            with self.lock:
                self.pending.append(event.active)

    def take(self) -> list[tuple[str, ...]]:
        with self.lock:
            out, self.pending = self.pending, []
        self.told += out
        return out


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Worker, Relay]]:
    relay = Relay()
    w = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        on_event=relay.on_event,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w, relay
        nursery.cancel_scope.cancel()


def scenario(worker: Worker, relay: Relay, tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import Route, sync_playwright

    result: dict[str, Any] = {}

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/static/js/media.js":
            route.fulfill(body=MEDIA_JS.read_text(), content_type="text/javascript")
        elif path == "/page.html":
            route.fulfill(body=PAGE, content_type="text/html")
        else:
            route.fulfill(status=404, body="")

    def in_trio(fn: Any, *args: Any) -> Any:
        return trio.from_thread.run_sync(fn, *args)

    with sync_playwright() as pw:
        context = launch_persistent(pw, tmp)
        try:
            context.route(f"{ORIGIN}/**", serve)

            def join(peer_id: str, simulcast: bool) -> Any:
                page = context.new_page()

                def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
                    if kind == "media.offer":
                        answer = trio.from_thread.run(worker.open_peer, CALL, peer_id, body["sdp"])
                        return {"sdp": answer, "slots": worker.slots(CALL, peer_id)}
                    return {}

                page.expose_function("waitroomSignal", signal)
                page.goto(f"{ORIGIN}/page.html")
                page.wait_for_function("() => window.pageReady === true")
                page.evaluate("(s) => window.join(s)", simulcast)
                return page

            pub = join("pub", True)
            sub = join("sub", False)
            sub.evaluate("(m) => window.call.setSlots(m)", worker.slots(CALL, "sub"))
            applied: list[bool] = []

            def sending() -> dict[str, Any]:
                """The publisher's counters, after handing it the layers it was told (as the
                page's `media.layers` handler does)."""
                for active in relay.take():
                    applied.append(pub.evaluate("(a) => window.call.setLayers(a)", list(active)))
                out: dict[str, Any] = pub.evaluate("() => window.sending()")
                return out

            def f_bytes() -> int:
                return int(sending()["bytes"].get("f", 0))

            def budget() -> dict[str, Any]:
                """What layer choice saw: the subscriber's estimate and the layers' rates."""

                def read() -> dict[str, Any]:
                    transport = worker._transports[(CALL, "sub")]
                    track = worker._transports[(CALL, "pub")].simulcast[0]
                    line = transport.slots[0]["video"]
                    return {
                        "remb": transport.remb_bitrate,
                        "loss": round(transport.loss_fraction, 3),
                        "rates": {rid: layer.bitrate for rid, layer in track.layers.items()},
                        "on": line.layer.rid if line.layer else None,
                        "target": line.target.rid if line.target else None,
                    }

                out: dict[str, Any] = in_trio(read)
                return out

            def seen_width() -> int:
                peers: dict[str, Any] = sub.evaluate(
                    "async () => (await window.call.stats()).peers"
                )
                return int(peers.get("pub", {}).get("frameWidth", 0))

            # Shown large: Chrome's estimate climbs until it sends f, and the subscriber gets it.
            in_trio(worker.set_view, CALL, "sub", {"pub": LARGE}, [])
            first = f_bytes()
            result["top_s"] = seconds_until(
                lambda: f_bytes() > first + 50_000, TOP_LAYER_DEADLINE, POLL, "f is sent"
            )
            try:
                result["top_width_s"] = seconds_until(
                    lambda: seen_width() > 640, DEADLINE, POLL, "the subscriber gets f"
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {budget()}") from None

            # Shown small: the subscriber moves to q, and PAUSE_AFTER later f is paused.
            result["budget_top"] = budget()
            in_trio(worker.set_view, CALL, "sub", {"pub": SMALL}, [])
            try:
                result["down_s"] = seconds_until(
                    lambda: 0 < seen_width() <= 320, DEADLINE, POLL, "the low layer"
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {budget()}; {worker.stats()}") from None
            result["f_stopped_s"] = seconds_until_flat(
                f_bytes, STOP_WITHIN, FLAT_FOR, POLL, "f's bytesSent"
            )
            paused = sending()
            result["paused"] = paused
            q_before = paused["bytes"]["q"]
            seconds_until(
                lambda: sending()["bytes"]["q"] > q_before + 5_000, DEADLINE, POLL, "q goes on"
            )
            result["told_paused"] = list(relay.told)

            # Shown large again: f is resumed at once and the subscriber is back on it.
            in_trio(worker.set_view, CALL, "sub", {"pub": LARGE}, [])
            stopped_at = f_bytes()
            result["f_resumed_s"] = seconds_until(
                lambda: f_bytes() > stopped_at + 20_000, TOP_LAYER_DEADLINE, POLL, "f again"
            )
            result["resumed"] = sending()
            result["budget_resumed"] = budget()
            try:
                result["back_up_s"] = seconds_until(
                    lambda: seen_width() > 640,
                    TOP_LAYER_DEADLINE,
                    POLL,
                    "the subscriber gets f again",
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; {budget()}; at resume {result['budget_resumed']}"
                ) from None
            result["told"] = list(relay.told)
            result["applied"] = applied
        finally:
            context.close()
    return result


async def test_chromium_stops_sending_a_layer_nobody_shows_and_resumes_it_when_shown(
    rig: tuple[Worker, Relay], tmp_path: Path
) -> None:
    worker, relay = rig
    result = await trio.to_thread.run_sync(scenario, worker, relay, tmp_path)
    print("layer pause", result, {k: v for k, v in worker.stats().items() if v})
    paused, resumed = result["paused"], result["resumed"]
    assert paused["active"] == {"q": True, "h": False, "f": False}, paused
    assert resumed["active"]["q"] is True and resumed["active"]["f"] is True, resumed
    assert result["told_paused"][-1] == ("q",)
    assert result["told"][-1] == ("q", "f")
    assert all(result["applied"])
    stats = worker.stats()
    assert stats["internal_errors"] == 0 and stats["dropped_srtp_auth"] == 0
