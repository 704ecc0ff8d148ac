"""Issue 14 over the wire: an assign rings the provider's bell (``staff.notice``) on an open socket
subscribed with ``notices.subscribe`` (no ``to``: the notice board is a fixed actor), the bell
survives a reconnect, and ``notices.read`` counts down."""

from __future__ import annotations

from typing import Any

import msgpack
import trio

from actors import addresses, refusals
from actors.ondemand.messages import RequestTicket, StartRequest
from storage import orgs, sessions, staff
from storage.db import open_store
from tests.conftest import RunningServer
from tests.gateway.test_ondemand_race import WAIT, Socket, staff_socket


async def next_event(socket: Socket, kind: str) -> dict[str, Any]:
    with trio.fail_after(WAIT):
        while True:
            frame = msgpack.unpackb(await socket.ws.get_message(), raw=False)
            if frame["t"] == kind:
                body: dict[str, Any] = frame["b"]
                return body


async def test_assign_rings_the_bell_live_and_it_is_kept(waitroom_server: RunningServer) -> None:
    server = waitroom_server
    async with open_store(server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
        unit = (await orgs.list_units(store, org.id))[0]
        admin = await staff.create_user(store, "bell-admin", "Bell Admin", "x")
        await staff.grant_role(store, admin.id, "org_admin", "org", org.id)
        lee = await staff.create_user(store, "bell-lee", "Dr Bell", "x")
        await staff.grant_role(store, lee.id, "provider", "unit", unit.id)
        admin_cookie = (await sessions.create_session(store, admin.id)).session_id
        lee_cookie = (await sessions.create_session(store, lee.id)).session_id
    queue = addresses.ondemand(org.id)
    ticket: RequestTicket = await server.registry.ref(queue).ask(StartRequest({"name": "Ada"}))

    async with staff_socket(server, admin_cookie) as boss, staff_socket(server, lee_cookie) as doc:
        for socket in (boss, doc):
            assert (await socket.call("hello", {"versions": [1]}))["t"] == "reply"
        bell = await doc.call("notices.subscribe")
        assert bell["b"] == {"unread": 0, "notices": []}
        # Not on call: the assign is refused and rings nothing.
        body = {"request_id": ticket.request_id, "user_id": str(lee.id)}
        refused = await boss.call("ondemand.assign", body, queue)
        assert refused["b"]["code"] == refusals.NOT_ON_CALL
        await doc.call("ondemand.oncall", {"on": True}, queue)
        assert (await boss.call("ondemand.assign", body, queue))["t"] == "reply"
        notice = await next_event(doc, "staff.notice")
        assert notice["kind"] == "ondemand.assigned" and notice["ring"] is True
        assert "Ada" in notice["text"] and notice["url"] == "/ondemand" and notice["unread"] == 1

    async with staff_socket(server, lee_cookie) as again:
        await again.call("hello", {"versions": [1]})
        kept = await again.call("notices.subscribe", {}, "area/1")  # `to` is ignored
        assert kept["b"]["unread"] == 1 and kept["b"]["notices"][0]["id"] == notice["id"]
        read = await again.call("notices.read", {"id": notice["id"]})
        assert read["b"] == {"unread": 0}
        missing = await again.call("notices.read", {"id": notice["id"] + 1000})
        assert missing["b"]["code"] == refusals.NOT_FOUND
