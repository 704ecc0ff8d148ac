"""Another organisation's ids answer exactly like ids that do not exist, on every page (issue 15).

Room, area, meeting, staff and link ids appear in pages' paths and queries; area, meeting and
staff ids are sequential. A page that showed a shell for another organisation's call, or any
answer that differed from the one for a missing id, would let a member of staff elsewhere map
this organisation's calls and rooms. The walk: the other organisation's administrator (also a
provider there) asks every page that takes an id (web/*.py; web/group.py is another helper's) with
each of the demo organisation's ids, and with an id that does not exist; status and page must be
the same (the page's own path and per-request values aside), and the three call pages answer 404
with no shell. The demo organisation's own staff still get their call pages.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

import pytest

from storage import ondemand
from storage.db import open_store
from tests.conftest import RunningServer
from tests.httpclient import HttpClient, Response
from tests.role_world import RoleWorld, role_world
from tests.roles_table import ORG_ADMIN, PROVIDER, STRANGER
from tests.web.test_consult_pages import provider_of, send

HTTP_OK = 200
HTTP_NOT_FOUND = 404
MISSING_NUMBER = "987654"
_PER_REQUEST = re.compile(r'(nonce|value|content)="[^"]*"')
_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')
_LINK_ID = re.compile(r'data-link-id="([^"]+)"|/consult/([A-Za-z0-9_-]+)/cancel')


def said(path: str, page: Response) -> str:
    text = page.text
    for form in (path, quote(path, safe=""), quote(path, safe="/")):
        text = text.replace(form, "<path>")
    return _PER_REQUEST.sub("", text)


async def consult_room_and_link(server: RunningServer) -> tuple[str, str]:
    """A Consult Now call of the demo organisation (opened), and a pending link's id."""
    provider = await provider_of(server)
    _, secret = await send(provider)
    recipient = HttpClient(server.base_url)
    landing = await recipient.get(f"/c/{secret}")
    opened = await recipient.post(
        f"/c/{secret}", {"csrf_token": landing.csrf_token(), "name": "Sam", "lang": "en"}
    )
    found = _TOKEN_IN_PAGE.search(opened.text)
    assert found is not None, opened.text[:300]
    await send(provider, label="Pending one")
    with __import__("sqlite3").connect(server.db_path) as db:
        (link_id,) = db.execute(
            "SELECT id FROM consult_links WHERE state = 'pending' LIMIT 1"
        ).fetchone()
    return found.group(1).split(".", 1)[0], str(link_id)


async def ondemand_room(world: RoleWorld) -> str:
    async with open_store(world.server.db_path) as store:
        made = await ondemand.create_request(store, world.org_id, {"name": "Ola"}, 0)
    return made.request.room_id


def probes(
    world: RoleWorld, consult_room: str, link_id: str, od_room: str
) -> list[tuple[str, str, str]]:
    """(method, path with the demo organisation's id, the same path with a missing id)."""
    area, meeting, user = str(world.area_id), str(world.meeting_id), str(world.target_user_id)
    room = secrets.token_urlsafe(12)
    return [
        ("GET", f"/call/{world.caller_room}", f"/call/{room}"),
        ("GET", f"/consult/call/{consult_room}", f"/consult/call/{room}"),
        ("GET", f"/ondemand/session/{od_room}", f"/ondemand/session/{room}"),
        ("GET", f"/meetings/{meeting}", f"/meetings/{MISSING_NUMBER}"),
        ("GET", f"/areas/{area}/share", f"/areas/{MISSING_NUMBER}/share"),
        ("POST", f"/areas/{area}/share", f"/areas/{MISSING_NUMBER}/share"),
        ("GET", f"/areas/{area}/leaflet.pdf", f"/areas/{MISSING_NUMBER}/leaflet.pdf"),
        ("GET", f"/admin/setup/areas/{area}", f"/admin/setup/areas/{MISSING_NUMBER}"),
        ("POST", f"/admin/setup/areas/{area}", f"/admin/setup/areas/{MISSING_NUMBER}"),
        (
            "POST",
            f"/admin/setup/areas/{area}/rotate-link",
            f"/admin/setup/areas/{MISSING_NUMBER}/rotate-link",
        ),
        (
            "POST",
            f"/admin/setup/areas/{area}/closures",
            f"/admin/setup/areas/{MISSING_NUMBER}/closures",
        ),
        (
            "POST",
            f"/admin/setup/staff/{user}/active",
            f"/admin/setup/staff/{MISSING_NUMBER}/active",
        ),
        (
            "POST",
            f"/admin/setup/staff/{user}/password",
            f"/admin/setup/staff/{MISSING_NUMBER}/password",
        ),
        *(
            (
                "POST",
                f"/admin/meetings/rooms/{meeting}/{action}",
                f"/admin/meetings/rooms/{MISSING_NUMBER}/{action}",
            )
            for action in ("rename", "archive", "rotate")
        ),
        (
            "POST",
            f"/admin/meetings/user-rooms/{world.user_room_id}/archive",
            f"/admin/meetings/user-rooms/{room}/archive",
        ),
        ("POST", f"/consult/{link_id}/extend", f"/consult/{room}/extend"),
        ("POST", f"/consult/{link_id}/cancel", f"/consult/{room}/cancel"),
        ("GET", f"/admin/audit?area={area}", f"/admin/audit?area={MISSING_NUMBER}"),
        ("GET", f"/admin/reports?area={area}", f"/admin/reports?area={MISSING_NUMBER}"),
        ("GET", f"/admin/reports.csv?area={area}", f"/admin/reports.csv?area={MISSING_NUMBER}"),
    ]


