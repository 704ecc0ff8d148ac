"""Messages of meeting rooms and user rooms: what pages ask the ``meetings`` host, and what the
host asks the call actors it starts (``room/<id>``).

Kept apart from the actors so a page can build a message without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.principal import Principal

# -- administrators (the host checks they administer the unit) --------------------------------------


@dataclass(frozen=True)
class ListMeetingSetup:
    """The sender's units with their meeting rooms (archived too) and user rooms, and the staff
    an administrator may give a user room to."""

    principal: Principal


@dataclass(frozen=True)
class CreateMeetingRoom:
    principal: Principal
    unit_id: int
    name: str
    remote_addr: str = ""


@dataclass(frozen=True)
class RenameMeetingRoom:
    principal: Principal
    meeting_id: int
    name: str
    remote_addr: str = ""


@dataclass(frozen=True)
class ArchiveMeetingRoom:
    """Close the room for good; anyone in a meeting there is let go (the call ends)."""

    principal: Principal
    meeting_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class RotateGuestLink:
    """A new guest link; the old one admits nobody from now on."""

    principal: Principal
    meeting_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class CreateUserRoom:
    """A user room for ``user_id``, recorded under ``unit_id`` (a unit the sender administers)."""

    principal: Principal
    unit_id: int
    user_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class ArchiveUserRoom:
    principal: Principal
    room_id: str
    remote_addr: str = ""


# -- staff ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingRoomsFor:
    """The meeting rooms the sender may enter, each with who is in it now."""

    principal: Principal


@dataclass(frozen=True)
class UserRoomFor:
    """The sender's own user room (``None`` if they have none), with who is in it now."""

    principal: Principal


@dataclass(frozen=True)
class EnterMeetingRoom:
    """Start the room's call if need be; refuse ``forbidden`` without the meeting member role."""

    principal: Principal
    meeting_id: int


@dataclass(frozen=True)
class EnterUserRoom:
    """Start the sender's own user room's call if need be (``not_found`` if they have none)."""

    principal: Principal


# -- guests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DescribeGuestLink:
    """What the guest link page shows before anyone gives a name: the room's name."""

    link: str = field(repr=False)


@dataclass(frozen=True)
class GuestEnter:
    """A guest gives their name at the room's guest link; replies a ``GuestPass``."""

    link: str = field(repr=False)
    name: str = field(repr=False)
    remote_addr: str = ""


# -- the host to its call actors ------------------------------------------------------------------


@dataclass(frozen=True)
class Occupants:
    """Who is in the call now; replies a tuple of display names (each person once)."""


@dataclass(frozen=True)
class Expect:
    """Someone has been let in by a page and will connect shortly: the call does not end for
    being empty until they have come (or the wait is over)."""

    key: str


@dataclass(frozen=True)
class IssueGuestPass:
    """A meeting room's guest link was used: a guest token for ``name``, unless the call is full."""

    name: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class OccupancyChanged:
    """Told by a call to the host whenever someone enters or leaves, and at its end (nobody):
    the host pushes it to the consoles watching (``meetings.watch``)."""

    room_id: str
    people: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class CloseRoom:
    """The room was archived: end the call for everyone."""


# -- one node's host to the others' (a cluster: every node runs a host) ---------------------------


@dataclass(frozen=True)
class OccupancyHeard:
    """Who is in ``room_id``, whose call runs on ``node``: told by that node's host to every
    other node's, which keeps it for its consoles and pushes it to its own watchers."""

    room_id: str
    people: tuple[str, ...] = field(repr=False)
    node: str


@dataclass(frozen=True)
class OccupancyWanted:
    """A host that starts asks the others who is in the calls they run: replies a tuple of
    :class:`OccupancyHeard`."""


@dataclass(frozen=True)
class OccupancyLearned:
    """What the other hosts answered to :class:`OccupancyWanted` (told by the host's own task)."""

    heard: tuple[OccupancyHeard, ...]


@dataclass(frozen=True)
class EndCallHere:
    """A room was archived through another node: end its call if it runs on this one."""

    room_id: str


@dataclass(frozen=True)
class UserRoomsChanged:
    """A user room was created or archived through another node: read who owns which again."""


# -- replies ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingRoomView:
    """One meeting room as staff see it. ``people`` is empty when the room is not in use."""

    id: int
    room_id: str
    name: str
    unit_id: int
    unit_name: str
    guest_link: str = field(repr=False)
    people: tuple[str, ...] = field(default=(), repr=False)

    @property
    def in_use(self) -> bool:
        return bool(self.people)


@dataclass(frozen=True)
class UserRoomView:
    room_id: str
    name: str
    owner_user_id: int
    people: tuple[str, ...] = field(default=(), repr=False)

    @property
    def in_use(self) -> bool:
        return bool(self.people)


@dataclass(frozen=True)
class MeetingAdminEntry:
    id: int
    unit_id: int
    name: str
    guest_link: str = field(repr=False)
    archived: bool


@dataclass(frozen=True)
class UserRoomAdminEntry:
    room_id: str
    unit_id: int
    name: str
    owner_user_id: int


@dataclass(frozen=True)
class UnitChoice:
    id: int
    name: str


@dataclass(frozen=True)
class StaffChoice:
    id: int
    display_name: str
    username: str


@dataclass(frozen=True)
class MeetingSetupView:
    units: tuple[UnitChoice, ...]
    meeting_rooms: tuple[MeetingAdminEntry, ...]
    user_rooms: tuple[UserRoomAdminEntry, ...]
    staff: tuple[StaffChoice, ...]


@dataclass(frozen=True)
class GuestLinkInfo:
    name: str
