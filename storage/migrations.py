"""Numbered schema migrations, applied in order at start; applying twice is a no-op.

Each migration runs in the same transaction as the row that records it in `schema_migrations`,
so a failed migration leaves the database at the previous version. Migrations are append-only:
never edit or renumber one that has shipped; add the next number instead (docs/storage.md).

One list serves both engines: on PostgreSQL a migration's SQLite text is translated
(`storage.dialect.to_postgres_ddl`), or a migration carries its own PostgreSQL text where the two
cannot share one; `Store.open` runs them there under a cluster-wide advisory lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlite_utils import Database

from storage import audit_chain
from storage.consult import SCHEMA as _CONSULT_LINKS
from storage.db import execute, fetch_all
from storage.dialect import NOCASE_COLLATION, REFUSE_FUNCTION, is_postgres
from storage.errors import SchemaTooNewError
from storage.group_breakouts import MIGRATION_NAME as _BREAKOUTS_NAME
from storage.group_breakouts import MIGRATION_SQL as _BREAKOUTS
from storage.group_breakouts import ROOMS_MIGRATION_NAME as _BREAKOUT_ROOMS_NAME
from storage.group_breakouts import ROOMS_MIGRATION_SQL as _BREAKOUT_ROOMS
from storage.group_sessions import MIGRATION_NAME as _GROUP_SESSIONS_NAME
from storage.group_sessions import MIGRATION_SQL as _GROUP_SESSIONS
from storage.meeting_rooms import MIGRATION_NAME as _MEETING_ROOMS_NAME
from storage.meeting_rooms import MIGRATION_SQL as _MEETING_ROOMS
from storage.ondemand import MIGRATION_NAME as _ONDEMAND_NAME
from storage.ondemand import MIGRATION_SQL as _ONDEMAND
from storage.times import from_db, to_db, utcnow

if TYPE_CHECKING:
    from storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: SQL script text, or a function for steps SQL alone cannot express.

    ``postgres``: the step's PostgreSQL text, for a script the translation cannot carry over
    (None: the SQLite text, translated)."""

    number: int
    name: str
    apply: str | Callable[[Database], None]
    postgres: str | None = None


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of `schema_migrations`."""

    number: int
    name: str
    applied_at: datetime


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number     INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
"""

