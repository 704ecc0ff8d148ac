"""Issue 15: who may enter a caller's call, over real websockets against the whole server.

Every person is a real websocket signed in as they would be (staff with a session cookie, the
caller and guests with their tokens): a colleague and the organisation administrator are asked to
confirm before entering a call another provider joined, everyone in the call (the caller too) is
told when they do, each entry is audited, and the seventh person is refused ``call_full`` when the
people connected and the invitations still open fill the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from actors import addresses, refusals
from actors.messages import ArrivalTicket, Arrive, ClaimInvite
from actors.waiting.rooms import MAX_PARTICIPANTS, STAFF_JOINED
from gateway.asgi import SESSION_COOKIE
from storage import areas, audit, orgs, sessions, staff
from storage.db import open_store
from tests.conftest import RunningServer

#: Bound on every wait for a frame (the server answers in milliseconds).
WAIT = 10.0


@dataclass
class Socket:
    """One websocket speaking the envelope; replies matched by id, events kept in order."""

    ws: WebSocketConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The ``hello`` reply's body (``conn``: this socket's connection address).
    hello: dict[str, Any] = field(default_factory=dict)
    _next: int = 0

    async def call(
        self, kind: str, body: dict[str, Any] | None = None, to: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        frame: dict[str, Any] = {"t": kind, "id": self._next, "b": body or {}}
        if to is not None:
            frame["to"] = to
        await self.ws.send_message(msgpack.packb(frame))
        with trio.fail_after(WAIT):
            while True:
                got = msgpack.unpackb(await self.ws.get_message(), raw=False)
                if got["t"] in ("reply", "error") and got.get("id") == self._next:
                    return dict(got)
                self.events.append(got)

    async def event(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """The first ``kind`` event with this body, read from the socket if it has not come yet."""
        with trio.fail_after(WAIT):
            while True:
                found = next((e for e in self.events if e["t"] == kind and e["b"] == body), None)
                if found is not None:
                    return found
                self.events.append(msgpack.unpackb(await self.ws.get_message(), raw=False))

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e["b"] for e in self.events if e["t"] == kind]


@dataclass
class World:
    server: RunningServer
    stack: AsyncExitStack
    area: str
    area_id: int
    #: Another area of the same unit (transfers).
    other_id: int
    #: Display name -> (user id, session cookie).
    staff: dict[str, tuple[int, str]]

    @asynccontextmanager
    async def _open(self, headers: list[tuple[bytes, bytes]]) -> AsyncIterator[Socket]:
        url = self.server.base_url.replace("http://", "ws://") + "/ws"
        async with open_websocket_url(url, extra_headers=headers) as ws:
            yield Socket(ws)

    async def staff_socket(self, name: str) -> Socket:
        cookie = self.staff[name][1]
        headers = [
            (b"Cookie", f"{SESSION_COOKIE}={cookie}".encode()),
            (b"Origin", self.server.base_url.encode()),
        ]
        socket = await self.stack.enter_async_context(self._open(headers))
        hello = await socket.call("hello", {"versions": [1]})
        assert hello["t"] == "reply" and hello["b"]["kind"] == "staff", hello
        socket.hello = hello["b"]
        return socket

    async def token_socket(self, token: str) -> Socket:
        socket = await self.stack.enter_async_context(self._open([]))
        hello = await socket.call("hello", {"versions": [1], "token": token})
        assert hello["t"] == "reply", hello
        socket.hello = hello["b"]
        return socket

    async def arrive(self, name: str) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.server.registry.ref(self.area).ask(
            Arrive({"name": name, "reason": "check-up"})
        )
        return ticket

    async def guest(self, room: str, invite_url: str, name: str) -> Socket:
        claimed = await self.server.registry.ref(addresses.room(room)).ask(
            ClaimInvite(invite_url.split(".", 1)[1], name)
        )
        socket = await self.token_socket(claimed.token)
        entered = await socket.call("room.enter")
        assert entered["t"] == "reply", entered
        return socket

    async def entries(self) -> list[tuple[int | None, bool]]:
        async with open_store(self.server.db_path) as store:
            rows = await audit.list_entries(store, action=audit.STAFF_ENTERED)
        return sorted((r.actor_user_id, bool(r.details.get("announced"))) for r in rows)

    def ids(self, *entries: tuple[str, bool]) -> list[tuple[int | None, bool]]:
        return sorted((self.staff[name][0], announced) for name, announced in entries)


LEE, KIM, ADMIN, REFERRER = "Dr Lee", "Dr Kim", "Org Admin", "Dr Ref"


@asynccontextmanager
async def world(server: RunningServer) -> AsyncIterator[World]:
    async with open_store(server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
        unit = (await orgs.list_units(store, org.id))[0]
        area, other = (await areas.list_areas(store, unit.id))[:2]
        made: dict[str, tuple[int, str]] = {}
        for n, name in enumerate((LEE, KIM, ADMIN, REFERRER)):
            user = await staff.create_user(store, f"entry{n}", name, "not-a-hash")
            if name == ADMIN:
                await staff.grant_role(store, user.id, "org_admin", "org", org.id)
            else:
                await staff.grant_role(store, user.id, "provider", "area", area.id)
            if name == REFERRER:
                await staff.grant_role(store, user.id, "referrer", "area", other.id)
            made[name] = (user.id, (await sessions.create_session(store, user.id)).session_id)
    async with AsyncExitStack() as stack:
        yield World(server, stack, addresses.area(area.id), area.id, other.id, made)


async def in_call(w: World) -> tuple[ArrivalTicket, Socket, Socket]:
    """Ada (the caller) and Dr Lee (who joined her), each on their own socket, in the call."""
    ticket = await w.arrive("Ada")
    ada = await w.token_socket(ticket.token)
    assert (await ada.call("room.enter"))["t"] == "reply"
    lee = await w.staff_socket(LEE)
    joined = await lee.call("caller.join", {"caller_id": ticket.caller_id}, w.area)
    assert joined["t"] == "reply", joined
    entered = await lee.call("room.enter", {}, addresses.room(ticket.room_id))
    assert entered["t"] == "reply", entered
    return ticket, ada, lee


async def test_a_walk_in_is_asked_first_and_then_everyone_is_told(
    waitroom_server: RunningServer,
) -> None:
    """Before the fix the administrator was let straight in and nobody was told."""
    async with world(waitroom_server) as w:
        ticket, ada, lee = await in_call(w)
        room = addresses.room(ticket.room_id)
        for name in (ADMIN, KIM):
            walker = await w.staff_socket(name)
            asked = await walker.call("room.enter", {}, room)
            assert asked["t"] == "error" and asked["b"]["code"] == refusals.JOIN_CONFIRM_NEEDED, (
                asked
            )
            assert "Dr Lee is in this call with the caller" in asked["b"]["detail"]
            malformed = await walker.call("room.enter", {"announce": "yes"}, room)
            assert malformed["b"]["code"] == refusals.BAD_FIELD, malformed
            assert name not in [n["name"] for n in ada.seen("call.notice")]
            entered = await walker.call("room.enter", {"announce": True}, room)
            assert entered["t"] == "reply", entered
            assert name in [p["name"] for p in entered["b"]["participants"]]
            # Everyone in the call hears of it, the caller first of all.
            for socket in (ada, lee, walker):
                await socket.event("call.notice", {"kind": STAFF_JOINED, "name": name})
        assert [n["name"] for n in ada.seen("call.notice")] == [ADMIN, KIM]
        assert await w.entries() == w.ids((LEE, False), (ADMIN, True), (KIM, True))


async def test_the_seventh_person_is_refused_with_everyone_connected(
    waitroom_server: RunningServer,
) -> None:
    """Three people in and three invitations open: before the fix a 7th (staff) still got in."""
    async with world(waitroom_server) as w:
        ticket, ada, lee = await in_call(w)
        room = addresses.room(ticket.room_id)
        links = []
        for n in range(4):
            invite = await lee.call("call.invite", {"label": f"guest {n}"}, room)
            assert invite["t"] == "reply", invite
            links.append(invite["b"]["url"])
        await w.guest(ticket.room_id, links[0], "Interpreter")  # 3 in, 3 invitations open
        admin = await w.staff_socket(ADMIN)
        for body in ({}, {"announce": True}):
            full = await admin.call("room.enter", body, room)
            assert full["t"] == "error" and full["b"]["code"] == refusals.CALL_FULL, full
        # The invited come in, one by one, up to six people connected.
        for n, link in enumerate(links[1:], start=1):
            await w.guest(ticket.room_id, link, f"Guest {n}")
        kim = await w.staff_socket(KIM)
        refused = await kim.call("room.enter", {"announce": True}, room)
        assert refused["b"]["code"] == refusals.CALL_FULL, refused
        more = await lee.call("call.invite", {}, room)
        assert more["b"]["code"] == refusals.CALL_FULL, more
        participants = (await lee.call("room.enter", {}, room))["b"]["participants"]
        assert len({p["name"] for p in participants}) == MAX_PARTICIPANTS
        assert [n for n in ada.seen("call.notice")] == []
        assert await w.entries() == w.ids((LEE, False), (LEE, False))


async def test_a_referrer_role_revoked_elsewhere_stops_a_transfer_from_the_open_dashboard(
    waitroom_server: RunningServer,
) -> None:
    """Rights are what storage holds now, not what the socket held at hello. Here the role is
    revoked by another server process (nothing tells this one's directory): before the fix the
    open dashboard still transferred callers into the area."""
    async with world(waitroom_server) as w:
        first, second = await w.arrive("Ada"), await w.arrive("Bo")
        dashboard = await w.staff_socket(REFERRER)
        watched = await dashboard.call("area.watch", {}, w.area)
        assert watched["t"] == "reply", watched
        target = {"target_area": str(w.other_id)}
        moved = await dashboard.call(
            "caller.transfer", {"caller_id": first.caller_id, **target}, w.area
        )
        assert moved["t"] == "reply", moved  # while the role is held
        async with open_store(w.server.db_path) as store:
            user_id = w.staff[REFERRER][0]
            assert await staff.revoke_role(store, user_id, "referrer", "area", w.other_id)
        refused = await dashboard.call(
            "caller.transfer", {"caller_id": second.caller_id, **target}, w.area
        )
        assert refused["t"] == "error" and refused["b"]["code"] == refusals.FORBIDDEN, refused
        still = await dashboard.call("area.watch", {}, w.area)
        assert [c["id"] for c in still["b"]["callers"]] == [second.caller_id]
