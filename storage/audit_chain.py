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

The client's address is not one of those fields (issue 15, migration 10): it is personal data the
retention policy forgets after some days, and a chain over it could then no longer be checked.
The address lives in ``audit_addresses`` beside a random key of its own, and the entry carries
:func:`address_digest`, an HMAC-SHA-256 of the address under that key, which the chain covers.
While the address is kept, :func:`verify` checks it against the digest, so changing it shows;
forgetting it deletes the address and its key together, and what stays (the digest) cannot be
turned back into the address: an unkeyed SHA-256 could, by hashing all 2^32 IPv4 addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlite_utils import Database

from storage.db import Row, Store, dump_json, fetch_all, fetch_one

#: What the first entry links to.
GENESIS = "0" * 64
#: The stored fields hashed from migration 6 to 9 (the raw address among them): what migration 6
#: chains with and migration 10 checks before chaining again. Never change it.
FIELDS_V1 = (
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
#: The stored fields that are hashed, in this order, from migration 10: the address's digest in
#: place of the address. ``remote_addr`` stays in the table and in the hash, always "" since then
#: (the address is in ``audit_addresses``), so writing one there shows too.
FIELDS = (
    "id",
    "at",
    "actor_kind",
    "actor_user_id",
    "action",
    "area_id",
    "subject",
    "remote_addr",
    "address_digest",
    "details",
)
#: Entries read per query while verifying, so a long log never sits in memory at once.
VERIFY_PAGE = 5000


def link(previous: str, fields: dict[str, object], names: tuple[str, ...] = FIELDS) -> str:
    """The chain hash of an entry whose stored ``fields`` follow the entry hashed ``previous``
    (``names``: the fields hashed, :data:`FIELDS` unless a migration says otherwise)."""
    body = dump_json([fields[name] for name in names])
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def new_address_key() -> str:
    """A random key for one entry's address (hex, 128 bits)."""
    return secrets.token_hex(16)


def address_digest(key: str, address: str) -> str:
    """What the chain covers in place of ``address``: HMAC-SHA-256 under the entry's ``key``
    (hex); "" for no address."""
    if not address:
        return ""
    return hmac.new(key.encode(), address.encode(), hashlib.sha256).hexdigest()


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


def fields_of(row: Row, names: tuple[str, ...] = FIELDS) -> dict[str, object]:
    return {name: row[name] for name in names}


def _address_holds(row: Row) -> bool:
    """An entry's kept address (if any) is the one its digest was made of. A forgotten address
    (no row in ``audit_addresses``) is not a change: the retention policy removes them."""
    if row["kept_address"] is None:
        return True
    expected = address_digest(str(row["address_key"]), str(row["kept_address"]))
    return hmac.compare_digest(expected, str(row["address_digest"]))


def _verify(db: Database) -> ChainCheck:
    previous, count, after = GENESIS, 0, 0
    columns = ", ".join(f"l.{name}" for name in FIELDS)
    while True:
        rows = fetch_all(
            db,
            f"""SELECT {columns}, l.chain, a.address AS kept_address, a.address_key
                  FROM audit_log l LEFT JOIN audit_addresses a ON a.entry_id = l.id
                 WHERE l.id > ? ORDER BY l.id LIMIT ?""",
            (after, VERIFY_PAGE),
        )
        if not rows:
            return ChainCheck(count, previous)
        for row in rows:
            if row["chain"] != link(previous, fields_of(row)) or not _address_holds(row):
                return ChainCheck(count, previous, first_broken_id=int(row["id"]))
            previous, count, after = row["chain"], count + 1, int(row["id"])


async def verify(store: Store) -> ChainCheck:
    """Recompute the whole chain; the first entry that does not link, if any."""
    return await store.run(_verify)
