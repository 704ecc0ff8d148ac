"""The provider dashboard offers, on each of their waiting areas and only on theirs, a "Share link"
link to that area's share page and a button that copies the area's public link."""

from __future__ import annotations

import html

from actors.areas import AREAS_ADDRESS
from actors.directory import DIRECTORY_ADDRESS, SessionInfo, SignIn
from actors.messages import FindArea
from actors.setup import SETUP_ADDRESS, CreateStaff, GrantRole, StaffEntry
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from tests.web.test_share import area_id

ONE_AREA_PASSWORD = "one-area-provider-pw"


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
    admin: SessionInfo = await registry.ref(DIRECTORY_ADDRESS).ask(
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
