"""The waiting-area journey in headless Chromium against a real ``waitroom serve`` process.

One server and one browser for the module (each person gets their own browser context, so cookies
and storage are as separate as on two computers). The journey: two callers arrive through the demo
link, a provider signs in and sees them live, joins one, invites an interpreter, transfers the other,
and ends the call; the caller's page and the invite link then say so. Every websocket frame each
caller's page receives is decoded and checked for the other caller's name and id.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocket,
    expect,
    sync_playwright,
)

from gateway.protocol import decode_server_messages
from tests.chromium import launch
from tests.polling import seconds_until_flat, seconds_until_grown
from tests.served import Served, served

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-password"
#: The running server the journey drives (other browser tests import it from here).
Server = Served
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
#: The issue's promise: a new arrival shows on the dashboard within one second.
LIVE_UPDATE_MS = 1000
#: Page-level waits (navigation, websocket hello); generous for 2 shared cores.
STEP_MS = 10_000


@dataclass
class Person:
    """One browser context and the server frames its pages received, decoded."""

    context: BrowserContext
    frames: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, ws: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                # A version 2 frame may carry several events back to back.
                self.frames.extend(decode_server_messages(payload))

        ws.on("framereceived", on_frame)

    def page(self) -> Page:
        page = self.context.new_page()
        page.add_init_script(RECORD_PEER_CONNECTIONS)
        page.set_default_timeout(STEP_MS)
        page.on("websocket", self.record)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        return page


#: True when the page's own stream (its self view) holds exactly ``n`` live camera tracks.
LIVE_CAMERA_TRACKS = """(n) => {
    const video = document.querySelector('figure.tile--self video');
    const stream = video && video.srcObject;
    return Boolean(stream)
        && stream.getVideoTracks().filter((t) => t.readyState === 'live').length === n;
}"""
#: Remote participants' tiles whose video element is playing decoded frames: at least ``n``.
DECODING_REMOTE_VIDEO = """(n) => [...document.querySelectorAll('#tiles figure:not(.tile--self) video')]
    .filter((v) => v.srcObject && v.videoWidth > 0 && v.currentTime > 0).length >= n"""
#: Media starts within about a second on loopback; allow for a loaded 2-core machine.
MEDIA_MS = 15_000

#: Test instrumentation, run before any page script: keep every RTCPeerConnection the page makes
#: (media.js's own, unchanged) so the test can read its getStats().
RECORD_PEER_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
})();"""
#: inbound-rtp of the page's open connections, summed per remote participant (tile data-peer):
#: a receive track belongs to the tile whose <video> plays it (remembered once seen there).
#: ``samples`` is totalSamplesReceived, which goes on growing with concealment (made-up audio)
#: when packets stop; ``heard`` leaves the concealed samples out: what really arrived.
INBOUND_BY_PEER = """async () => {
  const peerOf = (window.__trackPeers ??= {});
  for (const tile of document.querySelectorAll('#tiles figure:not(.tile--self)')) {
    const stream = tile.querySelector('video').srcObject;
    if (stream) for (const t of stream.getTracks()) peerOf[t.id] = tile.dataset.peer;
  }
  const out = {};
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((r) => {
      const peer = r.type === 'inbound-rtp' && peerOf[r.trackIdentifier];
      if (!peer) return;
      const e = (out[peer] ??= {frames: 0, videoPackets: 0, samples: 0, heard: 0, audioPackets: 0});
      if (r.kind === 'video') {
        e.frames += r.framesDecoded || 0;
        e.videoPackets += r.packetsReceived || 0;
      } else {
        e.samples += r.totalSamplesReceived || 0;
        e.heard += (r.totalSamplesReceived || 0) - (r.concealedSamples || 0);
        e.audioPackets += r.packetsReceived || 0;
      }
    });
  }
  return out;
}"""
#: Counters that show a participant is seen (decoded video frames) and heard (audio samples as
#: issue 4 asks, and of those the ones that really arrived).
SEE_AND_HEAR = ("frames", "samples", "heard")
#: issue 4: decoded frames and received samples grow within 5 s.
GROWTH_S = 5.0
#: "At once": media that should stop has stopped within this long after the click ...
STOP_S = 1.0
#: ... and then stays flat for this long.
FLAT_S = 1.0
#: getStats polling interval (short polls, not fixed sleeps).
POLL_S = 0.1
#: Media worker processes the server runs (the journey kills the one carrying the call).
MEDIA_WORKERS = 2
#: The UDP port of the SFU a page's newest connection uses (its answer's host candidate).
SFU_PORT = r"""() => Number(window.__pcs.at(-1).remoteDescription.sdp
    .match(/a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/i)[1])"""
