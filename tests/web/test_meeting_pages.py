"""Meeting room and user room pages over a real server: administration, entry, the guest link.

Every refusal is checked to change nothing: the wrong role, another organisation's room id, an
archived room, a rotated guest link.
"""

from __future__ import annotations

import re

from storage import areas, calls, orgs, staff
from storage import meeting_rooms as store_rooms
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_pages import sign_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_GONE = 410
NOT_CLINICAL = "not for clinical use"
_ROOM_ROW = re.compile(r'action="/admin/meetings/rooms/(\d+)/rename"')
_LINK = re.compile(r"/m/([A-Za-z0-9_-]{16,})")


async def _admin(server: RunningServer) -> HttpClient:
    client = HttpClient(server.base_url)
    await sign_in(client, server.demo.admin_username, DEMO_PASSWORD)
    return client


async def _provider(server: RunningServer) -> HttpClient:
    client = HttpClient(server.base_url)
    await sign_in(client, server.demo.provider_username, DEMO_PASSWORD)
    return client


async def _create_room(admin: HttpClient, name: str) -> tuple[int, str, Response]:
    page = await admin.get("/admin/meetings")
    unit = page.text.split('name="unit_id"><option value="', 1)[1].split('"', 1)[0]
    created = await admin.post(
        "/admin/meetings/rooms", {"csrf_token": page.csrf_token(), "unit_id": unit, "name": name}
    )
    assert created.status == HTTP_SEE_OTHER
    listed = await admin.get(created.header("location") or "")
    row = next(r for r in listed.text.split("<tr") if f'value="{name}"' in r)
    return int(_ROOM_ROW.findall(row)[0]), _LINK.findall(row)[0], listed


async def _ids(server: RunningServer) -> tuple[int, int]:
    """The demo unit's id and the demo provider's user id."""
    async with open_store(server.db_path) as store:
        unit = (await orgs.list_units(store))[0]
        login = await staff.find_login(store, server.demo.provider_username)
    assert login is not None
    return unit.id, login.user.id


async def _user(server: RunningServer, username: str, *grants: tuple[str, str, int]) -> HttpClient:
    async with open_store(server.db_path) as store:
        from services.passwords import Passwords

        user = await staff.create_user(
            store, username, f"Dr {username}", await Passwords().hash(DEMO_PASSWORD)
        )
        for role, scope, scope_id in grants:
            await staff.grant_role(store, user.id, role, scope, scope_id)  # type: ignore[arg-type]
    client = HttpClient(server.base_url)
    await sign_in(client, username, DEMO_PASSWORD)
    return client


async def test_admin_creates_renames_and_archives_and_members_enter(
    waitroom_server: RunningServer,
) -> None:
    admin = await _admin(waitroom_server)
    meeting_id, link, listed = await _create_room(admin, "Huddle")
    assert "Meeting room created." in listed.text and "Huddle" in listed.text

    empty = await admin.post(
        f"/admin/meetings/rooms/{meeting_id}/rename",
        {"csrf_token": listed.csrf_token(), "name": "  "},
    )
    assert empty.status == HTTP_BAD_REQUEST and 'role="alert"' in empty.text
    renamed = await admin.post(
        f"/admin/meetings/rooms/{meeting_id}/rename",
        {"csrf_token": listed.csrf_token(), "name": "Case conference"},
    )
    assert renamed.status == HTTP_SEE_OTHER

    member = await _provider(waitroom_server)
    call = await member.get(f"/meetings/{meeting_id}")
    assert call.status == HTTP_OK and "Case conference" in call.text
    assert NOT_CLINICAL in call.text and 'data-role="staff"' in call.text
    assert f"/m/{link}" in call.text
    console = await member.get("/")
    assert "Meeting rooms" in console.text and f"/meetings/{meeting_id}" in console.text

    # A provider of the clinic without the meeting member role: refused, and nothing starts.
    unit_id, _ = await _ids(waitroom_server)
    plain = await _user(waitroom_server, "plain", ("provider", "unit", unit_id))
    refused = await plain.get(f"/meetings/{meeting_id}")
    assert refused.status == HTTP_FORBIDDEN and "meeting room member" in refused.text
    assert f"/meetings/{meeting_id}" not in (await plain.get("/")).text
    # Not an administrator: the admin page and its forms are refused.
    assert (await member.get("/admin/meetings")).status == HTTP_FORBIDDEN
    forged = await member.post(
        f"/admin/meetings/rooms/{meeting_id}/archive", {"csrf_token": call.csrf_token()}
    )
    assert forged.status == HTTP_FORBIDDEN
    assert (await member.get(f"/meetings/{meeting_id}")).status == HTTP_OK

    archived = await admin.post(
        f"/admin/meetings/rooms/{meeting_id}/archive", {"csrf_token": listed.csrf_token()}
    )
    assert archived.status == HTTP_SEE_OTHER
    gone = await member.get(f"/meetings/{meeting_id}")
    assert gone.status == HTTP_GONE
    assert (await member.get(f"/m/{link}")).status == HTTP_GONE
    for junk in ("0", "abc", "9" * 40, "-1"):
        assert (await member.get(f"/meetings/{junk}")).status == HTTP_NOT_FOUND


