"""Audit addresses can be forgotten and the chain still holds (issue 15, migration 10).

The chain covers a keyed digest of each entry's client address, not the address: a log written by
the previous code (chained over the raw address) is moved over and chained again by migration 10
and verifies; forgetting addresses leaves it intact; changing who did what, a digest, or a kept
address still breaks it at that entry.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage import audit, audit_chain
from storage.db import Store, fetch_all, open_store
from storage.migrations import MIGRATIONS, apply_migrations

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
#: (minute, action, actor kind, address) of the entries the previous code wrote.
OLD_ROWS = (
    (0, "auth.sign_in", "user", "192.0.2.1"),
    (1, "caller.arrived", "caller", "198.51.100.7"),
    (2, "retention.sweep", "system", ""),
    (3, "call.joined", "user", "192.0.2.1"),
)


def _old_link(previous: str, values: list[object]) -> str:
    """The chain hash as migrations 6 to 9 made it: over the raw address (written out here, not
    taken from storage.audit_chain, so the test keeps the old rule whatever the code does)."""
    body = json.dumps(values, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def _fill_as_of_schema_9(db: Database, break_at: int | None = None) -> None:
    """Entries as the code of schema 9 appended them: the address in ``audit_log.remote_addr`` and
    in the hash. ``break_at``: change that entry afterwards behind the trigger (as an intruder)."""
    previous = "0" * 64
    for entry_id, (minute, action, kind, address) in enumerate(OLD_ROWS, start=1):
        at = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        user = 1 if kind == "user" else None
        values: list[object] = [entry_id, at, kind, user, action, 10, "caller/abc", address, "{}"]
        previous = _old_link(previous, values)
        db.execute(
            """INSERT INTO audit_log (id, at, actor_kind, actor_user_id, action, area_id, subject,
                   remote_addr, details, chain) VALUES (?, ?, ?, ?, ?, 10, 'caller/abc', ?, '{}', ?)""",
            (entry_id, at, kind, user, action, address, previous),
        )
    if break_at is not None:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET action = 'x.y' WHERE id = ?", (break_at,))
        db.execute(
            """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
               BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
        )


async def test_migration_10_chains_a_log_of_the_previous_code_again(db_path: Path) -> None:
    async with open_store(db_path, migrate=False) as store:
        await store.run(apply_migrations, MIGRATIONS[:9])
        await store.run(_fill_as_of_schema_9)
        assert await store.run(apply_migrations, MIGRATIONS[:10]) == [10]
        check = await audit_chain.verify(store)
        assert check.intact and check.entries == len(OLD_ROWS)
        # Every entry reads back as before, address included.
        entries = sorted(await audit.list_entries(store), key=lambda e: e.id)
        assert [(e.action, e.remote_addr) for e in entries] == [
            (action, address) for _, action, _, address in OLD_ROWS
        ]
        # The addresses left the hashed row; an entry without one has no digest.
        rows = await store.run(
            fetch_all, "SELECT remote_addr, address_digest FROM audit_log ORDER BY id"
        )
        assert {r["remote_addr"] for r in rows} == {""}
        assert [bool(r["address_digest"]) for r in rows] == [bool(a) for *_, a in OLD_ROWS]
        # New entries link on, and the append-only trigger is back.
        await audit.append(store, audit.SIGN_OUT, actor_user_id=1, remote_addr="192.0.2.9")
        assert (await audit_chain.verify(store)).entries == len(OLD_ROWS) + 1
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store.run(fetch_all, "UPDATE audit_log SET subject = 'x' WHERE id = 1")


async def test_migration_10_leaves_a_chain_broken_before_it_broken_there(db_path: Path) -> None:
    """Chaining again must not hide a change made before the upgrade."""
    async with open_store(db_path, migrate=False) as store:
        await store.run(apply_migrations, MIGRATIONS[:9])
        await store.run(_fill_as_of_schema_9, 3)
        assert await store.run(apply_migrations, MIGRATIONS[:10]) == [10]
        check = await audit_chain.verify(store)
        assert not check.intact
        assert check.first_broken_id == 3 and check.entries == 2


async def _fill(store: Store) -> None:
    for minute, action, kind, address in OLD_ROWS:
        await audit.append(
            store,
            action,
            actor_kind=kind,  # type: ignore[arg-type]
            actor_user_id=1 if kind == "user" else None,
            subject="caller/abc",
            remote_addr=address,
            now=T0 + timedelta(minutes=minute),
        )


async def test_forgetting_addresses_keeps_the_entries_and_the_chain(store: Store) -> None:
    await _fill(store)
    before = await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id")
    forgotten = await store.run(audit.forget_addresses, T0 + timedelta(minutes=2))
    assert forgotten == 2  # the first two; the third entry has no address
    entries = sorted(await audit.list_entries(store), key=lambda e: e.id)
    assert [e.remote_addr for e in entries] == ["", "", "", "192.0.2.1"]
    assert [e.action for e in entries] == [action for _, action, _, _ in OLD_ROWS]
    assert await store.run(fetch_all, "SELECT * FROM audit_log ORDER BY id") == before
    assert (await audit_chain.verify(store)).intact
    assert await store.run(audit.forget_addresses, T0 + timedelta(minutes=2)) == 0


async def test_the_digest_cannot_be_matched_to_an_address_by_hashing_candidates(
    store: Store,
) -> None:
    """An unkeyed SHA-256 of an IPv4 address is undone by hashing all 2^32 of them: each entry's
    digest is keyed with a random key that goes when the address goes."""
    await _fill(store)
    rows = await store.run(fetch_all, "SELECT address_digest FROM audit_log ORDER BY id")
    first, fourth = rows[0]["address_digest"], rows[3]["address_digest"]
    assert first != fourth  # the same address, two digests
    assert first != hashlib.sha256(b"192.0.2.1").hexdigest()
    await store.run(audit.forget_addresses, T0 + timedelta(days=1))
    assert await store.run(fetch_all, "SELECT * FROM audit_addresses") == []


def _behind_the_triggers(db: Database, sql: str) -> None:
    """What someone with the database file can do: drop the trigger and edit (a kept address
    needs no trigger dropped: changing it shows in the chain check all the same)."""
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute(sql)


@pytest.mark.parametrize(
    ("sql", "broken"),
    [
        ("UPDATE audit_log SET actor_user_id = 7 WHERE id = 1", 1),
        ("UPDATE audit_log SET action = 'auth.sign_out' WHERE id = 4", 4),
        ("UPDATE audit_log SET address_digest = '' WHERE id = 2", 2),
        ("UPDATE audit_log SET address_digest = 'ab' || address_digest WHERE id = 2", 2),
        ("UPDATE audit_addresses SET address = '203.0.113.5' WHERE entry_id = 4", 4),
        (
            """INSERT INTO audit_addresses (entry_id, address, address_key)
               VALUES (3, '203.0.113.5', 'k')""",
            3,
        ),
    ],
)
async def test_tampering_still_shows_after_addresses_are_forgotten(
    store: Store, sql: str, broken: int
) -> None:
    await _fill(store)
    await store.run(audit.forget_addresses, T0 + timedelta(minutes=2))
    await store.run(_behind_the_triggers, sql)
    check = await audit_chain.verify(store)
    assert not check.intact
    assert check.first_broken_id == broken
