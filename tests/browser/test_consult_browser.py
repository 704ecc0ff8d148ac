"""Consult Now in headless Chromium against a real ``waitroom serve`` (issue 13).

The server runs with ``--consult-link-seconds 20`` so a link's whole life fits in the test. A
provider signs in, opens Consult Now from the menu and sends a link to a mobile number (the
outbox records the message: no SMS gateway is set); the pending link counts down and is
extended. The provider goes back to the console; the recipient opens the link in a second
browser (a page with a button, then the call, the address bar rewritten to ``/g``); the
provider's console rings (a tone, a desktop notification, the bell) and offers "Answer the
call"; both are in the call with media flowing both ways. A second link is left alone: it
expires on the desk's timer (it leaves the provider's list live) and its recipient is told so,
in English and in Ukrainian. axe-core's WCAG 2.1 A/AA rules hold on every page at 1280 and
390 px.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_ondemand_browser import RECORD_ALERTS
from tests.browser.test_waiting_area_journey import (
    DECODING_REMOTE_VIDEO,
    MEDIA_MS,
    PASSWORD,
    Person,
    browser,  # noqa: F401 (the module's fixture)
    shot,
)
from tests.served import Served, served

pytestmark = pytest.mark.browser

#: The link's validity for this server (the flag's minimum is 10 s).
LINK_SECONDS = 20
#: Live changes (the ring, a link leaving the list) show within a second or two.
LIVE_MS = 3000
#: Long enough for a 20 s link to run out, with room for a loaded machine.
EXPIRY_MS = (LINK_SECONDS + 10) * 1000
RECIPIENT = "+44 7700 900123"


def outbox_links(server: Served) -> list[str]:
    """The links in the outbox's messages, oldest first (what the recipients received)."""
    with sqlite3.connect(server.db) as db:
        bodies = [str(r[0]) for r in db.execute("SELECT body FROM outbox ORDER BY id")]
    found = [re.search(r"https?://\S+/c/[A-Za-z0-9_-]+", body) for body in bodies]
    return [m.group(0) for m in found if m is not None]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("consult") / "waitroom.sqlite3"
    with served(
        db,
        *("--media-port", "0", "--media-workers", "0"),
        *("--consult-link-seconds", str(LINK_SECONDS)),
        *("--demo-password", PASSWORD, "--log-level", "WARNING"),
    ) as running:
        yield running


def someone(browser: Browser, *extra: str) -> Person:  # noqa: F811
    return Person(browser.new_context(permissions=["camera", "microphone", *extra]))


def send_link(page: Page, label: str) -> None:
    page.get_by_label("Text message").check()
    page.fill("#consult-recipient", RECIPIENT)
    page.fill("#consult-label", label)
    page.click("#consult-form button[type=submit]")
    page.wait_for_url(re.compile(r"/consult/new$"))


