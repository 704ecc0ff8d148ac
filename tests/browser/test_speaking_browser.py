"""The call page shows who speaks (issue 11): a real ``waitroom serve``, a caller and a provider.

Both browsers' fake microphones play a speech-like file (``--use-file-for-fake-audio-capture``;
Chromium's default beep has a constant level, which the server's noise-floor gate reads as
silence). The server elects one of them the dominant speaker from the RFC 6464 levels and pushes
``call.speaker``; each page then outlines that person's tile and says "speaking" in its caption,
inside the tiles' polite live region, and the page still passes axe at both sizes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.browser.a11y import assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    DECODING_REMOTE_VIDEO,
    MEDIA_MS,
    PASSWORD,
    Server,
    arrive,
    person,
    server,
)
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.media.test_large_call_browser import write_wav

pytestmark = pytest.mark.browser

__all__ = ["server"]  # the journey's module-scoped server, used here as a fixture
SPEAKER_MS = 20_000


@pytest.fixture(scope="module")
def speaking_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    wav: Path = tmp_path_factory.mktemp("speech") / "speech.wav"
    write_wav(wav, speech=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_call_page_shows_who_is_speaking(server: Server, speaking_browser: Browser) -> None:
    provider, caller = person(speaking_browser), person(speaking_browser)
    try:
        dash = provider.page()
        dash.goto(server.url + "/dashboard")
        dash.fill("#username", "provider")
        dash.fill("#password", PASSWORD)
        dash.click("button[type=submit]")
        dash.wait_for_url(re.compile(r"/dashboard$"))
        ada = caller.page()
        arrive(ada, server.links[0], "Ada Speaker", "Cough")
        row = dash.locator(".queue__caller", has_text="Ada Speaker")
        row.get_by_role("button", name="Join").click()
        dash.wait_for_url(re.compile(r"/call/[^/]+$"))
        for page in (ada, dash):
            expect(page.locator("#tiles figure")).to_have_count(2)
            page.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        for page in (ada, dash):
            speaking = page.locator("#tiles figure.tile--speaking")
            expect(speaking).to_have_count(1, timeout=SPEAKER_MS)
            expect(speaking.locator("figcaption")).to_contain_text("speaking")
            # Inside the polite live region, so a screen reader hears it without focus moving.
            expect(page.locator("#tiles")).to_have_attribute("aria-live", "polite")
            outline = speaking.evaluate("(e) => getComputedStyle(e).outlineStyle")
            assert outline == "solid"
        # Both pages name the same person (tiles carry the participant id).
        peers = {
            page.locator("#tiles figure.tile--speaking").get_attribute("data-peer")
            for page in (ada, dash)
        }
        assert len(peers) == 1 and None not in peers, peers
        for page in (ada, dash):
            assert_accessible_at_both_sizes(page, "call page with a speaker")
        assert not [e for e in caller.errors + provider.errors if "speaker" in e.lower()]
    finally:
        caller.context.close()
        provider.context.close()
