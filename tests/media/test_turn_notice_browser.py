"""When no media path works, the caller and the provider each see a notice with what to try
(issue 16), within 30 s, in their own language; when only the caller's network fails, the
provider is told whose media is not getting through; when media connects, nobody sees either.

A real ``waitroom serve`` with ``--ice-transport-policy relay`` and no TURN server: the browsers
may use relayed candidates only and have none, so nothing can ever connect, which is what a
network that blocks UDP and TCP and has no TURN looks like. The caller's browser asks for
Ukrainian, the provider's for English. Run under the machine-wide lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.chromium import launch
from tests.served import Served, served

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "notice-test-password"
START_TIMEOUT = 30.0
STEP_MS = 15_000
#: The issue's promise: the notice is there within 30 s of media starting.
NOTICE_MS = 30_000
ENGLISH = "Video and sound cannot connect"
UKRAINIAN = "Відео і звук не можуть з'єднатися"


def serve(tmp: Path, *extra: str) -> AbstractContextManager[Served]:
    """A server on free ports without media workers (the notice needs no media plane)."""
    return served(
        tmp / "w.sqlite3",
        *("--media-port", "0", "--media-workers", "0"),
        *("--demo-password", PASSWORD, "--log-level", "WARNING", *extra),
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


#: Before any page script: this page's RTCPeerConnections may use TURN only (and it has none), as
#: on a network that blocks every path to the media server; the other side's network is fine.
BLOCKED_NETWORK = """(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super({...(config || {}), iceServers: [], iceTransportPolicy: "relay"}); }
  };
})();"""


def into_a_call(
    browser: Browser, url: str, link: str, caller_script: str = ""
) -> tuple[Page, Page]:
    """A Ukrainian-speaking caller arrives; the provider signs in and joins them."""
    caller = browser.new_context(permissions=["camera", "microphone"], locale="uk-UA").new_page()
    if caller_script:
        caller.add_init_script(caller_script)
    provider = browser.new_context(permissions=["camera", "microphone"], locale="en-GB").new_page()
    for page in (caller, provider):
        page.set_default_timeout(STEP_MS)
    caller.goto(link)
    caller.fill("#f-name", "Olena Test")
    caller.fill("#f-reason", "Check-up")
    caller.check("input[name=consent]")
    caller.click("button[type=submit]")
    caller.wait_for_url(re.compile(r"/w/[^/]+/wait$"))
    provider.goto(url + "/dashboard")
    provider.fill("#username", "provider")
    provider.fill("#password", PASSWORD)
    provider.click("button[type=submit]")
    row = provider.locator(".queue__caller", has_text="Olena Test")
    row.get_by_role("button", name="Join").click()
    provider.wait_for_url(re.compile(r"/call/[^/]+$"))
    expect(caller.locator("#call")).to_be_visible()
    expect(provider.locator("#call")).to_be_visible()
    return caller, provider


def test_no_path_shows_both_sides_a_notice_in_their_language(
    browser: Browser, tmp_path: Path
) -> None:
    with serve(tmp_path, "--ice-transport-policy", "relay") as server:
        url, link = server.url, server.links[0]
        start = time.monotonic()
        caller, provider = into_a_call(browser, url, link)
        expect(caller.locator("#media-trouble")).to_contain_text(UKRAINIAN, timeout=NOTICE_MS)
        expect(provider.locator("#media-trouble")).to_contain_text(ENGLISH, timeout=NOTICE_MS)
        assert time.monotonic() - start < NOTICE_MS / 1000 + 5  # + the sign-in and join steps
        expect(caller.locator("#media-trouble")).to_contain_text("VPN")
        expect(caller.locator("#media-trouble")).to_have_attribute("role", "alert")


def test_when_only_the_callers_network_fails_the_provider_is_told_whose(
    browser: Browser, tmp_path: Path
) -> None:
    with serve(tmp_path) as server:
        url, link = server.url, server.links[0]
        caller, provider = into_a_call(browser, url, link, BLOCKED_NETWORK)
        expect(caller.locator("#media-trouble")).to_contain_text(UKRAINIAN, timeout=NOTICE_MS)
        other = provider.locator("#media-trouble-other")
        expect(other).to_contain_text("Video and sound from Olena Test", timeout=NOTICE_MS + 10_000)
        expect(provider.locator("#media-trouble")).to_be_hidden()  # the provider's own works
        expect(caller.locator("#media-trouble-other")).to_be_hidden()


def test_no_notice_when_media_connects(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        url, link = server.url, server.links[0]
        caller, provider = into_a_call(browser, url, link)
        for page in (caller, provider):
            page.wait_for_function(
                "() => [...document.querySelectorAll('#tiles video')]"
                ".some((v) => v.srcObject && v.videoWidth > 0)",
                timeout=STEP_MS,
            )
        caller.wait_for_timeout(26_000)  # past the notice's delay
        for page in (caller, provider):
            expect(page.locator("#media-trouble")).to_be_hidden()
            expect(page.locator("#media-trouble-other")).to_be_hidden()
