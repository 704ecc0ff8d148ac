"""Calls of every kind start again on a live node when their node is killed (issue 18).

A meeting room's call runs on node a; its member's page is connected through node b. After
kill -9 of a, the page's gateway on b enters the room again (``rejoin``): the message finds no
owner, node b's ``Reviver`` asks its meetings host to start the call again from the store
(``StartAgain``), and the page gets ``room.state`` with ``again`` and chats again, within the
same 15 s as a caller's room.

Two ``waitroom serve --redis`` processes sharing one SQLite file (``test_serve_nodes.Cluster``).
Starts Redis and two servers: run under the heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_calls_after_node_death.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import trio

from actors import addresses
from tests.cluster.test_desks_across_nodes import query
from tests.cluster.test_serve_nodes import (
    RECONNECT_BUDGET,
    Cluster,
    Events,
    chat,
    cluster,
    owner,
    sign_in,
)
from waitroom.loadtest.client import GatewayRefused, connect

__all__ = ["cluster"]  # the fixture, used by name


async def test_kill_9_of_a_meeting_calls_node_its_member_on_node_b_is_back_within_15_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    admin, _ = await sign_in(cluster.b, "admin")
    page = await admin.get("/admin/meetings")
    unit = page.text.split('name="unit_id"><option value="', 1)[1].split('"', 1)[0]
    created = await admin.post_form(
        "/admin/meetings/rooms",
        {"csrf_token": page.csrf_token() or "", "unit_id": unit, "name": "Huddle"},
    )
    assert created.status == 303, created.text[:2000]
    ((meeting_id, room_id),) = query(tmp_path, "SELECT id, room_id FROM meeting_rooms")
    room = addresses.room(room_id)

    on_a, _ = await sign_in(cluster.a)
    assert (await on_a.get(f"/meetings/{meeting_id}")).status == 200  # its call starts on a
    member, _ = await sign_in(cluster.b)
    assert await owner(cluster, room) == cluster.a.node_id
    assert (await member.get(f"/meetings/{meeting_id}")).status == 200  # let in through b
    events = Events()
    async with connect(cluster.b.ws_url, events, cookie=member.cookie_header()) as ws:
        entered = await ws.request("room.enter", {}, room)
        assert entered["state"] == "in_call"
        await ws.request("chat.send", {"text": "before"}, room)
        await events.wait_for(chat("before"), 5)

        killed = time.monotonic()
        cluster.a.kill()
        deadline = killed + RECONNECT_BUDGET
        # The page sends nothing: its gateway sees node a gone and enters the room again.
        again_at = await events.wait_for(
            lambda event, body: event == "room.state" and body.get("again") is True,
            RECONNECT_BUDGET,
        )
        print(f"room.state again on b {again_at - killed:.1f} s after kill -9 of a")
        assert await owner(cluster, room) == cluster.b.node_id
        while True:
            try:
                await ws.request("chat.send", {"text": "after"}, room)
                break
            except GatewayRefused as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the member's chat never went through: {exc}") from exc
                await trio.sleep(0.25)
        await events.wait_for(chat("after"), 5)
        back = time.monotonic() - killed
        print(f"member chats in meeting {room_id} through b {back:.1f} s after kill -9 of a")
        assert back < RECONNECT_BUDGET
        states = [body for _, event, body in events.seen if event == "room.state"]
        assert states[-1]["state"] == "in_call" and states[-1]["meeting"] == "Huddle", states
    # The dead node's call record was ended when the call started again; the new one is open.
    records = query(tmp_path, "SELECT ended_at IS NULL FROM calls WHERE room_id = ?", room_id)
    assert sorted(open_ for (open_,) in records) == [0, 1], records
