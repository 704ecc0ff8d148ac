"""The Setup actor: a clinic sets itself up (areas, staff, role grants) without touching the database.

Every handler decides from the sender's :class:`~actors.principal.Principal`: an organisation admin
may act anywhere in the organisation, a unit admin only in that unit and its areas. Anything else is
refused ``forbidden`` before any write. Bad input is refused ``invalid`` by the one validator per
kind of thing in :mod:`actors.admin.setup_rules`, the same for create and update. Every creation,
settings change and role change is written to the audit log; passwords are hashed here and never
logged or returned. The messages and replies live in :mod:`actors.admin.setup_messages` and are
re-exported here.

After a write the running ``area/<id>`` re-reads its settings in place (via the ``areas`` host), so
a settings change loses no waiting caller and no watching provider.
"""

from __future__ import annotations

import contextlib

from actors import addresses, refusals
from actors.admin import setup_rules as rules
from actors.admin.setup_messages import (
    DEFAULT_FIELDS,
    AddAreaClosure,
    AreaEntry,
    AreaSettings,
    ChangeOwnPassword,
    ClosureEntry,
    CreateArea,
    CreateStaff,
    Fields,
    GetAreaSettings,
    GrantEntry,
    GrantRole,
    Hours,
    ListSetup,
    RemoveAreaClosure,
    ResetStaffPassword,
    RevokeRole,
    RotateAreaLink,
    SetStaffActive,
    SetupView,
    StaffEntry,
    UnitEntry,
    UpdateAreaHours,
    UpdateAreaSettings,
)
from actors.admin.setup_rules import (
    MAX_CLOSURE_DAYS,
    MAX_CONSENT,
    MAX_FIELDS,
    MAX_INTERVALS_PER_DAY,
    MAX_LABEL,
    MAX_NAME,
    MAX_PASSWORD,
    MIN_PASSWORD,
    ROLES,
    SCOPES,
    WEEKDAY_NAMES,
)
from actors.messages import GrantsChanged, ReloadArea
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from services.passwords import Passwords
from storage import areas as area_store
from storage import audit, meeting_rooms, orgs, sessions, staff
from storage.db import Store
from storage.errors import ConflictError, NotFoundError
from storage.orgs import Unit

__all__ = [
    "AREAS_HOST",
    "DEFAULT_FIELDS",
    "MAX_CLOSURE_DAYS",
    "MAX_CONSENT",
    "MAX_FIELDS",
    "MAX_INTERVALS_PER_DAY",
    "MAX_LABEL",
    "MAX_NAME",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "RELOAD_TIMEOUT",
    "ROLES",
    "SCOPES",
    "SETUP_ADDRESS",
    "WEEKDAY_NAMES",
    "AddAreaClosure",
    "AreaEntry",
    "AreaSettings",
    "ChangeOwnPassword",
    "ClosureEntry",
    "CreateArea",
    "CreateStaff",
    "Fields",
    "GetAreaSettings",
    "GrantEntry",
    "GrantRole",
    "Hours",
    "ListSetup",
    "RemoveAreaClosure",
    "ResetStaffPassword",
    "RevokeRole",
    "RotateAreaLink",
    "SetStaffActive",
    "SetupAdmin",
    "SetupView",
    "StaffEntry",
    "UnitEntry",
    "UpdateAreaHours",
    "UpdateAreaSettings",
]

#: Not ``admin``: that address is the audit/reports actor of :mod:`actors.admin.reports`.
#: Kept importable; the address lives in ``actors.addresses``.
SETUP_ADDRESS = addresses.SETUP
AREAS_HOST = "areas"
#: The area host has to load the area from storage; a person is waiting for the page.
RELOAD_TIMEOUT = 5.0


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


