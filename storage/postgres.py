"""The PostgreSQL connection behind `Store`: the subset of sqlite-utils' ``Database`` the
repositories use, on psycopg 3, and its group commit.

Why a stand-in rather than a second set of repositories: every repository function takes the
connection `Store.run` hands it and goes through the helpers of `storage.db` (``execute``,
``query``, ``insert``), so offering the same few methods here lets one SQL text serve both engines
(`storage.dialect` rewrites placeholders and schema text). psycopg's synchronous side is used, in
the Store's worker thread as SQLite is: its async side needs asyncio, and the server runs Trio.

Transactions: each batch of the group commit is one ``SERIALIZABLE`` transaction, each call in a
savepoint of its own, as on SQLite. SQLite serialises writers with ``BEGIN IMMEDIATE``;
PostgreSQL lets transactions run side by side and refuses (``40001``, ``40P01``) the one whose
outcome would differ from some serial order, so a conditional ``UPDATE ... WHERE used_at IS NULL``
or a read-then-write in Python is as safe as on SQLite. A refused batch is rolled back whole
(nothing of it was applied and nobody has been answered) and run again; a batch refused
`BATCH_ATTEMPTS` times is split into a transaction per job, each tried up to `RETRIES` times.

A lost connection (PostgreSQL restarted, failed over) fails the batch in flight; the next batch
connects again before it begins, so a node recovers without a restart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg import errors, pq
from psycopg import sql as pgsql
from psycopg.adapt import Dumper, Loader
from psycopg.rows import dict_row

from storage.dialect import (
    PostgresIntegrityError,
    is_ddl,
    positional,
    to_postgres,
    to_postgres_ddl,
)

RETRIES = 20
"""Runs of one job refused for serialization before it fails with the refusal."""

BATCH_ATTEMPTS = 3
"""Runs of a batch of several jobs refused for serialization before it is split into one
transaction per job."""

CONNECT_TIMEOUT_S = 10
"""Most seconds to reach the server when the Store opens."""

STATEMENT_TIMEOUT_MS = 30_000
"""Most one statement may take; also bounds waiting for another transaction's row lock."""

MIGRATION_LOCK_TIMEOUT_MS = 120_000
"""Most a node waits for another node's migrations (``pg_advisory_lock``) before failing."""

MIGRATION_LOCK = 0x57A1_7200_0018
"""The advisory lock key every Waitroom node takes around its migrations."""

_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)

Params = Sequence[Any] | dict[str, Any]


class _Job(Protocol):
    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def finish(self, value: Any, error: BaseException | None) -> None: ...


