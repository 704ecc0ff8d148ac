"""Server-side web sessions for staff: the cookie carries a random id, the database only its hash.

Storing the SHA-256 of the id means a copy of the database does not let anyone sign in as staff.

Two limits end a session: the absolute one (:data:`DEFAULT_SESSION_TTL` after sign-in, however busy)
and the idle one (:data:`DEFAULT_IDLE_TIMEOUT` without a page request or websocket activity).
``expires_at`` holds whichever comes first: sign-in sets it, :func:`touch_session` slides it on
activity, never past ``created_at`` plus the absolute limit. So a valid session is still simply
"unrevoked, ``expires_at`` in the future, user active", and purging needs nothing new.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required
from storage.times import from_db, opt_from_db, to_db, utcnow

SESSION_ID_BYTES = 32
CSRF_TOKEN_BYTES = 32
DEFAULT_SESSION_TTL = timedelta(hours=12)
#: A staff session nobody used for this long is over. An hour: a clinic screen left unattended
#: over a lunch break signs out, a provider between two patients does not. Heartbeats of an open
#: dashboard do not count as use; pages and websocket requests do.
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=60)
#: Activity moves ``expires_at`` only when that gains more than this: one write a minute per
#: session at most, not one per page request.
TOUCH_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class WebSession:
    id_hash: str
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewSession:
    """A created session. ``session_id`` goes into the cookie and is never stored."""

    session_id: str
    session: WebSession


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session(row: Row) -> WebSession:
    return WebSession(
        row["id_hash"],
        row["user_id"],
        row["csrf_token"],
        from_db(row["created_at"]),
        from_db(row["expires_at"]),
        opt_from_db(row["revoked_at"]),
    )


def _create(
    db: Database, user_id: int, ttl: timedelta, idle: timedelta, now: datetime
) -> NewSession:
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    id_hash = hash_session_id(session_id)
    execute(
        db,
        """INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at)
           VALUES (?, ?, ?, ?, ?)""",
        (
            id_hash,
            user_id,
            secrets.token_urlsafe(CSRF_TOKEN_BYTES),
            to_db(now),
            to_db(now + min(ttl, idle)),
        ),
    )
    row = fetch_required(db, "SELECT * FROM web_sessions WHERE id_hash = ?", (id_hash,), "session")
    return NewSession(session_id, _session(row))


def _get_valid(db: Database, session_id: str, now: datetime) -> WebSession | None:
    row = fetch_one(
        db,
        """SELECT w.* FROM web_sessions w JOIN staff_users s ON s.id = w.user_id
           WHERE w.id_hash = ? AND w.revoked_at IS NULL AND w.expires_at > ? AND s.active = 1""",
        (hash_session_id(session_id), to_db(now)),
    )
    return None if row is None else _session(row)


def _touch(
    db: Database, session_id: str, ttl: timedelta, idle: timedelta, now: datetime
) -> WebSession | None:
    session = _get_valid(db, session_id, now)
    if session is None:
        return None
    slid = min(now + idle, session.created_at + ttl)
    if abs(slid - session.expires_at) <= TOUCH_GRANULARITY:
        return session
    execute(
        db,
        "UPDATE web_sessions SET expires_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
        (to_db(slid), session.id_hash),
    )
    return WebSession(
        session.id_hash,
        session.user_id,
        session.csrf_token,
        session.created_at,
        slid,
        session.revoked_at,
    )


def _valid_hashes(db: Database, id_hashes: list[str], now: datetime) -> set[str]:
    if not id_hashes:
        return set()
    marks = ", ".join("?" for _ in id_hashes)
    rows = fetch_all(
        db,
        f"""SELECT w.id_hash FROM web_sessions w JOIN staff_users s ON s.id = w.user_id
            WHERE w.id_hash IN ({marks}) AND w.revoked_at IS NULL AND w.expires_at > ?
            AND s.active = 1""",
        (*id_hashes, to_db(now)),
    )
    return {row["id_hash"] for row in rows}


def _revoke(db: Database, session_id: str, now: datetime) -> bool:
    cursor = execute(
        db,
        "UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
        (to_db(now), hash_session_id(session_id)),
    )
    return cursor.rowcount > 0


def _revoke_all(db: Database, user_id: int, now: datetime) -> int:
    cursor = execute(
        db,
        "UPDATE web_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        (to_db(now), user_id),
    )
    return cursor.rowcount


def _purge(db: Database, now: datetime) -> int:
    cursor = execute(
        db,
        "DELETE FROM web_sessions WHERE expires_at <= ? OR revoked_at IS NOT NULL",
        (to_db(now),),
    )
    return cursor.rowcount


async def create_session(
    store: Store,
    user_id: int,
    *,
    ttl: timedelta = DEFAULT_SESSION_TTL,
    idle: timedelta = DEFAULT_IDLE_TIMEOUT,
    now: datetime | None = None,
) -> NewSession:
    """A fresh session (call at every sign-in so the id changes) with its own CSRF token."""
    return await store.run(_create, user_id, ttl, idle, now or utcnow())


async def get_valid_session(
    store: Store, session_id: str, *, now: datetime | None = None
) -> WebSession | None:
    """The session for a cookie value if it is unexpired, unrevoked and its user is active."""
    return await store.run(_get_valid, session_id, now or utcnow())


async def touch_session(
    store: Store,
    session_id: str,
    *,
    ttl: timedelta = DEFAULT_SESSION_TTL,
    idle: timedelta = DEFAULT_IDLE_TIMEOUT,
    now: datetime | None = None,
) -> WebSession | None:
    """The valid session, its idle deadline moved on (someone used it now); None if it is over."""
    return await store.run(_touch, session_id, ttl, idle, now or utcnow())


async def valid_session_hashes(
    store: Store, id_hashes: list[str], *, now: datetime | None = None
) -> set[str]:
    """Which of these session hashes are still valid: one query for every open dashboard."""
    return await store.run(_valid_hashes, id_hashes, now or utcnow())


async def revoke_session(store: Store, session_id: str, *, now: datetime | None = None) -> bool:
    """Sign out; False if the session was unknown or already revoked."""
    return await store.run(_revoke, session_id, now or utcnow())


async def revoke_user_sessions(store: Store, user_id: int, *, now: datetime | None = None) -> int:
    """Sign a user out everywhere (password change, deactivation); returns how many ended."""
    return await store.run(_revoke_all, user_id, now or utcnow())


async def purge_sessions(store: Store, *, now: datetime | None = None) -> int:
    """Delete expired and revoked sessions; returns how many rows went."""
    return await store.run(_purge, now or utcnow())
