"""The audit log is append-only at the SQL level and filterable; no credential gets in."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage import audit, audit_chain
from storage.db import Store, fetch_all, open_store
from storage.migrations import MIGRATIONS, apply_migrations

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


async def _fill(store: Store) -> None:
    await audit.append(
        store, audit.SIGN_IN, actor_user_id=1, remote_addr="192.0.2.1", now=T0, subject="user/1"
    )
    await audit.append(
        store,
        audit.ARRIVAL,
        actor_kind="caller",
        area_id=10,
        subject="caller/abc",
        remote_addr="198.51.100.7",
        now=T0 + timedelta(minutes=1),
    )
    await audit.append(
        store,
        audit.JOIN,
        actor_user_id=1,
        area_id=10,
        subject="caller/abc",
        details={"room": "r1"},
        now=T0 + timedelta(minutes=2),
    )
    await audit.append(
        store, audit.TRANSFER, actor_user_id=2, area_id=11, now=T0 + timedelta(minutes=3)
    )


async def test_append_and_filter(store: Store) -> None:
    await _fill(store)
    everything = await audit.list_entries(store)
    assert [e.action for e in everything] == [
        audit.TRANSFER,
        audit.JOIN,
        audit.ARRIVAL,
        audit.SIGN_IN,
    ]
    join = everything[1]
    assert (join.actor_kind, join.actor_user_id, join.area_id, join.details) == (
        "user",
        1,
        10,
        {"room": "r1"},
    )
    assert join.at == T0 + timedelta(minutes=2)
    assert [e.action for e in await audit.list_entries(store, area_id=10)] == [
        audit.JOIN,
        audit.ARRIVAL,
    ]
    assert [e.action for e in await audit.list_entries(store, user_id=1)] == [
        audit.JOIN,
        audit.SIGN_IN,
    ]
    assert [e.action for e in await audit.list_entries(store, action=audit.ARRIVAL)] == [
        audit.ARRIVAL
    ]
    window = await audit.list_entries(
        store, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
    )
    assert [e.action for e in window] == [audit.JOIN, audit.ARRIVAL]
    page = await audit.list_entries(store, limit=2)
    rest = await audit.list_entries(store, before_id=page[-1].id)
    assert [e.id for e in page + rest] == [e.id for e in everything]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing'",
        "UPDATE audit_log SET details = '{}' WHERE id = 1",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = 1",
    ],
)
async def test_rows_cannot_be_altered_at_sql_level(store: Store, statement: str) -> None:
    await _fill(store)
    before = await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id")

    def tamper(db: Database) -> None:
        db.execute(statement)

    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.run(tamper)
    assert await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id") == before


async def test_even_a_raw_connection_cannot_alter_rows(store: Store, db_path: Path) -> None:
    await _fill(store)
    conn = sqlite3.connect(str(db_path))
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()
    assert len(await audit.list_entries(store)) == 4


def test_module_offers_no_update_or_delete() -> None:
    public = [name for name in dir(audit) if not name.startswith("_")]
    assert not [n for n in public if any(w in n for w in ("update", "delete", "remove", "edit"))]


@pytest.mark.parametrize("key", ["token", "room_token", "password", "csrf", "Session_ID"])
async def test_credentials_are_refused_in_details(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="credentials"):
        await audit.append(store, audit.INVITE, details={key: "x"})
    with pytest.raises(ValueError, match="credentials"):
        await audit.append(store, audit.INVITE, details={"nested": {key: "x"}})
    assert await audit.list_entries(store) == []


async def test_guest_actors_and_triggers_survive_migration_2(store: Store) -> None:
    """Migration 2 rebuilt the table: guests can act, and append-only still holds."""
    entry = await audit.append(store, audit.INVITE_CLAIMED, actor_kind="guest", subject="room/x")
    assert entry.actor_kind == "guest"

    def tamper(db: Database) -> None:
        db.execute("DELETE FROM audit_log")

    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.run(tamper)


def _fill_as_of_schema_1(db: Database) -> None:
    """Rows as the code of schema 1 wrote them (no chain column yet)."""
    for minute, action, kind in ((0, "auth.sign_in", "user"), (1, "caller.arrived", "caller")):
        db.execute(
            """INSERT INTO audit_log (at, actor_kind, actor_user_id, action, area_id, subject,
                   remote_addr, details) VALUES (?, ?, 1, ?, 10, 'caller/abc', '192.0.2.1', '{}')""",
            ((T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), kind, action),
        )


async def test_migration_2_keeps_existing_rows(db_path: Path) -> None:
    async with open_store(db_path, migrate=False) as store:
        await store.run(apply_migrations, MIGRATIONS[:1])
        await store.run(_fill_as_of_schema_1)
        before = await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id")
        assert await store.run(apply_migrations, MIGRATIONS[:2]) == [2]
        assert await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id") == before


# -- the hash chain (issue 15) ----------------------------------------------------------------------


async def test_appended_entries_form_an_intact_chain(store: Store) -> None:
    assert (await audit_chain.verify(store)).intact
    await _fill(store)
    check = await audit_chain.verify(store)
    assert check.intact and check.entries == 4
    rows = await store.run(fetch_all, "SELECT chain FROM audit_log ORDER BY id")
    assert check.head == rows[-1]["chain"] != audit_chain.GENESIS


def _tamper(db: Database, sql: str, params: tuple[object, ...]) -> None:
    """What someone with the database file can do: drop the triggers and edit."""
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute(sql, params)


@pytest.mark.parametrize(
    ("sql", "params", "broken"),
    [
        ("UPDATE audit_log SET remote_addr = ? WHERE id = 2", ("10.9.9.9",), 2),
        ("UPDATE audit_log SET details = ? WHERE id = 3", ('{"room":"r2"}',), 3),
        ("DELETE FROM audit_log WHERE id = ?", (2,), 3),
        (
            """INSERT INTO audit_log (id, at, actor_kind, action, chain)
               VALUES (?, '2026-05-01T08:10:00.000000Z', 'system', 'x.y', 'forged')""",
            (99,),
            99,
        ),
    ],
)
async def test_a_change_behind_the_triggers_breaks_the_chain_there(
    store: Store, sql: str, params: tuple[object, ...], broken: int
) -> None:
    await _fill(store)
    await store.run(_tamper, sql, params)
    check = await audit_chain.verify(store)
    assert not check.intact
    assert check.first_broken_id == broken


async def test_migration_6_chains_the_entries_already_there(db_path: Path) -> None:
    async with open_store(db_path, migrate=False) as store:
        await store.run(apply_migrations, MIGRATIONS[:5])
        await store.run(_fill_as_of_schema_1)
        assert await store.run(apply_migrations) == [n.number for n in MIGRATIONS[5:]]
        check = await audit_chain.verify(store)
        assert check.intact and check.entries == 2
        await audit.append(store, audit.SIGN_OUT, actor_user_id=1, now=T0 + timedelta(hours=1))
        assert (await audit_chain.verify(store)).entries == 3
        # The trigger is back after the backfill.
        with pytest.raises(sqlite3.IntegrityError):
            await store.run(fetch_all, "UPDATE audit_log SET subject = 'x' WHERE id = 1")


#: The packages that run in the server; migrations are the one place allowed to shape the table.
APPLICATION_PACKAGES = ("runtime", "services", "actors", "gateway", "storage", "web", "waitroom")
_ALTERS_AUDIT = re.compile(
    r"\b(UPDATE|DELETE\s+FROM|REPLACE\s+INTO|INSERT\s+OR\s+REPLACE\s+INTO|DROP\s+TABLE"
    r"|ALTER\s+TABLE)\s+(IF\s+EXISTS\s+)?audit_log\b",
    re.IGNORECASE,
)


def test_no_application_code_path_can_alter_a_row() -> None:
    """Besides the triggers: no statement outside the migrations updates, deletes, replaces,
    alters or drops ``audit_log``."""
    root = Path(__file__).resolve().parents[2]
    sources = {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for package in APPLICATION_PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "migrations.py"
    }
    assert "storage/audit.py" in sources
    offenders = [
        f"{name}: {match.group(0)}"
        for name, text in sources.items()
        for match in _ALTERS_AUDIT.finditer(text)
    ]
    assert offenders == []
    # The pattern does catch what it is for.
    assert _ALTERS_AUDIT.search("db.execute('delete  from audit_log where id = 1')")
    assert _ALTERS_AUDIT.search('"""UPDATE audit_log SET action = ?"""')
