"""Staff notices: what the bell in the portal lists (issue 14), kept so it survives a reload.

One row per notice for one staff member: what kind, a short text, where it leads, whether the page
should ring, when it was made and when it was read. Rows are never deleted by the application (a
clinic's list of notices is short-lived information, but pruning is an operations job); reading
only sets ``read_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, insert
from storage.times import from_db, opt_from_db, to_db, utcnow

#: The table; migration 5 creates it (``storage.ondemand.MIGRATION_SQL``).
SCHEMA = """
CREATE TABLE IF NOT EXISTS staff_notices (
    id         INTEGER PRIMARY KEY,
    org_id     INTEGER NOT NULL REFERENCES organisations(id),
    user_id    INTEGER NOT NULL REFERENCES staff_users(id),
    kind       TEXT NOT NULL,
    text       TEXT NOT NULL,
    url        TEXT NOT NULL DEFAULT '',
    ring       INTEGER NOT NULL DEFAULT 0 CHECK (ring IN (0, 1)),
    created_at TEXT NOT NULL,
    read_at    TEXT
);
CREATE INDEX IF NOT EXISTS staff_notices_by_user ON staff_notices (user_id, id);
"""

#: How many notices the bell lists (newest first).
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    org_id: int
    user_id: int
    kind: str
    text: str
    url: str
    ring: bool
    created_at: datetime
    read_at: datetime | None


def _notice(row: Row) -> Notice:
    return Notice(
        row["id"],
        row["org_id"],
        row["user_id"],
        row["kind"],
        row["text"],
        row["url"],
        bool(row["ring"]),
        from_db(row["created_at"]),
        opt_from_db(row["read_at"]),
    )


def _add(
    db: Database, org_id: int, user_id: int, kind: str, text: str, url: str, ring: bool
) -> Notice:
    now = utcnow()
    notice_id = insert(
        db,
        "INSERT INTO staff_notices (org_id, user_id, kind, text, url, ring, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (org_id, user_id, kind, text, url, int(ring), to_db(now)),
    )
    return Notice(notice_id, org_id, user_id, kind, text, url, ring, now, None)


def _list(db: Database, user_id: int, limit: int) -> list[Notice]:
    rows = fetch_all(
        db,
        "SELECT * FROM staff_notices WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        (user_id, max(1, min(limit, MAX_LIMIT))),
    )
    return [_notice(r) for r in rows]


def _unread(db: Database, user_id: int) -> int:
    row = fetch_one(
        db,
        "SELECT COUNT(*) AS n FROM staff_notices WHERE user_id = ? AND read_at IS NULL",
        (user_id,),
    )
    return int(row["n"]) if row else 0


def _mark_read(db: Database, user_id: int, notice_id: int) -> bool:
    """Only the owner's own notice: another user's id matches no row (as a missing one)."""
    found = fetch_one(
        db, "SELECT id FROM staff_notices WHERE id = ? AND user_id = ?", (notice_id, user_id)
    )
    if found is None:
        return False
    execute(
        db,
        "UPDATE staff_notices SET read_at = ? WHERE id = ? AND user_id = ? AND read_at IS NULL",
        (to_db(utcnow()), notice_id, user_id),
    )
    return True


async def add(
    store: Store, org_id: int, user_id: int, kind: str, text: str, url: str, ring: bool
) -> Notice:
    return await store.run(_add, org_id, user_id, kind, text, url, ring)


async def list_for(store: Store, user_id: int, limit: int = DEFAULT_LIMIT) -> list[Notice]:
    """The newest ``limit`` notices of one staff member, newest first."""
    return await store.run(_list, user_id, limit)


async def unread_count(store: Store, user_id: int) -> int:
    return await store.run(_unread, user_id)


async def mark_read(store: Store, user_id: int, notice_id: int) -> bool:
    """Mark one of the user's notices read (idempotent); False when it is not theirs or missing."""
    return await store.run(_mark_read, user_id, notice_id)
