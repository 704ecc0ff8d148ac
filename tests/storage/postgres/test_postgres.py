"""What only PostgreSQL has to show: migrations under the advisory lock, single-use redemptions
and read-then-write checks across two connections, the repeat of a refused batch, the
append-only audit log against a raw connection, schema translation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from sqlite_utils import Database

from storage import audit, seed
from storage import group_sessions as groups
from storage import ondemand as od
from storage.db import Store, fetch_all, open_store
from storage.dialect import to_postgres, to_postgres_ddl
from storage.migrations import MIGRATIONS, Migration, apply_migrations, current_version
from storage.postgres import BATCH_ATTEMPTS, MIGRATION_LOCK, RETRIES
from storage.times import utcnow
from tests.cluster.servers import PostgresServer
from tests.polling import seconds_until
from tests.storage.test_ondemand import claim_into, people

ROUNDS = 10
ROOT = Path(__file__).resolve().parents[3]


async def test_nodes_migrating_at_once_migrate_once(empty_database: Callable[[], str]) -> None:
    """Three nodes start together on an empty database: one migrates, the others wait for its
    lock and find the schema done."""
    url = empty_database()
    stores: list[Store] = []

    async def start() -> None:
        stores.append(await Store.open(url))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(start)
    try:
        migrated = sorted((store.migrated for store in stores), key=len)
        assert migrated == [[], [], [m.number for m in MIGRATIONS]]
        for store in stores:
            assert await store.run(current_version) == MIGRATIONS[-1].number
    finally:
        for store in stores:
            await store.aclose()


async def test_a_failed_migration_leaves_the_previous_version(store: Store) -> None:
    broken = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", "CREATE TABLE oops (;")]
    with pytest.raises(psycopg.errors.SyntaxError):
        await store.run(apply_migrations, broken)
    assert await store.run(current_version) == MIGRATIONS[-1].number
    assert "oops" not in await store.run(lambda db: db.table_names())


async def test_claims_from_two_connections_one_wins(pg_url: str) -> None:
    """The on-demand claim: two nodes' stores, one request, exactly one claimant."""
    async with open_store(pg_url) as one, open_store(pg_url) as two:
        org, _, lee, kim = await people(one)
        for _ in range(ROUNDS):
            rid = (await od.create_request(one, org, {"name": "Ada"}, 0)).request.id
            results: dict[int, bool] = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim_into, results, one, org, rid, lee)
                nursery.start_soon(claim_into, results, two, org, rid, kim)
            assert sorted(results.values()) == [False, True]
            winner = next(u for u, won in results.items() if won)
            assert (await od.get_request(two, rid)).claimed_by == winner


async def _admit_into(outcomes: list[object], store: Store, session_id: int, who: str) -> None:
    try:
        outcomes.append(await groups.admit(store, session_id, (who,)))
    except groups.GroupFull as full:
        outcomes.append(full)


async def test_group_admissions_from_two_connections_keep_the_capacity(pg_url: str) -> None:
    """Two moderators on two nodes admit different people into the last place at once. The
    count is read, then other rows are written (a write skew): only a serializable transaction
    keeps the capacity, and exactly one admission wins."""
    async with open_store(pg_url) as one, open_store(pg_url) as two:
        demo = await seed.seed_demo(one, "hash")
        for _ in range(ROUNDS):
            session = await groups.create_session(
                one,
                unit_id=demo.unit_id,
                title="Pain management",
                starts_at=utcnow(),
                capacity=1,
                moderator_ids=(demo.provider_user_id,),
                registrants=(),
                created_by=demo.provider_user_id,
            )
            ann = (await groups.arrive(one, session.link, "Ann", "")).participant
            bob = (await groups.arrive(one, session.link, "Bob", "")).participant
            outcomes: list[object] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_admit_into, outcomes, one, session.id, ann.id)
                nursery.start_soon(_admit_into, outcomes, two, session.id, bob.id)
            assert sum(isinstance(o, list) and len(o) == 1 for o in outcomes) == 1
            assert sum(isinstance(o, groups.GroupFull) for o in outcomes) == 1
            listed = await groups.list_participants(two, session.id)
            assert sum(p.admitted for p in listed) == 1


class _Job:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.args = fn, ()
        self.outcome: tuple[Any, BaseException | None] | None = None

    def finish(self, value: Any, error: BaseException | None) -> None:
        assert self.outcome is None, "finished twice"
        self.outcome = (value, error)


