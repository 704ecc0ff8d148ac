"""Calls of every kind start again on a live node when their node is killed (issue 18).

A call runs on node a; the pages in it are connected through node b. After kill -9 of a, each
page's gateway on b enters the room again (``rejoin``): the message finds no owner, node b's
``Reviver`` asks the host of the call's kind to start it again from the store (``StartAgain``),
and each page gets ``room.state`` with ``again`` and chats again, within the same 15 s as a
caller's room. Tested for a meeting room (its member), a Consult Now call (the provider and the
patient's guest token), a group session (its moderator and an admitted participant, with
what docs/operations.md says a group call loses: raised hands and the spotlight), an on-demand
session (the claiming provider and the patient, still in session) and a group session's open
breakout rooms (each participant's room socket back in its room with the same seats, the timer
set at the opening still running).

Two ``waitroom serve --redis`` processes sharing one SQLite file (``test_serve_nodes.Cluster``).
Starts Redis and two servers: run under the heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_calls_after_node_death.py``).
"""

from __future__ import annotations

import re
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from actors import addresses
from tests.cluster.served_nodes import ServedNode
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
from waitroom.loadtest.client import GatewayClient, GatewayRefused, connect
from waitroom.loadtest.http import Browser
from waitroom.loadtest.scenario import ROOM_TOKEN

__all__ = ["cluster"]  # the fixture, used by name

_LINK = re.compile(r"/c/([A-Za-z0-9_-]+)")
_UNIT = re.compile(r'name="unit_id"(?: value="(\d+)"|[^>]*><option value="(\d+)")')
#: How long the breakout rooms of the breakout test run: the node's death and the rooms' return
#: (about 6 s) fit well inside it, and the test still sees the timer end.
BREAKOUT_SECONDS = 30
#: How near the moment it was set for the resumed timer must close the rooms: one started afresh
#: when the desk started again would close them about the restart's delay (6 s and more) later.
TIMER_SLACK = 2.5


def again(event: str, body: dict[str, Any]) -> bool:
    return event == "room.state" and body.get("again") is True


async def chat_until_through(
    ws: GatewayClient, room: str, text: str, deadline: float, who: str
) -> None:
    """Send ``text`` to ``room`` until the gateway takes it (the call is starting again)."""
    while True:
        try:
            await ws.request("chat.send", {"text": text}, room)
            return
        except GatewayRefused as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{who}'s chat never went through: {exc}") from exc
            await trio.sleep(0.25)


def last_state(events: Events) -> dict[str, Any]:
    return [body for _, event, body in events.seen if event == "room.state"][-1]


async def new_group_session(node: ServedNode, tmp_path: Path) -> tuple[str, str]:
    """A group session starting now, created by the provider through ``node`` (its call starts
    there): (its room id, its link)."""
    creator, _ = await sign_in(node)
    page = await creator.get("/group/new")
    unit = _UNIT.search(page.text)
    assert unit is not None, page.text[:2000]
    form = {
        "csrf_token": page.csrf_token() or "",
        "unit_id": unit.group(1) or unit.group(2),
        "title": "Back pain",
        # Now: a session nobody started a day after its start has ended.
        "starts_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
        "time_zone": "UTC",
        "capacity": "10",
    }
    created = await creator.post_form("/group/new", form)
    assert created.status == 303, created.text[:2000]
    ((room_id, link),) = query(tmp_path, "SELECT room_id, link FROM group_sessions")
    return str(room_id), str(link)


async def arrive_in_group(node: ServedNode, link: str, name: str) -> str:
    """``name`` arrives at the session's link through ``node``: their participant token."""
    arrival = Browser(node.url)
    join = await arrival.get(f"/g/{link}")
    arrived = await arrival.post_form(
        f"/g/{link}", {"csrf_token": join.csrf_token() or "", "name": name}
    )
    token = ROOM_TOKEN.search(arrived.text)
    assert arrived.status == 200 and token is not None, arrived.text[:2000]
    return token.group(1)


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
        # The dead node's call record was ended when the call started again; the new one is
        # open. Read while the member is still in: a meeting room's call ends with its last
        # person, so after the socket closes the new record may be ended too (it raced in CI).
        records = query(tmp_path, "SELECT ended_at IS NULL FROM calls WHERE room_id = ?", room_id)
        assert sorted(open_ for (open_,) in records) == [0, 1], records


