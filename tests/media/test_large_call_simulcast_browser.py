"""Chromium pages publishing simulcast, plus simulated peers, in one call that does not fit.

Issue 11's browser test of a large call: six Chromium pages publish their camera as simulcast
(`joinMedia({simulcast: true})`) and six of the load tester's simulated peers (`LargeCall`:
three VP8 layers each, room-noise audio levels, RTCP, their own gallery views) make the call
twelve, on a worker with last-N 3. Each quiet page shows two other pages in small tiles
(160x120 CSS px): it must decode both, and get a low layer for them (frame width at most 320),
and no video of anyone it does not show but the speaker. The page whose fake microphone plays
speech becomes the dominant speaker on the others, and they decode its video (a low layer too:
it is forwarded without a tile, at the preroll size).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from media.events import DominantSpeakerChanged
from media.worker import MediaEvent, Worker, WorkerConfig
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.media.test_large_call_browser import write_wav
from tests.polling import seconds_until
from waitroom.loadtest.clip import make_simulcast_clip
from waitroom.loadtest.largecall import LargeCall, TurnSchedule

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "web" / "static" / "js" / "media.js"
PAGE = Path(__file__).with_name("large_page.html")
ORIGIN = "http://localhost"
CALL = "call-large-simulcast"
QUIET = [f"p{i}" for i in range(1, 6)]
SPEAKER = "p0"
PAGES = [SPEAKER, *QUIET]
SIMULATED = [f"s{i}" for i in range(6)]
LAST_N = 3
#: A small tile's frames: the lowest layers of a 640x360 capture are 160 or 320 px wide.
SMALL_WIDTH = 320
DEADLINE = 30.0  # six Chromium encoders and decoders and six simulated peers on 2 cores
POLL = 0.25
#: Simulcast from a 640x360 fake camera: cheaper than 720p for six encoders, still layered.
SIMULCAST = {
    "simulcast": True,
    "constraints": {
        "audio": {"autoGainControl": False, "noiseSuppression": False, "echoCancellation": False},
        "video": {"width": 640, "height": 360, "frameRate": 15},
    },
}


def shows(peer: str) -> list[str]:
    """The two tiles a page displays: the next two quiet pages (never the speaker)."""
    others = [q for q in QUIET if q != peer]
    start = QUIET.index(peer) if peer in QUIET else 0
    return [others[start % len(others)], others[(start + 1) % len(others)]]


@pytest.fixture
async def worker() -> AsyncIterator[tuple[Worker, list[MediaEvent]]]:
    events: list[MediaEvent] = []
    w = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1", last_n=LAST_N),
        on_event=events.append,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w, events
        nursery.cancel_scope.cancel()


def scenario(worker: Worker, events: list[MediaEvent], tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import Route, sync_playwright

    out: dict[str, Any] = {}
    pages: dict[str, Any] = {}

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/static/js/media.js":
            route.fulfill(body=MEDIA_JS.read_text(), content_type="text/javascript")
        elif path == "/page.html":
            route.fulfill(body=PAGE.read_text(), content_type="text/html")
        else:
            route.fulfill(status=404, body="")

    def call_worker(fn: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run_sync(fn, *args)

    def join(context: Any, peer: str) -> None:
        page = context.new_page()

        def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
            if kind == "media.offer":
                answer = trio.from_thread.run(worker.open_peer, CALL, peer, body["sdp"])
                return {
                    "sdp": answer,
                    "slots": call_worker(worker.slots, CALL, peer),
                    "audio": call_worker(worker.audio_slots, CALL, peer),
                }
            if kind == "media.view":
                shown = {p: int(size["h"]) for p, size in body["shown"].items()}
                call_worker(worker.set_view, CALL, peer, shown, list(body.get("pinned", [])))
            elif kind == "media.leave":
                call_worker(worker.close_peer, CALL, peer)
            return {}

        page.expose_function("waitroomSignal", signal)
        page.goto(f"{ORIGIN}/page.html")
        page.wait_for_function("() => window.pageReady === true")
        others = [p for p in [*PAGES, *SIMULATED] if p != peer]
        page.evaluate(
            "(a) => window.join(a[0], a[1], a[2], a[3])", [peer, others, shows(peer), SIMULCAST]
        )
        pages[peer] = page

    def push_slots() -> None:
        for peer, page in pages.items():
            video = {str(k): v for k, v in call_worker(worker.slots, CALL, peer).items()}
            audio = {str(k): v for k, v in call_worker(worker.audio_slots, CALL, peer).items()}
            page.evaluate("(m) => window.call.setSlots(m[0], m[1])", [video, audio])

    def peers(peer: str) -> dict[str, dict[str, int]]:
        stats: dict[str, Any] = pages[peer].evaluate("() => window.call.stats()")
        return dict(stats["peers"])

    def decoding_small(peer: str, wanted: list[str], before: dict[str, int]) -> bool:
        now = peers(peer)
        return all(
            now.get(w, {}).get("framesDecoded", 0) > before.get(w, 0)
            and 0 < now[w].get("frameWidth", 0) <= SMALL_WIDTH
            for w in wanted
        )

    def wait(predicate: Callable[[], bool], what: str) -> float:
        def step() -> bool:
            push_slots()
            return predicate()

        try:
            return seconds_until(step, DEADLINE, POLL, what)
        except AssertionError as exc:
            seen = {p: peers(p) for p in pages}
            raise AssertionError(f"{exc}; pages see {seen}") from None

    quiet_wav, speech_wav = tmp / "quiet.wav", tmp / "speech.wav"
    write_wav(quiet_wav, speech=False)
    write_wav(speech_wav, speech=True)
    with sync_playwright() as pw:

        def browser(wav: Path, profile: str) -> Any:
            return pw.chromium.launch_persistent_context(
                str(tmp / profile),
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
            )

        quiet = browser(quiet_wav, "quiet")
        loud = browser(speech_wav, "loud")
        try:
            for context in (quiet, loud):
                context.route(f"{ORIGIN}/**", serve)
            for peer in QUIET:
                join(quiet, peer)
            out["shown_small"] = wait(
                lambda: all(decoding_small(p, shows(p), {}) for p in QUIET),
                "each page decodes the two small tiles it shows, on a low layer",
            )
            for peer in QUIET:
                got = set(call_worker(worker.slots, CALL, peer).values())
                assert got == set(shows(peer)), (peer, got)  # nobody it does not show
            before = {p: {q: s["framesDecoded"] for q, s in peers(p).items()} for p in QUIET}
            join(loud, SPEAKER)
            out["speaker_dominant"] = wait(
                lambda: DominantSpeakerChanged(CALL, SPEAKER) in events,
                "the page with speech becomes the dominant speaker",
            )
            out["speaker_seen"] = wait(
                lambda: all(decoding_small(p, [SPEAKER], before[p]) for p in QUIET),
                "every quiet page decodes the speaker's video",
            )
            first = next(e for e in events if isinstance(e, DominantSpeakerChanged))
            assert first.peer_id == SPEAKER  # neither quiet pages nor simulated noise took it
            out["widths"] = {p: {q: s["frameWidth"] for q, s in peers(p).items()} for p in QUIET}
            shot = ROOT / "test-artifacts" / "media-large-call-simulcast.png"
            shot.parent.mkdir(exist_ok=True)
            pages[QUIET[0]].screenshot(path=str(shot))
        finally:
            loud.close()
            quiet.close()
    return out


async def test_simulcast_pages_and_simulated_peers_small_tiles_get_low_layers(
    worker: tuple[Worker, list[MediaEvent]], tmp_path: Path
) -> None:
    w, events = worker
    clip = await trio.to_thread.run_sync(make_simulcast_clip, 0.5)
    names = [*PAGES, *SIMULATED]
    simulated = LargeCall(
        clip, names, SIMULATED, TurnSchedule((), float("inf")), slots=3, audio_slots=3, tiles=2
    )

    async def open_peer(name: str, offer: str) -> str:
        return await w.open_peer(CALL, name, offer)

    async def set_view(name: str, shown: dict[str, int]) -> None:
        w.set_view(CALL, name, shown, [])

    try:
        await simulated.connect(open_peer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(simulated.run, 600.0, set_view)
            started = time.monotonic()
            result = await trio.to_thread.run_sync(scenario, w, events, tmp_path)
            nursery.cancel_scope.cancel()
    finally:
        simulated.close()
    stats = w.stats()
    print("large simulcast call", result, f"{time.monotonic() - started:.1f} s", stats)
    assert stats["simulcast_layers_bound"] >= 2 * (len(PAGES) + len(SIMULATED)), stats
    assert stats["dropped_srtp_auth"] == 0 and stats["internal_errors"] == 0, stats
    # The simulated peers received what they show (the pages they show, on small tiles too).
    received = simulated.results()["subscribers"]
    assert all(
        sum(s["received"] for s in sub["streams"].values() if s["kind"] == "video") > 0
        for sub in received.values()
    ), received
