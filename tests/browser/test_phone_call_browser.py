"""The call page on a phone, 390 x 844 CSS pixels, in headless Chromium (issue 13).

The caller and an invited guest each on a phone, the provider at a desk. On the phones the person
they came to see fills the screen, their own view is a small picture-in-picture inside it, and
"Leave" is on screen without scrolling. Leaving is confirmed ("Stay" changes nothing); after it
the others see the person go, the area's list says the caller is not connected, and the caller
can rejoin within the grace. axe-core's WCAG 2.1 A/AA rules hold in each state at both sizes.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.a11y import DESKTOP, PHONE, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    PASSWORD,
    Person,
    Server,
    arrive,
    browser,  # noqa: F401 (the module's fixture)
    server,  # noqa: F401 (the module's fixture)
    shot,
)

pytestmark = pytest.mark.browser

#: The remote tile has at least this many times the self view's area on a phone.
REMOTE_TO_SELF_AREA = 4


def phone(chromium: Browser) -> Person:
    return Person(
        chromium.new_context(
            permissions=["camera", "microphone"], viewport=PHONE, is_mobile=True, has_touch=True
        )
    )


def check_phone_layout(page: Page, what: str) -> None:
    """Remote tile large, self view small and inside it (a corner), Leave on screen unscrolled."""
    page.evaluate("() => window.scrollTo(0, 0)")
    assert page.evaluate("() => window.scrollY") == 0
    tiles = page.locator("#tiles").bounding_box()
    remotes = page.locator("#tiles figure:not(.tile--self)")
    mine = page.locator("#tiles figure.tile--self").bounding_box()
    leave = page.locator("#leave-call").bounding_box()
    assert tiles and mine and leave and remotes.count(), what
    for i in range(remotes.count()):
        remote = remotes.nth(i).bounding_box()
        assert remote, what
        big, small = remote["width"] * remote["height"], mine["width"] * mine["height"]
        assert big >= REMOTE_TO_SELF_AREA * small, f"{what}: the self view is not small"
        assert remote["width"] >= PHONE["width"] * 0.85, f"{what}: a remote tile is not full width"
    # The self view sits over the others' tiles: picture-in-picture, not a tile of its own.
    assert tiles["x"] <= mine["x"] and mine["x"] + mine["width"] <= tiles["x"] + tiles["width"]
    assert tiles["y"] <= mine["y"] and mine["y"] + mine["height"] <= tiles["y"] + tiles["height"]
    assert leave["y"] >= 0 and leave["y"] + leave["height"] <= PHONE["height"], what
    assert leave["x"] >= 0 and leave["x"] + leave["width"] <= PHONE["width"], what
    expect(page.locator("#leave-call")).to_be_visible()


def test_phone_call_layout_and_leave(server: Server, browser: Browser) -> None:  # noqa: F811
    general = server.links[0]
    ada, olena = phone(browser), phone(browser)
    provider = Person(browser.new_context(permissions=["camera", "microphone"], viewport=DESKTOP))
    try:
        console = provider.page()
        console.goto(server.url + "/sign-in")
        console.fill("#username", "provider")
        console.fill("#password", PASSWORD)
        console.click("button[type=submit]")
        console.wait_for_url(server.url + "/")

        ada_page = ada.page()
        arrive(ada_page, general, "Ada Phone", "Rash")
        row = console.locator(".queue__caller", has_text="Ada Phone")
        row.get_by_role("button", name="Join").click()
        console.wait_for_url(re.compile(r"/call/[^/]+$"))
        call = console
        expect(ada_page.locator("#tiles figure")).to_have_count(2)
        expect(ada_page.locator("#tiles figure:not(.tile--self)")).to_contain_text("Dr Demo")
        check_phone_layout(ada_page, "the caller's call page")
        shot(ada_page, "phone-01-caller-call")
        assert_accessible_at_both_sizes(ada_page, "the caller's call page on a phone")

        # An interpreter joins on a phone too: the same layout, two remote tiles stacked.
        call.click("#invite-open")
        call.fill("#invite-label", "Interpreter")
        call.click("#invite-form button[type=submit]")
        expect(call.locator("#invite-url")).to_have_value(re.compile(r"/i/"))
        guest_page = olena.page()
        guest_page.goto(call.locator("#invite-url").input_value())
        assert_accessible_at_both_sizes(guest_page, "the invitation page")
        guest_page.fill("#guest-name", "Olena")
        guest_page.click("button[type=submit]")
        for page in (guest_page, call, ada_page):
            expect(page.locator("#tiles figure")).to_have_count(3)
        check_phone_layout(guest_page, "the guest's call page")
        assert_accessible_at_both_sizes(guest_page, "the guest's call page")
        check_phone_layout(ada_page, "the caller's call page with two others")
        shot(guest_page, "phone-02-guest-call")

        # Leave is confirmed: "Stay in the call" changes nothing.
        ada_page.click("#leave-call")
        dialog = ada_page.locator("#leave-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("The clinic will see that you have left")
        expect(ada_page.locator("#leave-stay")).to_be_focused()
        assert_accessible_at_both_sizes(ada_page, "the leave dialog")
        shot(ada_page, "phone-03-leave-dialog")
        ada_page.click("#leave-stay")
        expect(dialog).to_be_hidden()
        expect(ada_page.locator("#call")).to_be_visible()
        expect(call.locator("#tiles figure")).to_have_count(3)

        # The guest leaves: the others see them go.
        guest_page.click("#leave-call")
        guest_page.click("#leave-confirm")
        expect(guest_page.locator("#left")).to_be_visible()
        expect(guest_page.locator("#call")).to_be_hidden()
        expect(call.locator("#tiles figure")).to_have_count(2)
        expect(ada_page.locator("#tiles figure")).to_have_count(2)
        assert_accessible_at_both_sizes(guest_page, "the guest's page after leaving")

        # The caller leaves: the provider's page loses their tile, the area's list says they
        # are not connected; the caller's page offers to rejoin, and rejoining works.
        ada_page.click("#leave-call")
        ada_page.click("#leave-confirm")
        left = ada_page.locator("#left")
        expect(left).to_be_visible()
        expect(left).to_contain_text("You have left the call")
        expect(ada_page.locator("#call")).to_be_hidden()
        expect(call.locator("#tiles figure")).to_have_count(1)
        live_camera = "() => [...document.querySelectorAll('video')].some((v) => v.srcObject"
        live_camera += " && v.srcObject.getVideoTracks().some((t) => t.readyState === 'live'))"
        assert ada_page.evaluate(live_camera) is False  # the camera is let go
        assert_accessible_at_both_sizes(ada_page, "the caller's page after leaving")
        shot(ada_page, "phone-04-left")
        watcher = provider.page()
        watcher.goto(server.url + "/")
        expect(watcher.locator(".queue__caller", has_text="Ada Phone")).to_contain_text(
            "not connected"
        )
        left.get_by_role("button", name="Rejoin the call").click()
        expect(ada_page.locator("#call")).to_be_visible()
        expect(ada_page.locator("#tiles figure")).to_have_count(2)
        expect(call.locator("#tiles figure")).to_have_count(2)
        check_phone_layout(ada_page, "the caller's call page after rejoining")
        call.click("#end-call")
        expect(ada_page.locator("#ended")).to_be_visible()
    finally:
        for someone in (ada, olena, provider):
            someone.context.close()
    for someone in (ada, olena, provider):
        assert someone.errors == []