async def test_another_organisations_room_answers_like_a_missing_one(
    waitroom_server: RunningServer,
) -> None:
    async with open_store(waitroom_server.db_path) as store:
        org = await orgs.create_organisation(store, "Elsewhere")
        unit = await orgs.create_unit(store, org.id, "Far Clinic")
        theirs = await store_rooms.create_meeting_room(store, unit.id, "Their room")
    member = await _provider(waitroom_server)
    page = await member.get(f"/meetings/{theirs.id}")
    missing = await member.get("/meetings/999999")
    assert page.status == missing.status == HTTP_NOT_FOUND
    assert "Their room" not in page.text
    admin = await _admin(waitroom_server)
    form = await admin.get("/admin/meetings")
    for action in ("rename", "archive", "rotate"):
        refused = await admin.post(
            f"/admin/meetings/rooms/{theirs.id}/{action}",
            {"csrf_token": form.csrf_token(), "name": "Mine now"},
        )
        assert refused.status == HTTP_FORBIDDEN
    async with open_store(waitroom_server.db_path) as store:
        after = await store_rooms.get_meeting_room(store, theirs.id)
    assert after.name == "Their room" and after.guest_link == theirs.guest_link
    assert not after.archived


async def test_guest_link_in_both_languages_and_a_rotated_link_is_refused(
    waitroom_server: RunningServer,
) -> None:
    admin = await _admin(waitroom_server)
    meeting_id, link, listed = await _create_room(admin, "Huddle")
    guest = HttpClient(waitroom_server.base_url)
    form = await guest.get(f"/m/{link}")
    assert form.status == HTTP_OK and NOT_CLINICAL in form.text and "Huddle" in form.text
    nameless = await guest.post(f"/m/{link}", {"csrf_token": form.csrf_token(), "name": " "})
    assert nameless.status == HTTP_BAD_REQUEST and "Please enter your name." in nameless.text
    entered = await guest.post(f"/m/{link}", {"csrf_token": form.csrf_token(), "name": "Kim"})
    assert entered.status == HTTP_OK and 'data-role="guest"' in entered.text
    token = entered.text.split('data-token="', 1)[1].split('"', 1)[0]
    assert "." in token and link not in token

    ukrainian = HttpClient(waitroom_server.base_url, cookies={"waitroom_lang": "uk"})
    uk_form = await ukrainian.get(f"/m/{link}")
    assert uk_form.status == HTTP_OK and "не для клінічного" in uk_form.text

    rotated = await admin.post(
        f"/admin/meetings/rooms/{meeting_id}/rotate", {"csrf_token": listed.csrf_token()}
    )
    assert rotated.status == HTTP_SEE_OTHER
    after = await admin.get(rotated.header("location") or "")
    assert "The old link no longer admits anyone." in after.text
    row = next(r for r in after.text.split("<tr") if 'value="Huddle"' in r)
    new_link = _LINK.findall(row)[0]
    assert new_link != link
    old = await guest.get(f"/m/{link}")
    assert old.status == HTTP_GONE and "not valid any more" in old.text
    old_post = await guest.post(f"/m/{link}", {"csrf_token": form.csrf_token(), "name": "Late"})
    assert old_post.status == HTTP_GONE
    assert (await guest.get(f"/m/{new_link}")).status == HTTP_OK
    for junk in ("x" * 200, "no%2Fslash", "bad.link"):
        assert (await guest.get(f"/m/{junk}")).status in (HTTP_GONE, HTTP_NOT_FOUND)


