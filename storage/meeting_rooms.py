"""Meeting rooms and user rooms: the permanent rooms of a unit and of one staff member.

Both are rows of ``rooms`` (kind ``meeting`` or ``user``), so their calls, participants and guest
tokens are the same rows as a caller room's. A meeting room adds a ``meeting_rooms`` row: its
integer id (what pages and room-scoped role grants name) and its guest link. The guest link is a
public link like a waiting area's slug, shown to the room's members so they can share it; it is
stored as it is, and rotating it replaces it and revokes every guest token issued through the old
one, so the old link admits nobody. Archiving is closing the ``rooms`` row: every token into it is
revoked in the same transaction and it never opens again.

Migration 4 (:data:`MIGRATION_SQL`) adds the table, one open user room per staff member, unique
names of open meeting rooms per unit, and the ``meeting_room`` scope of role grants.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required, insert
from storage.errors import ConflictError, NotFoundError
from storage.rooms import create_room_sync
from storage.times import from_db, opt_from_db, to_db, utcnow

#: Random bytes of a guest link: 128 bits, as unguessable as a waiting area's slug.
LINK_BYTES = 16
#: The name this migration is recorded under (``schema_migrations.name``).
MIGRATION_NAME = "meeting rooms and user rooms"

MIGRATION_SQL = """
CREATE TABLE meeting_rooms (
    id              INTEGER PRIMARY KEY,
    room_id         TEXT NOT NULL UNIQUE REFERENCES rooms(id),
    guest_link      TEXT NOT NULL UNIQUE,
    link_rotated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX rooms_one_user_room ON rooms (owner_user_id)
    WHERE kind = 'user' AND state = 'open';
CREATE UNIQUE INDEX rooms_meeting_names ON rooms (unit_id, name)
    WHERE kind = 'meeting' AND state = 'open';

CREATE TABLE role_grants_v2 (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN
                   ('org_admin', 'unit_admin', 'provider', 'referrer', 'meeting_member')),
    scope_type TEXT NOT NULL CHECK (scope_type IN ('org', 'unit', 'area', 'meeting_room')),
    scope_id   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, role, scope_type, scope_id)
);
INSERT INTO role_grants_v2 (id, user_id, role, scope_type, scope_id, created_at)
    SELECT id, user_id, role, scope_type, scope_id, created_at FROM role_grants;
DROP TABLE role_grants;
ALTER TABLE role_grants_v2 RENAME TO role_grants;
CREATE INDEX role_grants_by_scope ON role_grants (scope_type, scope_id);
"""
"""SQLite cannot change a CHECK in place, so ``role_grants`` is rebuilt with its rows and ids."""


@dataclass(frozen=True, slots=True)
class MeetingRoom:
    """A unit's meeting room. ``id`` is what pages and grants name; ``room_id`` its call's room."""

    id: int
    room_id: str
    unit_id: int
    org_id: int
    name: str
    guest_link: str
    archived: bool
    created_at: datetime
    link_rotated_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserRoom:
    """One staff member's own room, named after them."""

    room_id: str
    owner_user_id: int
    unit_id: int
    org_id: int
    name: str
    archived: bool
    created_at: datetime


_MEETING_SELECT = """
SELECT m.id, m.room_id, m.guest_link, m.link_rotated_at, r.unit_id, u.org_id, r.name, r.state,
       r.created_at, r.closed_at
FROM meeting_rooms m JOIN rooms r ON r.id = m.room_id JOIN units u ON u.id = r.unit_id
"""

_USER_SELECT = """
SELECT r.id, r.owner_user_id, r.unit_id, u.org_id, r.name, r.state, r.created_at
FROM rooms r JOIN units u ON u.id = r.unit_id WHERE r.kind = 'user'
"""


def _meeting(row: Row) -> MeetingRoom:
    return MeetingRoom(
        row["id"],
        row["room_id"],
        row["unit_id"],
        row["org_id"],
        row["name"],
        row["guest_link"],
        row["state"] != "open",
        from_db(row["created_at"]),
        from_db(row["link_rotated_at"]),
        opt_from_db(row["closed_at"]),
    )


def _user_room(row: Row) -> UserRoom:
    return UserRoom(
        row["id"],
        row["owner_user_id"],
        row["unit_id"],
        row["org_id"],
        row["name"],
        row["state"] != "open",
        from_db(row["created_at"]),
    )


def new_link() -> str:
    return secrets.token_urlsafe(LINK_BYTES)


# -- meeting rooms ---------------------------------------------------------------------------------


