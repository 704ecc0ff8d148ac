"""Walk docs/roles.md (tests/roles_table.py) against a real server for every role (issue 15).

Every websocket message type and every page is tried by every role with a minimal valid body; the
answer must be the cell's (allowed: not refused for rights; refused: that code or status), and a
refusal must change nothing in storage. The table must list every route of gateway/routes.py and
every page of the app, and docs/roles.md must be the table's rendering.
"""

from __future__ import annotations

import os
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from gateway.protocol import decode_server, encode_client
from gateway.routes import ROUTES
from tests import roles_table
from tests.conftest import RunningServer
from tests.role_world import CALLER_NAME, RoleWorld, fingerprint, role_world
from tests.roles_table import (
    ALLOWED,
    ANONYMOUS,
    NA,
    PAGES,
    REFERRER,
    ROLES,
    STRANGER,
    WEBSOCKET,
    refused,
)
from waitroom.loadtest.client import GatewayRefused
from web.app import create_app

#: Error codes and statuses that mean "not for you"; an allowed cell may get none of them.
#: ``not_in_room``: the sender is not a participant of that room (room messages need
#: ``room.enter`` first); ``join_confirm_needed``: staff other than the joined provider enter a
#: caller's call only with ``announce`` (audited, shown to everyone) or an invitation.
RIGHTS_CODES = {"forbidden", "hello_required", "not_in_room", "join_confirm_needed"}
RIGHTS_STATUSES = {401, 403, 404}

#: Walked first: entering the room (room messages need it), going on call (the on-demand
#: queue's messages need it).
FIRST_WS = ("room.enter", "ondemand.oncall")
#: Requests that end something for the sender (a call, a session): walked last.
#: Before each, the call is put back (the provider joins again, the room's people re-enter).
LAST_WS = ("media.leave", "room.leave", "ondemand.cancel", "call.hold", "call.end")
LAST_PAGES = (
    ("POST", "/admin/meetings/rooms/<meeting_id>/rotate"),
    ("POST", "/admin/meetings/rooms/<meeting_id>/archive"),
    ("POST", "/admin/meetings/user-rooms/<room_id>/archive"),
    ("POST", "/admin/setup/areas/<int:area_id>/rotate-link"),
    ("POST", "/group/<session_id>/rotate"),
    ("POST", "/group/<session_id>/cancel"),
    ("POST", "/sign-out"),
)
#: Pages whose answer is the same whoever asks: a failed sign-in's 401, sign-out's way back to
#: the sign-in page (303 there is not "sign in first").
ANSWERS = {("POST", "/sign-in"), ("POST", "/sign-out")}

#: Nobody of these may see the caller's name on any page (callers and guests: their own page has
#: no name either; the call's people learn names over the websocket, after room.enter).
OUTSIDERS = (ANONYMOUS, REFERRER, STRANGER)

RECORD = os.environ.get("ROLES_RECORD") == "1"


def app_pages() -> set[tuple[str, str]]:
    """Every (method, path) the app serves, static files and HEAD/OPTIONS aside."""
    from runtime import Registry

    app = create_app(Registry())
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.add((method, rule.rule))
    return found


def test_the_table_lists_every_message_type_and_every_page() -> None:
    assert set(WEBSOCKET) == set(ROUTES), "add the new message type to tests/roles_table.py"
    assert set(PAGES) == app_pages(), "add the new page to tests/roles_table.py"
    for cells in [w.cells for w in WEBSOCKET.values()] + [p.cells for p in PAGES.values()]:
        assert set(cells) == set(ROLES)


def test_docs_roles_md_is_the_tables_rendering() -> None:
    assert roles_table.DOC.read_text(encoding="utf-8") == roles_table.render(), (
        "run: .venv/bin/python -m tests.roles_table"
    )


