"""One client connection: an actor (``conn/<n>``) plus the reader that feeds the actors it addresses.

The reader (the connection's own task) owns the inbound side: it decodes each frame, applies the
limits (frame size, rate, hello first), resolves the route and asks the target actor, then writes
the reply. The actor side owns the outbound side: other actors ``tell`` it
:class:`~actors.inbound.Push` events, which it writes to the socket. Both write through one lock,
because a websocket carries one frame at a time.

An actor that closes the connection (a room that ends) does so while the request that ended it may
still be on its way back: the close waits for that reply to be written, so the client that sent
``call.end`` gets its reply before the 4001 close, as ``docs/protocol.md`` promises.

Overflow policy: the outbound queue keeps the latest state, not every event. A queue event
(``queue.caller``, ``queue.removed``) still waiting to be written is replaced by a newer one for the
same caller, so a dashboard that falls behind while its clinic is busy catches up with the current
queue instead of a backlog. The queue is bounded by distinct entries (callers changed plus other
events); when an actor cannot queue one more for a client that does not read, the mailbox records
the overflow and the connection is closed with 1013 (try again later) so the client reconnects and
resynchronises instead of silently missing events.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from actors import addresses, refusals
from actors.inbound import CloseConnection, ConnectionClosed, Inbound, Push
from actors.messages import PrincipalChanged, StaffActive, StaffConnected, StaffDisconnected
from actors.principal import Principal
from actors.waiting.areas import NOT_YOURS
from gateway import counters, protocol
from gateway.auth import Authenticator
from gateway.protocol import ProtocolError
from gateway.ratelimit import TokenBucket
from gateway.routes import resolve, validate_body
from runtime.address import Address
from runtime.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    AskTimeout,
    MailboxFull,
    Refusal,
)
from runtime.kernel import Actor, Envelope, Mailbox, handles
from runtime.registry import Registry

log = logging.getLogger(__name__)

_ids = itertools.count(1)
#: This node's id when the server runs as one node of a cluster (set by ``waitroom.server``):
#: connections are then ``conn/<node>-<n>``, so a push from an actor on another node finds the
#: node that holds the websocket (issue 18). One node keeps ``conn/<n>``.
NODE_ID = ""

#: Websocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013

#: A staff connection in use tells the Directory so at most this often (seconds): enough to keep
#: its session from idling out (the idle timeout is an hour by default), and to register the
#: connection again with a Directory that restarted.
STAFF_ACTIVITY_REPORT_INTERVAL = 60.0
#: Rooms a connection remembers having entered (a page is in one; a group page and its breakout).
MAX_REMEMBERED_ROOMS = 4
ROOM_ENTER = "room.enter"
ROOM_LEAVE = "room.leave"
AREA_WATCH = "area.watch"
AREA_UNWATCH = "area.unwatch"
ONDEMAND_WATCH = "ondemand.watch"
ONDEMAND_UNWATCH = "ondemand.unwatch"
#: The lists a page watches, by the kind of address: how to watch it, stop, and the event that
#: gives the page the whole list again after `rejoin` watched it once more.
WATCHES: dict[str, tuple[str, str, str]] = {
    addresses.AREA: (AREA_WATCH, AREA_UNWATCH, "queue.snapshot"),
    addresses.ONDEMAND_KIND: (ONDEMAND_WATCH, ONDEMAND_UNWATCH, "ondemand.snapshot"),
}
#: How long a connection keeps trying to watch and enter again after a node died (its areas and
#: rooms start on a live node within about 7 s: the 5 s placement TTL and the 2 s area sweep).
REJOIN_FOR = 30.0
REJOIN_RETRY = 1.0
#: What an area or room answers while it is being started again elsewhere.
REJOIN_RETRYABLE = frozenset(
    {refusals.NOT_FOUND, refusals.TIMEOUT, refusals.UNAVAILABLE, refusals.BUSY}
)


def _watch_of(address: str) -> tuple[str, str, str] | None:
    """The watch, unwatch and snapshot types of the list at ``address`` (None: not a list)."""
    kind, sep, rest = address.partition("/")
    return WATCHES.get(kind) if sep and rest else None


def _snapshot(kind: str, reply: dict[str, Any]) -> dict[str, Any]:
    """The event body a page gets after `rejoin` watched a list again: an area's
    ``queue.snapshot`` (its id and callers), or the on-demand queue's reply as it is."""
    if kind == AREA_WATCH:
        area = reply.get("area") or {}
        return {"area": area.get("id"), "callers": reply.get("callers", [])}
    return reply


