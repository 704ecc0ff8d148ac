"""A group consultation in headless Chromium against a real ``waitroom serve`` (issue 12).

One server, one browser, one context per person: a moderator (two pages: the session's page and
the moderator page) and five participants, each a page of their own. The journey: the moderator
creates a session with a
registration list, shares its link (email, copy, leaflet); people arrive and wait without seeing
each other; the moderator admits one, sends them back, locks (a newcomer is told), unlocks, admits
everyone; they see and hear each other; mute all, ask to unmute, raised hands in order, chat to
everyone and privately; breakout rooms evenly at random and then by hand, opened with a timer,
media confined to each room, a broadcast seen in every room, help asked, a visit, a move, the
timer shortened and the rooms closed (a countdown, 15 s on this test server), reopened as
remembered on a short timer that ends them; the end for all. A second session is filled to its 60
places by simulated participants (``waitroom.loadtest``'s HTTP and gateway clients, no browser and
no media, so the six publishing pages do not share the machine with them): the moderator admits
them, the 61st is refused and stays waiting, the end reaches everyone. axe-core's WCAG 2.1 A/AA
rules are checked on each page shown, at a desktop and a phone size (390 px).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    DECODING_REMOTE_VIDEO,
    MEDIA_MS,
    PASSWORD,
    SEE_AND_HEAR,
    Person,
    person,
    remote_peer,
    shot,
    strings_in,
    wait_growing,
)
from tests.chromium import launch
from tests.polling import seconds_until
from tests.served import Served, served

pytestmark = pytest.mark.browser

DESKTOP_SIZE: ViewportSize = {"width": DESKTOP["width"], "height": DESKTOP["height"]}
#: The session's places, the issue's 60.
CAPACITY = 60
#: Participants as browser pages (the full session's 60 are simulated, in a test of its own).
NAMES = ("Ada Lovelace", "Bob Brown", "Cy Young", "Dee Dee", "Eve Adams")
#: Lobby and list updates reach the moderator within this (live updates; six publishing pages
#: in one browser on a slow 2-core machine).
LIVE_MS = 10_000
#: A click or a fill waits this long for a page busy decoding five videos to be ready for it.
STEP_MS = 30_000
#: The fake camera's frame rate: six pages encode three simulcast layers each in one browser.
CAMERA_FPS = 10
#: Breakout rooms close with a countdown (60 s by default; this server is told 15 s).
COUNTDOWN_MS = 15_000  # the server runs with --breakout-countdown-seconds 15
BACK_MS = COUNTDOWN_MS + 20_000
#: A page moved into a room makes a new connection there; a loaded machine may take longer.
ROOM_MEDIA_MS = 2 * MEDIA_MS
_TOKEN = re.compile(r'data-token="([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)"')

#: Every video the page is decoding now (frames decoded grew over 1.5 s) plays in a tile of a
#: person in ``names``, every remote tile is one of them, and the page has one answered open
#: connection (a page in one breakout room decodes nobody of another room). "" or what is wrong.
ONLY_FROM = """async (names) => {
  const captionOf = new Map();
  for (const tile of document.querySelectorAll('#tiles figure:not(.tile--self)')) {
    const stream = tile.querySelector('video').srcObject;
    const caption = tile.querySelector('figcaption').textContent;
    if (stream) for (const t of stream.getTracks()) captionOf.set(t.id, caption);
  }
  /* A connection never answered (an offer the server refused as the page moved) carries
   * nothing; media.js leaves it unclosed (see the report), so only answered ones count. */
  const open = (window.__pcs || []).filter(
    (pc) => pc.connectionState !== 'closed' && pc.remoteDescription);
  if (open.length !== 1) return 'open connections: ' + open.length;
  const frames = async () => {
    const out = new Map();
    (await open[0].getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') out.set(r.trackIdentifier, r.framesDecoded || 0);
    });
    return out;
  };
  const before = await frames();
  await new Promise((done) => setTimeout(done, 1500));
  const after = await frames();
  const wrong = [];
  for (const [track, count] of after) {
    if (count <= (before.get(track) || 0)) continue;
    const who = captionOf.get(track);
    if (who === undefined) wrong.push('decoding a video in no tile');
    else if (!names.some((n) => who.includes(n))) wrong.push('decoding video of ' + who);
  }
  for (const tile of document.querySelectorAll('#tiles figure:not(.tile--self) figcaption')) {
    if (!names.some((n) => tile.textContent.includes(n))) wrong.push('tile of ' + tile.textContent);
  }
  return wrong.join('; ');
}"""
#: The speaker view shows one large tile, of the person speaking now or else the moderator.
SPEAKER_VIEW = """() => {
  const main = document.querySelectorAll('#tiles figure.tile--main:not([hidden])');
  return main.length === 1 && (main[0].classList.contains('tile--speaking')
    || main[0].textContent.includes('Moderator'));
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("group") / "waitroom.sqlite3"
    args = ("--media-port", "0", "--demo-password", PASSWORD, "--log-level", "WARNING")
    countdown = ("--breakout-countdown-seconds", str(COUNTDOWN_MS // 1000))
    with served(db, *args, *countdown, "--media-workers", "1") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright, camera_fps=CAMERA_FPS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(autouse=True, scope="module")
def patient_assertions() -> Iterator[None]:
    """``expect`` waits LIVE_MS here, not Playwright's 5 s, and is set back for other modules."""
    expect.set_options(timeout=LIVE_MS)
    yield
    expect.set_options(timeout=5_000)


def page_of(who: Person) -> Page:
    """A page of ``who`` whose clicks and fills wait STEP_MS (the journey's pages wait 10 s)."""
    page = who.page()
    page.set_default_timeout(STEP_MS)
    return page


def assert_confined(page: Page, names: list[str]) -> None:
    """The page decodes video only of ``names`` (checked twice: the first look may still see the
    last frames of someone who just left the room)."""
    if page.evaluate(ONLY_FROM, names):
        page.wait_for_timeout(1000)
    assert page.evaluate(ONLY_FROM, names) == ""


def sign_in(page: Page, url: str, username: str) -> None:
    page.set_viewport_size(DESKTOP_SIZE)
    page.goto(url + "/sign-in")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def arrive(page: Page, link: str, name: str) -> None:
    page.set_viewport_size(DESKTOP_SIZE)
    page.goto(link)
    page.fill("#group-name", name)
    page.get_by_role("button", name="Go to the waiting area").click()
    page.wait_for_url(re.compile(r"/g/[A-Za-z0-9_-]+/wait$"))


class Simulated:
    """Participants without a browser: each arrives through the link over HTTP, says hello on
    the websocket with its token and enters its room (it waits in the group waiting area, and
    sends nothing else). Runs Trio in a thread beside the synchronous Playwright test."""

    def __init__(self, base_url: str, link: str) -> None:
        self.base_url = base_url
        self.link = link
        self.entered: list[dict[str, Any]] = []
        self.failures: list[str] = []
        #: How many were told their room ended (``room.state`` ``ended``).
        self.ended = 0
        self._lock = threading.Lock()
        self._want = 0
        self._stop = threading.Event()
        self._more = threading.Event()
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    def start(self, count: int) -> None:
        self._want = count
        self._thread.start()

    def add(self, count: int) -> None:
        with self._lock:
            self._want += count
        self._more.set()

    def count(self) -> int:
        with self._lock:
            return len(self.entered)

    def stop(self) -> None:
        self._stop.set()
        self._more.set()
        self._thread.join(timeout=20)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            started = 0
            while not self._stop.is_set():
                with self._lock:
                    want = self._want
                while started < want:
                    nursery.start_soon(self._one, started)
                    started += 1
                await trio.to_thread.run_sync(self._more.wait)
                self._more.clear()
            nursery.cancel_scope.cancel()

    async def _one(self, number: int) -> None:
        from waitroom.loadtest.client import connect
        from waitroom.loadtest.http import Browser as HttpBrowser

        http = HttpBrowser(self.base_url)
        path = "/g/" + self.link
        try:
            form = await http.get(path)
            csrf = form.csrf_token() or ""
            page = await http.post_form(path, {"csrf_token": csrf, "name": f"Sim {number:02d}"})
            match = _TOKEN.search(page.text)
            assert match, f"no token for Sim {number:02d}: {page.status}"
            ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
            async with connect(ws_url, self._on_event, token=match.group(1)) as client:
                view = await client.request("room.enter", {})
                with self._lock:
                    self.entered.append(view)
                await trio.sleep_forever()  # until stop() cancels the nursery
        except Exception as error:  # the test reports every simulated failure
            with self._lock:
                self.failures.append(f"Sim {number:02d}: {error!r}")

    def _on_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "room.state" and body.get("state") == "ended":
            with self._lock:
                self.ended += 1

    def ended_count(self) -> int:
        with self._lock:
            return self.ended


def create_session(console: Page, url: str, title: str, capacity: int, *options: str) -> str:
    """A session starting now, made through the console's form with the options (labels) ticked;
    returns the participants' link, with the console left on the session's page."""
    console.goto(url + "/group/new")
    console.fill("#group-title", title)
    console.fill("#group-start", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"))
    console.select_option("#group-tz", "UTC")
    console.fill("#group-capacity", str(capacity))
    for label in options:
        console.get_by_label(label).check()
    console.get_by_role("button", name="Create group session").click()
    expect(console.locator("#group-about-title")).to_be_visible()
    return console.get_by_label("Link for participants").input_value()


def moderator_lobby(page: Page) -> Any:
    return page.locator("#lobby-list")


@pytest.mark.timeout(600)
def test_a_group_session_from_registration_to_breakouts_and_the_end(
    server: Served, browser: Browser
) -> None:
    staff = person(browser)
    people = {name: person(browser) for name in NAMES}
    late = person(browser)
    everyone: list[Person] = [staff, late, *people.values()]
    try:
        # -- the moderator creates the session from the console --------------------------------
        console = page_of(staff)
        sign_in(console, server.url, "provider")
        section = console.locator("#console-group_sessions")
        expect(section).to_be_visible()
        section.get_by_role("link", name="New group session").click()
        expect(console.locator("h1")).to_have_text("New group session")
        assert_accessible_at_both_sizes(console, "the new group session form")
        console.fill("#group-title", "Knee class")
        now = datetime.now(UTC)
        console.fill("#group-start", now.strftime("%Y-%m-%dT%H:%M"))
        console.select_option("#group-tz", "UTC")
        console.fill("#group-capacity", str(CAPACITY))
        console.fill("#group-registrations", "Ada Lovelace, ada@example.org\nBob Brown")
        console.get_by_role("button", name="Create group session").click()
        expect(console.locator("#group-done")).to_contain_text("Group session created")
        link = console.get_by_label("Link for participants").input_value()
        assert re.search(r"/g/[A-Za-z0-9_-]{16,}$", link), link
        expect(console.locator("#registrations")).to_contain_text("Ada Lovelace")
        expect(console.locator("#registrations")).to_contain_text("ada@example.org")
        assert_accessible_at_both_sizes(console, "the group session's page")
        # Share link: copy, email, the leaflet in both languages.
        console.context.grant_permissions(["clipboard-read", "clipboard-write"])
        console.get_by_role("button", name="Copy link").click()
        expect(console.locator("#copy-status")).to_have_text("Link copied.")
        console.fill("#recipient", "ada@example.org")
        console.get_by_role("button", name="Send", exact=True).click()
        expect(console.locator("#send-result")).to_contain_text("ada@example.org")
        for lang in ("en", "uk"):
            href = console.locator(f"a[data-leaflet][hreflang={lang}]").get_attribute("href")
            assert href
            pdf = console.request.get(server.url + href)
            assert pdf.status == 200 and pdf.body().startswith(b"%PDF"), (lang, pdf.status)
        console.goto(server.url + "/")
        expect(section.locator(".group-sessions__item", has_text="Knee class")).to_be_visible()
        assert_accessible_at_both_sizes(console, "the console with a group session")

        # -- a forged link, in both languages -------------------------------------------------
        forged = page_of(late)
        forged.set_viewport_size(DESKTOP_SIZE)
        response = forged.goto(server.url + "/g/not-a-real-link-at-all")
        assert response is not None and response.status == 404
        expect(forged.locator("h1")).to_have_text("Link not recognised")
        assert_accessible_at_both_sizes(forged, "a forged group link")
        late.context.add_cookies([{"name": "waitroom_lang", "value": "uk", "url": server.url}])
        forged.goto(link)
        expect(forged.locator("h1")).to_contain_text("Групова сесія")
        assert_accessible_at_both_sizes(forged, "the group link's form in Ukrainian")
        late.context.clear_cookies()

        # -- five people arrive and wait; none sees another ------------------------------------
        pages: dict[str, Page] = {}
        for name, who in people.items():
            pages[name] = page_of(who)
            arrive(pages[name], link, name)
            expect(pages[name].locator("#group-waiting")).to_be_visible()
            expect(pages[name].locator("#group-waiting-title")).to_have_text(
                "You are in the waiting area"
            )
        ada, bob, cy, dee, eve = (pages[n] for n in NAMES)
        expect(ada.locator("#device-check")).to_contain_text("working")
        ada.wait_for_timeout(1100)
        expect(ada.locator("#wait-timer")).not_to_have_text("0:00")
        assert_accessible_at_both_sizes(ada, "the group waiting area")
        shot(ada, "group-01-waiting")

        # -- the moderator page: who waits, registered or not ----------------------------------
        mod = page_of(staff)
        mod.goto(server.url + "/")
        mod.locator("#console-group_sessions").get_by_role("link", name="Open Knee class").click()
        expect(mod.locator("#group-call")).to_be_visible()
        lobby = moderator_lobby(mod)
        expect(lobby.locator("li")).to_have_count(len(NAMES), timeout=LIVE_MS)
        expect(lobby.locator("li", has_text="Ada Lovelace")).to_contain_text("registered")
        expect(lobby.locator("li", has_text="Cy Young")).to_contain_text("not registered")
        expect(lobby.locator("li", has_text="Ada Lovelace")).to_contain_text("waiting")
        assert_accessible_at_both_sizes(mod, "the moderator page with people waiting")
        shot(mod, "group-02-lobby")

        # Admit one.
        lobby.get_by_role("button", name="Admit Ada Lovelace").click()
        expect(ada.locator("#group-call")).to_be_visible(timeout=LIVE_MS)
        expect(mod.locator("#people-list")).to_contain_text("Ada Lovelace", timeout=LIVE_MS)
        expect(lobby.locator("li")).to_have_count(len(NAMES) - 1)
        expect(bob.locator("#group-waiting")).to_be_visible()
        # Send back.
        mod.get_by_role("button", name="Send back: Ada Lovelace").click()
        expect(ada.locator("#group-waiting")).to_be_visible(timeout=LIVE_MS)
        expect(ada.locator("#group-waiting-status")).to_contain_text("moved you back")
        expect(lobby.locator("li", has_text="Ada Lovelace")).to_contain_text("sent back")

        # Lock: a newcomer is told, nobody new gets in; then unlock.
        mod.get_by_role("button", name="Lock the session").click()
        expect(mod.locator("#lock")).to_have_attribute("aria-pressed", "true")
        newcomer = page_of(late)
        newcomer.set_viewport_size(DESKTOP_SIZE)
        response = newcomer.goto(link)
        assert response is not None and response.status == 423
        expect(newcomer.locator("h1")).to_have_text("This session is locked")
        assert_accessible_at_both_sizes(newcomer, "a locked group session's link")
        late.context.add_cookies([{"name": "waitroom_lang", "value": "uk", "url": server.url}])
        newcomer.reload()
        expect(newcomer.locator("h1")).to_have_text("Цю сесію закрито")
        late.context.clear_cookies()
        mod.get_by_role("button", name="Unlock the session").click()
        expect(mod.locator("#lock")).to_have_attribute("aria-pressed", "false")

        # Admit everyone waiting.
        mod.get_by_role("button", name="Admit all").click()
        for page in pages.values():
            expect(page.locator("#group-call")).to_be_visible(timeout=LIVE_MS)
        expect(mod.locator("#people-list li")).to_have_count(len(NAMES) + 1, timeout=LIVE_MS)
        expect(mod.locator("#lobby-empty")).to_be_visible()
        expect(mod.locator("#group-admitted")).to_have_text(str(len(NAMES)))

        # They see and hear each other through the server (simulcast publishers).
        mod.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=MEDIA_MS)
        ada.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=MEDIA_MS)
        wait_growing(
            ada, [remote_peer(ada, "Dr Demo Provider")], SEE_AND_HEAR, "Ada sees the moderator"
        )
        expect(ada.locator("#tiles figure", has_text="Moderator")).to_have_attribute(
            "data-pinned", "true"
        )
        assert_accessible_at_both_sizes(ada, "a participant in the group call")
        assert_accessible_at_both_sizes(mod, "the moderator in the group call")
        # Gallery pages at phone width (4 a page), then the speaker view.
        ada.set_viewport_size({"width": 390, "height": 844})
        expect(ada.locator("#group-pager")).to_be_visible()
        expect(ada.locator("#page-text")).to_have_text("Page 1 of 2")
        ada.get_by_role("button", name="Next page").click()
        expect(ada.locator("#page-text")).to_have_text("Page 2 of 2")
        ada.get_by_role("button", name="Speaker view").click()
        # One large tile: whoever speaks now (else the moderator); the moderator stays in view.
        ada.wait_for_function(SPEAKER_VIEW)
        expect(ada.locator("#tiles figure", has_text="Moderator")).to_be_visible()
        assert_accessible_at_both_sizes(ada, "a participant's speaker view")
        ada.get_by_role("button", name="Gallery").click()
        ada.set_viewport_size(DESKTOP_SIZE)
        shot(mod, "group-03-call")

        # -- mute all; asked to unmute; camera off -------------------------------------------
        mod.get_by_role("button", name="Mute all").click()
        for page in pages.values():
            expect(page.locator("#toggle-mic")).to_have_attribute("aria-pressed", "false")
        expect(mod.locator("#people-list li", has_text="Bob Brown")).to_contain_text("muted")
        mod.get_by_role("button", name="Ask to unmute: Bob Brown").click()
        expect(bob.locator("#unmute-request")).to_be_visible(timeout=LIVE_MS)
        expect(bob.locator("#toggle-mic")).to_have_attribute("aria-pressed", "false")
        assert_accessible_at_both_sizes(bob, "a participant asked to unmute")
        bob.get_by_role("button", name="Unmute my microphone").click()
        expect(bob.locator("#toggle-mic")).to_have_attribute("aria-pressed", "true")
        mod.get_by_role("button", name="Camera off: Cy Young").click()
        expect(cy.locator("#toggle-cam")).to_have_attribute("aria-pressed", "false")
        # Spotlight for everyone.
        mod.get_by_role("button", name="Spotlight: Dee Dee").click()
        expect(eve.locator("#tiles figure", has_text="Dee Dee")).to_have_class(
            re.compile("tile--spotlight")
        )
        expect(eve.locator("#tiles figure", has_text="Dee Dee")).to_have_attribute(
            "data-pinned", "true"
        )
        mod.get_by_role("button", name="End spotlight: Dee Dee").click()

        # -- raised hands, in order ----------------------------------------------------------
        bob.get_by_role("button", name="Raise hand").click()
        cy.get_by_role("button", name="Raise hand").click()
        hands = mod.locator("#hands-list li")
        expect(hands).to_have_count(2, timeout=LIVE_MS)
        expect(hands.nth(0)).to_contain_text("Bob Brown")
        expect(hands.nth(1)).to_contain_text("Cy Young")
        mod.get_by_role("button", name="Lower hand: Bob Brown").click()
        expect(bob.locator("#toggle-hand")).to_have_attribute("aria-pressed", "false")
        expect(hands).to_have_count(1)

        # -- chat to everyone, and privately to the moderator --------------------------------
        ada.fill("#chat-text", "Hello everyone")
        ada.get_by_role("button", name="Send").click()
        expect(eve.locator("#chat-log")).to_contain_text("Hello everyone")
        bob.select_option("#chat-to", label="Private to Dr Demo Provider")
        bob.fill("#chat-text", "A question for you")
        bob.get_by_role("button", name="Send").click()
        expect(mod.locator("#chat-log .chat__private")).to_contain_text("A question for you")
        expect(mod.locator("#chat-log")).to_contain_text("Private from Bob Brown")
        expect(ada.locator("#chat-log")).not_to_contain_text("A question for you")

        # -- breakout rooms ------------------------------------------------------------------
        panel = mod.locator("#group-breakouts")
        panel.locator("#breakout-count").fill("2")
        panel.get_by_role("button", name="Create rooms").click()
        expect(panel.locator(".breakout-room")).to_have_count(2)
        panel.locator("#breakout-name-0").fill("Knees")
        panel.get_by_role("button", name="Rename: Room 1").click()
        expect(panel.locator("#breakout-phase")).to_contain_text("2 rooms ready")
        panel.get_by_label("Evenly at random").check()
        panel.get_by_role("button", name="Apply").click()
        expect(panel.locator(".breakout-room li[data-member]")).to_have_count(len(NAMES))
        sizes = sorted(
            panel.locator(".breakout-room").nth(i).locator("li[data-member]").count()
            for i in range(2)
        )
        assert sizes == [2, 3], sizes
        # ... then by hand: Ada and Bob to Knees, the others to Room 2.
        for name in NAMES:
            room = "Knees" if name in NAMES[:2] else "Room 2"
            panel.get_by_label(f"Room for {name}").first.select_option(label=room)
            box = panel.locator(".breakout-room").nth(0 if room == "Knees" else 1)
            expect(box.locator("li[data-member]", has_text=name)).to_have_count(1)
        assert_accessible_at_both_sizes(mod, "the moderator with breakout rooms ready")
        panel.locator("#breakout-minutes").fill("3")
        panel.locator("#breakout-seconds").fill("0")
        panel.get_by_role("button", name="Open rooms").click()
        for name, page in pages.items():
            room = "Knees" if name in NAMES[:2] else "Room 2"
            expect(page.locator("#breakout-bar")).to_be_visible(timeout=LIVE_MS)
            expect(page.locator("#breakout-room-name")).to_have_text(room)
            expect(page.locator("#breakout-clock")).to_have_text(re.compile(r"^[23]:\d\d$"))
        # Media stays inside a room: Ada sees Bob, decodes nobody of Room 2.
        ada.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=ROOM_MEDIA_MS)
        cy.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=ROOM_MEDIA_MS)
        wait_growing(ada, [remote_peer(ada, "Bob Brown")], SEE_AND_HEAR, "Ada sees Bob in Knees")
        wait_growing(cy, [remote_peer(cy, "Dee Dee")], ("frames",), "Cy sees Dee in Room 2")
        assert_confined(ada, ["Bob Brown"])
        assert_confined(cy, ["Dee Dee", "Eve Adams"])
        assert_accessible_at_both_sizes(ada, "a participant in a breakout room")
        shot(ada, "group-04-breakout")
        # A broadcast seen in every room.
        panel.locator("#breakout-broadcast-text").fill("Five minutes to finish")
        panel.get_by_role("button", name="Send to all rooms").click()
        for page in pages.values():
            expect(page.locator("#breakout-broadcast")).to_contain_text(
                "Five minutes to finish", timeout=LIVE_MS
            )
        # Help: the moderator learns which room wants them.
        dee.get_by_role("button", name="Ask for help").click()
        expect(panel.locator("#breakout-help-list")).to_contain_text("Room 2", timeout=LIVE_MS)
        expect(panel.locator(".breakout-room").nth(1)).to_have_class(
            re.compile("breakout-room--help")
        )
        # A visit, and back.
        panel.get_by_role("button", name="Visit Room 2").click()
        expect(mod.locator("#breakout-bar")).to_be_visible()
        expect(mod.locator("#tiles figure", has_text="Dee Dee")).to_be_visible(timeout=LIVE_MS)
        expect(cy.locator("#tiles figure", has_text="Dr Demo Provider")).to_be_visible(
            timeout=LIVE_MS
        )
        cy.wait_for_function(DECODING_REMOTE_VIDEO, arg=3, timeout=ROOM_MEDIA_MS)
        wait_growing(cy, [remote_peer(cy, "Dr Demo Provider")], ("frames",), "Cy sees the visitor")
        assert_accessible_at_both_sizes(mod, "the moderator visiting a breakout room")
        mod.get_by_role("button", name="Back to the main call").click()
        expect(mod.locator("#breakout-bar")).to_be_hidden()
        expect(cy.locator("#tiles figure", has_text="Dr Demo Provider")).to_have_count(
            0, timeout=LIVE_MS
        )
        # A move: Eve from Room 2 to Knees.
        panel.get_by_label("Room for Eve Adams").first.select_option(label="Knees")
        expect(eve.locator("#breakout-room-name")).to_have_text("Knees", timeout=LIVE_MS)
        expect(eve.locator("#tiles figure", has_text="Ada Lovelace")).to_be_visible()
        eve.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=ROOM_MEDIA_MS)
        wait_growing(eve, [remote_peer(eve, "Ada Lovelace")], ("frames",), "Eve sees Ada")
        expect(cy.locator("#tiles figure", has_text="Eve Adams")).to_have_count(0)
        assert_confined(cy, ["Dee Dee"])
        # Shorten the timer, then close every room: a countdown everywhere, then back.
        before = ada.locator("#breakout-clock").inner_text()
        panel.get_by_role("button", name="1 minute less").click()
        expect(ada.locator("#breakout-clock")).not_to_have_text(before)
        assert ada.locator("#breakout-clock").inner_text() < before
        panel.get_by_role("button", name="Close all rooms").click()
        for page in pages.values():
            expect(page.locator("#breakout-closing")).to_be_visible(timeout=LIVE_MS)
            expect(page.locator("#breakout-closing")).to_contain_text("seconds")
        assert_accessible_at_both_sizes(bob, "a breakout room closing")
        for page in pages.values():
            expect(page.locator("#breakout-bar")).to_be_hidden(timeout=BACK_MS)
        ada.wait_for_function(DECODING_REMOTE_VIDEO, arg=2, timeout=ROOM_MEDIA_MS)
        # Reopened as remembered, on a short timer that ends them by itself.
        panel.locator("#breakout-minutes").fill("0")
        panel.locator("#breakout-seconds").fill("10")
        panel.get_by_role("button", name="Open rooms").click()
        expect(eve.locator("#breakout-room-name")).to_have_text("Knees", timeout=LIVE_MS)
        expect(cy.locator("#breakout-room-name")).to_have_text("Room 2", timeout=LIVE_MS)
        expect(cy.locator("#breakout-closing")).to_be_visible(timeout=30_000)
        expect(mod.locator("#breakout-phase")).to_contain_text("closing")

        # The timer's closing ends: everyone is back in the main call.
        for page in pages.values():
            expect(page.locator("#breakout-bar")).to_be_hidden(timeout=BACK_MS)
        expect(mod.locator("#breakout-phase")).to_contain_text("ready")

        # -- the end for all -----------------------------------------------------------------
        mod.get_by_role("button", name="End for all").click()
        expect(mod.locator("#confirm-dialog")).to_be_visible()
        assert_accessible_at_both_sizes(mod, "the end-for-all question")
        mod.locator("#confirm-yes").click()
        expect(mod.locator("#group-ended")).to_be_visible(timeout=LIVE_MS)
        for page in pages.values():
            expect(page.locator("#group-ended")).to_be_visible(timeout=LIVE_MS)
        assert_accessible_at_both_sizes(ada, "a participant after the end")
        response = newcomer.goto(link)
        assert response is not None and response.status == 410
        expect(newcomer.locator("h1")).to_have_text("This session has ended")
        assert_accessible_at_both_sizes(newcomer, "an ended group session's link")
        for who in everyone:
            problems = [e for e in who.errors if "Failed to load resource" not in e]
            assert not problems, problems
    finally:
        for who in everyone:
            who.context.close()


