"""The Store keeps the event loop free and stays consistent under concurrent Trio tasks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlite_utils import Database

from storage import audit, orgs
from storage.db import Store, fetch_all, open_store
from storage.errors import StoreClosedError
from tests.storage.held import HeldJob

TASKS = 40


async def test_store_does_not_block_event_loop(store: Store) -> None:
    """The job in the worker thread can only finish if a task runs on the loop meanwhile."""
    held = HeldJob()

    async def release_once_started() -> None:
        await held.started.wait()
        held.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_once_started)
        assert await store.run(held) == "released"


async def test_concurrent_tasks_all_land(store: Store) -> None:
    async def one(i: int) -> None:
        org = await orgs.create_organisation(store, f"org {i}")
        await audit.append(store, "test", subject=str(org.id))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(TASKS):
                nursery.start_soon(one, i)
    assert len(await orgs.list_organisations(store)) == TASKS
    entries = await audit.list_entries(store, action="test")
    assert len({e.subject for e in entries}) == TASKS


async def test_calls_are_serialised_one_transaction_each(store: Store) -> None:
    """Read-modify-write in one `run` is atomic even when tasks interleave."""

    def bump(db: Database) -> None:
        value = fetch_all(db, "SELECT count(*) AS n FROM organisations")[0]["n"]
        time.sleep(0.001)
        db.execute("INSERT INTO organisations (name, created_at) VALUES (?, 'x')", (str(value),))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(store.run, bump)
    names = [r["name"] for r in await store.run(fetch_all, "SELECT name FROM organisations")]
    assert sorted(names, key=int) == [str(i) for i in range(20)]


async def test_failed_run_rolls_back(store: Store) -> None:
    def half(db: Database) -> None:
        db.execute(
            "INSERT INTO organisations (name, created_at) VALUES ('half', '2026-01-01T00:00:00.000000Z')"
        )
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.run(half)
    assert await orgs.list_organisations(store) == []


async def test_cancelled_caller_still_commits_consistently(store: Store) -> None:
    """Cancelling the waiting task never abandons the thread mid-transaction."""

    held = HeldJob()

    def held_insert(db: Database) -> None:
        held(db)
        db.execute(
            "INSERT INTO organisations (name, created_at) VALUES ('late', '2026-01-01T00:00:00.000000Z')"
        )

    async def cancel_while_it_works(scope: trio.CancelScope) -> None:
        await held.started.wait()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()  # cancelled, the caller still waits for it
        held.release()

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(cancel_while_it_works, scope)
            await store.run(held_insert)
    names = [o.name for o in await orgs.list_organisations(store)]
    assert names == ["late"]


async def test_closed_store_refuses(db_path: Path) -> None:
    async with open_store(db_path) as store:
        pass
    with pytest.raises(StoreClosedError):
        await orgs.list_organisations(store)


async def test_data_survives_reopen(db_path: Path) -> None:
    async with open_store(db_path) as store:
        await orgs.create_organisation(store, "kept")
    async with open_store(db_path) as store:
        assert [o.name for o in await orgs.list_organisations(store)] == ["kept"]