def _closure_entry(closure: area_store.Closure) -> ClosureEntry:
    return ClosureEntry(closure.id, closure.starts_on, closure.ends_on, closure.reason)


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
        self, principal: Principal, role: str, scope_type: str, scope_id: int
    ) -> rules.GrantFields:
        """Refuse unless the sender administers the scope and the role fits the scope."""
        names = rules.grant_names(role, scope_type)
        scope = names.scope_type
        if scope == "org":
            if not principal.is_staff or not principal.is_org_admin(str(scope_id)):
                raise _forbidden()
        elif scope == "unit":
            await self._unit_for_admin(principal, scope_id)
        elif scope == "meeting_room":
            try:
                room = await meeting_rooms.get_meeting_room(self.store, scope_id)
            except NotFoundError as exc:
                raise _forbidden() from exc
            await self._unit_for_admin(principal, room.unit_id)
        else:
            try:
                area = await area_store.get_area(self.store, scope_id)
            except NotFoundError as exc:
                raise _forbidden() from exc
            await self._unit_for_admin(principal, area.unit_id)
        return rules.grant_fits(names)

    def _actor_id(self, principal: Principal) -> int | None:
        return int(principal.user_id) if principal.user_id is not None else None

    # -- handlers --

    async def _list(self, principal: Principal) -> SetupView:
        units = await self._admin_units(principal)
        if not units:
            raise _forbidden()
        entries = []
        area_names: dict[int, str] = {}
        rooms = await meeting_rooms.list_meeting_rooms(
            self.store, unit_ids=tuple(u.id for u in units)
        )
        room_names = {r.id: r.name for r in rooms}
        for unit in units:
            areas = await area_store.list_areas(self.store, unit.id, include_inactive=True)
            area_names.update({a.id: a.name for a in areas})
            entries.append(
                UnitEntry(
                    unit.id,
                    unit.org_id,
                    unit.name,
                    tuple(_area_entry(a) for a in areas),
                    tuple((r.id, r.name) for r in rooms if r.unit_id == unit.id),
                )
            )
        unit_names = {u.id: u.name for u in units}
        org_ids = tuple(sorted({u.org_id for u in units if principal.is_org_admin(str(u.org_id))}))
        org_names = {o: (await orgs.get_organisation(self.store, o)).name for o in org_ids}
        names: dict[str, dict[int, str]] = {
            "org": org_names,
            "unit": unit_names,
            "area": area_names,
            "meeting_room": room_names,
        }
        people = []
        staff_orgs = tuple(sorted({u.org_id for u in units}))
        for user in await staff.list_users(self.store, include_inactive=True, org_ids=staff_orgs):
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
        wanted = rules.area(
            msg.name, msg.time_zone, msg.opening_hours, msg.form_fields, msg.consent_text
        )
        try:
            area = await area_store.create_area(
                self.store,
                unit.id,
                wanted.name,
                time_zone=wanted.time_zone,
                opening_hours=wanted.opening_hours,
                form_fields=wanted.form_fields,
                consent_text=wanted.consent_text,
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
        hours = rules.weekly_hours(msg.opening_hours)
        zone = None if msg.time_zone is None else rules.time_zone(msg.time_zone)
        try:
            area = await area_store.update_area(
                self.store, current.id, opening_hours=hours, time_zone=zone
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
        checked = rules.area(
            msg.name, msg.time_zone, msg.opening_hours, msg.form_fields, msg.consent_text
        )
        name, zone, hours = checked.name, checked.time_zone, checked.opening_hours
        form, consent = checked.form_fields, checked.consent_text
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

    @handles(RotateAreaLink)
    async def _rotate_link(self, msg: RotateAreaLink) -> AreaSettings:
        current = await self._area_for_admin(msg.principal, msg.area_id)
        area = await area_store.rotate_slug(self.store, current.id)
        await audit.append(
            self.store,
            audit.AREA_LINK_ROTATED,
            actor_user_id=self._actor_id(msg.principal),
            area_id=area.id,
            subject=area.name,
            remote_addr=msg.remote_addr,
        )
        await self.ref(AREAS_HOST).ask(ReloadArea(area.id), timeout=RELOAD_TIMEOUT)
        return await self._settings(area)

    @handles(AddAreaClosure)
    async def _add_closure(self, msg: AddAreaClosure) -> ClosureEntry:
        area = await self._area_for_admin(msg.principal, msg.area_id)
        wanted = rules.closure(msg.starts_on, msg.ends_on, msg.reason)
        closure = await area_store.add_closure(
            self.store, area.id, wanted.starts_on, wanted.ends_on, wanted.reason
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
        person = rules.staff_member(msg.username, msg.display_name, msg.password, msg.email)
        username = person.username
        password_hash = await self.passwords.hash(msg.password)
        try:
            user = await staff.create_user(
                self.store,
                username,
                person.display_name,
                password_hash,
                email=person.email,
                org_id=await self._staff_org(msg.principal),
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
        grant = await self._check_scope(msg.principal, msg.role, msg.scope_type, msg.scope_id)
        try:
            user = await staff.get_user(self.store, msg.user_id)
            await staff.grant_role(self.store, user.id, grant.role, grant.scope_type, msg.scope_id)
        except NotFoundError as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        await self._audit_role(audit.ROLE_GRANTED, msg.principal, user.username, msg)
        self._rights_changed(user.id)
        return GrantEntry(msg.role, msg.scope_type, msg.scope_id, "")

    @handles(RevokeRole)
    async def _revoke(self, msg: RevokeRole) -> bool:
        grant = await self._check_scope(msg.principal, msg.role, msg.scope_type, msg.scope_id)
        try:
            user = await staff.get_user(self.store, msg.user_id)
        except NotFoundError as exc:
            raise Refusal(refusals.INVALID, str(exc)) from exc
        removed = await staff.revoke_role(
            self.store, user.id, grant.role, grant.scope_type, msg.scope_id
        )
        if removed:
            await self._audit_role(audit.ROLE_REVOKED, msg.principal, user.username, msg)
            self._rights_changed(user.id)
        return removed

    async def _staff_org(self, principal: Principal) -> int:
        """The organisation new staff join: the administrator's own (one they administer)."""
        orgs_administered = sorted({u.org_id for u in await self._admin_units(principal)})
        if principal.org_id is not None and int(principal.org_id) in orgs_administered:
            return int(principal.org_id)
        return orgs_administered[0]

    async def _member_for_admin(self, principal: Principal, user_id: int) -> staff.StaffUser:
        """A member of staff of an organisation the sender administers; anyone else, and an id
        that does not exist, are the same ``forbidden``."""
        units = await self._admin_units(principal)
        try:
            user = await staff.get_user(self.store, user_id)
        except NotFoundError as exc:
            raise _forbidden() from exc
        if user.org_id is None or user.org_id not in {u.org_id for u in units}:
            raise _forbidden()
        return user

    async def _end_sessions(self, user_id: int) -> None:
        """Sign the member out everywhere and have the directory close their sockets now."""
        await sessions.revoke_user_sessions(self.store, user_id)
        self._rights_changed(user_id)

    @handles(SetStaffActive)
    async def _set_active(self, msg: SetStaffActive) -> StaffEntry:
        user = await self._member_for_admin(msg.principal, msg.user_id)
        if str(user.id) == msg.principal.user_id and not msg.active:
            raise Refusal(refusals.INVALID, "You cannot deactivate yourself.")
        if user.active != msg.active:
            user = await staff.update_user(self.store, user.id, active=msg.active)
            await audit.append(
                self.store,
                audit.STAFF_REACTIVATED if msg.active else audit.STAFF_DEACTIVATED,
                actor_user_id=self._actor_id(msg.principal),
                subject=user.username,
                remote_addr=msg.remote_addr,
                details={"user_id": user.id},
            )
        if not msg.active:
            await self._end_sessions(user.id)
        return StaffEntry(user.id, user.username, user.display_name, user.email, user.active, ())

    @handles(ResetStaffPassword)
    async def _reset_password(self, msg: ResetStaffPassword) -> bool:
        user = await self._member_for_admin(msg.principal, msg.user_id)
        rules.password(msg.new_password)
        await staff.update_user(
            self.store, user.id, password_hash=await self.passwords.hash(msg.new_password)
        )
        await audit.append(
            self.store,
            audit.PASSWORD_RESET,
            actor_user_id=self._actor_id(msg.principal),
            subject=user.username,
            remote_addr=msg.remote_addr,
            details={"user_id": user.id},
        )
        await self._end_sessions(user.id)
        return True

    @handles(ChangeOwnPassword)
    async def _change_own_password(self, msg: ChangeOwnPassword) -> bool:
        if not msg.principal.is_staff or msg.principal.user_id is None:
            raise _forbidden()
        user_id = int(msg.principal.user_id)
        user = await staff.get_user(self.store, user_id)
        login = await staff.find_login(self.store, user.username)
        stored = login.password_hash if login is not None and login.user.id == user_id else None
        if login is None or not (await self.passwords.verify(stored, msg.current_password)).ok:
            raise Refusal(refusals.INVALID, "The current password is not right.")
        rules.password(msg.new_password)
        if msg.new_password == msg.current_password:
            raise Refusal(refusals.INVALID, "The new password must differ from the current one.")
        await staff.update_user(
            self.store, user_id, password_hash=await self.passwords.hash(msg.new_password)
        )
        await audit.append(
            self.store,
            audit.PASSWORD_CHANGED,
            actor_user_id=user_id,
            subject=login.user.username,
            remote_addr=msg.remote_addr,
        )
        await self._end_sessions(user_id)
        return True

    def _rights_changed(self, user_id: int) -> None:
        """Tell the directory, so the user's open sockets get the rights they hold now (or close)."""
        with contextlib.suppress(ActorError):
            self.ref(addresses.DIRECTORY).tell(GrantsChanged(str(user_id)))

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
