"""The waiting page's pre-call check in headless Chromium against a real ``waitroom serve``
(issue 16): Chromium's fake camera and microphone (a test pattern and a beep) pass the camera and
microphone checks, the caller plays the test tone and confirms it, ICE gathering finds a UDP
address, and the provider's console shows the result next to the caller before joining. axe-core's
WCAG 2.1 A/AA rules on the waiting page with the check shown, at desktop and phone sizes."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    PASSWORD,
    Server,
    arrive,
    browser,  # noqa: F401 (the module's fixture)
    person,
    server,  # noqa: F401 (the module's fixture)
    shot,
)

pytestmark = pytest.mark.browser

#: The fake microphone beeps about once a second; the meter and ICE gathering are well inside this.
CHECK_MS = 15_000


def test_the_precheck_completes_and_the_console_shows_it(server: Server, browser: Browser) -> None:  # noqa: F811
    provider, ada = person(browser), person(browser)
    try:
        console = provider.page()
        console.set_viewport_size(DESKTOP)
        console.goto(server.url + "/sign-in")
        console.fill("#username", "provider")
        console.fill("#password", PASSWORD)
        console.click("button[type=submit]")
        console.wait_for_url(server.url + "/")
        gp = console.locator("#console-waiting_areas section.queue").nth(0)

        page = ada.page()
        page.set_viewport_size(DESKTOP)
        arrive(page, server.links[0], "Ada Lovelace", "Sore knee")
        check = page.locator("#precheck")
        expect(check.locator("h2")).to_have_text("Check before your call")
        expect(page.locator("#precheck-camera")).to_have_text(
            "Camera: working (you can see yourself above).", timeout=CHECK_MS
        )
        expect(page.locator("#precheck-udp")).to_have_text("UDP: works.", timeout=CHECK_MS)
        expect(page.locator("#precheck-tcp")).to_have_text(
            "TCP to the media server: not tested from this page."
        )
        # The demo server has no TURN server: the page says so rather than claiming a result.
        expect(page.locator("#precheck-relay")).to_have_text(
            "Relay server: none set up, not tested."
        )
        row = gp.locator(".queue__caller", has_text="Ada Lovelace")
        precheck = row.locator("[data-precheck]")
        expect(precheck).to_contain_text("Camera ✓", timeout=CHECK_MS)
        expect(precheck).to_contain_text("Speaker not tested")
        expect(precheck).to_contain_text("Network: UDP")

        # The tone is also the user gesture that lets the level meter run.
        page.get_by_role("button", name="Play a test sound").click()
        expect(page.locator("#precheck-speaker")).to_have_text("Speaker: did you hear the sound?")
        page.get_by_role("button", name="I heard it").click()
        expect(page.locator("#precheck-speaker")).to_have_text("Speaker: working.")
        expect(page.locator("#precheck-microphone")).to_have_text(
            "Microphone: sound detected.", timeout=CHECK_MS
        )
        assert page.locator("#precheck-meter").evaluate("(m) => m.value") > 0
        expect(precheck).to_have_text(
            "Check: Camera ✓ · Microphone ✓ · Speaker ✓ · Network: UDP", timeout=CHECK_MS
        )
        expect(page.locator("#precheck-sent")).to_have_text(
            "The clinic can see the result of this check."
        )
        assert_accessible_at_both_sizes(page, "the waiting page with the pre-call check")
        assert_accessible_at_both_sizes(console, "the console showing a caller's check")
        shot(page, "precheck-01-waiting")
        shot(console, "precheck-02-console")
        sent = [
            f["b"]["caller"]["precheck"]
            for f in provider.frames
            if f.get("t") == "queue.caller" and f["b"]["caller"].get("precheck")
        ]
        assert sent[-1] == {
            "camera": "ok",
            "microphone": "ok",
            "speaker": "ok",
            "network": {"udp": True, "tcp": False, "relay": False, "rtt_ms": None},
        }
    finally:
        for someone in (provider, ada):
            someone.context.close()
    for someone in (provider, ada):
        assert someone.errors == []