def test_a_link_sent_opened_rings_the_provider_and_both_are_in_the_call(
    server: Served,
    browser: Browser,  # noqa: F811
) -> None:
    provider, sam, late = someone(browser, "notifications"), someone(browser), someone(browser)
    try:
        page = provider.page()
        page.add_init_script(RECORD_ALERTS)
        page.set_viewport_size(DESKTOP)
        page.goto(server.url + "/sign-in")
        page.fill("#username", "provider")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        page.click("#nav-consult")
        page.wait_for_url(server.url + "/consult/new")
        expect(page.locator("h1")).to_have_text("Consult Now")
        expect(page.locator("[data-consult-empty]")).to_be_visible()
        assert_accessible_at_both_sizes(page, "the Consult Now page, nothing sent")

        # Send: the outbox records the text message; the link is pending and counts down.
        page.select_option("#consult-area", label="General Practice")
        send_link(page, "Sam")
        (sam_link,) = outbox_links(server)
        item = page.locator(".consult-link", has_text="Sam")
        expect(item).to_be_visible()
        expect(item).to_contain_text("•••123")
        first = item.locator("[data-clock]").inner_text()
        expect(item.locator("[data-clock]")).not_to_have_text(first, timeout=LIVE_MS)
        assert_accessible_at_both_sizes(page, "the Consult Now page with a pending link")
        shot(page, "consult-01-pending")

        # Extend: one more period; the button says how many are left.
        item.get_by_role("button", name=re.compile("Extend by")).click()
        page.wait_for_url(re.compile(r"/consult/new$"))
        item = page.locator(".consult-link", has_text="Sam")
        expect(item.get_by_role("button", name=re.compile("Extend by"))).to_contain_text("2 left")
        minutes, seconds = item.locator("[data-clock]").inner_text().split(":")
        assert int(minutes) * 60 + int(seconds) > LINK_SECONDS  # more than a fresh link has

        # The provider goes elsewhere in the product: the console (its Consult Now section).
        page.click("#nav-console")
        page.wait_for_url(server.url + "/")
        page.click("h1")  # a gesture: the page may play sound from now on
        expect(page.locator("#console-consult .consult-link", has_text="Sam")).to_be_visible()

        # The recipient opens the link: a page with a button; nothing is used until it is pressed.
        sam_page = sam.page()
        sam_page.set_viewport_size(DESKTOP)
        sam_page.goto(sam_link)
        expect(sam_page.locator("h1")).to_have_text("You are asked to join a video call now")
        assert_accessible_at_both_sizes(sam_page, "the link's landing page")
        sam_page.fill("#consult-name", "Sam Jones")
        sam_page.click("#consult-start")
        sam_page.wait_for_url(re.compile(r"/g$"))  # no reusable secret left in the address bar
        assert "/c/" not in sam_page.url

        # The provider's page rings: a tone, a desktop notification, the bell, an Answer button.
        page.wait_for_function("() => window.__tones > 0", timeout=LIVE_MS)
        page.wait_for_function("() => window.__notifications.length > 0", timeout=LIVE_MS)
        assert "Sam Jones" in page.evaluate("() => window.__notifications[0]")
        expect(page.locator("#bell-count")).to_have_text("1")
        answer = page.locator("#consult-answer")
        expect(answer).to_be_visible(timeout=LIVE_MS)
        expect(page.locator("#console-consult .consult-link", has_text="Sam")).to_have_count(0)
        assert_accessible_at_both_sizes(page, "the console ringing")
        shot(page, "consult-02-ringing")
        answer.click()
        page.wait_for_url(re.compile(r"/consult/call/[^/]+$"))

        # Both are in the call, and each one's video reaches the other.
        expect(page.locator("#tiles figure")).to_have_count(2, timeout=MEDIA_MS)
        expect(sam_page.locator("#tiles figure")).to_have_count(2, timeout=MEDIA_MS)
        page.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        sam_page.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        expect(page.locator("#hold")).to_be_hidden()
        assert_accessible_at_both_sizes(page, "the provider's Consult Now call")
        assert_accessible_at_both_sizes(sam_page, "the recipient's Consult Now call")
        shot(sam_page, "consult-03-call-recipient")

        # The link worked once: opened again, it says so.
        again = late.page()
        again.goto(sam_link)
        expect(again.locator("h1")).to_have_text("This link has been used")

        page.click("#end-call")
        expect(page.locator("#ended")).to_be_visible()
        expect(sam_page.locator("#ended")).to_be_visible(timeout=LIVE_MS)

        # A second link, left alone, expires on the desk's timer: it leaves the list live.
        sender = provider.page()
        sender.add_init_script(RECORD_ALERTS)
        sender.set_viewport_size(DESKTOP)
        sender.goto(server.url + "/consult/new")
        sender.select_option("#consult-area", label="General Practice")
        send_link(sender, "Kim")
        kim_link = outbox_links(server)[-1]
        kim = sender.locator(".consult-link", has_text="Kim")
        expect(kim).to_be_visible()
        expect(kim).to_have_count(0, timeout=EXPIRY_MS)
        expect(sender.locator("[data-consult-status]")).to_have_text("A link expired unused.")
        expect(sender.locator("[data-consult-empty]")).to_be_visible()

        late_page = late.page()
        late_page.set_viewport_size(DESKTOP)
        late_page.goto(kim_link)
        expect(late_page.locator("h1")).to_have_text("This link has expired")
        assert_accessible_at_both_sizes(late_page, "an expired link's page")
        late.context.add_cookies([{"name": "waitroom_lang", "value": "uk", "url": server.url}])
        late_page.goto(kim_link)
        expect(late_page.locator("h1")).to_have_text("Термін дії цього посилання минув")
        expect(late_page.locator("html")).to_have_attribute("lang", "uk")
        assert_accessible_at_both_sizes(late_page, "an expired link's page in Ukrainian")
        shot(late_page, "consult-04-expired-uk")
    finally:
        for person in (provider, sam, late):
            person.context.close()
    for person in (provider, sam):
        assert person.errors == [], person.errors
    # The dead links answer 410, which Chromium logs as a failed load; nothing else may appear.
    assert [e for e in late.errors if not e.startswith("Failed to load resource")] == []
