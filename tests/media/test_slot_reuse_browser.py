"""A slot freed by someone who left and filled by someone new: the page shows the newcomer's video.

The meeting-room bug (issue 11): a guest stayed, the member left (their slot at the guest was
freed), a second guest came in and took that slot. The server forwarded the newcomer's video on
the freed slot's lines, the guest heard them, but the guest's page never put their video in
their tile: `media.js` had marked the slot not live when the member's slot was freed, and only
a track's `unmute` event marked it live again. Chrome mutes a receive track only a while after
its packets stop; a newcomer whose packets came before that caused no mute and no unmute, so
the newcomer's stream (`peerStreams`, what `onRemote` gives the page) stayed sound only.

Here with two Chromium pages through a real worker: alice and bob, bob leaves, carol joins and
takes bob's slot at alice; alice's stream for carol must hold a video track that decodes, in a
visible tile, and the same again for a fourth who takes a slot freed a moment earlier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.chromium import launch_persistent
from tests.media.conftest import RecordingWorker
from tests.polling import seconds_until

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "web" / "static" / "js" / "media.js"
PAGE = Path(__file__).with_name("page.html")
ORIGIN = "http://localhost"
DEADLINE = 8.0
POLL = 0.1
CALL = "call-reuse"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: What the page shows of ``peer``: the tracks of its stream (onRemote's), the decoded frames of
#: that stream's video track, and whether a visible slot element plays that track.
SHOWN = """async (peer) => {
  const s = window.call.peerStreams.get(peer);
  if (!s) return {video: 0, audio: 0, frames: 0, visible: false};
  const v = s.getVideoTracks()[0];
  let frames = 0;
  if (v) (await window.call.pc.getStats(v)).forEach((r) => {
    if (r.type === 'inbound-rtp') frames = r.framesDecoded;
  });
  const visible = [...document.querySelectorAll('#others video')].some(
    (el) => !el.hidden && el.srcObject && v && el.srcObject.getTracks().includes(v));
  return {video: s.getVideoTracks().length, audio: s.getAudioTracks().length, frames, visible};
}"""


def scenario(worker: RecordingWorker, tmp: Path) -> dict[str, Any]:
    from playwright.sync_api import Route, sync_playwright

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/static/js/media.js":
            route.fulfill(body=MEDIA_JS.read_text(), content_type="text/javascript")
        elif path == "/page.html":
            route.fulfill(body=PAGE.read_text(), content_type="text/html")
        else:
            route.fulfill(status=404, body="")

    pages: dict[str, Any] = {}

    def push_slots() -> None:
        """What the room does on SlotsChanged: each page gets its video and audio maps."""
        for peer, page in pages.items():
            video = trio.from_thread.run_sync(worker.slots, CALL, peer)
            audio = trio.from_thread.run_sync(worker.audio_slots, CALL, peer)
            page.evaluate("([v, a]) => window.call.setSlots(v, a)", [video, audio])

    def shown(at: str, peer: str) -> dict[str, Any]:
        result: dict[str, Any] = pages[at].evaluate(SHOWN, peer)
        return result

    def decodes(at: str, peer: str) -> float:
        """Seconds until ``at`` shows ``peer`` with video in a visible tile, frames growing."""
        first: dict[str, int] = {}
        last: dict[str, Any] = {}

        def ok() -> bool:
            s = last["shown"] = shown(at, peer)
            if not (s["video"] == 1 and s["audio"] == 1 and s["visible"]):
                return False
            first.setdefault("frames", s["frames"])
            return bool(s["frames"] > first["frames"])

        try:
            return seconds_until(ok, DEADLINE, POLL, f"{at} decodes {peer}'s video in its tile")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {last.get('shown')}") from None

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        context = launch_persistent(pw, tmp)
        try:
            context.route(f"{ORIGIN}/**", serve)

            def join(peer: str) -> None:
                page = context.new_page()

                def signal(kind: str, body: dict[str, Any]) -> dict[str, Any]:
                    if kind == "media.offer":
                        answer = trio.from_thread.run(worker.open_peer, CALL, peer, body["sdp"])
                        return {"sdp": answer}
                    if kind == "media.leave":
                        trio.from_thread.run_sync(worker.close_peer, CALL, peer)
                    return {}

                page.expose_function("waitroomSignal", signal)
                page.goto(f"{ORIGIN}/page.html")
                page.wait_for_function("() => window.pageReady === true")
                page.evaluate("() => window.join()")
                pages[peer] = page
                push_slots()

            def leave(peer: str) -> None:
                page = pages.pop(peer)
                page.evaluate("() => window.call.leave()")
                page.close()
                push_slots()

            join("alice")
            join("bob")
            out["alice sees bob"] = decodes("alice", "bob")
            bob_slot = trio.from_thread.run_sync(worker.slots, CALL, "alice")
            leave("bob")
            join("carol")
            carol_slot = trio.from_thread.run_sync(worker.slots, CALL, "alice")
            out["slot reused"] = list(bob_slot) == list(carol_slot)
            out["carol sees alice"] = decodes("carol", "alice")
            out["alice sees carol"] = decodes("alice", "carol")
            # Freed and filled again at once (the newcomer arrives before anything timed out).
            leave("carol")
            join("dave")
            out["alice sees dave"] = decodes("alice", "dave")
        finally:
            context.close()
    return out


async def test_a_newcomer_in_a_freed_slot_is_seen_not_only_heard(
    worker: RecordingWorker, tmp_path: Path
) -> None:
    result = await trio.to_thread.run_sync(scenario, worker, tmp_path)
    print("slot reuse", result)
    assert result["slot reused"] is True, result
    assert worker.stats()["internal_errors"] == 0
