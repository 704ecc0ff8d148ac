"""One breakout room of a group session: its own call, :class:`BreakoutPolicy` on the call core.

Each open breakout room is a call actor of its own at ``room/<id>``, with its own media call id
(``call_id_for``), so what its people send reaches only each other: media stays inside a room
because the media plane never mixes two calls. Its id is fresh at every opening, so a room's
address, media call and tokens die with the opening that made them.

Who may enter: a participant holding a seat in this room (the participant token the breakout desk
issued, ``storage.group_breakouts``), while the desk has them seated here; and the session's
moderators (staff), who visit by addressing the room and come back by leaving it. Anyone else,
staff of another session or organisation included, is answered exactly as for a room that does
not exist. It is held for nobody (no grace, no hold) and ends when the desk closes the rooms;
``call.end`` from inside is refused (the rooms close together, from the main call).

The desk tells the room everything (:class:`SeatsChanged`, :class:`ModeratorsChanged`,
:class:`IntoRoom`, :class:`RoomRenamed`, :class:`CloseBreakout`); the room tells the desk who is in
(:class:`RoomPeople`) and asks it when someone presses "ask for help" here (:class:`HelpAsked`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from actors import addresses, refusals
from actors.calls.core import Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind, Present
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.group.messages import MAX_CAPACITY, MAX_MODERATORS, Privacy, staff_member
from actors.inbound import CloseConnection, Inbound, Push, RedeemToken
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import handles
from storage import group_breakouts
from storage.db import Store

log = logging.getLogger(__name__)

#: ``room.state``'s ``kind`` of a breakout room's call.
KIND: Final = "breakout"
#: Websocket close code for a participant moved out of this room (or out of the session).
CLOSE_MOVED = 4006
#: Why a breakout room's call ends: its rooms closed; the session ended.
CLOSED: Final = "breakout_closed"


def not_here(room_id: str) -> Refusal:
    """What anyone who may not enter hears: the gateway's answer for a room that does not exist."""
    return Refusal(refusals.NOT_FOUND, f"{addresses.room(room_id)} does not exist (any more)")


# -- desk -> room ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SeatsChanged:
    """These members now sit in this room, and these no longer (moved, gone, sent back): their
    connections here are closed at once, so their media leaves the room with them."""

    seated: tuple[str, ...] = ()
    unseated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModeratorsChanged:
    """The staff user ids that may visit (the session's moderators and whoever ran it)."""

    user_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class IntoRoom:
    """An event for everyone in the room (a broadcast, the timer, the closing countdown).
    ``ends_at`` updates what ``room.state`` shows when it is not ``None``."""

    type: str
    body: dict[str, Any]
    ends_at: float | None = None


@dataclass(frozen=True, slots=True)
class RoomRenamed:
    """The moderator renamed this room while it runs: ``room.state`` shows the new name."""

    name: str


@dataclass(frozen=True, slots=True)
class CloseBreakout:
    """The rooms are closing now: end this call for everyone in it."""

    reason: str = CLOSED


# -- room -> desk ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoomPeople:
    """Who is connected in the room now: participants' member ids and visiting staff member ids."""

    room_id: str
    members: tuple[str, ...]
    staff: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HelpAsked:
    """An ask: the participant ``member_id`` in room ``room_id`` pressed "ask for help"."""

    room_id: str
    member_id: str


@dataclass(frozen=True)
class BreakoutStart:
    """What a breakout room is started with (it reads nothing else at its start)."""

    session_id: int
    room_id: str
    #: The plan's id of the room (the id ``group.breakout.*`` frames name) and its name.
    plan_id: str
    name: str
    #: The main call's room id (shown to pages: where "back" leads).
    main_room_id: str
    moderators: frozenset[str]
    seated: frozenset[str]
    ends_at: float | None
    #: The session's privacy: with ``hide_participant_list`` participants see the moderators and
    #: themselves by name only, here as in the main call (names are first names already when the
    #: session says so: the seat carries the name to show).
    privacy: Privacy = field(default_factory=Privacy)


