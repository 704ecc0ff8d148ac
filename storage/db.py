"""The Store: one SQLite connection, used from a worker thread, one transaction per call.

Trio must never wait on disk, so every piece of database work is a plain synchronous function run
through `Store.run` in `trio.to_thread.run_sync`. Calls are serialised on the single connection
(opened with ``check_same_thread=False``) by group commit: calls that arrive while a batch is in
the worker thread wait, then run back to back in the next batch, each inside its own savepoint of
one transaction, with one commit (one fsync) for the whole batch. Every call still sees exactly
its own work committed or rolled back, and nobody gets a result before its commit is on disk. WAL
mode and a busy timeout handle other processes (backups, the sqlite3 shell).

PostgreSQL (several nodes sharing one store, issue 18): `Store.open` given a ``postgresql://``
URL runs the same group commit on `storage.postgres.PostgresDatabase`, which stands in for the
sqlite-utils ``Database`` the repositories use (`storage.dialect` translates their SQL); each
batch is one serializable transaction there, repeated whole when PostgreSQL refuses it.

Why batches: with one transaction per thread hop, each call cost an fsync plus two trips through
a busy event loop (hand the connection on, deliver the result), and under load the loop trips,
not SQLite, capped the server's arrival rate (see bench/README.md, "Load test").

Virtual time: under Trio's virtual clock (`trio.testing.MockClock`, the ``autojump_clock`` of
pytest-trio) the store does its work inline, in the Trio thread, instead of in a worker thread.
The virtual clock jumps to the next deadline as soon as every task is blocked, and a task waiting
for a worker thread counts as blocked: with a thread, every call would move time on to the next
timer while SQLite works (a 5 s ask timeout around a write fires, an actor's 60 s timer goes off
early). Inline, the work takes no virtual time, like any other code between two checkpoints, and
the order in which tasks run is the same on every run. Nothing else changes: each batch still ends
with a checkpoint (where the thread hop would be), so calls arriving meanwhile queue for the next
batch as they do behind a thread. The real clock, in the server and in every other test, always
gets the thread. Only a test that needs the loop to run *while* SQLite works (a job blocking on
the Trio side) needs the real clock.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple, cast

import trio
from sqlite_utils import Database

from storage.dialect import is_postgres, is_postgres_url
from storage.errors import ConflictError, NotFoundError, StoreClosedError

if TYPE_CHECKING:
    from storage.postgres import PostgresDatabase

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

BUSY_TIMEOUT_MS = 5_000
"""How long a statement waits for another process's lock before failing with 'database is locked'."""

ID_BYTES = 12
"""Rooms, callers, calls and tokens get random ids: 96 bits, so none can be guessed from another."""

MAX_BATCH = 64
"""Most calls one group commit carries, so the first of them never waits on an unbounded tail."""

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]


def _clock_is_virtual() -> bool:
    """True under `trio.testing.MockClock` (a clock that only moves when every task waits).

    Looked up without importing `trio.testing` (a tenth of a second at start-up): a MockClock
    exists only once something imported it, and the server's own clock is never one.
    """
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock)


