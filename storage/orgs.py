"""Organisations and their organisational units (clinics): the roots of every permission scope."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.db import Row, Store, fetch_all, fetch_required, insert
from storage.errors import ConflictError
from storage.times import from_db, to_db, utcnow


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Unit:
    """An organisational unit (a clinic): holds waiting areas, meeting rooms and staff grants."""

    id: int
    org_id: int
    name: str
    created_at: datetime


def _org(row: Row) -> Organisation:
    return Organisation(row["id"], row["name"], from_db(row["created_at"]))


def _unit(row: Row) -> Unit:
    return Unit(row["id"], row["org_id"], row["name"], from_db(row["created_at"]))


def _create_org(db: Database, name: str) -> Organisation:
    org_id = insert(
        db, "INSERT INTO organisations (name, created_at) VALUES (?, ?)", (name, to_db(utcnow()))
    )
    return _get_org(db, org_id)


def _get_org(db: Database, org_id: int) -> Organisation:
    return _org(
        fetch_required(
            db, "SELECT * FROM organisations WHERE id = ?", (org_id,), f"organisation {org_id}"
        )
    )


def _list_orgs(db: Database) -> list[Organisation]:
    return [_org(r) for r in fetch_all(db, "SELECT * FROM organisations ORDER BY name, id")]


def _create_unit(db: Database, org_id: int, name: str) -> Unit:
    try:
        unit_id = insert(
            db,
            "INSERT INTO units (org_id, name, created_at) VALUES (?, ?, ?)",
            (org_id, name, to_db(utcnow())),
        )
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"unit {name!r} in organisation {org_id}: {exc}") from exc
    return _get_unit(db, unit_id)


def _get_unit(db: Database, unit_id: int) -> Unit:
    return _unit(
        fetch_required(db, "SELECT * FROM units WHERE id = ?", (unit_id,), f"unit {unit_id}")
    )


def _list_units(db: Database, org_id: int | None) -> list[Unit]:
    if org_id is None:
        rows = fetch_all(db, "SELECT * FROM units ORDER BY name, id")
    else:
        rows = fetch_all(db, "SELECT * FROM units WHERE org_id = ? ORDER BY name, id", (org_id,))
    return [_unit(r) for r in rows]


async def create_organisation(store: Store, name: str) -> Organisation:
    return await store.run(_create_org, name)


async def get_organisation(store: Store, org_id: int) -> Organisation:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get_org, org_id)


async def list_organisations(store: Store) -> list[Organisation]:
    return await store.run(_list_orgs)


async def create_unit(store: Store, org_id: int, name: str) -> Unit:
    """Raises `ConflictError` if the organisation is unknown or already has a unit of that name."""
    return await store.run(_create_unit, org_id, name)


async def get_unit(store: Store, unit_id: int) -> Unit:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get_unit, unit_id)


async def list_units(store: Store, org_id: int | None = None) -> list[Unit]:
    """Units of one organisation, or of all organisations."""
    return await store.run(_list_units, org_id)
