"""Rooms and the tokens that let people without an account into them.

A raw token exists only in the link or browser that holds it: the database keeps its SHA-256, so a
copy of the database opens no room. Each token also has a random ``id`` (a handle) so staff can
revoke or extend one invite without ever seeing the secret again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required, new_id
from storage.errors import NotFoundError, TokenRejectedError
from storage.times import from_db, opt_from_db, opt_to_db, to_db, utcnow

RoomKind = Literal["caller", "meeting", "user", "consult_now", "group"]
RoomState = Literal["open", "closed"]
TokenKind = Literal["caller", "invite", "guest"]

TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    kind: RoomKind
    area_id: int | None
    unit_id: int | None
    owner_user_id: int | None
    name: str
    state: RoomState
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RoomToken:
    """A token's stored facts; never the raw secret."""

    id: str
    room_id: str
    caller_id: str | None
    kind: TokenKind
    single_use: bool
    label: str
    created_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: hand ``raw`` to its holder once; only ``token`` is kept."""

    raw: str
    token: RoomToken


def hash_token(raw: str) -> str:
    """SHA-256 hex of a raw token: what the database stores and looks up."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _room(row: Row) -> Room:
    return Room(
        row["id"],
        row["kind"],
        row["area_id"],
        row["unit_id"],
        row["owner_user_id"],
        row["name"],
        row["state"],
        from_db(row["created_at"]),
        opt_from_db(row["closed_at"]),
    )


_TOKEN_COLUMNS = (
    "id, room_id, caller_id, kind, single_use, label, created_at, expires_at, used_at, revoked_at"
)


def _token(row: Row) -> RoomToken:
    return RoomToken(
        row["id"],
        row["room_id"],
        row["caller_id"],
        row["kind"],
        bool(row["single_use"]),
        row["label"],
        from_db(row["created_at"]),
        opt_from_db(row["expires_at"]),
        opt_from_db(row["used_at"]),
        opt_from_db(row["revoked_at"]),
    )


def create_room_sync(
    db: Database,
    kind: RoomKind,
    area_id: int | None,
    unit_id: int | None,
    owner_user_id: int | None,
    name: str,
    now: datetime,
) -> Room:
    """Sync form of `create_room`, for other repositories composing one transaction."""
    room_id = new_id()
    created = to_db(now)
    execute(
        db,
        """INSERT INTO rooms (id, kind, area_id, unit_id, owner_user_id, name, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (room_id, kind, area_id, unit_id, owner_user_id, name, created),
    )
    # The row as a read would give it (state and closed_at are the table's defaults), without
    # the read: every arrival creates a room (issue 17).
    return Room(
        room_id, kind, area_id, unit_id, owner_user_id, name, "open", from_db(created), None
    )


def get_room_sync(db: Database, room_id: str) -> Room:
    return _room(
        fetch_required(db, "SELECT * FROM rooms WHERE id = ?", (room_id,), f"room {room_id}")
    )


def _list_open(db: Database, area_id: int | None, kind: RoomKind | None) -> list[Room]:
    rows = fetch_all(
        db,
        """SELECT * FROM rooms WHERE state = 'open' AND (? IS NULL OR area_id = ?)
           AND (? IS NULL OR kind = ?) ORDER BY created_at, id""",
        (area_id, area_id, kind, kind),
    )
    return [_room(r) for r in rows]


def _close_room(db: Database, room_id: str, now: datetime) -> Room:
    room = get_room_sync(db, room_id)
    if room.state == "open":
        execute(
            db,
            "UPDATE rooms SET state = 'closed', closed_at = ? WHERE id = ?",
            (to_db(now), room_id),
        )
        execute(
            db,
            "UPDATE room_tokens SET revoked_at = ? WHERE room_id = ? AND revoked_at IS NULL",
            (to_db(now), room_id),
        )
    return get_room_sync(db, room_id)


def issue_token_sync(
    db: Database,
    room_id: str,
    kind: TokenKind,
    single_use: bool,
    expires_at: datetime | None,
    caller_id: str | None,
    label: str,
    now: datetime,
) -> IssuedToken:
    """Sync form of `issue_token`."""
    return issue_token_for(
        db, get_room_sync(db, room_id), kind, single_use, expires_at, caller_id, label, now
    )


def issue_token_for(
    db: Database,
    room: Room,
    kind: TokenKind,
    single_use: bool,
    expires_at: datetime | None,
    caller_id: str | None,
    label: str,
    now: datetime,
) -> IssuedToken:
    """`issue_token_sync` for a room this transaction has in hand (read, or just created)."""
    if room.state != "open":
        raise TokenRejectedError("room_closed")
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    token_id = new_id()
    created, expires = to_db(now), opt_to_db(expires_at)
    execute(
        db,
        """INSERT INTO room_tokens (id, token_hash, room_id, caller_id, kind, single_use, label,
                created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            token_id,
            hash_token(raw),
            room.id,
            caller_id,
            kind,
            int(single_use),
            label,
            created,
            expires,
        ),
    )
    token = RoomToken(
        token_id,
        room.id,
        caller_id,
        kind,
        single_use,
        label,
        from_db(created),
        opt_from_db(expires),
        None,
        None,
    )
    return IssuedToken(raw, token)


def _get_token(db: Database, token_id: str) -> RoomToken:
    return _token(
        fetch_required(
            db,
            f"SELECT {_TOKEN_COLUMNS} FROM room_tokens WHERE id = ?",
            (token_id,),
            f"token {token_id}",
        )
    )