async def test_kill_9_of_a_consult_now_calls_node_provider_and_patient_on_b_are_back_within_15_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The link is opened through node a (the call starts there); the provider's call page and
    the patient's page (its guest token) are connected through node b. After kill -9 of a both
    gateways enter the call again, node b's consult desk starts it from the store, in call with
    its call record kept, and they chat."""
    provider, areas = await sign_in(cluster.b)
    page = await provider.get("/consult/new")
    form = {
        "csrf_token": page.csrf_token() or "",
        "channel": "sms",
        "recipient": "+44 7700 900123",
        "label": "Sam",
        "lang": "en",
        "area_id": areas[0][0],
    }
    assert (await provider.post_form("/consult/new", form)).status == 303
    ((body,),) = query(tmp_path, "SELECT body FROM outbox")
    link = _LINK.search(str(body))
    assert link is not None, body
    patient = Browser(cluster.a.url)
    landing = await patient.get(f"/c/{link.group(1)}")
    opened = await patient.post_form(
        f"/c/{link.group(1)}", {"csrf_token": landing.csrf_token() or "", "name": "Sam"}
    )
    token = ROOM_TOKEN.search(opened.text)
    assert opened.status == 200 and token is not None, opened.text[:2000]
    ((room_id,),) = query(tmp_path, "SELECT id FROM rooms WHERE kind = 'consult_now'")
    room = addresses.room(room_id)
    assert await owner(cluster, room) == cluster.a.node_id
    assert (await provider.get(f"/consult/call/{room_id}")).status == 200
    staff, guest = Events(), Events()
    async with (
        connect(cluster.b.ws_url, guest, token=token.group(1)) as sam,
        connect(cluster.b.ws_url, staff, cookie=provider.cookie_header()) as doc,
    ):
        await sam.request("room.enter", {}, room)
        assert (await doc.request("room.enter", {}, room))["state"] == "in_call"
        await doc.request("chat.send", {"text": "before"}, room)
        await guest.wait_for(chat("before"), 5)

        killed = time.monotonic()
        cluster.a.kill()
        deadline = killed + RECONNECT_BUDGET
        # Neither page sends anything: their gateway sees node a gone and enters again.
        for who, events in (("provider", staff), ("patient", guest)):
            at = await events.wait_for(again, RECONNECT_BUDGET)
            print(f"Consult Now: room.state again for the {who} on b {at - killed:.1f} s after")
        assert await owner(cluster, room) == cluster.b.node_id
        await chat_until_through(doc, room, "after", deadline, "the provider")
        await guest.wait_for(chat("after"), 5)
        await chat_until_through(sam, room, "back", deadline, "the patient")
        await staff.wait_for(chat("back"), 5)
        back = time.monotonic() - killed
        print(f"provider and patient chat in Consult Now {room_id} through b {back:.1f} s after")
        assert back < RECONNECT_BUDGET
        for events in (staff, guest):
            assert last_state(events)["state"] == "in_call"
        # Its call record was kept: one record, still open (a meeting's is ended and opened
        # anew). Read while both are in, before their leaving can end it.
        records = query(tmp_path, "SELECT ended_at IS NULL FROM calls WHERE room_id = ?", room_id)
        assert records == [(1,)], records


async def test_kill_9_of_a_group_calls_node_moderator_and_participant_on_b_are_back_within_15_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A group session created through node a (its call starts there); its moderator and an
    admitted participant are connected through node b. After kill -9 of a both gateways enter
    again and node b's group desk starts the call from the store: running, locked, the
    participant admitted (so the lock does not keep them out); what lived only in the dead
    node's memory, the raised hand and the spotlight, is gone."""
    room_id, link = await new_group_session(cluster.a, tmp_path)
    room = addresses.room(room_id)
    assert await owner(cluster, room) == cluster.a.node_id
    token = await arrive_in_group(cluster.a, link, "Ann Smith")

    moderator, _ = await sign_in(cluster.b)
    staff, person = Events(), Events()
    async with (
        connect(cluster.b.ws_url, staff, cookie=moderator.cookie_header()) as mod,
        connect(cluster.b.ws_url, person, token=token) as ann,
    ):
        assert (await mod.request("room.enter", {}, room))["state"] == "in_call"
        waited = await ann.request("room.enter", {}, room)
        assert waited["state"] == "waiting"
        member = waited["member"]
        await mod.request("group.admit", {"ids": [member]}, room)
        await person.wait_for(lambda e, b: e == "room.state" and b["state"] == "in_call", 5)
        await ann.request("group.hand", {"raised": True}, room)
        await mod.request("group.spotlight", {"id": member}, room)
        await mod.request("group.lock", {"locked": True}, room)
        await ann.request("chat.send", {"text": "before"}, room)
        await staff.wait_for(chat("before"), 5)

        killed = time.monotonic()
        cluster.a.kill()
        deadline = killed + RECONNECT_BUDGET
        for who, events in (("moderator", staff), ("participant", person)):
            at = await events.wait_for(again, RECONNECT_BUDGET)
            print(f"group: room.state again for the {who} on b {at - killed:.1f} s after")
        assert await owner(cluster, room) == cluster.b.node_id
        await chat_until_through(ann, room, "after", deadline, "the participant")
        await staff.wait_for(chat("after"), 5)
        await chat_until_through(mod, room, "back", deadline, "the moderator")
        await person.wait_for(chat("back"), 5)
        back = time.monotonic() - killed
        print(f"moderator and participant chat in group {room_id} through b {back:.1f} s after")
        assert back < RECONNECT_BUDGET
        assert last_state(person)["state"] == "in_call"
        kept = last_state(staff)
        assert kept["state"] == "in_call" and kept["locked"] is True and kept["admitted"] == 1
        lists = [body["participants"] for _, _, body in staff.seen if "participants" in body]
        assert member in {p["member"] for p in lists[-1]}  # the moderator sees them again
        assert kept["hands"] == [] and kept["spotlight"] is None, kept  # lost with node a


