"""The retention policy carried out by its actor, on the virtual clock (issue 15).

A visit from long ago and one from yesterday: after the first sweep only the old caller's details,
the old call's caller name and the old outbox message are gone; counts, durations and staff names
stay; an audit entry says how many rows went, not which. As the virtual days pass, the sweep on
the timer forgets yesterday's visit too once it is old enough.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors.admin.retention import RetentionActor, SweepNow
from runtime import ActorRef, ChildSpec, Registry, Supervisor
from storage import areas, callers, calls, orgs, outbox, sessions, staff
from storage.db import Store, fetch_all, fetch_one, open_store
from storage.retention import RetentionPolicy, SweepResult

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = 24 * 3600.0
POLICY = RetentionPolicy(caller_days=30, outbox_days=30, session_days=7)
#: The actor sweeps hourly in production; a day here keeps the virtual run short.
INTERVAL = DAY


@dataclass
class Visit:
    caller_id: str
    call_id: str
    message_id: int


async def visit(store: Store, area_id: int, when: datetime, name: str) -> Visit:
    arrival = await callers.register_arrival(
        store, area_id, {"name": name, "reason": "chest pain"}, now=when
    )
    call = await calls.start_call(store, arrival.room.id, caller_id=arrival.caller.id, now=when)
    await calls.add_participant(store, call.id, "caller", name, now=when)
    await calls.add_participant(store, call.id, "staff", "Dr Dana", user_id=1, now=when)
    await calls.end_call(store, call.id, now=when + timedelta(minutes=20))
    await callers.set_status(store, arrival.caller.id, "ended", now=when + timedelta(minutes=20))
    message = await outbox.enqueue(
        store, "email", f"{name}@example.org", "your link https://x/w/abc", now=when
    )
    await outbox.mark_sent(store, message.id, now=when)
    return Visit(arrival.caller.id, call.id, message.id)


@dataclass
class World:
    store: Store
    retention: ActorRef
    old: Visit
    recent: Visit


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The clinic's data; each test asks for ``autojump_clock`` itself (pytest-trio takes the
    clock from the test's own arguments)."""
    async with open_store(tmp_path / "r.sqlite3") as store, trio.open_nursery() as nursery:
        org = await orgs.create_organisation(store, "Org")
        unit = await orgs.create_unit(store, org.id, "Clinic")
        area = await areas.create_area(store, unit.id, "Front desk")
        await staff.create_user(store, "dana", "Dr Dana", "x")
        old = await visit(store, area.id, START - timedelta(days=45), "Old Patient")
        recent = await visit(store, area.id, START - timedelta(days=1), "New Patient")
        expired = await sessions.create_session(store, 1, now=START - timedelta(days=30))
        assert expired.session_id

        def clock() -> datetime:  # the wall clock, moving with the virtual one
            return START + timedelta(seconds=trio.current_time())

        sup: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await sup.start_child(
            ChildSpec(
                "admin/retention",
                lambda: RetentionActor(
                    store, POLICY, clock=clock, interval=INTERVAL, first_delay=60.0
                ),
            )
        )
        yield World(store, ref, old, recent)
        nursery.cancel_scope.cancel()


async def details(store: Store, caller_id: str) -> dict[str, str]:
    row = await store.run(fetch_one, "SELECT details FROM callers WHERE id = ?", (caller_id,))
    assert row is not None
    return dict(json.loads(row["details"]))


async def names(store: Store, call_id: str) -> list[str]:
    rows = await store.run(
        fetch_all,
        "SELECT display_name FROM call_participants WHERE call_id = ? ORDER BY id",
        (call_id,),
    )
    return [r["display_name"] for r in rows]


async def test_old_visits_are_forgotten_and_recent_ones_kept(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(61)  # the first sweep
    store = world.store
    assert await details(store, world.old.caller_id) == {}
    assert await names(store, world.old.call_id) == ["", "Dr Dana"]
    old_message = await outbox.get_message(store, world.old.message_id)
    assert (old_message.recipient, old_message.body) == ("", "")
    assert old_message.status == "sent"  # the report still counts it
    assert (await details(store, world.recent.caller_id))["name"] == "New Patient"
    assert await names(store, world.recent.call_id) == ["New Patient", "Dr Dana"]
    assert (await outbox.get_message(store, world.recent.message_id)).body != ""
    # The call's duration stays for reports.
    old_call = await calls.get_call(store, world.old.call_id)
    assert old_call.ended_at is not None
    rows = await store.run(
        fetch_all, "SELECT actor_kind, details FROM audit_log WHERE action = 'retention.sweep'"
    )
    assert len(rows) == 1 and rows[0]["actor_kind"] == "system"
    forgot = json.loads(rows[0]["details"])["forgot"]
    assert forgot["caller_details"] == 1 and forgot["ended_sign_ins"] == 1
    assert "Old Patient" not in rows[0]["details"]


async def test_the_timer_forgets_each_visit_when_its_day_comes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(61)
    assert (await details(world.store, world.recent.caller_id))["name"] == "New Patient"
    await trio.sleep(28 * DAY)  # yesterday's visit is now 29 days old: kept
    assert (await details(world.store, world.recent.caller_id))["name"] == "New Patient"
    await trio.sleep(2 * DAY)  # 31 days: the next daily sweep forgets it
    assert await details(world.store, world.recent.caller_id) == {}
    assert await names(world.store, world.recent.call_id) == ["", "Dr Dana"]


async def test_a_second_sweep_changes_nothing(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(61)
    again: SweepResult = await world.retention.ask(SweepNow())
    assert again.total == 0


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="caller_days"):
        RetentionPolicy(caller_days=-1)


async def test_finished_on_demand_requests_and_old_bell_items_are_forgotten(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    def seed(db: Any) -> None:
        old = (START - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        new = (START - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for rid, state, when in (
            ("old", "declined", old),
            ("open", "waiting", old),
            ("new", "ended", new),
        ):
            db.execute(
                """INSERT INTO ondemand_requests (id, org_id, room_id, token_hash, state, details,
                       case_info, created_at, ended_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    rid,
                    f"room-{rid}",
                    f"hash-{rid}",
                    state,
                    '{"name":"Pat"}',
                    '{"why":"x"}',
                    when,
                    when if state != "waiting" else None,
                ),
            )
        for when in (old, new):
            db.execute(
                """INSERT INTO staff_notices (org_id, user_id, kind, text, created_at)
                   VALUES (1, 1, 'assigned', 'Pat is waiting', ?)""",
                (when,),
            )

    await world.store.run(seed)
    await trio.sleep(61)
    rows = await world.store.run(
        fetch_all, "SELECT id, details, case_info FROM ondemand_requests ORDER BY id"
    )
    kept = {r["id"]: (r["details"], r["case_info"]) for r in rows}
    assert kept["old"] == ("{}", "{}")  # finished long ago: forgotten
    assert kept["open"] != ("{}", "{}")  # still waiting: never touched
    assert kept["new"] != ("{}", "{}")  # finished two days ago: kept
    notices = await world.store.run(fetch_all, "SELECT created_at FROM staff_notices")
    assert len(notices) == 1