_INITIAL = """
CREATE TABLE organisations (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE units (
    id         INTEGER PRIMARY KEY,
    org_id     INTEGER NOT NULL REFERENCES organisations(id),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE waiting_areas (
    id            INTEGER PRIMARY KEY,
    unit_id       INTEGER NOT NULL REFERENCES units(id),
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL UNIQUE,
    time_zone     TEXT NOT NULL,
    opening_hours TEXT NOT NULL DEFAULT '[]',
    form_fields   TEXT NOT NULL DEFAULT '[]',
    consent_text  TEXT NOT NULL DEFAULT '',
    kind          TEXT NOT NULL DEFAULT 'individual' CHECK (kind IN ('individual', 'group')),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    TEXT NOT NULL,
    UNIQUE (unit_id, name)
);

CREATE TABLE area_closures (
    id        INTEGER PRIMARY KEY,
    area_id   INTEGER NOT NULL REFERENCES waiting_areas(id) ON DELETE CASCADE,
    starts_on TEXT NOT NULL,
    ends_on   TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    CHECK (starts_on <= ends_on)
);
CREATE INDEX area_closures_by_area ON area_closures (area_id, starts_on);

CREATE TABLE staff_users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    TEXT NOT NULL
);

CREATE TABLE role_grants (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN
                   ('org_admin', 'unit_admin', 'provider', 'referrer', 'meeting_member')),
    scope_type TEXT NOT NULL CHECK (scope_type IN ('org', 'unit', 'area')),
    scope_id   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, role, scope_type, scope_id)
);
CREATE INDEX role_grants_by_scope ON role_grants (scope_type, scope_id);

CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

CREATE TABLE rooms (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('caller', 'meeting', 'user', 'consult_now', 'group')),
    area_id       INTEGER REFERENCES waiting_areas(id),
    unit_id       INTEGER REFERENCES units(id),
    owner_user_id INTEGER REFERENCES staff_users(id),
    name          TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    created_at    TEXT NOT NULL,
    closed_at     TEXT
);
CREATE INDEX rooms_open_by_area ON rooms (area_id, state);

CREATE TABLE callers (
    id                      TEXT PRIMARY KEY,
    area_id                 INTEGER NOT NULL REFERENCES waiting_areas(id),
    origin_area_id          INTEGER NOT NULL REFERENCES waiting_areas(id),
    room_id                 TEXT REFERENCES rooms(id),
    details                 TEXT NOT NULL DEFAULT '{}',
    status                  TEXT NOT NULL CHECK (status IN
                                ('waiting', 'in_call', 'on_hold', 'transferred', 'left', 'ended')),
    arrived_at              TEXT NOT NULL,
    queued_at               TEXT NOT NULL,
    status_changed_at       TEXT NOT NULL,
    first_call_at           TEXT,
    finished_at             TEXT,
    transferred_from_area_id INTEGER REFERENCES waiting_areas(id),
    grace_expires_at        TEXT
);
CREATE INDEX callers_queue ON callers (area_id, status, queued_at);

CREATE TABLE caller_events (
    id        INTEGER PRIMARY KEY,
    caller_id TEXT NOT NULL REFERENCES callers(id),
    area_id   INTEGER NOT NULL REFERENCES waiting_areas(id),
    status    TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX caller_events_by_area ON caller_events (area_id, at);
CREATE INDEX caller_events_by_caller ON caller_events (caller_id, id);

CREATE TABLE room_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    caller_id   TEXT REFERENCES callers(id),
    kind        TEXT NOT NULL CHECK (kind IN ('caller', 'invite', 'guest')),
    single_use  INTEGER NOT NULL CHECK (single_use IN (0, 1)),
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    used_at     TEXT,
    revoked_at  TEXT
);
CREATE INDEX room_tokens_by_room ON room_tokens (room_id);

CREATE TABLE calls (
    id         TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms(id),
    area_id    INTEGER REFERENCES waiting_areas(id),
    caller_id  TEXT REFERENCES callers(id),
    started_at TEXT NOT NULL,
    ended_at   TEXT
);
CREATE INDEX calls_by_area ON calls (area_id, started_at);
CREATE INDEX calls_by_room ON calls (room_id);

CREATE TABLE call_participants (
    id           INTEGER PRIMARY KEY,
    call_id      TEXT NOT NULL REFERENCES calls(id),
    kind         TEXT NOT NULL CHECK (kind IN ('staff', 'caller', 'invitee', 'guest')),
    user_id      INTEGER REFERENCES staff_users(id),
    display_name TEXT NOT NULL,
    joined_at    TEXT NOT NULL,
    left_at      TEXT
);
CREATE INDEX call_participants_by_call ON call_participants (call_id);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'caller', 'system')),
    actor_user_id INTEGER,
    action        TEXT NOT NULL,
    area_id       INTEGER,
    subject       TEXT NOT NULL DEFAULT '',
    remote_addr   TEXT NOT NULL DEFAULT '',
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_at ON audit_log (at);
CREATE INDEX audit_by_area ON audit_log (area_id, at);
CREATE INDEX audit_by_action ON audit_log (action, at);
CREATE INDEX audit_by_user ON audit_log (actor_user_id, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TABLE outbox (
    id                   INTEGER PRIMARY KEY,
    channel              TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient            TEXT NOT NULL,
    subject              TEXT NOT NULL DEFAULT '',
    body                 TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    area_id              INTEGER REFERENCES waiting_areas(id),
    requested_by_user_id INTEGER REFERENCES staff_users(id),
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    next_attempt_at      TEXT NOT NULL,
    sent_at              TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
"""

_AUDIT_GUEST_ACTORS = """
CREATE TABLE audit_log_v2 (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'caller', 'guest', 'system')),
    actor_user_id INTEGER,
    action        TEXT NOT NULL,
    area_id       INTEGER,
    subject       TEXT NOT NULL DEFAULT '',
    remote_addr   TEXT NOT NULL DEFAULT '',
    details       TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_v2 (id, at, actor_kind, actor_user_id, action, area_id, subject,
                          remote_addr, details)
    SELECT id, at, actor_kind, actor_user_id, action, area_id, subject, remote_addr, details
    FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_v2 RENAME TO audit_log;
CREATE INDEX audit_by_at ON audit_log (at);
CREATE INDEX audit_by_area ON audit_log (area_id, at);
CREATE INDEX audit_by_action ON audit_log (action, at);
CREATE INDEX audit_by_user ON audit_log (actor_user_id, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
"""
"""Invited guests (interpreters, colleagues) act in calls too; SQLite cannot change a CHECK in
place, so the table is rebuilt (rows copied with their ids) and its triggers recreated."""


