"""Timers and spawned tasks owned by an actor, on Trio's virtual clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorRef,
    ChildSpec,
    Registry,
    Restart,
    Stop,
    Supervisor,
    Timer,
    handles,
)


@dataclass(frozen=True)
class Later:
    delay: float
    label: str


@dataclass(frozen=True)
class Fired:
    label: str


@dataclass(frozen=True)
class Cancel:
    label: str


@dataclass(frozen=True)
class Work:
    seconds: float
    fail: bool = False


@dataclass(frozen=True)
class Done:
    seconds: float


class Get:
    pass


class Clock(Actor):
    """Sets timers on request and records when each fired (in virtual seconds)."""

    def __init__(self, log: list[tuple[str, float]]) -> None:
        super().__init__()
        self.log = log
        self.timers: dict[str, Timer] = {}

    @handles(Later)
    async def later(self, msg: Later) -> bool:
        self.timers[msg.label] = timer = self.send_after(msg.delay, Fired(msg.label))
        return timer.active

    @handles(Fired)
    async def fired(self, msg: Fired) -> None:
        self.log.append((msg.label, trio.current_time()))

    @handles(Cancel)
    async def cancel(self, msg: Cancel) -> bool:
        timer = self.timers[msg.label]
        timer.cancel()
        return timer.active

    @handles(Work)
    async def work(self, msg: Work) -> None:
        self.spawn(self._work, msg)

    async def _work(self, msg: Work) -> None:
        await trio.sleep(msg.seconds)
        if msg.fail:
            raise RuntimeError("the work failed")
        self.self_ref.tell(Done(msg.seconds))

    @handles(Done)
    async def done(self, msg: Done) -> None:
        self.log.append((f"done {msg.seconds:g}", trio.current_time()))

    @handles(Get)
    async def get(self, msg: Get) -> list[tuple[str, float]]:
        return list(self.log)


async def started(
    nursery: trio.Nursery, log: list[tuple[str, float]], restart: Restart = Restart.PERMANENT
) -> tuple[Supervisor, ActorRef]:
    sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
    ref = await sup.start_child(ChildSpec("clock/1", lambda: Clock(log), restart))
    return sup, ref


async def test_a_timer_fires_when_due_and_not_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        _, ref = await started(nursery, log)
        t0 = trio.current_time()
        assert await ref.ask(Later(10, "a")) is True
        assert await ref.ask(Later(5, "b")) is True
        await trio.sleep(4.999)
        assert log == []
        await trio.sleep(0.002)
        assert [label for label, _ in log] == ["b"]
        await trio.sleep(10)
        assert [(label, round(at - t0, 6)) for label, at in log] == [("b", 5.0), ("a", 10.0)]
        nursery.cancel_scope.cancel()


async def test_a_cancelled_timer_never_fires(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        _, ref = await started(nursery, log)
        await ref.ask(Later(10, "a"))
        await ref.ask(Later(10, "b"))
        await trio.sleep(5)
        assert await ref.ask(Cancel("a")) is False
        await trio.sleep(60)
        assert [label for label, _ in log] == ["b"]
        nursery.cancel_scope.cancel()


class Busy(Clock):
    """A clock whose handler for Get holds the mailbox long enough for a timer to fall due."""

    @handles(Get)
    async def get(self, msg: Get) -> list[tuple[str, float]]:
        await trio.sleep(20)
        self.timers["a"].cancel()  # the Fired message is already queued: it must not be handled
        return list(self.log)


async def test_a_timer_cancelled_after_it_fell_due_is_not_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
        ref = await sup.start_child(ChildSpec("clock/1", lambda: Busy(log)))
        await ref.ask(Later(10, "a"))
        assert await ref.ask(Get(), timeout=30) == []
        await trio.sleep(60)
        assert log == []
        nursery.cancel_scope.cancel()


class Boom:
    pass


class SetThenBoom:
    pass


class Fragile(Clock):
    @handles(Boom)
    async def boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")

    @handles(SetThenBoom)
    async def set_then_boom(self, msg: SetThenBoom) -> None:
        self.send_after(0, Fired("queued"))
        await trio.sleep(1)  # the timer falls due: its message waits in the mailbox
        raise RuntimeError("boom")


async def test_timers_die_with_a_crashed_actor(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
        ref = await sup.start_child(ChildSpec("clock/1", lambda: Fragile(log)))
        await ref.ask(Later(10, "a"))
        with pytest.raises(ActorCrashed):
            await ref.ask(Boom())
        await trio.sleep(60)
        assert log == []
        assert sup.restart_count == 1
        nursery.cancel_scope.cancel()


async def test_a_timer_due_while_the_actor_crashes_is_not_handled_by_its_successor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
        ref = await sup.start_child(ChildSpec("clock/1", lambda: Fragile(log)))
        with pytest.raises(ActorCrashed):
            await ref.ask(SetThenBoom())
        await trio.sleep(60)
        assert await ref.ask(Get()) == []
        assert sup.restart_count == 1
        nursery.cancel_scope.cancel()


async def test_timers_and_tasks_die_with_a_stopped_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, log, Restart.TRANSIENT)
        await ref.ask(Later(10, "a"))
        await ref.ask(Work(10))
        actor = sup.instance("clock/1")
        assert isinstance(actor, Clock)
        timer = actor.timers["a"]
        ref.tell(Stop())
        await sup.stop_child("clock/1")
        assert not timer.active
        await trio.sleep(60)
        assert log == []
        nursery.cancel_scope.cancel()


async def test_timers_die_with_a_killed_actor(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, log)
        await ref.ask(Later(10, "a"))
        actor = sup.instance("clock/1")
        assert isinstance(actor, Clock)
        await sup.stop_child("clock/1", timeout=0)
        assert not actor.timers["a"].active
        nursery.cancel_scope.cancel()


async def test_spawned_work_reports_back_through_the_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        _, ref = await started(nursery, log)
        t0 = trio.current_time()
        await ref.ask(Work(3))
        await ref.ask(Work(1))
        assert await ref.ask(Get()) == []  # the mailbox kept serving while the work ran
        await trio.sleep(5)
        got = await ref.ask(Get())
        assert [(label, round(at - t0, 6)) for label, at in got] == [
            ("done 1", 1.0),
            ("done 3", 3.0),
        ]
        nursery.cancel_scope.cancel()


async def test_a_crash_in_a_spawned_task_crashes_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    starts: list[int] = []

    def factory() -> Clock:
        starts.append(1)
        return Clock(log)

    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
        ref = await sup.start_child(ChildSpec("clock/1", factory))
        await ref.ask(Later(10, "a"))
        await ref.ask(Work(1, fail=True))
        await trio.sleep(2)
        assert sup.restart_count == 1 and len(starts) == 2
        await trio.sleep(20)
        assert log == []  # the crashed instance's timer died with it
        assert await ref.ask(Get()) == []  # the successor serves
        nursery.cancel_scope.cancel()


async def test_timers_and_spawn_need_a_running_actor() -> None:
    actor = Clock([])
    actor.address = "clock/x"
    with pytest.raises(RuntimeError, match="not running"):
        actor.send_after(1, Fired("x"))
    with pytest.raises(RuntimeError, match="not running"):
        actor.spawn(trio.sleep, 1)
