"""The breakout desk of one group session (``breakouts/<session id>``): runs its breakout rooms.

The group call forwards every ``group.breakout.*`` frame here (:class:`BreakoutFrame`, an ask:
what a handler returns is the frame's reply, its refusal the frame's refusal). The desk keeps the
session's :class:`~actors.group.breakout_plan.Plan` (the rules are there, pure) and, while rooms
are open, who sits where. Opening the rooms starts one call per room
(:class:`~actors.group.breakout_call.BreakoutCall`, its own media call: media stays inside a
room), gives everyone in a room a fresh participant token for it (``group.breakout.move``; the
page opens a second websocket with it) and tells the group call (:class:`InBreakout`). A timer
(``send_after``) ends the rooms; extending or shortening re-arms it. Closing, by the moderator or
the timer, is a countdown of :data:`CLOSING_COUNTDOWN` seconds in every room, then everyone is
back in the main call: seats revoked, the rooms' calls ended, the plan kept for reopening (in
storage too, so a restarted desk remembers it).

**Started again.** While the rooms run, storage says so too (the plan's record: the rooms' ids,
the phase, when the timer or the countdown ends, when they opened; the seats are rows of their
own). A desk that starts (its node died and a message for one of its rooms or for it brought it
back, see ``GroupDesk``'s ``StartAgain``; or it crashed) with rooms open resumes them: their
calls start again with the same room ids and the people whose seats are still valid, so the pages'
room sockets enter again with the tokens they hold; the timer is armed for what is left of it (due
at once if that moment has passed). Rooms that closed are not started again.

Participants may choose (``group.breakout.choose``) when the moderator lets them, and ask for help
(``group.breakout.help``, from the main socket or the room's); everything else is the moderators'
and refused ``not_moderator`` from anyone else, before any field is looked at. Events go out
through the group call (:class:`PushToMembers`) and, for what happens in the rooms (a broadcast,
the timer, the countdown), into each room's call (:class:`IntoRoom`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import trio

from actors import addresses, refusals
from actors.calls.media import MediaPort
from actors.group import breakout_plan as plans
from actors.group.breakout_call import (
    BreakoutCall,
    BreakoutStart,
    CloseBreakout,
    HelpAsked,
    IntoRoom,
    ModeratorsChanged,
    RoomPeople,
    RoomRenamed,
    SeatsChanged,
)
from actors.group.breakout_plan import CLOSING_COUNTDOWN, Mode, Phase, Plan
from actors.group.messages import (
    BreakoutFactory,
    BreakoutFrame,
    BreakoutSetup,
    GroupEnded,
    GroupMember,
    InBreakout,
    MembersChanged,
    PushToMembers,
    participant_member,
    staff_member,
)
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, Timer, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import audit, group_breakouts
from storage.db import Store, new_id

log = logging.getLogger(__name__)

#: Why rooms close: the moderator closed them; their time ran out; the session ended.
BY_MODERATOR: Final = "moderator"
BY_TIMER: Final = "timer"
SESSION_ENDED: Final = "session_ended"


@dataclass(frozen=True, slots=True)
class RoomsDue:
    """The rooms' timer: their time is up (ignored if it belongs to an earlier timer)."""

    generation: int


@dataclass(frozen=True, slots=True)
class CountdownOver:
    """The closing countdown has run out: everyone back (ignored if stale)."""

    generation: int


def wall_clock() -> float:
    """Epoch seconds: what ``ends_at`` tells pages (they count down against their own clock)."""
    return datetime.now(UTC).timestamp()


def _user_id(principal: Principal) -> int | None:
    uid = principal.user_id
    return int(uid) if uid is not None and uid.isdigit() else None


Handler = Callable[["BreakoutDesk", BreakoutFrame], Awaitable[dict[str, Any]]]