def test_waiting_callers_never_see_each_other_and_privacy_holds(
    server: Served, browser: Browser
) -> None:
    """Before admission a waiting page's frames name nobody else who waits; in a session with
    every privacy option on, a participant sees first names only, no participant list, and can
    write privately to the moderator only."""
    staff = person(browser)
    a, b = person(browser), person(browser)
    try:
        console = page_of(staff)
        sign_in(console, server.url, "provider")
        link = create_session(
            console,
            server.url,
            "Quiet group",
            6,
            "Show participants by first name only",
            "Hide the participant list from participants",
            "No private chat between participants",
        )
        expect(console.locator("main")).to_contain_text("first name only")
        first, second = page_of(a), page_of(b)
        arrive(first, link, "Wanda Waiting")
        arrive(second, link, "Xavier Waiting")
        mod = page_of(staff)
        mod.goto(console.url.split("?")[0] + "/call")
        expect(mod.locator("#lobby-list li")).to_have_count(2, timeout=LIVE_MS)
        first.wait_for_timeout(500)
        for who, other in ((a, "Xavier"), (b, "Wanda")):
            seen = [s for f in who.frames for s in strings_in(f) if other in s]
            assert not seen, seen
        # Admitted, with every privacy option on.
        mod.locator("#lobby-list").get_by_label("Select Wanda Waiting").check()
        mod.locator("#lobby-list").get_by_label("Select Xavier Waiting").check()
        mod.get_by_role("button", name="Admit selected").click()
        expect(first.locator("#group-call")).to_be_visible(timeout=LIVE_MS)
        expect(second.locator("#group-call")).to_be_visible(timeout=LIVE_MS)
        expect(first.locator("#people-hidden")).to_be_visible()
        expect(first.locator("#people-list")).to_contain_text("Dr Demo Provider")
        expect(first.locator("#people-list li")).to_have_count(2)
        expect(first.locator("#people-list")).not_to_contain_text("Xavier")
        options = first.locator("#chat-to option").all_inner_texts()
        assert options == ["Everyone", "Private to Dr Demo Provider"], options
        second.fill("#chat-text", "Hi all")
        second.get_by_role("button", name="Send").click()
        expect(first.locator("#chat-log")).to_contain_text("Hi all")
        expect(first.locator("#chat-log")).not_to_contain_text("Xavier")
        expect(mod.locator("#people-list")).to_contain_text("Xavier Waiting")
        assert_accessible_at_both_sizes(first, "a participant with the list hidden")
        for who in (staff, a, b):
            problems = [e for e in who.errors if "Failed to load resource" not in e]
            assert not problems, problems
    finally:
        for who in (staff, a, b):
            who.context.close()