def _get_meeting(db: Database, meeting_id: int) -> MeetingRoom:
    return _meeting(
        fetch_required(
            db, _MEETING_SELECT + " WHERE m.id = ?", (meeting_id,), f"meeting room {meeting_id}"
        )
    )


def _create_meeting(db: Database, unit_id: int, name: str, now: datetime) -> MeetingRoom:
    fetch_required(db, "SELECT id FROM units WHERE id = ?", (unit_id,), f"unit {unit_id}")
    try:
        room = create_room_sync(db, "meeting", None, unit_id, None, name, now)
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"the unit already has a meeting room called {name!r}") from exc
    meeting_id = insert(
        db,
        "INSERT INTO meeting_rooms (room_id, guest_link, link_rotated_at) VALUES (?, ?, ?)",
        (room.id, new_link(), to_db(now)),
    )
    return _get_meeting(db, meeting_id)


def _open_meeting(db: Database, meeting_id: int) -> MeetingRoom:
    room = _get_meeting(db, meeting_id)
    if room.archived:
        raise NotFoundError(f"meeting room {meeting_id} is archived")
    return room


def _rename_meeting(db: Database, meeting_id: int, name: str) -> MeetingRoom:
    room = _open_meeting(db, meeting_id)
    try:
        execute(db, "UPDATE rooms SET name = ? WHERE id = ?", (name, room.room_id))
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"the unit already has a meeting room called {name!r}") from exc
    return _get_meeting(db, meeting_id)


def _close(db: Database, room_id: str, now: datetime) -> None:
    """Close the room and revoke every token into it (the same as ``rooms.close_room``)."""
    execute(
        db,
        "UPDATE rooms SET state = 'closed', closed_at = ? WHERE id = ? AND state = 'open'",
        (to_db(now), room_id),
    )
    execute(
        db,
        "UPDATE room_tokens SET revoked_at = ? WHERE room_id = ? AND revoked_at IS NULL",
        (to_db(now), room_id),
    )


def _archive_meeting(db: Database, meeting_id: int, now: datetime) -> MeetingRoom:
    room = _open_meeting(db, meeting_id)
    _close(db, room.room_id, now)
    return _get_meeting(db, meeting_id)


def _rotate(db: Database, meeting_id: int, now: datetime) -> MeetingRoom:
    room = _open_meeting(db, meeting_id)
    execute(
        db,
        "UPDATE meeting_rooms SET guest_link = ?, link_rotated_at = ? WHERE id = ?",
        (new_link(), to_db(now), meeting_id),
    )
    execute(
        db,
        """UPDATE room_tokens SET revoked_at = ?
           WHERE room_id = ? AND kind = 'guest' AND revoked_at IS NULL""",
        (to_db(now), room.room_id),
    )
    return _get_meeting(db, meeting_id)


def _by_link(db: Database, link: str) -> MeetingRoom | None:
    row = fetch_one(db, _MEETING_SELECT + " WHERE m.guest_link = ? AND r.state = 'open'", (link,))
    return None if row is None else _meeting(row)


def _by_room(db: Database, room_id: str) -> MeetingRoom | None:
    row = fetch_one(db, _MEETING_SELECT + " WHERE m.room_id = ?", (room_id,))
    return None if row is None else _meeting(row)


def _list_meetings(
    db: Database, unit_ids: tuple[int, ...] | None, include_archived: bool
) -> list[MeetingRoom]:
    rows = fetch_all(db, _MEETING_SELECT + " ORDER BY r.unit_id, r.name COLLATE NOCASE, m.id")
    rooms = [_meeting(r) for r in rows]
    return [
        r
        for r in rooms
        if (include_archived or not r.archived) and (unit_ids is None or r.unit_id in unit_ids)
    ]


async def create_meeting_room(
    store: Store, unit_id: int, name: str, *, now: datetime | None = None
) -> MeetingRoom:
    """A new meeting room of ``unit_id`` with a fresh guest link; `ConflictError` for a name the
    unit's open meeting rooms already use, `NotFoundError` for an unknown unit."""
    return await store.run(_create_meeting, unit_id, name, now or utcnow())


async def get_meeting_room(store: Store, meeting_id: int) -> MeetingRoom:
    """Archived rooms too; `NotFoundError` for an unknown id."""
    return await store.run(_get_meeting, meeting_id)


async def meeting_room_for_room(store: Store, room_id: str) -> MeetingRoom | None:
    """The meeting room whose call runs in ``rooms`` row ``room_id``, if it is one."""
    return await store.run(_by_room, room_id)


async def find_by_link(store: Store, link: str) -> MeetingRoom | None:
    """The open meeting room whose current guest link is ``link`` (a rotated one finds none)."""
    return await store.run(_by_link, link)


