"""Every kind of principal of tests/roles_table.py, made real on a running demo server (issue 15).

The demo organisation has a provider and an organisation administrator; this adds a referrer and a
unit administrator there, an organisation administrator of a second organisation (the stranger),
a caller who arrived through the form and is in a call with the provider, and a guest the provider
invited. Each staff member is signed in through the pages, so their browser and socket carry a
real session.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from services.passwords import Passwords
from storage import areas, meeting_rooms, orgs, staff
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.roles_table import (
    ANONYMOUS,
    CALLER,
    GUEST,
    ORG_ADMIN,
    PROVIDER,
    REFERRER,
    STRANGER,
    UNIT_ADMIN,
)
from tests.web.test_pages import sign_in
from waitroom.loadtest.client import GatewayClient, GatewayRefused, connect

TOKEN_IN_PAGE = re.compile(r'<div id="room-page"[^>]*\bdata-token="([^"]*)"')
CSRF_IN_PAGE = re.compile(r'name="csrf_token" value="([^"]*)"')

CALLER_NAME = "Ada Caller"

#: Every staff member made here signs in with the demo password.
STAFF_USERNAMES = {REFERRER: "rita-referrer", UNIT_ADMIN: "uma-unit", STRANGER: "sam-stranger"}


@dataclass
class RoleWorld:
    server: RunningServer
    org_id: int
    unit_id: int
    area_id: int
    other_area_id: int
    slug: str
    stranger_area_id: int
    caller_room: str
    caller_token: str
    guest_token: str
    user_ids: dict[str, int]
    #: A member of staff the administrators' pages act on (deactivate, reset), never signed in.
    target_user_id: int = 0
    meeting_id: int = 0
    meeting_link: str = ""
    user_room_id: str = ""
    #: An invitation nobody has claimed (``/i/<token>``).
    invite_token: str = ""
    #: A group session the provider created on its page (they moderate it), and its link.
    group_session_id: int = 0
    group_link: str = ""
    #: One browser per role (anonymous, caller and guest: browsers without a staff session).
    browsers: dict[str, HttpClient] = field(default_factory=dict)
    #: A CSRF token that browser's forms carry.
    csrf: dict[str, str] = field(default_factory=dict)
    #: Refused requests after which storage differed (the walk collects them, the test fails).
    changed: list[tuple[object, ...]] = field(default_factory=list)
    caller_id: str = ""
    #: The provider's dashboard socket, which joined the caller.
    provider_socket: GatewayClient | None = None
    #: Pages whose text named the caller to someone outside their call.
    leaks: list[tuple[str, str, str]] = field(default_factory=list)
    #: The code each (type, role) got on the websocket (None: a reply), for messages.
    codes: dict[tuple[str, str], str | None] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.server.base_url.replace("http://", "ws://") + "/ws"

    def cookie(self, role: str) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.browsers[role].cookies.items())

    @asynccontextmanager
    async def socket(self, role: str) -> AsyncIterator[GatewayClient]:
        """A websocket that said hello as ``role`` (callers and guests with their room token)."""
        if role == CALLER:
            opened = connect(self.ws_url, _ignore, token=self.caller_token)
        elif role == GUEST:
            opened = connect(self.ws_url, _ignore, token=self.guest_token)
        else:
            opened = connect(self.ws_url, _ignore, cookie=self.cookie(role))
        async with opened as client:
            yield client

    async def rejoin(self, sockets: dict[str, GatewayClient], roles: list[str]) -> None:
        """Put the call back after a walked message ended or held it: the provider joins the
        caller again (refused if still joined), and ``roles``' sockets enter the room again."""
        assert self.provider_socket is not None
        with suppress(GatewayRefused):
            await self.provider_socket.request(
                "caller.join", {"caller_id": self.caller_id}, f"area/{self.area_id}"
            )
        for role in roles:
            with suppress(GatewayRefused):
                await sockets[role].request("room.enter", {}, f"room/{self.caller_room}")

    def fingerprint(self) -> tuple[Any, ...]:
        """What a refused request must leave unchanged: audit rows, callers, rooms, grants."""
        return _fingerprint(self.server.db_path)


def _ignore(_type: str, _body: dict[str, Any]) -> None:
    return None


