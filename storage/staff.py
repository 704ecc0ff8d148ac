"""Staff users and their role grants, each scoped to an organisation, a unit or a waiting area.

Passwords are hashed elsewhere (argon2 in web/); this module only stores the hash string and never
returns it except through `find_login`, so a `StaffUser` can be handed to templates safely.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlite_utils import Database

from storage.db import (
    Row,
    Store,
    execute,
    fetch_all,
    fetch_one,
    fetch_required,
    insert,
    update_by_id,
)
from storage.errors import ConflictError, NotFoundError
from storage.times import from_db, to_db, utcnow

Role = Literal["org_admin", "unit_admin", "provider", "referrer", "meeting_member"]
ScopeType = Literal["org", "unit", "area", "meeting_room"]


@dataclass(frozen=True, slots=True)
class StaffUser:
    id: int
    username: str
    email: str | None
    display_name: str
    active: bool
    created_at: datetime
    #: The organisation the member of staff belongs to: only its administrators see and manage
    #: them (issue 15). Set when an administrator creates them, else by their first role grant.
    org_id: int | None = None


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What sign-in needs: the user and the stored password hash to verify against."""

    user: StaffUser
    password_hash: str


@dataclass(frozen=True, slots=True)
class RoleGrant:
    id: int
    user_id: int
    role: Role
    scope_type: ScopeType
    scope_id: int
    created_at: datetime


_USER_COLUMNS = "id, username, email, display_name, active, created_at, org_id"


def _user(row: Row) -> StaffUser:
    return StaffUser(
        row["id"],
        row["username"],
        row["email"],
        row["display_name"],
        bool(row["active"]),
        from_db(row["created_at"]),
        row["org_id"],
    )


def _grant(row: Row) -> RoleGrant:
    return RoleGrant(
        row["id"],
        row["user_id"],
        row["role"],
        row["scope_type"],
        row["scope_id"],
        from_db(row["created_at"]),
    )


def _create_user(
    db: Database,
    username: str,
    display_name: str,
    password_hash: str,
    email: str | None,
    org_id: int | None = None,
) -> StaffUser:
    try:
        user_id = insert(
            db,
            """INSERT INTO staff_users (username, email, display_name, password_hash, created_at,
                   org_id) VALUES (?, ?, ?, ?, ?, ?)""",
            (username, email, display_name, password_hash, to_db(utcnow()), org_id),
        )
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"username or email already taken: {username!r}") from exc
    return _get_user(db, user_id)


def _get_user(db: Database, user_id: int) -> StaffUser:
    return _user(
        fetch_required(
            db,
            f"SELECT {_USER_COLUMNS} FROM staff_users WHERE id = ?",
            (user_id,),
            f"staff user {user_id}",
        )
    )


def _find_login(db: Database, login: str) -> LoginRecord | None:
    row = fetch_one(
        db,
        f"""SELECT {_USER_COLUMNS}, password_hash FROM staff_users
            WHERE username = ? COLLATE NOCASE OR email = ? COLLATE NOCASE
            ORDER BY username = ? COLLATE NOCASE DESC LIMIT 1""",
        (login, login, login),
    )
    return None if row is None else LoginRecord(_user(row), row["password_hash"])


#: The organisation of a grant's scope (``:type``, ``:id``), in SQL.
ORG_OF_SCOPE = """
SELECT CASE :type
    WHEN 'org' THEN :id
    WHEN 'unit' THEN (SELECT org_id FROM units WHERE id = :id)
    WHEN 'area' THEN (SELECT u.org_id FROM waiting_areas a JOIN units u ON u.id = a.unit_id
                      WHERE a.id = :id)
    WHEN 'meeting_room' THEN (SELECT u.org_id FROM meeting_rooms m JOIN rooms r
                              ON r.id = m.room_id JOIN units u ON u.id = r.unit_id
                              WHERE m.id = :id)
END
"""