class BreakoutDesk(Actor):
    """One session's breakout rooms (see the module docstring)."""

    def __init__(
        self,
        setup: BreakoutSetup,
        store: Store,
        supervisor: Supervisor,
        media: MediaPort | None,
        rng: random.Random | None = None,
        countdown: float = CLOSING_COUNTDOWN,
    ) -> None:
        super().__init__()
        self.setup = setup
        self.store = store
        self.supervisor = supervisor
        self.media = media
        self.rng = rng or random.Random()
        self.countdown = countdown
        self.plan = Plan()
        self.phase = Phase.NONE
        #: Admitted participants now (member id -> member), as the group call last said.
        self.members: dict[str, GroupMember] = {}
        #: Every name seen, so a remembered assignment of someone gone still shows who it was.
        self.names: dict[str, str] = {}
        #: Staff user ids who run the session (the moderators, and anyone the call said may).
        self.moderators: set[str] = {str(u) for u in setup.moderator_ids}
        #: While open: plan room id -> this opening's room id (``room/<id>``, its call).
        self.live: dict[str, str] = {}
        #: While open: member id -> plan room id of everyone moved into a room.
        self.seated: dict[str, str] = {}
        #: Who is connected in each live room (as its call last said).
        self.present: dict[str, RoomPeople] = {}
        #: Plan room id -> when (epoch) someone there asked for help; cleared by a visit.
        self.help: dict[str, float] = {}
        self._deadline: float | None = None  # trio time the rooms' time (or countdown) is up
        self._ends_wall: float | None = None  # the same moment as pages see it (epoch)
        self._timer: Timer | None = None
        self._generation = 0
        self._opened_at: float | None = None
        self._opened_wall: float | None = None  # the same moment, epoch (kept for a restart)
        self._closing_reason = BY_TIMER
        self._closed_by: Principal | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_start(self) -> None:
        record = await group_breakouts.load_plan(self.store, self.setup.session_id)
        self.plan = plans.from_record(record)
        self.phase = Phase.READY if self.plan.rooms else Phase.NONE
        left_open = dict((record or {}).get("live") or {})
        if left_open and await self._resume(record or {}, left_open):
            return
        revoked = await group_breakouts.revoke_session_seats(self.store, self.setup.session_id)
        if left_open or revoked:
            # The desk stopped while rooms were open: they close now, everyone is back.
            for room_id in left_open.values():
                self._tell(addresses.room(str(room_id)), CloseBreakout())
            back = tuple(self.plan.assigned)
            if back:
                self._tell_call(InBreakout(back, None))
                self._push(back, "group.breakout.back", {})
            await self._save()

    async def _resume(self, record: Mapping[str, Any], left_open: Mapping[str, Any]) -> bool:
        """Rooms open in storage: run them again as they were (see the module docstring); False
        for a record that cannot be resumed (written before it said its phase and end)."""
        phase = record.get("phase")
        ends_wall = record.get("ends_at")
        if phase not in (Phase.OPEN.value, Phase.CLOSING.value) or not isinstance(
            ends_wall, int | float
        ):
            return False
        self.live = {
            str(plan_room): str(live)
            for plan_room, live in left_open.items()
            if self.plan.has_room(plan_room)
        }
        if not self.live:
            return False
        self.phase = Phase(phase)
        self._closing_reason = str(record.get("closing_reason") or BY_TIMER)
        by_live = {live: plan_room for plan_room, live in self.live.items()}
        for seat in await group_breakouts.valid_seats(self.store, self.setup.session_id):
            if seat.room_id in by_live:
                self.seated[seat.member_id] = by_live[seat.room_id]
                self.names.setdefault(seat.member_id, seat.display_name)
        now = wall_clock()
        opened = record.get("opened_at")
        self._opened_wall = float(opened) if isinstance(opened, int | float) else now
        ran = now - self._opened_wall
        self._opened_at = trio.current_time() - max(0.0, ran)
        self._generation += 1
        due: object = (
            RoomsDue(self._generation)
            if self.phase is Phase.OPEN
            else CountdownOver(self._generation)
        )
        self._arm(max(0.0, float(ends_wall) - now), due, float(ends_wall))
        for room in self.plan.rooms:
            if room.id in self.live:
                await self._start_room(room.id)
        for room in self.plan.rooms:
            people = tuple(m for m, r in self.seated.items() if r == room.id)
            if people and room.id in self.live:
                self._tell_call(InBreakout(people, self.live[room.id], room.name))
        log.info(
            "breakouts/%s: %d room(s) resumed (%s), %d seated",
            self.setup.session_id,
            len(self.live),
            self.phase.value,
            len(self.seated),
        )
        self._push_rooms_view()
        return True

    async def _start_room(self, plan_room: str) -> None:
        """Start the call of this opening's room ``plan_room`` (again) with who sits there now;
        one already running here is left as it is (a placing supervisor learns who runs it)."""
        room = self.plan.room(plan_room)
        start = BreakoutStart(
            session_id=self.setup.session_id,
            room_id=self.live[room.id],
            plan_id=room.id,
            name=room.name,
            main_room_id=self.setup.room_id,
            moderators=frozenset(self.moderators),
            seated=frozenset(m for m, r in self.seated.items() if r == room.id),
            ends_at=self._ends_at(),
            privacy=self.setup.privacy,
        )
        address = addresses.room(start.room_id)
        if address in self.registry:
            return
        await self.supervisor.start_child(
            ChildSpec(address, _room_factory(self.store, start, self.media), Restart.TRANSIENT)
        )

    # -- frames -----------------------------------------------------------------------------------
    @handles(BreakoutFrame)
    async def _frame(self, msg: BreakoutFrame) -> dict[str, Any]:
        entry = _FRAMES.get(msg.inbound.type)
        if entry is None:
            raise Refusal(refusals.UNKNOWN_TYPE, f"no breakout message {msg.inbound.type!r}")
        handler, moderators_only = entry
        if moderators_only and not msg.is_moderator:
            raise Refusal(refusals.NOT_MODERATOR, "only the session's moderators do this")
        principal = msg.inbound.principal
        uid = principal.user_id
        if msg.is_moderator and principal.is_staff and uid and uid not in self.moderators:
            self.moderators.add(uid)
            self._tell_rooms(ModeratorsChanged(frozenset(self.moderators)))
        await self._members_now(msg.participants)
        return await handler(self, msg)

    async def _state(self, msg: BreakoutFrame) -> dict[str, Any]:
        if msg.is_moderator:
            return self.moderator_view()
        member = self._sender(msg)
        view = plans.participant_view(self.plan, member, self.phase, self._ends_at())
        room = self.seated.get(member)
        if room is not None and self.phase is Phase.OPEN:
            # A reloaded page lost its room's token: a fresh seat (the old one is revoked).
            view["move"] = (await self._issue({member: room}))[member]
        return view

    async def _create(self, msg: BreakoutFrame) -> dict[str, Any]:
        self._not_running()
        body = msg.inbound.body
        self.plan = plans.create(body.get("count"), body.get("names"), new_id, self.plan)
        self.phase = Phase.READY
        await self._changed()
        return self.moderator_view()

    async def _rename(self, msg: BreakoutFrame) -> dict[str, Any]:
        body = msg.inbound.body
        plans.rename(self.plan, body.get("room"), body.get("name"))
        room = self.plan.room(body.get("room"))
        live = self.live.get(room.id)
        if live is not None:
            self._tell(addresses.room(live), RoomRenamed(room.name))
        await self._changed()
        return self.moderator_view()

    async def _assign(self, msg: BreakoutFrame) -> dict[str, Any]:
        self._not_running()
        if not self.plan.rooms:
            raise Refusal(refusals.BAD_FIELD, "create the rooms first")
        body = msg.inbound.body
        mode = plans.check_mode(body.get("mode", Mode.MANUAL.value))
        given = body.get("assignments")
        if mode is Mode.RANDOM:
            assigned = plans.assign_evenly(
                list(self.members), [room.id for room in self.plan.rooms], self.rng
            )
            self.plan.assigned = assigned
        elif given is not None:  # without any: the mode changes, everyone stays where they are
            plans.apply(self.plan, plans.check_assignments(self.plan, given, self.members))
        self.plan.mode = mode
        await self._changed()
        return self.moderator_view()

    async def _choose(self, msg: BreakoutFrame) -> dict[str, Any]:
        if msg.is_moderator:
            raise Refusal(refusals.FORBIDDEN, "moderators visit rooms; participants choose them")
        member = self._sender(msg)
        if member not in self.members:
            raise Refusal(refusals.NOT_ADMITTED, "you are not in the call")
        if self.plan.mode is not Mode.CHOOSE:
            raise Refusal(refusals.FORBIDDEN, "the moderator assigns the breakout rooms")
        room = self.plan.room(msg.inbound.body.get("room"))
        if self.phase is Phase.CLOSING:
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "the breakout rooms are closing")
        if self.phase is Phase.OPEN:
            await self._seat({member: room.id})
        else:
            plans.apply(self.plan, {member: room.id})
        await self._changed()
        return plans.participant_view(self.plan, member, self.phase, self._ends_at())

    async def _open(self, msg: BreakoutFrame) -> dict[str, Any]:
        if not self.plan.rooms:
            raise Refusal(refusals.BAD_FIELD, "create the rooms first")
        self._not_running()
        duration = plans.check_duration(msg.inbound.body.get("duration"))
        if self.plan.mode is Mode.RANDOM:
            for member in self.members:
                if member not in self.plan.assigned:
                    plans.apply(self.plan, {member: plans.smallest_room(self.plan)})
        going = {m: r for m, r in self.plan.assigned.items() if m in self.members}
        self._generation += 1
        self.phase = Phase.OPEN
        self._arm(duration, RoomsDue(self._generation))
        self._opened_at = trio.current_time()
        self.live = {room.id: new_id() for room in self.plan.rooms}
        self._opened_wall = wall_clock()
        # Before the rooms start: a restarted desk knows what to resume (or close).
        await group_breakouts.open_rooms(
            self.store, self.setup.session_id, self._record(), list(self.live.values())
        )
        ends_at = self._ends_at()
        self.seated = dict(going)
        for room in self.plan.rooms:
            await self._start_room(room.id)
        moves = await self._issue(going)
        for member, move in moves.items():
            self._push((member,), "group.breakout.move", move)
        for room in self.plan.rooms:
            people = tuple(m for m, r in going.items() if r == room.id)
            if people:
                self._tell_call(InBreakout(people, self.live[room.id], room.name))
        self._push(None, "group.breakout.timer", {"ends_at": ends_at})
        await self._changed()
        await audit.append(
            self.store,
            audit.GROUP_BREAKOUT_OPENED,
            actor_user_id=_user_id(msg.inbound.principal),
            subject=f"group:{self.setup.session_id}",
            remote_addr=msg.inbound.remote_addr,
            details={
                "rooms": len(self.plan.rooms),
                "people": len(going),
                "duration": duration,
                "mode": self.plan.mode.value,
            },
        )
        return self.moderator_view()

    async def _extend(self, msg: BreakoutFrame) -> dict[str, Any]:
        if self.phase is not Phase.OPEN:
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "the breakout rooms are not running")
        left = plans.adjusted(self._remaining(), msg.inbound.body.get("seconds"))
        if left <= 0:
            self._closed_by = msg.inbound.principal
            self._begin_closing(BY_MODERATOR)
        else:
            self._generation += 1
            moved = (self._ends_wall or wall_clock()) + (left - self._remaining())
            self._arm(left, RoomsDue(self._generation), moved)
            self._announce_timer()
        await self._changed()
        return {"ends_at": self._ends_at(), "phase": self.phase.value}

    async def _broadcast(self, msg: BreakoutFrame) -> dict[str, Any]:
        if self.phase not in (Phase.OPEN, Phase.CLOSING):
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "no breakout rooms are open")
        text = plans.check_text(msg.inbound.body.get("text"))
        body = {"text": text, "from": msg.inbound.principal.display_name, "at": wall_clock()}
        self._tell_rooms(IntoRoom("group.breakout.broadcast", body))
        return {"rooms": len(self.live)}

    async def _move(self, msg: BreakoutFrame) -> dict[str, Any]:
        body = msg.inbound.body
        member = body.get("id")
        if not isinstance(member, str) or member not in self.members:
            raise Refusal(refusals.NOT_FOUND, "no such participant in the call")
        target = body.get("room")
        room_id = None if target is None else self.plan.room(target).id
        if self.phase is Phase.CLOSING:
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "the breakout rooms are closing")
        if self.phase is not Phase.OPEN:
            plans.apply(self.plan, {member: room_id})
        elif room_id is None:
            await self._unseat([member], back=True)
            plans.apply(self.plan, {member: None})
        else:
            await self._seat({member: room_id})
        await self._changed()
        return self.moderator_view()

    async def _help_frame(self, msg: BreakoutFrame) -> dict[str, Any]:
        if msg.is_moderator:
            raise Refusal(refusals.FORBIDDEN, "moderators are asked for help, they do not ask")
        return self._help(self._sender(msg))

    async def _close(self, msg: BreakoutFrame) -> dict[str, Any]:
        if self.phase is Phase.OPEN:
            self._closed_by = msg.inbound.principal
            self._begin_closing(BY_MODERATOR)
            await self._changed()
        elif self.phase is not Phase.CLOSING:
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "no breakout rooms are open")
        return self.moderator_view()

    # -- what the rooms and the group call tell the desk ------------------------------------------
    @handles(HelpAsked)
    async def _help_asked(self, msg: HelpAsked) -> dict[str, Any]:
        return self._help(msg.member_id)

    @handles(RoomPeople)
    async def _room_people(self, msg: RoomPeople) -> None:
        plan_room = next((p for p, live in self.live.items() if live == msg.room_id), None)
        if plan_room is None:
            return  # a room of an earlier opening reporting its end
        before = self.present.get(msg.room_id)
        self.present[msg.room_id] = msg
        if msg.staff and plan_room in self.help:
            del self.help[plan_room]  # a moderator is there now
        if before != msg:
            self._push_rooms_view()

    @handles(MembersChanged)
    async def _members_changed(self, msg: MembersChanged) -> None:
        await self._members_now(msg.participants)

    @handles(GroupEnded)
    async def _group_ended(self, msg: GroupEnded) -> None:
        if self.phase in (Phase.OPEN, Phase.CLOSING):
            self._closing_reason = SESSION_ENDED
            await self._finish()
        self.stop()

    @handles(RoomsDue)
    async def _rooms_due(self, msg: RoomsDue) -> None:
        if msg.generation != self._generation or self.phase is not Phase.OPEN:
            return
        self._timer = None
        self._closed_by = None
        self._begin_closing(BY_TIMER)
        await self._save()
        self._push_rooms_view()

    @handles(CountdownOver)
    async def _countdown_over(self, msg: CountdownOver) -> None:
        if msg.generation != self._generation or self.phase is not Phase.CLOSING:
            return
        self._timer = None
        await self._finish()

    # -- opening, moving, closing -----------------------------------------------------------------
    async def _issue(self, seats: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """A fresh seat for each member in their room (one transaction): their move events."""
        requests = [
            group_breakouts.SeatRequest(self.live[room], member, self._room_name_for(member))
            for member, room in seats.items()
        ]
        secrets = await group_breakouts.issue_seats(self.store, self.setup.session_id, requests)
        moves: dict[str, dict[str, Any]] = {}
        for member, room in seats.items():
            live = self.live[room]
            moves[member] = {
                "room": room,
                "name": self.plan.room(room).name,
                "token": f"{live}.{secrets[member]}",
                "address": addresses.room(live),
                "ends_at": self._ends_at(),
            }
        return moves

    async def _seat(self, seats: Mapping[str, str]) -> None:
        """Move these members into these rooms while the rooms run (from the main call or from
        another room): a new token each, out of the old room's call, into the new one's."""
        plans.apply(self.plan, seats)
        moving = {m: r for m, r in seats.items() if self.seated.get(m) != r}
        if not moving:
            return
        for member, room in moving.items():
            old = self.seated.get(member)
            if old is not None:
                self._tell(addresses.room(self.live[old]), SeatsChanged(unseated=(member,)))
            self._tell(addresses.room(self.live[room]), SeatsChanged(seated=(member,)))
            self.seated[member] = room
        moves = await self._issue(moving)
        for member, move in moves.items():
            self._push((member,), "group.breakout.move", move)
            room = moving[member]
            self._tell_call(InBreakout((member,), self.live[room], self.plan.room(room).name))

    async def _unseat(self, members: Iterable[str], back: bool) -> None:
        """Out of their rooms while the rooms run; ``back``: into the main call (else they left
        the session, and the group call knows already)."""
        out = [m for m in members if m in self.seated]
        for member in out:
            room = self.seated.pop(member)
            self._tell(addresses.room(self.live[room]), SeatsChanged(unseated=(member,)))
            await group_breakouts.revoke_member_seats(self.store, self.setup.session_id, member)
        if back and out:
            self._tell_call(InBreakout(tuple(out), None))
            self._push(tuple(out), "group.breakout.back", {})

    def _begin_closing(self, reason: str) -> None:
        """The last :attr:`countdown` seconds, seen in every room and by everyone."""
        self._closing_reason = reason
        self.phase = Phase.CLOSING
        self._generation += 1
        self._arm(self.countdown, CountdownOver(self._generation))
        body = {"ends_at": self._ends_at(), "in_seconds": int(self.countdown), "reason": reason}
        self._tell_rooms(IntoRoom("group.breakout.closing", body, self._ends_at()))
        self._push(None, "group.breakout.closing", body)

    async def _finish(self) -> None:
        """Everyone back in the main call; the rooms' calls end; the plan stays."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._generation += 1
        back = tuple(self.seated)
        await group_breakouts.revoke_session_seats(self.store, self.setup.session_id)
        if back:
            self._tell_call(InBreakout(back, None))
            self._push(back, "group.breakout.back", {})
        self._tell_rooms(CloseBreakout())
        rooms = len(self.live)
        ran = trio.current_time() - self._opened_at if self._opened_at is not None else 0.0
        self.phase = Phase.READY
        self.live.clear()
        self.seated.clear()
        self.present.clear()
        self.help.clear()
        self._deadline = self._ends_wall = None
        self._opened_at = self._opened_wall = None
        await self._changed()
        by = self._closed_by
        await audit.append(
            self.store,
            audit.GROUP_BREAKOUT_CLOSED,
            actor_kind="user" if by is not None else "system",
            actor_user_id=_user_id(by) if by is not None else None,
            subject=f"group:{self.setup.session_id}",
            details={
                "reason": self._closing_reason,
                "rooms": rooms,
                "people": len(back),
                "seconds": round(ran),
            },
        )
        self._closed_by = None

    async def _members_now(self, participants: tuple[GroupMember, ...]) -> None:
        """The admitted participants now: people gone leave their rooms; while the rooms run,
        an arrival with a room (remembered, or the smallest in random mode) goes into it."""
        now = {m.participant_id: m for m in participants}
        if now == self.members:
            return
        gone = [m for m in self.members if m not in now]
        arrived = [m for m in now if m not in self.members]
        self.members = now
        self.names.update({m.participant_id: m.display_name for m in participants})
        if self.phase is not Phase.OPEN:
            if self.phase is Phase.CLOSING:
                await self._unseat(gone, back=False)
            self._push_rooms_view()
            return
        await self._unseat(gone, back=False)
        places: dict[str, str] = {}
        for member in arrived:
            room = self.plan.assigned.get(member)
            if room is None and self.plan.mode is Mode.RANDOM:
                room = plans.smallest_room(self.plan)
                plans.apply(self.plan, {member: room})
            if room is not None:
                places[member] = room
        if places:
            await self._seat(places)
        await self._changed()

    def _help(self, member: str) -> dict[str, Any]:
        room = self.seated.get(member)
        if room is None or self.phase not in (Phase.OPEN, Phase.CLOSING):
            raise Refusal(refusals.BREAKOUT_NOT_OPEN, "you are not in a breakout room")
        at = wall_clock()
        self.help.setdefault(room, at)
        self._push(
            self._moderator_ids(),
            "group.breakout.help",
            {
                "room": room,
                "name": self.plan.room(room).name,
                "address": addresses.room(self.live[room]),
                "id": member,
                "who": self.names.get(member, ""),
                "at": at,
            },
        )
        self._push_rooms_view()
        return {}

    # -- the timer --------------------------------------------------------------------------------
    def _arm(self, seconds: float, message: object, ends_at: float | None = None) -> None:
        """The timer due in ``seconds``; pages see it end at ``ends_at`` (epoch seconds; now
        plus ``seconds`` unless given), kept as it is so every page counts to the same moment."""
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = trio.current_time() + seconds
        self._ends_wall = ends_at if ends_at is not None else wall_clock() + seconds
        self._timer = self.send_after(seconds, message)

    def _remaining(self) -> float:
        if self._deadline is None:
            return 0.0
        return max(0.0, self._deadline - trio.current_time())

    def _ends_at(self) -> float | None:
        if self._deadline is None or self._ends_wall is None:
            return None
        return round(self._ends_wall, 3)

    def _announce_timer(self) -> None:
        ends_at = self._ends_at()
        self._tell_rooms(IntoRoom("group.breakout.timer", {"ends_at": ends_at}, ends_at))
        self._push(None, "group.breakout.timer", {"ends_at": ends_at})

    # -- views and telling ------------------------------------------------------------------------
    def moderator_view(self) -> dict[str, Any]:
        names = {**{m: self.names.get(m, "") for m in self.plan.assigned}}
        names.update({m: member.display_name for m, member in self.members.items()})
        view = plans.moderator_view(self.plan, self.phase, self._ends_at(), names, self.help)
        for room in view["rooms"]:
            live = self.live.get(room["id"])
            room["address"] = addresses.room(live) if live is not None else None
            people = self.present.get(live) if live is not None else None
            room["present"] = list(people.members) if people is not None else []
            room["visitors"] = list(people.staff) if people is not None else []
        view["unassigned"] = [p for p in view["unassigned"] if p["id"] in self.members]
        return view

    def _sender(self, msg: BreakoutFrame) -> str:
        principal = msg.inbound.principal
        if principal.is_staff:
            return staff_member(principal.user_id)
        return participant_member(principal.participant_id or "")

    def _room_name_for(self, member: str) -> str:
        """How a participant is shown inside a room: the session's privacy decides."""
        person = self.members.get(member)
        if person is None:
            return self.names.get(member, "")
        return person.first_name if self.setup.privacy.first_names_only else person.display_name

    def _not_running(self) -> None:
        if self.phase in (Phase.OPEN, Phase.CLOSING):
            raise Refusal(refusals.BREAKOUT_RUNNING, "not while the breakout rooms are open")

    async def _changed(self, save: bool = True) -> None:
        if save:
            await self._save()
        self._push_rooms_view()
        self._push_plans()

    async def _save(self) -> None:
        await group_breakouts.save_plan(self.store, self.setup.session_id, self._record())

    def _record(self) -> dict[str, Any]:
        """The plan as storage keeps it; while the rooms run, with what resuming them needs."""
        record = plans.to_record(self.plan)
        record["live"] = dict(self.live)
        if self.live and self.phase in (Phase.OPEN, Phase.CLOSING):
            record["phase"] = self.phase.value
            record["ends_at"] = self._ends_wall
            record["opened_at"] = self._opened_wall
            record["closing_reason"] = self._closing_reason
        return record

    def _moderator_ids(self) -> tuple[str, ...]:
        return tuple(staff_member(u) for u in sorted(self.moderators))

    def _push_rooms_view(self) -> None:
        self._push(self._moderator_ids(), "group.breakout.rooms", self.moderator_view())

    def _push_plans(self) -> None:
        ends_at = self._ends_at()
        for member in self.members:
            view = plans.participant_view(self.plan, member, self.phase, ends_at)
            self._push((member,), "group.breakout.plan", view)

    def _push(self, members: tuple[str, ...] | None, kind: str, body: dict[str, Any]) -> None:
        self._tell_call(PushToMembers(members, kind, body))

    def _tell_call(self, message: object) -> None:
        self._tell(addresses.room(self.setup.room_id), message)

    def _tell_rooms(self, message: object) -> None:
        for live in self.live.values():
            self._tell(addresses.room(live), message)

    def _tell(self, address: str, message: object) -> None:
        """The group call and the rooms are told, never asked: one that is gone or swamped misses
        this one event (the next view is whole again)."""
        with contextlib.suppress(ActorError):
            self.ref(address).tell(message)


def _room_factory(store: Store, start: BreakoutStart, media: MediaPort | None) -> Any:
    def make() -> BreakoutCall:
        return BreakoutCall(store, start, media)

    return make


#: Frame type -> (handler, moderators only).
_FRAMES: dict[str, tuple[Handler, bool]] = {
    "group.breakout.state": (BreakoutDesk._state, False),
    "group.breakout.create": (BreakoutDesk._create, True),
    "group.breakout.rename": (BreakoutDesk._rename, True),
    "group.breakout.assign": (BreakoutDesk._assign, True),
    "group.breakout.choose": (BreakoutDesk._choose, False),
    "group.breakout.open": (BreakoutDesk._open, True),
    "group.breakout.extend": (BreakoutDesk._extend, True),
    "group.breakout.broadcast": (BreakoutDesk._broadcast, True),
    "group.breakout.move": (BreakoutDesk._move, True),
    "group.breakout.help": (BreakoutDesk._help_frame, False),
    "group.breakout.close": (BreakoutDesk._close, True),
}
#: Every breakout frame type (the gateway routes them to the group call, which forwards them).
FRAME_TYPES = frozenset(_FRAMES)


def breakout_factory(
    store: Store,
    supervisor: Supervisor,
    media: MediaPort | None,
    rng: random.Random | None = None,
    countdown: float = CLOSING_COUNTDOWN,
) -> BreakoutFactory:
    """What boot gives the group calls: builds a session's desk, whose breakout rooms' calls
    run under ``supervisor`` on ``media``."""

    def make(setup: BreakoutSetup) -> BreakoutDesk:
        return BreakoutDesk(setup, store, supervisor, media, rng, countdown)

    return make
