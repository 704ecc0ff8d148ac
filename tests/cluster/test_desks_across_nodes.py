"""The per-node desks across two real nodes (issue 18): ``notices``, ``consult`` and ``meetings``
run on every node, while a staff member's console is on one node and the call on another.

* A provider whose console is connected to node b sends a Consult Now link; the recipient opens
  it through node a (the call starts there): the console on node b is rung (``staff.notice``)
  and told ``consult.opened``.
* A meeting console watching through node b hears ``meetings.occupancy`` when the member enters
  the meeting room whose call runs on node a.

Two ``waitroom serve --redis`` processes sharing one SQLite file (``test_serve_nodes.Cluster``).
Starts Redis and two servers: run under the heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_desks_across_nodes.py``).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from actors import addresses
from tests.cluster.test_serve_nodes import Cluster, Events, cluster, owner, sign_in
from waitroom.loadtest.client import connect
from waitroom.loadtest.http import Browser

__all__ = ["cluster"]  # the fixture, used by name

#: Seconds a push from the other node may take on a loaded machine.
PUSH_TIMEOUT = 10.0
_LINK = re.compile(r"/c/([A-Za-z0-9_-]+)")


def query(tmp_path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """A read of the nodes' shared store (``test_serve_nodes.two_nodes`` puts it there)."""
    with sqlite3.connect(tmp_path / "shared.sqlite3") as db:
        return list(db.execute(sql, params).fetchall())


async def test_a_link_opened_through_node_a_rings_the_provider_whose_console_is_on_node_b(
    cluster: Cluster, tmp_path: Path
) -> None:
    provider, areas = await sign_in(cluster.b)
    console = Events()
    async with connect(cluster.b.ws_url, console, cookie=provider.cookie_header()) as ws:
        await ws.request("notices.subscribe", {})
        await ws.request("consult.watch", {})
        page = await provider.get("/consult/new")
        form = {
            "csrf_token": page.csrf_token() or "",
            "channel": "sms",
            "recipient": "+44 7700 900123",
            "label": "Sam",
            "lang": "en",
            "area_id": areas[0][0],
        }
        sent = await provider.post_form("/consult/new", form)
        assert sent.status == 303, sent.text[:2000]
        (body,) = [str(row[0]) for row in query(tmp_path, "SELECT body FROM outbox")]
        match = _LINK.search(body)
        assert match is not None, body
        secret = match.group(1)

        recipient = Browser(cluster.a.url)
        landing = await recipient.get(f"/c/{secret}")
        opened = await recipient.post_form(
            f"/c/{secret}", {"csrf_token": landing.csrf_token() or "", "name": "Sam"}
        )
        assert opened.status == 200, opened.text[:2000]
        ((room_id,),) = query(tmp_path, "SELECT id FROM rooms WHERE kind = 'consult_now'")
        assert await owner(cluster, addresses.room(room_id)) == cluster.a.node_id

        await console.wait_for(
            lambda event, body: event == "consult.opened" and body["room"] == room_id,
            PUSH_TIMEOUT,
        )
        await console.wait_for(
            lambda event, body: (
                event == "staff.notice"
                and body["ring"] is True
                and body["url"] == f"/consult/call/{room_id}"
            ),
            PUSH_TIMEOUT,
        )


async def test_a_meeting_console_on_node_b_hears_someone_enter_a_call_on_node_a(
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

    watcher, _ = await sign_in(cluster.b)
    member, _ = await sign_in(cluster.a)
    console, call = Events(), Events()
    async with connect(cluster.b.ws_url, console, cookie=watcher.cookie_header()) as ws:
        watched = await ws.request("meetings.watch", {})
        assert {"id": meeting_id, "people": []} in watched["rooms"]
        assert (await member.get(f"/meetings/{meeting_id}")).status == 200  # through node a
        async with connect(cluster.a.ws_url, call, cookie=member.cookie_header()) as inside:
            await inside.request("room.enter", {}, addresses.room(room_id))
            assert await owner(cluster, addresses.room(room_id)) == cluster.a.node_id
            await console.wait_for(
                lambda event, body: (
                    event == "meetings.occupancy"
                    and body.get("id") == meeting_id
                    and len(body["people"]) == 1
                ),
                PUSH_TIMEOUT,
            )
            again = await ws.request("meetings.watch", {})  # the listing knows it too
            assert [r["people"] for r in again["rooms"] if r["id"] == meeting_id] != [[]]