@dataclass(frozen=True)
class Limits:
    """Per-connection limits; the defaults suit browsers, benchmarks raise ``rate``."""

    #: Sustained client messages per second, and the burst allowed above it. A browser sends a few
    #: per second at most (chat, toggles, signalling); 20/s leaves room and stops floods early.
    rate: float = 20.0
    burst: int = 60
    #: After this many refused messages in a row the client is misbehaving: close 1008.
    max_strikes: int = 200
    #: The client must have said hello (successfully) this soon after connecting; pings and
    #: refused frames before it do not extend the deadline.
    hello_timeout: float = 10.0
    #: Clients send a heartbeat (``ping``) every 20 s; silence this long means the peer is gone.
    idle_timeout: float = 60.0
    #: Distinct outbound entries queued for one slow client before it is disconnected. Queue events
    #: for the same caller count once (the newest replaces the older), so this bounds the state
    #: a dashboard is behind on (callers changed, about 1 KiB each), not the events of a busy
    #: clinic: a burst of thousands of arrivals fits, a client that never reads is still closed.
    outbound_queue: int = 4096
    #: How long the gateway waits for an actor's reply.
    ask_timeout: float = 10.0
    #: Seconds a list event (``queue.*``, ``ondemand.*``: a dashboard's) waits for others to
    #: share its frame, for a client that takes several per frame. Ten dashboards of a clinic
    #: taking 100 arrivals a second get a frame per event each without it, and writing frames
    #: was the largest piece of the node's work (issue 17); a person does not see 20 ms.
    list_linger: float = 0.02


SendFrame = Callable[[bytes], Awaitable[None]]


def coalescing_key(message: object) -> Hashable | None:
    """Events that only say "this is the state of caller X now": a newer one supersedes older ones.

    ``queue.caller`` (an upsert) and ``queue.removed`` of the same caller in the same area share a
    key, so the last one queued is the one that counts; so do ``ondemand.request`` and
    ``ondemand.removed`` of one on-demand request; everything else is delivered as sent.
    """
    if type(message) is not Push:
        return None
    if message.type == "queue.caller":
        caller = message.body.get("caller")
        if isinstance(caller, dict):
            return ("queue", message.body.get("area"), caller.get("id"))
    elif message.type == "queue.removed":
        return ("queue", message.body.get("area"), message.body.get("id"))
    elif message.type == "ondemand.request":
        request = message.body.get("request")
        if isinstance(request, dict):
            return ("ondemand", message.body.get("org"), request.get("id"))
    elif message.type == "ondemand.removed":
        return ("ondemand", message.body.get("org"), message.body.get("id"))
    return None


