"""Two nodes, one killed, as the people using them see it in headless Chromium (issue 18).

A provider's console and a caller's waiting page are both served by node b; the caller's area,
and so her room, live on node a (their home once the areas are spread). kill -9 of node a: the
console's websocket on b stays open, node b notices a is gone and its gateway watches the area
again, so the console keeps Ada listed without a reload and without saying it is reconnecting,
and a caller who arrives after the kill (through b, while the area starts again there) appears
on it. Ada's page still says she is waiting.

Bo opens the link while node a hangs (SIGSTOP, before the kill, with Redis paused for those
seconds so that the hang is not yet a death): node b cannot reach the area, so his page is the
calm "Service busy" page, which tries again by itself; once a is killed and the
area starts on b, his page reaches the form without him doing anything. axe-core's WCAG 2.1 AA
rules are checked on the busy page and on the console after the kill, at both sizes.

Starts Redis, two servers and Chromium: run under the heavy lock.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    LIVE_UPDATE_MS,
    MEDIA_MS,
    Person,
    browser,  # noqa: F401 (the module's fixture)
    person,
    shot,
)
from tests.cluster.served_nodes import DEMO_PASSWORD
from tests.cluster.test_serve_nodes import RECONNECT_BUDGET, Cluster, two_nodes
from waitroom.loadtest.scenario import _AREA
from web.remote_areas import KEEP_FOR

pytestmark = pytest.mark.browser

#: ms for the busy page: the page's ask of the hung node times out after 5 s.
BUSY_PAGE_MS = 15_000
#: Seconds from kill -9 of the room's node until both pages decode each other again: the room is
#: back within the 15 s of issue 18, then a new offer and ICE and DTLS on loopback.
MEDIA_AFTER_KILL_S = 25.0
#: ms between looks at a page's connections.
POLL_MS = 200


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with two_nodes(tmp_path) as both:
        yield both


def test_a_console_on_a_live_node_keeps_its_callers_after_the_area_s_node_dies(
    cluster: Cluster,
    browser: Browser,  # noqa: F811
) -> None:
    provider, ada, bo = person(browser), person(browser), person(browser)
    try:
        console = console_on(provider, cluster.b.url)
        lists = console.locator("#console-waiting_areas section.queue")
        expect(lists).to_have_count(2)
        first = lists.nth(0)
        found = _AREA.search(console.content())
        assert found is not None, "no waiting area link on the console"
        link = f"{cluster.b.url}/w/{found.group(2)}"

        ada_page = ada.page()
        ada_page.goto(link)
        fill_arrival(ada_page, "Ada Lovelace", "Sore knee")
        expect(first.locator(".queue__caller", has_text="Ada Lovelace")).to_be_visible(
            timeout=LIVE_UPDATE_MS
        )

        # Node b keeps what the area said for its next pages for a moment (web.remote_areas):
        # within it Bo would get the form from that, not the busy page this test is about.
        time.sleep(KEEP_FOR)
        # The node of the area and Ada's room hangs. Redis is paused with it, for the length of
        # one page's ask: otherwise node a's keys could expire (3.5-5 s) before b's ask of the
        # area times out (5 s), b would take the area over, and Bo would get the form at once.
        os.kill(cluster.a.process.pid, signal.SIGSTOP)
        cluster.redis.pause()
        try:
            bo_page = bo.page()
            bo_page.goto(link, timeout=BUSY_PAGE_MS)
            expect(bo_page.locator("#error-title")).to_have_text("Service busy")
        finally:
            cluster.redis.resume()
        expect(bo_page.locator("#retry-status")).to_contain_text("tries again by itself")
        assert_accessible_at_both_sizes(bo_page, "the busy page while the area's node hangs")
        shot(bo_page, "node-death-00-busy")

        cluster.a.kill()  # and dies: the area starts again on b
        # The busy page asks again every 5 s by itself until the area answers from b.
        expect(bo_page.locator("#f-name")).to_be_visible(timeout=int(RECONNECT_BUDGET * 2000))
        fill_arrival(bo_page, "Bo Diddley", "Cough")
        expect(first.locator(".queue__caller", has_text="Bo Diddley")).to_be_visible(
            timeout=int(RECONNECT_BUDGET * 1000)
        )
        expect(first.locator(".queue__caller", has_text="Ada Lovelace")).to_be_visible()
        expect(first.locator("[data-count]")).to_have_text("2")
        expect(console.locator("#dash-status")).to_have_text("")  # its socket never dropped
        expect(ada_page.locator("#waiting-title")).to_contain_text("You are waiting")
        assert_accessible_at_both_sizes(console, "the console after the area's node died")
        shot(console, "node-death-01-console")
        assert provider.errors == [], provider.errors
    finally:
        for someone in (provider, ada, bo):
            someone.context.close()


#: The newest RTCPeerConnection of a page is connected and has decoded video from the other side.
NEWEST_CONNECTION_DECODES = """async (n) => {
  const pcs = window.__pcs || [];
  if (pcs.length <= n) return false;
  const pc = pcs.at(-1);
  if (pc.connectionState !== 'connected') return false;
  let frames = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
  });
  return frames > 0;
}"""


def test_after_the_room_s_node_dies_both_sides_see_each_other_again(
    cluster: Cluster,
    browser: Browser,  # noqa: F811
) -> None:
    """A call in progress whose room (and so its media) is on node a, both pages served by b.
    kill -9 of a: the room starts again on b, both pages are entered again by b's gateway, offer
    their media afresh, and decode each other's camera through b's media plane."""
    provider, ada = person(browser), person(browser)
    try:
        console = console_on(provider, cluster.b.url)
        first = console.locator("#console-waiting_areas section.queue").nth(0)
        found = _AREA.search(console.content())
        assert found is not None, "no waiting area link on the console"

        ada_page = ada.page()
        ada_page.goto(f"{cluster.b.url}/w/{found.group(2)}")
        fill_arrival(ada_page, "Ada Lovelace", "Sore knee")
        row = first.locator(".queue__caller", has_text="Ada Lovelace")
        expect(row).to_be_visible(timeout=LIVE_UPDATE_MS)
        row.get_by_role("button", name="Join").click()
        console.wait_for_url(re.compile(r"/call/[^/]+$"))
        for page in (ada_page, console):
            wait_decoding(page, 0, MEDIA_MS / 1000)
        before = {
            id(page): page.evaluate("() => window.__pcs.length") for page in (ada_page, console)
        }

        killed_at = time.monotonic()
        cluster.a.kill()
        for page in (ada_page, console):
            wait_decoding(
                page, before[id(page)], MEDIA_AFTER_KILL_S - (time.monotonic() - killed_at)
            )
        print(
            f"both pages decode each other again {time.monotonic() - killed_at:.1f} s after kill -9"
        )
        expect(ada_page.locator("#call")).to_be_visible()
        expect(console.locator("#call")).to_be_visible()
        shot(ada_page, "node-death-02-call-again")
    finally:
        for someone in (provider, ada):
            someone.context.close()


def wait_decoding(page: Page, made_before: int, seconds: float) -> None:
    """Until the page has a connection newer than its first ``made_before`` that decodes video
    (getStats is a promise: ``evaluate`` awaits it, ``wait_for_function`` would not)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(NEWEST_CONNECTION_DECODES, made_before):
        if time.monotonic() > deadline:
            states = page.evaluate("() => (window.__pcs || []).map((pc) => pc.connectionState)")
            raise AssertionError(f"no new connection decoding video; connections: {states}")
        page.wait_for_timeout(POLL_MS)


def console_on(provider: Person, url: str) -> Page:
    """The demo provider signed in on the node at ``url``, their console open (desktop size)."""
    console = provider.page()
    console.set_viewport_size(DESKTOP)
    console.goto(url + "/sign-in")
    console.fill("#username", "provider")
    console.fill("#password", DEMO_PASSWORD)
    console.click("button[type=submit]")
    console.wait_for_url(url + "/")
    return console


def fill_arrival(page: Page, name: str, reason: str) -> None:
    page.fill("#f-name", name)
    page.fill("#f-reason", reason)
    page.check("input[name=consent]")
    page.click("button[type=submit]")