class _FlagDumper(Dumper):
    """Python booleans go to the 0/1 ``BIGINT`` flag columns the schema shares with SQLite: sent
    as an untyped ``1``/``0``, which PostgreSQL reads as a number beside a number column and as
    a truth value where one is wanted."""

    oid = 0

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumericLoader(Loader):
    """``SUM`` of integers is ``numeric`` on PostgreSQL: read it as SQLite gives it, an int (or a
    float when it has a fraction), never a ``Decimal``."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class Cursor:
    """What ``execute`` returns: the affected row count (``lastrowid`` is SQLite's alone)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class PostgresDatabase:
    """One psycopg connection, in autocommit mode with explicit transactions (see the module)."""

    engine = "postgresql"

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], url: str) -> None:
        self.conn = conn
        #: Where to connect again when the connection is lost.
        self.url = url
        self._savepoints = 0

    # -- the statements the repositories use -----------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        with self._cursor(sql, params) as cursor:
            return Cursor(cursor.rowcount)

    def query(self, sql: str, params: Params = ()) -> Iterator[dict[str, Any]]:
        with self._cursor(sql, params) as cursor:
            rows = cursor.fetchall() if cursor.description is not None else []
        return iter(rows)

    def insert_returning_id(self, sql: str, params: Params = ()) -> int:
        """An ``INSERT`` into a table with an ``id`` key; the new row's id."""
        with self._cursor(sql.rstrip().rstrip(";") + " RETURNING id", params) as cursor:
            row = cursor.fetchone()
        if row is None:  # pragma: no cover - an INSERT ... VALUES always returns its row
            raise RuntimeError("INSERT returned no id")
        return int(row["id"])

    def table_names(self) -> list[str]:
        """The tables of the current schema (sqlite-utils' ``Database.table_names``)."""
        rows = self.conn.execute(
            b"""SELECT table_name FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                 ORDER BY table_name"""
        ).fetchall()
        return [str(row["table_name"]) for row in rows]

    def executescript(self, script: str) -> None:
        """Schema text (several statements, no parameters) in the current transaction; unlike
        SQLite's, it does not commit first (PostgreSQL's DDL is transactional)."""
        with self._cursor(script, (), ddl=True):
            pass

    @contextmanager
    def _cursor(
        self, sql: str, params: Params, *, ddl: bool = False
    ) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        if ddl or is_ddl(sql):
            text, args = to_postgres_ddl(sql), None
        elif params:
            text, names = to_postgres(sql)
            args = positional(names, params)
        else:
            text, args = sql, None
        with self.conn.cursor() as cursor:
            try:
                cursor.execute(text.encode(), args)  # type: ignore[arg-type]
            except errors.IntegrityError as error:
                raise PostgresIntegrityError(str(error).strip()) from error
            yield cursor

    # -- transactions --------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def begin(self) -> None:
        self.conn.execute(b"BEGIN ISOLATION LEVEL SERIALIZABLE")

    def commit(self) -> None:
        self.conn.execute(b"COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.conn.execute(b"ROLLBACK")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction, or a savepoint inside the current one: committed (released) on
        success, rolled back on any error, which is re-raised."""
        if not self.in_transaction:
            self.begin()
            try:
                yield
            except BaseException:
                self.rollback()
                raise
            self.commit()
            return
        self._savepoints += 1
        name = f"sp{self._savepoints}".encode()
        self.conn.execute(b"SAVEPOINT " + name)
        try:
            yield
        except BaseException:
            self.conn.execute(b"ROLLBACK TO SAVEPOINT " + name)
            raise
        finally:
            self._savepoints -= 1
        self.conn.execute(b"RELEASE SAVEPOINT " + name)

    def run_batch(self, batch: Sequence[_Job]) -> None:
        """The group commit on PostgreSQL: ``batch`` in one serializable transaction, each job in
        a savepoint; a job that fails fails alone; a batch refused for serialization (at any
        statement or at the commit) is rolled back and run again whole. Nobody is answered
        before the commit.

        A batch refused ``BATCH_ATTEMPTS`` times is split: each job then runs in a transaction
        of its own, retried alone up to ``RETRIES`` times. Two nodes writing at once refuse each
        other's large batches (a serializable transaction's reads cover whole index ranges), and
        retried together they would keep colliding; one job at a time rarely does.
        """
        refused = self._attempt(batch, BATCH_ATTEMPTS if len(batch) > 1 else RETRIES)
        if refused is None:
            return
        if len(batch) == 1:
            batch[0].finish(None, refused)
            return
        for job in batch:
            refused = self._attempt([job], RETRIES)
            if refused is not None:
                job.finish(None, refused)

    def _attempt(self, batch: Sequence[_Job], attempts: int) -> BaseException | None:
        """Run ``batch`` in one transaction up to ``attempts`` times: None once every job is
        finished (answered), else the last serialization refusal (no job answered or applied)."""
        last: BaseException | None = None
        for attempt in range(attempts):
            outcomes: list[tuple[_Job, Any, BaseException | None]] = []
            try:
                self._begin_connected()
            except psycopg.Error as error:  # the server is down: these calls fail, none applied
                for job in batch:
                    job.finish(None, error)
                return None
            try:
                for job in batch:
                    try:
                        with self.atomic():
                            value = job.fn(self, *job.args)
                    except _RETRYABLE:
                        raise
                    except Exception as error:
                        if isinstance(error.__cause__, _RETRYABLE):
                            raise error.__cause__ from error
                        outcomes.append((job, None, error))
                    else:
                        outcomes.append((job, value, None))
                self.commit()
            except _RETRYABLE as error:
                last = error
                self._abandon()
                # Full jitter, in the worker thread (not the loop): two nodes refused together
                # do not retry in step.
                time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
                continue
            except BaseException as error:  # the commit or the connection failed: all lost
                self._abandon()
                for job in batch:
                    job.finish(None, error)
                return None
            for job, value, failure in outcomes:
                job.finish(value, failure)
            return None
        return last

    def _begin_connected(self) -> None:
        """Begin the batch's transaction, first on a new connection if the old one was lost (a
        PostgreSQL restart or failover): nothing of the batch has run yet, so this is safe."""
        if self.conn.broken or self.conn.closed:
            self.conn = _open(self.url)
        try:
            self.begin()
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise
            self.conn = _open(self.url)
            self.begin()

    def _abandon(self) -> None:
        """Roll the batch back; on a lost connection there is nothing left to roll back (the
        server dropped the transaction with it), and the next batch connects again."""
        try:
            self.rollback()
        except psycopg.Error:
            if not self.conn.broken:
                raise

    # -- migrations -------------------------------------------------------------------------

    def lock_migrations(self) -> None:
        """Wait (bounded) for the cluster-wide migration lock; another node holding it is
        migrating, and this one then finds the work done."""
        self.conn.execute(f"SET lock_timeout = {MIGRATION_LOCK_TIMEOUT_MS}".encode())
        try:
            self.conn.execute(b"SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        finally:
            self.conn.execute(f"SET lock_timeout = {STATEMENT_TIMEOUT_MS}".encode())

    def resync_identities(self) -> None:
        """Move every identity column's sequence past the highest id stored, as SQLite's rowid
        always is: a table rebuilt by copying its rows with their ids (a migration) or rows
        inserted with a chosen id (the audit log) would otherwise be handed a taken id next."""
        rows = self.conn.execute(
            b"""SELECT table_name, column_name FROM information_schema.columns
                 WHERE table_schema = current_schema() AND is_identity = 'YES'"""
        ).fetchall()
        for row in rows:
            table, column = row["table_name"], row["column_name"]
            self.conn.execute(
                pgsql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, {c}),"
                    " COALESCE((SELECT max({ci}) FROM {ti}), 0) + 1, false)"
                ).format(
                    t=pgsql.Literal(table),
                    c=pgsql.Literal(column),
                    ci=pgsql.Identifier(column),
                    ti=pgsql.Identifier(table),
                )
            )

    def unlock_migrations(self) -> None:
        self.conn.execute(b"SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def close(self) -> None:
        self.conn.close()


def connect(url: str) -> PostgresDatabase:
    """The store's connection to ``url`` (a ``postgresql://`` URL)."""
    return PostgresDatabase(_open(url), url)


def _open(url: str) -> psycopg.Connection[dict[str, Any]]:
    """Connect with the adaptations the shared SQL relies on: dict rows, booleans as 0/1, sums as
    numbers, bounded connecting, statement and lock waits."""
    conn = psycopg.connect(
        url,
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=CONNECT_TIMEOUT_S,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}",
    )
    conn.adapters.register_dumper(bool, _FlagDumper)
    conn.adapters.register_loader("numeric", _NumericLoader)
    return conn