#: The page has a newer connection than the ``n`` it had, and it is connected.
NEW_CONNECTION = """(n) => window.__pcs.length > n
    && window.__pcs.at(-1).connectionState === 'connected'"""


def kill_media_worker(server: subprocess.Popen[str], port: int) -> int:
    """SIGKILL the server's media worker process that owns UDP ``port``; its pid."""
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    # Each thread lists the children it started (trio may start them from a worker thread).
    tasks = Path(f"/proc/{server.pid}/task").iterdir()
    children = {int(pid) for task in tasks for pid in (task / "children").read_text().split()}
    for pid in children:
        fds = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                os.kill(pid, signal.SIGKILL)
                return pid
    raise AssertionError(f"no media worker of the server owns UDP port {port}")


def remote_peer(page: Page, name: str) -> str:
    """The peer id of the remote participant called ``name`` on this page."""
    tile = page.locator("#tiles figure:not(.tile--self)", has_text=name)
    peer = tile.get_attribute("data-peer")
    assert peer, f"no tile for {name}"
    return peer


def inbound(page: Page) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = page.evaluate(INBOUND_BY_PEER)
    return result


def counters(page: Page, peers: list[str], keys: tuple[str, ...]) -> dict[tuple[str, str], int]:
    now = inbound(page)
    return {(p, k): now.get(p, {}).get(k, 0) for p in peers for k in keys}


def wait_growing(page: Page, peers: list[str], keys: tuple[str, ...], what: str) -> float:
    """Every counter in ``keys`` from every one of ``peers`` grows within GROWTH_S; the time."""
    return seconds_until_grown(lambda: counters(page, peers, keys), GROWTH_S, POLL_S, what)


def wait_flat(page: Page, peers: list[str], keys: tuple[str, ...], what: str) -> float:
    """The counters stop changing within STOP_S and then stay flat for FLAT_S; when they stopped.

    A connection the page closed reports nothing, which counts as stopped too.
    """
    return seconds_until_flat(lambda: counters(page, peers, keys), STOP_S, FLAT_S, POLL_S, what)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("journey") / "waitroom.sqlite3"
    with served(
        db,
        *("--media-port", "0", "--demo-password", PASSWORD, "--log-level", "WARNING"),
        # Two media worker processes, whatever the core count: one can die, the other serves.
        *("--media-workers", str(MEDIA_WORKERS)),
    ) as running:
        assert len(running.links) >= 2, f"fewer than two demo links: {running.banner}"
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def person(browser: Browser) -> Person:
    return Person(browser.new_context(permissions=["camera", "microphone"]))


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def arrive(page: Page, link: str, name: str, reason: str) -> None:
    page.goto(link)
    page.fill("#f-name", name)
    page.fill("#f-reason", reason)
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/[^/]+/wait$"))


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif value is not None:
        yield str(value)


