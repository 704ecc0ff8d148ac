"""The Setup actor's typed messages and replies: what the setup pages send and get back.

Kept apart from the actor and its rules so a page can build a message without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from actors.principal import Principal

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
class RotateAreaLink:
    """Give the area a new public link at once; the old one finds nothing from then on (issue
    15: a link spread where it should not be, or flooded). Callers already waiting stay."""

    principal: Principal
    area_id: int
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
    password: str = field(repr=False)
    email: str | None = None
    remote_addr: str = ""


@dataclass(frozen=True)
class SetStaffActive:
    """Deactivate (or reactivate) a member of staff of the administrator's organisation.

    Deactivating ends every session they have at once and closes their open pages' sockets;
    reactivating revives none of them: they sign in again."""

    principal: Principal
    user_id: int
    active: bool
    remote_addr: str = ""


@dataclass(frozen=True)
class ResetStaffPassword:
    """An administrator sets a new password for a member of staff of their organisation (a
    forgotten one); every session of that member ends."""

    principal: Principal
    user_id: int
    new_password: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class ChangeOwnPassword:
    """A member of staff changes their own password, proving the current one; every session of
    theirs ends, this one too, so a stolen session does not outlive the change."""

    principal: Principal
    current_password: str = field(repr=False)
    new_password: str = field(repr=False)
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
    slug: str = field(repr=False)
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
    #: (id, name) of the unit's open meeting rooms: a meeting member may be granted on one.
    meeting_rooms: tuple[tuple[int, str], ...] = ()


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