async def test_kill_9_of_an_on_demand_sessions_node_provider_and_patient_are_back_within_15_s(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A patient's Meet Now request, claimed by an on-call provider and in session (both pressed
    Start Session). The session runs where its organisation's queue started it (the node that
    claimed the queue first); the patient's page and the provider's session page are connected
    through the other node. After kill -9 of the session's node both gateways enter the session
    again: the live node's on-demand host starts it from its request (``StartAgain``), still in
    session with who claimed it (docs/operations.md: intake, waiting or in session, who claimed
    it), and they chat. The queue died with it; the provider's list, opened afterwards, starts it
    on the live node and lists the request in session (the running session is not started twice).

    Nothing watches the queue until the session is back, so the session's return is the host's
    ``StartAgain`` alone: a list watched across the kill would start the queue, and the queue its
    live sessions, and hide a host that does not."""
    ((org_id,),) = query(tmp_path, "SELECT id FROM organisations ORDER BY id LIMIT 1")
    queue = addresses.ondemand(org_id)
    patient = Browser(cluster.a.url)
    form = await patient.get(f"/o/{org_id}/meet")
    fields = {"csrf_token": form.csrf_token() or "", "name": "Ada", "region": "Kent"}
    met = await patient.post_form(f"/o/{org_id}/meet", fields)
    token = ROOM_TOKEN.search(met.text)
    assert met.status == 200 and token is not None, met.text[:2000]
    ((request_id, room_id),) = query(tmp_path, "SELECT id, room_id FROM ondemand_requests")
    room = addresses.room(room_id)
    host = await owner(cluster, room)
    dying, live = (cluster.a, cluster.b) if host == cluster.a.node_id else (cluster.b, cluster.a)
    assert host == dying.node_id and await owner(cluster, queue) == host  # started by its queue
    print(f"on-demand session and queue on {dying.node_id}; the pages on {live.node_id}")

    provider, _ = await sign_in(live)
    cookie = provider.cookie_header()
    staff, guest = Events(), Events()
    async with (
        connect(live.ws_url, Events(), cookie=cookie) as console,
        connect(live.ws_url, guest, token=token.group(1)) as ada,
        connect(live.ws_url, staff, cookie=cookie) as doc,
    ):
        await console.request("ondemand.oncall", {"on": True}, queue)
        waiting = await ada.request("room.enter", {}, room)
        assert waiting["state"] == "waiting" and waiting["ondemand"]["state"] == "waiting"
        claimed = await console.request("ondemand.claim", {"request_id": request_id}, queue)
        assert claimed["room"] == room_id
        assert (await doc.request("room.enter", {}, room))["state"] == "waiting"
        await doc.request("session.start", {}, room)
        await ada.request("session.start", {}, room)
        for events in (staff, guest):
            await events.wait_for(lambda e, b: e == "room.state" and b["state"] == "in_call", 5)
        await ada.request("chat.send", {"text": "before"}, room)
        await staff.wait_for(chat("before"), 5)
        name = last_state(guest)["ondemand"]["claimed_by"]
        assert name, last_state(guest)

        killed = time.monotonic()
        dying.kill()
        deadline = killed + RECONNECT_BUDGET
        # No page sends anything: their gateway sees the node gone and enters (watches) again.
        for who, events in (("provider", staff), ("patient", guest)):
            at = await events.wait_for(again, RECONNECT_BUDGET)
            print(f"on-demand: room.state again for the {who} {at - killed:.1f} s after")
        assert await owner(cluster, room) == live.node_id
        await chat_until_through(doc, room, "after", deadline, "the provider")
        await guest.wait_for(chat("after"), 5)
        await chat_until_through(ada, room, "back", deadline, "the patient")
        await staff.wait_for(chat("back"), 5)
        back = time.monotonic() - killed
        print(f"provider and patient chat in on-demand session {room_id} {back:.1f} s after")
        assert back < RECONNECT_BUDGET
        for events in (staff, guest):
            kept = last_state(events)
            assert kept["state"] == "in_call", kept
            assert kept["ondemand"]["state"] == "in_session", kept
            assert kept["ondemand"]["claimed_by"] == name, kept
            assert kept["ondemand"]["started"] == {"staff": True, "patient": True}, kept
        lists = [body["participants"] for _, _, body in staff.seen if "participants" in body]
        assert "Ada" in {p["name"] for p in lists[-1]}, lists[-1]  # the provider sees her again
        # The queue died with the session: the list, opened now, starts it on the live node.
        while True:
            try:
                listed = await console.request("ondemand.watch", {}, queue)
                break
            except GatewayRefused as exc:
                if time.monotonic() > killed + 2 * RECONNECT_BUDGET:
                    raise AssertionError(f"the on-demand list never came back: {exc}") from exc
                await trio.sleep(0.25)
        print(f"on-demand list back {time.monotonic() - killed:.1f} s after")
        assert [(r["id"], r["state"]) for r in listed["requests"]] == [
            (request_id, "in_session")
        ], listed
        assert await owner(cluster, queue) == live.node_id
        await chat_until_through(ada, room, "still", deadline + 5, "the patient")
        await staff.wait_for(chat("still"), 5)
        for events in (staff, guest):  # the same session, not a second copy entered again
            assert sum(again(e, b) for _, e, b in events.seen) == 1, events.seen
    # Its request was kept: in session, claimed by the provider, not ended.
    rows = query(
        tmp_path,
        "SELECT state, claimed_by IS NOT NULL, ended_at FROM ondemand_requests WHERE id = ?",
        request_id,
    )
    assert rows == [("in_session", 1, None)], rows


async def body_of(events: Events, kind: str, timeout: float) -> dict[str, Any]:
    """The first ``kind`` event's body (waiting up to ``timeout`` for it)."""
    await events.wait_for(lambda event, _: event == kind, timeout)
    return next(body for _, event, body in events.seen if event == kind)