async def ask(browser: HttpClient, method: str, path: str, csrf: str) -> Response:
    if method == "GET":
        return await browser.get(path)
    return await browser.post(path, {"csrf_token": csrf, "name": "X", "password": "x" * 12})


@pytest.mark.timeout(120)
async def test_another_organisations_ids_answer_like_missing_ones(
    waitroom_server: RunningServer,
) -> None:
    """Failed on the old code: the three call pages showed their shell (200) for another
    organisation's call and for an id that does not exist alike (a shell is not 404)."""
    async with role_world(waitroom_server) as world:
        consult_room, link_id = await consult_room_and_link(waitroom_server)
        od_room = await ondemand_room(world)
        stranger = world.browsers[STRANGER]
        differ: list[tuple[str, str, int, int]] = []
        for method, theirs, missing in probes(world, consult_room, link_id, od_room):
            got = await ask(stranger, method, theirs, world.csrf[STRANGER])
            expected = await ask(stranger, method, missing, world.csrf[STRANGER])
            if got.status != expected.status or said(theirs, got) != said(missing, expected):
                differ.append((method, theirs, got.status, expected.status))
        assert differ == [], differ

        # The call pages: 404 and no shell for the other organisation; their own staff get them.
        for path in (
            f"/call/{world.caller_room}",
            f"/consult/call/{consult_room}",
            f"/ondemand/session/{od_room}",
        ):
            refused = await stranger.get(path)
            assert refused.status == HTTP_NOT_FOUND and "data-room" not in refused.text, path
        provider = world.browsers[PROVIDER]
        for path in (f"/call/{world.caller_room}", f"/consult/call/{consult_room}"):
            page = await provider.get(path)
            assert page.status == HTTP_OK and "data-room" in page.text, path
        admin = world.browsers[ORG_ADMIN]
        assert (await admin.get(f"/ondemand/session/{od_room}")).status == HTTP_OK
        # A room of the right organisation but the wrong kind is not that page either.
        assert (await provider.get(f"/call/{consult_room}")).status == HTTP_NOT_FOUND


def setup_probes(world: RoleWorld) -> list[tuple[str, str, str]]:
    """The clinic set-up pages that take an area or staff id (and a closure id)."""
    area, user = str(world.area_id), str(world.target_user_id)
    paths = [
        ("GET", f"/admin/setup/areas/{area}", f"/admin/setup/areas/{MISSING_NUMBER}"),
        *(
            (
                "POST",
                f"/admin/setup/areas/{area}{tail}",
                f"/admin/setup/areas/{MISSING_NUMBER}{tail}",
            )
            for tail in ("", "/rotate-link", "/closures", "/closures/1/remove")
        ),
        *(
            (
                "POST",
                f"/admin/setup/staff/{user}{tail}",
                f"/admin/setup/staff/{MISSING_NUMBER}{tail}",
            )
            for tail in ("/active", "/password")
        ),
    ]
    return paths


@pytest.mark.timeout(120)
async def test_set_up_pages_answer_404_for_another_organisations_ids_and_missing_ones(
    waitroom_server: RunningServer,
) -> None:
    """Failed on the old code: both answered 403 ("Not allowed"), unlike every other page that
    takes an id, which answers 404; a 403 says "this exists, but not for you"."""
    async with role_world(waitroom_server) as world:
        stranger = world.browsers[STRANGER]
        for method, theirs, missing in setup_probes(world):
            for path in (theirs, missing):
                page = await ask(stranger, method, path, world.csrf[STRANGER])
                assert page.status == HTTP_NOT_FOUND, (method, path, page.status)
                assert "Page not found" in page.text, (method, path)
        # Their own administrator still gets the pages.
        admin = world.browsers[ORG_ADMIN]
        own = await admin.get(f"/admin/setup/areas/{world.area_id}")
        assert own.status == HTTP_OK
        own_elsewhere = await stranger.get(f"/admin/setup/areas/{world.stranger_area_id}")
        assert own_elsewhere.status == HTTP_OK