def _body(msg_type: str, world: RoleWorld) -> dict[str, Any]:
    """A minimal body that passes the gateway's field checks; ids name nothing that exists, so an
    allowed role gets ``not_found`` rather than moving a real caller."""
    bodies: dict[str, dict[str, Any]] = {
        "echo": {"data": 1},
        "caller.join": {"caller_id": "nosuchcaller"},
        "caller.hold": {"caller_id": "nosuchcaller"},
        "caller.end": {"caller_id": "nosuchcaller"},
        "caller.transfer": {"caller_id": "nosuchcaller", "target_area": str(world.other_area_id)},
        "chat.send": {"text": "hello"},
        "media.offer": {"sdp": "v=0"},
        "media.view": {"shown": {}},
        "media.state": {"audio": True, "video": False},
        "ondemand.oncall": {"on": True},
        "ondemand.claim": {"request_id": "nosuchrequest"},
        "ondemand.assign": {"request_id": "nosuchrequest", "user_id": str(world.target_user_id)},
        "ondemand.decline": {"request_id": "nosuchrequest"},
        "ondemand.step": {"step": 0, "values": {}},
        "notices.read": {"id": 999999},
        "precheck.result": {
            "camera": "ok",
            "microphone": "ok",
            "speaker": "unknown",
            "network": {"udp": True, "tcp": False, "relay": False, "rtt_ms": None},
        },
    }
    return bodies.get(msg_type, {})


def _to(msg_type: str, world: RoleWorld) -> str | None:
    target = WEBSOCKET[msg_type].to
    if target == "area":
        return f"area/{world.area_id}"
    if target == "room":
        return f"room/{world.caller_room}"
    if target == "ondemand":
        return f"ondemand/{world.org_id}"
    return None


def _outcome(code: str | None) -> str:
    return ALLOWED if code is None or code not in RIGHTS_CODES else refused(code)


async def _anonymous_codes(world: RoleWorld, types: list[str]) -> dict[str, str]:
    """A socket that never said hello: every type is refused before any actor sees it."""
    found: dict[str, str] = {}
    async with open_websocket_url(world.ws_url) as ws:
        for i, msg_type in enumerate(types, start=1):
            await ws.send_message(
                encode_client(msg_type, _body(msg_type, world), i, _to(msg_type, world))
            )
            with trio.fail_after(10):
                data = await ws.get_message()
            assert isinstance(data, bytes)
            frame = decode_server(data)
            assert frame["t"] == "error" and frame["id"] == i, frame
            found[msg_type] = refused(frame["b"]["code"])
    return found


def _walk_order(types: list[str]) -> list[str]:
    middle = [t for t in types if t not in LAST_WS and t not in FIRST_WS]
    return [t for t in FIRST_WS if t in types] + middle + [t for t in LAST_WS if t in types]


def _roles_for(msg_type: str) -> list[str]:
    """Refused roles first, so an allowed ``call.end`` does not end the call under the others."""
    cells = WEBSOCKET[msg_type].cells
    staffish = [r for r in ROLES if r != ANONYMOUS]
    return sorted(staffish, key=lambda r: cells[r] == ALLOWED)


async def _walk_websocket(world: RoleWorld) -> dict[tuple[str, str], str]:
    observed: dict[tuple[str, str], str] = {}
    anonymous = await _anonymous_codes(world, sorted(WEBSOCKET))
    for msg_type, outcome in anonymous.items():
        observed[(msg_type, ANONYMOUS)] = outcome
    sockets: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for role in ROLES:
            if role != ANONYMOUS:
                sockets[role] = await stack.enter_async_context(world.socket(role))
        in_room = [r for r in sockets if WEBSOCKET["room.enter"].cells[r] == ALLOWED]
        for msg_type in _walk_order(sorted(WEBSOCKET)):
            if msg_type in LAST_WS:
                await world.rejoin(sockets, in_room)
            for role in _roles_for(msg_type):
                before = await fingerprint(world)
                code: str | None = None
                try:
                    await sockets[role].request(
                        msg_type, _body(msg_type, world), _to(msg_type, world)
                    )
                except GatewayRefused as refusal:
                    code = refusal.code
                outcome = _outcome(code)
                observed[(msg_type, role)] = outcome
                world.codes[(msg_type, role)] = code
                if outcome != ALLOWED and await fingerprint(world) != before:
                    world.changed.append((msg_type, role, code))
    return observed


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def _path(path: str, world: RoleWorld) -> str:
    values = {
        "slug": world.slug,
        "area_id": str(world.area_id),
        "user_id": str(world.target_user_id),
        "token": world.invite_token,
        "room_id": world.caller_room,
        "meeting_id": str(world.meeting_id),
        "link": world.meeting_link,
        "org_id": str(world.org_id),
        "code": "en",
        "link_id": "999999",
        "secret": "nosuchsecret",
        "closure_id": "999999",
        "session_id": str(world.group_session_id),
        "registration_id": "999999",
    }
    special = {
        "/admin/meetings/user-rooms/<room_id>/archive": world.user_room_id,
        "/g/<link>": world.group_link,
        "/g/<link>/wait": world.group_link,
    }
    if path in special:
        return _PARAM.sub(special[path], path)
    return _PARAM.sub(lambda m: values[m.group(1)], path)


