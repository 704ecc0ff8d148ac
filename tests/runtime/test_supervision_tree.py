"""Supervisors of supervisors: restart per spec, escalation flowing up, clean stops, reasons."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ChildSpec,
    Registry,
    Restart,
    RestartIntensityExceeded,
    Stop,
    Strategy,
    Supervisor,
)
from tests.runtime.test_kernel import Counter


async def test_a_child_supervisor_runs_children_of_its_own() -> None:
    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        rooms = await root.start_supervisor("rooms", strategy=Strategy.ONE_FOR_ALL)
        assert root.children() == ["supervisor/rooms"]
        ref = await rooms.start_child(ChildSpec("room/1", Counter))
        assert await ref.ask("inc") == 1
        assert rooms.strategy is Strategy.ONE_FOR_ALL and rooms.registry is root.registry
        nursery.cancel_scope.cancel()


async def test_an_escalating_child_supervisor_is_restarted_with_its_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[str] = []
    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        rooms = await root.start_supervisor("rooms", max_restarts=1, period=10)
        a = await rooms.start_child(ChildSpec("room/a", lambda: Counter(starts)))
        await rooms.start_child(ChildSpec("room/b", lambda: Counter(starts), Restart.TRANSIENT))
        await rooms.start_child(ChildSpec("room/t", lambda: Counter(starts), Restart.TEMPORARY))
        assert await a.ask("inc") == 1
        for _ in range(2):  # the second crash within 10 s exceeds the intensity of 'rooms'
            with pytest.raises(ActorCrashed):
                await a.ask("boom")
        await trio.testing.wait_all_tasks_blocked()
        assert root.restart_count == 1  # the parent restarted 'rooms' ...
        assert sorted(rooms.children()) == [
            "room/a",
            "room/b",
        ]  # ... with its non-temporary children
        assert await a.ask("inc") == 1  # fresh instances
        assert "room/t" not in root.registry
        assert starts == ["room/a", "room/b", "room/t", "room/a", "room/a", "room/b"]
        assert rooms.restart_count == 1
        nursery.cancel_scope.cancel()


async def test_escalation_flows_up_past_the_parents_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    root = Supervisor(registry, "root", max_restarts=0)
    with pytest.RaisesGroup(RestartIntensityExceeded):
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            rooms = await root.start_supervisor("rooms", max_restarts=0)
            ref = await rooms.start_child(ChildSpec("room/a", Counter))
            ref.tell("boom")
            await trio.sleep(1)
    assert list(registry.addresses()) == []


async def test_a_temporary_child_supervisor_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        rooms = await root.start_supervisor("rooms", max_restarts=0, restart=Restart.TEMPORARY)
        ref = await rooms.start_child(ChildSpec("room/a", Counter))
        ref.tell("boom")
        await trio.sleep(1)
        assert root.children() == [] and "room/a" not in root.registry
        assert root.restart_count == 0
        nursery.cancel_scope.cancel()


async def test_stopping_a_child_supervisor_stops_its_children_cleanly() -> None:
    stopped: list[str] = []

    class Tidy(Counter):
        async def on_stop(self) -> None:
            stopped.append(self.address)

    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        rooms = await root.start_supervisor("rooms")
        ref = await rooms.start_child(ChildSpec("room/a", Tidy))
        ref.tell("inc")
        await root.stop_child("supervisor/rooms")
        assert stopped == ["room/a"]
        assert root.children() == [] and "room/a" not in root.registry
        nursery.cancel_scope.cancel()


class Fails(Actor):
    async def on_start(self) -> None:
        raise RuntimeError("cannot start")


async def test_a_child_that_cannot_start_is_the_callers_error() -> None:
    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        with pytest.raises(RuntimeError, match="cannot start"):
            await root.start_child(ChildSpec("room/x", Fails))
        assert root.children() == [] and "room/x" not in root.registry
        assert root.restart_count == 0
        nursery.cancel_scope.cancel()


async def test_a_child_that_does_not_stop_in_time_is_cancelled_with_a_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reasons: list[str] = []

    class Stubborn(Actor):
        async def handle(self, message: object) -> object:
            try:
                await trio.sleep_forever()
            except trio.Cancelled as cancelled:
                reasons.append(str(cancelled))
                raise

    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await root.start_child(ChildSpec("room/s", Stubborn))
        ref.tell("hang")
        ref.tell(Stop())
        await root.stop_child("room/s", timeout=1)
        assert len(reasons) == 1 and "did not stop in time" in reasons[0]
        nursery.cancel_scope.cancel()