async def list_meeting_rooms(
    store: Store, *, unit_ids: tuple[int, ...] | None = None, include_archived: bool = False
) -> list[MeetingRoom]:
    """By unit, then name."""
    return await store.run(_list_meetings, unit_ids, include_archived)


async def rename_meeting_room(store: Store, meeting_id: int, name: str) -> MeetingRoom:
    """`NotFoundError` if unknown or archived, `ConflictError` for a name in use in the unit."""
    return await store.run(_rename_meeting, meeting_id, name)


async def archive_meeting_room(
    store: Store, meeting_id: int, *, now: datetime | None = None
) -> MeetingRoom:
    """Close it for good: every token into it is revoked; `NotFoundError` if already archived."""
    return await store.run(_archive_meeting, meeting_id, now or utcnow())


async def rotate_guest_link(
    store: Store, meeting_id: int, *, now: datetime | None = None
) -> MeetingRoom:
    """A new guest link; the old one finds nothing and the guest tokens it gave are revoked."""
    return await store.run(_rotate, meeting_id, now or utcnow())


# -- user rooms ------------------------------------------------------------------------------------


def _create_user_room(
    db: Database, owner_user_id: int, unit_id: int, name: str, now: datetime
) -> UserRoom:
    fetch_required(db, "SELECT id FROM units WHERE id = ?", (unit_id,), f"unit {unit_id}")
    fetch_required(
        db, "SELECT id FROM staff_users WHERE id = ?", (owner_user_id,), f"user {owner_user_id}"
    )
    try:
        room = create_room_sync(db, "user", None, unit_id, owner_user_id, name, now)
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"staff user {owner_user_id} already has a user room") from exc
    return _get_user_room(db, room.id)


def _get_user_room(db: Database, room_id: str) -> UserRoom:
    return _user_room(
        fetch_required(db, _USER_SELECT + " AND r.id = ?", (room_id,), f"user room {room_id}")
    )


def _user_room_of(db: Database, user_id: int) -> UserRoom | None:
    row = fetch_one(db, _USER_SELECT + " AND r.owner_user_id = ? AND r.state = 'open'", (user_id,))
    return None if row is None else _user_room(row)


def _list_user_rooms(db: Database, unit_ids: tuple[int, ...] | None) -> list[UserRoom]:
    rows = fetch_all(db, _USER_SELECT + " AND r.state = 'open' ORDER BY r.name COLLATE NOCASE")
    return [room for room in map(_user_room, rows) if unit_ids is None or room.unit_id in unit_ids]


def _archive_user_room(db: Database, room_id: str, now: datetime) -> UserRoom:
    room = _get_user_room(db, room_id)
    if room.archived:
        raise NotFoundError(f"user room {room_id} is archived")
    _close(db, room_id, now)
    return _get_user_room(db, room_id)


async def create_user_room(
    store: Store, owner_user_id: int, unit_id: int, name: str, *, now: datetime | None = None
) -> UserRoom:
    """The owner's room, recorded under the unit whose administrator made it; `ConflictError` if
    the owner has an open one already, `NotFoundError` for an unknown user or unit."""
    return await store.run(_create_user_room, owner_user_id, unit_id, name, now or utcnow())


async def get_user_room(store: Store, room_id: str) -> UserRoom:
    """Archived ones too; `NotFoundError` for an id that is not a user room."""
    return await store.run(_get_user_room, room_id)


async def user_room_of(store: Store, user_id: int) -> UserRoom | None:
    """The staff member's open user room, if an administrator made one."""
    return await store.run(_user_room_of, user_id)


async def list_user_rooms(
    store: Store, *, unit_ids: tuple[int, ...] | None = None
) -> list[UserRoom]:
    """Open user rooms, by name."""
    return await store.run(_list_user_rooms, unit_ids)


async def archive_user_room(store: Store, room_id: str, *, now: datetime | None = None) -> UserRoom:
    """Close it for good (tokens revoked); `NotFoundError` if unknown or archived already."""
    return await store.run(_archive_user_room, room_id, now or utcnow())


def _revoke_guests(db: Database, room_id: str, now: datetime) -> int:
    cursor = execute(
        db,
        """UPDATE room_tokens SET revoked_at = ?
           WHERE room_id = ? AND kind IN ('guest', 'invite') AND revoked_at IS NULL""",
        (to_db(now), room_id),
    )
    return cursor.rowcount


async def revoke_guests(store: Store, room_id: str, *, now: datetime | None = None) -> int:
    """Revoke the guest tokens and invitations into a room that stays (its call has ended)."""
    return await store.run(_revoke_guests, room_id, now or utcnow())