def test_the_whole_journey(server: Server, browser: Browser) -> None:
    general, physio = server.links[0], server.links[1]
    ada, bob, provider, guest = (person(browser) for _ in range(4))
    timings: dict[str, float] = {}
    try:
        # A provider signs in and opens the dashboard first, so arrivals are seen live.
        dash = provider.page()
        dash.goto(server.url + "/dashboard")
        dash.fill("#username", "provider")
        dash.fill("#password", PASSWORD)
        dash.click("button[type=submit]")
        dash.wait_for_url(re.compile(r"/dashboard$"))
        general_list = dash.locator("section.queue").nth(0)
        physio_list = dash.locator("section.queue").nth(1)
        expect(general_list.locator("h3")).to_contain_text("General Practice")
        expect(dash.locator("#dash-status")).to_have_text("")

        # The caller opens the demo link, fills the form and waits.
        ada_page = ada.page()
        ada_page.goto(general)
        shot(ada_page, "01-arrival-form")
        arrive(ada_page, general, "Ada Lovelace", "Sore knee")
        expect(general_list.get_by_text("Ada Lovelace")).to_be_visible(timeout=LIVE_UPDATE_MS)
        expect(ada_page.locator("#waiting-title")).to_contain_text("General Practice")
        expect(ada_page.locator("#device-check")).to_contain_text("working")
        assert "Ada" not in ada_page.url and "." not in ada_page.url.rsplit("/", 1)[-1]
        ada_page.wait_for_timeout(1100)
        expect(ada_page.locator("#wait-timer")).not_to_have_text("0:00")
        shot(ada_page, "02-waiting")

        bob_page = bob.page()
        arrive(bob_page, general, "Bob Byron", "Follow-up")
        expect(general_list.get_by_text("Bob Byron")).to_be_visible(timeout=LIVE_UPDATE_MS)
        rows = general_list.locator(".queue__caller")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("Ada Lovelace")  # longest wait first
        expect(rows.nth(0)).to_contain_text("Sore knee")
        ada_id = rows.nth(0).get_attribute("data-caller-id")
        bob_id = rows.nth(1).get_attribute("data-caller-id")
        assert ada_id and bob_id
        shot(dash, "03-dashboard")

        # Bob closes his tab and opens the link again: back in the same place, no new arrival.
        bob_page.close()
        bob_page = bob.page()
        bob_page.goto(general)
        bob_page.wait_for_url(re.compile(r"/wait$"))
        expect(bob_page.locator("#waiting")).to_be_visible()
        expect(rows).to_have_count(2)
        expect(rows.nth(1)).not_to_contain_text("not connected")

        # The provider joins Ada: both pages show the call.
        rows.nth(0).get_by_role("button", name="Join").click()
        dash.wait_for_url(re.compile(r"/call/[^/]+$"))
        call = dash
        expect(call.locator("#call")).to_be_visible()
        expect(ada_page.locator("#call")).to_be_visible()
        expect(ada_page.locator("#tiles figure")).to_have_count(2)
        expect(call.locator("#tiles figure")).to_have_count(2)
        expect(ada_page.locator("#tiles")).to_contain_text("Dr Demo Provider")
        # Through the SFU: each side decodes the other's camera (the fake device's test pattern).
        for page in (ada_page, call):
            page.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        # ... and hears the other's microphone (the fake device's beep): getStats on each page.
        ada_peer = remote_peer(call, "Ada Lovelace")
        provider_peer = remote_peer(ada_page, "Dr Demo Provider")
        timings["caller sees+hears provider"] = wait_growing(
            ada_page, [provider_peer], SEE_AND_HEAR, "the caller sees and hears the provider"
        )
        timings["provider sees+hears caller"] = wait_growing(
            call, [ada_peer], SEE_AND_HEAR, "the provider sees and hears the caller"
        )

        # A second member of staff (the demo admin) tries to join too: a clear message, no call.
        admin = person(browser)
        try:
            other = admin.page()
            other.goto(server.url + "/dashboard")
            other.fill("#username", "admin")
            other.fill("#password", PASSWORD)
            other.click("button[type=submit]")
            other.wait_for_url(re.compile(r"/dashboard$"))
            taken = other.locator(f'[data-caller-id="{ada_id}"]')
            expect(taken).to_contain_text("In a call with Dr Demo Provider")
            taken.get_by_role("button", name="Join").click()
            expect(other.locator("#dash-error")).to_contain_text("already with this caller")
            assert other.url.endswith("/dashboard")
            # An admin's header leads to clinic setup and each area's settings (a provider's
            # header has no such link).
            expect(dash.locator("#nav-setup")).to_have_count(0)
            other.locator("#nav-setup").click()
            expect(other.locator("h1")).to_have_text("Clinic setup")
            shot(other, "11-clinic-setup")
            other.get_by_role("link", name="Settings of Physiotherapy").click()
            expect(other.locator("h1")).to_have_text("Settings: Physiotherapy")
            expect(other.locator("#s-tz")).to_have_value("UTC")
            shot(other, "12-area-settings")
        finally:
            admin.context.close()

        call.fill("#chat-text", "Hello Ada, can you hear me?")
        call.press("#chat-text", "Enter")
        expect(ada_page.locator("#chat-log")).to_contain_text("Hello Ada, can you hear me?")
        ada_page.click("#toggle-cam")
        expect(call.locator("#tiles")).to_contain_text("Camera off")
        # Camera off sends nothing: the provider's frames and packets from Ada stop at once.
        timings["camera off: video stops"] = wait_flat(
            call, [ada_peer], ("frames", "videoPackets"), "the caller's camera is off"
        )
        # ... and the camera itself is released (its light goes out): no live video track.
        ada_page.wait_for_function(LIVE_CAMERA_TRACKS, arg=0, timeout=STEP_MS)
        shot(call, "04-call-provider")
        shot(ada_page, "05-call-caller")
        ada_page.click("#toggle-cam")
        expect(call.locator("#tiles")).not_to_contain_text("Camera off")
        ada_page.wait_for_function(LIVE_CAMERA_TRACKS, arg=1, timeout=STEP_MS)
        timings["camera on: video resumes"] = wait_growing(
            call, [ada_peer], ("frames",), "the caller's camera is on again"
        )
        # Microphone off: no audio packets and no new real samples from Ada; on: heard again.
        ada_page.click("#toggle-mic")
        expect(call.locator("#tiles")).to_contain_text("Microphone off")
        timings["mic off: audio stops"] = wait_flat(
            call, [ada_peer], ("audioPackets", "heard"), "the caller's microphone is off"
        )
        ada_page.click("#toggle-mic")
        expect(call.locator("#tiles")).not_to_contain_text("Microphone off")
        timings["mic on: audio resumes"] = wait_growing(
            call, [ada_peer], ("audioPackets", "heard"), "the caller's microphone is on again"
        )

        # The provider invites an interpreter, whose page joins the same call.
        call.click("#invite-open")
        call.fill("#invite-label", "Interpreter")
        call.click("#invite-form button[type=submit]")
        invite_url = call.locator("#invite-url").input_value(timeout=STEP_MS)
        expect(call.locator("#invite-url")).to_have_value(re.compile(r"/i/"))
        invite_url = call.locator("#invite-url").input_value()
        guest_page = guest.page()
        guest_page.goto(invite_url)
        shot(guest_page, "06-invite-landing")
        guest_page.fill("#guest-name", "Olena (interpreter)")
        guest_page.click("button[type=submit]")
        expect(guest_page.locator("#call")).to_be_visible()
        assert guest_page.url.endswith("/g")
        for page in (guest_page, call, ada_page):
            expect(page.locator("#tiles figure")).to_have_count(3)
        expect(ada_page.locator("#tiles")).to_contain_text("Olena (interpreter)")
        # The interpreter receives both others' video; they receive the interpreter's.
        guest_page.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=MEDIA_MS)
        call.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=MEDIA_MS)
        # All three see and hear each other.
        guest_peer = remote_peer(call, "Olena (interpreter)")
        in_guest = [remote_peer(guest_page, "Ada Lovelace"), remote_peer(guest_page, "Dr Demo")]
        timings["interpreter sees+hears both"] = wait_growing(
            guest_page, in_guest, SEE_AND_HEAR, "the interpreter sees and hears both"
        )
        wait_growing(call, [ada_peer, guest_peer], SEE_AND_HEAR, "the provider, both")
        wait_growing(ada_page, [provider_peer, guest_peer], SEE_AND_HEAR, "the caller, both")
        shot(guest_page, "07-call-guest")
        # A second, unused invitation: it must be dead once the call ends.
        call.click("#invite-form button[type=submit]")
        expect(call.locator("#invite-url")).not_to_have_value(invite_url)
        spare_invite = call.locator("#invite-url").input_value()

        # Meanwhile, on a second dashboard tab, the provider transfers Bob to Physiotherapy.
        dash2 = provider.page()
        dash2.goto(server.url + "/dashboard")
        general_list = dash2.locator("section.queue").nth(0)
        physio_list = dash2.locator("section.queue").nth(1)
        bob_row = general_list.locator(f'[data-caller-id="{bob_id}"]')
        expect(general_list.locator(f'[data-caller-id="{ada_id}"]')).to_contain_text(
            "In a call with Dr Demo Provider"
        )
        bob_row.locator("select").select_option(label="Physiotherapy")
        bob_row.get_by_role("button", name="Transfer").click()
        moved = physio_list.locator(f'[data-caller-id="{bob_id}"]')
        expect(moved).to_contain_text("Bob Byron")
        expect(moved).to_contain_text("Transferred from General Practice")
        expect(bob_row).to_have_count(0)
        expect(bob_page.locator("#waiting")).to_be_visible()
        shot(dash2, "08-dashboard-transferred")
        assert physio in server.links

        # Hold: the provider goes back to the dashboard, the caller waits again, the guest is
        # told the call is paused; joining again brings everyone back into the same call.
        call.click("#hold")
        # From the click on, the caller's page receives nothing more from either of them.
        timings["hold: caller's media stops"] = wait_flat(
            ada_page,
            [provider_peer, guest_peer],
            ("frames", "videoPackets", "heard", "audioPackets"),
            "the caller on hold",
        )
        call.wait_for_url(server.url + "/")  # the console (issue 13)
        expect(ada_page.locator("#waiting")).to_be_visible()
        expect(ada_page.locator("#waiting-status")).to_contain_text("on hold")
        expect(guest_page.locator("#call-note")).to_contain_text("paused")
        held = call.locator(f'[data-caller-id="{ada_id}"]')
        expect(held).to_contain_text("On hold")
        held.get_by_role("button", name="Join").click()
        call.wait_for_url(re.compile(r"/call/[^/]+$"))
        for page in (guest_page, call, ada_page):
            expect(page.locator("#tiles figure")).to_have_count(3)
        expect(guest_page.locator("#call-note")).to_be_hidden()
        # Back in the call, the caller sees and hears both again (the provider's page is new).
        ada_page.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=MEDIA_MS)
        provider_peer = remote_peer(ada_page, "Dr Demo Provider")
        timings["re-join: caller's media resumes"] = wait_growing(
            ada_page, [provider_peer, guest_peer], SEE_AND_HEAR, "the caller back in the call"
        )

        # The media worker process carrying the call dies: the server tells every page, each
        # offers again (landing on the other worker) and they see and hear each other again.
        pages = (ada_page, call, guest_page)
        before = [page.evaluate("() => window.__pcs.length") for page in pages]
        killed_at = time.monotonic()
        kill_media_worker(server.process, ada_page.evaluate(SFU_PORT))
        for page, n in zip(pages, before, strict=True):
            page.wait_for_function(NEW_CONNECTION, arg=n, timeout=MEDIA_MS)
        ada_peer = remote_peer(call, "Ada Lovelace")
        wait_growing(ada_page, [provider_peer, guest_peer], SEE_AND_HEAR, "the caller, again")
        wait_growing(call, [ada_peer, guest_peer], SEE_AND_HEAR, "the provider, again")
        timings["worker killed: media back"] = time.monotonic() - killed_at

        # The provider ends the call: the caller's and the guest's pages say so.
        call.click("#end-call")
        expect(ada_page.locator("#ended")).to_be_visible()
        expect(ada_page.locator("#ended")).to_contain_text("Your consultation has ended")
        expect(guest_page.locator("#ended")).to_be_visible()
        expect(general_list.locator(f'[data-caller-id="{ada_id}"]')).to_have_count(0)
        shot(ada_page, "09-ended")
        for link in (invite_url, spare_invite):
            late = guest.page()
            response = late.goto(link)
            assert response is not None and response.status == 410
            expect(late.locator("h1")).to_contain_text("This link has ended")
        shot(late, "10-invite-ended")
        # Coming back to the link after the end starts afresh, not in the ended room.
        ada_page.goto(general)
        expect(ada_page.locator("#f-name")).to_be_visible()
    finally:
        for someone in (ada, bob, provider, guest):
            someone.context.close()
        print("media timings (s)", {k: round(v, 2) for k, v in timings.items()})

    # No script errors and nothing blocked by the content security policy, on any page.
    # (The dead invite links answer 410 on purpose; Chromium logs that as a failed load.)
    for someone in (ada, bob, provider, guest):
        assert [e for e in someone.errors if "status of 410" not in e] == []

    # On the wire: neither caller's page ever received the other's name or id.
    ada_seen = " ".join(s for frame in ada.frames for s in strings_in(frame))
    bob_seen = " ".join(s for frame in bob.frames for s in strings_in(frame))
    assert ada.frames and bob.frames
    # The names as typed: a bare "Bob" also turns up by chance inside random ids and SDP keys.
    assert "Bob Byron" not in ada_seen and "Byron" not in ada_seen and bob_id not in ada_seen
    assert "Ada Lovelace" not in bob_seen and "Lovelace" not in bob_seen and ada_id not in bob_seen
    assert any(f.get("t") == "room.state" for f in ada.frames)


def test_unknown_and_invalid_links_get_calm_pages(server: Server, browser: Browser) -> None:
    someone = person(browser)
    try:
        page = someone.page()
        response = page.goto(server.url + "/w/no-such-area")
        assert response is not None and response.status == 404
        response = page.goto(server.url + "/i/nothing.here")
        assert response is not None and response.status == 410
        # A waiting page opened without a stored visit goes back to the arrival form.
        page.goto(server.links[0] + "/wait")
        page.wait_for_url(server.links[0])
        expect(page.locator("#f-name")).to_be_visible()
    finally:
        someone.context.close()
