"""Demo data for a brand-new database, so `waitroom serve` shows the whole flow on first start.

Everything is created in one transaction: a crash half-way leaves the database empty (and seeded
on the next start), never half-seeded and skipped forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlite_utils import Database

from storage.areas import FormField, OpeningInterval, WaitingArea, _create_area
from storage.db import Store, fetch_one
from storage.errors import DatabaseNotEmptyError
from storage.orgs import _create_org, _create_unit
from storage.staff import _create_user, _grant_role

DEMO_ORG = "Demo Health"
DEMO_UNIT = "Demo Clinic"
DEMO_PROVIDER = "provider"
DEMO_ADMIN = "admin"

ALWAYS_OPEN: tuple[OpeningInterval, ...] = tuple(
    OpeningInterval(day, "00:00", "24:00") for day in range(7)
)
"""Open around the clock every day, so the demo works whenever someone tries it."""

DEMO_FORM: tuple[FormField, ...] = (
    FormField("name", "Name", "name", True),
    FormField("dob", "Date of birth", "dob", False),
    FormField("phone", "Phone number", "phone", False),
    FormField("reason", "Reason for your visit", "reason", False),
)
DEMO_CONSENT = (
    "By joining you agree to a video consultation. The call is not recorded. "
    "This is demonstration data."
)


@dataclass(frozen=True, slots=True)
class DemoArea:
    id: int
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class DemoInfo:
    """What the CLI prints on first start: sign-in names (password: the one hashed) and links."""

    org_id: int
    unit_id: int
    provider_user_id: int
    provider_username: str
    admin_user_id: int
    admin_username: str
    areas: tuple[DemoArea, ...]


_CONTENT_TABLES = ("organisations", "staff_users")


def _is_empty(db: Database) -> bool:
    return all(
        fetch_one(db, f"SELECT 1 AS x FROM {table} LIMIT 1") is None for table in _CONTENT_TABLES
    )


def _seed(db: Database, password_hash: str) -> DemoInfo:
    if not _is_empty(db):
        raise DatabaseNotEmptyError("demo data is only seeded into an empty database")
    org = _create_org(db, DEMO_ORG)
    unit = _create_unit(db, org.id, DEMO_UNIT)
    areas: list[WaitingArea] = [
        _create_area(db, unit.id, name, zone, ALWAYS_OPEN, DEMO_FORM, DEMO_CONSENT, "individual")
        for name, zone in (("General Practice", "Europe/London"), ("Physiotherapy", "UTC"))
    ]
    provider = _create_user(
        db, DEMO_PROVIDER, "Dr Demo Provider", password_hash, "provider@demo.invalid"
    )
    admin = _create_user(db, DEMO_ADMIN, "Demo Administrator", password_hash, "admin@demo.invalid")
    for area in areas:
        _grant_role(db, provider.id, "provider", "area", area.id)
        _grant_role(db, provider.id, "referrer", "area", area.id)
    _grant_role(db, provider.id, "meeting_member", "unit", unit.id)
    _grant_role(db, admin.id, "org_admin", "org", org.id)
    return DemoInfo(
        org_id=org.id,
        unit_id=unit.id,
        provider_user_id=provider.id,
        provider_username=provider.username,
        admin_user_id=admin.id,
        admin_username=admin.username,
        areas=tuple(DemoArea(a.id, a.name, a.slug) for a in areas),
    )


def demo_allowed(public_url: str) -> bool:
    """Whether a new database may get the demo users: not when people reach us over https.

    An https public URL means a real deployment, where users with a printed password and the
    well-known names ``provider``/``admin`` would be a way in. Such a server starts with no
    users at all (``waitroom.server`` decides, and logs that it seeded nothing); the operator
    creates the first administrator with ``waitroom create-admin`` (`seed_first_admin`).
    """
    return urlsplit(public_url.strip()).scheme.lower() != "https"


def _first_admin(
    db: Database, org_name: str, unit_name: str, username: str, name: str, password_hash: str
) -> int:
    if not _is_empty(db):
        raise DatabaseNotEmptyError("the first administrator is only created in an empty database")
    org = _create_org(db, org_name)
    _create_unit(db, org.id, unit_name)
    admin = _create_user(db, username, name, password_hash, None, org_id=org.id)
    _grant_role(db, admin.id, "org_admin", "org", org.id)
    return admin.id


async def seed_first_admin(
    store: Store, org_name: str, unit_name: str, username: str, name: str, password_hash: str
) -> int:
    """A real deployment's start (no demo): the organisation, its first unit and its first
    administrator, who sets up areas and staff from the pages. Only into an empty database
    (`DatabaseNotEmptyError` otherwise); returns the administrator's user id."""
    return await store.run(_first_admin, org_name, unit_name, username, name, password_hash)


async def is_empty(store: Store) -> bool:
    """True when no organisation and no staff user exist yet (a brand-new database)."""
    return await store.run(_is_empty)


async def seed_demo(store: Store, password_hash: str) -> DemoInfo:
    """Create the demo organisation, unit "Demo Clinic", two always-open waiting areas, a provider
    (provider + referrer in both areas, meeting member of the unit) and an org admin, both with
    ``password_hash``. Raises `DatabaseNotEmptyError` unless `is_empty`."""
    return await store.run(_seed, password_hash)
