"""Waiting areas: the public slug, opening hours, closures and the arrival form each area configures.

Storage keeps the configuration typed and valid; deciding whether an area is open *now* (time
zones, daylight saving) is the waiting-area actor's job.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from storage.db import (
    Row,
    Store,
    dump_json,
    execute,
    fetch_all,
    fetch_required,
    insert,
    load_json,
    update_by_id,
)
from storage.errors import ConflictError, NotFoundError
from storage.times import date_from_db, date_to_db, from_db, to_db, utcnow

AreaKind = Literal["individual", "group"]
FieldKind = Literal["name", "dob", "phone", "reason", "custom"]

SLUG_BYTES = 16
"""128 bits of randomness: the public link must not be guessable or enumerable."""

MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
WEEKDAYS = 7


@dataclass(frozen=True, slots=True)
class OpeningInterval:
    """Open on ``weekday`` (0 = Monday) from ``opens`` to ``closes``, local "HH:MM"; "24:00" ends the day."""

    weekday: int
    opens: str
    closes: str

    def __post_init__(self) -> None:
        if not 0 <= self.weekday < WEEKDAYS:
            raise ValueError(f"weekday {self.weekday} is not 0 (Monday) .. 6 (Sunday)")
        if _minutes(self.opens) >= _minutes(self.closes):
            raise ValueError(f"interval {self.opens}-{self.closes} does not open before it closes")


@dataclass(frozen=True, slots=True)
class FormField:
    """One arrival-form field. ``key`` names the value in a caller's details."""

    key: str
    label: str
    kind: FieldKind
    required: bool

    def __post_init__(self) -> None:
        if not _FIELD_KEY.match(self.key):
            raise ValueError(f"field key {self.key!r} must be lower_snake_case, at most 40 chars")
        if self.kind not in get_args(FieldKind):
            raise ValueError(f"unknown field kind {self.kind!r}")


DEFAULT_FORM: tuple[FormField, ...] = (FormField("name", "Name", "name", True),)


@dataclass(frozen=True, slots=True)
class Closure:
    """The area is closed on every local date from ``starts_on`` to ``ends_on`` inclusive."""

    id: int
    area_id: int
    starts_on: date
    ends_on: date
    reason: str


@dataclass(frozen=True, slots=True)
class WaitingArea:
    id: int
    unit_id: int
    name: str
    slug: str
    time_zone: str
    opening_hours: tuple[OpeningInterval, ...]
    form_fields: tuple[FormField, ...]
    consent_text: str
    kind: AreaKind
    active: bool
    created_at: datetime


def _minutes(hhmm: str) -> int:
    match = _HHMM.match(hhmm)
    if match is None:
        raise ValueError(f"time {hhmm!r} is not HH:MM")
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > MINUTES_PER_DAY:
        raise ValueError(f"time {hhmm!r} is after 24:00")
    return minutes


def _check_zone(time_zone: str) -> None:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {time_zone!r}") from exc


def _check_form(fields: tuple[FormField, ...]) -> None:
    keys = [f.key for f in fields]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate form field keys in {keys}")
    if not any(f.kind == "name" and f.required for f in fields):
        raise ValueError("the arrival form always asks for a required name")


def _hours_json(hours: tuple[OpeningInterval, ...]) -> str:
    return dump_json([[h.weekday, h.opens, h.closes] for h in hours])


def _form_json(fields: tuple[FormField, ...]) -> str:
    return dump_json(
        [{"key": f.key, "label": f.label, "kind": f.kind, "required": f.required} for f in fields]
    )


def _area(row: Row) -> WaitingArea:
    hours: list[list[Any]] = load_json(row["opening_hours"])
    fields: list[dict[str, Any]] = load_json(row["form_fields"])
    return WaitingArea(
        id=row["id"],
        unit_id=row["unit_id"],
        name=row["name"],
        slug=row["slug"],
        time_zone=row["time_zone"],
        opening_hours=tuple(OpeningInterval(int(w), str(o), str(c)) for w, o, c in hours),
        form_fields=tuple(
            FormField(str(f["key"]), str(f["label"]), f["kind"], bool(f["required"]))
            for f in fields
        ),
        consent_text=row["consent_text"],
        kind=row["kind"],
        active=bool(row["active"]),
        created_at=from_db(row["created_at"]),
    )


def _closure(row: Row) -> Closure:
    return Closure(
        row["id"],
        row["area_id"],
        date_from_db(row["starts_on"]),
        date_from_db(row["ends_on"]),
        row["reason"],
    )


