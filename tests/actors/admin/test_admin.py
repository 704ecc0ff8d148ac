"""Reports and the audit log as administrators see them: figures match a scenario whose numbers are
known; only organisation administrators get answers; no code path can change an audit row."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from actors.admin.reports import (
    ADMIN_ADDRESS,
    AdminActor,
    ListAudit,
    ListReportAreas,
    ReportFigures,
    ReportFor,
    percentile,
)
from actors.principal import Grant, Principal, Role, Scope
from runtime import ChildSpec, Refusal, Registry, Supervisor
from storage import areas, audit, callers, calls, orgs
from storage.db import Store, open_store
from web.admin import report_rows, wait_chart

DAY = datetime(2026, 7, 6, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def at(minutes: float) -> datetime:
    return DAY + timedelta(hours=9, minutes=minutes)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "w.sqlite3") as opened:
        yield opened


async def scenario(store: Store) -> tuple[int, int]:
    """Five callers seen after 2, 5, 10, 20 and 30 minutes, in calls of 10, 4, 6, 8 and 12 minutes;
    one caller leaves unseen; one arrives the day before (outside the period)."""
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    area = (await areas.create_area(store, unit.id, "GP")).id
    for start, wait, length in ((0, 2, 10), (1, 5, 4), (2, 10, 6), (3, 20, 8), (4, 30, 12)):
        arrival = await callers.register_arrival(store, area, {"name": "X"}, now=at(start))
        await callers.set_status(store, arrival.caller.id, "in_call", now=at(start + wait))
        call = await calls.start_call(
            store, arrival.room.id, caller_id=arrival.caller.id, now=at(start + wait)
        )
        await calls.end_call(store, call.id, now=at(start + wait + length))
        await callers.set_status(store, arrival.caller.id, "ended", now=at(start + wait + length))
    gone = await callers.register_arrival(store, area, {"name": "Y"}, now=at(5))
    await callers.set_status(store, gone.caller.id, "left", now=at(9))
    await callers.register_arrival(store, area, {"name": "Z"}, now=DAY - timedelta(hours=2))
    return org.id, area


async def start_admin(nursery: trio.Nursery, store: Store) -> Registry:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await root.start_child(ChildSpec(ADMIN_ADDRESS, lambda: AdminActor(store)))
    return registry


def admin_of(org_id: int) -> Principal:
    org = str(org_id)
    return Principal("staff", "Admin", "1", org, frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, org)}))


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9
    assert percentile([30, 2, 10, 5, 20], 90) == 30
    assert percentile([7], 90) == 7


async def test_report_matches_the_known_scenario(store: Store, nursery: trio.Nursery) -> None:
    org_id, area = await scenario(store)
    registry = await start_admin(nursery, store)
    admin = registry.ref(ADMIN_ADDRESS)
    assert await admin.ask(ListReportAreas(admin_of(org_id))) == [(area, "GP")]
    figures = await admin.ask(ReportFor(admin_of(org_id), area, DAY, DAY + timedelta(days=1)))
    assert isinstance(figures, ReportFigures)
    assert (figures.arrivals, figures.calls, figures.left_before_seen) == (6, 5, 1)
    assert (figures.wait.median, figures.wait.p90, figures.wait.longest) == (600, 1800, 1800)
    assert (figures.call_duration.median, figures.call_duration.longest) == (480, 720)
    rows = dict(report_rows(figures))
    assert rows["wait median (min)"] == "10.0"
    assert rows["wait 90th percentile (min)"] == "30.0"
    assert rows["call duration median (min)"] == "8.0"
    assert rows["left before being seen"] == "1"
    png = await trio.to_thread.run_sync(wait_chart, figures)
    assert png.startswith(b"\x89PNG")
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "report-waits.png").write_bytes(png)

    empty = await admin.ask(ReportFor(admin_of(org_id), area, at(600), at(700)))
    assert (empty.arrivals, empty.wait.median) == (0, None)


async def test_only_administrators_of_the_organisation_are_answered(
    store: Store, nursery: trio.Nursery
) -> None:
    org_id, area = await scenario(store)
    registry = await start_admin(nursery, store)
    admin = registry.ref(ADMIN_ADDRESS)
    provider = Principal(
        "staff", "Dr", "2", str(org_id), frozenset({Grant(Role.PROVIDER, Scope.AREA, str(area))})
    )
    for message in (ListAudit(provider), ReportFor(provider, area, DAY, DAY)):
        with pytest.raises(Refusal):
            await admin.ask(message)
    other_org = admin_of(org_id + 1000)
    with pytest.raises(Refusal):
        await admin.ask(ReportFor(other_org, area, DAY, DAY + timedelta(days=1)))


async def test_audit_filters_and_rows_cannot_be_altered(
    store: Store, nursery: trio.Nursery, tmp_path: Path
) -> None:
    org_id, area = await scenario(store)
    registry = await start_admin(nursery, store)
    await audit.append(store, audit.SIGN_IN, actor_user_id=1, remote_addr="10.0.0.1", now=at(0))
    await audit.append(store, audit.JOIN, actor_user_id=1, area_id=area, subject="c1", now=at(5))
    await audit.append(store, audit.LINK_SENT, actor_user_id=2, area_id=area, now=at(7))
    admin = registry.ref(ADMIN_ADDRESS)
    joins = await admin.ask(ListAudit(admin_of(org_id), action=audit.JOIN))
    assert [(e.action, e.area_id, e.subject) for e in joins] == [(audit.JOIN, area, "c1")]
    by_user = await admin.ask(ListAudit(admin_of(org_id), user_id=2))
    assert [e.action for e in by_user] == [audit.LINK_SENT]
    in_window = await admin.ask(ListAudit(admin_of(org_id), since=at(1), until=at(6)))
    assert [e.action for e in in_window] == [audit.JOIN]

    # The database refuses changes (triggers), whoever tries.
    def tamper(sql: str) -> None:
        with sqlite3.connect(tmp_path / "w.sqlite3") as conn:
            conn.execute(sql)

    for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            await trio.to_thread.run_sync(tamper, sql)
    # And no code outside migrations even tries.
    writes = re.compile(r"(UPDATE\s+audit_log|DELETE\s+FROM\s+audit_log)", re.IGNORECASE)
    offenders = [
        str(path.relative_to(REPO))
        for package in (
            "runtime",
            "services",
            "actors",
            "gateway",
            "storage",
            "web",
            "waitroom",
            "media",
        )
        for path in (REPO / package).rglob("*.py")
        if path.name != "migrations.py" and writes.search(path.read_text())
    ]
    assert offenders == []
