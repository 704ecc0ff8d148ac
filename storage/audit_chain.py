"""The audit log's hash chain: each entry carries a hash of itself and of the entry before it.

Triggers already refuse UPDATE and DELETE on ``audit_log`` (migration 1), but whoever can write
the database file can drop a trigger. The chain makes that visible afterwards: changing, removing
or inserting any entry breaks the link of every entry after it, and :func:`verify` names the first
broken one. The newest entry's hash (the *head*) is shown to administrators on the audit page:
noted down or sent elsewhere now and then, it also shows when the newest entries were cut off,
which a chain alone cannot (see docs/security.md).

The hash is SHA-256 over the previous hash and the entry's stored fields as compact, key-sorted
JSON; the first entry links to :data:`GENESIS`. Entries are appended by the store's single
writer, each in its transaction, so the chain has no forks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlite_utils import Database

from storage.db import Row, Store, dump_json, fetch_all, fetch_one

#: What the first entry links to.
GENESIS = "0" * 64
#: The stored fields that are hashed, in this order.
FIELDS = (
    "id",
    "at",
    "actor_kind",
    "actor_user_id",
    "action",
    "area_id",
    "subject",
    "remote_addr",
    "details",
)
#: Entries read per query while verifying, so a long log never sits in memory at once.
VERIFY_PAGE = 5000


def link(previous: str, fields: dict[str, object]) -> str:
    """The chain hash of an entry whose stored ``fields`` follow the entry hashed ``previous``."""
    body = dump_json([fields[name] for name in FIELDS])
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def head(db: Database) -> tuple[int, str]:
    """The newest entry's id and chain hash, or (0, GENESIS) for an empty log."""
    row = fetch_one(db, "SELECT id, chain FROM audit_log ORDER BY id DESC LIMIT 1")
    return (0, GENESIS) if row is None else (int(row["id"]), str(row["chain"]))


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of :func:`verify`: intact, or the first entry whose link does not hold."""

    entries: int
    head: str
    first_broken_id: int | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def fields_of(row: Row) -> dict[str, object]:
    return {name: row[name] for name in FIELDS}


def _verify(db: Database) -> ChainCheck:
    previous, count, after = GENESIS, 0, 0
    while True:
        rows = fetch_all(
            db,
            f"SELECT {', '.join(FIELDS)}, chain FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
            (after, VERIFY_PAGE),
        )
        if not rows:
            return ChainCheck(count, previous)
        for row in rows:
            if row["chain"] != link(previous, fields_of(row)):
                return ChainCheck(count, previous, first_broken_id=int(row["id"]))
            previous, count, after = row["chain"], count + 1, int(row["id"])


async def verify(store: Store) -> ChainCheck:
    """Recompute the whole chain; the first entry that does not link, if any."""
    return await store.run(_verify)
