"""What a meeting room and a user room set on the call core: two :class:`CallPolicy` objects.

Both rooms are permanent (a ``rooms`` row that stays open until an administrator archives it);
each of their calls is one run of a call actor, from the first person in to the end. They share
what such a room does (:class:`PermanentRoomPolicy`): a call record from the first entry, a
participant row and an audit entry per entry, the end when the last person leaves, guest tokens
and invitations revoked at the end, no hold. They differ in who enters, for whom the call is held
and when it ends otherwise; ``docs/lifecycle.md`` has the table.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final

import trio

from actors import addresses, refusals
from actors.calls.core import Call
from actors.calls.presence import ParticipantKind, Present
from actors.calls.state import CallState
from actors.inbound import Inbound
from actors.meetings.messages import OccupancyChanged
from actors.principal import AreaPlace, Principal, Role, Scope
from runtime.errors import ActorError, Refusal
from storage import audit, calls
from storage import meeting_rooms as store_rooms
from storage.db import Store
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

#: Everyone in a meeting room or a user room at once (seed 001: "up to 6").
MAX_PARTICIPANTS = 6
#: A user room waits this long for its owner (seconds), then the call ends; the room stays.
OWNER_GRACE = 120.0
#: Someone a page has just let in has this long (seconds) to connect before an empty call ends.
EXPECT_WINDOW = 60.0

#: Why a call of a permanent room ends.
EMPTY: Final = "empty"  #: the last person left
ENDED: Final = "ended"  #: someone pressed "End call"
LEFT: Final = "left"  #: the owner did not come back within the grace
ARCHIVED: Final = "archived"  #: an administrator archived the room
UNUSED: Final = "unused"  #: started, and nobody came

_RECORD_KIND = {
    ParticipantKind.STAFF: "staff",
    ParticipantKind.CALLER: "caller",
    ParticipantKind.GUEST: "guest",
}


@dataclass(frozen=True, slots=True)
class Emptied:
    """Told by the policy to its call when the last person has left."""


def expect_key(principal: Principal) -> str:
    """Who a page let in, as the call recognises them when they enter."""
    if principal.is_staff:
        return f"user:{principal.user_id}"
    return f"guest:{principal.participant_id}"


def people_in(call: Call) -> tuple[str, ...]:
    """Who is in the call, each person once (tabs of one person count once), in entry order."""
    names: dict[str, str] = {}
    for person in call.presence:
        names.setdefault(person.person, person.principal.display_name)
    return tuple(names.values())


def _user_id(principal: Principal) -> int | None:
    return int(principal.user_id) if principal.user_id else None


class PermanentRoomPolicy:
    """What meeting rooms and user rooms share (see the module docstring)."""

    limit = MAX_PARTICIPANTS
    #: The audit actions of this kind of room.
    STARTED: str = ""
    ENTERED: str = ""
    FINISHED: str = ""

    def __init__(self, store: Store, room_id: str) -> None:
        self.store = store
        self.room_id = room_id
        self.name = ""
        self.unit_id = 0
        self.org_id = 0
        #: The ``calls`` row of this call, from the first entry on.
        self.record_id: str | None = None
        #: Who a page let in and has not connected yet -> until when (``trio.current_time``).
        self.expected: dict[str, float] = {}

    # -- expectations ---------------------------------------------------------------------------
    def expect(self, key: str) -> None:
        self.expected[key] = trio.current_time() + EXPECT_WINDOW

    def expecting(self) -> bool:
        now = trio.current_time()
        self.expected = {k: until for k, until in self.expected.items() if until > now}
        return bool(self.expected)

    def guests_on_their_way(self) -> int:
        """Guests given a token in the last :data:`EXPECT_WINDOW` who have not come in yet: the
        guest link counts them as people, so a seventh is refused at the link, not in the call."""
        self.expecting()
        return sum(1 for key in self.expected if key.startswith("guest:"))

    async def close_stale_record(self) -> None:
        """A call record still open from a call that did not end (the server or the actor
        stopped under it) ends now: each start is a new call, nobody is in it any more."""
        stale = await calls.active_call_for_room(self.store, self.room_id)
        if stale is not None:
            await calls.end_call(self.store, stale.id)

    # -- what the core asks (each kind decides the first four) ------------------------------------
    @property
    def grace(self) -> float | None:
        raise NotImplementedError

    async def restore(self) -> CallState:
        raise NotImplementedError

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        raise NotImplementedError

    def holds_for(self, person: Present) -> bool:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"meeting": self.name}

    async def entered(self, call: Call, person: Present) -> None:
        self.expected.pop(expect_key(person.principal), None)
        if self.record_id is None:
            record = await calls.start_call(self.store, self.room_id)
            self.record_id = record.id
            await audit.append(
                self.store,
                self.STARTED,
                actor_kind="user" if person.principal.is_staff else "guest",
                actor_user_id=_user_id(person.principal),
                subject=self.room_id,
                details={"name": self.name, "unit_id": self.unit_id},
            )
        row = await calls.add_participant(
            self.store,
            self.record_id,
            _RECORD_KIND[person.kind],  # type: ignore[arg-type]
            person.principal.display_name,
            user_id=_user_id(person.principal),
        )
        person.participant_row = row.id
        await audit.append(
            self.store,
            self.ENTERED,
            actor_kind="user" if person.principal.is_staff else "guest",
            actor_user_id=_user_id(person.principal),
            subject=self.room_id,
            details={"name": self.name, "as": person.kind.value},
        )
        self._tell_occupancy(call, people_in(call))

    async def left(self, call: Call, person: Present) -> None:
        if person.participant_row is not None:
            with contextlib.suppress(Exception):
                await calls.participant_left(self.store, person.participant_row)
        self._tell_occupancy(call, people_in(call))
        if not len(call.presence) and call.state is not CallState.ENDED:
            with contextlib.suppress(ActorError):
                call.self_ref.tell(Emptied())

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        raise Refusal(refusals.NO_HOLD, "this room has no hold: leave, or end the call")

    async def holding(self, call: Call) -> None:
        """Never: :meth:`hold_requested` refuses every hold."""

    async def held(self, call: Call) -> None:
        """Never: see :meth:`holding`."""

    async def end_requested(self, call: Call, request: Inbound) -> str:
        return ENDED

    async def abandoned(self, call: Call) -> str:
        return LEFT

    async def closing(self, call: Call, reason: str) -> None:
        """The room stays; this call's guests and invitations do not outlive it."""
        await store_rooms.revoke_guests(self.store, self.room_id)
        if self.record_id is None:
            return  # nobody came: no call to record
        await calls.end_call(self.store, self.record_id)
        await audit.append(
            self.store,
            self.FINISHED,
            actor_kind="system",
            subject=self.room_id,
            details={"name": self.name, "reason": reason},
        )
        self.record_id = None

    def closed(self, call: Call, reason: str) -> None:
        log.info("%s (%s) call ended: %s", call.address, self.name, reason)
        self._tell_occupancy(call, ())

    def _tell_occupancy(self, call: Call, people: tuple[str, ...]) -> None:
        """The host tells the consoles watching; a host that is busy or restarting misses one
        change, and the console's next load is right again."""
        with contextlib.suppress(ActorError):
            call.ref(addresses.MEETINGS).tell(OccupancyChanged(self.room_id, people))