class OutboundMailbox(Mailbox):
    """A connection's mailbox: in order, bounded by distinct entries, superseded queue events dropped.

    While the connection keeps up it behaves like any mailbox (each event is written as it comes).
    When it falls behind (the loop stalled, the client reads slowly), a queue event for a caller
    who already has one waiting replaces it and moves to the back, so what the client receives
    when it catches up is the current state of each caller, once, in the order of their last
    change. Asks and other events are never merged.
    """

    __slots__ = ("_entries", "_on_overflow", "_serial", "overflowed")

    def __init__(
        self, address: str, capacity: int, on_overflow: Callable[[], None] | None = None
    ) -> None:
        # Not Mailbox.__init__: its queue would never carry a message here (issue 17: 10,000
        # waiting callers). Every slot it sets is set here instead
        # (tests/gateway/test_connection_memory.py checks that none is missed).
        self.address = address
        self.capacity = capacity
        self._queue = _NO_QUEUE
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self.front: Envelope | None = None
        self.registry = None
        self.kind = address.split("/", 1)[0]
        self.tally = None
        #: Set the first time an entry finds the queue full.
        self.overflowed = False
        self._entries: OrderedDict[Hashable, Envelope] = OrderedDict()
        self._serial = itertools.count()
        #: Called once, when an entry first finds the queue full (the connection closes 1013):
        #: a callback instead of a task per connection waiting for an event.
        self._on_overflow = on_overflow

    def put(self, envelope: Envelope) -> None:
        if self.closed:
            raise ActorNotFound(self.address)
        key = coalescing_key(envelope.message) if envelope.reply_to is None else None
        if key is not None and key in self._entries:
            self._entries[key] = envelope
            self._entries.move_to_end(key)
            return
        if len(self._entries) >= self.capacity:
            if not self.overflowed:
                self.overflowed = True
                if self._on_overflow is not None:
                    self._on_overflow()
            raise MailboxFull(self.address, self.capacity)
        self._entries[key if key is not None else next(self._serial)] = envelope
        self._count(1)  # the registry's queued-per-kind tally (a superseded event is not new)
        self._lot.unpark()

    def close(self) -> None:
        super().close()
        # The callback is the session's bound method and the session holds this mailbox: a
        # cycle only a full collection would free (issue 17). Closed, nothing overflows.
        self._on_overflow = None

    def queued(self) -> int:
        return len(self._entries)

    def get_nowait(self) -> Envelope | None:
        if not self._entries:
            return None
        self._count(-1)
        return self._entries.popitem(last=False)[1]

    def take_push(self) -> Push | None:
        """The next entry if it is an event, taken without waiting (else ``None``, and it stays):
        the connection writes the events already queued together (protocol version 2)."""
        if not self._entries:
            return None
        envelope = next(iter(self._entries.values()))
        message = envelope.message
        if type(message) is not Push or envelope.reply_to is not None:
            return None
        self._entries.popitem(last=False)
        self._count(-1)
        return message


#: What an OutboundMailbox has for the base class's queue, which it never uses (see there).
_NO_QUEUE: deque[Envelope] = deque(maxlen=0)


class Connection(Actor):
    """The outbound half: forwards events from actors to this client's websocket."""

    def __init__(
        self,
        write: SendFrame,
        closer: Callable[[int, str], None],
        on_principal: Callable[[Principal], None] | None = None,
        queued_push: Callable[[], Push | None] | None = None,
        linger_for: Callable[[Push], float] | None = None,
    ) -> None:
        super().__init__()
        self._write = write
        self._close = closer
        self._on_principal = on_principal
        #: The next event already queued, if the client takes several per frame (version 2).
        self._queued_push = queued_push
        #: How long an event waits for company before its frame is written (0: not at all).
        self._linger_for = linger_for

    @handles(Push)
    async def _push(self, message: Push) -> None:
        frame = protocol.encode_event(message.type, message.body)
        if self._queued_push is not None:
            # Whatever queued up while this connection waited goes in the same frame, and a list
            # event first waits a moment for more (`Limits.list_linger`): the busier the node,
            # the fewer sends per event.
            linger = self._linger_for(message) if self._linger_for is not None else 0.0
            if linger > 0:
                await trio.sleep(linger)
            parts = [frame]
            size = len(frame)
            while size < protocol.MAX_BATCH_BYTES and len(parts) < protocol.MAX_BATCH_EVENTS:
                more = self._queued_push()
                if more is None:
                    break
                part = protocol.encode_event(more.type, more.body)
                parts.append(part)
                size += len(part)
            if len(parts) > 1:
                counters.events_batched(len(parts))
                frame = b"".join(parts)
        await self._write(frame)

    @handles(CloseConnection)
    async def _close_connection(self, message: CloseConnection) -> None:
        self._close(message.code, message.reason)

    @handles(PrincipalChanged)
    async def _principal_changed(self, message: PrincipalChanged) -> None:
        if self._on_principal is not None:
            self._on_principal(message.principal)


