"""A store with the meeting rooms schema, whatever number it lands under.

Migration 4 is reserved for meeting rooms; until the migrations before it are in, the tests apply
it as the next number after the ones that exist (``storage/meeting_rooms.py`` holds the SQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from storage.db import Store, open_store
from storage.meeting_rooms import MIGRATION_NAME, MIGRATION_SQL
from storage.migrations import MIGRATIONS, Migration, apply_migrations


def with_meeting_rooms(steps: Sequence[Migration]) -> list[Migration]:
    if any(m.name == MIGRATION_NAME for m in steps):
        return list(steps)
    return [*steps, Migration(len(steps) + 1, MIGRATION_NAME, MIGRATION_SQL)]


@asynccontextmanager
async def meeting_store(path: Path) -> AsyncIterator[Store]:
    async with open_store(path, migrate=False) as store:
        await store.run(apply_migrations, with_meeting_rooms(MIGRATIONS))
        yield store