class MeetingRoomPolicy(PermanentRoomPolicy):
    """A unit's meeting room: staff with the meeting member role (on the unit, the organisation
    or this room) and guests holding a token from the room's guest link; never callers. Held for
    nobody: no grace, no hold; the call ends when the last person leaves."""

    STARTED = audit.MEETING_CALL_STARTED
    ENTERED = audit.MEETING_ENTERED
    FINISHED = audit.MEETING_CALL_ENDED

    def __init__(self, store: Store, room_id: str) -> None:
        super().__init__(store, room_id)
        self.meeting_id = 0

    @property
    def grace(self) -> float | None:
        return None

    async def restore(self) -> CallState:
        room = await store_rooms.meeting_room_for_room(self.store, self.room_id)
        if room is None or room.archived:
            raise Refusal(refusals.CLOSED, "this meeting room has been archived")
        self.load(room)
        await self.close_stale_record()
        return CallState.IN_CALL

    def load(self, room: store_rooms.MeetingRoom) -> None:
        self.meeting_id, self.name = room.id, room.name
        self.unit_id, self.org_id = room.unit_id, room.org_id

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.is_staff:
            if not may_meet(principal, self.meeting_id, self.unit_id, self.org_id):
                raise Refusal(
                    refusals.FORBIDDEN, f"you are not a meeting room member in {self.name}"
                )
            return ParticipantKind.STAFF
        if principal.kind == ParticipantKind.GUEST.value and principal.room_id == self.room_id:
            return ParticipantKind.GUEST
        raise Refusal(refusals.FORBIDDEN, "meeting rooms are for staff and their guests")

    def holds_for(self, person: Present) -> bool:
        return False


def may_meet(principal: Principal, meeting_id: int, unit_id: int, org_id: int) -> bool:
    """The meeting member role on this room, its unit or its organisation (admins above them
    hold it too, as for every unit- and organisation-wide role)."""
    if not principal.is_staff:
        return False
    for grant in principal.grants:
        if (
            grant.role is Role.MEETING_MEMBER
            and grant.scope is Scope.MEETING_ROOM
            and grant.scope_id == str(meeting_id)
        ):
            return True
    return principal.has_role(Role.MEETING_MEMBER, AreaPlace("", str(unit_id), str(org_id)))


class UserRoomPolicy(PermanentRoomPolicy):
    """One staff member's own room: its owner (signed in) and the guests the owner invited.

    Held for the owner: the owner always has a place, and when the owner has been gone for
    :data:`OWNER_GRACE` the call ends; it ends at once when the last person leaves."""

    STARTED = audit.USER_ROOM_CALL_STARTED
    ENTERED = audit.USER_ROOM_ENTERED
    FINISHED = audit.USER_ROOM_CALL_ENDED

    def __init__(self, store: Store, room_id: str, grace: float = OWNER_GRACE) -> None:
        super().__init__(store, room_id)
        self.owner_user_id = 0
        self.owner_grace = grace

    @property
    def grace(self) -> float | None:
        return self.owner_grace

    async def restore(self) -> CallState:
        try:
            room = await store_rooms.get_user_room(self.store, self.room_id)
        except NotFoundError:
            raise Refusal(refusals.CLOSED, "this room does not exist") from None
        if room.archived:
            raise Refusal(refusals.CLOSED, "this user room has been archived")
        self.name, self.owner_user_id = room.name, room.owner_user_id
        self.unit_id, self.org_id = room.unit_id, room.org_id
        await self.close_stale_record()
        return CallState.IN_CALL

    def is_owner(self, principal: Principal) -> bool:
        return principal.is_staff and principal.user_id == str(self.owner_user_id)

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.is_staff:
            if not self.is_owner(principal):
                raise Refusal(refusals.FORBIDDEN, f"only its owner enters {self.name}")
            return ParticipantKind.STAFF
        if principal.kind == ParticipantKind.GUEST.value and principal.room_id == self.room_id:
            return ParticipantKind.GUEST
        raise Refusal(refusals.FORBIDDEN, "this is not your room")

    def holds_for(self, person: Present) -> bool:
        return self.is_owner(person.principal)