class ClientSession:
    """Everything about one websocket: identity, limits, the reader loop and the actor."""

    # One per open connection (10,000 waiting callers, issue 17): slots, not a dict each.
    __slots__ = (
        "_activity_reported",
        "_bucket",
        "_close_after_reply",
        "_entered",
        "_in_flight",
        "_presence_reported",
        "_serving",
        "_staff_session",
        "_strikes",
        "_touched",
        "_watched",
        "_write_lock",
        "_write_raw",
        "address",
        "authenticator",
        "close_code",
        "close_reason",
        "limits",
        "mailbox",
        "principal",
        "registry",
        "remote_addr",
        "session_cookie",
        "version",
    )

    def __init__(
        self,
        registry: Registry,
        authenticator: Authenticator,
        write: SendFrame,
        session_cookie: str | None,
        remote_addr: str,
        limits: Limits,
    ) -> None:
        self.registry = registry
        self.authenticator = authenticator
        number = next(_ids)
        self.address: Address = addresses.conn(f"{NODE_ID}-{number}" if NODE_ID else number)
        self.session_cookie = session_cookie
        self.remote_addr = remote_addr
        self.limits = limits
        self.principal: Principal | None = None
        self.version: int | None = None
        self._write_raw = write
        self._write_lock = trio.Lock()
        self._bucket = TokenBucket(limits.rate, limits.burst)
        self._strikes = 0
        self._touched: set[str] = set()
        #: The ``room.enter`` body of each room this page entered (newest last, a few at most):
        #: what `_enter_again` sends when the room restarted and forgot the page.
        self._entered: dict[str, dict[str, Any]] = {}
        #: The watch body of each list this page watches (an area's queue, an organisation's
        #: on-demand queue), by address: what `rejoin` sends again.
        self._watched: dict[str, dict[str, Any]] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        #: The scope of `run`'s reader and actor: cancelled by `request_close`.
        self._serving: trio.CancelScope | None = None
        #: A request is with an actor; an actor's close waits for its reply (see the module doc).
        self._in_flight = False
        self._close_after_reply: tuple[int, str] | None = None
        self.mailbox = OutboundMailbox(self.address, limits.outbound_queue, self._overflowed)
        #: The session cookie this staff connection lives on, once its hello succeeded with it.
        self._staff_session: str | None = None
        self._activity_reported = 0.0
        self._presence_reported = 0.0

    async def write(self, frame: bytes) -> None:
        async with self._write_lock:
            try:
                await self._write_raw(frame)
            except (trio.Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # the transport is gone; nothing more can be sent
                self.request_close(CLOSE_GOING_AWAY, f"send failed ({type(exc).__name__})")

    def request_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if self._serving is not None:
            self._serving.cancel(reason=f"connection closing: {self.close_reason}")

    def refuse(self, counted: str, code: int, reason: str) -> None:
        """Close for cause, counted under ``counted`` (one of :data:`gateway.counters.REASONS`)
        unless the connection was already closing for another reason."""
        if self.close_code is None:
            counters.refused(counted)
        self.request_close(code, reason)

    def close_for_actor(self, code: int, reason: str) -> None:
        """An actor's :class:`CloseConnection`: after the reply to a request in flight, if any."""
        if self._in_flight:
            if self._close_after_reply is None:
                self._close_after_reply = (code, reason)
        else:
            self.request_close(code, reason)

    async def run(self, frames: Callable[[], Awaitable[bytes | str | None]]) -> None:
        """Serve until the client goes, misbehaves past its limits, or is told to close.

        ``frames`` returns the next client message, or ``None`` when the socket closed.
        """
        actor = Connection(
            self.write,
            self.close_for_actor,
            self._principal_changed,
            self._queued_push,
            self._linger_for,
        )
        actor.address = self.address
        actor.registry = self.registry
        self.registry.register(self.mailbox)
        try:
            # The reader runs in this task, not a child of its own: that task was 14 objects the
            # cyclic GC walks for every waiting caller (issue 17), and this one only waited.
            async with trio.open_nursery() as nursery:
                self._serving = nursery.cancel_scope
                nursery.start_soon(partial(actor.run_loop, self.mailbox, tasks=nursery))
                if self.close_code is None:
                    await self._read_loop(frames)
                nursery.cancel_scope.cancel(reason=f"connection closing: {self.close_reason}")
        finally:
            self._serving = None
            self.registry.unregister(self.mailbox)
            self.mailbox.close()
            self.mailbox.fail_pending()
            self._announce_closed()

    def _queued_push(self) -> Push | None:
        if self.version is None or self.version < protocol.BATCHED_EVENTS_VERSION:
            return None
        return self.mailbox.take_push()

    def _linger_for(self, message: Push) -> float:
        """A list event waits for others to share its frame; only for a client that takes
        several per frame, and never a call's or a caller's own events."""
        if self.version is None or self.version < protocol.BATCHED_EVENTS_VERSION:
            return 0.0
        return self.limits.list_linger if coalescing_key(message) is not None else 0.0

    def _principal_changed(self, principal: Principal) -> None:
        """The Directory's newer principal for this staff member (a role granted): from now on."""
        current = self.principal
        if (
            self._staff_session is not None
            and current is not None
            and principal.kind == "staff"
            and principal.user_id == current.user_id
        ):
            self.principal = principal

    def _tell_directory(self, message: object) -> None:
        # The directory may be restarting: the next report registers this connection again.
        with contextlib.suppress(ActorError):
            self.registry.ref(addresses.DIRECTORY).tell(message)

    def _staff_activity(self) -> None:
        """A request (not a heartbeat) from a staff client: keep its session from idling out."""
        if self._staff_session is None or self.principal is None:
            return
        now = trio.current_time()
        if now - self._activity_reported >= STAFF_ACTIVITY_REPORT_INTERVAL:
            self._activity_reported = now
            self._tell_directory(StaffActive(self.address, self._staff_session, self.principal))

    def _staff_presence(self) -> None:
        """A heartbeat: not use, but say again (once a minute) which session this socket lives on,
        so a Directory that restarted and lost its map can still close it."""
        if self._staff_session is None or self.principal is None:
            return
        now = trio.current_time()
        if now - self._presence_reported >= STAFF_ACTIVITY_REPORT_INTERVAL:
            self._presence_reported = now
            self._tell_directory(StaffConnected(self.address, self._staff_session, self.principal))

    def _announce_closed(self) -> None:
        if self.principal is None:
            return
        if self._staff_session is not None:
            self._tell_directory(StaffDisconnected(self.address))
        gone = ConnectionClosed(self.address, self.principal)
        for address in self._touched:
            # The actor may be gone or busy; it also notices failed pushes.
            with contextlib.suppress(ActorError):
                self.registry.ref(address).tell(gone)

    def _overflowed(self) -> None:
        self.refuse(counters.SLOW_READER, CLOSE_TRY_AGAIN, "client too slow to read events")

    async def _read_loop(self, frames: Callable[[], Awaitable[bytes | str | None]]) -> None:
        hello_deadline = trio.current_time() + self.limits.hello_timeout
        while True:
            data: bytes | str | None = b""
            idle_deadline = trio.current_time() + self.limits.idle_timeout
            deadline = (
                idle_deadline if self.principal is not None else min(hello_deadline, idle_deadline)
            )
            with trio.move_on_at(deadline) as idle:
                data = await frames()
            if idle.cancelled_caught:
                if self.principal is not None:
                    self.request_close(CLOSE_GOING_AWAY, "idle timeout")
                else:
                    self.refuse(counters.HELLO_TIMEOUT, CLOSE_GOING_AWAY, "no hello in time")
                return
            if data is None:
                self.request_close(CLOSE_NORMAL, "client closed")
                return
            await self._on_frame(data)

    async def _on_frame(self, data: bytes | str) -> None:
        try:
            frame = protocol.decode(data)
            if not self._bucket.take(trio.current_time()):
                raise ProtocolError(
                    refusals.RATE_LIMITED, "too many messages; slow down", frame.request_id
                )
            if frame.type == protocol.PING:  # before hello too: a heartbeat needs no identity
                self._staff_presence()
                await self.write(protocol.encode_reply(frame.request_id, {"pong": True}))
            elif frame.type == protocol.HELLO:
                await self._hello(frame)
            elif self.principal is None:
                raise ProtocolError(refusals.HELLO_REQUIRED, "send hello first", frame.request_id)
            else:
                self._staff_activity()
                self._in_flight = True
                try:
                    await self._route(frame)
                finally:
                    self._in_flight = False
            self._strikes = 0
        except ProtocolError as error:
            counters.error_sent(error.code)
            await self.write(protocol.encode_error(error.request_id, error.code, error.detail))
            self._strikes += 1
            if self._strikes >= self.limits.max_strikes:
                self.refuse(counters.TOO_MANY_REFUSED, CLOSE_POLICY, "too many refused messages")
        finally:
            if self._close_after_reply is not None:
                self.request_close(*self._close_after_reply)

    async def _hello(self, frame: protocol.ClientFrame) -> None:
        if self.principal is not None:
            raise ProtocolError(
                refusals.ALREADY_AUTHENTICATED, "hello was already accepted", frame.request_id
            )
        versions = frame.body.get("versions", [1])
        if not isinstance(versions, list):
            raise ProtocolError(refusals.BAD_FIELD, "versions must be a list", frame.request_id)
        common = [v for v in protocol.SUPPORTED_VERSIONS if v in versions]
        if not common:
            raise ProtocolError(
                refusals.UNSUPPORTED_VERSION,
                f"this server speaks {protocol.SUPPORTED_VERSIONS}",
                frame.request_id,
            )
        token = frame.body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise ProtocolError(refusals.BAD_FIELD, "token must be a string", frame.request_id)
        try:
            principal = await self.authenticator.authenticate(
                token, self.session_cookie, self.remote_addr
            )
        except Refusal as refusal:
            raise ProtocolError(refusal.code, refusal.detail, frame.request_id) from None
        except ActorError as error:
            raise ProtocolError(
                refusals.UNAVAILABLE,
                f"sign-in service unavailable ({type(error).__name__})",
                frame.request_id,
            ) from None
        self.principal = principal
        self.version = max(common)
        if token is None and principal.kind == "staff" and self.session_cookie:
            # The Directory closes this socket when the session ends (issue 15).
            self._staff_session = self.session_cookie
            self._activity_reported = self._presence_reported = trio.current_time()
            self._tell_directory(StaffConnected(self.address, self.session_cookie, principal))
        await self.write(
            protocol.encode_reply(
                frame.request_id,
                {
                    "version": self.version,
                    "conn": self.address,
                    "kind": principal.kind,
                    "name": principal.display_name,
                    "room": principal.room_id,
                    "heartbeat": self.limits.idle_timeout / 3,
                },
            )
        )

    async def _route(self, frame: protocol.ClientFrame) -> None:
        assert self.principal is not None
        route, address = resolve(frame.type, frame.to, self.principal, frame.request_id)
        validate_body(route, frame.body, frame.request_id)
        message = Inbound(frame.type, frame.body, self.principal, self.address, self.remote_addr)
        try:
            result = await self._ask(address, message, frame.request_id)
        except ProtocolError as refused:
            if refused.code != refusals.NOT_IN_ROOM or address not in self._entered:
                raise
            result = await self._enter_again(address, message, refused)
        if frame.type == ROOM_ENTER and address.startswith(addresses.ROOM + "/"):
            self._remember_entry(address, frame.body)
        elif frame.type == ROOM_LEAVE:
            self._entered.pop(address, None)
        elif (watch := _watch_of(address)) is not None:
            if frame.type == watch[0]:
                self._watched[address] = frame.body
            elif frame.type == watch[1]:
                self._watched.pop(address, None)
        self._touched.add(address)
        await self.write(
            protocol.encode_reply(frame.request_id, result if isinstance(result, dict) else {})
        )

    def _remember_entry(self, address: str, body: dict[str, Any]) -> None:
        self._entered.pop(address, None)
        self._entered[address] = body
        while len(self._entered) > MAX_REMEMBERED_ROOMS:
            del self._entered[next(iter(self._entered))]

    async def _enter_again(self, address: str, message: Inbound, refused: ProtocolError) -> Any:
        """The room this page entered answers ``not_in_room``: it restarted (after a crash, or on
        another node after its node died) and lost who was in it. Enter it again as the page did
        (``Inbound.again``: the room refuses it from a connection it had, so nobody removed gets
        back in this way), tell the page the room's state as a ``room.state`` event, and repeat
        the request once. If the room refuses the entry, the page gets the first refusal."""
        try:
            state = await self._ask(address, self._entry_again(address), refused.request_id)
        except ProtocolError:
            self._entered.pop(address, None)
            raise refused from None
        await self._entered_again(state)
        return await self._ask(address, message, refused.request_id)

    def _entry_again(self, address: str) -> Inbound:
        """The page's last ``room.enter`` of ``address``, sent by the gateway (``again``)."""
        assert self.principal is not None
        body = self._entered[address]
        return Inbound(ROOM_ENTER, body, self.principal, self.address, self.remote_addr, True)

    async def _entered_again(self, state: object) -> None:
        """Count the entry and tell the page the room's state, as ``room.state`` with
        ``again``: the room that forgot the page forgot its media peer too, so a page with
        media offers again instead of waiting for its old connection to fail."""
        counters.entered_again()
        if self.close_code is None:
            body = {**state, "again": True} if isinstance(state, dict) else {"again": True}
            await self.write(protocol.encode_event("room.state", body))

    async def rejoin(self) -> None:
        """A node died (`GatewayEndpoint.after_node_lost`): the areas, on-demand queues and rooms
        it hosted start again on a live node without the watchers and people they had, and a
        page that sends nothing would never find out. Watch each watched list again and enter
        each entered room again (`Inbound.again`), each retried every ``REJOIN_RETRY`` s for up
        to ``REJOIN_FOR`` s, and tell the page what it missed: ``queue.snapshot`` for an area,
        ``ondemand.snapshot`` for an on-demand queue, ``room.state`` for a room. A room that
        never restarted refuses the entry (it has this connection): nothing to tell. A list no
        longer the page's to watch (a provider gone off call) is dropped. Bounded, and a no-op
        for a connection that watches and entered nothing."""
        if self.principal is None:
            return
        with trio.move_on_after(REJOIN_FOR):
            async with trio.open_nursery() as nursery:
                for address in list(self._watched):
                    nursery.start_soon(self._watch_again, address)
                for address in list(self._entered):
                    nursery.start_soon(self._enter_room_again, address)

    async def _watch_again(self, address: str) -> None:
        assert self.principal is not None
        kinds = _watch_of(address)
        assert kinds is not None
        kind, _, snapshot_event = kinds
        while self.close_code is None and address in self._watched:
            watch = Inbound(
                kind, self._watched[address], self.principal, self.address, self.remote_addr
            )
            try:
                reply = await self._ask(address, watch, None)
            except ProtocolError as error:
                if error.code not in REJOIN_RETRYABLE:
                    self._watched.pop(address, None)  # no longer theirs to watch
                    return
                await trio.sleep(REJOIN_RETRY)
                continue
            if isinstance(reply, dict) and self.close_code is None:
                await self.write(protocol.encode_event(snapshot_event, _snapshot(kind, reply)))
            return

    async def _enter_room_again(self, address: str) -> None:
        while self.close_code is None and address in self._entered:
            try:
                state = await self._ask(address, self._entry_again(address), None)
            except ProtocolError as error:
                if error.code not in REJOIN_RETRYABLE:
                    return  # not_in_room: the room has this page still; or it ended
                await trio.sleep(REJOIN_RETRY)
                continue
            await self._entered_again(state)
            return

    async def _ask(self, address: str, message: Inbound, request_id: int | None) -> Any:
        """The actor's answer to ``message``, or the `ProtocolError` the client is sent instead."""
        try:
            return await self.registry.ref(address).ask(message, timeout=self.limits.ask_timeout)
        except Refusal as refusal:
            raise ProtocolError(refusal.code, refusal.detail, request_id) from None
        except ActorNotFound:
            if address.startswith(addresses.AREA + "/"):
                # Exactly what an area of another organisation answers (issue 15).
                raise ProtocolError(
                    refusals.FORBIDDEN, NOT_YOURS.format(role="provider"), request_id
                ) from None
            raise ProtocolError(
                refusals.NOT_FOUND, f"{address} does not exist (any more)", request_id
            ) from None
        except MailboxFull:
            raise ProtocolError(
                refusals.BUSY, f"{address} is busy; try again", request_id
            ) from None
        except AskTimeout:
            raise ProtocolError(
                refusals.TIMEOUT, f"{address} did not answer in time", request_id
            ) from None
        except ActorCrashed:
            raise ProtocolError(
                refusals.INTERNAL, "the request failed; it was logged", request_id
            ) from None