def _claim(db: Database, token_hash: str, now: datetime) -> bool:
    """Use a token in one conditional UPDATE, the transaction's first statement.

    Whether this redemption wins is decided by the UPDATE's own WHERE (still unused, not revoked,
    not expired, room open), not by an earlier SELECT: a SELECT first would give each racing
    connection a read snapshot that can no longer upgrade to a write (``database is locked``), and
    the outcome would depend on timing. Writing first takes the write lock at once, so racers queue
    on the busy timeout and each then sees the winner's ``used_at``.
    """
    cursor = execute(
        db,
        """UPDATE room_tokens SET used_at = ?
           WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?)
             AND room_id IN (SELECT id FROM rooms WHERE state = 'open')""",
        (to_db(now), token_hash, to_db(now)),
    )
    return cursor.rowcount == 1


def _check(db: Database, raw: str, now: datetime, consume: bool) -> RoomToken:
    claimed = consume and _claim(db, hash_token(raw), now)
    row = fetch_one(
        db,
        f"""SELECT {", ".join("t." + c.strip() for c in _TOKEN_COLUMNS.split(","))},
                   r.state AS room_state
            FROM room_tokens t JOIN rooms r ON r.id = t.room_id WHERE t.token_hash = ?""",
        (hash_token(raw),),
    )
    if row is None:
        raise TokenRejectedError("unknown")
    token = _token(row)
    if row["room_state"] != "open":
        raise TokenRejectedError("room_closed")
    if token.revoked_at is not None:
        raise TokenRejectedError("revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRejectedError("expired")
    if token.single_use and token.used_at is not None and not claimed:
        raise TokenRejectedError("used")
    return token


def _list_tokens(db: Database, room_id: str) -> list[RoomToken]:
    rows = fetch_all(
        db,
        f"SELECT {_TOKEN_COLUMNS} FROM room_tokens WHERE room_id = ? ORDER BY created_at, id",
        (room_id,),
    )
    return [_token(r) for r in rows]


def _revoke_token(db: Database, token_id: str, now: datetime) -> RoomToken:
    _get_token(db, token_id)
    execute(
        db,
        "UPDATE room_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (to_db(now), token_id),
    )
    return _get_token(db, token_id)


def _extend_token(db: Database, token_id: str, expires_at: datetime) -> RoomToken:
    cursor = execute(
        db,
        "UPDATE room_tokens SET expires_at = ? WHERE id = ? AND revoked_at IS NULL",
        (to_db(expires_at), token_id),
    )
    if cursor.rowcount == 0:
        _get_token(db, token_id)  # NotFoundError if unknown
        raise TokenRejectedError("revoked")
    return _get_token(db, token_id)


async def create_room(
    store: Store,
    kind: RoomKind,
    *,
    area_id: int | None = None,
    unit_id: int | None = None,
    owner_user_id: int | None = None,
    name: str = "",
    now: datetime | None = None,
) -> Room:
    """A new open room with a random id (meeting rooms: unit_id + name; user rooms: owner)."""
    return await store.run(
        create_room_sync, kind, area_id, unit_id, owner_user_id, name, now or utcnow()
    )


async def get_room(store: Store, room_id: str) -> Room:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(get_room_sync, room_id)


async def find_room(store: Store, room_id: str) -> Room | None:
    """Like `get_room` but None for an unknown id."""
    try:
        return await store.run(get_room_sync, room_id)
    except NotFoundError:
        return None


async def list_open_rooms(
    store: Store, *, area_id: int | None = None, kind: RoomKind | None = None
) -> list[Room]:
    """Open rooms, oldest first (room actors restore themselves from this after a restart)."""
    return await store.run(_list_open, area_id, kind)


async def close_room(store: Store, room_id: str, *, now: datetime | None = None) -> Room:
    """Close a room and revoke every token into it, in one transaction (idempotent)."""
    return await store.run(_close_room, room_id, now or utcnow())


async def issue_token(
    store: Store,
    room_id: str,
    kind: TokenKind,
    *,
    single_use: bool,
    expires_at: datetime | None = None,
    caller_id: str | None = None,
    label: str = "",
    now: datetime | None = None,
) -> IssuedToken:
    """Mint a token into an open room; `TokenRejectedError('room_closed')` otherwise."""
    return await store.run(
        issue_token_sync,
        room_id,
        kind,
        single_use,
        expires_at,
        caller_id,
        label,
        now or utcnow(),
    )


async def check_token(store: Store, raw: str, *, now: datetime | None = None) -> RoomToken:
    """Validate without using up a single-use token (e.g. to render a landing page that link
    previewers may fetch). Raises `TokenRejectedError` with reason unknown | room_closed |
    revoked | expired | used."""
    return await store.read(_check, raw, now or utcnow(), False)


async def redeem_token(store: Store, raw: str, *, now: datetime | None = None) -> RoomToken:
    """Validate and use: records ``used_at`` on first use, so a single-use token works once.
    Atomic, so two browsers racing with one invite get one success. Same errors as
    `check_token`."""
    return await store.run(_check, raw, now or utcnow(), True)


async def list_tokens(store: Store, room_id: str) -> list[RoomToken]:
    return await store.run(_list_tokens, room_id)


async def revoke_token(store: Store, token_id: str, *, now: datetime | None = None) -> RoomToken:
    """Revoke one token by its handle (idempotent); `NotFoundError` if unknown."""
    return await store.run(_revoke_token, token_id, now or utcnow())


async def extend_token(store: Store, token_id: str, expires_at: datetime) -> RoomToken:
    """Move a token's expiry (Consult Now: 'the provider can extend the time')."""
    return await store.run(_extend_token, token_id, expires_at)
