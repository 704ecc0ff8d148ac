"""Group commit: concurrent `Store.run` calls share a transaction, yet each succeeds or fails alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlite_utils import Database

from storage import audit, callers
from storage.db import Store, fetch_all, open_store
from storage.seed import seed_demo
from tests.storage.held import HeldJob

CALLS = 30


def _insert_org(db: Database, name: str) -> str:
    db.execute(
        "INSERT INTO organisations (name, created_at) VALUES (?, '2026-01-01T00:00:00.000000Z')",
        (name,),
    )
    return name


def _fail_after_insert(db: Database, name: str) -> None:
    _insert_org(db, name)
    raise ValueError("refused")


def _destroy_transaction(db: Database) -> None:
    db.conn.execute("ROLLBACK")  # what a RAISE(ROLLBACK) trigger does to the whole batch
    raise RuntimeError("transaction gone")


async def _names(store: Store) -> list[str]:
    rows = await store.run(fetch_all, "SELECT name FROM organisations ORDER BY name")
    return [r["name"] for r in rows]


async def _behind_a_held_call(store: Store, *calls: Callable[[], Awaitable[object]]) -> None:
    """Start ``calls`` one by one while a held call has the connection, each queued before the
    next starts, then let the held call finish: they form the next batch, in that order."""
    held = HeldJob()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.run, held)
        await held.started.wait()
        for call in calls:
            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
        held.release()


async def test_concurrent_calls_share_commits_and_all_land(store: Store) -> None:
    before_calls, before_batches = store.calls, store.batches
    await _behind_a_held_call(
        store, *[partial(store.run, _insert_org, f"org {i:02}") for i in range(CALLS)]
    )
    assert await _names(store) == [f"org {i:02}" for i in range(CALLS)]
    calls, batches = store.calls - before_calls, store.batches - before_batches
    assert calls == CALLS + 2
    assert batches == 3  # the held call, every queued call in one batch, the read


async def test_a_failing_call_rolls_back_alone(store: Store) -> None:
    results: dict[str, object] = {}

    async def one(name: str, fail: bool) -> None:
        try:
            if fail:
                await store.run(_fail_after_insert, name)
            else:
                results[name] = await store.run(_insert_org, name)
        except ValueError as error:
            results[name] = error

    await _behind_a_held_call(store, *[partial(one, f"org {i}", i % 2 == 1) for i in range(6)])
    assert await _names(store) == ["org 0", "org 2", "org 4"]
    assert all(isinstance(results[f"org {i}"], ValueError) for i in (1, 3, 5))
    assert [results[f"org {i}"] for i in (0, 2, 4)] == ["org 0", "org 2", "org 4"]


async def test_work_lost_with_the_transaction_is_redone(store: Store) -> None:
    async def destroy() -> None:
        with pytest.raises(RuntimeError):
            await store.run(_destroy_transaction)

    await _behind_a_held_call(
        store,
        partial(store.run, _insert_org, "before"),
        destroy,
        partial(store.run, _insert_org, "after"),
    )
    assert await _names(store) == ["after", "before"]


async def test_a_call_cancelled_before_it_starts_does_nothing(store: Store) -> None:
    held = HeldJob()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.run, held)
        await held.started.wait()  # the held call is in the worker thread now
        with trio.CancelScope() as cancelled:
            cancelled.cancel()
            await store.run(_insert_org, "never")
        held.release()
    assert cancelled.cancelled_caught
    assert await _names(store) == []


async def test_an_acknowledged_batch_is_on_disk(db_path: Path) -> None:
    """What `run` returned is committed: another connection sees every arrival of a batch."""
    async with open_store(db_path) as store:
        demo = await seed_demo(store, "not-a-real-hash")
        area = demo.areas[0].id
        batch = [
            callers.ArrivalRequest({"name": f"Caller {i}"}, audit.ARRIVAL, "127.0.0.1")
            for i in range(3)
        ]
        admitted = await callers.register_arrivals(store, area, batch)
        arrivals = [arrival for arrival, _ in admitted]
        other = sqlite3.connect(db_path)
        try:
            stored = {row[0] for row in other.execute("SELECT id FROM callers")}
            audited = {row[0] for row in other.execute("SELECT subject FROM audit_log")}
        finally:
            other.close()
        ids = {a.caller.id for a in arrivals}
        assert stored == ids
        assert ids <= audited
        queue = await callers.list_waiting(store, area)
        assert [c.details["name"] for c in queue] == ["Caller 0", "Caller 1", "Caller 2"]
        snapshot = await callers.load_room_restore(store, arrivals[1].room.id)
        assert snapshot.caller is not None and snapshot.caller.id == arrivals[1].caller.id
        assert snapshot.area is not None and snapshot.area.id == area
        assert snapshot.active_call_id is None
        # What a new room starts from without reading storage is what storage holds.
        assert [await callers.load_room_restore(store, a.room.id) for a in arrivals] == [
            written for _, written in admitted
        ]


def _count_orgs(db: Database, like: str) -> int:
    rows = fetch_all(db, "SELECT count(*) AS n FROM organisations WHERE name LIKE ?", (like,))
    return int(rows[0]["n"])


def _read_then_fail(db: Database) -> None:
    fetch_all(db, "SELECT name FROM organisations")
    raise LookupError("not there")


async def _reads_in_a_batch(store: Store) -> dict[str, object]:
    """Two writes and three reads queued as one batch; what each call returned (or raised)."""
    results: dict[str, object] = {}

    async def record(name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            results[name] = await call()
        except LookupError as error:
            results[name] = error

    await _behind_a_held_call(
        store,
        partial(record, "write", partial(store.run, _insert_org, "read org 1")),
        partial(record, "read", partial(store.read, _count_orgs, "read org%")),
        partial(record, "failed", partial(store.read, _read_then_fail)),
        partial(record, "write 2", partial(store.run, _insert_org, "read org 2")),
        partial(record, "read 2", partial(store.read, _count_orgs, "read org%")),
    )
    return results


async def test_reads_in_a_batch_see_the_writes_before_them_and_fail_alone(store: Store) -> None:
    """`Store.read` (issue 17): a read rides in its batch's transaction, sees the writes queued
    before it, and a read that fails fails alone."""
    results = await _reads_in_a_batch(store)
    assert results["read"] == 1 and results["read 2"] == 2
    assert isinstance(results["failed"], LookupError)
    assert await _names(store) == ["read org 1", "read org 2"]


async def test_reads_take_no_savepoint_of_their_own(store: Store) -> None:
    """On SQLite a savepoint is two more statements per call: a reconnecting caller's token
    check was three statements where one does."""
    statements: list[str] = []
    conn = store._db.conn  # type: ignore[union-attr]
    conn.set_trace_callback(statements.append)
    try:
        await _reads_in_a_batch(store)
        alone = len(statements)
        assert await store.read(_count_orgs, "%") >= 0
    finally:
        conn.set_trace_callback(None)
    batch = statements[statements.index("BEGIN IMMEDIATE", 1) : alone]  # the held call's went
    assert sum(s.startswith("SAVEPOINT") for s in batch) == 2  # the two writes only
    assert len(statements[alone:]) == 1 and statements[alone].startswith("SELECT")  # no BEGIN
