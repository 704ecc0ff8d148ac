"""Create and update agree: one table of inputs, sent both ways, accepted or refused alike.

Each area case goes through the running setup actor twice, as `CreateArea` (in a unit of its own,
so names never collide) and as `UpdateAreaSettings` (on a demo area); hours and time zones also as
`UpdateAreaHours`. The outcome (accepted, or the refusal code and detail) must be the same, and
must be the one the table expects. Grants are checked the same way as `GrantRole` and
`RevokeRole`; staff members and closures, which have no update, against the table alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import trio

from actors import refusals
from actors.admin import setup_rules as rules
from actors.admin.setup import (
    DEFAULT_FIELDS,
    SETUP_ADDRESS,
    AddAreaClosure,
    CreateArea,
    CreateStaff,
    Fields,
    GrantRole,
    Hours,
    RevokeRole,
    UpdateAreaHours,
    UpdateAreaSettings,
)
from actors.boot import start_actors
from actors.principal import Grant, Principal, Role, Scope
from runtime import Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import orgs, seed
from storage.db import Store, open_store

OK = "ok"
INVALID = refusals.INVALID
DAY = (0, "09:00", "17:00")
GOOD_PASSWORD = "a good long password"


@dataclass(frozen=True)
class AreaCase:
    """An area's settings; `name` None means "a fresh valid name" so valid creates never collide."""

    expect: str
    name: str | None = None
    time_zone: str = "Europe/London"
    opening_hours: Hours = (DAY,)
    form_fields: Fields = DEFAULT_FIELDS
    consent_text: str = ""
    hours_case: bool = False


AREA_CASES: dict[str, AreaCase] = {
    "plain": AreaCase(OK),
    "name padded": AreaCase(OK, name="  Padded Clinic  "),
    "name 120": AreaCase(OK, name="n" * rules.MAX_NAME),
    "name empty": AreaCase(INVALID, name=""),
    "name whitespace": AreaCase(INVALID, name=" \t "),
    "name 121": AreaCase(INVALID, name="n" * (rules.MAX_NAME + 1)),
    "zone padded": AreaCase(OK, time_zone=" Europe/Oslo ", hours_case=True),
    "zone UTC": AreaCase(OK, time_zone="UTC", hours_case=True),
    "zone empty": AreaCase(INVALID, time_zone="", hours_case=True),
    "zone blank": AreaCase(INVALID, time_zone="  ", hours_case=True),
    "zone unknown": AreaCase(INVALID, time_zone="Mars/Olympus", hours_case=True),
    "hours none": AreaCase(OK, opening_hours=(), hours_case=True),
    "hours all day": AreaCase(OK, opening_hours=((6, "00:00", "24:00"),), hours_case=True),
    "hours split day": AreaCase(
        OK, opening_hours=((1, "08:00", "12:00"), (1, "12:00", "17:00")), hours_case=True
    ),
    "hours overlap": AreaCase(
        INVALID, opening_hours=((2, "09:00", "13:00"), (2, "12:00", "17:00")), hours_case=True
    ),
    "hours too many": AreaCase(
        INVALID,
        opening_hours=tuple((3, f"{h:02}:00", f"{h:02}:30") for h in range(9)),
        hours_case=True,
    ),
    "hours backwards": AreaCase(INVALID, opening_hours=((0, "17:00", "09:00"),), hours_case=True),
    "hours after midnight": AreaCase(
        INVALID, opening_hours=((0, "09:00", "24:30"),), hours_case=True
    ),
    "hours not HH:MM": AreaCase(INVALID, opening_hours=((0, "9am", "5pm"),), hours_case=True),
    "hours weekday 7": AreaCase(INVALID, opening_hours=((7, "09:00", "17:00"),), hours_case=True),
    "hours weekday -1": AreaCase(INVALID, opening_hours=((-1, "09:00", "17:00"),), hours_case=True),
    "form with dob": AreaCase(
        OK, form_fields=(*DEFAULT_FIELDS, ("dob", "Date of birth", "dob", False))
    ),
    "form 20 fields": AreaCase(
        OK,
        form_fields=(
            *DEFAULT_FIELDS,
            *((f"f{i}", f"Field {i}", "custom", False) for i in range(rules.MAX_FIELDS - 1)),
        ),
    ),
    "form 21 fields": AreaCase(
        INVALID,
        form_fields=(
            *DEFAULT_FIELDS,
            *((f"f{i}", f"Field {i}", "custom", False) for i in range(rules.MAX_FIELDS)),
        ),
    ),
    "form no name": AreaCase(INVALID, form_fields=(("dob", "Born", "dob", True),)),
    "form name optional": AreaCase(INVALID, form_fields=(("name", "Name", "name", False),)),
    "form two names": AreaCase(
        INVALID, form_fields=(*DEFAULT_FIELDS, ("name2", "Other name", "name", True))
    ),
    "form same key": AreaCase(
        INVALID,
        form_fields=(*DEFAULT_FIELDS, ("x", "A", "custom", False), ("x", "B", "custom", False)),
    ),
    "form empty label": AreaCase(INVALID, form_fields=(("name", "  ", "name", True),)),
    "form long label": AreaCase(
        INVALID, form_fields=(("name", "l" * (rules.MAX_LABEL + 1), "name", True),)
    ),
    "form bad key": AreaCase(INVALID, form_fields=(("Bad Key", "N", "name", True),)),
    "form bad kind": AreaCase(INVALID, form_fields=(("name", "N", "fax", True),)),
    "consent": AreaCase(OK, consent_text="  We record nothing.  "),
    "consent longest": AreaCase(OK, consent_text="c" * rules.MAX_CONSENT),
    "consent too long": AreaCase(INVALID, consent_text="c" * (rules.MAX_CONSENT + 1)),
}