async def _blocking(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run the blocking ``fn(*args)`` in a worker thread, or inline under a virtual clock (see the
    module docstring); either way the caller passes one checkpoint that does not raise Cancelled,
    as waiting for an unabandonable thread does not."""
    if _clock_is_virtual():
        value = fn(*args)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return value
    return await trio.to_thread.run_sync(fn, *args)


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


class _Job:
    """One `Store.run` call on its way through a batch: the function, then its result or error."""

    __slots__ = ("args", "done", "error", "fn", "reads", "started", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], reads: bool = False) -> None:
        self.fn = fn
        self.args = args
        #: Only reads (`Store.read`): no savepoint or transaction of its own is needed.
        self.reads = reads
        self.started = False
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def finish(self, value: Any, error: BaseException | None) -> None:
        self.value, self.error, self.done = value, error, True

    def run_alone(self, db: Database) -> None:
        """Run in a transaction of its own (commit or roll back; a read needs none) and keep the
        outcome."""
        try:
            if self.reads:
                self.finish(self.fn(db, *self.args), None)
            else:
                self.finish(_in_transaction(db, self.fn, *self.args), None)
        except BaseException as error:  # handed to the waiting task, which re-raises it
            self.finish(None, error)


class Store:
    """Async front of the single connection. Repository modules are thin wrappers over `run`."""

    def __init__(self, db: Database | PostgresDatabase) -> None:
        #: sqlite-utils' Database, or its PostgreSQL stand-in (repositories see either as one).
        self._db: Database | PostgresDatabase | None = db
        self._pending: deque[_Job] = deque()
        #: True while a batch is in the worker thread; the connection belongs to it.
        self._busy = False
        #: Set (and replaced) each time a batch finishes: waiting calls look at their job again.
        self._batch_done = trio.Event()
        #: Calls and batches so far (to see how much group commit saves).
        self.calls = 0
        self.batches = 0
        #: The migrations `open` applied (empty: the schema was up to date, or another node's).
        self.migrated: list[int] = []

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        """Connect (in a thread: opening a file can block) and bring the schema up to date.

        ``path`` is a SQLite file, or a ``postgresql://`` URL (`storage.postgres`, the durable
        store of several nodes); there the migrations run under a cluster-wide advisory lock, so
        of nodes starting together one migrates and the others wait and find the work done.
        """
        from storage.migrations import apply_migrations

        if is_postgres_url(path):
            from storage.postgres import connect as connect_postgres

            pg = await _blocking(connect_postgres, str(path))
            store = cls(pg)
            if migrate:
                try:
                    await _blocking(pg.lock_migrations)
                    try:
                        store.migrated = await store.run(apply_migrations)
                    finally:
                        with trio.CancelScope(shield=True):
                            await _blocking(pg.unlock_migrations)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await store.aclose()
                    raise
            return store
        db = await _blocking(connect, path)
        store = cls(db)
        if migrate:
            store.migrated = await store.run(apply_migrations)
        return store

    async def run(self, fn: Callable[[Database, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(db, *args)`` in the worker thread in a transaction of its own; commit or roll
        back. Returns (or raises) only once its work is committed (or rolled back).

        Cancellation before the call has started drops it; once started, the cancelled task still
        waits for it to finish (the thread is never abandoned), so a cancelled request can never
        leave a half-written transaction behind.
        """
        return cast(T, await self._call(_Job(fn, args)))

    async def read(self, fn: Callable[[Database, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(db, *args)``, which only reads (one query, as a rule), in the worker thread
        like :meth:`run` but, on SQLite, with no savepoint of its own: in a batch it rides in the
        batch's transaction (answered after the commit if it ran after a write), alone it runs
        in autocommit. A savepoint is two more statements and a random name for each call; a
        caller's reconnection reads its room token and nothing else (issue 17). PostgreSQL's
        batch runs it as any call."""
        return cast(T, await self._call(_Job(fn, args, reads=True)))

    async def _call(self, job: _Job) -> Any:
        self._require_open()
        self._pending.append(job)
        try:
            await self._until_done(job)
        except BaseException:
            if not job.started:
                self._pending.remove(job)
                raise
            with trio.CancelScope(shield=True):
                await self._until_done(job)
            raise
        if job.error is not None:
            raise job.error
        return job.value

    async def _until_done(self, job: _Job) -> None:
        while not job.done:
            if self._busy:
                await self._batch_done.wait()
            else:
                await self._run_batch()

    async def _run_batch(self) -> None:
        """Take the queued calls (this task's among them, or it comes back) and run them as one."""
        self._busy = True
        try:
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            for job in batch:
                job.started = True
            self.calls += len(batch)
            self.batches += 1
            db = self._db
            with trio.CancelScope(shield=True):  # other tasks' calls ride in this batch
                if db is None:
                    for job in batch:
                        job.finish(None, StoreClosedError("the store has been closed"))
                elif is_postgres(db):
                    await _blocking(cast("PostgresDatabase", db).run_batch, batch)
                else:
                    await _blocking(_group_commit, cast(Database, db), batch)
        finally:
            self._busy = False
            finished, self._batch_done = self._batch_done, trio.Event()
            finished.set()

    async def aclose(self) -> None:
        """Close the connection once in-flight work has finished; later calls are refused."""
        with trio.CancelScope(shield=True):
            while self._busy:
                await self._batch_done.wait()
            db, self._db = self._db, None
            if db is not None:
                await _blocking(db.close)

    def _require_open(self) -> Database | PostgresDatabase:
        if self._db is None:
            raise StoreClosedError("the store has been closed")
        return self._db


def _in_transaction(db: Database, fn: Callable[[Database, *Ts], T], *args: *Ts) -> T:
    with db.atomic():
        return fn(db, *args)


def _group_commit(db: Database, batch: list[_Job]) -> None:
    """Run ``batch`` in one transaction, each job in a savepoint of its own, and commit once.

    A job that fails is rolled back to its savepoint and fails alone. If a failure destroys the
    whole transaction (a ``RAISE(ROLLBACK)`` trigger) or the commit fails, the jobs whose work was
    lost run again one transaction each; nothing is reported done before it is committed. A job
    that commits by itself (``executescript`` in a migration) makes everything before it durable.
    """
    if len(batch) == 1:
        batch[0].run_alone(db)
        return
    conn = db.conn
    uncommitted: list[tuple[_Job, Any]] = []
    redo: list[_Job] = []
    for n, job in enumerate(batch):
        if job.reads:
            try:
                value = job.fn(db, *job.args)
            except BaseException as error:  # nothing of its own to roll back
                job.finish(None, error)
                continue
            if conn.in_transaction:  # it may have read this batch's writes: answered with them
                uncommitted.append((job, value))
            else:
                job.finish(value, None)
            continue
        if not conn.in_transaction:
            # IMMEDIATE: take the write lock (waiting up to the busy timeout) before the first
            # read, so no job reads a snapshot another connection's commit makes stale, which
            # SQLite refuses to upgrade to a write (tests/storage/test_invites_atomic.py).
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:  # another process held it past the timeout
                for rest in batch[n:]:
                    rest.finish(None, error)
                break
        try:
            value = _in_transaction(db, job.fn, *job.args)
        except BaseException as error:
            job.finish(None, error)
            if not conn.in_transaction:  # the whole transaction went with it
                redo += [earlier for earlier, _ in uncommitted]
                uncommitted = []
            continue
        uncommitted.append((job, value))
        if not conn.in_transaction:  # it committed by itself: what came before is on disk too
            for earlier, earlier_value in uncommitted:
                earlier.finish(earlier_value, None)
            uncommitted = []
    if conn.in_transaction:  # also when every job failed: never keep the write lock
        try:
            conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            redo += [job for job, _ in uncommitted]
        else:
            for job, value in uncommitted:
                job.finish(value, None)
    for job in redo:
        job.run_alone(db)


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


def _rows(db: Database, sql: str, params: Params) -> Iterator[Row]:
    """Rows of a query as dicts. On SQLite straight from the connection: sqlite-utils' `query`
    wraps every statement in a savepoint of its own (in case it is no query), three statements
    where one does, and an arrival reads seven times (issue 17). Only queries come here."""
    if isinstance(db, Database):
        cursor = db.conn.execute(sql, params)
        keys = [column[0] for column in cursor.description]
        return (dict(zip(keys, row, strict=True)) for row in cursor)
    return db.query(sql, params)


def fetch_all(db: Database, sql: str, params: Params = ()) -> list[Row]:
    """All rows of a query as dicts."""
    return list(_rows(db, sql, params))


def fetch_one(db: Database, sql: str, params: Params = ()) -> Row | None:
    """The first row of a query, or None."""
    for row in _rows(db, sql, params):
        return row
    return None


def fetch_required(db: Database, sql: str, params: Params, what: str) -> Row:
    """The first row of a query, or `NotFoundError` naming what was missing."""
    row = fetch_one(db, sql, params)
    if row is None:
        raise NotFoundError(what)
    return row


class Executed(Protocol):
    """What `execute` returns on either engine: how many rows the statement changed."""

    @property
    def rowcount(self) -> int: ...


def execute(db: Database, sql: str, params: Params = ()) -> Executed:
    """Run a statement inside the current transaction."""
    return cast(Executed, db.execute(sql, params))


def update_by_id(db: Database, table: str, row_id: int, changes: dict[str, Any], what: str) -> None:
    """Set ``changes`` (column -> value; column names come from code, never from input) on one
    row; a broken constraint (a taken name) is a `ConflictError` naming ``what``."""
    if not changes:
        return
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    try:
        db.execute(f"UPDATE {table} SET {assignments} WHERE id = :id", {**changes, "id": row_id})
    except sqlite3.IntegrityError as exc:  # also PostgreSQL's (storage.dialect)
        raise ConflictError(f"{what}: {exc}") from exc


def insert(db: Database, sql: str, params: Params = ()) -> int:
    """Run an INSERT and return the new rowid (on PostgreSQL: ``RETURNING id``)."""
    if is_postgres(db):
        return cast("PostgresDatabase", db).insert_returning_id(sql, params)
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
