"""A group session through the real server (issue 12): participant tokens at hello, the waiting
area over the websocket, the gateway's field checks on ``group.*`` frames, a participant's
moderator frames refused with nothing changed, admission of all, and the end closing every socket.

The session and the arrivals are made by asking the ``group`` desk as the pages do; everything
after that goes over websockets exactly as a browser's would.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.group.messages import ArriveGroup, CreateGroupSession, GroupPass, SessionDetail
from actors.principal import Principal
from actors.staff.directory import ResolveSession
from gateway.asgi import SESSION_COOKIE
from storage import group_sessions as groups
from storage import orgs
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from waitroom.loadtest.client import GatewayRefused, connect

#: Bounds every wait for an event (a loaded machine is slow, not this slow).
WAIT = 10.0


class Events:
    """Events one socket received, by type, and a way to wait for one."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._changed = trio.Event()

    def __call__(self, kind: str, body: dict[str, Any]) -> None:
        self.by_type[kind].append(body)
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, kind: str, test: Any = lambda body: True) -> dict[str, Any]:
        with trio.fail_after(WAIT):
            while True:
                found = [b for b in self.by_type[kind] if test(b)]
                if found:
                    return found[-1]
                await self._changed.wait()


async def test_a_session_over_the_websocket(waitroom_server: RunningServer) -> None:
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
        CreateGroupSession(provider, unit.id, "Group physio", datetime.now(UTC), capacity=2)
    )
    room = f"room/{detail.summary.room_id}"
    tickets: list[GroupPass] = [
        await server.registry.ref(addresses.GROUP).ask(ArriveGroup(detail.link, name))
        for name in ("Ann Smith", "Bob Jones", "Cat Brown")
    ]
    mod_events, ann_events, bob_events, cat_events = Events(), Events(), Events(), Events()
    async with (
        connect(ws_url, mod_events, cookie=cookie) as moderator,
        connect(ws_url, ann_events, token=tickets[0].token) as ann,
        connect(ws_url, bob_events, token=tickets[1].token) as bob,
        connect(ws_url, cat_events, token=tickets[2].token) as cat,
    ):
        entered = await moderator.request("room.enter", {}, room)
        assert entered["kind"] == "group" and entered["state"] == "in_call"
        for client in (ann, bob, cat):
            view = await client.request("room.enter", {}, room)
            assert view["state"] == "waiting" and view["participants"] == []
        lobby = await mod_events.wait("group.lobby", lambda b: len(b["waiting"]) == 3)
        members = [w["id"] for w in lobby["waiting"]]
        assert members == [f"p-{t.participant_id}" for t in tickets]
        # Nobody waiting heard of anyone else.
        assert "room.participants" not in ann_events.by_type

        # The gateway checks every field before the call sees it.
        bodies: list[dict[str, Any]] = [
            {"ids": []},
            {"ids": ["../x"]},
            {"ids": [f"p-{n}" for n in range(61)]},
        ]
        for body in bodies:
            with pytest.raises(GatewayRefused) as bad:
                await moderator.request("group.admit", body, room)
            assert bad.value.code == refusals.BAD_FIELD
        with pytest.raises(GatewayRefused) as missing:
            await moderator.request("group.send_back", {}, room)
        assert missing.value.code == refusals.MISSING_FIELD
        # A waiting participant can neither admit themselves nor address another room.
        with pytest.raises(GatewayRefused) as self_admit:
            await ann.request("group.admit", {"ids": [members[0]]}, room)
        assert self_admit.value.code == refusals.NOT_ADMITTED
        with pytest.raises(GatewayRefused) as elsewhere:
            await ann.request("group.admit_all", {}, "room/somewhere-else")
        assert elsewhere.value.code == refusals.FORBIDDEN

        # Capacity 2: all three do not fit, so nobody is let in.
        with pytest.raises(GatewayRefused) as full:
            await moderator.request("group.admit_all", {}, room)
        assert full.value.code == refusals.GROUP_FULL
        admitted = await moderator.request("group.admit", {"ids": members[:2]}, room)
        assert admitted == {"admitted": members[:2]}
        await ann_events.wait("room.state", lambda b: b["state"] == "in_call")
        await bob_events.wait("room.state", lambda b: b["state"] == "in_call")
        with pytest.raises(GatewayRefused) as third:
            await moderator.request("group.admit", {"ids": [members[2]]}, room)
        assert third.value.code == refusals.GROUP_FULL
        assert "room.state" not in cat_events.by_type

        # An admitted participant's moderator frames are refused and change nothing.
        async with open_store(server.db_path) as store:
            before = await groups.list_participants(store, detail.summary.id)
        frames: list[tuple[str, dict[str, Any]]] = [
            ("group.admit", {"ids": [members[2]]}),
            ("group.remove", {"id": members[1]}),
            ("group.mute", {"id": members[1]}),
            ("group.lock", {"locked": True}),
            ("group.end", {}),
        ]
        for kind, body in frames:
            with pytest.raises(GatewayRefused) as not_mod:
                await ann.request(kind, body, room)
            assert not_mod.value.code == refusals.NOT_MODERATOR, kind
        async with open_store(server.db_path) as store:
            assert await groups.list_participants(store, detail.summary.id) == before
            assert not (await groups.get_session(store, detail.summary.id)).locked

        assert await ann.request("group.hand", {"raised": True}, room) == {"raised": True}
        hands = await mod_events.wait("group.hands", lambda b: len(b["hands"]) == 1)
        assert hands["hands"][0]["id"] == members[0]

        assert await moderator.request("group.end", {}, room) == {}
        ended = await cat_events.wait("room.state", lambda b: b["state"] == "ended")
        assert ended["reason"] == "ended"
        with trio.fail_after(WAIT):
            await ann.closed.wait()
            await cat.closed.wait()
