"""What the Setup actor accepts: one validator per kind of thing (area, closure, staff member, grant).

Creating an area and changing its settings go through the same :func:`area_name`, :func:`time_zone`,
:func:`weekly_hours`, :func:`arrival_form` and :func:`consent` so they accept and refuse exactly the
same inputs. Pure: no Trio, no storage; each refuses with a :class:`~runtime.errors.Refusal` of code
``invalid`` whose detail says what to fix.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from typing import get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors import refusals
from actors.admin.setup_messages import Fields, Hours
from runtime.errors import Refusal
from storage.areas import FieldKind, FormField, OpeningInterval
from storage.staff import Role as RoleName
from storage.staff import ScopeType

#: Names and usernames people type; longer is a mistake or an attack.
MAX_NAME = 120
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
#: Consent text is a paragraph or two that callers read before they arrive, not a contract.
MAX_CONSENT = 4000
#: Labels of arrival-form fields and reasons for closures: a few words.
MAX_LABEL = 120
#: An arrival form longer than this is not one a person fills in on a phone.
MAX_FIELDS = 20
#: Opening intervals per weekday (a split day, a lunch break, ...).
MAX_INTERVALS_PER_DAY = 8
#: How far a closure may stretch (a long refurbishment, not "forever": that is ``active``).
MAX_CLOSURE_DAYS = 366

ROLES: tuple[RoleName, ...] = get_args(RoleName)
SCOPES: tuple[ScopeType, ...] = get_args(ScopeType)
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_KINDS: tuple[FieldKind, ...] = get_args(FieldKind)


def _invalid(detail: str) -> Refusal:
    return Refusal(refusals.INVALID, detail)


def name(value: str, what: str) -> str:
    """A typed name (area, username, display name), stripped: 1 to `MAX_NAME` characters."""
    cleaned = value.strip()
    if not cleaned or len(cleaned) > MAX_NAME:
        raise _invalid(f"The {what} must be 1 to {MAX_NAME} characters.")
    return cleaned


def area_name(value: str) -> str:
    return name(value, "area name")


def time_zone(value: str) -> str:
    """An IANA zone name, stripped; an empty one is refused (no silent UTC)."""
    zone = value.strip()
    if not zone:
        raise _invalid("Choose the area's time zone, for example Europe/London.")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(f"unknown time zone {zone!r}") from exc
    return zone


def weekly_hours(hours: Hours) -> tuple[OpeningInterval, ...]:
    """Typed intervals, refused if any is malformed, backwards or overlaps another that day."""
    try:
        intervals = tuple(OpeningInterval(int(d), o, c) for d, o, c in hours)
    except ValueError as exc:
        raise _invalid(str(exc)) from exc
    for day, day_name in enumerate(WEEKDAY_NAMES):
        today = sorted((i for i in intervals if i.weekday == day), key=lambda i: i.opens)
        if len(today) > MAX_INTERVALS_PER_DAY:
            raise _invalid(f"{day_name}: at most {MAX_INTERVALS_PER_DAY} opening intervals.")
        for before, after in itertools.pairwise(today):
            if after.opens < before.closes:
                raise _invalid(
                    f"{day_name}: {before.opens}-{before.closes} overlaps "
                    f"{after.opens}-{after.closes}."
                )
    return intervals


def _field(key: str, label: str, kind: str, required: bool) -> FormField:
    if kind not in _KINDS:
        raise _invalid(f"bad form field: unknown field kind {kind!r}")
    try:
        return FormField(key, label, kind, required)  # type: ignore[arg-type]  # checked above
    except ValueError as exc:
        raise _invalid(f"bad form field: {exc}") from exc


def arrival_form(fields: Fields) -> tuple[FormField, ...]:
    """Typed arrival-form fields: exactly one required name, unique keys, short labels and form."""
    if len(fields) > MAX_FIELDS:
        raise _invalid(f"An arrival form has at most {MAX_FIELDS} fields.")
    typed = tuple(_field(k, label.strip(), kind, req) for k, label, kind, req in fields)
    for field in typed:
        if not field.label or len(field.label) > MAX_LABEL:
            raise _invalid(f"Every field needs a label of 1 to {MAX_LABEL} characters.")
    names = [f for f in typed if f.kind == "name"]
    if len(names) != 1 or not names[0].required:
        raise _invalid("The arrival form always asks for the name, and requires it.")
    keys = [f.key for f in typed]
    if len(set(keys)) != len(keys):
        raise _invalid("Two arrival-form fields have the same key.")
    return typed


def consent(text: str) -> str:
    cleaned = text.strip()
    if len(cleaned) > MAX_CONSENT:
        raise _invalid(f"The consent text must be at most {MAX_CONSENT} characters.")
    return cleaned


@dataclass(frozen=True)
class AreaFields:
    """An area's validated settings, as storage takes them."""

    name: str
    time_zone: str
    opening_hours: tuple[OpeningInterval, ...]
    form_fields: tuple[FormField, ...]
    consent_text: str


