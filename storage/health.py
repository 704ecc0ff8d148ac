"""A storage liveness probe for ``/healthz``: one trivial read through the real connection."""

from __future__ import annotations

from sqlite_utils import Database

from storage.db import Store, fetch_one
from storage.migrations import current_version


def _probe(db: Database) -> int:
    fetch_one(db, "SELECT 1")
    return current_version(db)


async def probe(store: Store) -> int:
    """Raise if the database cannot be read; return its schema version."""
    return await store.run(_probe)