@pytest.mark.timeout(300)
def test_a_full_session_refuses_the_61st_and_its_end_reaches_everyone(
    server: Served, browser: Browser
) -> None:
    """60 simulated participants fill the places; the moderator admits them all and the page stays
    usable with 61 in the list; the 61st is refused with the reason shown and stays waiting; the
    end for all tells every participant and the one still waiting, and the link then says so."""
    staff, late = person(browser), person(browser)
    simulated: Simulated | None = None
    try:
        console = page_of(staff)
        sign_in(console, server.url, "provider")
        link = create_session(console, server.url, "Full class", CAPACITY)
        match = re.search(r"/g/([A-Za-z0-9_-]{16,})$", link)
        assert match, link
        mod = page_of(staff)
        mod.goto(console.url.split("?")[0] + "/call")
        expect(mod.locator("#group-call")).to_be_visible()
        lobby = moderator_lobby(mod)

        simulated = Simulated(server.url, match.group(1))
        simulated.start(CAPACITY)
        try:
            expect(lobby.locator("li")).to_have_count(CAPACITY, timeout=30_000)
        except AssertionError as error:  # say why: the simulated participants' own failures
            raise AssertionError(f"{simulated.count()} entered, {simulated.failures}") from error
        assert not simulated.failures, simulated.failures
        mod.get_by_role("button", name="Admit all").click()
        expect(mod.locator("#group-admitted")).to_have_text(str(CAPACITY))
        expect(mod.locator("#people-list li")).to_have_count(CAPACITY + 1)
        expect(lobby.locator("li")).to_have_count(0)

        # -- the 61st is refused and stays waiting ---------------------------------------------
        simulated.add(1)
        expect(lobby.locator("li")).to_have_count(1, timeout=30_000)
        mod.get_by_role("button", name="Admit all").click()
        expect(mod.locator("#lobby-error")).to_be_visible()
        expect(mod.locator("#lobby-error")).to_contain_text(re.compile("full|place", re.I))
        expect(lobby.locator("li")).to_have_count(1)
        expect(mod.locator("#group-admitted")).to_have_text(str(CAPACITY))
        assert not simulated.failures, simulated.failures
        assert_accessible_at_both_sizes(mod, "a full session's moderator page")

        # -- the end for all: every participant and the one waiting are told ------------------
        mod.get_by_role("button", name="End for all").click()
        expect(mod.locator("#confirm-dialog")).to_be_visible()
        mod.locator("#confirm-yes").click()
        expect(mod.locator("#group-ended")).to_be_visible()
        everyone_told = simulated  # the closure below reads it as not None
        seconds_until(
            lambda: everyone_told.ended_count() == CAPACITY + 1,
            LIVE_MS / 1000,
            0.1,
            f"all {CAPACITY + 1} told the session ended (so far {everyone_told.ended_count()})",
        )
        newcomer = page_of(late)
        newcomer.set_viewport_size(DESKTOP_SIZE)
        response = newcomer.goto(link)
        assert response is not None and response.status == 410
        expect(newcomer.locator("h1")).to_have_text("This session has ended")
        assert not simulated.failures, simulated.failures
    finally:
        if simulated is not None:
            simulated.stop()
        for who in (staff, late):
            who.context.close()


