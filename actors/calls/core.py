"""The call actor: what every kind of call does, whoever opened it.

One actor per call. It keeps the call's state (:class:`~actors.calls.state.CallState`, changed in
:meth:`Call.set_state` only), who is present (:mod:`actors.calls.presence`), relays chat, puts the
call on hold and ends it, drives the media plane for everyone present (:mod:`actors.calls.media`),
enforces the participant limit, and waits a grace period for the people the call is held for.
Everything a kind of call decides differently (who may enter, the limit, what a hold or an end
means outside the call, storage, who is told) is asked of its :class:`~actors.calls.policy.CallPolicy`.
A kind of call that receives messages of its own (a caller's token, an invitation) subclasses
:class:`Call` and marks their handlers with ``@handles`` (typed) or ``@wire`` (client frames).

The actor runs at the address clients use (``room/<id>``) and answers at ``call/<call id>`` too
(:mod:`actors.calls.routing`): the media plane and its events know the call by its own id.

The mailbox loop never waits for the media plane: an offer is answered in a task of the actor
(``spawn``) while the asker's reply waits (``defer_reply``); the answer comes back as a message.
The grace is a timer (``send_after``) that is cancelled when they come back or the call ends.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import trio

from actors import refusals
from actors.calls.media import MediaPort, OfferAnswered, Signalling
from actors.calls.policy import CallPolicy
from actors.calls.presence import ParticipantKind, Presence, Present
from actors.calls.routing import alias, unalias
from actors.calls.state import CallState, check_move
from actors.inbound import CloseConnection, ConnectionClosed, Inbound, Push
from media import (
    DominantSpeakerChanged,
    LayersWanted,
    MediaError,
    PeerClosed,
    PeerConnected,
    SlotsChanged,
)
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, Pending, Timer, handles

log = logging.getLogger(__name__)

#: Websocket close code sent to everyone when the call ends (4000-4999 are the application's).
CLOSE_CALL_ENDED = 4001

WireHandler = Callable[[Any, Inbound], Awaitable[object]]
_Method = TypeVar("_Method", bound=WireHandler)


def wire(*frame_types: str) -> Callable[[_Method], _Method]:
    """Mark a method as the handler of these client frames (``Inbound.type``), as ``@handles``
    marks typed messages; a subclass adds frames of its own kind of call or overrides one."""

    def mark(method: _Method) -> _Method:
        method.__wire__ = frame_types  # type: ignore[attr-defined]
        return method

    return mark


def _wire_table(cls: type) -> dict[str, WireHandler]:
    names: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, attribute in vars(klass).items():
            for frame_type in getattr(attribute, "__wire__", ()):
                names[frame_type] = name
    return {frame_type: getattr(cls, name) for frame_type, name in names.items()}


#: The frame a page enters a call with.
ENTER = "room.enter"


@dataclass(frozen=True, slots=True)
class GraceOver:
    """What a call's grace timer tells the call when it is due (never, if it was cancelled)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """Told to itself when a push to ``person`` failed: they are out; the policy is told next."""

    person: Present


