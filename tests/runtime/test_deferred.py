"""Deferred replies and batch receive (``defer_reply``, ``take_queued``), on Trio's virtual clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorRef,
    ActorStopped,
    AskTimeout,
    ChildSpec,
    Pending,
    Refusal,
    Registry,
    Restart,
    Stop,
    Supervisor,
    handles,
)
from runtime.kernel import MESSAGES_HANDLED


@dataclass(frozen=True)
class Slow:
    """Answer after ``seconds``, without holding the mailbox."""

    seconds: float
    answer: str
    refuse: bool = False


@dataclass(frozen=True)
class Answer:
    pending: Pending[object]
    answer: str
    refuse: bool


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Item:
    n: int
    bad: bool = False


class Boom:
    pass


@dataclass(frozen=True)
class Nap:
    """Hold the mailbox for a while, so that what is sent meanwhile queues up."""

    seconds: float


class Server(Actor):
    def __init__(self, seen: list[object]) -> None:
        super().__init__()
        self.seen = seen

    @handles(Slow)
    async def slow(self, msg: Slow) -> None:
        pending = self.defer_reply()
        assert self.defer_reply() is pending
        self.spawn(self._later, msg, pending)

    async def _later(self, msg: Slow, pending: Pending[object]) -> None:
        await trio.sleep(msg.seconds)
        self.self_ref.tell(Answer(pending, msg.answer, msg.refuse))

    @handles(Answer)
    async def answer(self, msg: Answer) -> None:
        self.seen.append(("answer", msg.answer, trio.current_time()))
        if msg.refuse:
            msg.pending.refuse(Refusal("forbidden", "no"))
        else:
            msg.pending.reply(msg.answer)

    @handles(Ping)
    async def ping(self, msg: Ping) -> int:
        self.seen.append(("ping", msg.n))
        return msg.n

    @handles(Item)
    async def item(self, msg: Item) -> list[int]:
        batch = [msg, *(p.message for p in self.take_queued(Item, 0))]  # limit 0: takes nothing
        taken = self.take_queued(Item, 3)
        self.seen.append(("batch", [m.n for m in batch] + [p.message.n for p in taken]))
        if any(p.message.bad for p in taken) or msg.bad:
            raise RuntimeError("a bad item")
        for pending in taken:
            pending.reply(pending.message.n * 10)
        return [p.message.n for p in taken]

    @handles(Nap)
    async def nap(self, msg: Nap) -> None:
        await trio.sleep(msg.seconds)
        self.seen.append("nap")

    @handles(Boom)
    async def boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")


async def started(
    nursery: trio.Nursery, seen: list[object], restart: Restart = Restart.PERMANENT
) -> tuple[Supervisor, ActorRef]:
    sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
    return sup, await sup.start_child(ChildSpec("srv/1", lambda: Server(seen), restart))


async def test_a_deferred_reply_comes_later_while_the_mailbox_keeps_serving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[object] = []
    results: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        _, ref = await started(nursery, seen)
        t0 = trio.current_time()

        async def ask(key: str, msg: object) -> None:
            results[key] = (await ref.ask(msg, timeout=30), trio.current_time() - t0)

        nursery.start_soon(ask, "slow", Slow(10, "late"))
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask(Ping(1)) == 1  # not queued behind the slow one
        assert trio.current_time() - t0 < 1
        await trio.sleep(11)
        assert results["slow"] == ("late", 10.0)
        with pytest.raises(Refusal) as refused:
            await ref.ask(Slow(2, "no", refuse=True))
        assert refused.value.code == "forbidden"
        nursery.cancel_scope.cancel()


async def test_a_deferred_tell_answers_nowhere(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        _, ref = await started(nursery, seen)
        ref.tell(Slow(1, "nobody"))
        await trio.sleep(2)
        assert await ref.ask(Ping(2)) == 2
        assert ("answer", "nobody") in [entry[:2] for entry in seen if isinstance(entry, tuple)]
        nursery.cancel_scope.cancel()


async def test_deferred_asks_still_owed_get_crashed_or_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, seen, Restart.TRANSIENT)
        outcomes: list[type[BaseException]] = []

        async def ask(msg: object) -> None:
            try:
                await ref.ask(msg, timeout=30)
            except (ActorCrashed, ActorStopped) as exc:
                outcomes.append(type(exc))

        nursery.start_soon(ask, Slow(10, "never"))
        await trio.testing.wait_all_tasks_blocked()
        ref.tell(Boom())
        await trio.sleep(1)
        assert outcomes == [ActorCrashed]  # at once, not after the 30 s timeout
        nursery.start_soon(ask, Slow(10, "never"))
        await trio.testing.wait_all_tasks_blocked()
        await sup.stop_child("srv/1")
        await trio.sleep(1)
        assert outcomes == [ActorCrashed, ActorStopped]
        nursery.cancel_scope.cancel()


async def test_take_queued_takes_the_run_of_one_type_and_leaves_the_next_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, seen)
        actor = sup.instance("srv/1")
        assert actor is not None
        replies: dict[int, object] = {}

        async def ask(msg: Item | Ping) -> None:
            replies[msg.n] = await ref.ask(msg)

        before = MESSAGES_HANDLED.get("srv", 0)
        ref.tell(Nap(1))
        for msg in (
            Item(1),
            Item(2),
            Item(3),
            Ping(4),
            Item(5),
            Item(6),
            Item(7),
            Item(8),
            Item(9),
        ):
            nursery.start_soon(ask, msg)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(2)
        assert replies == {1: [2, 3], 2: 20, 3: 30, 4: 4, 5: [6, 7, 8], 6: 60, 7: 70, 8: 80, 9: []}
        batches = [entry for entry in seen if isinstance(entry, tuple) and entry[0] != "ping"]
        assert batches == [("batch", [1, 2, 3]), ("batch", [5, 6, 7, 8]), ("batch", [9])]
        assert [e for e in seen if isinstance(e, tuple) and e[0] == "ping"] == [("ping", 4)]
        assert seen.index(("ping", 4)) == seen.index(("batch", [1, 2, 3])) + 1
        assert MESSAGES_HANDLED["srv"] - before == 10  # taken messages count as handled
        nursery.cancel_scope.cancel()


async def test_a_crash_fails_the_taken_asks_and_keeps_the_next_message_for_the_successor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, seen)
        outcomes: dict[int, object] = {}

        async def ask(msg: Item | Ping) -> None:
            try:
                outcomes[msg.n] = await ref.ask(msg)
            except ActorCrashed as exc:
                outcomes[msg.n] = type(exc)

        ref.tell(Nap(1))
        for msg in (Item(1), Item(2, bad=True), Ping(3), Item(4)):
            nursery.start_soon(ask, msg)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(2)
        assert outcomes == {1: ActorCrashed, 2: ActorCrashed, 3: 3, 4: []}
        assert sup.restart_count == 1
        # The successor handled the Ping the batch stopped at first, then the next Item.
        assert seen[-2:] == [("ping", 3), ("batch", [4])]
        nursery.cancel_scope.cancel()


async def test_a_stop_ends_a_batch_and_is_still_honoured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        sup, ref = await started(nursery, seen, Restart.TRANSIENT)
        ref.tell(Nap(1))
        ref.tell(Item(1))
        ref.tell(Item(2))
        ref.tell(Stop())
        ref.tell(Item(3))
        await trio.sleep(2)
        assert seen == ["nap", ("batch", [1, 2]), ("batch", [3])]
        assert "srv/1" not in sup.registry
        nursery.cancel_scope.cancel()


async def test_batch_and_defer_only_inside_a_handler() -> None:
    actor = Server([])
    with pytest.raises(RuntimeError):
        actor.defer_reply()
    with pytest.raises(RuntimeError):
        actor.take_queued(Item, 3)


async def test_an_unanswered_ask_of_a_healthy_actor_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Deferring is a promise: the kernel does not answer for a handler that forgot to."""

    class Forgetful(Actor):
        @handles(Ping)
        async def ping(self, msg: Ping) -> None:
            self.defer_reply()

    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "test").run)
        ref = await sup.start_child(ChildSpec("srv/2", Forgetful))
        with pytest.raises(AskTimeout):
            await ref.ask(Ping(1), timeout=2)
        nursery.cancel_scope.cancel()
