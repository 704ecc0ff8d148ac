"""``room/<id>`` of a group session: the call core on :class:`~actors.group.policy.GroupPolicy`,
with the group waiting area inside it and the moderator's controls.

**Waiting.** A participant's ``room.enter`` before admission puts them in the :class:`Lobby`, not
in the core's presence: they get ``state: "waiting"`` for themselves alone and nothing anyone else
does reaches them; moderators get ``group.lobby``. ``group.admit`` / ``group.admit_all`` admit in
storage first (all or none, within the capacity: ``group_full`` leaves everyone waiting and
changes nothing), then each admitted connection enters the call through the core's own entry, as
if it had sent ``room.enter`` again, and is pushed the resulting ``room.state``. Sending back
takes someone out of the call into the waiting area; removing puts them out for good (token
revoked, socket closed). While the session is locked, nobody new gets in.

**Privacy.** What each person is shown is made per viewer (:meth:`GroupCall.state_view`,
``room.participants``, ``chat.message``): with ``first_names_only`` participants see first names,
with ``hide_participant_list`` they see moderators and themselves by name only. Private chat
between participants follows ``no_private_chat``.

**Four hours.** A session nobody starts ends a day after its planned start. Once started, timers (``send_after``) warn everyone 15 and 5 minutes before
four hours (``group.ending``), then end the call (``time_limit``); after a restart they are armed
again from the stored start.

**Breakouts.** ``group.breakout.*`` frames go to the session's breakout desk (started on the
first such frame from the factory the desk gave this call) as a
:class:`~actors.group.messages.BreakoutFrame`; its answer is the frame's reply. The breakout desk
tells this call :class:`PushToMembers` and :class:`InBreakout` (see ``actors.group.messages``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from actors import addresses, refusals
from actors.calls.core import CLOSE_CALL_ENDED, Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind, Present
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.group.lobby import Lobby, Waiter
from actors.group.messages import (
    MAX_SECONDS,
    PARTICIPANT_PREFIX,
    WARNINGS,
    BreakoutFactory,
    BreakoutFrame,
    BreakoutSetup,
    GroupEnded,
    GroupMember,
    InBreakout,
    MembersChanged,
    Privacy,
    PushToMembers,
    participant_member,
)
from actors.group.policy import (
    ENDED,
    TIME_LIMIT,
    GroupPolicy,
    first_name,
    may_moderate,
    member_of,
    user_id_of,
)
from actors.inbound import CloseConnection, ConnectionClosed, Inbound, Push, RedeemToken
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import Pending, Timer, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import audit
from storage import group_sessions as groups
from storage.db import Store
from storage.group_sessions import GroupSession

log = logging.getLogger(__name__)

#: Websocket close code for a participant the moderator removed.
CLOSE_REMOVED: Final = 4005
#: At most this many people wait at once (tabs of one person count once).
MAX_WAITING: Final = 200
#: How long a forwarded breakout frame waits for the breakout desk.
BREAKOUT_TIMEOUT: Final = 10.0
#: A session nobody started ends this long after its planned start (its call does not linger).
NOT_STARTED_AFTER: Final = 24 * 3600.0
#: Why it ended then.
NOT_STARTED: Final = "not_started"
#: The prefix of the frames that go to the breakout desk.
BREAKOUT_FRAMES: Final = "group.breakout."


@dataclass(frozen=True, slots=True)
class TimeWarning:
    """Told by a timer: ``in_seconds`` are left of the four hours."""

    in_seconds: int


@dataclass(frozen=True, slots=True)
class NeverStarted:
    """Told by a timer: a day after its planned start nobody has started the session."""


@dataclass(frozen=True, slots=True)
class TimeUp:
    """Told by a timer: four hours are up."""


@dataclass(frozen=True, slots=True)
class EndGroup:
    """Asked by the desk: end the session for everyone (cancelled on its page); replies None."""

    reason: str
    principal: Principal | None = None
    remote_addr: str = ""


def _participant_id(member: str) -> str | None:
    if member.startswith(PARTICIPANT_PREFIX):
        return member[len(PARTICIPANT_PREFIX) :]
    return None


class GroupCall(Call):
    """One group session's call; see the module docstring."""

    def __init__(
        self,
        store: Store,
        room_id: str,
        media: MediaPort | None,
        supervisor: Supervisor | None = None,
        breakouts: BreakoutFactory | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        session: GroupSession | None = None,
    ) -> None:
        clock = now or (lambda: datetime.now(UTC))
        self.group = GroupPolicy(store, room_id, clock, session)
        super().__init__(call_id_for(addresses.room(room_id)), room_id, self.group, media)
        self.store = store
        self.now = clock
        self.supervisor = supervisor
        self.breakout_factory = breakouts
        self.lobby = Lobby()
        #: Participant ids admitted (in storage too): they enter the call directly.
        self.admitted: set[str] = set()
        #: Participant ids seen since this call started (waiting or in): a lock keeps out only
        #: people who were never here.
        self.known: set[str] = set()
        #: Raised hands: member id -> (name, since), first raised first.
        self.hands: dict[str, tuple[str, float]] = {}
        self.spotlight: str | None = None
        #: Member id -> (breakout room id, its name) while they are in a breakout room.
        self.in_breakout: dict[str, tuple[str, str]] = {}
        self._timers: list[Timer] = []
        #: True while admitting several people: the core's pushes wait for the last one.
        self._quiet = False
        self.group.on_started = self._arm_timers

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_start(self) -> None:
        await super().on_start()
        session = self.group.current
        for participant in await groups.list_participants(self.store, session.id):
            if participant.admitted and participant.removed_at is None:
                self.admitted.add(participant.id)
                self.known.add(participant.id)
        if session.started_at is not None:
            self._arm_timers()
        else:
            due = session.starts_at.timestamp() + NOT_STARTED_AFTER - self.now().timestamp()
            self._timers = [self.send_after(max(due, 0.0), NeverStarted())]

    @property
    def session(self) -> GroupSession:
        return self.group.current

    @property
    def privacy(self) -> Privacy:
        return Privacy.of(self.session)

    def _arm_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        started = self.session.started_at
        if started is None:
            return
        left = MAX_SECONDS - (self.now() - started).total_seconds()
        self._timers = [
            self.send_after(max(left - warning, 0.0), TimeWarning(warning))
            for warning in WARNINGS
            if left > warning
        ]
        self._timers.append(self.send_after(max(left, 0.0), TimeUp()))

    @handles(TimeWarning)
    async def _time_warning(self, message: TimeWarning) -> None:
        self._tell_everyone(Push("group.ending", {"in_seconds": message.in_seconds}))

    @handles(NeverStarted)
    async def _never_started(self, message: NeverStarted) -> None:
        if self.state is CallState.WAITING:
            await self.end(NOT_STARTED)

    @handles(TimeUp)
    async def _time_up(self, message: TimeUp) -> None:
        await self.end(TIME_LIMIT)

    @handles(EndGroup)
    async def _end_group(self, message: EndGroup) -> None:
        if message.principal is not None:
            self.group.ended_by = Inbound(
                "group.end", {}, message.principal, "", message.remote_addr
            )
        await self.end(message.reason)

    async def end(self, reason: str) -> None:
        if self.state is CallState.ENDED:
            return
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        waiting = self.lobby.conns()
        await super().end(reason)
        for conn in waiting:
            with contextlib.suppress(ActorError):
                self.ref(conn).tell(
                    Push("room.state", {"state": "ended", "reason": reason, "room": self.room_id})
                )
                self.ref(conn).tell(CloseConnection(CLOSE_CALL_ENDED, "the session has ended"))
        for waiter in self.lobby:
            self.lobby.pop(waiter.member)
        self._tell_breakouts(GroupEnded(reason))

    # -- tokens -----------------------------------------------------------------------------------
    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        participant = await groups.participant_for_token(self.store, self.room_id, msg.secret)
        if participant is None or self.state is CallState.ENDED:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid or the session has ended")
        return Principal(
            kind=ParticipantKind.GUEST.value,
            display_name=participant.name,
            room_id=self.room_id,
            participant_id=participant.id,
        )

    # -- dispatch ---------------------------------------------------------------------------------
    @handles(Inbound)
    async def _client_frame(self, message: Inbound) -> object:
        if message.type != "room.enter" and self.lobby.by_conn(message.conn) is not None:
            if message.type == "room.leave":
                await self._leave_lobby(message.conn)
                return {}
            raise Refusal(refusals.NOT_ADMITTED, "wait until the moderator lets you in")
        if message.type.startswith(BREAKOUT_FRAMES):
            await self._breakout_frame(message)
            return None
        return await super()._client_frame(message)

    @handles(ConnectionClosed)
    async def _connection_closed(self, message: ConnectionClosed) -> None:
        await self._leave_lobby(message.conn)
        await self.leave(message.conn)

    async def _leave_lobby(self, conn: str) -> None:
        if self.lobby.drop_conn(conn) is not None:
            self._push_lobby()

    # -- entry ------------------------------------------------------------------------------------
    @wire("room.enter")
    async def _group_enter(self, msg: Inbound) -> dict[str, Any]:
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this session has ended")
        principal = msg.principal
        if principal.is_staff or msg.conn in self.presence:
            return await Call._enter(self, msg)
        self.policy.admit(principal, self.state)  # refuses anyone else's token
        pid = str(principal.participant_id)
        if pid in self.admitted:
            self.known.add(pid)
            return await Call._enter(self, msg)
        return await self._wait(msg, returned=False)

    async def _wait(self, msg: Inbound, *, returned: bool) -> dict[str, Any]:
        principal = msg.principal
        pid = str(principal.participant_id)
        member = participant_member(pid)
        if pid not in self.known and self.session.locked:
            raise Refusal(refusals.GROUP_LOCKED, "the moderator has locked this session")
        if member not in self.lobby and len(self.lobby) >= MAX_WAITING:
            raise Refusal(refusals.FULL, "the waiting area is full; try again shortly")
        participant = await groups.get_participant(self.store, pid)
        if participant.removed_at is not None:
            raise Refusal(refusals.INVALID_TOKEN, "you have been removed from this session")
        self.known.add(pid)
        self.lobby.add(
            Waiter(
                member,
                pid,
                principal,
                participant.registration_id is not None,
                participant.arrived_at,
                returned,
            ),
            msg.conn,
        )
        self._push_lobby()
        return self._waiting_view(msg.conn, principal)

    def _waiting_view(self, conn: str, principal: Principal, **extra: Any) -> dict[str, Any]:
        session = self.session
        name = principal.display_name
        return {
            "room": self.room_id,
            "state": CallState.WAITING.value,
            "kind": "group",
            "session": session.id,
            "title": session.title,
            "you": conn.replace("/", "-"),
            "member": participant_member(str(principal.participant_id)),
            "name": first_name(name) if session.first_names_only else name,
            "participants": [],
            **extra,
        }

    # -- what each person is shown ----------------------------------------------------------------
    def _is_moderator(self, person: Present) -> bool:
        return person.kind is ParticipantKind.STAFF

    def _entry(self, person: Present, viewer: Present | None) -> dict[str, Any]:
        view = person.view()
        member = member_of(person)
        view["member"] = member
        view["moderator"] = self._is_moderator(person)
        view["hand"] = member in self.hands
        if viewer is None or self._is_moderator(viewer):
            place = self.in_breakout.get(member)
            view["breakout"] = None if place is None else {"room": place[0], "name": place[1]}
            return view
        if self._is_moderator(person):
            return view
        privacy = self.privacy
        if person.person != viewer.person and privacy.hide_participant_list:
            view["name"] = ""
            del view["member"]
            del view["hand"]
        elif privacy.first_names_only:
            view["name"] = first_name(view["name"])
        return view

    def _participants_for(self, viewer: Present | None) -> list[dict[str, Any]]:
        return [self._entry(p, viewer) for p in self.presence]

    def state_view(self, person: Present | None = None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "room": self.room_id,
            "state": self.state.value,
            **self.policy.describe(),
            "admitted": len(self.admitted),
            "spotlight": self.spotlight,
            "participants": self._participants_for(person),
        }
        if person is not None:
            view["you"] = person.peer_id
            view["member"] = member_of(person)
            if self._is_moderator(person):
                view["lobby"] = self.lobby.views()
                view["hands"] = self._hands_view()
        return view

    def push_state(self) -> None:
        for person in self.presence:
            self._tell(person, Push("room.state", self.state_view(person)))
        for person in self.presence:
            self._gate(person)

    def push_participants(self) -> None:
        if self._quiet:
            return
        for person in self.presence:
            self._tell(
                person, Push("room.participants", {"participants": self._participants_for(person)})
            )

    def _tell(self, person: Present, event: Push) -> None:
        try:
            self.ref(person.conn).tell(event)
        except ActorError:
            self._drop(person)

    def _moderators(self) -> list[Present]:
        return [p for p in self.presence if self._is_moderator(p)]

    def _tell_moderators(self, event: Push) -> None:
        for person in self._moderators():
            self._tell(person, event)

    def _tell_everyone(self, event: Push) -> None:
        self.broadcast(event)
        for conn in self.lobby.conns():
            with contextlib.suppress(ActorError):
                self.ref(conn).tell(event)

    def _conns_of(self, member: str) -> list[str]:
        conns = [p.conn for p in self.presence if member_of(p) == member]
        waiter = self.lobby.get(member)
        if waiter is not None:
            conns.extend(waiter.conns)
        return conns

    def _tell_member(self, member: str, event: Push) -> None:
        for conn in self._conns_of(member):
            with contextlib.suppress(ActorError):
                self.ref(conn).tell(event)

    def _push_lobby(self) -> None:
        self._tell_moderators(
            Push(
                "group.lobby",
                {
                    "waiting": self.lobby.views(),
                    "admitted": len(self.admitted),
                    "capacity": self.session.capacity,
                },
            )
        )

    def _hands_view(self) -> list[dict[str, Any]]:
        return [
            {"id": member, "name": name, "since": since}
            for member, (name, since) in self.hands.items()
        ]

    def _push_hands(self) -> None:
        self._tell_moderators(Push("group.hands", {"hands": self._hands_view()}))

    # -- who may do what --------------------------------------------------------------------------
    def moderator(self, msg: Inbound) -> Present:
        """The moderator behind ``msg``, in the call; refuse anyone else (``not_moderator``)."""
        if not msg.principal.is_staff or not may_moderate(msg.principal, self.session):
            raise Refusal(refusals.NOT_MODERATOR, "only the session's moderator does this")
        return self.member(msg.conn)

    def _present(self, member: str) -> list[Present]:
        return [p for p in self.presence if member_of(p) == member]

    def _present_participant(self, member: str) -> list[Present]:
        people = [p for p in self._present(member) if not self._is_moderator(p)]
        if not people:
            raise Refusal(refusals.NOT_FOUND, "nobody with that id is in the session")
        return people

    async def _audit(self, action: str, msg: Inbound, **details: Any) -> None:
        await audit.append(
            self.store,
            action,
            actor_user_id=user_id_of(msg.principal),
            subject=f"group:{self.session.id}",
            remote_addr=msg.remote_addr,
            details=details,
        )

    # -- admission --------------------------------------------------------------------------------
    @wire("group.admit")
    async def _admit(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        ids = [str(i) for i in msg.body["ids"]]
        for member in ids:
            pid = _participant_id(member)
            if member not in self.lobby and (pid is None or pid not in self.admitted):
                raise Refusal(refusals.NOT_FOUND, f"nobody with id {member} is waiting")
        return await self._admit_members(msg, [m for m in ids if m in self.lobby])

    @wire("group.admit_all")
    async def _admit_all(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        return await self._admit_members(msg, self.lobby.members())

    async def _admit_members(self, msg: Inbound, members: list[str]) -> dict[str, Any]:
        members = list(dict.fromkeys(members))
        if not members:
            return {"admitted": []}
        pids = tuple(str(_participant_id(m)) for m in members)
        try:
            new = await groups.admit(self.store, self.session.id, pids, now=self.now())
        except groups.GroupFull as full:
            raise Refusal(
                refusals.GROUP_FULL,
                f"the session holds {self.session.capacity} participants: "
                f"{full.places_left} places left",
            ) from None
        self.admitted.update(pids)
        await self._audit(audit.GROUP_ADMITTED, msg, participants=list(new))
        # Everyone enters first, quietly; then each newcomer gets the whole view once and
        # everyone else one list: one push per person, not one per person per admission.
        fresh: set[str] = set()
        self._quiet = True
        try:
            for member in members:
                waiter = self.lobby.pop(member)
                if waiter is None:
                    continue
                for conn in sorted(waiter.conns):
                    entry = Inbound("room.enter", {}, waiter.principal, conn, msg.remote_addr)
                    try:
                        await Call._enter(self, entry)
                    except Refusal as refusal:  # the core's limit: not within the capacity
                        log.warning(
                            "%s: %s admitted, core refused: %s", self.address, member, refusal
                        )
                        continue
                    fresh.add(conn)
        finally:
            self._quiet = False
        for person in self.presence:
            if person.conn in fresh:
                self._tell(person, Push("room.state", self.state_view(person)))
            else:
                self._tell(
                    person,
                    Push("room.participants", {"participants": self._participants_for(person)}),
                )
        self._push_lobby()
        self._members_changed()
        return {"admitted": members}

    @wire("group.send_back")
    async def _send_back(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        member = str(msg.body["id"])
        people = self._present_participant(member)
        pid = str(people[0].principal.participant_id)
        stored = await groups.send_back(self.store, pid, now=self.now())
        registered = stored.registration_id is not None
        self.admitted.discard(pid)
        self.hands.pop(member, None)
        self.in_breakout.pop(member, None)
        await self._audit(audit.GROUP_SENT_BACK, msg, participant=pid)
        for person in people:
            await self.leave(person.conn)
            self.lobby.add(
                Waiter(member, pid, person.principal, registered, self.now(), True), person.conn
            )
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(
                    Push(
                        "room.state",
                        self._waiting_view(person.conn, person.principal, reason="sent_back"),
                    )
                )
        self._clear_spotlight_of(member)
        self._push_lobby()
        self._push_hands()
        self._members_changed()
        return {}

    @wire("group.remove")
    async def _remove(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        member = str(msg.body["id"])
        pid = _participant_id(member)
        people = [p for p in self._present(member) if not self._is_moderator(p)]
        waiter = self.lobby.get(member)
        if pid is None or (not people and waiter is None):
            raise Refusal(refusals.NOT_FOUND, "nobody with that id is in the session")
        await groups.remove_participant(self.store, pid, now=self.now())
        self.admitted.discard(pid)
        self.hands.pop(member, None)
        self.in_breakout.pop(member, None)
        await self._audit(audit.GROUP_REMOVED, msg, participant=pid)
        conns = self._conns_of(member)
        for person in people:
            await self.leave(person.conn)
        self.lobby.pop(member)
        for conn in conns:
            with contextlib.suppress(ActorError):
                self.ref(conn).tell(
                    Push(
                        "room.state", {"state": "ended", "reason": "removed", "room": self.room_id}
                    )
                )
                self.ref(conn).tell(CloseConnection(CLOSE_REMOVED, "removed by the moderator"))
        self._clear_spotlight_of(member)
        self._push_lobby()
        self._push_hands()
        self._members_changed()
        return {}

    @wire("group.lock")
    async def _lock(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        locked = bool(msg.body["locked"])
        self.group.session = await groups.set_locked(self.store, self.session.id, locked)
        await self._audit(audit.GROUP_LOCKED, msg, locked=locked)
        self._tell_moderators(Push("group.locked", {"locked": locked}))
        return {"locked": locked}

    # -- the moderator's controls -----------------------------------------------------------------
    def _by(self, msg: Inbound) -> dict[str, Any]:
        return {"by": msg.principal.display_name}

    @wire("group.mute")
    async def _mute(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        for person in self._present_participant(str(msg.body["id"])):
            self._tell(person, Push("group.mute", self._by(msg)))
        return {}

    @wire("group.mute_all")
    async def _mute_all(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        people = [p for p in self.presence if not self._is_moderator(p)]
        for person in people:
            self._tell(person, Push("group.mute", self._by(msg)))
        return {"muted": len({p.person for p in people})}

    @wire("group.ask_unmute")
    async def _ask_unmute(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        for person in self._present_participant(str(msg.body["id"])):
            self._tell(person, Push("group.unmute_request", self._by(msg)))
        return {}

    @wire("group.camera_off")
    async def _camera_off(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        for person in self._present_participant(str(msg.body["id"])):
            self._tell(person, Push("group.camera_off", self._by(msg)))
        return {}

    @wire("group.spotlight")
    async def _spotlight(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        target = msg.body.get("id")
        if target is not None and not self._present(str(target)):
            raise Refusal(refusals.NOT_FOUND, "nobody with that id is in the session")
        self.spotlight = None if target is None else str(target)
        self._push_spotlight()
        return {}

    def _push_spotlight(self) -> None:
        peers = [] if self.spotlight is None else [p.peer_id for p in self._present(self.spotlight)]
        self.broadcast(Push("group.spotlight", {"id": self.spotlight, "peers": peers}))

    def _clear_spotlight_of(self, member: str) -> None:
        if self.spotlight == member and not self._present(member):
            self.spotlight = None
            self._push_spotlight()

    @wire("group.hand_lower")
    async def _hand_lower(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        member = str(msg.body["id"])
        if self.hands.pop(member, None) is None and not self._present(member):
            raise Refusal(refusals.NOT_FOUND, "nobody with that id is in the session")
        for person in self._present(member):
            self._tell(person, Push("group.hand", {"raised": False}))
        self._push_hands()
        return {}

    @wire("group.end", "call.end")
    async def _group_end(self, msg: Inbound) -> dict[str, Any]:
        self.moderator(msg)
        self.group.ended_by = msg
        await self.end(ENDED)
        return {}

    @wire("call.invite")
    async def _no_invite(self, msg: Inbound) -> dict[str, Any]:
        raise Refusal(refusals.FORBIDDEN, "people join a group session through its link")

    # -- everyone's -------------------------------------------------------------------------------
    @wire("group.hand")
    async def _hand(self, msg: Inbound) -> dict[str, Any]:
        person = self.member(msg.conn)
        member = member_of(person)
        raised = bool(msg.body["raised"])
        if raised and member not in self.hands:
            self.hands[member] = (person.principal.display_name, self.now().timestamp())
        elif not raised:
            self.hands.pop(member, None)
        self._push_hands()
        self.push_participants()
        return {"raised": raised}

    @wire("chat.send")
    async def _group_chat(self, msg: Inbound) -> dict[str, Any]:
        sender = self.member(msg.conn)
        text = str(msg.body["text"]).strip()
        if not text:
            raise Refusal(refusals.BAD_FIELD, "an empty message is not sent")
        at = self.now().timestamp()
        for person in self.presence:
            name = self._entry(sender, person)["name"]
            self._tell(
                person,
                Push(
                    "chat.message", {"from": name, "peer": sender.peer_id, "text": text, "at": at}
                ),
            )
        return {}

    @wire("group.chat_private")
    async def _chat_private(self, msg: Inbound) -> dict[str, Any]:
        sender = self.member(msg.conn)
        text = str(msg.body["text"]).strip()
        if not text:
            raise Refusal(refusals.BAD_FIELD, "an empty message is not sent")
        to = str(msg.body["to"])
        targets = self._present(to)
        if not targets:
            raise Refusal(refusals.NOT_FOUND, "nobody with that id is in the session")
        both_participants = not self._is_moderator(sender) and not self._is_moderator(targets[0])
        privacy = self.privacy
        if both_participants and (privacy.no_private_chat or privacy.hide_participant_list):
            raise Refusal(
                refusals.PRIVATE_CHAT_OFF, "private chat is with the moderator only in this session"
            )
        from_member = member_of(sender)
        name = sender.principal.display_name
        if privacy.first_names_only and not self._is_moderator(sender):
            name = first_name(name)
        event = Push(
            "chat.private",
            {
                "from": name,
                "from_id": from_member,
                "to": to,
                "text": text,
                "at": self.now().timestamp(),
            },
        )
        for person in [*targets, *(p for p in self._present(from_member) if member_of(p) != to)]:
            self._tell(person, event)
        return {}

    @wire("media.offer")
    async def _group_offer(self, msg: Inbound) -> None:
        person = self.member(msg.conn)
        if member_of(person) in self.in_breakout:
            raise Refusal(refusals.FORBIDDEN, "you are in a breakout room")
        await Call._media_offer(self, msg)

    async def leave(self, conn: str) -> None:
        person = self.presence.get(conn)
        await super().leave(conn)
        if person is not None and not self.presence.has_person(person.person):
            member = member_of(person)
            if self.hands.pop(member, None) is not None:
                self._push_hands()
            self._clear_spotlight_of(member)

    # -- breakouts --------------------------------------------------------------------------------
    def _members(self) -> tuple[GroupMember, ...]:
        seen: dict[str, GroupMember] = {}
        for person in self.presence:
            if self._is_moderator(person):
                continue
            member = member_of(person)
            name = person.principal.display_name
            seen.setdefault(member, GroupMember(member, name, first_name(name)))
        return tuple(seen.values())

    def _breakout_address(self) -> str:
        return addresses.group_breakouts(self.session.id)

    def _tell_breakouts(self, message: object) -> None:
        address = self._breakout_address()
        if address in self.registry:
            with contextlib.suppress(ActorError):
                self.ref(address).tell(message)

    def _members_changed(self) -> None:
        self._tell_breakouts(MembersChanged(self._members()))

    async def _breakout_frame(self, msg: Inbound) -> None:
        person = self.member(msg.conn)
        address = self._breakout_address()
        if address not in self.registry:
            if self.breakout_factory is None or self.supervisor is None:
                raise Refusal(refusals.UNAVAILABLE, "breakout rooms are not available here")
            await start_breakouts(self.supervisor, self.breakout_factory, self.session)
        frame = BreakoutFrame(msg, self._is_moderator(person), self._members())
        self.spawn(self._ask_breakouts, self.defer_reply(), address, frame)

    async def _ask_breakouts(
        self, pending: Pending[object], address: str, frame: BreakoutFrame
    ) -> None:
        try:
            outcome = await self.ref(address).ask(frame, timeout=BREAKOUT_TIMEOUT)
        except Refusal as refusal:
            pending.refuse(refusal)
            return
        except ActorError as error:
            pending.refuse(
                Refusal(refusals.UNAVAILABLE, f"the breakout rooms did not answer: {error}")
            )
            return
        pending.reply(outcome)

    @handles(PushToMembers)
    async def _push_to_members(self, msg: PushToMembers) -> None:
        event = Push(msg.type, msg.body)
        if msg.participant_ids is None:
            self._tell_everyone(event)
            return
        for member in msg.participant_ids:
            self._tell_member(member, event)

    @handles(InBreakout)
    async def _in_breakout(self, msg: InBreakout) -> None:
        for member in msg.participant_ids:
            if msg.room_id is None:
                self.in_breakout.pop(member, None)
                continue
            self.in_breakout[member] = (msg.room_id, msg.room_name)
            for person in self._present(member):
                self.signalling.close_peer(person.peer_id)
        self.push_participants()


async def start_breakouts(
    supervisor: Supervisor, factory: BreakoutFactory, session: GroupSession
) -> None:
    """Start the breakout desk of ``session`` (``breakouts/<id>``) under ``supervisor``: on the
    first ``group.breakout.*`` frame, or for one of its open rooms whose node died (the desk
    resumes the rooms open in storage). Placed: a placing supervisor claims it, or learns who
    runs it."""
    setup = BreakoutSetup(
        session.id,
        session.room_id,
        session.org_id,
        session.unit_id,
        session.title,
        Privacy.of(session),
        session.moderator_ids,
    )
    address = addresses.group_breakouts(session.id)
    if address in supervisor.registry:
        return
    await supervisor.start_child(ChildSpec(address, lambda: factory(setup), Restart.TRANSIENT))