#: (username, display name, password, email) -> expected outcome of creating that staff member.
STAFF_CASES: dict[str, tuple[str, str, str, str | None, str]] = {
    "plain": ("nurse1", "Nurse One", GOOD_PASSWORD, None, OK),
    "padded": ("  nurse2 ", " Nurse Two ", GOOD_PASSWORD, " two@example.org ", OK),
    "username 120": ("u" * rules.MAX_NAME, "Long", GOOD_PASSWORD, None, OK),
    "username empty": ("", "Nobody", GOOD_PASSWORD, None, INVALID),
    "username blank": ("   ", "Nobody", GOOD_PASSWORD, None, INVALID),
    "username 121": ("u" * (rules.MAX_NAME + 1), "Long", GOOD_PASSWORD, None, INVALID),
    "display name blank": ("nurse3", " ", GOOD_PASSWORD, None, INVALID),
    "password short": ("nurse4", "Nurse", "x" * (rules.MIN_PASSWORD - 1), None, INVALID),
    "password long": ("nurse5", "Nurse", "x" * (rules.MAX_PASSWORD + 1), None, INVALID),
    "username taken": ("nurse1", "Again", GOOD_PASSWORD, None, INVALID),
}

#: (role, scope type) -> expected outcome of granting it and of revoking it.
GRANT_CASES: dict[str, tuple[str, str, str]] = {
    "provider on area": ("provider", "area", OK),
    "referrer on unit": ("referrer", "unit", OK),
    "meeting member on org": ("meeting_member", "org", OK),
    "org admin on org": ("org_admin", "org", OK),
    "unit admin on unit": ("unit_admin", "unit", OK),
    "org admin on unit": ("org_admin", "unit", INVALID),
    "unit admin on area": ("unit_admin", "area", INVALID),
    "unit admin on org": ("unit_admin", "org", INVALID),
    "unknown role": ("nurse", "area", INVALID),
    "unknown scope": ("provider", "ward", INVALID),
    "role case matters": ("Provider", "area", INVALID),
}

#: (starts, ends, reason) -> expected outcome of adding the closure.
CLOSURE_CASES: dict[str, tuple[date, date, str, str]] = {
    "one day": (date(2030, 12, 25), date(2030, 12, 25), "Christmas", OK),
    "a year": (date(2031, 1, 1), date(2031, 12, 31), "", OK),
    "backwards": (date(2030, 1, 5), date(2030, 1, 4), "", INVALID),
    "too long": (date(2030, 1, 1), date(2031, 1, 2), "", INVALID),
    "long reason": (date(2030, 2, 1), date(2030, 2, 1), "r" * (rules.MAX_LABEL + 1), INVALID),
}