#: Tables whose rows a refused request must not add, remove or change (sessions are left out:
#: every request touches the session's last use).
WATCHED = {
    "audit_log": "SELECT count(*) FROM audit_log",
    "callers": "SELECT group_concat(id || ':' || status, ',') FROM callers",
    "rooms": "SELECT group_concat(id || ':' || coalesce(closed_at, ''), ',') FROM rooms",
    "room_tokens": "SELECT count(*), count(revoked_at) FROM room_tokens",
    "role_grants": "SELECT count(*) FROM role_grants",
    "staff_users": "SELECT group_concat(id || ':' || active || ':' || password_hash, ',') "
    "FROM staff_users",
    "waiting_areas": "SELECT group_concat(id || ':' || slug || ':' || name, ',') FROM waiting_areas",
    "outbox": "SELECT count(*) FROM outbox",
}


def _fingerprint(db_path: Path) -> tuple[Any, ...]:
    with sqlite3.connect(db_path) as conn:
        return tuple(conn.execute(query).fetchone() for query in WATCHED.values())


async def fingerprint(world: RoleWorld) -> tuple[Any, ...]:
    return await trio.to_thread.run_sync(_fingerprint, world.server.db_path)


async def _arrive(server: RunningServer, slug: str) -> tuple[HttpClient, str]:
    browser = HttpClient(server.base_url)
    form = await browser.get(f"/w/{slug}")
    csrf = CSRF_IN_PAGE.search(form.text)
    assert csrf is not None
    page = await browser.post(
        f"/w/{slug}",
        {"csrf_token": csrf.group(1), "name": CALLER_NAME, "reason": "roles", "consent": "yes"},
    )
    assert page.status == 200, page.status
    found = TOKEN_IN_PAGE.search(page.text)
    assert found is not None and found.group(1)
    return browser, found.group(1)


async def _admin_post(browser: HttpClient, path: str, form: dict[str, str]) -> None:
    """Submit an administrator's form, which must succeed."""
    csrf = await _csrf_of(browser, "/account/password")
    done = await browser.post(path, {"csrf_token": csrf, **form})
    assert done.status == 303, (path, done.status)


async def _group_session(browser: HttpClient, unit_id: int) -> tuple[int, str]:
    """Create a group session on its page as a provider of the unit; its id and link."""
    csrf = await _csrf_of(browser, "/group/new")
    form = {
        "csrf_token": csrf,
        "unit_id": str(unit_id),
        "title": "Walk group",
        "starts_at": "2030-01-01T10:00",
        "time_zone": "UTC",
        "capacity": "10",
    }
    created = await browser.post("/group/new", form)
    location = created.header("Location") or ""
    found = GROUP_PAGE.search(location)
    assert created.status == 303 and found is not None, (created.status, location)
    page = await browser.get(f"/group/{found.group(1)}")
    link = GROUP_LINK.search(page.text)
    assert link is not None, "the session page shows no link"
    return int(found.group(1)), link.group(1)


async def _csrf_of(browser: HttpClient, path: str) -> str:
    page = await browser.get(path)
    return page.csrf_token()


GROUP_PAGE = re.compile(r"/group/(\d+)")
GROUP_LINK = re.compile(r'id="share-link"[^>]*value="[^"]*/g/([A-Za-z0-9_-]+)"')