async def ask_until_answered(
    ws: GatewayClient, kind: str, body: dict[str, Any], to: str, deadline: float
) -> dict[str, Any]:
    """``kind`` sent until the gateway answers it (what it reaches is starting again)."""
    while True:
        try:
            return await ws.request(kind, body, to)
        except GatewayRefused as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind} never answered: {exc}") from exc
            await trio.sleep(0.25)


async def test_kill_9_of_the_breakout_rooms_node_everyone_is_back_in_their_room_on_the_same_timer(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A group session created through node a: its call, its breakout desk and its two open
    breakout rooms run there (Knees: Ann and Bob; Backs: Cat), with a 30 s timer. The moderator
    and the three participants (each with their main socket and their room's socket) are
    connected through node b. After kill -9 of a, each room socket's gateway enters its room
    again: the Reviver finds the room's session in ``group_breakout_rooms`` and node b's group
    desk starts the call and the breakout desk, which resumes the rooms (docs/operations.md,
    "breakout room"): the same room ids and seats (no seat issued or revoked), Ann and Bob chat
    in Knees again, the moderator's list shows each person in their room, and the timer is the
    one set at the opening: the rooms start closing when it was due, not 30 s after the
    restart."""
    room_id, link = await new_group_session(cluster.a, tmp_path)
    ((session_id,),) = query(tmp_path, "SELECT id FROM group_sessions")
    main = addresses.room(room_id)
    names = ("Ann Smith", "Bob Jones", "Cat Brown")
    tokens = [await arrive_in_group(cluster.a, link, name) for name in names]
    moderator, _ = await sign_in(cluster.b)
    staff, outside, inside = Events(), [Events() for _ in names], [Events() for _ in names]
    async with AsyncExitStack() as stack:
        mod = await stack.enter_async_context(
            connect(cluster.b.ws_url, staff, cookie=moderator.cookie_header())
        )
        assert (await mod.request("room.enter", {}, main))["state"] == "in_call"
        members = []
        for token, events in zip(tokens, outside, strict=True):
            ws = await stack.enter_async_context(connect(cluster.b.ws_url, events, token=token))
            members.append((await ws.request("room.enter", {}, main))["member"])
        await mod.request("group.admit", {"ids": members}, main)
        for events in outside:
            await events.wait_for(lambda e, b: e == "room.state" and b["state"] == "in_call", 5)
        plan = await mod.request(
            "group.breakout.create", {"count": 2, "names": ["Knees", "Backs"]}, main
        )
        knees, backs = (r["id"] for r in plan["rooms"])
        seats = dict(zip(members, (knees, knees, backs), strict=True))
        await mod.request("group.breakout.assign", {"mode": "manual", "assignments": seats}, main)
        opened = await mod.request("group.breakout.open", {"duration": BREAKOUT_SECONDS}, main)
        ends_at = opened["ends_at"]
        live = {r["id"]: r["address"] for r in opened["rooms"]}
        rooms: list[GatewayClient] = []
        for member, events, own in zip(members, outside, inside, strict=True):
            move = await body_of(events, "group.breakout.move", 5)
            assert move["address"] == live[seats[member]], move
            ws = await stack.enter_async_context(
                connect(cluster.b.ws_url, own, token=move["token"])
            )
            entered = await ws.request("room.enter", {}, move["address"])
            assert entered["kind"] == "breakout" and entered["ends_at"] == ends_at, entered
            rooms.append(ws)
        ann, bob, _ = rooms
        await ann.request("chat.send", {"text": "before"}, live[knees])
        await inside[1].wait_for(chat("before"), 5)
        for address in (*live.values(), addresses.group_breakouts(session_id)):
            assert await owner(cluster, address) == cluster.a.node_id, address
        seats_sql = """SELECT id, room_id, member_id FROM group_breakout_seats
                       WHERE session_id = ? AND revoked_at IS NULL ORDER BY id"""
        seated = query(tmp_path, seats_sql, session_id)
        assert sorted((m, r) for _, r, m in seated) == sorted(
            (m, live[seats[m]].removeprefix("room/")) for m in members
        ), seated
        rooms_sql = "SELECT room_id FROM group_breakout_rooms WHERE session_id = ? ORDER BY 1"
        kept = query(tmp_path, rooms_sql, session_id)
        assert kept == sorted((a.removeprefix("room/"),) for a in live.values()), kept

        killed = time.monotonic()
        cluster.a.kill()
        deadline = killed + RECONNECT_BUDGET
        # No page sends anything: the gateway on b sees a gone and enters every room again.
        for name, events in zip(names, inside, strict=True):
            at = await events.wait_for(again, RECONNECT_BUDGET)
            print(f"breakout: {name} in their room again {at - killed:.1f} s after kill -9")
            state = last_state(events)
            assert state["kind"] == "breakout" and state["ends_at"] == ends_at, state
        await chat_until_through(ann, live[knees], "after", deadline, "Ann")
        await inside[1].wait_for(chat("after"), 5)
        await chat_until_through(bob, live[knees], "back", deadline, "Bob")
        await inside[0].wait_for(chat("back"), 5)
        back = time.monotonic() - killed
        print(f"Ann and Bob chat in their breakout room through b {back:.1f} s after kill -9")
        assert back < RECONNECT_BUDGET
        for address in (*live.values(), addresses.group_breakouts(session_id), main):
            assert await owner(cluster, address) == cluster.b.node_id, address
        view = await ask_until_answered(mod, "group.breakout.state", {}, main, deadline)
        assert view["phase"] == "open" and view["ends_at"] == ends_at, view
        assert {r["id"]: r["address"] for r in view["rooms"]} == live, view
        assert {p["id"]: r["id"] for r in view["rooms"] for p in r["people"]} == seats, view
        lists = [b["participants"] for _, _, b in staff.seen if "participants" in b]
        where = {p["member"]: (p.get("breakout") or {}).get("room") for p in lists[-1]}
        assert {m: where.get(m) for m in members} == {
            m: live[seats[m]].removeprefix("room/") for m in members
        }, lists[-1]  # the main call knows who is in which room again
        # The same seats and rooms in the store: resumed, none issued or revoked.
        assert query(tmp_path, seats_sql, session_id) == seated
        assert query(tmp_path, rooms_sql, session_id) == kept

        # The timer set at the opening still runs: the rooms start closing when it is due.
        closing = await body_of(inside[0], "group.breakout.closing", ends_at - time.time() + 10)
        closed_at = next(at for at, e, _ in inside[0].seen if e == "group.breakout.closing")
        late = closed_at + (time.time() - time.monotonic()) - ends_at  # wall clock, as ends_at
        print(f"breakout rooms began closing {late:+.1f} s from the timer set at the opening")
        assert closing["reason"] == "timer" and abs(late) < TIMER_SLACK, closing
