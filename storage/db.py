"""The Store: one SQLite connection, used from a worker thread, one transaction per call.

Trio must never wait on disk, so every piece of database work is a plain synchronous function run
through `Store.run` in `trio.to_thread.run_sync`. A `CapacityLimiter(1)` makes the single
connection safe to share (opened with ``check_same_thread=False``) and serialises writers inside
this process; WAL mode and a busy timeout handle other processes (backups, the sqlite3 shell).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

import trio
from sqlite_utils import Database

from storage.errors import NotFoundError, StoreClosedError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

BUSY_TIMEOUT_MS = 5_000
"""How long a statement waits for another process's lock before failing with 'database is locked'."""

ID_BYTES = 12
"""Rooms, callers, calls and tokens get random ids: 96 bits, so none can be guessed from another."""

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]


def connect(path: str | Path) -> Database:
    """Open the database file with the pragmas every Waitroom connection relies on.

    * WAL: readers (a backup, an admin running sqlite3) never block the server's writes.
    * foreign_keys: SQLite leaves them off per connection unless asked.
    * synchronous=FULL: an acknowledged arrival survives power loss, not just a process restart;
      the write rate of a clinic is far below what an fsync per commit costs.
    """
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db = Database(conn)
    with db.ensure_autocommit_on():
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=FULL")
    return db


class Store:
    """Async front of the single connection. Repository modules are thin wrappers over `run`."""

    def __init__(self, db: Database) -> None:
        self._db: Database | None = db
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        """Connect (in a thread: opening a file can block) and bring the schema up to date."""
        from storage.migrations import apply_migrations

        db = await trio.to_thread.run_sync(connect, path)
        store = cls(db)
        if migrate:
            await store.run(apply_migrations)
        return store

    async def run(self, fn: Callable[[Database, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(db, *args)`` in a worker thread inside one transaction; commit or roll back.

        Cancellation waits for the running statement to finish (the thread is never abandoned), so
        a cancelled request can never leave a half-written transaction behind.
        """
        async with self._limiter:
            db = self._require_open()
            return await trio.to_thread.run_sync(_in_transaction, db, fn, *args)

    async def aclose(self) -> None:
        """Close the connection once in-flight work has finished."""
        async with self._limiter:
            db, self._db = self._db, None
            if db is not None:
                await trio.to_thread.run_sync(db.close)

    def _require_open(self) -> Database:
        if self._db is None:
            raise StoreClosedError("the store has been closed")
        return self._db


def _in_transaction(db: Database, fn: Callable[[Database, *Ts], T], *args: *Ts) -> T:
    with db.atomic():
        return fn(db, *args)


@asynccontextmanager
async def open_store(path: str | Path, *, migrate: bool = True) -> AsyncIterator[Store]:
    """``async with open_store(path) as store:`` opens, migrates and always closes."""
    store = await Store.open(path, migrate=migrate)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


# Small typed helpers shared by the repository modules (sync, called inside `Store.run`).


def fetch_all(db: Database, sql: str, params: Params = ()) -> list[Row]:
    """All rows of a query as dicts."""
    return list(db.query(sql, params))


def fetch_one(db: Database, sql: str, params: Params = ()) -> Row | None:
    """The first row of a query, or None."""
    for row in db.query(sql, params):
        return row
    return None


def fetch_required(db: Database, sql: str, params: Params, what: str) -> Row:
    """The first row of a query, or `NotFoundError` naming what was missing."""
    row = fetch_one(db, sql, params)
    if row is None:
        raise NotFoundError(what)
    return row


def execute(db: Database, sql: str, params: Params = ()) -> sqlite3.Cursor:
    """Run a statement inside the current transaction."""
    return db.execute(sql, params)


def insert(db: Database, sql: str, params: Params = ()) -> int:
    """Run an INSERT and return the new rowid."""
    rowid = db.execute(sql, params).lastrowid
    if rowid is None:  # pragma: no cover - SQLite always sets it after an INSERT
        raise RuntimeError("INSERT did not report a rowid")
    return rowid


def new_id() -> str:
    """A random, URL-safe id for runtime rows (rooms, callers, calls, token handles)."""
    return secrets.token_urlsafe(ID_BYTES)


def dump_json(value: object) -> str:
    """Compact, key-sorted JSON so equal values are stored as equal text."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def load_json(text: str) -> Any:
    """Parse a stored JSON column."""
    return json.loads(text)