async def test_a_refused_batch_runs_again_whole_and_answers_once(pg_url: str) -> None:
    """A batch PostgreSQL refuses (a serialization failure in any of its jobs) is rolled back and
    run again: the jobs before the refusal are not applied twice, nobody is answered early, and a
    job that failed on its own still fails alone."""
    refusals = iter([True, True, False])

    def note(db: Database) -> int:
        db.execute("INSERT INTO notes_for_test (body) VALUES (?)", ("kept",))
        return 1

    def refused_twice(db: Database) -> str:
        if next(refusals):
            raise psycopg.errors.SerializationFailure("could not serialize access")
        return "done"

    def fails_alone(db: Database) -> None:
        raise ValueError("bad input")

    async with open_store(pg_url) as store:
        await store.run(lambda db: db.execute("CREATE TABLE notes_for_test (body TEXT)"))
        jobs = [_Job(note), _Job(refused_twice), _Job(fails_alone)]
        pg: Any = store._db
        await trio.to_thread.run_sync(pg.run_batch, jobs)
        assert jobs[0].outcome == (1, None)
        assert jobs[1].outcome == ("done", None)
        error = jobs[2].outcome[1] if jobs[2].outcome else None
        assert isinstance(error, ValueError)
        assert await store.run(fetch_all, "SELECT body FROM notes_for_test") == [{"body": "kept"}]


async def test_a_batch_refused_again_and_again_is_split_and_only_the_refused_job_fails(
    pg_url: str,
) -> None:
    """Two nodes' batches can keep refusing each other; after ``BATCH_ATTEMPTS`` the batch is
    split: each job runs alone, the others are applied once and answered, and only a job that
    is refused every time fails, with the refusal."""
    runs = {"always": 0}

    def note(db: Database) -> int:
        db.execute("INSERT INTO notes_for_test (body) VALUES (?)", ("kept",))
        return 1

    def always_refused(db: Database) -> str:
        runs["always"] += 1
        raise psycopg.errors.SerializationFailure("could not serialize access")

    async with open_store(pg_url) as store:
        await store.run(lambda db: db.execute("CREATE TABLE notes_for_test (body TEXT)"))
        jobs = [_Job(note), _Job(always_refused), _Job(note)]
        pg: Any = store._db
        await trio.to_thread.run_sync(pg.run_batch, jobs)
        assert jobs[0].outcome == (1, None)
        assert jobs[2].outcome == (1, None)
        error = jobs[1].outcome[1] if jobs[1].outcome else None
        assert isinstance(error, psycopg.errors.SerializationFailure)
        assert runs["always"] == BATCH_ATTEMPTS + RETRIES
        rows = await store.run(fetch_all, "SELECT body FROM notes_for_test")
        assert rows == [{"body": "kept"}, {"body": "kept"}]


