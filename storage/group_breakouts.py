"""A group session's breakout rooms in storage: each person's seat (token) in a room, and the plan.

A seat is what lets a participant's second websocket into one breakout room's call: a participant
token ``<breakout room id>.<secret>`` whose secret is kept only as its SHA-256, like every room
token (``storage.rooms``), so a copy of the database opens no room. Seats are issued when the
rooms open or someone is moved, and revoked when they move on, leave the session or the rooms
close; a revoked seat opens nothing.

The plan (the rooms, their names, who is assigned where, how) is kept as one JSON document per
session, so the assignments are remembered for reopening even after the desk restarts. While the
rooms are open the document also says so (their room ids, the phase, when the timer ends): a desk
started again (its node died, or it crashed) resumes them, with the seats still valid. Each
opening's room ids are kept in ``group_breakout_rooms`` (migration 11), so a message for a breakout
room whose node died finds the session that owns it (:func:`session_of_room`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.db import Store, dump_json, execute, fetch_all, fetch_one, load_json, new_id
from storage.rooms import TOKEN_BYTES, hash_token
from storage.times import to_db, utcnow

#: The migration of breakout seats and plans (issue 12; numbered in ``storage.migrations``).
MIGRATION_NAME = "group breakout seats and plans"
MIGRATION_SQL = """
CREATE TABLE group_breakout_seats (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    session_id   INTEGER NOT NULL,
    room_id      TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX group_breakout_seats_by_session ON group_breakout_seats (session_id, member_id);

CREATE TABLE group_breakout_plans (
    session_id INTEGER PRIMARY KEY,
    plan       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


#: The migration of breakout room ids (numbered 11 in ``storage.migrations``).
ROOMS_MIGRATION_NAME = "group breakout rooms"
ROOMS_MIGRATION_SQL = """
CREATE TABLE group_breakout_rooms (
    room_id    TEXT PRIMARY KEY,
    session_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SeatRequest:
    """One seat to issue: this member into this breakout room, shown under this name there."""

    room_id: str
    member_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Seat:
    """A seat's stored facts (never the secret)."""

    id: str
    session_id: int
    room_id: str
    member_id: str
    display_name: str


def _revoke_member(db: Database, session_id: int, member_id: str, now: datetime) -> None:
    execute(
        db,
        """UPDATE group_breakout_seats SET revoked_at = ?
           WHERE session_id = ? AND member_id = ? AND revoked_at IS NULL""",
        (to_db(now), session_id, member_id),
    )


def _issue(
    db: Database, session_id: int, requests: Sequence[SeatRequest], now: datetime
) -> dict[str, str]:
    secrets_by_member: dict[str, str] = {}
    for request in requests:
        _revoke_member(db, session_id, request.member_id, now)  # one seat per person
        raw = secrets.token_urlsafe(TOKEN_BYTES)
        execute(
            db,
            """INSERT INTO group_breakout_seats (id, token_hash, session_id, room_id, member_id,
                   display_name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (
                new_id(),
                hash_token(raw),
                session_id,
                request.room_id,
                request.member_id,
                request.display_name,
                to_db(now),
            ),
        )
        secrets_by_member[request.member_id] = raw
    return secrets_by_member


def _seat(db: Database, room_id: str, raw: str) -> Seat | None:
    row = fetch_one(
        db,
        """SELECT id, session_id, room_id, member_id, display_name FROM group_breakout_seats
           WHERE token_hash = ? AND room_id = ? AND revoked_at IS NULL""",
        (hash_token(raw), room_id),
    )
    if row is None:
        return None
    return Seat(row["id"], row["session_id"], row["room_id"], row["member_id"], row["display_name"])


def _revoke_session(db: Database, session_id: int, now: datetime) -> int:
    cursor = execute(
        db,
        """UPDATE group_breakout_seats SET revoked_at = ?
           WHERE session_id = ? AND revoked_at IS NULL""",
        (to_db(now), session_id),
    )
    return cursor.rowcount


def _revoke_room(db: Database, room_id: str, now: datetime) -> None:
    execute(
        db,
        "UPDATE group_breakout_seats SET revoked_at = ? WHERE room_id = ? AND revoked_at IS NULL",
        (to_db(now), room_id),
    )


def _save_plan(db: Database, session_id: int, plan: dict[str, Any], now: datetime) -> None:
    execute(
        db,
        """INSERT INTO group_breakout_plans (session_id, plan, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (session_id) DO UPDATE SET plan = excluded.plan,
               updated_at = excluded.updated_at""",
        (session_id, dump_json(plan), to_db(now)),
    )


def _load_plan(db: Database, session_id: int) -> dict[str, Any] | None:
    row = fetch_one(db, "SELECT plan FROM group_breakout_plans WHERE session_id = ?", (session_id,))
    if row is None:
        return None
    plan: dict[str, Any] = load_json(row["plan"])
    return plan


def _open_rooms(
    db: Database, session_id: int, plan: dict[str, Any], room_ids: tuple[str, ...], now: datetime
) -> None:
    for room_id in room_ids:
        execute(
            db,
            """INSERT INTO group_breakout_rooms (room_id, session_id, created_at) VALUES (?, ?, ?)
               ON CONFLICT (room_id) DO NOTHING""",
            (room_id, session_id, to_db(now)),
        )
    _save_plan(db, session_id, plan, now)


def _session_of_room(db: Database, room_id: str) -> int | None:
    row = fetch_one(db, "SELECT session_id FROM group_breakout_rooms WHERE room_id = ?", (room_id,))
    if row is None:
        return None
    session_id = int(row["session_id"])
    plan = _load_plan(db, session_id) or {}
    live = dict(plan.get("live") or {})
    return session_id if room_id in {str(r) for r in live.values()} else None


def _valid_seats(db: Database, session_id: int) -> list[Seat]:
    rows = fetch_all(
        db,
        """SELECT id, session_id, room_id, member_id, display_name FROM group_breakout_seats
           WHERE session_id = ? AND revoked_at IS NULL ORDER BY created_at, id""",
        (session_id,),
    )
    return [
        Seat(r["id"], r["session_id"], r["room_id"], r["member_id"], r["display_name"])
        for r in rows
    ]


async def issue_seats(
    store: Store, session_id: int, requests: Sequence[SeatRequest], *, now: datetime | None = None
) -> dict[str, str]:
    """A new seat for each request, in one transaction; member id -> the token's secret part.
    Each member's earlier seats in the session are revoked: a person sits in one room."""
    return await store.run(_issue, session_id, tuple(requests), now or utcnow())


async def find_seat(store: Store, room_id: str, raw: str) -> Seat | None:
    """The seat a token's secret opens in this breakout room, or None (unknown, another room's,
    revoked)."""
    return await store.run(_seat, room_id, raw)


async def revoke_member_seats(
    store: Store, session_id: int, member_id: str, *, now: datetime | None = None
) -> None:
    await store.run(_revoke_member, session_id, member_id, now or utcnow())


async def revoke_session_seats(
    store: Store, session_id: int, *, now: datetime | None = None
) -> int:
    """Revoke every seat of the session (the rooms closed); how many were still valid."""
    return await store.run(_revoke_session, session_id, now or utcnow())


async def revoke_room_seats(store: Store, room_id: str, *, now: datetime | None = None) -> None:
    """Revoke every seat into one breakout room (its call ended)."""
    await store.run(_revoke_room, room_id, now or utcnow())


async def save_plan(
    store: Store, session_id: int, plan: dict[str, Any], *, now: datetime | None = None
) -> None:
    await store.run(_save_plan, session_id, plan, now or utcnow())


async def load_plan(store: Store, session_id: int) -> dict[str, Any] | None:
    return await store.run(_load_plan, session_id)


async def open_rooms(
    store: Store,
    session_id: int,
    plan: dict[str, Any],
    room_ids: Sequence[str],
    *,
    now: datetime | None = None,
) -> None:
    """The rooms open: their ids are the session's, and the plan (saying so) is saved, in one
    transaction."""
    await store.run(_open_rooms, session_id, plan, tuple(room_ids), now or utcnow())


async def session_of_room(store: Store, room_id: str) -> int | None:
    """The session whose breakout room ``room_id`` is, while its plan says the room is open;
    None for a room that closed, or that is no breakout room."""
    return await store.run(_session_of_room, room_id)


async def valid_seats(store: Store, session_id: int) -> list[Seat]:
    """The session's seats not revoked: who sits in which open room (oldest first)."""
    return await store.run(_valid_seats, session_id)
