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
  :class:`~runtime.errors.ActorCrashed`. The envelope carries a reply *address*
  (``reply_to``), not a waiting object: the outcome is delivered with ``Registry.reply``, so an
  ask can cross a node without its sender changing.

What a handler can do besides returning:

* ``self.send_after(delay, msg)``: a :class:`Timer` that puts ``msg`` in the actor's own mailbox when
  it is due; ``timer.cancel()`` before it is handled and it never is.
* ``self.spawn(fn, *args)``: work in the actor's own nursery (a media offer, a slow lookup) that
  reports back by telling the actor a message, so state changes stay in the mailbox loop. A
  spawned task that raises crashes the actor.
* ``self.defer_reply()``: answer this ask later through the returned :class:`Pending`, without
  blocking the mailbox meanwhile.
* ``self.take_queued(type, limit)``: take the messages of one type queued right behind this one, to
  handle them as a batch (one commit for many arrivals).

Timers, tasks and unanswered asks belong to one actor instance: when it stops, crashes or is killed
its timers and tasks are cancelled and every ask it still owes is answered with
:class:`~runtime.errors.ActorCrashed` (crash) or :class:`~runtime.errors.ActorStopped`.

The mailbox belongs to the supervisor's child slot, not to one actor instance: messages queued while an
actor restarts are handled by its successor, so a crash loses only the message that caused it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, TypeVarTuple

import trio