def _form(method_path: tuple[str, str], world: RoleWorld) -> dict[str, str]:
    """The smallest form that names the demo organisation's things, so a refusal is for rights
    (an empty form would be refused for naming nothing); names stay empty where a form creates."""
    unit, target, area = str(world.unit_id), str(world.target_user_id), str(world.area_id)
    forms = {
        "/admin/setup/areas": {"unit_id": unit, "name": ""},
        "/admin/setup/grants": {"user_id": target, "role": "provider", "scope": f"area:{area}"},
        "/admin/setup/revoke": {"user_id": target, "role": "provider", "scope": f"area:{area}"},
        "/admin/meetings/rooms": {"unit_id": unit, "name": ""},
        "/admin/meetings/user-rooms": {"unit_id": unit, "user_id": target},
        "/group/new": {
            "unit_id": unit,
            "title": "Walked",
            "starts_at": "2030-01-01T10:00",
            "time_zone": "UTC",
            "capacity": "5",
        },
    }
    return forms.get(method_path[1], {})


#: Query strings that name the demo organisation's area where a page reads one.
QUERIES = {
    "/admin/audit": "?area={area}",
    "/admin/reports": "?area={area}",
    "/admin/reports.csv": "?area={area}",
    "/admin/reports.png": "?area={area}",
}


def _page_outcome(page: tuple[str, str], status: int, location: str | None) -> str:
    if page in ANSWERS:
        return ALLOWED
    if status == 303 and location is not None and location.startswith("/sign-in"):
        return refused(303)
    if status in RIGHTS_STATUSES:
        return refused(status)
    return ALLOWED


async def _walk_pages(world: RoleWorld) -> dict[tuple[str, str, str], tuple[str, int]]:
    observed: dict[tuple[str, str, str], tuple[str, int]] = {}
    order = [p for p in PAGES if p not in LAST_PAGES] + [p for p in LAST_PAGES if p in PAGES]
    for method, path in order:
        cells = PAGES[(method, path)].cells
        for role in sorted(ROLES, key=lambda r: cells[r] == ALLOWED):
            browser = world.browsers[role]
            url = _path(path, world) + QUERIES.get(path, "").format(area=world.area_id)
            before = await fingerprint(world)
            if method == "GET":
                response = await browser.get(url)
            else:
                form = {"csrf_token": world.csrf[role], **_form((method, path), world)}
                response = await browser.post(url, form)
            outcome = _page_outcome((method, path), response.status, response.header("location"))
            observed[(method, path, role)] = (outcome, response.status)
            if role in OUTSIDERS and CALLER_NAME in response.text:
                world.leaks.append((method, path, role))
            if outcome != ALLOWED and await fingerprint(world) != before:
                world.changed.append((method, path, role, response.status))
    return observed


@pytest.mark.timeout(120)
async def test_every_role_gets_what_the_table_says(waitroom_server: RunningServer) -> None:
    async with role_world(waitroom_server) as world:
        ws = await _walk_websocket(world)
        pages = await _walk_pages(world)
    if RECORD:
        for msg_type in sorted(WEBSOCKET):
            print(
                "WS", msg_type, [(ws[(msg_type, r)], world.codes.get((msg_type, r))) for r in ROLES]
            )
        for method, path in PAGES:
            print("PAGE", method, path, [pages[(method, path, r)] for r in ROLES])
    wrong_ws = {
        key: (WEBSOCKET[key[0]].cells[key[1]], got)
        for key, got in ws.items()
        if WEBSOCKET[key[0]].cells[key[1]] != got
    }
    wrong_pages = {
        key: (PAGES[(key[0], key[1])].cells[key[2]], got)
        for key, got in pages.items()
        if PAGES[(key[0], key[1])].cells[key[2]] not in (got[0], NA)
    }
    assert not world.leaks, f"pages that showed the caller's name to outsiders: {world.leaks}"
    assert not world.changed, f"refusals that changed something: {world.changed}"
    assert not wrong_ws, wrong_ws
    assert not wrong_pages, wrong_pages


def test_every_note_is_of_a_listed_row() -> None:
    assert set(roles_table.WS_NOTES) <= set(WEBSOCKET)
    assert set(roles_table.PAGE_NOTES) <= set(PAGES)