_STAFF_ORGANISATION = """
ALTER TABLE staff_users ADD COLUMN org_id INTEGER REFERENCES organisations(id);
UPDATE staff_users SET org_id = (
    SELECT org_id FROM (
        SELECT g.id AS grant_id, g.scope_id AS org_id FROM role_grants g
         WHERE g.user_id = staff_users.id AND g.scope_type = 'org'
        UNION ALL
        SELECT g.id, u.org_id FROM role_grants g JOIN units u ON u.id = g.scope_id
         WHERE g.user_id = staff_users.id AND g.scope_type = 'unit'
        UNION ALL
        SELECT g.id, u.org_id FROM role_grants g JOIN waiting_areas a ON a.id = g.scope_id
          JOIN units u ON u.id = a.unit_id
         WHERE g.user_id = staff_users.id AND g.scope_type = 'area'
    ) ORDER BY grant_id LIMIT 1
);
CREATE INDEX staff_users_by_org ON staff_users (org_id);
"""
"""Only an organisation's administrators may see and manage its staff (issue 15): each member
of staff belongs to one organisation, taken for existing members from their oldest role grant."""

_STAFF_ORGANISATION_POSTGRES = _STAFF_ORGANISATION.replace(
    "    ) ORDER BY grant_id LIMIT 1", "    ) AS grants ORDER BY grant_id LIMIT 1"
)
"""The same step on PostgreSQL 15, which wants a name for a subquery in FROM."""


def _audit_chain(db: Database) -> None:
    """Add the chain column and hash every existing entry (storage.audit_chain). The append-only
    trigger is lifted for the backfill only, inside this migration's transaction."""
    db.execute("ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT ''")
    db.execute("DROP TRIGGER audit_log_no_update")
    previous, after = audit_chain.GENESIS, 0
    v1 = audit_chain.FIELDS_V1  # the fields of this schema, whatever the chain hashes today
    columns = ", ".join(v1)
    while rows := fetch_all(
        db,
        f"SELECT {columns} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
        (after, audit_chain.VERIFY_PAGE),
    ):
        for row in rows:
            previous = audit_chain.link(previous, audit_chain.fields_of(row, v1), v1)
            execute(db, "UPDATE audit_log SET chain = ? WHERE id = ?", (previous, row["id"]))
            after = int(row["id"])
    db.execute(
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    )


_AUDIT_ADDRESSES_NAME = "audit addresses kept apart, the chain over their digests"
_AUDIT_ADDRESSES = (
    """CREATE TABLE audit_addresses (
           entry_id    INTEGER PRIMARY KEY REFERENCES audit_log(id) ON DELETE CASCADE,
           address     TEXT NOT NULL,
           address_key TEXT NOT NULL
       )""",
    "ALTER TABLE audit_log ADD COLUMN address_digest TEXT NOT NULL DEFAULT ''",
)


