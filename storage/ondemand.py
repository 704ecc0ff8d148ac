"""On-demand requests, each organisation's intake settings and who is on call (issue 14).

A request's state changes only through the functions here, each one conditional UPDATE whose
``WHERE`` names the states it may leave: a claim, an assign and a decline of the same request
cannot both succeed, whichever process or actor sends them, because SQLite applies one UPDATE at a
time and the loser's ``WHERE`` no longer matches (rowcount 0). The loser is told who has it.

The patient's token is stored as its SHA-256, like room tokens (``storage.rooms``): a copy of the
database opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage import notices
from storage.db import (
    Row,
    Store,
    dump_json,
    execute,
    fetch_all,
    fetch_one,
    fetch_required,
    load_json,
    new_id,
)
from storage.errors import NotFoundError, TokenRejectedError
from storage.times import from_db, opt_from_db, to_db, utcnow

#: The on-demand tables; migration 5 (:data:`MIGRATION_SQL`) creates them with the notices table.
SCHEMA = """
CREATE TABLE IF NOT EXISTS ondemand_settings (
    org_id      INTEGER PRIMARY KEY REFERENCES organisations(id),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    intake      TEXT NOT NULL DEFAULT '[]',
    alert_after INTEGER NOT NULL DEFAULT 0 CHECK (alert_after >= 0),
    updated_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS ondemand_requests (
    id             TEXT PRIMARY KEY,
    org_id         INTEGER NOT NULL REFERENCES organisations(id),
    room_id        TEXT NOT NULL UNIQUE,
    token_hash     TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL CHECK (state IN ('intake', 'waiting', 'assigned', 'claimed',
                                        'in_session', 'ended', 'declined', 'cancelled')),
    details        TEXT NOT NULL DEFAULT '{}',
    case_info      TEXT NOT NULL DEFAULT '{}',
    steps_done     INTEGER NOT NULL DEFAULT 0,
    steps_total    INTEGER NOT NULL DEFAULT 0,
    assigned_to    INTEGER REFERENCES staff_users(id),
    claimed_by     INTEGER REFERENCES staff_users(id),
    created_at     TEXT NOT NULL,
    intake_done_at TEXT,
    claimed_at     TEXT,
    started_at     TEXT,
    ended_at       TEXT,
    end_reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ondemand_by_org_state ON ondemand_requests (org_id, state, created_at);
CREATE INDEX IF NOT EXISTS ondemand_by_org_claimed ON ondemand_requests (org_id, claimed_at);

CREATE TABLE IF NOT EXISTS ondemand_on_call (
    org_id     INTEGER NOT NULL REFERENCES organisations(id),
    user_id    INTEGER NOT NULL REFERENCES staff_users(id),
    on_call    INTEGER NOT NULL CHECK (on_call IN (0, 1)),
    changed_at TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
"""

MIGRATION_NAME = "on-demand requests, intake settings, on call; staff notices"
MIGRATION_SQL = SCHEMA + notices.SCHEMA
"""Migration 5 (issue 14)."""

TOKEN_BYTES = 32
#: States a request is still open in (nobody has it yet).
OPEN = ("intake", "waiting", "assigned")
#: States that are over: nothing changes a request in them any more.
FINAL = ("ended", "declined", "cancelled")
#: How many recent claims the wait estimate looks at.
RECENT_CLAIMS = 20


@dataclass(frozen=True, slots=True)
class Settings:
    org_id: int
    enabled: bool
    intake: list[dict[str, Any]]
    alert_after: int


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    org_id: int
    room_id: str
    state: str
    details: dict[str, str]
    case_info: dict[str, Any]
    steps_done: int
    steps_total: int
    assigned_to: int | None
    assigned_name: str | None
    claimed_by: int | None
    claimed_name: str | None
    created_at: datetime
    claimed_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str


@dataclass(frozen=True, slots=True)
class NewRequest:
    request: Request
    #: The secret half of the patient's token; only its hash is stored.
    raw_token: str


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of a conditional state change: ``won`` and the request as it is now (the
    winner's state when lost, so the loser can be told who has it)."""

    won: bool
    request: Request


@dataclass(frozen=True, slots=True)
class OrgStaff:
    user_id: int
    name: str


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


_SELECT = """
SELECT r.*, a.display_name AS assigned_name, c.display_name AS claimed_name
FROM ondemand_requests r
LEFT JOIN staff_users a ON a.id = r.assigned_to
LEFT JOIN staff_users c ON c.id = r.claimed_by
"""


def _request(row: Row) -> Request:
    return Request(
        row["id"],
        row["org_id"],
        row["room_id"],
        row["state"],
        load_json(row["details"]),
        load_json(row["case_info"]),
        row["steps_done"],
        row["steps_total"],
        row["assigned_to"],
        row["assigned_name"],
        row["claimed_by"],
        row["claimed_name"],
        from_db(row["created_at"]),
        opt_from_db(row["claimed_at"]),
        opt_from_db(row["started_at"]),
        opt_from_db(row["ended_at"]),
        row["end_reason"],
    )


def _get(db: Database, request_id: str) -> Request:
    row = fetch_required(db, _SELECT + " WHERE r.id = ?", (request_id,), "on-demand request")
    return _request(row)


# -- settings ----------------------------------------------------------------------------------


def _get_settings(db: Database, org_id: int) -> Settings:
    row = fetch_one(db, "SELECT * FROM ondemand_settings WHERE org_id = ?", (org_id,))
    if row is None:
        return Settings(org_id, True, [], 0)
    return Settings(org_id, bool(row["enabled"]), load_json(row["intake"]), row["alert_after"])


def _save_settings(
    db: Database, org_id: int, enabled: bool, intake: list[dict[str, Any]], alert_after: int
) -> Settings:
    execute(
        db,
        """
        INSERT INTO ondemand_settings (org_id, enabled, intake, alert_after, updated_at)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (org_id) DO UPDATE SET enabled = excluded.enabled, intake = excluded.intake,
            alert_after = excluded.alert_after, updated_at = excluded.updated_at
        """,
        (org_id, int(enabled), dump_json(intake), alert_after, to_db(utcnow())),
    )
    return _get_settings(db, org_id)


# -- requests ----------------------------------------------------------------------------------


def _create(db: Database, org_id: int, details: dict[str, str], steps_total: int) -> NewRequest:
    fetch_required(db, "SELECT id FROM organisations WHERE id = ?", (org_id,), "organisation")
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    request_id, room_id = new_id(), new_id()
    now = to_db(utcnow())
    state = "intake" if steps_total > 0 else "waiting"
    execute(
        db,
        """
        INSERT INTO ondemand_requests (id, org_id, room_id, token_hash, state, details,
            steps_total, created_at, intake_done_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            request_id,
            org_id,
            room_id,
            hash_token(raw),
            state,
            dump_json(details),
            steps_total,
            now,
            None if steps_total > 0 else now,
        ),
    )
    return NewRequest(_get(db, request_id), raw)


def _by_room(db: Database, room_id: str) -> Request:
    row = fetch_required(db, _SELECT + " WHERE r.room_id = ?", (room_id,), "on-demand session")
    return _request(row)


def _check_token(db: Database, room_id: str, raw: str) -> Request:
    row = fetch_one(
        db, _SELECT + " WHERE r.room_id = ? AND r.token_hash = ?", (room_id, hash_token(raw))
    )
    if row is None:
        raise TokenRejectedError("unknown")
    request = _request(row)
    if request.state in FINAL:
        raise TokenRejectedError("ended")
    return request


def _save_step(
    db: Database, request_id: str, step: int, values: dict[str, Any], steps_total: int
) -> Transition:
    """Save step ``step``'s answers: the next step in order, or the last one saved again."""
    current = _get(db, request_id)
    if current.state in FINAL or current.state == "in_session":
        return Transition(False, current)
    if step not in (current.steps_done, current.steps_done - 1) or not 0 <= step < steps_total:
        return Transition(False, current)
    case = {**current.case_info, **values}
    done = max(current.steps_done, step + 1)
    finished = done >= steps_total
    cursor = execute(
        db,
        """
        UPDATE ondemand_requests
        SET case_info = ?, steps_done = ?, steps_total = ?,
            state = CASE WHEN state = 'intake' AND ? = 1 THEN 'waiting' ELSE state END,
            intake_done_at = CASE WHEN ? = 1 AND intake_done_at IS NULL THEN ? ELSE intake_done_at END
        WHERE id = ? AND steps_done = ? AND state NOT IN ('in_session', 'ended', 'declined',
                                                           'cancelled')
        """,
        (
            dump_json(case),
            done,
            steps_total,
            int(finished),
            int(finished),
            to_db(utcnow()),
            request_id,
            current.steps_done,
        ),
    )
    return Transition(cursor.rowcount == 1, _get(db, request_id))


def _claim(db: Database, org_id: int, request_id: str, user_id: int) -> Transition:
    """Exactly one claim wins: open, or assigned to this very user. Claiming again is a win."""
    cursor = execute(
        db,
        """
        UPDATE ondemand_requests SET state = 'claimed', claimed_by = ?, claimed_at = ?
        WHERE id = ? AND org_id = ?
          AND (state IN ('intake', 'waiting') OR (state = 'assigned' AND assigned_to = ?))
        """,
        (user_id, to_db(utcnow()), request_id, org_id, user_id),
    )
    request = _in_org(db, org_id, request_id)
    won = cursor.rowcount == 1 or (
        request.claimed_by == user_id and request.state in ("claimed", "in_session")
    )
    return Transition(won, request)


def _assign(db: Database, org_id: int, request_id: str, user_id: int) -> Transition:
    """Give an open request to ``user_id`` (again, or instead of someone else): never once claimed."""
    cursor = execute(
        db,
        """
        UPDATE ondemand_requests SET state = 'assigned', assigned_to = ?
        WHERE id = ? AND org_id = ? AND state IN ('intake', 'waiting', 'assigned')
        """,
        (user_id, request_id, org_id),
    )
    return Transition(cursor.rowcount == 1, _in_org(db, org_id, request_id))


def _decline(db: Database, org_id: int, request_id: str, reason: str) -> Transition:
    cursor = execute(
        db,
        """
        UPDATE ondemand_requests SET state = 'declined', ended_at = ?, end_reason = ?
        WHERE id = ? AND org_id = ? AND state IN ('intake', 'waiting', 'assigned')
        """,
        (to_db(utcnow()), reason, request_id, org_id),
    )
    return Transition(cursor.rowcount == 1, _in_org(db, org_id, request_id))


def _start(db: Database, request_id: str) -> Transition:
    cursor = execute(
        db,
        "UPDATE ondemand_requests SET state = 'in_session', started_at = ?"
        " WHERE id = ? AND state = 'claimed'",
        (to_db(utcnow()), request_id),
    )
    return Transition(cursor.rowcount == 1, _get(db, request_id))


def _finish(db: Database, request_id: str, state: str, reason: str) -> Transition:
    """End a request that is not over yet: ``cancelled`` (nobody had it) or ``ended``."""
    cursor = execute(
        db,
        """
        UPDATE ondemand_requests SET state = ?, ended_at = ?, end_reason = ?
        WHERE id = ? AND state NOT IN ('ended', 'declined', 'cancelled')
        """,
        (state, to_db(utcnow()), reason, request_id),
    )
    return Transition(cursor.rowcount == 1, _get(db, request_id))


def _in_org(db: Database, org_id: int, request_id: str) -> Request:
    """Another organisation's request reads exactly like a missing one."""
    request = _get(db, request_id)
    if request.org_id != org_id:
        raise NotFoundError("on-demand request")
    return request


def _list_live(db: Database, org_id: int) -> list[Request]:
    rows = fetch_all(
        db,
        _SELECT + " WHERE r.org_id = ? AND r.state NOT IN ('ended', 'declined', 'cancelled')"
        " ORDER BY r.created_at, r.id",
        (org_id,),
    )
    return [_request(r) for r in rows]


def _orgs_with_live(db: Database) -> list[int]:
    rows = fetch_all(
        db,
        "SELECT DISTINCT org_id FROM ondemand_requests"
        " WHERE state NOT IN ('ended', 'declined', 'cancelled') ORDER BY org_id",
    )
    return [int(r["org_id"]) for r in rows]


def _claim_waits(db: Database, org_id: int, limit: int) -> list[float]:
    rows = fetch_all(
        db,
        "SELECT created_at, claimed_at FROM ondemand_requests"
        " WHERE org_id = ? AND claimed_at IS NOT NULL ORDER BY claimed_at DESC LIMIT ?",
        (org_id, limit),
    )
    return [(from_db(r["claimed_at"]) - from_db(r["created_at"])).total_seconds() for r in rows]


def _sessions_between(db: Database, org_id: int, since: datetime, until: datetime) -> int:
    row = fetch_one(
        db,
        "SELECT COUNT(*) AS n FROM ondemand_requests"
        " WHERE org_id = ? AND started_at IS NOT NULL AND started_at >= ? AND started_at < ?",
        (org_id, to_db(since), to_db(until)),
    )
    return int(row["n"]) if row else 0


# -- on call -----------------------------------------------------------------------------------


def _set_on_call(db: Database, org_id: int, user_id: int, on: bool) -> bool:
    execute(
        db,
        """
        INSERT INTO ondemand_on_call (org_id, user_id, on_call, changed_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (org_id, user_id) DO UPDATE SET on_call = excluded.on_call,
            changed_at = excluded.changed_at
        """,
        (org_id, user_id, int(on), to_db(utcnow())),
    )
    return on


def _on_call(db: Database, org_id: int) -> list[OrgStaff]:
    rows = fetch_all(
        db,
        """
        SELECT o.user_id, u.display_name FROM ondemand_on_call o
        JOIN staff_users u ON u.id = o.user_id
        WHERE o.org_id = ? AND o.on_call = 1 AND u.active = 1
        ORDER BY u.display_name, o.user_id
        """,
        (org_id,),
    )
    return [OrgStaff(int(r["user_id"]), r["display_name"]) for r in rows]


def _providers(db: Database, org_id: int) -> list[OrgStaff]:
    """Active staff holding the provider role (or an admin role) anywhere in the organisation."""
    rows = fetch_all(
        db,
        """
        SELECT DISTINCT s.id, s.display_name FROM staff_users s
        JOIN role_grants g ON g.user_id = s.id
        LEFT JOIN units un ON g.scope_type = 'unit' AND un.id = g.scope_id
        LEFT JOIN waiting_areas a ON g.scope_type = 'area' AND a.id = g.scope_id
        LEFT JOIN units au ON au.id = a.unit_id
        WHERE s.active = 1 AND g.role IN ('provider', 'unit_admin', 'org_admin')
          AND ((g.scope_type = 'org' AND g.scope_id = :o) OR un.org_id = :o OR au.org_id = :o)
        ORDER BY s.display_name, s.id
        """,
        {"o": org_id},
    )
    return [OrgStaff(int(r["id"]), r["display_name"]) for r in rows]


def _admins(db: Database, org_id: int) -> list[OrgStaff]:
    rows = fetch_all(
        db,
        """
        SELECT DISTINCT s.id, s.display_name FROM staff_users s
        JOIN role_grants g ON g.user_id = s.id
        LEFT JOIN units un ON g.scope_type = 'unit' AND un.id = g.scope_id
        WHERE s.active = 1 AND ((g.role = 'org_admin' AND g.scope_type = 'org' AND g.scope_id = :o)
              OR (g.role = 'unit_admin' AND un.org_id = :o))
        ORDER BY s.display_name, s.id
        """,
        {"o": org_id},
    )
    return [OrgStaff(int(r["id"]), r["display_name"]) for r in rows]


def _org_structure(db: Database, org_id: int) -> tuple[str, set[int], set[int]]:
    org = fetch_required(db, "SELECT name FROM organisations WHERE id = ?", (org_id,), "org")
    units = {
        int(r["id"]) for r in fetch_all(db, "SELECT id FROM units WHERE org_id = ?", (org_id,))
    }
    areas = {
        int(r["id"])
        for r in fetch_all(
            db,
            "SELECT a.id FROM waiting_areas a JOIN units u ON u.id = a.unit_id WHERE u.org_id = ?",
            (org_id,),
        )
    }
    return str(org["name"]), units, areas


def _services(db: Database, org_id: int) -> list[tuple[str, str]]:
    rows = fetch_all(
        db,
        """
        SELECT a.name, a.slug FROM waiting_areas a JOIN units u ON u.id = a.unit_id
        WHERE u.org_id = ? AND a.active = 1 ORDER BY a.name, a.id
        """,
        (org_id,),
    )
    return [(r["name"], r["slug"]) for r in rows]


# -- async front -------------------------------------------------------------------------------


async def get_settings(store: Store, org_id: int) -> Settings:
    return await store.run(_get_settings, org_id)


async def save_settings(
    store: Store, org_id: int, enabled: bool, intake: list[dict[str, Any]], alert_after: int
) -> Settings:
    return await store.run(_save_settings, org_id, enabled, intake, alert_after)


async def create_request(
    store: Store, org_id: int, details: dict[str, str], steps_total: int
) -> NewRequest:
    """A new request (``intake``, or ``waiting`` when the organisation has no intake steps)."""
    return await store.run(_create, org_id, details, steps_total)


async def get_request(store: Store, request_id: str) -> Request:
    return await store.run(_get, request_id)


async def request_in_org(store: Store, org_id: int, request_id: str) -> Request:
    return await store.run(_in_org, org_id, request_id)


async def by_room(store: Store, room_id: str) -> Request:
    return await store.run(_by_room, room_id)


async def check_token(store: Store, room_id: str, raw: str) -> Request:
    """The request whose session ``room_id`` this secret opens; `TokenRejectedError` otherwise."""
    return await store.run(_check_token, room_id, raw)


async def save_step(
    store: Store, request_id: str, step: int, values: dict[str, Any], steps_total: int
) -> Transition:
    return await store.run(_save_step, request_id, step, values, steps_total)


async def claim(store: Store, org_id: int, request_id: str, user_id: int) -> Transition:
    return await store.run(_claim, org_id, request_id, user_id)


async def assign(store: Store, org_id: int, request_id: str, user_id: int) -> Transition:
    return await store.run(_assign, org_id, request_id, user_id)


async def decline(store: Store, org_id: int, request_id: str, reason: str) -> Transition:
    return await store.run(_decline, org_id, request_id, reason)


async def start_session(store: Store, request_id: str) -> Transition:
    return await store.run(_start, request_id)


async def finish(store: Store, request_id: str, state: str, reason: str) -> Transition:
    return await store.run(_finish, request_id, state, reason)


async def list_live(store: Store, org_id: int) -> list[Request]:
    """Every request of the organisation that is not over, oldest first."""
    return await store.run(_list_live, org_id)


async def orgs_with_live_requests(store: Store) -> list[int]:
    return await store.run(_orgs_with_live)


async def recent_claim_waits(store: Store, org_id: int, limit: int = RECENT_CLAIMS) -> list[float]:
    """Seconds from request to claim of the organisation's ``limit`` most recent claims."""
    return await store.run(_claim_waits, org_id, limit)


async def sessions_between(store: Store, org_id: int, since: datetime, until: datetime) -> int:
    """On-demand sessions started in ``[since, until)``: the usage report's count."""
    return await store.run(_sessions_between, org_id, since, until)


async def set_on_call(store: Store, org_id: int, user_id: int, on: bool) -> bool:
    return await store.run(_set_on_call, org_id, user_id, on)


async def on_call_staff(store: Store, org_id: int) -> list[OrgStaff]:
    return await store.run(_on_call, org_id)


async def providers(store: Store, org_id: int) -> list[OrgStaff]:
    return await store.run(_providers, org_id)


async def admins(store: Store, org_id: int) -> list[OrgStaff]:
    return await store.run(_admins, org_id)


async def org_structure(store: Store, org_id: int) -> tuple[str, set[int], set[int]]:
    """The organisation's name, unit ids and area ids (who holds a role here is read from these)."""
    return await store.run(_org_structure, org_id)


async def services(store: Store, org_id: int) -> list[tuple[str, str]]:
    """The organisation's active waiting areas as ``(name, slug)``: its public page lists them."""
    return await store.run(_services, org_id)
