"""Group consultations (issue 12): sessions, their moderators, registrations and participants.

A session is a ``rooms`` row of kind ``group`` (so its call record, participant tokens and the
usage report's calls by kind are the same rows as every other call's) plus a ``group_sessions``
row: its unit, title, start, capacity (at most 60), privacy options, lock, state (scheduled ->
running -> ended) and its link. The link is shared with every registrant, shown again whenever
staff share it and printed on leaflets, so like a waiting area's slug and a meeting room's guest
link it is stored as it is (128 random bits); rotating it replaces it, and a rotated link finds
nothing. Each arrival gets a participant token of their own (``room_tokens``, hashed, kind
``guest``) and a ``group_participants`` row, for the moderator's list, the audit and the report.

What must not race is decided here, in one transaction each: an arrival is refused when the
session is locked or ended (:class:`ArrivalRejected`), and admitting people is one conditional
UPDATE that counts the participants already in (:class:`GroupFull`, nobody admitted), so the 61st
never gets in however many admissions race. Ending closes the room and revokes every token in the
same transaction.

Migration 9 (:data:`MIGRATION_SQL`) adds the four tables.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required, insert, new_id
from storage.errors import NotFoundError
from storage.rooms import create_room_sync, hash_token
from storage.times import from_db, opt_from_db, to_db, utcnow

#: The name this migration is recorded under (``schema_migrations.name``).
MIGRATION_NAME = "group consultations"
#: Random bytes of a session link: 128 bits, as a waiting area's slug.
LINK_BYTES = 16
#: Seed 002: "up to 60 participants".
MAX_CAPACITY = 60
#: Most arrivals one session takes (each is a participant row and a token): a link that leaked
#: to a script fills no disk. Ten times the largest session.
MAX_ARRIVALS = 600
#: Bytes of a participant token's secret (as ``storage.rooms`` tokens).
TOKEN_BYTES = 32

MIGRATION_SQL = """
CREATE TABLE group_sessions (
    id                    INTEGER PRIMARY KEY,
    room_id               TEXT NOT NULL UNIQUE REFERENCES rooms(id),
    unit_id               INTEGER NOT NULL REFERENCES units(id),
    title                 TEXT NOT NULL,
    starts_at             TEXT NOT NULL,
    capacity              INTEGER NOT NULL CHECK (capacity BETWEEN 1 AND 60),
    link                  TEXT NOT NULL UNIQUE,
    link_rotated_at       TEXT NOT NULL,
    first_names_only      INTEGER NOT NULL DEFAULT 0 CHECK (first_names_only IN (0, 1)),
    hide_participant_list INTEGER NOT NULL DEFAULT 0 CHECK (hide_participant_list IN (0, 1)),
    no_private_chat       INTEGER NOT NULL DEFAULT 0 CHECK (no_private_chat IN (0, 1)),
    locked                INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    state                 TEXT NOT NULL DEFAULT 'scheduled'
                              CHECK (state IN ('scheduled', 'running', 'ended')),
    created_by            INTEGER REFERENCES staff_users(id),
    created_at            TEXT NOT NULL,
    started_at            TEXT,
    ended_at              TEXT,
    end_reason            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX group_sessions_by_unit ON group_sessions (unit_id, state, starts_at);

CREATE TABLE group_moderators (
    session_id INTEGER NOT NULL REFERENCES group_sessions(id),
    user_id    INTEGER NOT NULL REFERENCES staff_users(id),
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX group_moderators_by_user ON group_moderators (user_id);

CREATE TABLE group_registrations (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES group_sessions(id),
    name       TEXT NOT NULL,
    contact    TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX group_registrations_by_session ON group_registrations (session_id);

CREATE TABLE group_participants (
    id                TEXT PRIMARY KEY,
    session_id        INTEGER NOT NULL REFERENCES group_sessions(id),
    token_id          TEXT NOT NULL UNIQUE REFERENCES room_tokens(id),
    name              TEXT NOT NULL,
    contact           TEXT NOT NULL DEFAULT '',
    registration_id   INTEGER REFERENCES group_registrations(id),
    arrived_at        TEXT NOT NULL,
    admitted          INTEGER NOT NULL DEFAULT 0 CHECK (admitted IN (0, 1)),
    first_admitted_at TEXT,
    present_since     TEXT,
    seconds_present   REAL NOT NULL DEFAULT 0,
    left_at           TEXT,
    removed_at        TEXT
);
CREATE INDEX group_participants_by_session ON group_participants (session_id, arrived_at);
"""


@dataclass(frozen=True, slots=True)
class GroupSession:
    id: int
    room_id: str
    unit_id: int
    org_id: int
    unit_name: str
    title: str
    starts_at: datetime
    capacity: int
    link: str
    first_names_only: bool
    hide_participant_list: bool
    no_private_chat: bool
    locked: bool
    #: scheduled | running | ended
    state: str
    moderator_ids: tuple[int, ...]
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str


@dataclass(frozen=True, slots=True)
class Registration:
    id: int
    session_id: int
    name: str
    contact: str
    created_at: datetime
    arrived: bool


@dataclass(frozen=True, slots=True)
class GroupParticipant:
    id: str
    session_id: int
    token_id: str
    name: str
    contact: str
    registration_id: int | None
    arrived_at: datetime
    admitted: bool
    first_admitted_at: datetime | None
    seconds_present: float
    left_at: datetime | None
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Arrival:
    """A new participant and their token: hand ``token`` (``<room id>.<secret>``) over once."""

    session: GroupSession
    participant: GroupParticipant
    token: str


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """An organisation's group sessions that started in a period (the usage report)."""

    sessions: int
    participants: int
    #: Seconds each session ran (start to end; a running one counts up to ``until``).
    session_seconds: tuple[float, ...]
    #: Seconds each participant was in a call (admitted and connected), summed over their visits.
    participant_seconds: tuple[float, ...]


class ArrivalRejected(Exception):
    """``reason``: ``unknown`` (no such link, or rotated), ``locked``, ``ended`` or ``full``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GroupFull(Exception):
    """Admitting would put more than the capacity in: ``places_left`` places are left."""

    def __init__(self, places_left: int) -> None:
        super().__init__(f"{places_left} places left")
        self.places_left = places_left


_SESSION_SELECT = """
SELECT g.*, u.org_id AS org_id, u.name AS unit_name
FROM group_sessions g JOIN units u ON u.id = g.unit_id
"""


def _session(db: Database, row: Row) -> GroupSession:
    moderators = fetch_all(
        db,
        "SELECT user_id FROM group_moderators WHERE session_id = ? ORDER BY user_id",
        (row["id"],),
    )
    return GroupSession(
        id=row["id"],
        room_id=row["room_id"],
        unit_id=row["unit_id"],
        org_id=row["org_id"],
        unit_name=row["unit_name"],
        title=row["title"],
        starts_at=from_db(row["starts_at"]),
        capacity=row["capacity"],
        link=row["link"],
        first_names_only=bool(row["first_names_only"]),
        hide_participant_list=bool(row["hide_participant_list"]),
        no_private_chat=bool(row["no_private_chat"]),
        locked=bool(row["locked"]),
        state=row["state"],
        moderator_ids=tuple(m["user_id"] for m in moderators),
        created_by=row["created_by"],
        created_at=from_db(row["created_at"]),
        started_at=opt_from_db(row["started_at"]),
        ended_at=opt_from_db(row["ended_at"]),
        end_reason=row["end_reason"],
    )


def _participant(row: Row) -> GroupParticipant:
    return GroupParticipant(
        id=row["id"],
        session_id=row["session_id"],
        token_id=row["token_id"],
        name=row["name"],
        contact=row["contact"],
        registration_id=row["registration_id"],
        arrived_at=from_db(row["arrived_at"]),
        admitted=bool(row["admitted"]),
        first_admitted_at=opt_from_db(row["first_admitted_at"]),
        seconds_present=row["seconds_present"],
        left_at=opt_from_db(row["left_at"]),
        removed_at=opt_from_db(row["removed_at"]),
    )


def new_link() -> str:
    return secrets.token_urlsafe(LINK_BYTES)


# -- sessions ---------------------------------------------------------------------------------------


def _get(db: Database, session_id: int) -> GroupSession:
    row = fetch_required(
        db, _SESSION_SELECT + " WHERE g.id = ?", (session_id,), f"group session {session_id}"
    )
    return _session(db, row)


def _create(
    db: Database,
    unit_id: int,
    title: str,
    starts_at: datetime,
    capacity: int,
    moderator_ids: tuple[int, ...],
    privacy: tuple[bool, bool, bool],
    registrants: tuple[tuple[str, str], ...],
    created_by: int | None,
    now: datetime,
) -> GroupSession:
    fetch_required(db, "SELECT id FROM units WHERE id = ?", (unit_id,), f"unit {unit_id}")
    if not 1 <= capacity <= MAX_CAPACITY:
        raise ValueError(f"a group session holds 1 to {MAX_CAPACITY} participants")
    room = create_room_sync(db, "group", None, unit_id, None, title, now)
    first_names, hidden, no_private = privacy
    session_id = insert(
        db,
        """INSERT INTO group_sessions (room_id, unit_id, title, starts_at, capacity, link,
               link_rotated_at, first_names_only, hide_participant_list, no_private_chat,
               created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            room.id,
            unit_id,
            title,
            to_db(starts_at),
            capacity,
            new_link(),
            to_db(now),
            int(first_names),
            int(hidden),
            int(no_private),
            created_by,
            to_db(now),
        ),
    )
    for user_id in sorted(set(moderator_ids)):
        execute(
            db,
            "INSERT INTO group_moderators (session_id, user_id) VALUES (?, ?)",
            (session_id, user_id),
        )
    _register(db, session_id, registrants, now)
    return _get(db, session_id)


def _by_room(db: Database, room_id: str) -> GroupSession | None:
    row = fetch_one(db, _SESSION_SELECT + " WHERE g.room_id = ?", (room_id,))
    return None if row is None else _session(db, row)


def _by_link(db: Database, link: str) -> GroupSession | None:
    row = fetch_one(db, _SESSION_SELECT + " WHERE g.link = ?", (link,))
    return None if row is None else _session(db, row)


def _list(
    db: Database, org_id: int, unit_id: int | None, include_ended: bool
) -> list[GroupSession]:
    rows = fetch_all(
        db,
        _SESSION_SELECT
        + """ WHERE u.org_id = :org AND (:unit IS NULL OR g.unit_id = :unit)
                AND (:ended = 1 OR g.state != 'ended')
              ORDER BY g.state = 'ended', g.starts_at, g.id""",
        {"org": org_id, "unit": unit_id, "ended": int(include_ended)},
    )
    return [_session(db, r) for r in rows]


def _list_open(db: Database) -> list[GroupSession]:
    rows = fetch_all(db, _SESSION_SELECT + " WHERE g.state != 'ended' ORDER BY g.id")
    return [_session(db, r) for r in rows]


def _open_session(db: Database, session_id: int) -> GroupSession:
    session = _get(db, session_id)
    if session.state == "ended":
        raise NotFoundError(f"group session {session_id} has ended")
    return session


def _rotate(db: Database, session_id: int, now: datetime) -> GroupSession:
    _open_session(db, session_id)
    execute(
        db,
        "UPDATE group_sessions SET link = ?, link_rotated_at = ? WHERE id = ?",
        (new_link(), to_db(now), session_id),
    )
    return _get(db, session_id)


def _set_locked(db: Database, session_id: int, locked: bool) -> GroupSession:
    execute(
        db,
        "UPDATE group_sessions SET locked = ? WHERE id = ? AND state != 'ended'",
        (int(locked), session_id),
    )
    return _get(db, session_id)


def _start(db: Database, session_id: int, now: datetime) -> tuple[GroupSession, bool]:
    cursor = execute(
        db,
        "UPDATE group_sessions SET state = 'running', started_at = ? "
        "WHERE id = ? AND state = 'scheduled'",
        (to_db(now), session_id),
    )
    return _get(db, session_id), cursor.rowcount == 1


def _end(db: Database, session_id: int, reason: str, now: datetime) -> tuple[GroupSession, bool]:
    stamp = to_db(now)
    cursor = execute(
        db,
        "UPDATE group_sessions SET state = 'ended', ended_at = ?, end_reason = ?, locked = 1 "
        "WHERE id = ? AND state != 'ended'",
        (stamp, reason, session_id),
    )
    session = _get(db, session_id)
    if cursor.rowcount == 1:
        _close_presence(db, session_id, now)
        execute(
            db,
            "UPDATE rooms SET state = 'closed', closed_at = ? WHERE id = ? AND state = 'open'",
            (stamp, session.room_id),
        )
        execute(
            db,
            "UPDATE room_tokens SET revoked_at = ? WHERE room_id = ? AND revoked_at IS NULL",
            (stamp, session.room_id),
        )
    return session, cursor.rowcount == 1


def _close_presence(db: Database, session_id: int, now: datetime) -> None:
    for row in fetch_all(
        db,
        "SELECT id, present_since FROM group_participants "
        "WHERE session_id = ? AND present_since IS NOT NULL",
        (session_id,),
    ):
        _leave_row(db, row["id"], row["present_since"], now)


# -- registrations ----------------------------------------------------------------------------------


def _register(
    db: Database, session_id: int, registrants: tuple[tuple[str, str], ...], now: datetime
) -> None:
    for name, contact in registrants:
        insert(
            db,
            "INSERT INTO group_registrations (session_id, name, contact, created_at) "
            "VALUES (?, ?, ?, ?)",
            (session_id, name, contact, to_db(now)),
        )


def _add_registrations(
    db: Database, session_id: int, registrants: tuple[tuple[str, str], ...], now: datetime
) -> GroupSession:
    session = _open_session(db, session_id)
    _register(db, session_id, registrants, now)
    return session


def _remove_registration(db: Database, session_id: int, registration_id: int) -> None:
    """Gone from the list; a participant who arrived under it keeps their own row."""
    _open_session(db, session_id)
    fetch_required(
        db,
        "SELECT id FROM group_registrations WHERE id = ? AND session_id = ?",
        (registration_id, session_id),
        f"registration {registration_id}",
    )
    execute(
        db,
        "UPDATE group_participants SET registration_id = NULL WHERE registration_id = ?",
        (registration_id,),
    )
    execute(db, "DELETE FROM group_registrations WHERE id = ?", (registration_id,))


def _registrations(db: Database, session_id: int) -> list[Registration]:
    rows = fetch_all(
        db,
        """SELECT r.*, EXISTS (SELECT 1 FROM group_participants p
                                WHERE p.registration_id = r.id) AS arrived
           FROM group_registrations r WHERE r.session_id = ? ORDER BY r.id""",
        (session_id,),
    )
    return [
        Registration(
            r["id"],
            r["session_id"],
            r["name"],
            r["contact"],
            from_db(r["created_at"]),
            bool(r["arrived"]),
        )
        for r in rows
    ]


# -- participants -----------------------------------------------------------------------------------


def _arrive(
    db: Database, link: str, name: str, contact: str, now: datetime, max_arrivals: int
) -> Arrival:
    session = _by_link(db, link)
    if session is None:
        raise ArrivalRejected("unknown")
    if session.state == "ended":
        raise ArrivalRejected("ended")
    if session.locked:
        raise ArrivalRejected("locked")
    count = fetch_one(
        db, "SELECT COUNT(*) AS n FROM group_participants WHERE session_id = ?", (session.id,)
    )
    if count is not None and int(count["n"]) >= max_arrivals:
        raise ArrivalRejected("full")
    stamp = to_db(now)
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    token_id = new_id()
    execute(
        db,
        """INSERT INTO room_tokens (id, token_hash, room_id, kind, single_use, label, created_at)
           VALUES (?, ?, ?, 'guest', 0, ?, ?)""",
        (token_id, hash_token(raw), session.room_id, name, stamp),
    )
    registration = fetch_one(
        db,
        """SELECT r.id FROM group_registrations r WHERE r.session_id = ?
             AND lower(trim(r.name)) = lower(trim(?))
             AND NOT EXISTS (SELECT 1 FROM group_participants p WHERE p.registration_id = r.id)
           ORDER BY r.id LIMIT 1""",
        (session.id, name),
    )
    participant_id = new_id()
    execute(
        db,
        """INSERT INTO group_participants (id, session_id, token_id, name, contact,
               registration_id, arrived_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            participant_id,
            session.id,
            token_id,
            name,
            contact,
            None if registration is None else registration["id"],
            stamp,
        ),
    )
    return Arrival(session, _get_participant(db, participant_id), f"{session.room_id}.{raw}")


def _get_participant(db: Database, participant_id: str) -> GroupParticipant:
    return _participant(
        fetch_required(
            db,
            "SELECT * FROM group_participants WHERE id = ?",
            (participant_id,),
            f"participant {participant_id}",
        )
    )


def _by_token(db: Database, room_id: str, raw: str) -> GroupParticipant | None:
    """The participant holding this token of this room, if it is valid (not revoked)."""
    row = fetch_one(
        db,
        """SELECT p.* FROM room_tokens t JOIN group_participants p ON p.token_id = t.id
           JOIN rooms r ON r.id = t.room_id
           WHERE t.token_hash = ? AND t.room_id = ? AND t.kind = 'guest'
             AND t.revoked_at IS NULL AND r.state = 'open' AND p.removed_at IS NULL""",
        (hash_token(raw), room_id),
    )
    return None if row is None else _participant(row)


def _participants(db: Database, session_id: int) -> list[GroupParticipant]:
    rows = fetch_all(
        db,
        "SELECT * FROM group_participants WHERE session_id = ? ORDER BY arrived_at, id",
        (session_id,),
    )
    return [_participant(r) for r in rows]


def _admit(
    db: Database, session_id: int, participant_ids: tuple[str, ...], now: datetime
) -> list[str]:
    """Admit these participants, all or none: the count of those already in and the capacity
    are read and written in this one transaction. Returns the ids newly admitted."""
    session = _get(db, session_id)
    inside = fetch_one(
        db,
        "SELECT COUNT(*) AS n FROM group_participants "
        "WHERE session_id = ? AND admitted = 1 AND removed_at IS NULL",
        (session_id,),
    )
    count = 0 if inside is None else int(inside["n"])
    new = [
        row["id"]
        for pid in dict.fromkeys(participant_ids)
        if (
            row := fetch_one(
                db,
                "SELECT id FROM group_participants WHERE id = ? AND session_id = ? "
                "AND admitted = 0 AND removed_at IS NULL",
                (pid, session_id),
            )
        )
        is not None
    ]
    if count + len(new) > session.capacity:
        raise GroupFull(max(session.capacity - count, 0))
    stamp = to_db(now)
    for pid in new:
        execute(
            db,
            "UPDATE group_participants SET admitted = 1, "
            "first_admitted_at = COALESCE(first_admitted_at, ?) WHERE id = ? AND admitted = 0",
            (stamp, pid),
        )
    return new


def _send_back(db: Database, participant_id: str, now: datetime) -> GroupParticipant:
    row = fetch_required(
        db,
        "SELECT present_since FROM group_participants WHERE id = ?",
        (participant_id,),
        f"participant {participant_id}",
    )
    if row["present_since"] is not None:
        _leave_row(db, participant_id, row["present_since"], now)
    execute(db, "UPDATE group_participants SET admitted = 0 WHERE id = ?", (participant_id,))
    return _get_participant(db, participant_id)


def _remove(db: Database, participant_id: str, now: datetime) -> GroupParticipant:
    participant = _send_back(db, participant_id, now)
    stamp = to_db(now)
    execute(
        db,
        "UPDATE group_participants SET removed_at = COALESCE(removed_at, ?) WHERE id = ?",
        (stamp, participant_id),
    )
    execute(
        db,
        "UPDATE room_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (stamp, participant.token_id),
    )
    return _get_participant(db, participant_id)


def _entered(db: Database, participant_id: str, now: datetime) -> None:
    execute(
        db,
        "UPDATE group_participants SET present_since = ? WHERE id = ? AND present_since IS NULL",
        (to_db(now), participant_id),
    )


def _leave_row(db: Database, participant_id: str, since: str, now: datetime) -> None:
    seconds = max((now - from_db(since)).total_seconds(), 0.0)
    execute(
        db,
        "UPDATE group_participants SET seconds_present = seconds_present + ?, "
        "present_since = NULL, left_at = ? WHERE id = ? AND present_since = ?",
        (seconds, to_db(now), participant_id, since),
    )


def _left(db: Database, participant_id: str, now: datetime) -> None:
    row = fetch_one(
        db, "SELECT present_since FROM group_participants WHERE id = ?", (participant_id,)
    )
    if row is not None and row["present_since"] is not None:
        _leave_row(db, participant_id, row["present_since"], now)


# -- the usage report -------------------------------------------------------------------------------


def _usage(db: Database, org_id: int, since: datetime, until: datetime) -> GroupUsage:
    sessions = fetch_all(
        db,
        """SELECT g.id, g.started_at, g.ended_at FROM group_sessions g
           JOIN units u ON u.id = g.unit_id
           WHERE u.org_id = ? AND g.started_at >= ? AND g.started_at < ?""",
        (org_id, to_db(since), to_db(until)),
    )
    session_seconds = tuple(
        max(
            ((opt_from_db(s["ended_at"]) or until) - from_db(s["started_at"])).total_seconds(),
            0.0,
        )
        for s in sessions
    )
    ids = [s["id"] for s in sessions]
    rows: list[Row] = []
    if ids:
        marks = ", ".join("?" for _ in ids)
        rows = fetch_all(
            db,
            f"""SELECT seconds_present, present_since FROM group_participants
                WHERE session_id IN ({marks}) AND first_admitted_at IS NOT NULL""",
            ids,
        )
    participant_seconds = tuple(
        r["seconds_present"]
        + (
            max((until - from_db(r["present_since"])).total_seconds(), 0.0)
            if r["present_since"] is not None
            else 0.0
        )
        for r in rows
    )
    return GroupUsage(len(sessions), len(rows), session_seconds, participant_seconds)


# -- the async front --------------------------------------------------------------------------------


async def create_session(
    store: Store,
    *,
    unit_id: int,
    title: str,
    starts_at: datetime,
    capacity: int,
    moderator_ids: tuple[int, ...],
    first_names_only: bool = False,
    hide_participant_list: bool = False,
    no_private_chat: bool = False,
    registrants: tuple[tuple[str, str], ...] = (),
    created_by: int | None = None,
    now: datetime | None = None,
) -> GroupSession:
    """A new session, its room, moderators and registrations, in one transaction."""
    return await store.run(
        _create,
        unit_id,
        title,
        starts_at,
        capacity,
        moderator_ids,
        (first_names_only, hide_participant_list, no_private_chat),
        registrants,
        created_by,
        now or utcnow(),
    )


async def get_session(store: Store, session_id: int) -> GroupSession:
    """`NotFoundError` if there is none."""
    return await store.run(_get, session_id)


async def session_for_room(store: Store, room_id: str) -> GroupSession | None:
    return await store.run(_by_room, room_id)


async def session_for_link(store: Store, link: str) -> GroupSession | None:
    """The session behind a link (a rotated link finds nothing)."""
    return await store.run(_by_link, link)


async def list_sessions(
    store: Store, org_id: int, *, unit_id: int | None = None, include_ended: bool = False
) -> list[GroupSession]:
    """The organisation's sessions (one unit's), not ended first, soonest first."""
    return await store.run(_list, org_id, unit_id, include_ended)


async def list_open_sessions(store: Store) -> list[GroupSession]:
    """Every session not ended (their calls are started again after a restart)."""
    return await store.run(_list_open)


async def rotate_link(
    store: Store, session_id: int, *, now: datetime | None = None
) -> GroupSession:
    """A new link; the old one finds nothing. `NotFoundError` for an ended session."""
    return await store.run(_rotate, session_id, now or utcnow())


async def set_locked(store: Store, session_id: int, locked: bool) -> GroupSession:
    return await store.run(_set_locked, session_id, locked)


async def start_session(
    store: Store, session_id: int, *, now: datetime | None = None
) -> tuple[GroupSession, bool]:
    """Mark it running (once: the second value says whether this call did it)."""
    return await store.run(_start, session_id, now or utcnow())


async def end_session(
    store: Store, session_id: int, reason: str, *, now: datetime | None = None
) -> tuple[GroupSession, bool]:
    """End it for good (once): the room closes, every token is revoked, presence is closed."""
    return await store.run(_end, session_id, reason, now or utcnow())


async def add_registrations(
    store: Store,
    session_id: int,
    registrants: tuple[tuple[str, str], ...],
    *,
    now: datetime | None = None,
) -> GroupSession:
    return await store.run(_add_registrations, session_id, registrants, now or utcnow())


async def remove_registration(store: Store, session_id: int, registration_id: int) -> None:
    """`NotFoundError` if the session has no such registration (or has ended)."""
    await store.run(_remove_registration, session_id, registration_id)


async def list_registrations(store: Store, session_id: int) -> list[Registration]:
    return await store.run(_registrations, session_id)


async def arrive(
    store: Store,
    link: str,
    name: str,
    contact: str = "",
    *,
    now: datetime | None = None,
    max_arrivals: int = MAX_ARRIVALS,
) -> Arrival:
    """A participant and their token, unless the session is unknown, locked, ended or has had
    ``max_arrivals`` already (:class:`ArrivalRejected`: ``full``); matched to a registration of
    the same name if one is free."""
    return await store.run(_arrive, link, name, contact, now or utcnow(), max_arrivals)


async def get_participant(store: Store, participant_id: str) -> GroupParticipant:
    return await store.run(_get_participant, participant_id)


async def participant_for_token(store: Store, room_id: str, raw: str) -> GroupParticipant | None:
    """The participant behind a token's secret in this room (None if unknown, revoked,
    removed or the room closed)."""
    return await store.run(_by_token, room_id, raw)


async def list_participants(store: Store, session_id: int) -> list[GroupParticipant]:
    return await store.run(_participants, session_id)


async def admit(
    store: Store, session_id: int, participant_ids: tuple[str, ...], *, now: datetime | None = None
) -> list[str]:
    """Admit all of them or none (:class:`GroupFull`); the ids newly admitted."""
    return await store.run(_admit, session_id, participant_ids, now or utcnow())


async def send_back(
    store: Store, participant_id: str, *, now: datetime | None = None
) -> GroupParticipant:
    return await store.run(_send_back, participant_id, now or utcnow())


async def remove_participant(
    store: Store, participant_id: str, *, now: datetime | None = None
) -> GroupParticipant:
    """Out for good: not admitted, their token revoked."""
    return await store.run(_remove, participant_id, now or utcnow())


async def participant_entered(
    store: Store, participant_id: str, *, now: datetime | None = None
) -> None:
    """They are in the call (the first of their tabs): their time in starts counting."""
    await store.run(_entered, participant_id, now or utcnow())


async def participant_left(
    store: Store, participant_id: str, *, now: datetime | None = None
) -> None:
    """Their last tab left the call: the time since they entered is added to theirs."""
    await store.run(_left, participant_id, now or utcnow())


async def usage(store: Store, org_id: int, since: datetime, until: datetime) -> GroupUsage:
    """Sessions that started in ``[since, until)``, their participants and durations."""
    return await store.run(_usage, org_id, since, until)