#: The camera layers of the page's open connection and whether Chrome sends each ({rid: active});
#: null while it has no answered connection or no camera sender.
CAMERA_LAYERS = """() => {
  const open = (window.__pcs || []).filter(
    (pc) => pc.connectionState !== 'closed' && pc.remoteDescription);
  if (open.length !== 1) return null;
  const sender = open[0].getSenders().find((s) => s.track && s.track.kind === 'video');
  if (!sender) return null;
  const out = {};
  for (const e of sender.getParameters().encodings) out[e.rid] = e.active;
  return out;
}"""
PHONE_SIZE: ViewportSize = {"width": 390, "height": 844}
#: The size each remote tile is shown at on this page, as media.js reports it ({name: "WxH"}).
SHOWN_AT = """() => Object.fromEntries(
  [...document.querySelectorAll('#tiles figure:not(.tile--self)')].map((tile) => {
    const r = tile.getBoundingClientRect();
    return [tile.querySelector('figcaption').textContent, Math.round(r.width) + 'x' + Math.round(r.height)];
  }))"""


def test_a_camera_shown_only_small_sends_only_its_small_layers(
    server: Served, browser: Browser
) -> None:
    """A group call publishes three simulcast layers; the server tells each publisher which of
    them anyone shows (``media.layers``) and the page stops the others. Ada is shown only on the
    moderator's page: on a phone her tile is small and her top layer stops; on a desktop it is
    large and the layer is sent again."""
    staff, participant = person(browser), person(browser)
    try:
        console = page_of(staff)
        sign_in(console, server.url, "provider")
        link = create_session(console, server.url, "Layers class", 6)
        mod = page_of(staff)
        mod.goto(console.url.split("?")[0] + "/call")
        expect(mod.locator("#group-call")).to_be_visible()
        ada = page_of(participant)
        arrive(ada, link, "Ada Lovelace")
        moderator_lobby(mod).get_by_role("button", name="Admit Ada Lovelace").click()
        expect(ada.locator("#group-call")).to_be_visible()
        mod.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        ada.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        assert ada.evaluate(CAMERA_LAYERS) == {"q": True, "h": True, "f": True}

        def ada_sends(top: bool, what: str) -> None:
            """Ada's lowest layer is always sent, and her top one (f) only when ``top``."""

            def sending() -> bool:
                layers = ada.evaluate(CAMERA_LAYERS)
                return bool(layers) and layers["q"] and layers["f"] is top

            try:
                seconds_until(sending, LIVE_MS / 1000, 0.2, what)
            except AssertionError as error:
                shown = mod.evaluate(SHOWN_AT)
                raise AssertionError(
                    f"{error}: Ada's page sends {ada.evaluate(CAMERA_LAYERS)}, "
                    f"the moderator's page shows her at {shown}"
                ) from None

        # On the moderator's phone Ada's tile is small: her page stops sending her top layer.
        mod.set_viewport_size(PHONE_SIZE)
        ada_sends(False, "Ada's top layer paused while she is shown small")
        # Spotlit, in the speaker view of a desktop, her tile is large: the top layer is sent again.
        mod.set_viewport_size(DESKTOP_SIZE)
        mod.get_by_role("button", name="Spotlight: Ada Lovelace").click()
        mod.get_by_role("button", name="Speaker view").click()
        ada_sends(True, "Ada's top layer sent again once she is shown large")
    finally:
        for who in (staff, participant):
            who.context.close()
    for who in (staff, participant):
        assert who.errors == [], who.errors