@dataclass
class Clinic:
    registry: Registry
    store: Store
    demo: seed.DemoInfo
    other_unit_id: int

    def admin(self) -> Principal:
        grant = Grant(Role.ORG_ADMIN, Scope.ORG, str(self.demo.org_id))
        return Principal(
            "staff",
            "Admin",
            str(self.demo.admin_user_id),
            str(self.demo.org_id),
            frozenset({grant}),
        )

    async def outcome(self, message: object) -> tuple[str, str]:
        """("ok", "") or the refusal's (code, detail)."""
        try:
            await self.registry.ref(SETUP_ADDRESS).ask(message)
        except Refusal as refusal:
            return refusal.code, refusal.detail
        return OK, ""


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        other = await orgs.create_unit(store, demo.org_id, "Rules")
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        yield Clinic(registry, store, demo, other.id)
        nursery.cancel_scope.cancel()


def _checked(case: AreaCase, name: str) -> str:
    try:
        rules.area(name, case.time_zone, case.opening_hours, case.form_fields, case.consent_text)
    except Refusal as refusal:
        return refusal.code
    return OK


@pytest.mark.parametrize("label", list(AREA_CASES))
def test_the_area_rule_accepts_what_the_table_says(label: str) -> None:
    case = AREA_CASES[label]
    assert _checked(case, case.name if case.name is not None else "Fine") == case.expect


async def test_create_and_update_agree_on_every_area_case(clinic: Clinic) -> None:
    admin = clinic.admin()
    area_id = clinic.demo.areas[0].id
    for number, (label, case) in enumerate(AREA_CASES.items()):
        name = case.name if case.name is not None else f"Rules area {number}"
        create = CreateArea(
            admin,
            clinic.other_unit_id,
            name,
            case.time_zone,
            case.opening_hours,
            case.form_fields,
            case.consent_text,
        )
        update = UpdateAreaSettings(
            admin,
            area_id,
            name,
            case.time_zone,
            case.opening_hours,
            case.form_fields,
            case.consent_text,
            True,
        )
        created, updated = await clinic.outcome(create), await clinic.outcome(update)
        assert created == updated, label
        assert created[0] == case.expect, (label, created)
        if case.hours_case:
            hours = await clinic.outcome(
                UpdateAreaHours(admin, area_id, case.opening_hours, case.time_zone)
            )
            assert hours == created, label


async def test_grant_and_revoke_agree_on_every_role_and_scope(clinic: Clinic) -> None:
    admin, demo = clinic.admin(), clinic.demo
    scope_ids = {"org": demo.org_id, "unit": demo.unit_id, "area": demo.areas[0].id}
    for label, (role, scope, expect) in GRANT_CASES.items():
        scope_id = scope_ids.get(scope, 1)
        granted = await clinic.outcome(
            GrantRole(admin, demo.provider_user_id, role, scope, scope_id)
        )
        revoked = await clinic.outcome(
            RevokeRole(admin, demo.provider_user_id, role, scope, scope_id)
        )
        assert granted == revoked, label
        assert granted[0] == expect, (label, granted)


async def test_staff_members_are_accepted_as_the_table_says(clinic: Clinic) -> None:
    for label, (username, display, password, email, expect) in STAFF_CASES.items():
        got = await clinic.outcome(CreateStaff(clinic.admin(), username, display, password, email))
        assert got[0] == expect, (label, got)


async def test_closures_are_accepted_as_the_table_says(clinic: Clinic) -> None:
    area_id = clinic.demo.areas[0].id
    for label, (starts, ends, reason, expect) in CLOSURE_CASES.items():
        got = await clinic.outcome(AddAreaClosure(clinic.admin(), area_id, starts, ends, reason))
        assert got[0] == expect, (label, got)
        try:
            rules.closure(starts, ends, reason)
        except Refusal as refusal:
            assert refusal.code == expect
        else:
            assert expect == OK
