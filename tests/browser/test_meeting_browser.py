"""Meeting rooms and user rooms in headless Chromium against a real ``waitroom serve`` (issue 13).

An administrator creates a meeting room and a user room; a member enters the meeting room from
the console and a guest through its guest link, and they see and hear each other; the console
shows who is in; a rotated link admits nobody; a provider without the meeting member role is
refused; another provider cannot enter the owner's user room. axe-core's WCAG 2.1 A/AA rules are
checked on each page shown, at a desktop and a phone size (the guest pages in both languages).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.a11y import DESKTOP, assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    DECODING_REMOTE_VIDEO,
    MEDIA_MS,
    PASSWORD,
    SEE_AND_HEAR,
    Server,
    browser,  # noqa: F401 (the module's fixture)
    person,
    remote_peer,
    server,  # noqa: F401 (the module's fixture)
    shot,
    wait_growing,
)

pytestmark = pytest.mark.browser

NOT_CLINICAL = "not for clinical use"
#: a11y's desktop size, typed as Playwright takes it.
DESKTOP_SIZE: ViewportSize = {"width": DESKTOP["width"], "height": DESKTOP["height"]}
#: The call ends as the last page closes: its websocket close reaches the server at once.
END_MS = 10_000


def sign_in(page: Page, at: Server, username: str, password: str = PASSWORD) -> None:
    page.set_viewport_size(DESKTOP_SIZE)
    page.goto(at.url + "/sign-in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(at.url + "/")


def test_meeting_room_member_and_guest_rotation_and_user_room(
    server: Server,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    admin, member, guest, late, plain = (person(browser) for _ in range(5))
    try:
        # -- the administrator creates the rooms, and a provider without the member role --
        setup = admin.page()
        sign_in(setup, server, "admin")
        setup.click("#nav-meetings-admin")
        expect(setup.locator("h1")).to_have_text("Meeting rooms and user rooms")
        setup.fill("#meeting-name", "Huddle")
        setup.get_by_role("button", name="Create meeting room").click()
        expect(setup.get_by_role("status")).to_have_text("Meeting room created.")
        setup.locator("#user-room-user").select_option(label="Dr Demo Provider (provider)")
        setup.get_by_role("button", name="Create user room").click()
        expect(setup.get_by_role("status")).to_have_text("User room created.")
        assert_accessible_at_both_sizes(setup, "the meeting rooms admin page")
        link = setup.get_by_label("Guest link of Huddle").input_value()
        assert re.search(r"/m/[A-Za-z0-9_-]{16,}$", link)

        setup.goto(server.url + "/admin/setup")
        setup.fill("#staff-username", "plain")
        setup.fill("#staff-name", "Dr Plain")
        setup.fill("#staff-password", PASSWORD)
        setup.get_by_role("button", name="Create staff member").click()
        setup.locator("#grant-user").select_option(label="Dr Plain (plain)")
        setup.locator("#grant-role").select_option("provider")
        setup.locator("#grant-scope").select_option(label="unit Demo Clinic")
        setup.get_by_role("button", name="Grant").click()
        expect(setup.get_by_role("status")).to_have_text("Role granted.")

        # -- a member enters from the console --
        console = member.page()
        sign_in(console, server, "provider")
        rooms = console.locator("#console-meeting_rooms")
        expect(rooms.locator(".meeting-rooms__item", has_text="Huddle")).to_contain_text("Free")
        expect(console.locator("#console-user_room")).to_contain_text("Dr Demo Provider")
        expect(console.locator("#nav-user-room")).to_be_visible()
        assert_accessible_at_both_sizes(console, "the console with meeting rooms")
        rooms.get_by_role("link", name="Enter Huddle").click()
        call = console
        expect(call.locator("#meeting-notice")).to_contain_text(NOT_CLINICAL)
        expect(call.locator("#call")).to_be_visible()
        expect(call.locator("#hold")).to_be_hidden()
        assert_accessible_at_both_sizes(call, "a member in the meeting room")
        # A console open in another tab follows who is in, live.
        watch = member.page()
        watch.goto(server.url + "/")
        huddle = watch.locator("#console-meeting_rooms .meeting-rooms__item", has_text="Huddle")
        expect(huddle).to_contain_text("In use: Dr Demo Provider")

        # -- a guest comes in with the link, in Ukrainian first, then in English --
        uk = guest.page()
        uk.set_viewport_size(DESKTOP_SIZE)
        guest.context.add_cookies([{"name": "waitroom_lang", "value": "uk", "url": server.url}])
        uk.goto(link)
        expect(uk.locator(".meeting-notice")).to_contain_text("не для клінічного")
        assert_accessible_at_both_sizes(uk, "the guest link page in Ukrainian")
        guest.context.clear_cookies()
        entry = uk
        entry.goto(link)
        expect(entry.locator(".meeting-notice")).to_contain_text(NOT_CLINICAL)
        assert_accessible_at_both_sizes(entry, "the guest link page")
        entry.fill("#guest-name", "Kim Guest")
        entry.get_by_role("button", name="Join the meeting").click()
        entry.wait_for_url(server.url + "/m")
        expect(entry.locator("#call")).to_be_visible()

        # Both see and hear each other through the server.
        call.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        entry.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        wait_growing(call, [remote_peer(call, "Kim Guest")], SEE_AND_HEAR, "member sees the guest")
        wait_growing(
            entry, [remote_peer(entry, "Dr Demo Provider")], SEE_AND_HEAR, "guest sees the member"
        )
        assert_accessible_at_both_sizes(entry, "a guest in the meeting room")
        shot(call, "meeting-01-member-and-guest")

        # The console shows who is in, without a reload: anyone with the link can walk in.
        expect(huddle).to_contain_text("In use: Dr Demo Provider, Kim Guest")

        # -- the administrator rotates the link: the old one admits nobody --
        setup.goto(server.url + "/admin/meetings")
        setup.get_by_role("button", name="New guest link for Huddle").click()
        expect(setup.get_by_role("status")).to_contain_text("The old link no longer admits")
        new_link = setup.get_by_label("Guest link of Huddle").input_value()
        assert new_link != link
        refused = late.page()
        refused.set_viewport_size(DESKTOP_SIZE)
        response = refused.goto(link)
        assert response is not None and response.status == 410
        expect(refused.locator("h1")).to_have_text("This link does not work")
        assert_accessible_at_both_sizes(refused, "a rotated guest link")
        response = refused.goto(new_link)
        assert response is not None and response.status == 200

        # Guests talk among themselves too: with the member gone, a guest who comes in gets
        # media with the guest already there (the caller room waits for staff; a meeting room
        # does not).
        meeting_url = re.sub(r"\?.*$", "", call.url)
        call.close()
        refused.fill("#guest-name", "Lee Guest")
        refused.get_by_role("button", name="Join the meeting").click()
        refused.wait_for_url(server.url + "/m")
        wait_growing(
            refused, [remote_peer(refused, "Kim Guest")], SEE_AND_HEAR, "a guest sees a guest"
        )
        # And the guest who was there sees and hears the newcomer, who took the member's freed
        # slot (issue 11: media.js shows a re-mapped slot's video once a frame decodes).
        wait_growing(
            entry, [remote_peer(entry, "Lee Guest")], SEE_AND_HEAR, "guest sees the newcomer"
        )

        # -- a provider without the member role is refused --
        outsider = plain.page()
        sign_in(outsider, server, "plain")
        expect(outsider.locator("#console-meeting_rooms")).to_have_count(0)
        response = outsider.goto(meeting_url)
        assert response is not None and response.status == 403
        expect(outsider.locator("main")).to_contain_text("meeting room member role")
        assert_accessible_at_both_sizes(outsider, "a member without the role, refused")

        # -- the user room: its owner enters, another provider cannot --
        response = outsider.goto(server.url + "/me/room")
        assert response is not None and response.status == 404
        expect(outsider.locator("#nav-user-room")).to_have_count(0)
        own = member.page()
        own.goto(server.url + "/")
        own.click("#nav-user-room")
        expect(own.locator("h1.call__title")).to_have_text("Your room: Dr Demo Provider")
        expect(own.locator("#call")).to_be_visible()
        expect(own.locator("#invite-open")).to_be_visible()
        assert_accessible_at_both_sizes(own, "the owner in their user room")

        # The last person leaving ends the meeting room's call; the room stays (console: free).
        entry.close()
        refused.close()
        expect(huddle).to_contain_text("Free", timeout=END_MS)
        watch.reload()
        expect(huddle).to_contain_text("Free")
        for who in (admin, member, guest, late, plain):
            assert not [e for e in who.errors if "Failed to load resource" not in e], who.errors
    finally:
        for who in (admin, member, guest, late, plain):
            who.context.close()
