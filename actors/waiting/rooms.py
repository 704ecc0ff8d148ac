"""Caller rooms: a caller's private, single-use call (``room/<id>``), and the host that starts them.

A caller room is the call core (:class:`actors.calls.core.Call`) with the waiting-area policy
(:class:`WaitingAreaPolicy`): it is created at arrival and lives until its call ends or its caller
leaves for good; then its tokens and invite links are revoked in storage and the actor stops, so a
late click gets a clear "this call has ended". Who may enter: its caller's token, a provider of its
area once the caller has been joined, a guest who claimed an invite; at most six people,
invitations included. Staff other than the provider who joined the caller (an organisation
administrator too) enter only after saying so (``room.enter`` with ``announce``): they are refused
``join_confirm_needed`` first, and on entry everyone in the call, the caller included, is told
(``call.notice``). Every staff entry is audited (issue 15). Hold and end are the area's business: the room tells its area. A caller who
closed the tab keeps their place for the reconnection grace.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVarTuple

import trio

from actors import addresses, refusals
from actors.calls import invites
from actors.calls.core import Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind, Present
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.inbound import Inbound, Push, RedeemToken
from actors.messages import (
    AreaChanged,
    CallerGone,
    CallerUpdate,
    CheckInvite,
    ClaimInvite,
    EndRoom,
    FindRoomPage,
    GuestPass,
    HoldCaller,
    HoldFromCall,
    OpenRoom,
    OpenRooms,
    ProviderJoining,
    RoomSnapshot,
)
from actors.ondemand.estimate import WaitEstimate
from actors.principal import AreaPlace, Principal, Role
from runtime.address import Address
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import areas as area_store
from storage import audit, callers, calls, orgs, staff_views
from storage import ondemand as ondemand_store
from storage import rooms as room_store
from storage.db import Store
from storage.errors import NotFoundError, TokenRejectedError

__all__ = [
    "INVITE_LIFETIME",
    "MAX_PARTICIPANTS",
    "RECONNECT_GRACE",
    "MediaPort",
    "Room",
    "RoomHost",
    "WaitingAreaPolicy",
]

log = logging.getLogger(__name__)

#: Everyone in a call, the caller included (seed: "up to 6 depending on bandwidth").
MAX_PARTICIPANTS = 6
#: A caller who closed the tab and comes back within this many seconds keeps their place.
RECONNECT_GRACE = 120.0
#: An invite link stays usable this long (seconds) unless the call ends first.
INVITE_LIFETIME = invites.INVITE_LIFETIME
#: Why a room ends when its caller did not come back within the grace (the caller ``left``).
LEFT: Final = "left"
#: Why a room ends when someone in the call ended it.
ENDED: Final = "ended"
#: ``call.notice`` kind: a staff member who is not the provider who joined has entered.
STAFF_JOINED: Final = "staff_joined"

_CALLER_TOKEN_KIND: Final = "caller"
_INVITE_TOKEN_KIND: Final = invites.INVITE_TOKEN_KIND
#: The call record's name for each kind of participant.
_RECORD_KIND = {
    ParticipantKind.STAFF: "staff",
    ParticipantKind.CALLER: "caller",
    ParticipantKind.GUEST: "invitee",
}
#: Longest display name a guest may give themselves.
MAX_NAME = invites.MAX_NAME
#: `FindRoomPage` kind of an on-demand session's page (its room is not in the rooms table).
ONDEMAND_PAGE: Final = "ondemand"
_Args = TypeVarTuple("_Args")


class WaitingAreaPolicy:
    """What a caller's room sets on the call core (see the module docstring).

    Holds what the room knows of its caller and its area; ``record_id`` is the storage row of the
    consultation in progress (a hold closes it, the next join opens another), not the call's id.
    """

    limit = MAX_PARTICIPANTS

    def __init__(
        self,
        store: Store,
        room_id: str,
        grace: float = RECONNECT_GRACE,
        snapshot: callers.RoomRestore | None = None,
    ) -> None:
        self.store = store
        self.room_id = room_id
        self.reconnect_grace = grace
        #: A new room's state as its arrival just wrote it: the first start needs no storage read.
        self._snapshot = snapshot
        self.caller_id: str | None = None
        self.caller_name = ""
        self.area_id = 0
        self.area_name = ""
        self.place = AreaPlace("", "", "")
        self.record_id: str | None = None
        #: Who the area said is coming (``ProviderJoining``); shown on the caller's page.
        self.joining: str | None = None
        #: The area's typical wait now (seconds; ``WaitEstimate``), on the caller's page.
        self.estimate: float | None = None
        #: The provider who joined the caller for this consultation (user id, name): they enter
        #: without announcing themselves; cleared by a hold or a transfer.
        self.joined_user: str | None = None
        self.joined_name: str | None = None
        #: Staff (``Present.person``) who entered by announcing themselves this consultation: a
        #: reload does not announce them again.
        self.announced: set[str] = set()

    @property
    def area(self) -> Address:
        return addresses.area(self.area_id)

    # -- what the core asks -----------------------------------------------------------------------
    @property
    def grace(self) -> float | None:
        """A room without a caller record (a bare room) never times out."""
        return self.reconnect_grace if self.caller_id is not None else None

    async def restore(self) -> CallState:
        # One storage round trip: every arrival starts a room, and under load each trip through
        # the worker thread costs milliseconds of the room host's serial time (bench/README.md).
        snap = self._snapshot or await callers.load_room_restore(
            self.store, self.room_id, caller_token_kind=_CALLER_TOKEN_KIND
        )
        self._snapshot = None
        room, caller, area, unit = snap.room, snap.caller, snap.area, snap.unit
        if room.state != "open" or area is None or unit is None:
            raise Refusal(refusals.CLOSED, "this room has ended")
        self.caller_id = caller.id if caller is not None else None
        self.caller_name = caller.details.get("name", "") if caller is not None else ""
        status = caller.status if caller is not None else CallState.WAITING.value
        self.moved(area.id, area.name, AreaPlace(str(area.id), str(unit.id), str(unit.org_id)))
        self.record_id = snap.active_call_id
        if status == CallState.IN_CALL.value:
            await self._restore_joined()
            return CallState.IN_CALL
        if status == CallState.ON_HOLD.value:
            return CallState.ON_HOLD
        return CallState.WAITING

    async def _restore_joined(self) -> None:
        """After a restart, the provider who joined is the first staff member the call record
        has; with none recorded, nobody enters without announcing themselves."""
        self.joined_user = self.joined_name = None
        self.announced.clear()
        if self.record_id is None:
            return
        for row in await calls.list_participants(self.store, self.record_id):
            if row.kind == _RECORD_KIND[ParticipantKind.STAFF] and row.user_id is not None:
                self.joined_user, self.joined_name = str(row.user_id), row.display_name
                return

    def provider_joined(self, user_id: str | None, name: str, state: CallState) -> None:
        """The area marked the caller as joined by this provider. While the call is on, the
        first provider stays the one who joined: a second join (an area that restarted and
        forgot who is with the caller) does not let a colleague in unannounced."""
        self.joining = name
        if state is CallState.IN_CALL and (self.joined_user or self.joined_name):
            return
        self.joined_user, self.joined_name = user_id, name
        self.announced.clear()

    def consultation_over(self) -> None:
        """A hold or a transfer: whoever joins next is the provider who joined."""
        self.joined_user = self.joined_name = None
        self.announced.clear()

    def is_joined_provider(self, principal: Principal) -> bool:
        if self.joined_user is not None:
            return principal.user_id == self.joined_user
        return self.joined_name is not None and principal.display_name == self.joined_name

    def moved(self, area_id: int, area_name: str, place: AreaPlace) -> None:
        self.area_id = area_id
        self.area_name = area_name
        self.place = place

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.kind == ParticipantKind.STAFF:
            if not principal.has_role(Role.PROVIDER, self.place):
                raise Refusal(refusals.FORBIDDEN, f"you are not a provider in {self.area_name}")
            if state is not CallState.IN_CALL:
                raise Refusal(
                    refusals.NOT_JOINED, "join this caller from the waiting area list first"
                )
            return ParticipantKind.STAFF
        if principal.room_id != self.room_id:
            raise Refusal(refusals.FORBIDDEN, "this is not your room")
        return ParticipantKind(principal.kind)

    def holds_for(self, person: Present) -> bool:
        return person.kind is ParticipantKind.CALLER

    def describe(self) -> dict[str, Any]:
        return {"area": self.area_name, "joining": self.joining, "estimate": self.estimate}

    async def entered(self, call: Call, person: Present) -> None:
        if person.kind is ParticipantKind.CALLER:
            self._tell_presence(call, connected=True)
        elif person.kind is ParticipantKind.STAFF and self.record_id is None:
            record = await calls.start_call(self.store, self.room_id, caller_id=self.caller_id)
            self.record_id = record.id
        if self.record_id is not None:
            for someone in call.presence:
                await self._record(someone)

    async def _record(self, person: Present) -> None:
        if self.record_id is None or person.participant_row is not None:
            return
        row = await calls.add_participant(
            self.store,
            self.record_id,
            _RECORD_KIND[person.kind],  # type: ignore[arg-type]
            person.principal.display_name,
            user_id=int(person.principal.user_id) if person.principal.user_id else None,
        )
        person.participant_row = row.id

    async def left(self, call: Call, person: Present) -> None:
        if person.participant_row is not None:
            with contextlib.suppress(Exception):
                await calls.participant_left(self.store, person.participant_row)
        if person.kind is ParticipantKind.CALLER and not call.presence.any(self.holds_for):
            self._tell_presence(call, connected=False)

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        """The area decides (the same rules as a hold from its list) and then tells the room."""
        if self.caller_id is None:
            raise Refusal(refusals.NO_CALLER, "this room has no caller to put on hold")
        await call.ref(self.area).ask(
            HoldFromCall(self.caller_id, request.principal, request.remote_addr)
        )

    async def holding(self, call: Call) -> None:
        self.joining = None
        self.consultation_over()

    async def held(self, call: Call) -> None:
        if self.record_id is not None:
            await calls.end_call(self.store, self.record_id)
            self.record_id = None

    async def end_requested(self, call: Call, request: Inbound) -> str:
        if self.caller_id is not None:
            with contextlib.suppress(ActorError):
                await callers.set_status(self.store, self.caller_id, ENDED)
        await audit.append(
            self.store,
            audit.END,
            actor_user_id=int(request.principal.user_id) if request.principal.user_id else None,
            area_id=self.area_id,
            subject=self.caller_id or self.room_id,
            remote_addr=request.remote_addr,
        )
        return ENDED

    async def abandoned(self, call: Call) -> str:
        if self.caller_id is not None:
            with contextlib.suppress(ActorError):
                await callers.set_status(self.store, self.caller_id, LEFT)
        return LEFT

    async def closing(self, call: Call, reason: str) -> None:
        await room_store.close_room(self.store, self.room_id)
        if self.record_id is not None:
            await calls.end_call(self.store, self.record_id)

    def closed(self, call: Call, reason: str) -> None:
        if self.caller_id is not None:
            self._tell_area(call, CallerGone(self.caller_id, reason))

    def _tell_presence(self, call: Call, connected: bool) -> None:
        """The area's list shows whether the caller is connected."""
        if self.caller_id is not None:
            self._tell_area(call, CallerUpdate(self.caller_id, connected=connected))

    def _tell_area(self, call: Call, message: object) -> None:
        with contextlib.suppress(ActorError):
            call.ref(self.area).tell(message)