async def test_a_user_room_is_its_owners_only_and_listed_in_their_menu(
    waitroom_server: RunningServer,
) -> None:
    unit_id, provider_id = await _ids(waitroom_server)
    admin = await _admin(waitroom_server)
    page = await admin.get("/admin/meetings")
    unit = page.text.split('name="unit_id"><option value="', 1)[1].split('"', 1)[0]
    created = await admin.post(
        "/admin/meetings/user-rooms",
        {
            "csrf_token": page.csrf_token(),
            "unit_id": unit,
            "user_id": str(provider_id),
        },
    )
    assert created.status == HTTP_SEE_OTHER
    again = await admin.post(
        "/admin/meetings/user-rooms",
        {
            "csrf_token": page.csrf_token(),
            "unit_id": unit,
            "user_id": str(provider_id),
        },
    )
    assert again.status == HTTP_BAD_REQUEST and "already has a user room" in again.text

    owner = await _provider(waitroom_server)
    console = await owner.get("/")
    assert 'id="nav-user-room"' in console.text and "Your room" in console.text
    room = await owner.get("/me/room")
    assert room.status == HTTP_OK and "Dr Demo Provider" in room.text
    assert 'data-role="staff"' in room.text

    other = await _user(waitroom_server, "other", ("provider", "unit", unit_id))
    assert 'id="nav-user-room"' not in (await other.get("/")).text
    assert (await other.get("/me/room")).status == HTTP_NOT_FOUND


async def test_the_member_role_granted_on_one_room_through_the_setup_page(
    waitroom_server: RunningServer,
) -> None:
    admin = await _admin(waitroom_server)
    meeting_id, _link, _listed = await _create_room(admin, "Huddle")
    other_id, _other_link, _ = await _create_room(admin, "Board room")
    unit_id, _ = await _ids(waitroom_server)
    nurse = await _user(waitroom_server, "nurse", ("provider", "unit", unit_id))
    assert (await nurse.get(f"/meetings/{meeting_id}")).status == HTTP_FORBIDDEN

    setup = await admin.get("/admin/setup")
    assert f'value="meeting_room:{meeting_id}"' in setup.text
    user_id = setup.text.split("(nurse)", 1)[0].rsplit('<option value="', 1)[1].split('"', 1)[0]
    wrong_role = await admin.post(
        "/admin/setup/grants",
        {
            "csrf_token": setup.csrf_token(),
            "user_id": user_id,
            "role": "provider",
            "scope": f"meeting_room:{meeting_id}",
        },
    )
    assert wrong_role.status == HTTP_BAD_REQUEST
    granted = await admin.post(
        "/admin/setup/grants",
        {
            "csrf_token": setup.csrf_token(),
            "user_id": user_id,
            "role": "meeting_member",
            "scope": f"meeting_room:{meeting_id}",
        },
    )
    assert granted.status == HTTP_SEE_OTHER
    listed = await admin.get(granted.header("location") or "")
    assert "meeting_member in meeting_room Huddle" in listed.text
    assert (await nurse.get(f"/meetings/{meeting_id}")).status == HTTP_OK
    assert (await nurse.get(f"/meetings/{other_id}")).status == HTTP_FORBIDDEN


async def test_the_usage_report_counts_meeting_room_and_user_room_calls(
    waitroom_server: RunningServer,
) -> None:
    admin = await _admin(waitroom_server)
    meeting_id, _link, _listed = await _create_room(admin, "Huddle")
    unit_id, provider_id = await _ids(waitroom_server)
    async with open_store(waitroom_server.db_path) as store:
        room = await store_rooms.get_meeting_room(store, meeting_id)
        own = await store_rooms.create_user_room(store, provider_id, unit_id, "Dr Demo Provider")
        for room_id in (room.room_id, room.room_id, own.room_id):
            await calls.start_call(store, room_id)
        area = (await areas.list_areas(store))[0]
    report = await admin.get(f"/admin/reports?area={area.id}")
    assert report.status == HTTP_OK
    assert re.search(r'data-measure="calls_meeting">2<', report.text)
    assert re.search(r'data-measure="calls_user">1<', report.text)
    csv = await admin.get(f"/admin/reports.csv?area={area.id}")
    assert "meeting room calls (organisation),2" in csv.text