def area(area_name_: str, zone: str, hours: Hours, fields: Fields, consent_text: str) -> AreaFields:
    """All of an area's settings, checked in one order for create and for update."""
    return AreaFields(
        area_name(area_name_),
        time_zone(zone),
        weekly_hours(hours),
        arrival_form(fields),
        consent(consent_text),
    )


@dataclass(frozen=True)
class ClosureFields:
    starts_on: date
    ends_on: date
    reason: str


def closure(starts_on: date, ends_on: date, reason: str) -> ClosureFields:
    """A holiday: a short reason, forwards, at most `MAX_CLOSURE_DAYS` long."""
    cleaned = reason.strip()
    if len(cleaned) > MAX_LABEL:
        raise _invalid(f"The reason must be at most {MAX_LABEL} characters.")
    if ends_on < starts_on:
        raise _invalid("A closure cannot end before it starts.")
    if (ends_on - starts_on).days >= MAX_CLOSURE_DAYS:
        raise _invalid(
            f"A closure lasts at most {MAX_CLOSURE_DAYS} days; to stop taking callers for "
            "longer, make the area inactive."
        )
    return ClosureFields(starts_on, ends_on, cleaned)


@dataclass(frozen=True)
class StaffFields:
    username: str
    display_name: str
    email: str | None


def password(text: str) -> None:
    """A password staff may choose: long enough to resist guessing, short enough to hash."""
    if not MIN_PASSWORD <= len(text) <= MAX_PASSWORD:
        raise _invalid(f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long.")


def staff_member(
    username: str, display_name: str, password_text: str, email: str | None
) -> StaffFields:
    """A new staff member's names and email (the password is checked, never kept here)."""
    user = name(username, "username")
    display = name(display_name, "display name")
    password(password_text)
    return StaffFields(user, display, (email or "").strip() or None)


@dataclass(frozen=True)
class GrantFields:
    role: RoleName
    scope_type: ScopeType


def grant_names(role: str, scope_type: str) -> GrantFields:
    """A known role on a known kind of scope (checked before any permission check)."""
    for known in ROLES:
        if role == known:
            for scope in SCOPES:
                if scope_type == scope:
                    return GrantFields(known, scope)
    raise _invalid(f"Unknown role {role!r} or scope {scope_type!r}.")


def grant_fits(fields: GrantFields) -> GrantFields:
    """The admin roles fit only their own scope (checked once the sender may act on the scope)."""
    if fields.role == "org_admin" and fields.scope_type != "org":
        raise _invalid("The organisation admin role is granted on an organisation.")
    if fields.role == "unit_admin" and fields.scope_type != "unit":
        raise _invalid("The unit admin role is granted on a unit.")
    if fields.scope_type == "meeting_room" and fields.role != "meeting_member":
        raise _invalid("Only the meeting member role is granted on one meeting room.")
    return fields