class BreakoutPolicy:
    """What a breakout room sets on the call core (see the module docstring)."""

    #: A single room may hold the whole session.
    limit = MAX_CAPACITY + MAX_MODERATORS

    def __init__(self, store: Store, start: BreakoutStart) -> None:
        self.store = store
        self.start = start
        self.room_id = start.room_id
        self.name = start.name
        self.moderators = set(start.moderators)
        self.seated = set(start.seated)
        self.ends_at = start.ends_at

    @property
    def grace(self) -> float | None:
        return None

    async def restore(self) -> CallState:
        return CallState.IN_CALL

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.is_staff:
            if principal.user_id not in self.moderators:
                raise not_here(self.room_id)
            return ParticipantKind.STAFF
        if principal.room_id != self.room_id:
            raise not_here(self.room_id)
        if principal.participant_id not in self.seated:
            raise Refusal(refusals.FORBIDDEN, "you have been moved out of this breakout room")
        return ParticipantKind.GUEST

    def holds_for(self, person: Present) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "session": self.start.session_id,
            "breakout": self.start.plan_id,
            "name": self.name,
            "main": self.start.main_room_id,
            "ends_at": self.ends_at,
        }

    async def entered(self, call: Call, person: Present) -> None:
        self._tell_people(call)

    async def left(self, call: Call, person: Present) -> None:
        self._tell_people(call)

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        raise Refusal(refusals.NO_HOLD, "a breakout room has no hold")

    async def holding(self, call: Call) -> None:
        """Never: :meth:`hold_requested` refuses every hold."""

    async def held(self, call: Call) -> None:
        """Never: see :meth:`holding`."""

    async def end_requested(self, call: Call, request: Inbound) -> str:
        raise Refusal(
            refusals.FORBIDDEN,
            "breakout rooms close together: group.breakout.close in the main call",
        )

    async def abandoned(self, call: Call) -> str:
        return CLOSED  # never: held for nobody, no grace

    async def closing(self, call: Call, reason: str) -> None:
        """Every seat of the session goes when the rooms close (the desk revokes them in one go
        first); this room revokes its own too, in case it ends alone."""
        await group_breakouts.revoke_room_seats(self.store, self.room_id)

    def closed(self, call: Call, reason: str) -> None:
        log.info("%s (breakout %s) closed: %s", call.address, self.name, reason)
        self._tell_desk(call, RoomPeople(self.room_id, (), ()))

    def _tell_people(self, call: Call) -> None:
        members = _unique(
            p.principal.participant_id or ""
            for p in call.presence
            if p.kind is ParticipantKind.GUEST
        )
        staff = _unique(
            staff_member(p.principal.user_id)
            for p in call.presence
            if p.kind is ParticipantKind.STAFF
        )
        self._tell_desk(call, RoomPeople(self.room_id, members, staff))

    def _tell_desk(self, call: Call, message: object) -> None:
        with contextlib.suppress(ActorError):
            call.ref(addresses.group_breakouts(self.start.session_id)).tell(message)


def _member(person: Present) -> str:
    """A person's member id, as every ``group.*`` frame names them."""
    if person.kind is ParticipantKind.STAFF:
        return staff_member(person.principal.user_id)
    return person.principal.participant_id or ""


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in ids if i))


