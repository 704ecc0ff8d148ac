"""The provider dashboard offers, on each of their waiting areas and only on theirs, a "Share link"
link to that area's share page and a button that copies the area's public link."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
import trio

from actors.admin.setup import SETUP_ADDRESS, CreateStaff, GrantRole, StaffEntry
from actors.messages import FindArea
from actors.staff.directory import SessionInfo
from actors.staff.signin import SIGN_IN_ADDRESS, SignIn
from actors.waiting.areas import AREAS_ADDRESS
from tests.chromium import launch_persistent
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from tests.web.test_share import area_id

ONE_AREA_PASSWORD = "one-area-provider-pw"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Milliseconds Playwright waits for one expected thing on a loaded 2-core machine.
WAIT_MS = 20_000


async def test_each_area_of_the_provider_has_share_and_copy(
    waitroom_server: RunningServer,
) -> None:
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    page = await provider.get("/dashboard")
    assert page.status == 200
    text = html.unescape(page.text)
    for _name, link in waitroom_server.demo.area_links:
        slug = link.rsplit("/", 1)[1]
        address = await waitroom_server.registry.ref(AREAS_ADDRESS).ask(FindArea(slug))
        area = int(str(address).split("/")[1])
        assert f'href="/areas/{area}/share" data-share-page' in text
        assert f'data-copy-link="{link}"' in text
    # The share page it points to opens for this provider.
    first, _link = await area_id(waitroom_server)
    assert (await provider.get(f"/areas/{first}/share")).status == 200


async def test_areas_of_others_get_no_share_link(waitroom_server: RunningServer) -> None:
    """A provider of the first demo area only sees the share link of that area, not the other."""
    registry = waitroom_server.registry
    admin: SessionInfo = await registry.ref(SIGN_IN_ADDRESS).ask(
        SignIn(waitroom_server.demo.admin_username, DEMO_PASSWORD)
    )
    created: StaffEntry = await registry.ref(SETUP_ADDRESS).ask(
        CreateStaff(admin.principal, "onearea", "Dr One Area", ONE_AREA_PASSWORD)
    )
    mine, my_link = await area_id(waitroom_server)
    await registry.ref(SETUP_ADDRESS).ask(
        GrantRole(admin.principal, created.id, "provider", "area", mine)
    )
    _other_name, other_link = waitroom_server.demo.area_links[1]

    client = HttpClient(waitroom_server.base_url)
    await sign_in(client, "onearea", ONE_AREA_PASSWORD)
    page = await client.get("/dashboard")
    assert page.status == 200
    text = html.unescape(page.text)
    assert text.count("data-share-page") == 1
    assert f'href="/areas/{mine}/share" data-share-page' in text
    assert f'data-copy-link="{my_link}"' in text
    assert other_link not in text


def copy_from_dashboard(base_url: str, username: str, profile: Path) -> dict[str, str]:
    """Sign in, press the first area's "Copy link", read the clipboard, follow "Share link"."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, str] = {}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = launch_persistent(pw, profile, permissions=["clipboard-read", "clipboard-write"])
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{base_url}/sign-in?next=/dashboard")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", DEMO_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/dashboard")
            section = page.locator("section.queue").nth(0)
            section.get_by_role("button", name="Copy link").click()
            status = section.locator("[data-copy-status]")
            status.filter(has_text="Copied.").wait_for()
            seen["status"] = status.inner_text()
            seen["clipboard"] = str(page.evaluate("navigator.clipboard.readText()"))
            page.screenshot(path=str(ARTIFACTS / "dashboard-share.png"), full_page=True)
            section.get_by_role("link", name="Share link").click()
            page.wait_for_selector("#copy-link")
            seen["share_url"] = page.url
        finally:
            context.close()
    return seen


@pytest.mark.browser
async def test_copy_link_puts_the_areas_link_on_the_clipboard(
    waitroom_server: RunningServer, tmp_path: Path
) -> None:
    area, link = await area_id(waitroom_server)
    seen = await trio.to_thread.run_sync(
        copy_from_dashboard,
        waitroom_server.base_url,
        waitroom_server.demo.provider_username,
        tmp_path / "profile",
    )
    assert seen["status"] == "Copied."
    assert seen["clipboard"] == link
    assert seen["share_url"] == f"{waitroom_server.base_url}/areas/{area}/share"


async def test_home_page_cards_lead_to_share_page_leaflet_and_dashboard(
    waitroom_server: RunningServer,
) -> None:
    """Each area on the staff home page (the console, issue 13) links to its share page and its
    leaflet, and both open for the provider; the live list of who waits is right there."""
    provider = HttpClient(waitroom_server.base_url)
    await sign_in(provider, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    home = await provider.get("/")
    assert home.status == 200
    text = html.unescape(home.text)
    assert 'id="dashboard"' in text and "data-list" in text
    first, _link = await area_id(waitroom_server)
    for path in (f"/areas/{first}/share", f"/areas/{first}/leaflet.pdf"):
        assert f'href="{path}"' in text
        assert (await provider.get(path)).status == 200
