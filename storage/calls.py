"""Calls (a span of time when a room had a conversation) and who joined and left them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required, insert, new_id
from storage.rooms import get_room_sync
from storage.times import from_db, opt_from_db, to_db, utcnow

ParticipantKind = Literal["staff", "caller", "invitee", "guest"]


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    room_id: str
    area_id: int | None
    caller_id: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class Participant:
    id: int
    call_id: str
    kind: ParticipantKind
    user_id: int | None
    display_name: str
    joined_at: datetime
    left_at: datetime | None


def _call(row: Row) -> Call:
    return Call(
        row["id"],
        row["room_id"],
        row["area_id"],
        row["caller_id"],
        from_db(row["started_at"]),
        opt_from_db(row["ended_at"]),
    )


def _participant(row: Row) -> Participant:
    return Participant(
        row["id"],
        row["call_id"],
        row["kind"],
        row["user_id"],
        row["display_name"],
        from_db(row["joined_at"]),
        opt_from_db(row["left_at"]),
    )


def _get_call(db: Database, call_id: str) -> Call:
    return _call(
        fetch_required(db, "SELECT * FROM calls WHERE id = ?", (call_id,), f"call {call_id}")
    )


def _start(db: Database, room_id: str, caller_id: str | None, now: datetime) -> Call:
    room = get_room_sync(db, room_id)
    call_id = new_id()
    execute(
        db,
        "INSERT INTO calls (id, room_id, area_id, caller_id, started_at) VALUES (?, ?, ?, ?, ?)",
        (call_id, room_id, room.area_id, caller_id, to_db(now)),
    )
    return _get_call(db, call_id)


def _end(db: Database, call_id: str, now: datetime) -> Call:
    _get_call(db, call_id)
    stamp = to_db(now)
    execute(db, "UPDATE calls SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (stamp, call_id))
    execute(
        db,
        "UPDATE call_participants SET left_at = ? WHERE call_id = ? AND left_at IS NULL",
        (stamp, call_id),
    )
    return _get_call(db, call_id)


def _active_for_room(db: Database, room_id: str) -> Call | None:
    row = fetch_one(
        db,
        """SELECT * FROM calls WHERE room_id = ? AND ended_at IS NULL
           ORDER BY started_at DESC LIMIT 1""",
        (room_id,),
    )
    return None if row is None else _call(row)


def _list_active(db: Database) -> list[Call]:
    rows = fetch_all(db, "SELECT * FROM calls WHERE ended_at IS NULL ORDER BY started_at, id")
    return [_call(r) for r in rows]


def _join(
    db: Database,
    call_id: str,
    kind: ParticipantKind,
    display_name: str,
    user_id: int | None,
    now: datetime,
) -> Participant:
    _get_call(db, call_id)
    participant_id = insert(
        db,
        """INSERT INTO call_participants (call_id, kind, user_id, display_name, joined_at)
           VALUES (?, ?, ?, ?, ?)""",
        (call_id, kind, user_id, display_name, to_db(now)),
    )
    return _get_participant(db, participant_id)


def _get_participant(db: Database, participant_id: int) -> Participant:
    return _participant(
        fetch_required(
            db,
            "SELECT * FROM call_participants WHERE id = ?",
            (participant_id,),
            f"participant {participant_id}",
        )
    )


def _leave(db: Database, participant_id: int, now: datetime) -> Participant:
    _get_participant(db, participant_id)
    execute(
        db,
        "UPDATE call_participants SET left_at = ? WHERE id = ? AND left_at IS NULL",
        (to_db(now), participant_id),
    )
    return _get_participant(db, participant_id)


def _participants(db: Database, call_id: str, present_only: bool) -> list[Participant]:
    extra = " AND left_at IS NULL" if present_only else ""
    rows = fetch_all(
        db,
        f"SELECT * FROM call_participants WHERE call_id = ?{extra} ORDER BY joined_at, id",
        (call_id,),
    )
    return [_participant(r) for r in rows]


async def start_call(
    store: Store, room_id: str, *, caller_id: str | None = None, now: datetime | None = None
) -> Call:
    """Open a call in a room; the room's current area is recorded for reports."""
    return await store.run(_start, room_id, caller_id, now or utcnow())


async def end_call(store: Store, call_id: str, *, now: datetime | None = None) -> Call:
    """End a call and mark everyone still present as left (idempotent)."""
    return await store.run(_end, call_id, now or utcnow())


async def get_call(store: Store, call_id: str) -> Call:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get_call, call_id)


async def active_call_for_room(store: Store, room_id: str) -> Call | None:
    """The room's unfinished call, if any (so a second provider does not start another)."""
    return await store.run(_active_for_room, room_id)


async def list_active_calls(store: Store) -> list[Call]:
    """Unfinished calls (restored by call actors after a restart)."""
    return await store.run(_list_active)


async def add_participant(
    store: Store,
    call_id: str,
    kind: ParticipantKind,
    display_name: str,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Participant:
    """Record someone joining. The participant limit is the call actor's rule, not storage's."""
    return await store.run(_join, call_id, kind, display_name, user_id, now or utcnow())


async def participant_left(
    store: Store, participant_id: int, *, now: datetime | None = None
) -> Participant:
    """Record someone leaving (idempotent: the first leave time stays)."""
    return await store.run(_leave, participant_id, now or utcnow())


async def list_participants(
    store: Store, call_id: str, *, present_only: bool = False
) -> list[Participant]:
    return await store.run(_participants, call_id, present_only)
