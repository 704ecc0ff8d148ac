"""Supervisors: own a nursery of children, restart them when they crash, fail upward when they must.

Vocabulary from Erlang/OTP:

* strategy ``ONE_FOR_ONE`` restarts only the crashed child; ``ONE_FOR_ALL`` restarts every child
  (for children whose state only makes sense together);
* restart type ``PERMANENT`` (always restarted), ``TRANSIENT`` (restarted after a crash, gone after a
  clean stop: a room that empties), ``TEMPORARY`` (never restarted);
* restart intensity: more than ``max_restarts`` restarts within ``period`` seconds means something is
  deeply wrong, so the supervisor stops all its children and raises
  :class:`~runtime.errors.RestartIntensityExceeded` to whoever runs it (its own supervisor, or the
  server's root nursery);
* shutdown: ask the child to stop (it drains its mailbox), wait a bounded time, then cancel it;
* supervisors form a tree: ``await parent.start_supervisor(name, ...)`` runs a child supervisor as
  one of ``parent``'s children (at ``supervisor/<name>``). When the child supervisor exceeds its
  intensity, that is a crash of that child: ``parent`` restarts it per its restart type (its
  non-temporary children come back from their specs) or, past its own intensity, escalates in
  turn.

A crash is logged with the child's address and the message that caused it. Siblings keep running
and keep their mailboxes; the restarted child inherits its predecessor's mailbox. Every child,
supervisor or actor, runs the one actor loop (:meth:`~runtime.kernel.Actor.run_loop`) under the one
restart loop here, and every cancellation says why.
"""

from __future__ import annotations

import enum
import logging
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from runtime.address import Address
from runtime.errors import RestartIntensityExceeded
from runtime.kernel import DEFAULT_MAILBOX_SIZE, Actor, ActorRef, Envelope, Mailbox, Stop
from runtime.registry import Registry

log = logging.getLogger(__name__)

#: OTP's default intensity is 1 restart in 5 s; Waitroom actors restore from storage quickly, and a
#: burst of a few bad messages should not take a whole subtree down, so allow a little more.
DEFAULT_MAX_RESTARTS = 3
DEFAULT_PERIOD = 5.0
#: How long a child gets to drain its mailbox on a clean stop before it is cancelled.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: The address kind under which a child supervisor sits in its parent (``supervisor/rooms``).
SUPERVISOR_KIND = "supervisor"


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class ChildSpec:
    """How to (re)create one child: a fresh instance from ``factory`` at every restart."""

    address: str
    factory: Callable[[], Actor]
    restart: Restart = Restart.PERMANENT
    #: Mailbox capacity; ``None`` takes the actor class's ``mailbox_size`` when the factory is a class.
    mailbox_size: int | None = None