class Room(Call):
    """``room/<id>``: one caller's private room, the call core on the waiting-area policy.

    Adds what only a caller room receives: its tokens (a caller's, a guest's) and invitations, and
    what its area tells it (a provider is coming, hold, end, a transfer).
    """

    def __init__(
        self,
        store: Store,
        room_id: str,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
        snapshot: callers.RoomRestore | None = None,
    ) -> None:
        self.waiting = WaitingAreaPolicy(store, room_id, grace, snapshot)
        super().__init__(call_id_for(addresses.room(room_id)), room_id, self.waiting, media)
        self.store = store

    # -- entry ------------------------------------------------------------------------------------
    async def reserved_places(self) -> int:
        """Invitations not used yet hold a place each: the limit counts everyone in or invited."""
        return await invites.open_invitations(self.store, self.room_id)

    @wire("room.enter")
    async def _enter(self, msg: Inbound) -> dict[str, Any]:
        """The core's entry, with what a caller's room adds for staff (issue 15): anyone but the
        provider who joined says so first (``announce``), everyone in the call is told, and every
        staff entry is audited."""
        principal = msg.principal
        if principal.kind != ParticipantKind.STAFF or self.state is CallState.ENDED:
            return await super()._enter(msg)
        self.waiting.admit(principal, self.state)  # forbidden / not_joined before anything else
        person = Present(msg.conn, principal, ParticipantKind.STAFF).person
        walk_in = not self.waiting.is_joined_provider(principal) and (
            person not in self.waiting.announced
        )
        if walk_in and msg.body.get("announce") is not True:
            limit = self.waiting.limit
            if (
                not self.presence.has_person(person)
                and self.presence.people() + await self.reserved_places() >= limit
            ):
                raise Refusal(refusals.CALL_FULL, f"a call holds at most {limit} people")
            who = self.waiting.joined_name or "Another provider"
            raise Refusal(
                refusals.JOIN_CONFIRM_NEEDED,
                f"{who} is in this call with the caller. Join anyway? "
                "Everyone in the call will be told.",
            )
        view = await super()._enter(msg)
        if walk_in:
            self.waiting.announced.add(person)
            self.broadcast(
                Push("call.notice", {"kind": STAFF_JOINED, "name": principal.display_name})
            )
        await audit.append(
            self.store,
            audit.STAFF_ENTERED,
            actor_user_id=int(principal.user_id) if principal.user_id else None,
            area_id=self.waiting.area_id,
            subject=self.waiting.caller_id or self.room_id,
            remote_addr=msg.remote_addr,
            details={"announced": walk_in},
        )
        return view

    # -- tokens and invitations -------------------------------------------------------------------
    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        try:
            token = await room_store.check_token(self.store, msg.secret)
        except (TokenRejectedError, NotFoundError):
            raise Refusal(
                refusals.INVALID_TOKEN, "this link is not valid or the call has ended"
            ) from None
        if token.room_id != self.room_id or token.kind == _INVITE_TOKEN_KIND:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid or the call has ended")
        if token.kind == _CALLER_TOKEN_KIND:
            return Principal(
                kind=ParticipantKind.CALLER.value,
                display_name=self.waiting.caller_name or "Caller",
                room_id=self.room_id,
                participant_id=token.caller_id,
            )
        return Principal(
            kind=ParticipantKind.GUEST.value,
            display_name=token.label or "Guest",
            room_id=self.room_id,
            participant_id=token.id,
        )

    @handles(CheckInvite)
    async def _check_invite(self, msg: CheckInvite) -> None:
        if self.state is CallState.ENDED:
            await invites.refuse_after_checking(self.store, msg.secret)
        await invites.check_invitation(self.store, self.room_id, msg.secret)

    @handles(ClaimInvite)
    async def _claim_invite(self, msg: ClaimInvite) -> GuestPass:
        if self.state is CallState.ENDED:
            await invites.refuse_after_checking(self.store, msg.secret)
        claimed = await invites.claim_invitation(
            self.store, self.room_id, msg.secret, msg.display_name
        )
        await audit.append(
            self.store,
            audit.INVITE_CLAIMED,
            actor_kind=ParticipantKind.CALLER.value,
            area_id=self.waiting.area_id,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
        )
        return GuestPass(claimed.token, self.room_id, self.waiting.area_name)

    @wire("call.invite")
    async def _invite(self, msg: Inbound) -> dict[str, Any]:
        """An invite link for one more person: the limit counts invitations not yet used."""
        person = self.member(msg.conn)
        if person.kind is not ParticipantKind.STAFF:
            raise Refusal(refusals.FORBIDDEN, "only staff in the call can invite")
        link = await invites.create_invitation(
            self.store,
            self.room_id,
            self.presence.people(),
            self.waiting.limit,
            str(msg.body.get("label") or ""),
        )
        await audit.append(
            self.store,
            audit.INVITE,
            actor_user_id=int(msg.principal.user_id) if msg.principal.user_id else None,
            area_id=self.waiting.area_id,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
        )
        return {"url": f"/i/{link}"}

    # -- the caller's pre-call check (issue 16) ----------------------------------------------------
    @wire("precheck.result")
    async def _precheck_result(self, msg: Inbound) -> dict[str, Any]:
        """The caller's camera, microphone, speaker and network check goes to the area's list, so
        the provider knows before joining. The gateway checked the body's shape."""
        person = self.member(msg.conn)
        if person.kind is not ParticipantKind.CALLER or self.waiting.caller_id is None:
            raise Refusal(refusals.FORBIDDEN, "only the caller reports a pre-call check")
        network = msg.body["network"]
        result = {
            "camera": msg.body["camera"],
            "microphone": msg.body["microphone"],
            "speaker": msg.body["speaker"],
            "network": {k: network[k] for k in ("udp", "tcp", "relay", "rtt_ms")},
        }
        with contextlib.suppress(ActorError):
            self.ref(self.waiting.area).tell(CallerUpdate(self.waiting.caller_id, precheck=result))
        return {}

    # -- what the area tells the room -------------------------------------------------------------
    @handles(ProviderJoining)
    async def _provider_joining(self, msg: ProviderJoining) -> None:
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        self.waiting.provider_joined(msg.user_id, msg.name, self.state)
        self.set_state(CallState.IN_CALL)
        self.push_state()

    @handles(WaitEstimate)
    async def _wait_estimate(self, msg: WaitEstimate) -> None:
        if self.state is CallState.ENDED or self.waiting.estimate == msg.seconds:
            return
        self.waiting.estimate = msg.seconds
        self.push_state()

    @handles(HoldCaller)
    async def _hold_caller(self, msg: HoldCaller) -> None:
        await self.hold()

    @handles(EndRoom)
    async def _end_room(self, msg: EndRoom) -> None:
        await self.end(msg.reason)

    @handles(AreaChanged)
    async def _area_changed(self, msg: AreaChanged) -> None:
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        self.waiting.moved(msg.area_id, msg.area_name, msg.place)
        self.waiting.consultation_over()
        self.set_state(CallState.WAITING)
        self.push_state()

    @handles(RoomSnapshot)
    async def _snapshot(self, msg: RoomSnapshot) -> RoomSnapshot:
        return RoomSnapshot(
            self.room_id,
            self.state.value,
            self.waiting.area_id,
            [p.peer_id for p in self.presence],
        )


