"""The staff console in headless Chromium against a real ``waitroom serve`` (issue 13).

Tried as a new provider would: sign in from the sign-in page and land where the work is (the live
lists, a caller appearing within a second, Join one click away); transfer a waiting caller, whose
page then names the new area; join and end the call, after which the provider gets "Call ended"
and a way back to the console, not the caller's goodbye. axe-core's WCAG 2.1 A/AA rules are
checked on each page shown, at a desktop and a phone size.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    LIVE_UPDATE_MS,
    PASSWORD,
    Server,
    arrive,
    browser,  # noqa: F401 (the module's fixture)
    person,
    server,  # noqa: F401 (the module's fixture)
    shot,
)

pytestmark = pytest.mark.browser


def test_console_transfer_and_end(server: Server, browser: Browser) -> None:  # noqa: F811
    general = server.links[0]
    provider, ada = person(browser), person(browser)
    try:
        sign_in = provider.page()
        sign_in.set_viewport_size(DESKTOP)
        sign_in.goto(server.url + "/sign-in")
        assert_accessible_at_both_sizes(sign_in, "the sign-in page")
        sign_in.fill("#username", "provider")
        sign_in.fill("#password", PASSWORD)
        sign_in.click("button[type=submit]")
        # Landed on the console: the live lists are right here, not a click away.
        sign_in.wait_for_url(server.url + "/")
        console = sign_in
        expect(console.locator("h1")).to_have_text("Your console")
        expect(console.locator("#nav-console")).to_have_attribute("aria-current", "page")
        lists = console.locator("#console-waiting_areas section.queue")
        expect(lists).to_have_count(2)
        gp, physio = lists.nth(0), lists.nth(1)
        expect(gp.locator("h3")).to_contain_text("General Practice")
        expect(physio.locator("h3")).to_contain_text("Physiotherapy")
        expect(gp.locator("[data-empty]")).to_be_visible()
        expect(console.locator("#dash-status")).to_have_text("")
        assert_accessible_at_both_sizes(console, "the console, nobody waiting")

        ada_page = ada.page()
        ada_page.set_viewport_size(DESKTOP)
        ada_page.goto(general)
        assert_accessible_at_both_sizes(ada_page, "the arrival form")
        arrive(ada_page, general, "Ada Lovelace", "Sore knee")
        row = gp.locator(".queue__caller", has_text="Ada Lovelace")
        expect(row).to_be_visible(timeout=LIVE_UPDATE_MS)
        expect(gp.locator("[data-count]")).to_have_text("1")
        expect(console.locator("[data-total]")).to_have_text("1")
        expect(row.get_by_role("button", name="Join")).to_be_visible()
        expect(ada_page.locator("#waiting-title")).to_have_text(
            "You are waiting for General Practice"
        )
        assert ada_page.title().startswith("General Practice")
        assert_accessible_at_both_sizes(console, "the console with a caller waiting")
        assert_accessible_at_both_sizes(ada_page, "the caller's waiting page")
        shot(console, "console-01-waiting")

        # Transfer: the caller's page names the area they now wait in (it named the old one).
        row.locator("select").select_option(label="Physiotherapy")
        row.get_by_role("button", name="Transfer").click()
        moved = physio.locator(".queue__caller", has_text="Ada Lovelace")
        expect(moved).to_contain_text("Transferred from General Practice")
        expect(gp.locator(".queue__caller")).to_have_count(0)
        expect(console.locator("[data-total]")).to_have_text("1")
        expect(ada_page.locator("#waiting-title")).to_have_text("You are waiting for Physiotherapy")
        assert ada_page.title().startswith("Physiotherapy")
        # ... and a reload of the page (its address still names the first area) says the same.
        ada_page.reload()
        expect(ada_page.locator("#waiting-title")).to_have_text("You are waiting for Physiotherapy")

        # Join from the console, one click; then end the call.
        moved.get_by_role("button", name="Join").click()
        console.wait_for_url(re.compile(r"/call/[^/]+$"))
        call = console
        expect(call.locator("#tiles figure")).to_have_count(2)
        expect(ada_page.locator("#tiles figure")).to_have_count(2)
        assert_accessible_at_both_sizes(call, "the provider's call page")
        assert_accessible_at_both_sizes(ada_page, "the caller's call page")
        call.click("#end-call")
        ended = call.locator("#ended")
        expect(ended).to_be_visible()
        expect(ended.locator("h2")).to_have_text("Call ended")
        expect(ended).not_to_contain_text("close this window")
        expect(ada_page.locator("#ended")).to_contain_text("You can close this window now")
        assert_accessible_at_both_sizes(call, "the provider's ended call")
        assert_accessible_at_both_sizes(ada_page, "the caller's ended consultation")
        shot(call, "console-02-call-ended")
        ended.get_by_role("link", name="Back to the console").click()
        call.wait_for_url(server.url + "/")
        expect(lists).to_have_count(2)
        expect(physio.locator(".queue__caller")).to_have_count(0)
    finally:
        for someone in (provider, ada):
            someone.context.close()
    for someone in (provider, ada):
        assert someone.errors == []
    # The room told the caller's page the new area: a room.state frame names it.
    assert any(
        f.get("t") == "room.state" and f.get("b", {}).get("area") == "Physiotherapy"
        for f in ada.frames
    )


def test_the_other_pages_pass_axe_at_both_sizes(server: Server, browser: Browser) -> None:  # noqa: F811
    """The pages around the console, as an administrator sees them, and the calm error pages."""
    admin = person(browser)
    try:
        page = admin.page()
        page.set_viewport_size(DESKTOP)
        page.goto(server.url + "/sign-in")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        assert_accessible_at_both_sizes(page, "the administrator's console")
        share = page.locator("#console-waiting_areas a[data-share-page]").first
        share_url = share.get_attribute("href")
        assert share_url
        page.locator("#nav-setup").click()
        expect(page.locator("h1")).to_have_text("Clinic setup")
        assert_accessible_at_both_sizes(page, "clinic setup")
        page.get_by_role("link", name="Settings of Physiotherapy").click()
        expect(page.locator("h1")).to_have_text("Settings: Physiotherapy")
        assert_accessible_at_both_sizes(page, "an area's settings")
        for path, what in (
            (share_url, "an area's share page"),
            ("/admin/audit", "the audit trail"),
            ("/admin/reports", "the reports"),
            ("/admin/outbox", "the outbox"),
            ("/w/no-such-area", "the unknown-area page"),
            ("/i/nothing.here", "the ended-invitation page"),
            ("/call/no-such-call", "a call that is not available"),
        ):
            page.goto(server.url + path)
            assert_accessible_at_both_sizes(page, what)
    finally:
        admin.context.close()