def _create_area(
    db: Database,
    unit_id: int,
    name: str,
    time_zone: str,
    opening_hours: tuple[OpeningInterval, ...],
    form_fields: tuple[FormField, ...],
    consent_text: str,
    kind: AreaKind,
) -> WaitingArea:
    try:
        area_id = insert(
            db,
            """INSERT INTO waiting_areas (unit_id, name, slug, time_zone, opening_hours, form_fields,
                   consent_text, kind, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                unit_id,
                name,
                secrets.token_urlsafe(SLUG_BYTES),
                time_zone,
                _hours_json(opening_hours),
                _form_json(form_fields),
                consent_text,
                kind,
                to_db(utcnow()),
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"waiting area {name!r} in unit {unit_id}: {exc}") from exc
    return _get_area(db, area_id)


def _get_area(db: Database, area_id: int) -> WaitingArea:
    return _area(
        fetch_required(
            db, "SELECT * FROM waiting_areas WHERE id = ?", (area_id,), f"waiting area {area_id}"
        )
    )


def _get_area_by_slug(db: Database, slug: str) -> WaitingArea | None:
    rows = fetch_all(db, "SELECT * FROM waiting_areas WHERE slug = ?", (slug,))
    return _area(rows[0]) if rows else None


def _list_areas(db: Database, unit_id: int | None, include_inactive: bool) -> list[WaitingArea]:
    sql = "SELECT * FROM waiting_areas WHERE (? IS NULL OR unit_id = ?)"
    if not include_inactive:
        sql += " AND active = 1"
    return [_area(r) for r in fetch_all(db, sql + " ORDER BY name, id", (unit_id, unit_id))]


def _update_area(db: Database, area_id: int, changes: dict[str, Any]) -> WaitingArea:
    _get_area(db, area_id)
    update_by_id(db, "waiting_areas", area_id, changes, f"waiting area {area_id}")
    return _get_area(db, area_id)


def _rotate_slug(db: Database, area_id: int) -> WaitingArea:
    return _update_area(db, area_id, {"slug": secrets.token_urlsafe(SLUG_BYTES)})


def _add_closure(
    db: Database, area_id: int, starts_on: date, ends_on: date, reason: str
) -> Closure:
    if ends_on < starts_on:
        raise ValueError(f"closure ends {ends_on} before it starts {starts_on}")
    _get_area(db, area_id)
    closure_id = insert(
        db,
        "INSERT INTO area_closures (area_id, starts_on, ends_on, reason) VALUES (?, ?, ?, ?)",
        (area_id, date_to_db(starts_on), date_to_db(ends_on), reason),
    )
    return _closure(
        fetch_required(db, "SELECT * FROM area_closures WHERE id = ?", (closure_id,), "closure")
    )


def _list_closures(db: Database, area_id: int, from_day: date | None) -> list[Closure]:
    rows = fetch_all(
        db,
        """SELECT * FROM area_closures WHERE area_id = ? AND (? IS NULL OR ends_on >= ?)
           ORDER BY starts_on, id""",
        (area_id, *(2 * [None if from_day is None else date_to_db(from_day)])),
    )
    return [_closure(r) for r in rows]


def _remove_closure(db: Database, closure_id: int) -> None:
    if execute(db, "DELETE FROM area_closures WHERE id = ?", (closure_id,)).rowcount == 0:
        raise NotFoundError(f"closure {closure_id}")


async def create_area(
    store: Store,
    unit_id: int,
    name: str,
    *,
    time_zone: str = "UTC",
    opening_hours: tuple[OpeningInterval, ...] = (),
    form_fields: tuple[FormField, ...] = DEFAULT_FORM,
    consent_text: str = "",
    kind: AreaKind = "individual",
) -> WaitingArea:
    """Create an area with a fresh unguessable slug. No opening hours means never open.

    Raises `ValueError` for an unknown time zone or a form without a required name, and
    `ConflictError` for an unknown unit or a name already used in the unit.
    """
    _check_zone(time_zone)
    _check_form(form_fields)
    return await store.run(
        _create_area, unit_id, name, time_zone, opening_hours, form_fields, consent_text, kind
    )


async def get_area(store: Store, area_id: int) -> WaitingArea:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get_area, area_id)


async def get_area_by_slug(store: Store, slug: str) -> WaitingArea | None:
    """The area behind a public link, or None (also for anything that is not a slug)."""
    return await store.run(_get_area_by_slug, slug)


async def list_areas(
    store: Store, unit_id: int | None = None, *, include_inactive: bool = False
) -> list[WaitingArea]:
    """Areas of one unit (or all units), by name."""
    return await store.run(_list_areas, unit_id, include_inactive)


async def update_area(
    store: Store,
    area_id: int,
    *,
    name: str | None = None,
    time_zone: str | None = None,
    opening_hours: tuple[OpeningInterval, ...] | None = None,
    form_fields: tuple[FormField, ...] | None = None,
    consent_text: str | None = None,
    kind: AreaKind | None = None,
    active: bool | None = None,
) -> WaitingArea:
    """Change only the given settings. The slug never changes here (see `rotate_slug`)."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if time_zone is not None:
        _check_zone(time_zone)
        changes["time_zone"] = time_zone
    if opening_hours is not None:
        changes["opening_hours"] = _hours_json(opening_hours)
    if form_fields is not None:
        _check_form(form_fields)
        changes["form_fields"] = _form_json(form_fields)
    if consent_text is not None:
        changes["consent_text"] = consent_text
    if kind is not None:
        changes["kind"] = kind
    if active is not None:
        changes["active"] = int(active)
    return await store.run(_update_area, area_id, changes)


async def rotate_slug(store: Store, area_id: int) -> WaitingArea:
    """Give the area a new public link (the old one stops working), e.g. after it leaked."""
    return await store.run(_rotate_slug, area_id)


async def add_closure(
    store: Store, area_id: int, starts_on: date, ends_on: date, reason: str = ""
) -> Closure:
    """Close the area on local dates ``starts_on``..``ends_on`` inclusive (a holiday)."""
    return await store.run(_add_closure, area_id, starts_on, ends_on, reason)


async def list_closures(
    store: Store, area_id: int, *, from_day: date | None = None
) -> list[Closure]:
    """Closures of an area, optionally only those not over before ``from_day``."""
    return await store.run(_list_closures, area_id, from_day)


async def remove_closure(store: Store, closure_id: int) -> None:
    """Raises `NotFoundError` for an unknown id."""
    await store.run(_remove_closure, closure_id)