def _audit_addresses(db: Database) -> None:
    """Move each entry's client address to ``audit_addresses`` and chain the log again over the
    address's keyed digest (``storage.audit_chain.FIELDS``), so the retention policy can forget
    addresses and the chain still holds (issue 15).

    The old chain is checked on the way: if it was already broken, the entries from the first
    broken one on keep their old hashes, so the administrators' check still names that entry
    rather than this migration hiding the change. The old and new heads are logged, for whoever
    noted the old head down. The append-only trigger is lifted inside this transaction only."""
    for statement in _AUDIT_ADDRESSES:
        db.execute(statement)
    db.execute("DROP TRIGGER audit_log_no_update")
    v1 = audit_chain.FIELDS_V1
    old_head = new_head = audit_chain.GENESIS
    broken_at: int | None = None
    after = 0
    while rows := fetch_all(
        db,
        f"SELECT {', '.join(v1)}, chain FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
        (after, audit_chain.VERIFY_PAGE),
    ):
        for row in rows:
            entry_id = after = int(row["id"])
            fields = audit_chain.fields_of(row, v1)
            if broken_at is None and row["chain"] != audit_chain.link(old_head, fields, v1):
                broken_at = entry_id
            old_head = str(row["chain"])
            address = str(row["remote_addr"])
            key = audit_chain.new_address_key() if address else ""
            fields["remote_addr"] = ""
            fields["address_digest"] = audit_chain.address_digest(key, address)
            if address:
                execute(
                    db,
                    """INSERT INTO audit_addresses (entry_id, address, address_key)
                       VALUES (?, ?, ?)""",
                    (entry_id, address, key),
                )
            chain = old_head
            if broken_at is None:
                chain = new_head = audit_chain.link(new_head, fields)
            execute(
                db,
                """UPDATE audit_log SET remote_addr = '', address_digest = ?, chain = ?
                   WHERE id = ?""",
                (fields["address_digest"], chain, entry_id),
            )
    db.execute(
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    )
    if broken_at is not None:
        log.warning(
            "migration 10: the audit chain was already broken at entry #%d; left broken there",
            broken_at,
        )
    elif after:
        log.warning(
            "migration 10: audit chain hashed again over address digests: head %s is now %s",
            old_head,
            new_head,
        )


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _INITIAL),
    Migration(2, "audit actors include invited guests", _AUDIT_GUEST_ACTORS),
    Migration(3, "Consult Now links", _CONSULT_LINKS),
    Migration(4, _MEETING_ROOMS_NAME, _MEETING_ROOMS),
    Migration(5, _ONDEMAND_NAME, _ONDEMAND),
    Migration(6, "audit log hash chain", _audit_chain),
    Migration(
        7,
        "staff members belong to an organisation",
        _STAFF_ORGANISATION,
        postgres=_STAFF_ORGANISATION_POSTGRES,
    ),
    Migration(8, _BREAKOUTS_NAME, _BREAKOUTS),
    Migration(9, _GROUP_SESSIONS_NAME, _GROUP_SESSIONS),
    Migration(10, _AUDIT_ADDRESSES_NAME, _audit_addresses),
    Migration(11, _BREAKOUT_ROOMS_NAME, _BREAKOUT_ROOMS),
]
"""Every migration ever shipped, in order. Append only."""


def latest_version() -> int:
    """The version this code migrates to."""
    return MIGRATIONS[-1].number if MIGRATIONS else 0


def check_sequence(migrations: list[Migration]) -> None:
    """Numbers must run 1, 2, 3, ... so a gap or a duplicate is caught before it ships."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.number != expected:
            raise ValueError(
                f"migration {migration.name!r} is numbered {migration.number}, expected {expected}"
            )


def applied_migrations(db: Database) -> list[AppliedMigration]:
    """What `schema_migrations` records, oldest first."""
    execute(db, _BOOKKEEPING)
    rows = fetch_all(db, "SELECT number, name, applied_at FROM schema_migrations ORDER BY number")
    return [AppliedMigration(r["number"], r["name"], from_db(r["applied_at"])) for r in rows]


def current_version(db: Database) -> int:
    """The highest applied migration number (0 for an empty database)."""
    applied = applied_migrations(db)
    return applied[-1].number if applied else 0


def apply_migrations(db: Database, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every migration newer than the database; return the numbers applied (empty: no-op).

    Runs inside the transaction `Store.run` opened, so all pending steps land together or not at
    all.
    """
    steps = MIGRATIONS if migrations is None else migrations
    check_sequence(steps)
    postgres = is_postgres(db)
    if postgres:  # what the translated schema text relies on
        execute(db, NOCASE_COLLATION)
        execute(db, REFUSE_FUNCTION)
    version = current_version(db)
    known = steps[-1].number if steps else 0
    if version > known:
        raise SchemaTooNewError(f"database is at schema version {version}, this code knows {known}")
    applied: list[int] = []
    for migration in steps:
        if migration.number <= version:
            continue
        if postgres and migration.postgres is not None:
            db.executescript(migration.postgres)
        elif isinstance(migration.apply, str):
            db.executescript(migration.apply)
        else:
            migration.apply(db)
        execute(
            db,
            "INSERT INTO schema_migrations (number, name, applied_at) VALUES (?, ?, ?)",
            (migration.number, migration.name, to_db(utcnow())),
        )
        applied.append(migration.number)
    if postgres and applied:
        cast("PostgresDatabase", db).resync_identities()
    return applied