class RoomHost(Actor):
    """``rooms``: starts room actors on demand (they restore themselves from storage)."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
    ) -> None:
        super().__init__()
        self.store = store
        self.supervisor = supervisor
        self.media = media
        self.grace = grace

    @handles(FindRoomPage)
    async def _find_page(self, message: FindRoomPage) -> None:
        self._answer_aside(self._page_allowed, message)

    async def _page_allowed(self, message: FindRoomPage) -> None:
        """See `FindRoomPage`: one ``not_found`` for a room that does not exist, is of another
        kind, or belongs to an organisation the staff member has no role in."""
        principal = message.principal
        org_id = await self._org_of(message.kind, message.room_id)
        if (
            org_id is None
            or not principal.is_staff
            or principal.user_id is None
            or org_id not in await staff_views.orgs_of_user(self.store, int(principal.user_id))
        ):
            raise Refusal(refusals.NOT_FOUND, "there is no such call")

    async def _org_of(self, kind: str, room_id: str) -> int | None:
        try:
            if kind == ONDEMAND_PAGE:
                return (await ondemand_store.by_room(self.store, room_id)).org_id
            room = await room_store.get_room(self.store, room_id)
            if room.kind != kind or room.area_id is None:
                return None
            area = await area_store.get_area(self.store, room.area_id)
            return (await orgs.get_unit(self.store, area.unit_id)).org_id
        except NotFoundError:
            return None

    @handles(OpenRoom)
    async def _open_one(self, message: OpenRoom) -> None:
        self._answer_aside(self._open, message.room_id, None)

    @handles(OpenRooms)
    async def _open_batch(self, message: OpenRooms) -> None:
        self._answer_aside(self._open_all, message.snapshots)

    def _answer_aside(self, work: Callable[[*_Args], Awaitable[object]], *args: *_Args) -> None:
        """Answer this ask from a task of its own, so the next area's batch is taken meanwhile.

        One room host serves every area, and starting a room waits for the supervisor and the
        room's ``on_start`` (several passes of a busy event loop): answered in the handler, the
        batches of 50 areas queued behind one another and the host was the node's arrival
        bottleneck (issue 17: 40 queued batches at 40 arrivals/s). A Refusal (a room that has
        ended) reaches the asker; anything else crashes the host as it would in the handler.
        """
        pending = self.defer_reply()

        async def answer() -> None:
            try:
                value = await work(*args)
            except Refusal as refusal:
                pending.refuse(refusal)
                return
            pending.reply(value)

        self.spawn(answer)

    async def _open_all(self, snapshots: tuple[callers.RoomRestore, ...]) -> None:
        async with trio.open_nursery() as nursery:
            for snapshot in snapshots:
                nursery.start_soon(self._open, snapshot.room.id, snapshot)

    async def _open(self, room_id: str, snapshot: callers.RoomRestore | None) -> str:
        address = addresses.room(room_id)
        # The supervisor registers a child's mailbox before its first await, so a second open
        # of a room that is still starting (even from a task beside this one) finds it here.
        if address not in self.registry:
            first = [snapshot] if snapshot is not None else []  # a restart reads storage

            def new_room() -> Room:
                return Room(
                    self.store, room_id, self.media, self.grace, first.pop() if first else None
                )

            await self.supervisor.start_child(ChildSpec(address, new_room, Restart.TRANSIENT))
        return address
