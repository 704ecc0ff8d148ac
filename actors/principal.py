"""Who is sending: a signed-in staff member or a service user holding a room token.

Every permission rule is decided from a :class:`Principal` where the message is handled (an actor or
the gateway), never by hiding a button. Roles are granted per organisational unit or per waiting
area; an organisation admin's grant covers every unit and area of the organisation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    ORG_ADMIN = "org_admin"
    UNIT_ADMIN = "unit_admin"
    PROVIDER = "provider"  # team member of a waiting area: sees its callers, joins them
    REFERRER = "referrer"  # may transfer callers into that area
    MEETING_MEMBER = "meeting_member"


class Scope(enum.StrEnum):
    ORG = "org"
    UNIT = "unit"
    AREA = "area"
    MEETING_ROOM = "meeting_room"  #: one meeting room (``meeting_rooms.id``): its members


@dataclass(frozen=True)
class Grant:
    role: Role
    scope: Scope
    scope_id: str


@dataclass(frozen=True)
class AreaPlace:
    """Where a waiting area sits, so unit- and org-wide grants can be checked against it."""

    area_id: str
    unit_id: str
    org_id: str


@dataclass(frozen=True)
class Principal:
    """A staff member (``user_id`` set) or a service user in one room (``room_id`` set)."""

    kind: str  # "staff" | "caller" | "guest"
    display_name: str = field(repr=False)
    user_id: str | None = None
    org_id: str | None = None
    grants: frozenset[Grant] = field(default_factory=frozenset)
    room_id: str | None = None
    participant_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    def has_role(self, role: Role, place: AreaPlace) -> bool:
        """Whether this principal holds ``role`` for the area at ``place`` (directly or above it)."""
        if not self.is_staff:
            return False
        for grant in self.grants:
            if grant.scope is Scope.ORG and grant.scope_id == place.org_id:
                if grant.role in (role, Role.ORG_ADMIN):
                    return True
            elif grant.scope is Scope.UNIT and grant.scope_id == place.unit_id:
                if grant.role in (role, Role.UNIT_ADMIN):
                    return True
            elif (
                grant.scope is Scope.AREA and grant.scope_id == place.area_id and grant.role is role
            ):
                return True
        return False

    def is_admin_of_unit(self, unit_id: str, org_id: str) -> bool:
        return any(
            (g.role is Role.ORG_ADMIN and g.scope is Scope.ORG and g.scope_id == org_id)
            or (g.role is Role.UNIT_ADMIN and g.scope is Scope.UNIT and g.scope_id == unit_id)
            for g in self.grants
        )

    def is_org_admin(self, org_id: str) -> bool:
        return any(
            g.role is Role.ORG_ADMIN and g.scope is Scope.ORG and g.scope_id == org_id
            for g in self.grants
        )