class Call(Actor):
    """One call. ``room_id`` is the id clients address it by (``room/<room_id>``); ``call_id``
    its own (the media plane's) id. See the module docstring."""

    #: Client frame type -> handler, built from the ``@wire`` marks (like ``_handlers``).
    _wire: ClassVar[dict[str, WireHandler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._wire = _wire_table(cls)

    def __init__(
        self, call_id: str, room_id: str, policy: CallPolicy, media: MediaPort | None
    ) -> None:
        super().__init__()
        self.call_id = call_id
        self.room_id = room_id
        self.policy = policy
        self.signalling = Signalling(media, call_id)
        self.presence = Presence()
        #: Numbers every slot map this call sends (``seq`` in the offer's answer and in
        #: ``media.slots``): a reply and a push travel by different paths and may swap places on
        #: the way, so the page applies a map only if it is newer than the one it has. Counted
        #: from the wall clock in microseconds, so a restarted call goes on above its old numbers
        #: (a page's media connection may outlive the restart).
        self._slot_seq = itertools.count(time.time_ns() // 1_000)
        self._state = CallState.WAITING
        self._grace: Timer | None = None
        #: Deferred ``media.offer`` replies whose answer has not come back yet.
        self._offers: set[Pending[object]] = set()
        self._alias: str | None = None
        #: The media plane's current dominant speaker (a peer id), told to each newcomer.
        self._speaker: str | None = None
        #: Every connection that entered this call since it started: a gateway's entry on a
        #: page's behalf (``Inbound.again``) is taken only from a connection not among them.
        self._ever_entered: set[str] = set()

    # -- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> CallState:
        return self._state

    def set_state(self, new: CallState) -> None:
        """The one place the call's state changes: checked, and logged as ``old -> new``."""
        old = self._state
        if new is old:
            return
        check_move(old, new)
        self._state = new
        log.info("%s (call %s): %s -> %s", self.address, self.call_id, old.value, new.value)

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_start(self) -> None:
        self._state = await self.policy.restore()
        log.debug("%s (call %s) starts %s", self.address, self.call_id, self._state.value)
        self._alias = alias(self.registry, self.call_id, self.address)
        self._watch_grace()

    async def on_stop(self) -> None:
        self._forget_alias()

    def _forget_alias(self) -> None:
        if self._alias is not None:
            unalias(self.registry, self._alias, self.address)
            self._alias = None

    # -- dispatch ---------------------------------------------------------------------------------
    @handles(Inbound)
    async def _client_frame(self, message: Inbound) -> object:
        handler = self._wire.get(message.type)
        if handler is None:
            raise Refusal(refusals.UNKNOWN_TYPE, f"a room does not handle {message.type}")
        if message.type != ENTER:
            return await handler(self, message)
        if message.again and message.conn in self._ever_entered:
            raise Refusal(refusals.NOT_IN_ROOM, "enter the room first")
        entered = await handler(self, message)
        self._ever_entered.add(message.conn)
        return entered

    @handles(ConnectionClosed)
    async def _connection_closed(self, message: ConnectionClosed) -> None:
        await self.leave(message.conn)

    # -- entry ------------------------------------------------------------------------------------
    @wire(ENTER)
    async def _enter(self, msg: Inbound) -> dict[str, Any]:
        if self._state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        kind = self.policy.admit(msg.principal, self._state)
        person = Present(msg.conn, msg.principal, kind)
        limit = self.policy.limit
        if (
            not self.policy.holds_for(person)
            and msg.conn not in self.presence
            and not self.presence.has_person(person.person)
            and self.presence.people() + await self.reserved_places() >= limit
        ):
            raise Refusal(refusals.CALL_FULL, f"a call holds at most {limit} people")
        self.presence.add(person)
        self._watch_grace()
        await self.policy.entered(self, person)
        self.push_participants()
        if kind is ParticipantKind.STAFF:
            self.push_state()
        if self._speaker is not None and self.presence.by_peer(self._speaker) is not None:
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(Push("call.speaker", {"peer": self._speaker}))
        return self.state_view(person)

    async def reserved_places(self) -> int:
        """Places held for people not in yet (a kind of call with invitations counts the open
        ones): the limit counts everyone in or invited (issue 15). None here."""
        return 0

    @wire("room.leave")
    async def _leave(self, msg: Inbound) -> dict[str, Any]:
        await self.leave(msg.conn)
        return {}

    async def leave(self, conn: str) -> None:
        """``conn`` is out of the call (it left or its socket closed); idempotent."""
        person = self.presence.remove(conn)
        if person is None:
            return
        self.signalling.close_peer(person.peer_id)
        await self.policy.left(self, person)
        self._watch_grace()
        self.push_participants()

    def member(self, conn: str) -> Present:
        """The participant behind ``conn``, or refuse ``not_in_room``."""
        person = self.presence.get(conn)
        if person is None:
            raise Refusal(refusals.NOT_IN_ROOM, "enter the room first")
        return person

    # -- the grace --------------------------------------------------------------------------------
    def _watch_grace(self) -> None:
        """Arm the grace when nobody the call is held for is connected; cancel it when one is."""
        wait = self.policy.grace
        if (
            wait is None
            or self._state is CallState.ENDED
            or self.presence.any(self.policy.holds_for)
        ):
            self._cancel_grace()
        elif self._grace is None:
            self._grace = self.send_after(wait, GraceOver())

    def _cancel_grace(self) -> None:
        """A cancelled timer's message is never handled, even if it is already queued."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    @handles(GraceOver)
    async def _grace_over(self, message: GraceOver) -> None:
        self._grace = None
        if self._state is CallState.ENDED or self.presence.any(self.policy.holds_for):
            return
        reason = await self.policy.abandoned(self)
        await self.end(reason)

    # -- in the call ------------------------------------------------------------------------------
    @wire("chat.send")
    async def _chat(self, msg: Inbound) -> dict[str, Any]:
        person = self.member(msg.conn)
        text = str(msg.body["text"]).strip()
        if not text:
            raise Refusal(refusals.BAD_FIELD, "an empty message is not sent")
        self.broadcast(
            Push(
                "chat.message",
                {
                    "from": person.principal.display_name,
                    "peer": person.peer_id,
                    "text": text,
                    "at": datetime.now(UTC).timestamp(),
                },
            )
        )
        return {}

    @wire("media.state")
    async def _media_state(self, msg: Inbound) -> dict[str, Any]:
        person = self.member(msg.conn)
        person.audio = bool(msg.body["audio"])
        person.video = bool(msg.body["video"])
        self.push_participants()
        return {}

    @wire("call.hold")
    async def _call_hold(self, msg: Inbound) -> dict[str, Any]:
        self.member(msg.conn)
        await self.policy.hold_requested(self, msg)
        return {}

    @wire("call.end")
    async def _call_end(self, msg: Inbound) -> dict[str, Any]:
        self.member(msg.conn)
        reason = await self.policy.end_requested(self, msg)
        await self.end(reason)
        return {}

    # -- media signalling -------------------------------------------------------------------------
    @wire("media.offer")
    async def _media_offer(self, msg: Inbound) -> None:
        person = self.member(msg.conn)
        if not self.signalling.available:
            raise Refusal(refusals.NO_MEDIA, "this server runs without a media plane")
        pending = self.defer_reply()
        self._offers.add(pending)
        self.spawn(self._answer_offer, pending, person.conn, person.peer_id, str(msg.body["sdp"]))

    async def _answer_offer(
        self, pending: Pending[object], conn: str, peer_id: str, sdp: str
    ) -> None:
        """In a task of the call: ask the media plane, tell the outcome to the call."""
        try:
            answer = await self.signalling.answer(peer_id, sdp)
        except (MediaError, ValueError) as error:
            outcome = OfferAnswered(pending, conn, peer_id, None, str(error))
        except trio.TooSlowError:
            outcome = OfferAnswered(pending, conn, peer_id, None, None)
        else:
            outcome = OfferAnswered(pending, conn, peer_id, answer, None)
        try:
            self.self_ref.tell(outcome)
        except ActorError:
            # The call is swamped or gone: the peer is not wanted and the asker must not wait.
            self._offers.discard(pending)
            if outcome.sdp is not None:
                self.signalling.close_peer(peer_id)
            pending.refuse(Refusal(refusals.BUSY, "the call is busy; offer again"))

    @handles(OfferAnswered)
    async def _offer_answered(self, outcome: OfferAnswered) -> None:
        pending = outcome.pending
        if pending not in self._offers:
            return  # refused already (the call ended meanwhile)
        self._offers.discard(pending)
        person = self.presence.get(outcome.conn)
        if person is None or person.peer_id != outcome.peer_id:
            # Left while the media plane answered: the peer must not outlive their presence.
            if outcome.sdp is not None:
                self.signalling.close_peer(outcome.peer_id)
            pending.refuse(Refusal(refusals.NOT_IN_ROOM, "enter the room first"))
            return
        if outcome.sdp is None:
            if outcome.error is None:
                pending.refuse(Refusal(refusals.UNAVAILABLE, "the media plane did not answer"))
            else:
                pending.refuse(Refusal(refusals.BAD_SDP, outcome.error))
            return
        if self._state is not CallState.IN_CALL:
            self._gate(person)
        pending.reply(
            {
                "sdp": outcome.sdp,
                "slots": self.signalling.slot_names(person.peer_id),
                "audio": self.signalling.audio_slot_names(person.peer_id),
                "seq": next(self._slot_seq),
            }
        )

    @wire("media.leave")
    async def _media_leave(self, msg: Inbound) -> dict[str, Any]:
        person = self.member(msg.conn)
        self.signalling.close_peer(person.peer_id)
        return {}

    @wire("media.view")
    async def _media_view(self, msg: Inbound) -> dict[str, Any]:
        """The page says which tiles it shows and how tall, and whom it pinned (last-N).

        The gateway checked the shape and sizes; here every id must be someone in this call
        (else ``bad_field``, and nothing changes).
        """
        person = self.member(msg.conn)
        shown_body: dict[str, Any] = msg.body["shown"]
        pinned_body: list[str] = msg.body.get("pinned") or []
        present = {p.peer_id for p in self.presence}
        unknown = [p for p in [*shown_body, *pinned_body] if p not in present]
        if unknown:
            raise Refusal(refusals.BAD_FIELD, "media.view names someone not in this call")
        shown = {peer: int(size["h"]) for peer, size in shown_body.items()}
        self.signalling.view(person.peer_id, shown, list(pinned_body))
        return {}

    @handles(SlotsChanged, PeerClosed, PeerConnected)
    async def _media_event(self, event: SlotsChanged | PeerClosed | PeerConnected) -> None:
        person = self.presence.by_peer(event.peer_id)
        if person is None:
            return
        if isinstance(event, SlotsChanged):
            body: dict[str, Any] = {
                "slots": self.signalling.slot_names(event.peer_id),
                "audio": self.signalling.audio_slot_names(event.peer_id),
                "seq": next(self._slot_seq),
            }
            kind = "media.slots"
        elif isinstance(event, PeerClosed):
            body, kind = {"reason": event.reason}, "media.closed"
        else:
            body, kind = {}, "media.connected"
        with contextlib.suppress(ActorError):
            self.ref(person.conn).tell(Push(kind, body))

    @handles(DominantSpeakerChanged)
    async def _speaker_changed(self, event: DominantSpeakerChanged) -> None:
        """Everyone learns who speaks now, by the id ``room.participants`` lists them under."""
        if self.presence.by_peer(event.peer_id) is None:
            return  # left between the media plane's decision and this message
        self._speaker = event.peer_id
        self.broadcast(Push("call.speaker", {"peer": event.peer_id}))

    @handles(LayersWanted)
    async def _layers_wanted(self, event: LayersWanted) -> None:
        """The publisher's page sends only the simulcast layers someone wants (``media.layers``):
        the others are paused at its encoder, saving its uplink (docs/media.md)."""
        person = self.presence.by_peer(event.peer_id)
        if person is None:
            return
        with contextlib.suppress(ActorError):
            self.ref(person.conn).tell(Push("media.layers", {"active": list(event.active)}))

    def _gate(self, person: Present) -> None:
        """Media flows only while the call is on: on hold (or waiting) the server forwards
        nothing to or from anyone still connected, whatever their page does; the caller's
        camera reaches no one and the caller hears no one, from the next packet on."""
        self.signalling.gate(person.peer_id, self._state is CallState.IN_CALL)

    # -- hold and end -----------------------------------------------------------------------------
    async def hold(self) -> None:
        """On hold: the people the call is held for wait (no media), everyone else leaves."""
        if self._state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        self.set_state(CallState.ON_HOLD)
        await self.policy.holding(self)
        for person in self.presence:
            if self.policy.holds_for(person):
                self._gate(person)
                continue
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(
                    Push("room.state", {"state": CallState.ON_HOLD.value, "room": self.room_id})
                )
            await self.leave(person.conn)
        await self.policy.held(self)
        self.push_state()

    async def end(self, reason: str) -> None:
        """End the call for everyone, for good; idempotent. The actor stops after this message.

        In order: the policy releases what is stored, the media plane drops the call, everyone is
        told and their connections closed, the opener is told, the ``call/<id>`` alias goes.
        """
        if self._state is CallState.ENDED:
            return
        self.set_state(CallState.ENDED)
        self._cancel_grace()
        await self.policy.closing(self, reason)
        self.signalling.close_call()
        for pending in self._offers:
            pending.refuse(Refusal(refusals.ENDED, "this call has ended"))
        self._offers.clear()
        self.broadcast(
            Push(
                "room.state",
                {"state": CallState.ENDED.value, "reason": reason, "room": self.room_id},
            )
        )
        for person in self.presence:
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(CloseConnection(CLOSE_CALL_ENDED, "the call has ended"))
        self.presence.clear()
        self.policy.closed(self, reason)
        self._forget_alias()
        self.stop()

    # -- telling the people present ---------------------------------------------------------------
    def state_view(self, person: Present | None = None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "room": self.room_id,
            "state": self._state.value,
            **self.policy.describe(),
            "participants": self.presence.views(),
        }
        if person is not None:
            view["you"] = person.peer_id
        return view

    def push_state(self) -> None:
        """Everyone gets the state; everyone's media follows it."""
        self.broadcast(Push("room.state", self.state_view()))
        for person in self.presence:
            self._gate(person)

    def push_participants(self) -> None:
        self.broadcast(Push("room.participants", {"participants": self.presence.views()}))

    def broadcast(self, event: Push) -> None:
        """Tell everyone present; a connection that is gone or cannot keep up is dropped."""
        for person in self.presence:
            try:
                self.ref(person.conn).tell(event)
            except ActorError:
                self._drop(person)

    def _drop(self, person: Present) -> None:
        """A connection that cannot be told any more leaves as if its socket had closed: at once
        for pushes, media and the grace; the policy hears of it next, in the mailbox."""
        if self.presence.get(person.conn) is not person:
            return
        self.presence.remove(person.conn)
        self.signalling.close_peer(person.peer_id)
        self._watch_grace()
        if self._state is not CallState.ENDED:
            with contextlib.suppress(ActorError):
                self.self_ref.tell(Dropped(person))

    @handles(Dropped)
    async def _dropped(self, message: Dropped) -> None:
        await self.policy.left(self, message.person)
        self.push_participants()


Call._wire = _wire_table(Call)
