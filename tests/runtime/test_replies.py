"""An ask's reply goes to a reply address held by the registry only while the asker waits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    ChildSpec,
    Envelope,
    Failure,
    MailboxFull,
    Pending,
    Refusal,
    Registry,
    Stop,
    Supervisor,
    handles,
)


@dataclass(frozen=True)
class Echo:
    value: object


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Keep:
    """Defer the reply and keep the Pending, to answer after the asker gave up."""


@dataclass(frozen=True)
class AnswerKept:
    value: object


class No:
    pass


class Boom:
    pass


class Server(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.kept: Pending[object] | None = None

    @handles(Echo)
    async def echo(self, msg: Echo) -> object:
        return msg.value

    @handles(Sleep)
    async def sleep(self, msg: Sleep) -> str:
        await trio.sleep(msg.seconds)
        return "late"

    @handles(Keep)
    async def keep(self, msg: Keep) -> None:
        self.kept = self.defer_reply()

    @handles(AnswerKept)
    async def answer_kept(self, msg: AnswerKept) -> None:
        assert self.kept is not None
        self.kept.reply(msg.value)

    @handles(No)
    async def no(self, msg: No) -> None:
        raise Refusal("forbidden", "no")

    @handles(Boom)
    async def boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")


async def serve(nursery: trio.Nursery, registry: Registry, address: str = "srv/1") -> Supervisor:
    sup: Supervisor = await nursery.start(Supervisor(registry, "test").run)
    await sup.start_child(ChildSpec(address, Server, mailbox_size=4))
    return sup


async def test_the_envelope_carries_a_reply_address_not_a_slot() -> None:
    registry = Registry()
    address, slot = registry.open_reply()
    assert address.startswith("reply/")
    envelope = Envelope("hi", address)
    assert envelope.reply_to == address and isinstance(envelope.reply_to, str)
    assert registry.waiting_replies() == 1
    registry.reply(address, 42)
    assert slot.done and registry.waiting_replies() == 0
    registry.reply(address, 43)  # a second answer is dropped
    assert await slot.wait(address, 1) == 42
    assert Registry(node="n2").open_reply()[0].startswith("reply/n2/")


async def test_every_outcome_arrives_and_no_reply_slot_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    async with trio.open_nursery() as nursery:
        await serve(nursery, registry)
        ref = registry.ref("srv/1")
        assert await ref.ask(Echo(7)) == 7
        assert await ref.ask(Echo(None)) is None
        with pytest.raises(Refusal):
            await ref.ask(No())
        with pytest.raises(ActorCrashed):
            await ref.ask(Boom())
        with pytest.raises(AskTimeout):
            await ref.ask(Sleep(10), timeout=1)
        assert registry.waiting_replies() == 0
        await trio.sleep(20)  # the late reply finds no slot and is dropped
        assert registry.waiting_replies() == 0
        assert await ref.ask(Stop()) is None
        nursery.cancel_scope.cancel()
    assert registry.waiting_replies() == 0


async def test_a_reply_after_the_asker_gave_up_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    async with trio.open_nursery() as nursery:
        await serve(nursery, registry)
        ref = registry.ref("srv/1")
        with pytest.raises(AskTimeout):
            await ref.ask(Keep(), timeout=1)
        ref.tell(AnswerKept("too late"))  # answered after the timeout: nobody to tell, no error
        assert await ref.ask(Echo("still serving")) == "still serving"
        assert registry.waiting_replies() == 0
        nursery.cancel_scope.cancel()


async def test_a_cancelled_or_undeliverable_ask_leaves_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    with pytest.raises(ActorNotFound):
        await registry.ref("srv/none").ask(Echo(1))
    assert registry.waiting_replies() == 0
    async with trio.open_nursery() as nursery:
        await serve(nursery, registry)
        ref = registry.ref("srv/1")
        with trio.move_on_after(1):
            await ref.ask(Sleep(5), timeout=30)
        assert registry.waiting_replies() == 0
        for _ in range(4):
            ref.tell(Sleep(1))
        with pytest.raises(MailboxFull):
            await ref.ask(Echo(1))
        assert registry.waiting_replies() == 0
        nursery.cancel_scope.cancel()


async def test_asks_queued_when_an_actor_goes_are_answered_through_their_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    outcomes: list[type[BaseException]] = []
    async with trio.open_nursery() as nursery:
        sup = await serve(nursery, registry)
        ref = registry.ref("srv/1")

        async def ask() -> None:
            try:
                await ref.ask(Echo(1), timeout=30)
            except ActorStopped as exc:
                outcomes.append(type(exc))

        ref.tell(Sleep(5))
        for _ in range(2):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        await sup.stop_child("srv/1", timeout=1)  # killed with two asks still queued
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes == [ActorStopped, ActorStopped]
        assert registry.waiting_replies() == 0
        nursery.cancel_scope.cancel()


class Wire:
    """A loopback 'remote' transport: another registry plays the other node."""

    def __init__(self) -> None:
        self.nodes: dict[str, Registry] = {}
        self.replies: list[tuple[str, object]] = []

    def node_of(self, address: str) -> str:
        if address.startswith("reply/"):
            return address.split("/")[1]
        return address.partition("/")[2].partition("-")[0]  # srv/<node>-<n>

    def owns(self, address: str) -> bool:
        return self.node_of(address) in self.nodes

    def deliver(self, address: str, envelope: Envelope) -> None:
        self.nodes[self.node_of(address)].deliver(address, envelope)

    def reply(self, address: str, outcome: object) -> None:
        self.replies.append((address, outcome))
        self.nodes[self.node_of(address)].reply(address, outcome)


async def test_an_ask_crosses_to_another_node_and_its_reply_comes_home(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wire = Wire()
    here, there = Registry(wire, node="a"), Registry(wire, node="b")
    wire.nodes = {"a": here, "b": there}
    async with trio.open_nursery() as nursery:
        await serve(nursery, there, "srv/b-1")
        ref = here.ref("srv/b-1")  # the sender does not know the actor is elsewhere
        assert await ref.ask(Echo("hello")) == "hello"
        with pytest.raises(Refusal):
            await ref.ask(No())
        assert [address.startswith("reply/a/") for address, _ in wire.replies] == [True, True]
        assert isinstance(wire.replies[1][1], Failure)
        assert here.waiting_replies() == 0 and there.waiting_replies() == 0
        nursery.cancel_scope.cancel()


async def test_an_alias_reaches_its_target_and_is_forgotten_when_the_target_is_gone() -> None:
    registry = Registry()
    async with trio.open_nursery() as nursery:
        supervisor = await nursery.start(Supervisor(registry, "root").run)
        await supervisor.start_child(ChildSpec("room/r1", _AliasEcho))
        registry.alias("call/c1", "room/r1")
        assert await registry.ref("call/c1").ask("hi") == ("room/r1", "hi")
        assert "call/c1" not in registry  # an alias is no actor: metrics do not count it
        with pytest.raises(ValueError):
            registry.alias("room/r1", "room/r2")
        await supervisor.stop_child("room/r1")
        with pytest.raises(ActorNotFound):
            registry.ref("call/c1").tell("late")
        assert registry.aliases() == {}
        registry.alias("call/c2", "room/r9")
        registry.unalias("call/c2", "room/other")  # moved elsewhere since: left alone
        assert registry.aliases() == {"call/c2": "room/r9"}
        registry.unalias("call/c2")
        assert registry.aliases() == {}
        nursery.cancel_scope.cancel(reason="test over")


class _AliasEcho(Actor):
    async def handle(self, message: object) -> object:
        return (self.address, message)