async def test_even_a_raw_connection_cannot_alter_audit_rows(store: Store, pg_url: str) -> None:
    await audit.append(store, "staff.login", actor_kind="user", actor_user_id=1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
                conn.execute(statement.encode())
        assert conn.execute(b"SELECT count(*) FROM audit_log").fetchone() == (1,)


async def test_usernames_are_unique_and_found_regardless_of_case(store: Store) -> None:
    from storage import staff
    from storage.errors import ConflictError

    made = await staff.create_user(store, "Lee", "Dr Lee", "x", email="Lee@Example.org")
    with pytest.raises(ConflictError):
        await staff.create_user(store, "LEE", "Another Lee", "x")
    rows = await store.run(
        fetch_all, "SELECT id FROM staff_users WHERE email = ? COLLATE NOCASE", ("lee@example.ORG",)
    )
    assert rows == [{"id": made.id}]


def test_placeholders_outside_literals_only() -> None:
    text, names = to_postgres("SELECT '?', \"a?\", x FROM t WHERE a = ? AND b LIKE '50%' -- ?")
    assert text == "SELECT '?', \"a?\", x FROM t WHERE a = %s AND b LIKE '50%%' -- ?"
    assert names == ()
    text, names = to_postgres("SELECT * FROM t WHERE (:a IS NULL OR a = :a) AND b = :b")
    assert text == "SELECT * FROM t WHERE (%s::text IS NULL OR a = %s) AND b = %s"
    assert names == ("a", "a", "b")


def test_schema_translation() -> None:
    ddl = to_postgres_ddl(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, r REAL,"
        " note TEXT DEFAULT 'INTEGER');\n"
        "CREATE TRIGGER t_no_delete BEFORE DELETE ON t\nBEGIN\n"
        "    SELECT RAISE(ABORT, 't is kept');\nEND;"
    )
    assert "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in ddl
    assert "n BIGINT NOT NULL" in ddl and "r DOUBLE PRECISION" in ddl
    assert "DEFAULT 'INTEGER'" in ddl
    assert (
        "CREATE TRIGGER t_no_delete BEFORE DELETE ON t FOR EACH ROW "
        "EXECUTE FUNCTION waitroom_refuse('t is kept');" in ddl
    )


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_the_store_connects_again_after_postgresql_restarts(
    postgres_server: PostgresServer, how: str
) -> None:
    """PostgreSQL restarted (or killed and recovered) under a node: what was committed is there,
    and the next calls connect again by themselves, without restarting the node."""
    async with open_store(postgres_server.url) as store:
        kept = await od.create_request(store, await _org(store), {"name": "Ada"}, 0)
        getattr(postgres_server, how)()
        again = await od.get_request(store, kept.request.id)
        assert again.state == kept.request.state
        later = await od.create_request(store, again.org_id, {"name": "Bea"}, 0)
        assert (await od.get_request(store, later.request.id)).details == {"name": "Bea"}


async def test_calls_while_postgresql_is_down_fail_and_apply_nothing(
    postgres_server: PostgresServer,
) -> None:
    async with open_store(postgres_server.url) as store:
        org = await _org(store)
        postgres_server._shut_down()
        with pytest.raises(psycopg.OperationalError):
            await od.create_request(store, org, {"name": "Lost"}, 0)
        postgres_server.process = postgres_server._start()
        postgres_server._wait_ready()
        await od.create_request(store, org, {"name": "Kept"}, 0)
        names = await store.run(fetch_all, "SELECT details FROM ondemand_requests")
        assert names == [{"details": '{"name":"Kept"}'}]


async def _org(store: Store) -> int:
    from storage import orgs

    return (await orgs.create_organisation(store, "Riverside")).id


_NODE = """
import sys, trio
from storage.db import Store

async def main() -> None:
    store = await Store.open(sys.argv[1])
    print(",".join(map(str, store.migrated)), flush=True)
    await store.aclose()

trio.run(main)
"""


def test_two_processes_migrating_at_once_migrate_once(empty_database: Callable[[], str]) -> None:
    """Two node processes on an empty database, both held at the advisory lock until both wait
    there (so they truly start together): one applies the migrations, the other finds them
    applied."""
    url = empty_database()
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute(b"SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        nodes = [
            subprocess.Popen(
                [sys.executable, "-c", _NODE, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
            )
            for _ in range(2)
        ]
        try:

            def both_waiting() -> bool:
                row = holder.execute(
                    b"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                return row is not None and row[0] == 2

            seconds_until(both_waiting, 30, 0.05, "two nodes waiting for the migration lock")
        finally:
            holder.execute(b"SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        outputs = sorted(node.communicate(timeout=60)[0].strip() for node in nodes)
    assert [node.returncode for node in nodes] == [0, 0]
    assert outputs == ["", ",".join(str(m.number) for m in MIGRATIONS)]


_TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}
"""SQLite's declared type -> what the translated schema declares on PostgreSQL."""

Shape = dict[str, list[tuple[str, str, bool]]]


def _sqlite_shape(db: Database) -> Shape:
    return {
        table: [
            (c.name, _TYPES[c.type.upper()], bool(c.notnull) or bool(c.is_pk))
            for c in db[table].columns
        ]
        for table in db.table_names()
        if not table.startswith("sqlite_")
    }


def _postgres_shape(db: Any) -> Shape:
    rows = fetch_all(
        db,
        """SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
            WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position""",
    )
    shape: Shape = {}
    for row in rows:
        column = (row["column_name"], row["data_type"], row["is_nullable"] == "NO")
        shape.setdefault(row["table_name"], []).append(column)
    return shape


def _index_names(db: Any, postgres: bool) -> set[str]:
    if postgres:
        sql = "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    return {row["name"] for row in fetch_all(db, sql)}


async def test_the_migrations_make_the_same_schema_on_both(store: Store, tmp_path: Path) -> None:
    """Every table with the same columns in the same order, of the same types and nullability;
    every named index; both triggers."""
    async with open_store(tmp_path / "w.sqlite3") as lite:
        sqlite_shape = await lite.run(_sqlite_shape)
        sqlite_indexes = await lite.run(_index_names, False)
    assert await store.run(_postgres_shape) == sqlite_shape
    assert sqlite_indexes <= await store.run(_index_names, True)
    triggers = await store.run(
        fetch_all,
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname",
    )
    assert [t["tgname"] for t in triggers] == ["audit_log_no_delete", "audit_log_no_update"]
