"""The Setup actor: a clinic sets itself up (areas, staff, role grants) without touching the database.

Every handler decides from the sender's :class:`~actors.principal.Principal`: an organisation admin
may act anywhere in the organisation, a unit admin only in that unit and its areas. Anything else is
refused ``forbidden`` before any write. Bad input (unknown time zone, empty name, taken username)
is refused ``invalid``. Every creation, settings change and role change is written to the audit
log; passwords are hashed here and never logged or returned.

An area's settings (name, hours, closures, arrival form, consent text, active flag) are validated
here in full before the one write; then the running ``area/<id>`` re-reads them in place (via the
``areas`` host), so a settings change loses no waiting caller and no watching provider.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

from actors import addresses, refusals
from actors.messages import ReloadArea
from actors.principal import Principal
from runtime.errors import Refusal
from runtime.kernel import Actor, handles
from services.passwords import Passwords
from storage import areas as area_store
from storage import audit, orgs, staff
from storage.areas import FieldKind, FormField, OpeningInterval
from storage.db import Store
from storage.errors import ConflictError, NotFoundError
from storage.orgs import Unit

#: Not ``admin``: that address is the audit/reports actor of :mod:`actors.admin.reports`.
#: Kept importable; the address lives in ``actors.addresses``.
SETUP_ADDRESS = addresses.SETUP
AREAS_HOST = "areas"

#: Names and usernames people type; longer is a mistake or an attack.
MAX_NAME = 120
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
#: The area host has to load the area from storage; a person is waiting for the page.
RELOAD_TIMEOUT = 5.0
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

ROLES = ("org_admin", "unit_admin", "provider", "referrer", "meeting_member")
SCOPES = ("org", "unit", "area")

#: (weekday 0 = Monday, opens "HH:MM", closes "HH:MM") in the area's time zone.
Hours = tuple[tuple[int, str, str], ...]
#: (key, label, kind, required) of one arrival-form field.
Fields = tuple[tuple[str, str, str, bool], ...]

DEFAULT_FIELDS: Fields = (("name", "Name", "name", True),)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListSetup:
    """Units the sender administers, with their areas, plus staff and their visible grants."""

    principal: Principal
    remote_addr: str = ""


@dataclass(frozen=True)
class CreateArea:
    principal: Principal
    unit_id: int
    name: str
    time_zone: str = "UTC"
    opening_hours: Hours = ()
    form_fields: Fields = DEFAULT_FIELDS
    consent_text: str = ""
    remote_addr: str = ""


@dataclass(frozen=True)
class UpdateAreaHours:
    principal: Principal
    area_id: int
    opening_hours: Hours
    time_zone: str | None = None
    remote_addr: str = ""


@dataclass(frozen=True)
class GetAreaSettings:
    """Everything the area settings page shows: name, hours, closures, form, consent, active."""

    principal: Principal
    area_id: int


@dataclass(frozen=True)
class UpdateAreaSettings:
    """Replace an area's editable settings (not its unit or public link) in one step.

    The running area actor re-reads them in place: nobody waiting is lost, and an inactive area
    refuses new arrivals but keeps serving the callers already in its queue.
    """

    principal: Principal
    area_id: int
    name: str
    time_zone: str
    opening_hours: Hours
    form_fields: Fields
    consent_text: str
    active: bool
    remote_addr: str = ""


@dataclass(frozen=True)
class AddAreaClosure:
    """Close the area on local dates ``starts_on``..``ends_on`` inclusive (a holiday)."""

    principal: Principal
    area_id: int
    starts_on: date
    ends_on: date
    reason: str = ""
    remote_addr: str = ""


@dataclass(frozen=True)
class RemoveAreaClosure:
    principal: Principal
    area_id: int
    closure_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class CreateStaff:
    principal: Principal
    username: str
    display_name: str
    password: str
    email: str | None = None
    remote_addr: str = ""


@dataclass(frozen=True)
class GrantRole:
    principal: Principal
    user_id: int
    role: str
    scope_type: str
    scope_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class RevokeRole:
    principal: Principal
    user_id: int
    role: str
    scope_type: str
    scope_id: int
    remote_addr: str = ""


# -- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaEntry:
    id: int
    unit_id: int
    name: str
    slug: str
    time_zone: str
    active: bool
    opening_hours: Hours


@dataclass(frozen=True)
class ClosureEntry:
    id: int
    starts_on: date
    ends_on: date
    reason: str


@dataclass(frozen=True)
class AreaSettings:
    """The reply to `GetAreaSettings` and `UpdateAreaSettings`."""

    area: AreaEntry
    unit_name: str
    form_fields: Fields
    consent_text: str
    closures: tuple[ClosureEntry, ...]


@dataclass(frozen=True)
class UnitEntry:
    id: int
    org_id: int
    name: str
    areas: tuple[AreaEntry, ...]


@dataclass(frozen=True)
class GrantEntry:
    role: str
    scope_type: str
    scope_id: int
    scope_name: str


@dataclass(frozen=True)
class StaffEntry:
    id: int
    username: str
    display_name: str
    email: str | None
    active: bool
    grants: tuple[GrantEntry, ...]


@dataclass(frozen=True)
class SetupView:
    units: tuple[UnitEntry, ...]
    staff: tuple[StaffEntry, ...]
    org_ids: tuple[int, ...]  # organisations the sender administers as a whole


# -- the actor --------------------------------------------------------------------------------


def _forbidden() -> Refusal:
    return Refusal(refusals.FORBIDDEN, "You are not an administrator here.")


def _area_entry(area: area_store.WaitingArea) -> AreaEntry:
    return AreaEntry(
        area.id,
        area.unit_id,
        area.name,
        area.slug,
        area.time_zone,
        area.active,
        tuple((h.weekday, h.opens, h.closes) for h in area.opening_hours),
    )


def _hours(hours: Hours) -> tuple[OpeningInterval, ...]:
    try:
        return tuple(OpeningInterval(int(d), o, c) for d, o, c in hours)
    except ValueError as exc:
        raise Refusal(refusals.INVALID, str(exc)) from exc


def _fields(fields: Fields) -> tuple[FormField, ...]:
    try:
        kinds: dict[str, FieldKind] = {
            "name": "name",
            "dob": "dob",
            "phone": "phone",
            "reason": "reason",
            "custom": "custom",
        }
        return tuple(FormField(k, label, kinds[kind], req) for k, label, kind, req in fields)
    except (KeyError, ValueError) as exc:
        raise Refusal(refusals.INVALID, f"bad form field: {exc}") from exc


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _weekly_hours(hours: Hours) -> tuple[OpeningInterval, ...]:
    """Typed intervals, refused ``invalid`` if any is malformed, backwards or overlaps another."""
    intervals = _hours(hours)
    for day, name in enumerate(WEEKDAY_NAMES):
        today = sorted((i for i in intervals if i.weekday == day), key=lambda i: i.opens)
        if len(today) > MAX_INTERVALS_PER_DAY:
            raise Refusal(
                refusals.INVALID, f"{name}: at most {MAX_INTERVALS_PER_DAY} opening intervals."
            )
        for before, after in itertools.pairwise(today):
            if after.opens < before.closes:
                raise Refusal(
                    refusals.INVALID,
                    f"{name}: {before.opens}-{before.closes} overlaps "
                    f"{after.opens}-{after.closes}.",
                )
    return intervals


def _form(fields: Fields) -> tuple[FormField, ...]:
    """Typed arrival-form fields: exactly one required name, short labels, a short form."""
    if len(fields) > MAX_FIELDS:
        raise Refusal(refusals.INVALID, f"An arrival form has at most {MAX_FIELDS} fields.")
    typed = _fields(tuple((k, label.strip(), kind, req) for k, label, kind, req in fields))
    for field in typed:
        if not field.label or len(field.label) > MAX_LABEL:
            raise Refusal(
                refusals.INVALID, f"Every field needs a label of 1 to {MAX_LABEL} characters."
            )
    names = [f for f in typed if f.kind == "name"]
    if len(names) != 1 or not names[0].required:
        raise Refusal(
            refusals.INVALID, "The arrival form always asks for the name, and requires it."
        )
    keys = [f.key for f in typed]
    if len(set(keys)) != len(keys):
        raise Refusal(refusals.INVALID, "Two arrival-form fields have the same key.")
    return typed


def _closure_entry(closure: area_store.Closure) -> ClosureEntry:
    return ClosureEntry(closure.id, closure.starts_on, closure.ends_on, closure.reason)


def _name(value: str, what: str) -> str:
    cleaned = value.strip()
    if not cleaned or len(cleaned) > MAX_NAME:
        raise Refusal(refusals.INVALID, f"The {what} must be 1 to {MAX_NAME} characters.")
    return cleaned


class SetupAdmin(Actor):
    """Handles the setup pages' requests; see the module docstring."""

    def __init__(self, store: Store, passwords: Passwords | None = None) -> None:
        super().__init__()
        self.store = store
        self.passwords = passwords if passwords is not None else Passwords()

    @handles(ListSetup)
    async def _on_list(self, message: ListSetup) -> object:
        return await self._list(message.principal)

    @handles(GetAreaSettings)
    async def _on_get_settings(self, message: GetAreaSettings) -> object:
        area = await self._area_for_admin(message.principal, message.area_id)
        return await self._settings(area)

    # -- permission helpers --

    async def _admin_units(self, principal: Principal) -> list[Unit]:
        if not principal.is_staff:
            return []
        return [
            u
            for u in await orgs.list_units(self.store)
            if principal.is_admin_of_unit(str(u.id), str(u.org_id))
        ]

    async def _unit_for_admin(self, principal: Principal, unit_id: int) -> Unit:
        try:
            unit = await orgs.get_unit(self.store, unit_id)
        except NotFoundError as exc:
            raise _forbidden() from exc
        if not principal.is_staff or not principal.is_admin_of_unit(str(unit.id), str(unit.org_id)):
            raise _forbidden()
        return unit

    async def _area_for_admin(self, principal: Principal, area_id: int) -> area_store.WaitingArea:
        """The area, if the sender administers its unit; an unknown area is ``forbidden`` too."""
        try:
            area = await area_store.get_area(self.store, area_id)
        except NotFoundError as exc:
            raise _forbidden() from exc
        await self._unit_for_admin(principal, area.unit_id)
        return area

    async def _check_scope(
        self, principal: Principal, role: str, scope: str, scope_id: int
    ) -> None:
        """Refuse unless the sender administers the scope and the role fits the scope."""
        if role not in ROLES or scope not in SCOPES:
            raise Refusal(refusals.INVALID, f"Unknown role {role!r} or scope {scope!r}.")
        if scope == "org":
            if not principal.is_staff or not principal.is_org_admin(str(scope_id)):
                raise _forbidden()
        elif scope == "unit":
            await self._unit_for_admin(principal, scope_id)
        else:
            try:
                area = await area_store.get_area(self.store, scope_id)
            except NotFoundError as exc:
                raise _forbidden() from exc
            await self._unit_for_admin(principal, area.unit_id)
        if role == "org_admin" and scope != "org":
            raise Refusal(
                refusals.INVALID, "The organisation admin role is granted on an organisation."
            )
        if role == "unit_admin" and scope != "unit":
            raise Refusal(refusals.INVALID, "The unit admin role is granted on a unit.")

    def _actor_id(self, principal: Principal) -> int | None:
        return int(principal.user_id) if principal.user_id is not None else None

    # -- handlers --

    async def _list(self, principal: Principal) -> SetupView:
        units = await self._admin_units(principal)
        if not units:
            raise _forbidden()
        entries = []
        area_names: dict[int, str] = {}
        for unit in units:
            areas = await area_store.list_areas(self.store, unit.id, include_inactive=True)
            area_names.update({a.id: a.name for a in areas})
            entries.append(
                UnitEntry(unit.id, unit.org_id, unit.name, tuple(_area_entry(a) for a in areas))
            )
        unit_names = {u.id: u.name for u in units}
        org_ids = tuple(sorted({u.org_id for u in units if principal.is_org_admin(str(u.org_id))}))
        org_names = {o: (await orgs.get_organisation(self.store, o)).name for o in org_ids}
        names: dict[str, dict[int, str]] = {
            "org": org_names,
            "unit": unit_names,
            "area": area_names,
        }
        people = []
        for user in await staff.list_users(self.store, include_inactive=True):
            grants = tuple(
                GrantEntry(g.role, g.scope_type, g.scope_id, names[g.scope_type][g.scope_id])
                for g in await staff.list_grants(self.store, user.id)
                if g.scope_id in names[g.scope_type]
            )
            people.append(
                StaffEntry(
                    user.id, user.username, user.display_name, user.email, user.active, grants
                )
            )
        return SetupView(tuple(entries), tuple(people), org_ids)

    @handles(CreateArea)
    async def _create_area(self, msg: CreateArea) -> AreaEntry:
        unit = await self._unit_for_admin(msg.principal, msg.unit_id)
        name = _name(msg.name, "area name")
        try:
            area = await area_store.create_area(
                self.store,
                unit.id,
                name,
                time_zone=msg.time_zone.strip() or "UTC",
                opening_hours=_hours(msg.opening_hours),
                form_fields=_fields(msg.form_fields),
                consent_text=msg.consent_text.strip(),
            )
        except (ValueError, ConflictError) as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        await audit.append(
            self.store,
            audit.AREA_CREATED,
            actor_user_id=self._actor_id(msg.principal),
            area_id=area.id,
            subject=area.name,
            remote_addr=msg.remote_addr,
            details={"unit_id": unit.id},
        )
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return _area_entry(area)

    @handles(UpdateAreaHours)
    async def _update_hours(self, msg: UpdateAreaHours) -> AreaEntry:
        try:
            current = await area_store.get_area(self.store, msg.area_id)
        except NotFoundError as exc:
            raise _forbidden() from exc
        await self._unit_for_admin(msg.principal, current.unit_id)
        try:
            area = await area_store.update_area(
                self.store,
                current.id,
                opening_hours=_hours(msg.opening_hours),
                time_zone=msg.time_zone,
            )
        except (ValueError, ConflictError) as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        await audit.append(
            self.store,
            audit.AREA_UPDATED,
            actor_user_id=self._actor_id(msg.principal),
            area_id=area.id,
            subject=area.name,
            remote_addr=msg.remote_addr,
            details={"changed": ["opening_hours", "time_zone"]},
        )
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return _area_entry(area)

    async def _settings(self, area: area_store.WaitingArea) -> AreaSettings:
        unit = await orgs.get_unit(self.store, area.unit_id)
        closures = await area_store.list_closures(self.store, area.id)
        return AreaSettings(
            _area_entry(area),
            unit.name,
            tuple((f.key, f.label, f.kind, f.required) for f in area.form_fields),
            area.consent_text,
            tuple(_closure_entry(c) for c in closures),
        )

    @handles(UpdateAreaSettings)
    async def _update_settings(self, msg: UpdateAreaSettings) -> AreaSettings:
        current = await self._area_for_admin(msg.principal, msg.area_id)
        # Every check before the single write: a refusal changes nothing.
        name = _name(msg.name, "area name")
        zone = msg.time_zone.strip()
        if not zone:
            raise Refusal(
                refusals.INVALID, "Choose the area's time zone, for example Europe/London."
            )
        hours = _weekly_hours(msg.opening_hours)
        form = _form(msg.form_fields)
        consent = msg.consent_text.strip()
        if len(consent) > MAX_CONSENT:
            raise Refusal(
                refusals.INVALID, f"The consent text must be at most {MAX_CONSENT} characters."
            )
        wanted = {
            "name": (current.name, name),
            "time_zone": (current.time_zone, zone),
            "opening_hours": (current.opening_hours, hours),
            "form_fields": (current.form_fields, form),
            "consent_text": (current.consent_text, consent),
            "active": (current.active, msg.active),
        }
        changed = sorted(key for key, (old, new) in wanted.items() if old != new)
        if not changed:
            return await self._settings(current)
        try:
            area = await area_store.update_area(
                self.store,
                current.id,
                name=name,
                time_zone=zone,
                opening_hours=hours,
                form_fields=form,
                consent_text=consent,
                active=msg.active,
            )
        except ConflictError as exc:
            raise Refusal(
                refusals.INVALID, f"The unit already has an area called {name!r}."
            ) from exc
        except ValueError as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        await self._audit_area_update(msg.principal, area, msg.remote_addr, {"changed": changed})
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return await self._settings(area)

    @handles(AddAreaClosure)
    async def _add_closure(self, msg: AddAreaClosure) -> ClosureEntry:
        area = await self._area_for_admin(msg.principal, msg.area_id)
        reason = msg.reason.strip()
        if len(reason) > MAX_LABEL:
            raise Refusal(refusals.INVALID, f"The reason must be at most {MAX_LABEL} characters.")
        if msg.ends_on < msg.starts_on:
            raise Refusal(refusals.INVALID, "A closure cannot end before it starts.")
        if (msg.ends_on - msg.starts_on).days >= MAX_CLOSURE_DAYS:
            raise Refusal(
                refusals.INVALID,
                f"A closure lasts at most {MAX_CLOSURE_DAYS} days; to stop taking callers for "
                "longer, make the area inactive.",
            )
        closure = await area_store.add_closure(
            self.store, area.id, msg.starts_on, msg.ends_on, reason
        )
        await self._audit_area_update(
            msg.principal,
            area,
            msg.remote_addr,
            {
                "changed": ["closures"],
                "closure_added": [closure.starts_on.isoformat(), closure.ends_on.isoformat()],
            },
        )
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return _closure_entry(closure)

    @handles(RemoveAreaClosure)
    async def _remove_closure(self, msg: RemoveAreaClosure) -> bool:
        area = await self._area_for_admin(msg.principal, msg.area_id)
        closures = {c.id: c for c in await area_store.list_closures(self.store, area.id)}
        closure = closures.get(msg.closure_id)
        if closure is None:
            raise Refusal(refusals.INVALID, "This area has no such closure.")
        await area_store.remove_closure(self.store, closure.id)
        await self._audit_area_update(
            msg.principal,
            area,
            msg.remote_addr,
            {
                "changed": ["closures"],
                "closure_removed": [closure.starts_on.isoformat(), closure.ends_on.isoformat()],
            },
        )
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return True

    async def _audit_area_update(
        self,
        principal: Principal,
        area: area_store.WaitingArea,
        remote_addr: str,
        details: dict[str, object],
    ) -> None:
        await audit.append(
            self.store,
            audit.AREA_UPDATED,
            actor_user_id=self._actor_id(principal),
            area_id=area.id,
            subject=area.name,
            remote_addr=remote_addr,
            details=details,
        )

    @handles(CreateStaff)
    async def _create_staff(self, msg: CreateStaff) -> StaffEntry:
        if not await self._admin_units(msg.principal):
            raise _forbidden()
        username = _name(msg.username, "username")
        display_name = _name(msg.display_name, "display name")
        if not MIN_PASSWORD <= len(msg.password) <= MAX_PASSWORD:
            raise Refusal(
                refusals.INVALID, f"The password must be at least {MIN_PASSWORD} characters."
            )
        email = (msg.email or "").strip() or None
        password_hash = await self.passwords.hash(msg.password)
        try:
            user = await staff.create_user(
                self.store, username, display_name, password_hash, email=email
            )
        except ConflictError as exc:
            raise Refusal(
                refusals.INVALID, f"The username or email {username!r} is taken."
            ) from exc
        await audit.append(
            self.store,
            audit.STAFF_CREATED,
            actor_user_id=self._actor_id(msg.principal),
            subject=user.username,
            remote_addr=msg.remote_addr,
            details={"user_id": user.id},
        )
        return StaffEntry(user.id, user.username, user.display_name, user.email, user.active, ())

    @handles(GrantRole)
    async def _grant(self, msg: GrantRole) -> GrantEntry:
        await self._check_scope(msg.principal, msg.role, msg.scope_type, msg.scope_id)
        try:
            user = await staff.get_user(self.store, msg.user_id)
            await staff.grant_role(
                self.store,
                user.id,
                msg.role,  # type: ignore[arg-type]  # checked against ROLES above
                msg.scope_type,  # type: ignore[arg-type]  # checked against SCOPES above
                msg.scope_id,
            )
        except NotFoundError as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        await self._audit_role(audit.ROLE_GRANTED, msg.principal, user.username, msg)
        return GrantEntry(msg.role, msg.scope_type, msg.scope_id, "")

    @handles(RevokeRole)
    async def _revoke(self, msg: RevokeRole) -> bool:
        await self._check_scope(msg.principal, msg.role, msg.scope_type, msg.scope_id)
        try:
            user = await staff.get_user(self.store, msg.user_id)
        except NotFoundError as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        removed = await staff.revoke_role(
            self.store,
            user.id,
            msg.role,  # type: ignore[arg-type]  # checked against ROLES above
            msg.scope_type,  # type: ignore[arg-type]  # checked against SCOPES above
            msg.scope_id,
        )
        if removed:
            await self._audit_role(audit.ROLE_REVOKED, msg.principal, user.username, msg)
        return removed

    async def _audit_role(
        self, action: str, principal: Principal, username: str, msg: GrantRole | RevokeRole
    ) -> None:
        area_id = msg.scope_id if msg.scope_type == "area" else None
        await audit.append(
            self.store,
            action,
            actor_user_id=self._actor_id(principal),
            area_id=area_id,
            subject=username,
            remote_addr=msg.remote_addr,
            details={
                "user_id": msg.user_id,
                "role": msg.role,
                "scope_type": msg.scope_type,
                "scope_id": msg.scope_id,
            },
        )
