"""Breakout rooms through the real server (issue 12): the group call forwards ``group.breakout.*``
to the breakout desk, a participant's moved token opens a second websocket into their room's own
call, a broadcast reaches every room's sockets, help asked on a room's socket reaches the
moderator, the moderator visits a room with a second socket of their own, participants' moderator
frames and bad fields are refused by the gateway or the desk, and the end of the session closes
every room.

The 60-second closing countdown and the timer are the actor tests' subject (virtual clock); here
the close is seen starting in every room, and the session's end closes the rooms at once.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
import trio

from actors import addresses, refusals
from actors.group.messages import ArriveGroup, CreateGroupSession, GroupPass, SessionDetail
from actors.principal import Principal
from actors.staff.directory import ResolveSession
from gateway.asgi import SESSION_COOKIE
from storage import audit, orgs
from storage.db import open_store
from tests.actors.group.test_group_gateway import WAIT, Events
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from waitroom.loadtest.client import GatewayClient, GatewayRefused, connect

NAMES = ("Ann Smith", "Bob Jones", "Cat Brown", "Dan Green")


async def test_breakout_rooms_over_the_websocket(waitroom_server: RunningServer) -> None:
    server = waitroom_server
    ws_url = server.base_url.replace("http://", "ws://") + "/ws"
    browser = HttpClient(server.base_url)
    assert (await sign_in(browser, server.demo.provider_username, DEMO_PASSWORD)).status == 303
    cookie = f"{SESSION_COOKIE}={browser.cookies[SESSION_COOKIE]}"
    provider: Principal = await server.registry.ref(addresses.DIRECTORY).ask(
        ResolveSession(browser.cookies[SESSION_COOKIE])
    )
    async with open_store(server.db_path) as store:
        unit = (await orgs.list_units(store, int(provider.org_id or 0)))[0]
    detail: SessionDetail = await server.registry.ref(addresses.GROUP).ask(
        CreateGroupSession(provider, unit.id, "Group physio", datetime.now(UTC), capacity=6)
    )
    room = f"room/{detail.summary.room_id}"
    tickets: list[GroupPass] = [
        await server.registry.ref(addresses.GROUP).ask(ArriveGroup(detail.link, name))
        for name in NAMES
    ]
    members = [f"p-{t.participant_id}" for t in tickets]
    mod_events = Events()
    main_events = [Events() for _ in tickets]
    async with AsyncExitStack() as stack:
        moderator = await stack.enter_async_context(connect(ws_url, mod_events, cookie=cookie))
        mains: list[GatewayClient] = [
            await stack.enter_async_context(connect(ws_url, events, token=t.token))
            for t, events in zip(tickets, main_events, strict=True)
        ]
        await moderator.request("room.enter", {}, room)
        for client in mains:
            await client.request("room.enter", {}, room)
        await mod_events.wait("group.lobby", lambda b: len(b["waiting"]) == len(NAMES))
        await moderator.request("group.admit_all", {}, room)
        for events in main_events:
            await events.wait("room.state", lambda b: b["state"] == "in_call")

        # Bad fields stop at the gateway; a participant's moderator frame at the desk.
        for body in ({"count": "2"}, {"count": 2, "names": ["x" * 61]}, {}):
            with pytest.raises(GatewayRefused) as bad:
                await moderator.request("group.breakout.create", body, room)
            assert bad.value.code in (refusals.BAD_FIELD, refusals.MISSING_FIELD)
        with pytest.raises(GatewayRefused) as not_mod:
            await mains[0].request("group.breakout.create", {"count": 2}, room)
        assert not_mod.value.code == refusals.NOT_MODERATOR
        assert (await moderator.request("group.breakout.state", {}, room))["phase"] == "none"

        await moderator.request("group.breakout.create", {"count": 2, "names": ["Knees"]}, room)
        await moderator.request("group.breakout.assign", {"mode": "random"}, room)
        view = await moderator.request("group.breakout.open", {"duration": 600}, room)
        assert view["phase"] == "open" and sorted(len(r["people"]) for r in view["rooms"]) == [2, 2]
        where = {p["id"]: r for r in view["rooms"] for p in r["people"]}

        # Each participant opens a second socket with the token their move event carries.
        room_events = [Events() for _ in tickets]
        rooms: list[GatewayClient] = []
        for member, events, own in zip(members, main_events, room_events, strict=True):
            move = await events.wait("group.breakout.move")
            assert (
                move["room"] == where[member]["id"] and move["address"] == where[member]["address"]
            )
            client = await stack.enter_async_context(connect(ws_url, own, token=move["token"]))
            entered = await client.request("room.enter", {})
            assert entered["kind"] == "breakout" and entered["room"] == move["address"][5:]
            rooms.append(client)
        for member, own in zip(members, room_events, strict=True):
            mates = sum(1 for m in members if where[m]["id"] == where[member]["id"])
            await own.wait("room.participants", lambda b, n=mates: len(b["participants"]) == n)
        # A room's socket addresses its own room only.
        with pytest.raises(GatewayRefused) as elsewhere:
            await rooms[0].request("room.enter", {}, room)
        assert elsewhere.value.code == refusals.FORBIDDEN

        # A broadcast reaches every room; help asked inside a room reaches the moderator.
        assert await moderator.request(
            "group.breakout.broadcast", {"text": "Five minutes"}, room
        ) == {"rooms": 2}
        for own in room_events:
            said = await own.wait("group.breakout.broadcast")
            assert said["text"] == "Five minutes"
        assert await rooms[0].request("group.breakout.help", {}) == {}
        asked = await mod_events.wait("group.breakout.help")
        assert asked["room"] == where[members[0]]["id"] and asked["who"] == NAMES[0]

        # The moderator visits that room with a second socket of their own, and comes back.
        visit_events = Events()
        visit = await stack.enter_async_context(connect(ws_url, visit_events, cookie=cookie))
        visited = await visit.request("room.enter", {}, where[members[0]]["address"])
        assert visited["kind"] == "breakout"
        await mod_events.wait(
            "group.breakout.rooms",
            lambda b: any(r["visitors"] and not r["help"] for r in b["rooms"]),
        )
        await visit.request("room.leave", {}, where[members[0]]["address"])

        # Closing starts the countdown in every room; the session's end closes them at once.
        closing = await moderator.request("group.breakout.close", {}, room)
        assert closing["phase"] == "closing"
        for own in room_events:
            counted = await own.wait("group.breakout.closing")
            assert counted["in_seconds"] == 60
        await moderator.request("group.end", {}, room)
        with trio.fail_after(WAIT):
            for client in rooms:
                await client.closed.wait()
        async with open_store(server.db_path) as store:
            subject = f"group:{detail.summary.id}"
            opened = await audit.list_entries(store, action=audit.GROUP_BREAKOUT_OPENED)
            assert [e.subject for e in opened] == [subject]
            with trio.fail_after(WAIT):
                # The desk audits after the rooms are told to close: storage has no event.
                while not await audit.list_entries(store, action=audit.GROUP_BREAKOUT_CLOSED):  # noqa: ASYNC110
                    await trio.sleep(0.05)
