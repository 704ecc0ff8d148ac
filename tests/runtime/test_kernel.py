"""The actor runtime over real Trio: supervision, restarts, escalation, asks, bounded mailboxes."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    AskTimeout,
    ChildSpec,
    MailboxFull,
    Refusal,
    Registry,
    Restart,
    RestartIntensity,
    RestartIntensityExceeded,
    Stop,
    Strategy,
    Supervisor,
)


class Counter(Actor):
    """Counts 'inc' messages; 'boom' crashes it; 'refuse' is an expected refusal."""

    def __init__(self, starts: list[str] | None = None) -> None:
        super().__init__()
        self.count = 0
        self.starts = starts

    async def on_start(self) -> None:
        if self.starts is not None:
            self.starts.append(self.address)

    async def handle(self, message: object) -> object:
        if message == "inc":
            self.count += 1
            return self.count
        if message == "get":
            return self.count
        if message == "boom":
            raise RuntimeError("boom")
        if message == "refuse":
            raise Refusal("forbidden", "not for you")
        if message == "slow":
            await trio.sleep(10)
            return "late"
        return await super().handle(message)


async def start(nursery: trio.Nursery, **kw: object) -> Supervisor:
    sup = Supervisor(Registry(), "test", **kw)  # type: ignore[arg-type]
    return await nursery.start(sup.run)  # type: ignore[no-any-return]


async def test_ask_returns_the_handlers_value_and_tell_queues() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter))
        ref.tell("inc")
        ref.tell("inc")
        assert await ref.ask("inc") == 3
        nursery.cancel_scope.cancel()


async def test_crashing_actor_is_restarted_and_siblings_never_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts: list[str] = []
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        a = await sup.start_child(ChildSpec("counter/a", lambda: Counter(starts)))
        b = await sup.start_child(ChildSpec("counter/b", lambda: Counter(starts)))
        for _ in range(5):
            b.tell("inc")
        with caplog.at_level(logging.ERROR), pytest.raises(ActorCrashed):
            await a.ask("boom")
        # The crash is logged with the address and the type of the message that caused it (never
        # its content, which may hold a password or a patient's details).
        assert any(
            "counter/a" in r.getMessage() and "handling a str" in r.getMessage()
            for r in caplog.records
        )
        assert not any("'boom'" in r.getMessage() for r in caplog.records)
        assert await a.ask("inc") == 1  # a fresh instance
        assert await b.ask("get") == 5  # the sibling kept its state
        assert starts == ["counter/a", "counter/b", "counter/a"]
        assert sup.restart_count == 1
        nursery.cancel_scope.cancel()


async def test_refusal_is_a_reply_not_a_crash() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter))
        await ref.ask("inc")
        with pytest.raises(Refusal) as refused:
            await ref.ask("refuse")
        assert refused.value.code == "forbidden"
        with pytest.raises(Refusal) as unknown:
            await ref.ask({"what": "ever"})
        assert unknown.value.code == "unknown_message"
        assert await ref.ask("get") == 1
        assert sup.restart_count == 0
        nursery.cancel_scope.cancel()


async def test_messages_queued_during_a_crash_survive_the_restart() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter))
        ref.tell("boom")
        ref.tell("inc")
        ref.tell("inc")
        assert await ref.ask("get") == 2
        nursery.cancel_scope.cancel()


async def test_one_for_all_restarts_every_child() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery, strategy=Strategy.ONE_FOR_ALL)
        a = await sup.start_child(ChildSpec("counter/a", Counter))
        b = await sup.start_child(ChildSpec("counter/b", Counter))
        await b.ask("inc")
        with pytest.raises(ActorCrashed):
            await a.ask("boom")
        assert await b.ask("get") == 0  # b was restarted with a
        assert await a.ask("get") == 0
        nursery.cancel_scope.cancel()


async def test_restart_intensity_exceeded_escalates(autojump_clock: trio.testing.MockClock) -> None:
    sup = Supervisor(Registry(), "fragile", max_restarts=2, period=5.0)
    with pytest.RaisesGroup(RestartIntensityExceeded):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            ref = await sup.start_child(ChildSpec("counter/a", Counter))
            for _ in range(3):
                ref.tell("boom")
            await trio.sleep(1)
    assert "counter/a" not in sup.registry


async def test_restarts_spread_over_time_do_not_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery, max_restarts=2, period=5.0)
        ref = await sup.start_child(ChildSpec("counter/a", Counter))
        for _ in range(6):
            with pytest.raises(ActorCrashed):
                await ref.ask("boom")
            await trio.sleep(3)
        assert await ref.ask("inc") == 1
        nursery.cancel_scope.cancel()


async def test_ask_times_out_cleanly(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter))
        with pytest.raises(AskTimeout):
            await ref.ask("slow", timeout=0.5)
        # The actor finishes the slow message and keeps serving.
        assert await ref.ask("inc", timeout=30) == 1
        nursery.cancel_scope.cancel()


async def test_full_mailbox_is_refused_with_a_typed_error() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter, mailbox_size=4))
        ref.tell("slow")  # occupies the actor
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(4):
            ref.tell("inc")
        with pytest.raises(MailboxFull) as full:
            ref.tell("inc")
        assert full.value.address == "counter/a" and full.value.capacity == 4
        nursery.cancel_scope.cancel()


async def test_unknown_address_is_a_typed_error() -> None:
    with pytest.raises(ActorNotFound):
        Registry().ref("room/nope").tell("inc")


async def test_clean_stop_drains_the_mailbox_and_unregisters() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("counter/a", Counter, restart=Restart.TRANSIENT))
        for _ in range(3):
            ref.tell("inc")
        ref.tell(Stop())
        ref.tell("inc")  # queued before the stop took effect: still handled
        await sup.stop_child("counter/a")
        assert "counter/a" not in sup.registry
        with pytest.raises(ActorNotFound):
            ref.tell("inc")
        nursery.cancel_scope.cancel()


class Idle(Actor):
    idle_timeout = 30.0

    async def handle(self, message: object) -> object:
        return "ok"


async def test_idle_actor_stops_itself(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery)
        ref = await sup.start_child(ChildSpec("room/1", Idle, restart=Restart.TRANSIENT))
        assert await ref.ask("hi") == "ok"
        await trio.sleep(20)
        assert "room/1" in sup.registry
        await trio.sleep(20)
        assert "room/1" not in sup.registry
        assert sup.children() == []
        nursery.cancel_scope.cancel()


async def test_stopping_a_permanent_child_does_not_restart_it() -> None:
    async with trio.open_nursery() as nursery:
        sup = await start(nursery, max_restarts=1)
        await sup.start_child(ChildSpec("counter/a", Counter))
        await sup.start_child(ChildSpec("counter/b", Counter))
        await sup.stop()
        assert sup.children() == []
        assert sup.restart_count == 0
        nursery.cancel_scope.cancel()


def test_restart_intensity_counts_restarts_within_a_sliding_period() -> None:
    intensity = RestartIntensity(max_restarts=2, period=5.0)
    assert intensity.record(0.0)
    assert intensity.record(1.0)
    assert not intensity.record(2.0)  # three within 5 s
    assert intensity.record(7.5)  # 0, 1 and 2 left the window
    assert intensity.record(7.6)
    assert not intensity.record(7.7)
    assert intensity.record(20.0)
    intensity.reset()
    assert intensity.recent == 0


@pytest.mark.parametrize("args", [(-1, 5.0), (1, 0.0)])
def test_restart_intensity_refuses_nonsense(args: tuple[int, float]) -> None:
    with pytest.raises(ValueError):
        RestartIntensity(*args)
