"""Issue 15 in headless Chromium against a real ``waitroom serve``: the organisation administrator
opening the call page of a caller who is in a call with a provider is asked first ("Join anyway?
Everyone in the call will be told."); Cancel goes back to the console and nobody is told; OK enters,
and the caller's page (in Ukrainian here) and the provider's page say who joined, in a polite live
region. axe-core's WCAG 2.1 A/AA rules hold on the caller's page with the notice, at 1280 and 390 px.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.browser.a11y import assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    PASSWORD,
    Person,
    Server,
    arrive,
    browser,  # noqa: F401 (the module's fixture)
    server,  # noqa: F401 (the module's fixture)
)

pytestmark = pytest.mark.browser

#: The question and the notices show within a second or two on a loaded machine.
LIVE_MS = 5000


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url + "/dashboard")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard$"))


def test_the_admin_is_asked_before_joining_and_everyone_is_told(
    server: Server,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    media = ["camera", "microphone"]
    ada = Person(browser.new_context(permissions=media, locale="uk-UA"))
    provider = Person(browser.new_context(permissions=media))
    admin = Person(browser.new_context(permissions=media))
    try:
        dash = provider.page()
        sign_in(dash, server.url, "provider")
        ada_page = ada.page()
        arrive(ada_page, server.links[0], "Ada Entry", "Knee")
        row = dash.locator(".queue__caller", has_text="Ada Entry")
        row.get_by_role("button", name="Join").click()
        dash.wait_for_url(re.compile(r"/call/[^/]+$"))
        expect(ada_page.locator("#call")).to_be_visible()
        call_url = dash.url

        other = admin.page()
        sign_in(other, server.url, "admin")
        asked: list[str] = []

        def cancel(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        other.once("dialog", cancel)
        other.goto(call_url)
        # Cancel: back to the console (the page's dashboard link), nobody told.
        other.wait_for_url(re.compile(re.escape(server.url) + r"/(dashboard)?$"), timeout=LIVE_MS)
        assert asked and "Dr Demo Provider is in this call with the caller" in asked[0]
        assert "Everyone in the call will be told" in asked[0]
        expect(ada_page.locator("#call-notice")).to_be_hidden()

        def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()

        other.once("dialog", accept)
        other.goto(call_url)
        expect(other.locator("#call")).to_be_visible(timeout=LIVE_MS)
        expect(other.locator("#tiles")).to_contain_text("Ada Entry")
        assert len(asked) == 2
        notice = ada_page.locator("#call-notice")
        expect(notice).to_have_text(
            "Demo Administrator з клініки тепер у розмові.", timeout=LIVE_MS
        )
        expect(dash.locator("#call-notice")).to_have_text(
            "Demo Administrator from the clinic has joined the call.", timeout=LIVE_MS
        )
        assert notice.get_attribute("role") == "status"
        assert_accessible_at_both_sizes(ada_page, "the caller's call page with the staff notice")
        assert not [e for e in ada.errors if "join_confirm" in e]
    finally:
        for person in (ada, provider, admin):
            person.context.close()