from runtime.errors import (
    UNKNOWN_MESSAGE,
    ActorCrashed,
    ActorError,
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

#: How long a due timer waits before trying again when its own actor's mailbox is full: a timer
#: message is state (a grace period ending), so it is delayed, never dropped.
TIMER_RETRY_DELAY = 0.01

#: Messages handled so far, per address kind (``area``, ``room``, ``conn`` ...), for ``/metrics``.
#: One dict increment per message: cheap enough to stay on the hot path.
MESSAGES_HANDLED: dict[str, int] = {}

M = TypeVar("M")
_Args = TypeVarTuple("_Args")


class Failure:
    """An ask's outcome that is an error (a Refusal, ActorCrashed ...), as delivered to a reply address.

    Any other outcome is the reply value itself, so the common case allocates nothing extra.
    """

    __slots__ = ("error",)

    def __init__(self, error: ActorError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failure({self.error!r})"


class Reply:
    """A one-shot reply slot for ``ask``, kept by the registry under the ask's reply address.

    The handler's outcome reaches it through ``Registry.reply``; the asker waits on it.
    """

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

    def resolve(self, outcome: object) -> None:
        """Fill the slot with a reply value, or with ``outcome.error`` for a :class:`Failure`."""
        if type(outcome) is Failure:
            self.fail(outcome.error)
        else:
            self.set(outcome)

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
    """A message in a mailbox, with the reply address of an ``ask`` (``None`` for a ``tell``).

    The reply address is a plain string resolved by the registry, like any address: an ask can
    cross a node without its sender changing.
    """

    __slots__ = ("message", "reply_to")

    def __init__(self, message: object, reply_to: str | None = None) -> None:
        self.message = message
        self.reply_to = reply_to

    def __repr__(self) -> str:
        return f"Envelope({self.message!r}, reply_to={self.reply_to!r})"


class Mailbox:
    """A bounded queue of envelopes addressed by name.

    Every sender puts through the registry; the current actor instance is its one reader.
    ``close()`` stops new messages; queued ones can still be drained. ``front`` is one envelope
    handled before the head: the message that ended a ``take_queued`` batch waits there, so it
    keeps its place even across a restart.

    A deque and a parking lot, not a Trio memory channel: there is a mailbox per actor, so one
    per waiting caller's room, and a channel pair with its Event was 11 objects the cyclic GC
    walks (and 1.8 KiB) where this is 5 (issue 17: 10,000 waiting callers).
    """

    __slots__ = (
        "_lot",
        "_queue",
        "address",
        "capacity",
        "closed",
        "front",
        "kind",
        "registry",
        "tally",
    )

    def __init__(self, address: str, capacity: int = DEFAULT_MAILBOX_SIZE) -> None:
        self.address = address
        self.capacity = capacity
        self._queue: deque[Envelope] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self.front: Envelope | None = None
        #: The registry that routes to this mailbox (set by ``Registry.register``): where the
        #: asks still queued at the end are answered.
        self.registry: Registry | None = None
        #: The address kind (``room``, ``conn`` ...) and the registry's queued-per-kind tally,
        #: kept up to date on every put and take so that metrics never walk the mailboxes.
        self.kind = address.split("/", 1)[0]
        self.tally: dict[str, int] | None = None

    def put(self, envelope: Envelope) -> None:
        if self.closed:
            raise ActorNotFound(self.address)
        if len(self._queue) >= self.capacity:
            raise MailboxFull(self.address, self.capacity)
        self._queue.append(envelope)
        self._count(1)
        self._lot.unpark()

    async def get(self) -> Envelope:
        """The next envelope, waiting for one; ``trio.EndOfChannel`` once closed and drained.

        A checkpoint either way, as a channel's receive is: a busy actor still lets others run.
        """
        while True:
            while not self.queued():
                if self.closed:
                    raise trio.EndOfChannel
                await self._lot.park()
            await trio.lowlevel.checkpoint()
            envelope = self.get_nowait()
            if envelope is not None:  # else taken while we yielded (one reader in practice)
                return envelope

    def queued(self) -> int:
        """Envelopes waiting behind the front one."""
        return len(self._queue)

    def get_nowait(self) -> Envelope | None:
        if not self._queue:
            return None
        self._count(-1)
        return self._queue.popleft()

    def hold_front(self, envelope: Envelope) -> None:
        """Put a taken envelope back before the head (it still counts as queued)."""
        self.front = envelope
        self._count(1)

    def take_front(self) -> Envelope | None:
        """The envelope held before the head, if any, removing it."""
        envelope, self.front = self.front, None
        if envelope is not None:
            self._count(-1)
        return envelope

    def _count(self, delta: int) -> None:
        tally = self.tally
        if tally is not None:
            tally[self.kind] = tally.get(self.kind, 0) + delta

    def depth(self) -> int:
        return self.queued() + (self.front is not None)

    def close(self) -> None:
        """Refuse further messages; pending asks still in the queue can be failed with ``fail_pending``."""
        self.closed = True
        self._lot.unpark_all()

    def fail_pending(self) -> None:
        """Answer every queued ask with ``ActorStopped`` so no asker waits for a reply that never comes."""
        envelope = self.take_front()
        if envelope is None:
            envelope = self.get_nowait()
        registry = self.registry
        while envelope is not None:
            if envelope.reply_to is not None and registry is not None:
                registry.reply(envelope.reply_to, Failure(ActorStopped(self.address)))
            envelope = self.get_nowait()


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

        The reply comes to a reply address the registry holds only while this call waits: on a
        timeout or cancellation the wait is abandoned, the message may still be handled later,
        and its reply is then dropped.
        """
        registry = self.registry
        reply_to, slot = registry.open_reply()
        try:
            registry.deliver(self.address, Envelope(message, reply_to))
            return await slot.wait(self.address, timeout)
        finally:
            if not slot.done:
                registry.close_reply(reply_to)

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


class Pending(Generic[M]):
    """An ask the actor answers later (``defer_reply``, ``take_queued``), or a tell (answers do nothing).

    Answer once: the first ``reply`` or ``refuse`` wins, later ones are ignored, and so is an answer
    after the actor instance ended (its asker was already told ``ActorCrashed`` or ``ActorStopped``).
    """

    __slots__ = ("_actor", "answered", "message", "reply_to")

    def __init__(self, actor: Actor, message: M, reply_to: str | None) -> None:
        self._actor = actor
        self.message = message
        self.reply_to = reply_to
        #: True once answered; a tell counts as answered from the start.
        self.answered = reply_to is None

    @property
    def is_ask(self) -> bool:
        """True when somebody waits for the answer (an ``ask``), False for a ``tell``."""
        return self.reply_to is not None

    def reply(self, value: object) -> None:
        """Send ``value`` to the asker."""
        self._answer(value)

    def refuse(self, refusal: Refusal) -> None:
        """Raise ``refusal`` at the asker (an expected "no"; the actor keeps running)."""
        self._answer(Failure(refusal))

    def fail(self, error: ActorError) -> None:
        """Raise ``error`` at the asker."""
        self._answer(Failure(error))

    def _answer(self, outcome: object) -> None:
        if self.answered:
            return
        self.answered = True
        actor = self._actor
        if actor._actor_outstanding is not None:
            actor._actor_outstanding.discard(self)
        actor.registry.reply(self.reply_to, outcome)  # type: ignore[arg-type]


class Timer:
    """A message an actor sent itself for later (``send_after``). Cancel it and it never arrives.

    ``active`` is True from ``send_after`` until the message is handled or the timer is cancelled,
    including while the message already waits in the mailbox (a cancel then still wins).
    """

    __slots__ = ("_actor", "_scope", "active", "deadline", "message")

    def __init__(self, actor: Actor, message: object, deadline: float) -> None:
        self._actor = actor
        self._scope = trio.CancelScope()
        self.message = message
        self.deadline = deadline
        self.active = True

    def cancel(self) -> None:
        """Make sure the message is never handled; harmless after it fired or was cancelled."""
        if self.active:
            self.active = False
            self._scope.cancel(reason="timer cancelled")
            if self._actor._actor_timers is not None:
                self._actor._actor_timers.discard(self)

    def __repr__(self) -> str:
        state = "active" if self.active else "done"
        return f"Timer({self.message!r}, deadline={self.deadline:g}, {state})"


class _TaskFailed:
    """Put in the mailbox by a spawned task that raised, to wake an idle loop: the actor crashes."""

    __slots__ = ()


_TASK_FAILED = _TaskFailed()


class _TimerFired:
    """What a due timer puts in the mailbox: the kernel unwraps it, or skips it if cancelled."""

    __slots__ = ("timer",)

    def __init__(self, timer: Timer) -> None:
        self.timer = timer


class Actor:
    """Base class: subclass and mark handlers with :func:`handles` (and optionally the lifecycle hooks).

    Lifecycle: ``on_start`` runs before the actor is considered started (restore state from storage
    here: it runs again after every restart; timers and tasks may be started here); then messages
    are handled one at a time; ``stop()`` or an idle timeout ends the loop after the current
    message, the mailbox is closed and drained (queued messages are still handled), ``on_stop``
    runs, and then the actor's timers and tasks are cancelled.
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
        #: Where this instance's timers and tasks run: the nursery of whoever runs the loop (the
        #: supervisor), so an actor that never uses them costs no nursery of its own.
        self._actor_nursery: trio.Nursery | None = None
        #: Cancel scopes of the spawned tasks still running, cancelled when the instance ends.
        self._actor_tasks: set[trio.CancelScope] | None = None
        #: The envelope being handled, and its deferred answer if the handler asked for one.
        self._actor_envelope: Envelope | None = None
        self._actor_deferred: Pending[object] | None = None
        #: Asks this instance took on (deferred or taken) and has not answered yet.
        self._actor_outstanding: set[Pending[Any]] | None = None
        #: (All three sets are made on first use: most actors, a connection's among them, never
        #: need them, and an empty set per actor is memory per waiting caller.)
        self._actor_timers: set[Timer] | None = None
        #: The first exception of a spawned task: it crashes the actor.
        self._actor_crash: Exception | None = None
        #: True once ``on_start`` finished in the current run.
        self._actor_started = False

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

    def send_after(self, delay: float, message: object) -> Timer:
        """Deliver ``message`` to this actor's own mailbox in ``delay`` seconds (a tell).

        The timer dies with this actor instance: cancelled when it stops, crashes or is killed.
        """
        nursery = self._actor_running_nursery()
        timer = Timer(self, message, trio.current_time() + delay)
        if self._actor_timers is None:
            self._actor_timers = set()
        self._actor_timers.add(timer)
        nursery.start_soon(self._actor_run_timer, timer, name=f"{self.address} timer")
        return timer

    def spawn(self, async_fn: Callable[[*_Args], Awaitable[object]], *args: *_Args) -> None:
        """Run ``async_fn(*args)`` in this actor's nursery, beside the mailbox loop.

        The task must not touch the actor's state: it reports back with ``self.self_ref.tell``.
        It is cancelled when the actor stops or crashes; if it raises, the actor crashes.
        """
        nursery = self._actor_running_nursery()
        name = getattr(async_fn, "__qualname__", repr(async_fn))
        scope = trio.CancelScope()
        if self._actor_tasks is None:
            self._actor_tasks = set()
        self._actor_tasks.add(scope)
        nursery.start_soon(self._actor_guard, scope, async_fn, args, name=f"{self.address} {name}")

    def defer_reply(self) -> Pending[object]:
        """Inside a handler: the kernel does not reply when it returns; answer through the Pending.

        For a tell the Pending's answers do nothing. Calling it twice returns the same Pending. A
        Refusal raised by the handler after deferring still reaches the asker.
        """
        envelope = self._actor_envelope
        if envelope is None:
            raise RuntimeError("defer_reply is only possible inside a handler")
        pending = self._actor_deferred
        if pending is None:
            pending = self._actor_deferred = Pending(self, envelope.message, envelope.reply_to)
            if envelope.reply_to is not None:
                if self._actor_outstanding is None:
                    self._actor_outstanding = set()
                self._actor_outstanding.add(pending)
        return pending

    def take_queued(self, message_type: type[M], limit: int) -> list[Pending[M]]:
        """Inside a handler: take up to ``limit`` messages of exactly ``message_type`` queued next.

        Never waits. The first message of another type stays at the head of the mailbox and is
        handled next, in order (also by the restarted instance if this one crashes). The handler
        answers each Pending; asks it leaves unanswered get ``ActorCrashed`` if the actor crashes
        (``ActorStopped`` if it stops) before answering them.
        """
        mailbox = self._mailbox
        if mailbox is None or self._actor_envelope is None:
            raise RuntimeError("take_queued is only possible inside a handler")
        taken: list[Pending[M]] = []
        if mailbox.front is not None:
            return taken
        kind = self._kind
        while len(taken) < limit:
            envelope = mailbox.get_nowait()
            if envelope is None:
                break
            if type(envelope.message) is not message_type:
                mailbox.hold_front(envelope)
                break
            MESSAGES_HANDLED[kind] = MESSAGES_HANDLED.get(kind, 0) + 1
            pending: Pending[M] = Pending(self, envelope.message, envelope.reply_to)  # type: ignore[arg-type]
            if envelope.reply_to is not None:
                if self._actor_outstanding is None:
                    self._actor_outstanding = set()
                self._actor_outstanding.add(pending)
            taken.append(pending)
        return taken

    # -- internals --------------------------------------------------------------------------------
    def _actor_running_nursery(self) -> trio.Nursery:
        if self._actor_nursery is None:
            raise RuntimeError(f"actor {getattr(self, 'address', '?')} is not running")
        return self._actor_nursery

    async def _actor_run_timer(self, timer: Timer) -> None:
        mailbox = self._mailbox
        assert mailbox is not None
        with timer._scope:
            await trio.sleep_until(timer.deadline)
            while True:
                try:
                    mailbox.put(Envelope(_TimerFired(timer), None))
                    return
                except MailboxFull:
                    await trio.sleep(TIMER_RETRY_DELAY)
                except ActorNotFound:  # the mailbox closed: the actor is stopping
                    timer.cancel()
                    return

    async def _actor_guard(
        self,
        scope: trio.CancelScope,
        async_fn: Callable[[*_Args], Awaitable[object]],
        args: tuple[*_Args],
    ) -> None:
        try:
            with scope:
                await async_fn(*args)
        except Exception as exc:
            self._actor_fail(exc)
        finally:
            if self._actor_tasks is not None:
                self._actor_tasks.discard(scope)

    def _actor_fail(self, exc: Exception) -> None:
        """Crash this instance from outside its handler (a task): the supervisor sees ``exc``.

        The loop raises it at its next message boundary: at once when it waits for mail (the
        wake-up below), or when the handler running now returns.
        """
        if self._actor_crash is not None or self._actor_nursery is None:
            return
        self._actor_crash = exc
        if self._mailbox is not None:
            with contextlib.suppress(ActorError):
                self._mailbox.put(Envelope(_TASK_FAILED, None))

    # -- the loop ---------------------------------------------------------------------------------
    async def _dispatch(self, envelope: Envelope) -> None:
        message = envelope.message
        kind = type(message)
        if kind is Stop:
            self._stopping = True
            if envelope.reply_to is not None:
                self.registry.reply(envelope.reply_to, None)
            return
        if kind is _TaskFailed:
            return  # only a wake-up: the loop raises the task's exception
        if kind is _TimerFired:
            timer = message.timer  # type: ignore[attr-defined]
            if not timer.active:
                return  # cancelled after it fell due, or set by a previous instance
            timer.active = False
            if self._actor_timers is not None:
                self._actor_timers.discard(timer)
            message = timer.message
        self.current_message = message
        self._actor_envelope = envelope
        self._actor_deferred = None
        MESSAGES_HANDLED[self._kind] = MESSAGES_HANDLED.get(self._kind, 0) + 1
        try:
            result = await self.handle(message)
        except Refusal as refusal:
            if envelope.reply_to is not None:
                if self._actor_deferred is not None:
                    self._actor_deferred.refuse(refusal)
                else:
                    self.registry.reply(envelope.reply_to, Failure(refusal))
            else:
                log.info("%s refused a tell: %s", self.address, refusal)
        # Any other exception crashes the actor: ``_actor_end`` answers this ask (and every other
        # one the instance owes) with ActorCrashed once the instance is gone, so the supervisor has
        # logged the crash before the asker hears of it.
        else:
            if envelope.reply_to is not None and self._actor_deferred is None:
                self.registry.reply(envelope.reply_to, result)
        self._actor_envelope = None
        # Left set after a crash, so the supervisor can log the message that caused it.
        self.current_message = None

    async def run_loop(
        self,
        mailbox: Mailbox,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
        *,
        tasks: trio.Nursery | None = None,
    ) -> None:
        """Run until stopped; return normally on a clean stop, raise on a crash.

        Called by the supervisor, which owns ``mailbox`` and lends its nursery (``tasks``) for the
        actor's timers and spawned tasks; each has its own cancel scope, cancelled when the
        instance ends, however it ends. Without ``tasks`` the loop opens a nursery of its own.
        Cancellation (the supervisor killing the actor) propagates; queued messages are left for
        the next instance.
        """
        if tasks is None:
            starting = [task_status]  # handed on, not held here: see below
            del task_status
            async with trio.open_nursery() as own:
                try:
                    await self.run_loop(mailbox, starting.pop(), tasks=own)
                finally:
                    own.cancel_scope.cancel(reason=f"{mailbox.address} ended")
            return
        self._mailbox = mailbox
        self._kind = mailbox.address.partition("/")[0]
        self._actor_crash = None
        self._actor_started = False
        self._actor_nursery = tasks
        try:
            await self.on_start()
            self._actor_started = True
            self._actor_raise_task_crash()
            task_status.started()
            # A started status keeps the nursery ``start`` opened in the starter's task, and so
            # that task, finished long ago, with its context and cancel status: about 20 objects
            # the cyclic GC walks for as long as the actor lives (one per waiting caller).
            del task_status
            await self._actor_serve(mailbox)
        except Exception as exc:
            if self._actor_crash is None:
                self._actor_crash = exc
        finally:
            self._actor_nursery = None
            self._actor_end()
        if self._actor_crash is not None:
            raise self._actor_crash

    def _actor_raise_task_crash(self) -> None:
        if self._actor_crash is not None:
            raise self._actor_crash

    async def _actor_serve(self, mailbox: Mailbox) -> None:
        idle = self.idle_timeout
        while not self._stopping:
            envelope = mailbox.take_front()
            if envelope is None:
                if idle is None:
                    envelope = await mailbox.get()
                else:
                    with trio.move_on_after(idle):
                        envelope = await mailbox.get()
                    if envelope is None:
                        if await self.on_idle():
                            self._stopping = True
                        continue
            await self._dispatch(envelope)
            if self._actor_crash is not None:
                raise self._actor_crash
        mailbox.close()
        while True:
            envelope = mailbox.take_front() or mailbox.get_nowait()
            if envelope is None:
                break
            await self._dispatch(envelope)
            if self._actor_crash is not None:
                raise self._actor_crash
        await self.on_stop()

    def _actor_end(self) -> None:
        """The instance is gone: its timers never fire, its tasks are cancelled, the asks it owes
        are answered now."""
        for timer in list(self._actor_timers or ()):
            timer.cancel()
        for scope in list(self._actor_tasks or ()):
            scope.cancel(reason=f"{self.address} ended")
        self._actor_tasks = None
        crashed = self._actor_crash is not None
        envelope = self._actor_envelope
        if envelope is not None and envelope.reply_to is not None and self._actor_deferred is None:
            # Crashed, or killed, in the middle of a handler.
            error: ActorError = (
                ActorCrashed(self.address, envelope.message)
                if crashed
                else ActorStopped(self.address)
            )
            self.registry.reply(envelope.reply_to, Failure(error))
        self._actor_envelope = None
        for pending in list(self._actor_outstanding or ()):
            pending.fail(
                ActorCrashed(self.address, pending.message)
                if crashed
                else ActorStopped(self.address)
            )


ActorFactory = Callable[[], Actor]
