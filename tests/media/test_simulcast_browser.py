"""Chromium publishes simulcast through web/static/js/media.js; the SFU binds its layers, a
subscriber that shows it small gets the low layer, transport-cc keeps Chrome's estimate up, and
when the publisher's uplink shrinks Chrome drops its top layer and the subscriber moves down.

Two pages of one browser: the publisher joins with `simulcast: true` and a 1280x720 fake camera,
the subscriber without. Signalling calls the worker directly (as tests/media/test_browser.py
does), and so does the subscriber's view (what its page's media.view carries: the publisher's
display height), through the worker's selection to the consumer's layer choice. Run under the machine-wide lock (tests/README or the rules: one browser test at a time).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from media.worker import Worker, WorkerConfig
from tests.chromium import launch_persistent
from tests.polling import seconds_until

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "web" / "static" / "js" / "media.js"
ORIGIN = "http://localhost"
CALL = "call-simulcast"
DEADLINE = 15.0
POLL = 0.2
SMALL = 180  # the subscriber's tile height once it shows the publisher small
#: Chrome starts its estimate at 300 kbit/s; with correct transport-cc feedback it climbs, and
#: without it collapses to a few tens of kbit/s (MEDIA-NOTES).
MIN_ESTIMATE_BPS = 450_000
#: The top layer starts only once Chrome's estimate covers all three (measured: about 12 s here).
TOP_LAYER_DEADLINE = 40.0

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>simulcast test page</title>
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
  /* What the publisher sends (per rid) and what its estimator thinks the uplink carries. */
  window.sending = async () => {
    const out = { layers: {}, estimate: 0 };
    (await window.call.pc.getStats()).forEach((r) => {
      if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) {
        out.layers[r.rid] = {
          width: r.frameWidth ?? 0,
          bytes: r.bytesSent ?? 0,
          limit: r.qualityLimitationReason ?? "",
        };
      }
      if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
        out.estimate = r.availableOutgoingBitrate;
      }
    });
    return out;
  };
  window.pageReady = true;
</script>
"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: The publisher's uplink, shrunk: a token bucket on its RTP as the worker receives it.
SHRUNK_UPLINK_BPS = 450_000
SHRUNK_BURST_BYTES = 16_000
UPLINK_DEADLINE = 45.0  # measured 4.0-15.6 s on this loaded machine


class ShapedWorker(Worker):
    """A worker whose receive side can play a narrow uplink for one publisher: RTP beyond the
    bucket's rate is dropped before the worker sees it (as a congested link would), so the
    transport-cc feedback reports it lost and late."""

    shaped: tuple[str, int] | None = None
    shaped_drops = 0
    _tokens = 0.0
    _filled_at = 0.0

    def shape(self, addr: tuple[str, int] | None) -> None:
        self.shaped = addr
        self._tokens, self._filled_at = SHRUNK_BURST_BYTES, time.monotonic()

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr == self.shaped and data and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            now = time.monotonic()
            self._tokens = min(
                SHRUNK_BURST_BYTES,
                self._tokens + (now - self._filled_at) * SHRUNK_UPLINK_BPS / 8,
            )
            self._filled_at = now
            if len(data) > self._tokens:
                self.shaped_drops += 1
                return
            self._tokens -= len(data)
        super()._on_datagram(data, addr)


@pytest.fixture
async def worker() -> AsyncIterator[ShapedWorker]:
    w = ShapedWorker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()


def scenario(worker: ShapedWorker, tmp: Path) -> dict[str, Any]:
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
            pub_transport = in_trio(lambda: worker._transports[(CALL, "pub")])
            sub.evaluate("(m) => window.call.setSlots(m)", worker.slots(CALL, "sub"))

            def layers() -> dict[str, tuple[int, int]]:
                track = pub_transport.simulcast[0]
                return {rid: (layer.width, layer.height) for rid, layer in track.layers.items()}

            def seen() -> dict[str, Any]:
                peers: dict[str, Any] = sub.evaluate(
                    "async () => (await window.call.stats()).peers"
                )
                mine: dict[str, Any] = peers.get("pub", {})
                return mine

            seconds_until(lambda: len(in_trio(layers)) >= 2, DEADLINE, POLL, "layers bound")
            seconds_until(lambda: seen().get("framesDecoded", 0) > 10, DEADLINE, POLL, "decoded")
            result["layers"] = in_trio(layers)
            result["full_width"] = seen()["frameWidth"]

            # What the page's media.view does: it shows the publisher 180 px tall.
            in_trio(worker.set_view, CALL, "sub", {"pub": SMALL}, [])
            result["switch_down_s"] = seconds_until(
                lambda: 0 < seen().get("frameWidth", 0) <= 320, DEADLINE, POLL, "the low layer"
            )
            before = seen()["framesDecoded"]
            seconds_until(
                lambda: seen()["framesDecoded"] > before + 15, DEADLINE, POLL, "still decoding"
            )
            result["small_width"] = seen()["frameWidth"]
            result["paused"] = in_trio(lambda: pub_transport.simulcast[0].paused())

            # Send-side BWE on transport-cc: Chrome's estimate climbs, not collapses.
            seconds_until(
                lambda: pub.evaluate("() => window.sending()")["estimate"] >= MIN_ESTIMATE_BPS,
                DEADLINE,
                POLL,
                "Chrome's estimate of its uplink",
            )
            result["sending"] = pub.evaluate("() => window.sending()")

            in_trio(worker.set_view, CALL, "sub", {"pub": 720}, [])

            # Higher than the low layer as Chrome sends it now: under CPU pressure Chrome scales
            # every layer down (its h may then be 320 wide), so a fixed width would not say it.
            def above_low_layer() -> bool:
                low = pub.evaluate("() => window.sending()")["layers"].get("q", {})
                return bool(seen().get("frameWidth", 0) > max(low.get("width", 0), 1))

            try:
                result["switch_up_s"] = seconds_until(
                    above_low_layer, TOP_LAYER_DEADLINE, POLL, "a higher layer"
                )
            except AssertionError:
                # Only acceptable if Chrome itself sends nothing above the low layer for its CPU
                # (its own reason, and no bytes on h or f over two seconds) while the worker does
                # want the large size for this subscriber: then there is no layer to switch to.
                first = pub.evaluate("() => window.sending()")["layers"]
                time.sleep(2)
                again = pub.evaluate("() => window.sending()")["layers"]
                upper = [rid for rid in ("h", "f") if rid in again]
                growing = [r for r in upper if again[r]["bytes"] > first.get(r, {}).get("bytes", 0)]
                wanted = in_trio(
                    lambda: worker._routers[CALL].selection.wanted_height("sub", "pub")
                )
                limits = {again[r]["limit"] for r in upper}
                if growing or "cpu" not in limits or wanted != 720:
                    raise
                result["switch_up_s"] = None
            # Chrome starts its top layer once its estimate covers all three and its CPU allows
            # it; on a loaded machine its CPU adaptation may hold it back whatever we feed back.
            try:
                result["top_s"] = seconds_until(
                    lambda: seen().get("frameWidth", 0) > 640, TOP_LAYER_DEADLINE, POLL, "top layer"
                )
            except AssertionError:
                result["top_s"] = None
            result["sending_at_top"] = pub.evaluate("() => window.sending()")
            result["width_at_top"] = seen()["frameWidth"]

            # The publisher's uplink shrinks: Chrome's estimator, fed our transport-cc feedback,
            # falls, its allocator stops the top layer, and the subscriber moves down to h.
            # Shown when Chrome sent its top layer; a Chrome that held its layers back for its CPU
            # (smaller than their configured sizes) may fit them all in the shrunk uplink, and then
            # only its estimate falling is seen (asserted below either way).
            in_trio(worker.shape, pub_transport.addr)
            try:
                result["uplink_down_s"] = seconds_until(
                    lambda: 0 < seen().get("frameWidth", 0) < result["width_at_top"],
                    UPLINK_DEADLINE,
                    POLL,
                    "a lower layer once the uplink shrank",
                )
            except AssertionError:
                if result["top_s"] is not None:
                    raise
                result["uplink_down_s"] = None
            # The subscriber can move down on the SFU's loss signal before Chrome's estimate has
            # finished falling (read at that moment it was 1.0-1.5 Mbps twice in 6 runs): wait
            # for it, as long as for the layer, and assert below that it fell.
            try:
                result["estimate_down_s"] = seconds_until(
                    lambda: (
                        pub.evaluate("() => window.sending()")["estimate"] < SHRUNK_UPLINK_BPS * 2
                    ),
                    UPLINK_DEADLINE,
                    POLL,
                    "the estimate falling with the uplink",
                )
            except AssertionError:
                result["estimate_down_s"] = None
            result["sending_shrunk"] = pub.evaluate("() => window.sending()")
            before = seen()["framesDecoded"]
            seconds_until(
                lambda: seen()["framesDecoded"] > before + 10, DEADLINE, POLL, "decoding on h"
            )
            result["shaped_drops"] = worker.shaped_drops
        finally:
            context.close()
    return result


async def test_chromium_simulcast_layers_are_bound_and_a_small_tile_gets_the_low_layer(
    worker: ShapedWorker, tmp_path: Path
) -> None:
    result = await trio.to_thread.run_sync(scenario, worker, tmp_path)
    print("simulcast", result, {k: v for k, v in worker.stats().items() if v})
    assert result["small_width"] <= 320 < result["full_width"]
    top = result["sending_at_top"]
    if result["top_s"] is not None:
        assert top["layers"]["f"]["width"] == 1280
    else:
        # Chrome held its top layer back for its own CPU, not for the bandwidth our feedback
        # let it estimate (which covers all three layers): the subscriber got the best it sent.
        assert top["layers"]["h"]["limit"] == "cpu" or top["layers"]["f"]["limit"] == "cpu", top
        assert top["estimate"] >= 1_000_000, top
    assert result["sending_shrunk"]["estimate"] < SHRUNK_UPLINK_BPS * 2
    stats = worker.stats()
    assert stats["simulcast_layers_bound"] >= 2 and stats["twcc_sent"] > 0
    assert stats["internal_errors"] == 0 and stats["dropped_srtp_auth"] == 0
