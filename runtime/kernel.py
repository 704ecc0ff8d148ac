"""The actor kernel: mailboxes, envelopes, references and the ``Actor`` base class.

An actor owns private state and a bounded mailbox and handles one message at a time. Nobody holds a
Python reference to an actor: senders hold an :class:`ActorRef`, which is only a name resolved through
the :class:`~runtime.registry.Registry` at send time. That keeps addresses location-transparent: a later
transport can resolve ``room/42`` to a node elsewhere without any sender changing.

Two ways to talk to an actor:

* ``ref.tell(msg)``: no reply. Never blocks, never queues without bound: a full mailbox raises
  :class:`~runtime.errors.MailboxFull` at the sender.
* ``await ref.ask(msg, timeout=...)``: request/reply. The handler's return value is the reply; a
  :class:`~runtime.errors.Refusal` raised by the handler is re-raised at the asker; any other exception
  crashes the actor (its supervisor restarts it) and the asker gets
  :class:`~runtime.errors.ActorCrashed`.

The mailbox belongs to the supervisor's child slot, not to one actor instance: messages queued while an
actor restarts are handled by its successor, so a crash loses only the message that caused it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import trio

from runtime.errors import (
    UNKNOWN_MESSAGE,
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Refusal,
)

if TYPE_CHECKING:
    from runtime.registry import Registry

log = logging.getLogger(__name__)

#: Default mailbox capacity. Big enough to absorb a burst from hundreds of connections, small enough
#: that a stuck actor pushes back on its senders within milliseconds instead of eating memory.
DEFAULT_MAILBOX_SIZE = 1024

#: Default ask timeout in seconds: long enough for a SQLite write under load, short enough that a
#: person at a browser gets an error instead of a spinner.
DEFAULT_ASK_TIMEOUT = 5.0

#: Messages handled so far, per address kind (``area``, ``room``, ``conn`` ...), for ``/metrics``.
#: One dict increment per message: cheap enough to stay on the hot path.
MESSAGES_HANDLED: dict[str, int] = {}


class Reply:
    """A one-shot reply slot for ``ask``: the handler fills it, the asker waits on it."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: object = None
        self._error: BaseException | None = None

    def set(self, value: object) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    async def wait(self, address: str, timeout: float) -> object:
        with trio.move_on_after(timeout):
            await self._event.wait()
        if not self._event.is_set():
            raise AskTimeout(address, timeout)
        if self._error is not None:
            raise self._error
        return self._value


class Envelope:
    """A message in a mailbox, with the reply slot of an ``ask`` (``None`` for a ``tell``)."""

    __slots__ = ("message", "reply")

    def __init__(self, message: object, reply: Reply | None) -> None:
        self.message = message
        self.reply = reply


class Mailbox:
    """A bounded memory channel pair addressed by name.

    The send side is shared by every sender through the registry; the receive side is read by the
    current actor instance. ``close()`` stops new messages; queued ones can still be drained.
    """

    __slots__ = ("_receive", "_send", "address", "capacity", "closed", "overflow")

    def __init__(self, address: str, capacity: int = DEFAULT_MAILBOX_SIZE) -> None:
        self.address = address
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[Envelope](capacity)
        self.closed = False
        #: Set the first time a sender finds the mailbox full, for owners that must react (a
        #: connection whose client does not read is closed rather than left missing events).
        self.overflow = trio.Event()

    def put(self, envelope: Envelope) -> None:
        if self.closed:
            raise ActorNotFound(self.address)
        try:
            self._send.send_nowait(envelope)
        except trio.WouldBlock:
            self.overflow.set()
            raise MailboxFull(self.address, self.capacity) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorNotFound(self.address) from None

    async def get(self) -> Envelope:
        return await self._receive.receive()

    def get_nowait(self) -> Envelope | None:
        try:
            return self._receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return None

    def depth(self) -> int:
        return self._send.statistics().current_buffer_used

    def close(self) -> None:
        """Refuse further messages; pending asks still in the queue can be failed with ``fail_pending``."""
        self.closed = True
        self._send.close()

    def fail_pending(self) -> None:
        """Answer every queued ask with ``ActorStopped`` so no asker waits for a reply that never comes."""
        while (env := self.get_nowait()) is not None:
            if env.reply is not None:
                env.reply.fail(ActorStopped(self.address))


class Stop:
    """Ask an actor to stop cleanly: it finishes the messages queued before this one first."""

    __slots__ = ()