@asynccontextmanager
async def role_world(server: RunningServer) -> AsyncIterator[RoleWorld]:
    """Build the world; the provider's socket stays open (it is in the caller's call) until exit."""
    demo = server.info.demo
    assert demo is not None
    passwords = Passwords.fast_for_tests()
    password_hash = passwords.hash_sync(DEMO_PASSWORD)
    async with open_store(server.db_path) as store:
        provider = await staff.find_login(store, demo.provider_username)
        admin = await staff.find_login(store, demo.admin_username)
        assert provider is not None and admin is not None
        org = (await orgs.list_organisations(store))[0]
        unit = (await orgs.list_units(store, org.id))[0]
        demo_areas = await areas.list_areas(store)
        area, other_area = demo_areas[0], demo_areas[1]
        referrer = await staff.create_user(
            store, STAFF_USERNAMES[REFERRER], "Rita Referrer", password_hash, org_id=org.id
        )
        await staff.grant_role(store, referrer.id, "referrer", "area", other_area.id)
        unit_admin = await staff.create_user(
            store, STAFF_USERNAMES[UNIT_ADMIN], "Uma Unit", password_hash, org_id=org.id
        )
        await staff.grant_role(store, unit_admin.id, "unit_admin", "unit", unit.id)
        other_org = await orgs.create_organisation(store, "Another clinic")
        other_unit = await orgs.create_unit(store, other_org.id, "Their unit")
        stranger = await staff.create_user(
            store, STAFF_USERNAMES[STRANGER], "Sam Stranger", password_hash, org_id=other_org.id
        )
        await staff.grant_role(store, stranger.id, "org_admin", "org", other_org.id)
        target = await staff.create_user(
            store, "tom-target", "Tom Target", password_hash, org_id=org.id
        )
        await staff.grant_role(store, target.id, "provider", "area", other_area.id)
        meeting = await meeting_rooms.create_meeting_room(store, unit.id, "Team huddle")
        user_ids = {
            PROVIDER: provider.user.id,
            ORG_ADMIN: admin.user.id,
            REFERRER: referrer.id,
            UNIT_ADMIN: unit_admin.id,
            STRANGER: stranger.id,
        }
    browsers: dict[str, HttpClient] = {}
    usernames = {
        PROVIDER: demo.provider_username,
        ORG_ADMIN: demo.admin_username,
        **STAFF_USERNAMES,
    }
    for role, username in usernames.items():
        browser = HttpClient(server.base_url)
        signed_in = await sign_in(browser, username, DEMO_PASSWORD)
        assert signed_in.status == 303, (role, signed_in.status)
        browsers[role] = browser
    # Through the pages, so the running actors know them (an area or user room written to
    # storage behind the server's back would be unknown to its hosts until a restart).
    await _admin_post(
        browsers[STRANGER],
        "/admin/setup/areas",
        {"unit_id": str(other_unit.id), "name": "Their area", "time_zone": "UTC"},
    )
    async with open_store(server.db_path) as store:
        (theirs,) = await areas.list_areas(store, unit_id=other_unit.id)
    await _admin_post(
        browsers[STRANGER],
        "/admin/setup/grants",
        {"user_id": str(stranger.id), "role": "provider", "scope": f"area:{theirs.id}"},
    )
    await _admin_post(
        browsers[ORG_ADMIN],
        "/admin/meetings/user-rooms",
        {"unit_id": str(unit.id), "user_id": str(provider.user.id)},
    )
    async with open_store(server.db_path) as store:
        user_room = await meeting_rooms.user_room_of(store, provider.user.id)
        assert user_room is not None
    caller_browser, caller_token = await _arrive(server, area.slug)
    browsers[CALLER] = caller_browser
    browsers[ANONYMOUS] = HttpClient(server.base_url)
    async with AsyncExitStack() as stack:
        world = RoleWorld(
            server,
            org.id,
            unit.id,
            area.id,
            other_area.id,
            area.slug,
            theirs.id,
            caller_token.partition(".")[0],
            caller_token,
            "",
            user_ids,
            browsers=browsers,
        )
        caller_socket = await stack.enter_async_context(world.socket(CALLER))
        provider_socket = await stack.enter_async_context(world.socket(PROVIDER))
        callers = await provider_socket.request("area.watch", {}, f"area/{area.id}")
        caller_id = next(c["id"] for c in callers["callers"] if c["room"] == world.caller_room)
        await provider_socket.request("caller.join", {"caller_id": caller_id}, f"area/{area.id}")
        await provider_socket.request("room.enter", {}, f"room/{world.caller_room}")
        invite = await provider_socket.request("call.invite", {}, f"room/{world.caller_room}")
        guest_browser = HttpClient(server.base_url)
        csrf = await _csrf_of(guest_browser, invite["url"])
        claimed = await guest_browser.post(invite["url"], {"csrf_token": csrf, "name": "Gil Guest"})
        assert claimed.status == 200, claimed.status
        found = TOKEN_IN_PAGE.search(claimed.text)
        assert found is not None and found.group(1)
        world.guest_token = found.group(1)
        browsers[GUEST] = guest_browser
        spare = await provider_socket.request("call.invite", {}, f"room/{world.caller_room}")
        world.invite_token = spare["url"].rpartition("/")[2]
        world.target_user_id = target.id
        world.caller_id = caller_id
        world.provider_socket = provider_socket
        world.meeting_id = meeting.id
        world.meeting_link = meeting.guest_link
        world.user_room_id = user_room.room_id
        world.group_session_id, world.group_link = await _group_session(browsers[PROVIDER], unit.id)
        for role, browser in browsers.items():
            world.csrf[role] = await _csrf_of(
                browser, "/account/password" if role in usernames else "/sign-in"
            )
        del caller_socket
        yield world