def _list_users(
    db: Database, include_inactive: bool, org_ids: tuple[int, ...] | None = None
) -> list[StaffUser]:
    conditions = [] if include_inactive else ["active = 1"]
    if org_ids is not None:
        conditions.append(f"org_id IN ({','.join(str(int(o)) for o in org_ids) or 'NULL'})")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = fetch_all(db, f"SELECT {_USER_COLUMNS} FROM staff_users {where} ORDER BY username")
    return [_user(r) for r in rows]


def _update_user(db: Database, user_id: int, changes: dict[str, Any]) -> StaffUser:
    _get_user(db, user_id)
    update_by_id(db, "staff_users", user_id, changes, f"staff user {user_id}")
    return _get_user(db, user_id)


def _scope_exists(db: Database, scope_type: ScopeType, scope_id: int) -> bool:
    table = {
        "org": "organisations",
        "unit": "units",
        "area": "waiting_areas",
        "meeting_room": "meeting_rooms",
    }[scope_type]
    return fetch_one(db, f"SELECT 1 AS x FROM {table} WHERE id = ?", (scope_id,)) is not None


def _grant_role(
    db: Database, user_id: int, role: Role, scope_type: ScopeType, scope_id: int
) -> RoleGrant:
    _get_user(db, user_id)
    if not _scope_exists(db, scope_type, scope_id):
        raise NotFoundError(f"{scope_type} {scope_id}")
    execute(
        db,
        """INSERT INTO role_grants (user_id, role, scope_type, scope_id, created_at)
           VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        (user_id, role, scope_type, scope_id, to_db(utcnow())),
    )
    # A member of staff created before organisations were recorded joins the first one a role
    # is granted in.
    execute(
        db,
        f"UPDATE staff_users SET org_id = ({ORG_OF_SCOPE}) WHERE id = :u AND org_id IS NULL",
        {"u": user_id, "type": scope_type, "id": scope_id},
    )
    return _grant(
        fetch_required(
            db,
            """SELECT * FROM role_grants
               WHERE user_id = ? AND role = ? AND scope_type = ? AND scope_id = ?""",
            (user_id, role, scope_type, scope_id),
            "grant",
        )
    )


def _revoke_role(
    db: Database, user_id: int, role: Role, scope_type: ScopeType, scope_id: int
) -> bool:
    cursor = execute(
        db,
        "DELETE FROM role_grants WHERE user_id = ? AND role = ? AND scope_type = ? AND scope_id = ?",
        (user_id, role, scope_type, scope_id),
    )
    return cursor.rowcount > 0


def _list_grants(db: Database, user_id: int) -> list[RoleGrant]:
    rows = fetch_all(db, "SELECT * FROM role_grants WHERE user_id = ? ORDER BY id", (user_id,))
    return [_grant(r) for r in rows]


def _list_scope_grants(db: Database, scope_type: ScopeType, scope_id: int) -> list[RoleGrant]:
    rows = fetch_all(
        db,
        "SELECT * FROM role_grants WHERE scope_type = ? AND scope_id = ? ORDER BY user_id, role",
        (scope_type, scope_id),
    )
    return [_grant(r) for r in rows]


# A grant on an organisation covers its units and areas; a grant on a unit covers its areas.
_AREA_SCOPES = """
    SELECT a.id AS area_id, g.user_id, g.role
    FROM waiting_areas a
    JOIN units u ON u.id = a.unit_id
    JOIN role_grants g ON (g.scope_type = 'area' AND g.scope_id = a.id)
                       OR (g.scope_type = 'unit' AND g.scope_id = u.id)
                       OR (g.scope_type = 'org' AND g.scope_id = u.org_id)
    JOIN staff_users s ON s.id = g.user_id AND s.active = 1
"""


def _roles_in_area(db: Database, user_id: int, area_id: int) -> frozenset[Role]:
    rows = fetch_all(
        db,
        f"SELECT DISTINCT role FROM ({_AREA_SCOPES}) AS scopes WHERE user_id = ? AND area_id = ?",
        (user_id, area_id),
    )
    return frozenset(r["role"] for r in rows)


def _areas_with_role(db: Database, user_id: int, role: Role) -> list[int]:
    rows = fetch_all(
        db,
        f"""SELECT DISTINCT area_id FROM ({_AREA_SCOPES}) AS scopes
            WHERE user_id = ? AND role = ? ORDER BY area_id""",
        (user_id, role),
    )
    return [r["area_id"] for r in rows]


def _users_with_role_in_area(db: Database, area_id: int, role: Role) -> list[StaffUser]:
    rows = fetch_all(
        db,
        f"""SELECT {_USER_COLUMNS} FROM staff_users WHERE id IN (
                SELECT user_id FROM ({_AREA_SCOPES}) AS scopes WHERE area_id = ? AND role = ?)
            ORDER BY display_name, id""",
        (area_id, role),
    )
    return [_user(r) for r in rows]


async def create_user(
    store: Store,
    username: str,
    display_name: str,
    password_hash: str,
    *,
    email: str | None = None,
    org_id: int | None = None,
) -> StaffUser:
    """Raises `ConflictError` if the username or email (case-insensitive) is taken."""
    return await store.run(_create_user, username, display_name, password_hash, email, org_id)


async def get_user(store: Store, user_id: int) -> StaffUser:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get_user, user_id)


async def find_login(store: Store, login: str) -> LoginRecord | None:
    """Look a user up by username or email (case-insensitive) for sign-in; inactive users too,
    so the caller can say "account disabled" only after the password checks out."""
    return await store.run(_find_login, login)


async def list_users(
    store: Store, *, include_inactive: bool = False, org_ids: tuple[int, ...] | None = None
) -> list[StaffUser]:
    """Every member of staff, or only those of ``org_ids`` (an administrator's view)."""
    return await store.run(_list_users, include_inactive, org_ids)


async def update_user(
    store: Store,
    user_id: int,
    *,
    display_name: str | None = None,
    email: str | None = None,
    password_hash: str | None = None,
    active: bool | None = None,
) -> StaffUser:
    """Change only the given fields. Deactivating a user does not delete their history."""
    changes: dict[str, Any] = {}
    if display_name is not None:
        changes["display_name"] = display_name
    if email is not None:
        changes["email"] = email
    if password_hash is not None:
        changes["password_hash"] = password_hash
    if active is not None:
        changes["active"] = int(active)
    return await store.run(_update_user, user_id, changes)


async def grant_role(
    store: Store, user_id: int, role: Role, scope_type: ScopeType, scope_id: int
) -> RoleGrant:
    """Grant (idempotent: granting twice returns the existing grant). `NotFoundError` for an
    unknown user or scope."""
    return await store.run(_grant_role, user_id, role, scope_type, scope_id)


async def revoke_role(
    store: Store, user_id: int, role: Role, scope_type: ScopeType, scope_id: int
) -> bool:
    """Remove a grant; False if there was none."""
    return await store.run(_revoke_role, user_id, role, scope_type, scope_id)


async def list_grants(store: Store, user_id: int) -> list[RoleGrant]:
    """The grants exactly as given to one user."""
    return await store.run(_list_grants, user_id)


async def list_scope_grants(store: Store, scope_type: ScopeType, scope_id: int) -> list[RoleGrant]:
    """The grants given directly on one org, unit or area (for admin pages)."""
    return await store.run(_list_scope_grants, scope_type, scope_id)


async def roles_in_area(store: Store, user_id: int, area_id: int) -> frozenset[Role]:
    """Every role an active user holds in an area, through grants on the area, its unit or its
    organisation. Deciding what each role may do stays with the actors."""
    return await store.run(_roles_in_area, user_id, area_id)


async def areas_with_role(store: Store, user_id: int, role: Role) -> list[int]:
    """Ids of the areas where an active user holds ``role`` (directly or through unit/org)."""
    return await store.run(_areas_with_role, user_id, role)


async def users_with_role_in_area(store: Store, area_id: int, role: Role) -> list[StaffUser]:
    """Active users holding ``role`` in an area (directly or through unit/org)."""
    return await store.run(_users_with_role_in_area, area_id, role)
