"""Read models the Directory needs beyond `storage.staff`: a user's organisation, their areas."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from storage.db import Store, fetch_all


@dataclass(frozen=True, slots=True)
class AreaListing:
    """A waiting area a staff user holds a grant for, with the unit it belongs to."""

    area_id: int
    name: str
    slug: str
    unit_id: int
    unit_name: str
    org_id: int
    kind: str
    active: bool


# Organisations a user's grants reach, whatever the scope the grant names.
_ORGS_OF_USER = """
SELECT g.scope_id AS org_id FROM role_grants g WHERE g.user_id = :u AND g.scope_type = 'org'
UNION
SELECT u.org_id FROM role_grants g JOIN units u ON u.id = g.scope_id
 WHERE g.user_id = :u AND g.scope_type = 'unit'
UNION
SELECT u.org_id FROM role_grants g JOIN waiting_areas a ON a.id = g.scope_id
 JOIN units u ON u.id = a.unit_id WHERE g.user_id = :u AND g.scope_type = 'area'
UNION
SELECT u.org_id FROM role_grants g JOIN meeting_rooms m ON m.id = g.scope_id
 JOIN rooms r ON r.id = m.room_id JOIN units u ON u.id = r.unit_id
 WHERE g.user_id = :u AND g.scope_type = 'meeting_room'
ORDER BY org_id
"""


def _orgs_of_user(db: Database, user_id: int) -> list[int]:
    return [int(r["org_id"]) for r in fetch_all(db, _ORGS_OF_USER, {"u": user_id})]


def _areas_for(db: Database, user_id: int) -> list[AreaListing]:
    rows = fetch_all(
        db,
        """
        SELECT DISTINCT a.id, a.name, a.slug, a.unit_id, u.name AS unit_name, u.org_id, a.kind,
               a.active
        FROM waiting_areas a
        JOIN units u ON u.id = a.unit_id
        JOIN role_grants g ON g.user_id = ?
        WHERE (g.scope_type = 'area' AND g.scope_id = a.id)
           OR (g.scope_type = 'unit' AND g.scope_id = u.id)
           OR (g.scope_type = 'org' AND g.scope_id = u.org_id)
        ORDER BY u.name, a.name, a.id
        """,
        (user_id,),
    )
    return [
        AreaListing(
            r["id"],
            r["name"],
            r["slug"],
            r["unit_id"],
            r["unit_name"],
            r["org_id"],
            r["kind"],
            bool(r["active"]),
        )
        for r in rows
    ]


async def orgs_of_user(store: Store, user_id: int) -> list[int]:
    """Organisations the user holds any grant in (directly, or through a unit or an area)."""
    return await store.run(_orgs_of_user, user_id)


async def areas_for(store: Store, user_id: int) -> list[AreaListing]:
    """Waiting areas a staff user holds any grant for, directly or through their unit or org."""
    return await store.run(_areas_for, user_id)