class ActorRef:
    """A location-transparent handle: an address plus the registry that resolves it at send time."""

    __slots__ = ("address", "registry")

    def __init__(self, registry: Registry, address: str) -> None:
        self.registry = registry
        self.address = address

    def tell(self, message: object) -> None:
        """Queue ``message`` without waiting. Raises ``MailboxFull`` or ``ActorNotFound``."""
        self.registry.deliver(self.address, Envelope(message, None))

    async def ask(self, message: object, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and wait at most ``timeout`` seconds for the handler's return value.

        On cancellation the wait is abandoned; the message may still be handled later.
        """
        reply = Reply()
        self.registry.deliver(self.address, Envelope(message, reply))
        return await reply.wait(self.address, timeout)

    def __repr__(self) -> str:
        return f"ActorRef({self.address!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[object]])


def handles(*message_types: type) -> Callable[[_Method], _Method]:
    """Mark an actor method as the handler of these message types (exact types, not subclasses).

    Every actor dispatches the same way: a table from message type to handler, built once per
    class from these marks (a subclass inherits its bases' entries and may override them).
    """

    def mark(method: _Method) -> _Method:
        method.__handles__ = message_types  # type: ignore[attr-defined]
        return method

    return mark


class Actor:
    """Base class: subclass and mark handlers with :func:`handles` (and optionally the lifecycle hooks).

    Lifecycle: ``on_start`` runs before the actor is considered started (restore state from storage
    here: it runs again after every restart); then messages are handled one at a time; ``stop()`` or
    an idle timeout ends the loop after the current message, the mailbox is closed and drained
    (queued messages are still handled), and ``on_stop`` runs.
    """

    #: Mailbox capacity for this kind of actor.
    mailbox_size: ClassVar[int] = DEFAULT_MAILBOX_SIZE
    #: Seconds without a message after which the actor stops itself; ``None`` never.
    idle_timeout: ClassVar[float | None] = None

    address: str
    registry: Registry

    #: Message type -> handler, built by ``__init_subclass__`` from the ``@handles`` marks.
    _handlers: ClassVar[dict[type, Callable[[Any, Any], Awaitable[object]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for name, attribute in vars(klass).items():
                for message_type in getattr(attribute, "__handles__", ()):
                    names[message_type] = name
        # Resolved through the class, so a subclass that overrides a handler by name wins.
        cls._handlers = {message_type: getattr(cls, name) for message_type, name in names.items()}

    def __init__(self) -> None:
        self._stopping = False
        self._mailbox: Mailbox | None = None
        self.current_message: object = None
        self._kind = ""

    # -- hooks -----------------------------------------------------------------------------------
    async def on_start(self) -> None:
        """Restore state. Runs on first start and after every restart."""

    async def handle(self, message: object) -> object:
        """Handle one message through the handler table; the return value is the reply to an ``ask``."""
        handler = self._handlers.get(type(message))
        if handler is None:
            raise Refusal(
                UNKNOWN_MESSAGE, f"{type(self).__name__} does not handle {type(message).__name__}"
            )
        return await handler(self, message)

    async def on_stop(self) -> None:
        """Release what the actor holds after a clean stop (not after a crash)."""

    async def on_idle(self) -> bool:
        """Called when ``idle_timeout`` elapsed without a message; return True to stop."""
        return True

    # -- helpers for subclasses -------------------------------------------------------------------
    def stop(self) -> None:
        """Stop after the current message; queued messages are drained first."""
        self._stopping = True

    def ref(self, address: str) -> ActorRef:
        """A reference to another actor, resolved through the same registry."""
        return ActorRef(self.registry, address)

    @property
    def self_ref(self) -> ActorRef:
        return ActorRef(self.registry, self.address)

    # -- the loop ---------------------------------------------------------------------------------
    async def _dispatch(self, envelope: Envelope) -> None:
        if type(envelope.message) is Stop:
            self._stopping = True
            if envelope.reply is not None:
                envelope.reply.set(None)
            return
        self.current_message = envelope.message
        MESSAGES_HANDLED[self._kind] = MESSAGES_HANDLED.get(self._kind, 0) + 1
        try:
            result = await self.handle(envelope.message)
        except Refusal as refusal:
            if envelope.reply is not None:
                envelope.reply.fail(refusal)
            else:
                log.info("%s refused a tell: %s", self.address, refusal)
        except Exception:
            if envelope.reply is not None:
                envelope.reply.fail(ActorCrashed(self.address, envelope.message))
            raise
        else:
            if envelope.reply is not None:
                envelope.reply.set(result)
        # Left set after a crash, so the supervisor can log the message that caused it.
        self.current_message = None

    async def run_loop(
        self,
        mailbox: Mailbox,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until stopped; return normally on a clean stop, raise on a crash.

        Called by the supervisor, which owns ``mailbox``. Cancellation (the supervisor killing the
        actor) propagates; pending asks are then left for the next instance.
        """
        self._mailbox = mailbox
        self._kind = mailbox.address.partition("/")[0]
        await self.on_start()
        task_status.started()
        idle = self.idle_timeout if self.idle_timeout is not None else math.inf
        while not self._stopping:
            envelope: Envelope | None = None
            with trio.move_on_after(idle):
                envelope = await mailbox.get()
            if envelope is None:
                if await self.on_idle():
                    self._stopping = True
                continue
            await self._dispatch(envelope)
        mailbox.close()
        while (envelope := mailbox.get_nowait()) is not None:
            await self._dispatch(envelope)
        await self.on_stop()


ActorFactory = Callable[[], Actor]
