"""Chromium retransmits a video packet the media worker lost and NACKed (issue 11).

`test_nack_retransmit.py` proves it with aiortc; this is the same with the browser the call page
runs in. The test drops one of the page's video packets before the worker's data path sees it;
the next packet opens a gap, the worker sends a generic NACK addressed to the page's video SSRC
(`rtcp.build_nack`), and Chrome, whose RTX the answer declined, resends the original packet on
its media SSRC with its sequence number, which passes SRTP (it is new to the replay window: the
worker never unprotected the lost copy).

Chrome also resends packets nobody asked for: without RTX, its pacer pads a bandwidth probe with
copies of recently sent packets on the media SSRC (same sequence number, new transport-wide
number), often the very packet just sent. Such a copy of the dropped packet, arriving before the
worker saw the gap, would fill it and no NACK would be needed; so every copy that comes before the
worker's NACK is lost too, and only one that comes after it counts as the answer to the NACK.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from media.sdp import parse_offer
from media.transport import Transport
from tests.chromium import launch_persistent
from tests.media.conftest import RecordingWorker
from tests.polling import seconds_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "web" / "static" / "js" / "media.js"
PAGE = Path(__file__).with_name("page.html")
ORIGIN = "http://localhost"
CALL = "call-nack-chromium"
#: Let the stream settle (key frame sent, producer started) before losing a packet.
PACKETS_BEFORE_DROP = 60
#: Media packets, not padding: a padding-only packet is not kept for retransmission.
MIN_MEDIA_BYTES = 200
DEADLINE = 10.0
POLL = 0.1


def _seq(data: bytes) -> int:
    return int.from_bytes(data[2:4], "big")


def _ssrc(data: bytes) -> int:
    return int.from_bytes(data[8:12], "big")


class DropOnce:
    """In front of the worker's RTP path: drops one video media packet, then watches for it."""

    def __init__(self, worker: RecordingWorker) -> None:
        self.worker = worker
        self.video_ssrc: int | None = None
        self.forward: Callable[[Transport, bytes], None] = worker._on_rtp
        self.seen = 0
        self.dropped: int | None = None
        self.nacks_at_drop = 0
        self.copies_before_nack = 0
        self.resent_accepted = 0
        self.at_drop = ""
        self.after_drop = 0  # video packets seen after the drop (a NACK needs one)
        worker._on_rtp = self  # type: ignore[method-assign]

    def __call__(self, transport: Transport, data: bytes) -> None:
        padding_only = bool(data[0] & 0x20) or len(data) < MIN_MEDIA_BYTES
        if self.video_ssrc is None or _ssrc(data) != self.video_ssrc:
            self.forward(transport, data)
            return
        self.seen += 1
        seq = _seq(data)
        nacks = self.worker.counters.nack_upstream
        if self.dropped is None and self.seen > PACKETS_BEFORE_DROP and not padding_only:
            self.dropped = seq  # lost on the way in: never reaches SRTP or the data path
            self.nacks_at_drop = nacks
            producer = transport.producers.get(self.video_ssrc)
            self.at_drop = (
                f"producer started {producer is not None and producer.started}, "
                f"rtp_in {self.worker.counters.rtp_in}"
            )
            return
        if self.dropped is not None and seq != self.dropped:
            self.after_drop += 1
        if seq == self.dropped and nacks == self.nacks_at_drop:
            self.copies_before_nack += 1  # Chrome's own probe padding, not an answer: lost too
            return
        before = self.worker.counters.rtp_in
        self.forward(transport, data)
        if seq == self.dropped and self.worker.counters.rtp_in == before + 1:
            self.resent_accepted += 1  # arrived again and passed SRTP authentication


def scenario(worker: RecordingWorker, spy: DropOnce, tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import Route, sync_playwright

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/static/js/media.js":
            route.fulfill(body=MEDIA_JS.read_text(), content_type="text/javascript")
        elif path == "/page.html":
            route.fulfill(body=PAGE.read_text(), content_type="text/html")
        else:
            route.fulfill(status=404, body="")

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        context = launch_persistent(pw, tmp)
        try:
            context.route(f"{ORIGIN}/**", serve)
            page = context.new_page()

            def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
                if kind == "media.offer":
                    video = [
                        m
                        for m in parse_offer(body["sdp"]).media
                        if m.kind == "video" and m.ssrc is not None
                    ]
                    out["offers_rtx"] = "rtx/90000" in body["sdp"].lower()
                    spy.video_ssrc = video[0].ssrc
                    answer = trio.from_thread.run(worker.open_peer, CALL, "chromium", body["sdp"])
                    out["answer_rtx"] = "rtx/90000" in answer.lower()
                    return {"sdp": answer}
                return {}

            page.expose_function("waitroomSignal", signal)
            page.goto(f"{ORIGIN}/page.html")
            page.wait_for_function("() => window.pageReady === true")
            page.evaluate("() => window.join()")
            out["dropped_after"] = seconds_until(
                lambda: spy.dropped is not None, DEADLINE, POLL, "a video packet to drop"
            )
            try:
                out["resent_after"] = seconds_until(
                    lambda: spy.resent_accepted > 0,
                    DEADLINE,
                    POLL,
                    f"Chromium resends NACKed packet {spy.dropped}",
                )
            except AssertionError as exc:  # what was seen by then, read when it failed
                raise AssertionError(
                    f"{exc} (copies before the NACK {spy.copies_before_nack}, NACKs sent "
                    f"{worker.counters.nack_upstream}, {spy.after_drop} packets after the drop, "
                    f"at the drop {spy.at_drop})"
                ) from None
        finally:
            context.close()
    return out


async def test_chromium_retransmits_a_packet_the_server_nacks(
    worker: RecordingWorker, tmp_path: Path
) -> None:
    spy = DropOnce(worker)
    result = await trio.to_thread.run_sync(scenario, worker, spy, tmp_path)
    stats = worker.stats()
    print(
        "chromium nack",
        result,
        "copies before the NACK",
        spy.copies_before_nack,
        {k: v for k, v in stats.items() if "nack" in k},
    )
    assert result["offers_rtx"] and not result["answer_rtx"], result  # the original comes back
    assert stats["nack_upstream"] >= 1, stats
    assert spy.resent_accepted >= 1
