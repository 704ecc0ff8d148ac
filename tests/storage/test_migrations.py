"""Migrations build an empty database, record their version, and re-run as a no-op."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage.db import Store, fetch_all, open_store
from storage.errors import SchemaTooNewError
from storage.migrations import (
    MIGRATIONS,
    Migration,
    applied_migrations,
    apply_migrations,
    check_sequence,
    current_version,
    latest_version,
)

EXPECTED_TABLES = {
    "schema_migrations",
    "organisations",
    "units",
    "waiting_areas",
    "area_closures",
    "staff_users",
    "role_grants",
    "web_sessions",
    "rooms",
    "room_tokens",
    "callers",
    "caller_events",
    "calls",
    "call_participants",
    "audit_log",
    "outbox",
}


def _tables(db: Database) -> set[str]:
    return set(db.table_names())


async def test_empty_database_is_migrated_and_version_recorded(db_path: Path) -> None:
    async with open_store(db_path, migrate=False) as store:
        assert await store.run(_tables) == set()
        assert await store.run(apply_migrations) == [m.number for m in MIGRATIONS]
        assert await store.run(_tables) >= EXPECTED_TABLES
        assert await store.run(current_version) == latest_version()
        applied = await store.run(applied_migrations)
        assert [(a.number, a.name) for a in applied] == [(m.number, m.name) for m in MIGRATIONS]
        assert all(a.applied_at.tzinfo is not None for a in applied)


async def test_rerun_is_a_noop(db_path: Path) -> None:
    async with open_store(db_path) as store:
        before = await store.run(applied_migrations)
        assert await store.run(apply_migrations) == []
    # A fresh start (a server restart) applies nothing either and keeps the same record.
    async with open_store(db_path) as store:
        assert await store.run(applied_migrations) == before


def _insert_note(db: Database) -> None:
    db.execute("INSERT INTO notes (id) VALUES (7)")


async def test_new_migration_applies_on_top_and_only_once(store: Store) -> None:
    extra = [
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "add notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY);"),
        Migration(len(MIGRATIONS) + 2, "python step", _insert_note),
    ]
    assert await store.run(apply_migrations, extra) == [len(MIGRATIONS) + 1, len(MIGRATIONS) + 2]
    assert await store.run(apply_migrations, extra) == []
    assert await store.run(fetch_all, "SELECT id FROM notes") == [{"id": 7}]


async def test_failed_migration_leaves_previous_version(store: Store) -> None:
    broken = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", "CREATE TABLE oops (;")]
    with pytest.raises(sqlite3.OperationalError):
        await store.run(apply_migrations, broken)
    assert await store.run(current_version) == latest_version()


async def test_database_newer_than_code_is_refused(store: Store) -> None:
    with pytest.raises(SchemaTooNewError):
        await store.run(apply_migrations, MIGRATIONS[:0])


def test_numbering_gaps_are_caught() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        check_sequence([Migration(1, "a", ""), Migration(3, "b", "")])


async def test_pragmas(store: Store) -> None:
    def pragmas(db: Database) -> tuple[str, int, int]:
        mode = fetch_all(db, "PRAGMA journal_mode")[0]["journal_mode"]
        fks = fetch_all(db, "PRAGMA foreign_keys")[0]["foreign_keys"]
        busy = fetch_all(db, "PRAGMA busy_timeout")[0]["timeout"]
        return mode, fks, busy

    mode, fks, busy = await store.run(pragmas)
    assert mode == "wal"
    assert fks == 1
    assert busy > 0