class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``period`` seconds (OTP's restart intensity).

    Anything that restarts things on failure can use it: supervisors, the media worker pool.
    """

    __slots__ = ("_times", "max_restarts", "period")

    def __init__(self, max_restarts: int = DEFAULT_MAX_RESTARTS, period: float = DEFAULT_PERIOD):
        if max_restarts < 0 or period <= 0:
            raise ValueError("restart intensity needs max_restarts >= 0 and a positive period")
        self.max_restarts = max_restarts
        self.period = period
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; False when that makes more than allowed in the period."""
        times = self._times
        times.append(now)
        while now - times[0] > self.period:
            times.popleft()
        return len(times) <= self.max_restarts

    def reset(self) -> None:
        """Forget past restarts (a supervisor that was itself restarted starts afresh)."""
        self._times.clear()

    @property
    def recent(self) -> int:
        """Restarts recorded within the period up to the last ``record``."""
        return len(self._times)


class _Child:
    __slots__ = ("done", "instance", "mailbox", "restart_requested", "scope", "spec", "stopping")

    def __init__(self, spec: ChildSpec, mailbox: Mailbox) -> None:
        self.spec = spec
        self.mailbox = mailbox
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.instance: Actor | None = None
        self.restart_requested = False
        #: Set by ``stop_child``: a clean stop asked for by the supervisor is never restarted.
        self.stopping = False


class Supervisor:
    """Runs children in its own nursery; see the module docstring for the rules."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        period: float = DEFAULT_PERIOD,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.name = name
        self.strategy = strategy
        self.intensity = RestartIntensity(max_restarts, period)
        self.shutdown_timeout = shutdown_timeout
        self._children: dict[str, _Child] = {}
        self._nursery: trio.Nursery | None = None
        self._escalation: RestartIntensityExceeded | None = None
        #: Specs of the children to bring back when this supervisor is run again.
        self._restore: list[ChildSpec] = []
        self.restart_count = 0

    @property
    def max_restarts(self) -> int:
        return self.intensity.max_restarts

    @property
    def period(self) -> float:
        return self.intensity.period

    # -- running ----------------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Supervise until cancelled; raise ``RestartIntensityExceeded`` when intensity is exceeded.

        Owns its children: on cancellation or escalation every child is cancelled and its mailbox
        closed, and queued asks are answered with ``ActorStopped``. Run again (a child supervisor
        restarted by its parent), it starts afresh with the non-temporary children it had.
        """
        self._escalation = None
        self.intensity.reset()
        restore, self._restore = self._restore, []
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for spec in restore:
                    await self.start_child(spec)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            children = list(self._children.values())
            if self._escalation is None:  # else kept as it was when the intensity was exceeded
                self._restore = self._restorable()
            for child in children:
                self._forget(child)
        if self._escalation is not None:
            raise self._escalation

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        """Start a child and return its reference once its ``on_start`` has finished.

        An exception from the first ``on_start`` propagates to the caller and nothing is registered.
        """
        if self._nursery is None:
            raise RuntimeError(f"supervisor {self.name} is not running")
        if spec.address in self._children:
            raise ValueError(f"{spec.address} is already supervised by {self.name}")
        capacity = spec.mailbox_size
        if capacity is None:
            capacity = int(getattr(spec.factory, "mailbox_size", DEFAULT_MAILBOX_SIZE))
        child = _Child(spec, Mailbox(spec.address, capacity))
        self.registry.register(child.mailbox)
        self._children[spec.address] = child
        try:
            await self._nursery.start(self._supervise, child)
        except BaseException:
            self._forget(child)
            raise
        return ActorRef(self.registry, spec.address)

    async def start_supervisor(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        period: float = DEFAULT_PERIOD,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        restart: Restart = Restart.PERMANENT,
    ) -> Supervisor:
        """Start a child supervisor under this one and return it, running, to start children on.

        It is this supervisor's child ``supervisor/<name>`` with restart type ``restart``: its
        escalation is that child's crash, restarted (or escalated further) by this supervisor.
        ``stop_child("supervisor/<name>")`` stops its children cleanly, then it.
        """
        child = Supervisor(
            self.registry,
            name,
            strategy=strategy,
            max_restarts=max_restarts,
            period=period,
            shutdown_timeout=shutdown_timeout,
        )
        await self.start_child(
            ChildSpec(Address.of(SUPERVISOR_KIND, name), lambda: SupervisorActor(child), restart)
        )
        return child

    async def stop_child(self, address: str, timeout: float | None = None) -> None:
        """Stop a child cleanly (it drains its mailbox), cancelling it after ``timeout``."""
        child = self._children.get(address)
        if child is None:
            return
        child.stopping = True
        try:
            child.mailbox.put(Envelope(Stop(), None))
        except Exception:
            child.scope.cancel(reason=f"{self.name}: stopping {address}, its mailbox is shut")
        with trio.move_on_after(self.shutdown_timeout if timeout is None else timeout):
            await child.done.wait()
        if not child.done.is_set():
            child.scope.cancel(reason=f"{self.name}: {address} did not stop in time")
            await child.done.wait()

    async def stop(self) -> None:
        """Stop every child cleanly, in parallel, then return; the supervisor keeps running."""
        async with trio.open_nursery() as nursery:
            for address in list(self._children):
                nursery.start_soon(self.stop_child, address)

    def children(self) -> list[str]:
        return list(self._children)

    def instance(self, address: str) -> Actor | None:
        """The live instance of a child: for tests and introspection only, never for messaging."""
        child = self._children.get(address)
        return child.instance if child is not None else None

    # -- internals --------------------------------------------------------------------------------
    def _new_instance(self, child: _Child) -> Actor:
        actor = child.spec.factory()
        actor.address = child.spec.address
        actor.registry = self.registry
        child.instance = actor
        return actor

    async def _supervise(self, child: _Child, task_status: trio.TaskStatus[None]) -> None:
        """The one restart loop: run an instance, decide from how it ended whether to run another."""
        # Handed to the first instance and not held here: a started status keeps the task that
        # called ``start_child`` (finished long ago) alive for as long as the child lives.
        starting = [task_status]
        del task_status
        while True:
            actor = self._new_instance(child)
            crash: Exception | None = None
            first = bool(starting)
            with child.scope:
                try:
                    await actor.run_loop(
                        child.mailbox,
                        task_status=starting.pop() if first else trio.TASK_STATUS_IGNORED,
                        tasks=self._nursery,
                    )
                except Exception as exc:
                    if first and not actor._actor_started:
                        # The first start is not protected: a child that cannot start is the
                        # caller's error (start_child raises it).
                        raise
                    crash = exc
            if child.scope.cancelled_caught and not child.restart_requested:
                break  # killed: shutdown or stop_child timeout
            if crash is not None:
                self._log_crash(child, actor, crash)
                if child.spec.restart is Restart.TEMPORARY:
                    break
                if not self._count_restart():
                    break
                if self.strategy is Strategy.ONE_FOR_ALL:
                    self._restart_siblings(child)
            elif not child.restart_requested:
                # A clean stop: only permanent children come back.
                if child.spec.restart is not Restart.PERMANENT or child.stopping:
                    break
                if not self._count_restart():
                    break
                child.mailbox = Mailbox(child.spec.address, child.mailbox.capacity)
                self.registry.register(child.mailbox)
            child.restart_requested = False
            child.scope = trio.CancelScope()
        self._forget(child)

    def _restart_siblings(self, crashed: _Child) -> None:
        for other in self._children.values():
            if other is not crashed and other.spec.restart is not Restart.TEMPORARY:
                other.restart_requested = True
                other.scope.cancel(
                    reason=f"one_for_all restart after {crashed.spec.address} crashed"
                )

    def _count_restart(self) -> bool:
        """Record a restart; on exceeding the intensity, escalate and return False."""
        if not self.intensity.record(trio.current_time()):
            self._escalation = RestartIntensityExceeded(
                self.name, self.intensity.max_restarts, self.intensity.period
            )
            log.error("%s", self._escalation)
            self._restore = self._restorable()
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel(reason=str(self._escalation))
            return False
        self.restart_count += 1
        return True

    def _restorable(self) -> list[ChildSpec]:
        """The children a restart of this supervisor brings back: all but the temporary ones."""
        return [c.spec for c in self._children.values() if c.spec.restart is not Restart.TEMPORARY]

    def _log_crash(self, child: _Child, actor: Actor, exc: Exception) -> None:
        """Log the message's type and the exception's type and frames, never their text.

        Messages carry passwords, link secrets and patient details, and an exception's text often
        quotes the message, so neither ``%r`` of the message nor ``exc_info`` (which prints
        ``str(exc)``) goes to the journal; the frames (file, line, source) are enough to debug.
        """
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error(
            "actor %s crashed handling a %s with %s; %s restarts it (%s)\n"
            "Traceback (most recent call last):\n%s",
            child.spec.address,
            type(actor.current_message).__name__,
            type(exc).__qualname__,
            self.name,
            self.strategy.value,
            frames.rstrip("\n"),
        )

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.spec.address) is child:
            del self._children[child.spec.address]
        self.registry.unregister(child.mailbox)
        if not child.mailbox.closed:
            child.mailbox.close()
        child.mailbox.fail_pending()
        child.done.set()


class SupervisorActor(Actor):
    """A child supervisor as its parent sees it: an actor whose life is the supervisor's ``run``.

    Its escalation crashes this actor, which is how the parent learns of it; a clean stop first
    stops the supervisor's children cleanly.
    """

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__()
        self.supervisor = supervisor

    async def on_start(self) -> None:
        # Runs where the actor's tasks run, under a scope the instance cancels when it ends.
        scope = trio.CancelScope()
        if self._actor_tasks is None:
            self._actor_tasks = set()
        self._actor_tasks.add(scope)
        await self._actor_running_nursery().start(self._run, scope)

    async def _run(self, scope: trio.CancelScope, task_status: trio.TaskStatus[Supervisor]) -> None:
        try:
            with scope:
                await self.supervisor.run(task_status=task_status)
        except RestartIntensityExceeded as exc:
            self._actor_fail(exc)
        finally:
            if self._actor_tasks is not None:
                self._actor_tasks.discard(scope)

    async def on_stop(self) -> None:
        await self.supervisor.stop()
