"""The retention actor forgets audit entries' client addresses, on the virtual clock (issue 15).

Entries from 200 days and from 10 days ago: after the first sweep the old ones have no address and
the recent ones keep theirs, who did what and when stays, and the administrators' chain check still
passes (and still catches a change). As the virtual days pass, the recent ones go too. Over the
real server, the audit page and its check work with forgotten addresses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlite_utils import Database

from actors.admin.retention import RetentionActor, SweepNow
from runtime import ActorRef, ChildSpec, Registry, Supervisor
from storage import audit, audit_chain
from storage.db import Store, fetch_all, open_store
from storage.retention import DEFAULT_AUDIT_ADDRESS_DAYS, RetentionPolicy, SweepResult
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from waitroom.cli import build_parser, config_from_args

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = 24 * 3600.0
POLICY = RetentionPolicy(audit_address_days=180)


@dataclass
class World:
    store: Store
    retention: ActorRef
    old: list[int]
    recent: list[int]


async def _entries(store: Store, days_ago: int) -> list[int]:
    when = START - timedelta(days=days_ago)
    arrived = await audit.append(
        store,
        audit.ARRIVAL,
        actor_kind="caller",
        area_id=1,
        subject="caller/c1",
        remote_addr="198.51.100.7",
        now=when,
    )
    joined = await audit.append(
        store,
        audit.JOIN,
        actor_user_id=1,
        area_id=1,
        subject="caller/c1",
        remote_addr="192.0.2.1",
        now=when + timedelta(minutes=5),
    )
    return [arrived.id, joined.id]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """Each test asks for ``autojump_clock`` itself (pytest-trio takes it from the test)."""
    async with open_store(tmp_path / "r.sqlite3") as store, trio.open_nursery() as nursery:
        old = await _entries(store, 200)
        recent = await _entries(store, 10)

        def clock() -> datetime:  # the wall clock, moving with the virtual one
            return START + timedelta(seconds=trio.current_time())

        sup: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await sup.start_child(
            ChildSpec(
                "admin/retention",
                lambda: RetentionActor(store, POLICY, clock=clock, interval=DAY, first_delay=60.0),
            )
        )
        yield World(store, ref, old, recent)
        nursery.cancel_scope.cancel()


async def _addresses(store: Store) -> dict[int, str]:
    return {e.id: e.remote_addr for e in await audit.list_entries(store, area_id=1)}


async def test_old_entries_lose_their_address_and_keep_the_rest(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    store = world.store
    before = {e.id: e for e in await audit.list_entries(store, area_id=1)}
    await trio.sleep(61)  # the first sweep
    after = {e.id: e for e in await audit.list_entries(store, area_id=1)}
    for entry_id in world.old:
        assert after[entry_id].remote_addr == ""
        # Who did what, when, where, about whom: unchanged.
        kept = ("at", "actor_kind", "actor_user_id", "action", "area_id", "subject", "details")
        for name in kept:
            assert getattr(after[entry_id], name) == getattr(before[entry_id], name), name
    assert [after[i].remote_addr for i in world.recent] == ["198.51.100.7", "192.0.2.1"]
    check = await audit_chain.verify(store)
    assert check.intact and check.entries == 5  # four entries and the sweep's own
    sweeps = await audit.list_entries(store, action=audit.RETENTION_SWEEP)
    assert len(sweeps) == 1 and sweeps[0].actor_kind == "system"
    assert sweeps[0].details["forgot"]["audit_addresses"] == 2
    assert sweeps[0].details["days"]["audit_addresses"] == 180
    assert "198.51.100.7" not in json.dumps(sweeps[0].details)
    again: SweepResult = await world.retention.ask(SweepNow())
    assert again.total == 0


async def test_the_timer_forgets_recent_addresses_when_their_day_comes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(61)
    await trio.sleep(169 * DAY)  # the recent entries are now 179 days old: kept
    assert [(await _addresses(world.store))[i] for i in world.recent] == [
        "198.51.100.7",
        "192.0.2.1",
    ]
    await trio.sleep(2 * DAY)  # 181 days: the next daily sweep forgets them
    assert set((await _addresses(world.store)).values()) == {""}
    assert (await audit_chain.verify(world.store)).intact


def _change_action(db: Database, entry_id: int) -> None:
    """An intruder with the database file: drop the trigger, rewrite what someone did."""
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET action = 'call.hold' WHERE id = ?", (entry_id,))


async def test_a_change_to_a_forgotten_entry_still_shows(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(61)
    assert (await audit_chain.verify(world.store)).intact
    await world.store.run(_change_action, world.old[1])
    check = await audit_chain.verify(world.store)
    assert check.first_broken_id == world.old[1]


def test_audit_addresses_are_kept_for_a_default_number_of_days() -> None:
    policy = RetentionPolicy()
    assert policy.audit_address_days == DEFAULT_AUDIT_ADDRESS_DAYS == 180
    with pytest.raises(ValueError, match="audit_address_days"):
        RetentionPolicy(audit_address_days=-1)
    assert RetentionPolicy(audit_address_days=0).audit_address_days == 0  # 0 keeps them


def test_serve_takes_the_audit_address_days_like_the_other_kinds() -> None:
    default = config_from_args(build_parser().parse_args(["serve"]))
    assert default.retention.audit_address_days == DEFAULT_AUDIT_ADDRESS_DAYS
    args = build_parser().parse_args(["serve", "--retain-audit-address-days", "30"])
    assert config_from_args(args).retention.audit_address_days == 30
    negative = build_parser().parse_args(["serve", "--retain-audit-address-days", "-1"])
    with pytest.raises(SystemExit, match="audit_address_days"):
        config_from_args(negative)


async def test_the_audit_page_and_check_work_with_forgotten_addresses(
    waitroom_server: RunningServer,
) -> None:
    demo = waitroom_server.demo
    admin = HttpClient(waitroom_server.base_url)
    await sign_in(admin, demo.admin_username, DEMO_PASSWORD)
    page = await admin.get("/admin/audit?action=auth.sign_in")
    assert "<td>127.0.0.1</td>" in page.text
    async with open_store(waitroom_server.db_path) as store:
        forgotten = await store.run(audit.forget_addresses, datetime.now(UTC) + timedelta(days=1))
        assert forgotten >= 1
        assert await store.run(fetch_all, "SELECT * FROM audit_addresses") == []
    page = await admin.get("/admin/audit?action=auth.sign_in")
    assert page.status == 200
    assert page.text.count('data-action="auth.sign_in"') == 1
    assert "127.0.0.1" not in page.text and "None" not in page.text
    checked = await admin.post("/admin/audit/verify", {"csrf_token": page.csrf_token()})
    assert checked.status == 200 and 'data-intact="yes"' in checked.text