class BreakoutCall(Call):
    """``room/<id>`` of one open breakout room: the core on :class:`BreakoutPolicy`, plus its
    seats' tokens at hello and what the breakout desk tells it."""

    def __init__(self, store: Store, start: BreakoutStart, media: MediaPort | None) -> None:
        self.breakout = BreakoutPolicy(store, start)
        super().__init__(
            call_id_for(addresses.room(start.room_id)), start.room_id, self.breakout, media
        )
        self.store = store

    # -- what each person is shown (the session's privacy) ------------------------------------------
    def _entry(self, person: Present, viewer: Present | None) -> dict[str, Any]:
        view = person.view()
        view["member"] = _member(person)
        view["moderator"] = person.kind is ParticipantKind.STAFF
        hidden = (
            self.breakout.start.privacy.hide_participant_list
            and viewer is not None
            and viewer.kind is ParticipantKind.GUEST
            and person.kind is ParticipantKind.GUEST
            and person.person != viewer.person
        )
        if hidden:
            view["name"] = ""
            del view["member"]
        return view

    def state_view(self, person: Present | None = None) -> dict[str, Any]:
        view = super().state_view(person)
        view["participants"] = [self._entry(p, person) for p in self.presence]
        if person is not None:
            view["member"] = _member(person)
        return view

    def push_participants(self) -> None:
        for viewer in self.presence:
            entries = [self._entry(p, viewer) for p in self.presence]
            try:
                self.ref(viewer.conn).tell(Push("room.participants", {"participants": entries}))
            except ActorError:
                self._drop(viewer)

    @wire("chat.send")
    async def _chat(self, msg: Inbound) -> dict[str, Any]:
        """Chat to everyone in the room; with the list hidden, participants see who wrote only
        for moderators and themselves."""
        sender = self.member(msg.conn)
        text = str(msg.body["text"]).strip()
        if not text:
            raise Refusal(refusals.BAD_FIELD, "an empty message is not sent")
        at = datetime.now(UTC).timestamp()
        for viewer in self.presence:
            entry = self._entry(sender, viewer)
            body = {"from": entry["name"], "peer": sender.peer_id, "text": text, "at": at}
            try:
                self.ref(viewer.conn).tell(Push("chat.message", body))
            except ActorError:
                self._drop(viewer)
        return {}

    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        seat = await group_breakouts.find_seat(self.store, self.room_id, msg.secret)
        if seat is None or seat.member_id not in self.breakout.seated:
            raise Refusal(refusals.INVALID_TOKEN, "this breakout room has closed or you moved on")
        return Principal(
            kind=ParticipantKind.GUEST.value,
            display_name=seat.display_name,
            room_id=self.room_id,
            participant_id=seat.member_id,
        )

    @handles(SeatsChanged)
    async def _seats(self, msg: SeatsChanged) -> None:
        self.breakout.seated.update(msg.seated)
        self.breakout.seated.difference_update(msg.unseated)
        gone = set(msg.unseated) - set(msg.seated)
        for person in self.presence:
            if person.kind is ParticipantKind.GUEST and person.principal.participant_id in gone:
                with contextlib.suppress(ActorError):
                    self.ref(person.conn).tell(
                        CloseConnection(CLOSE_MOVED, "you are no longer in this breakout room")
                    )
                await self.leave(person.conn)

    @handles(ModeratorsChanged)
    async def _moderators(self, msg: ModeratorsChanged) -> None:
        self.breakout.moderators = set(msg.user_ids)

    @handles(IntoRoom)
    async def _into_room(self, msg: IntoRoom) -> None:
        if self.state is CallState.ENDED:
            return
        if msg.ends_at is not None:
            self.breakout.ends_at = msg.ends_at
        self.broadcast(Push(msg.type, msg.body))

    @handles(RoomRenamed)
    async def _renamed(self, msg: RoomRenamed) -> None:
        if self.state is CallState.ENDED or msg.name == self.breakout.name:
            return
        self.breakout.name = msg.name
        for person in self.presence:
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(Push("room.state", self.state_view(person)))

    @handles(CloseBreakout)
    async def _close(self, msg: CloseBreakout) -> None:
        await self.end(msg.reason)

    @wire("group.breakout.help")
    async def _help(self, msg: Inbound) -> dict[str, Any]:
        """ "Ask for help" pressed on the room's page: the desk tells the moderators which room."""
        person = self.member(msg.conn)
        if person.kind is not ParticipantKind.GUEST:
            raise Refusal(refusals.FORBIDDEN, "moderators are asked for help, they do not ask")
        reply: dict[str, Any] = await self.ref(
            addresses.group_breakouts(self.breakout.start.session_id)
        ).ask(HelpAsked(self.room_id, person.principal.participant_id or ""))
        return reply
