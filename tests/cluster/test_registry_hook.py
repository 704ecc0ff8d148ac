"""The registry consults its remote transport only for names it hosts under no name of its own."""

from __future__ import annotations

import trio

from runtime import Actor, ChildSpec, Envelope, Registry, Supervisor


class Recorder:
    """A transport that keeps what it is given, claiming every address."""

    def __init__(self) -> None:
        self.delivered: list[str] = []

    def owns(self, address: str) -> bool:
        return True

    def deliver(self, address: str, envelope: Envelope) -> None:
        self.delivered.append(address)

    def reply(self, address: str, outcome: object) -> None:
        raise AssertionError("no reply leaves this node in this test")


class Here(Actor):
    async def handle(self, message: object) -> object:
        return ("here", message)


async def test_local_actors_and_local_aliases_never_reach_the_transport() -> None:
    wire = Recorder()
    registry = Registry(wire, node="a")
    async with trio.open_nursery() as nursery:
        supervisor = await nursery.start(Supervisor(registry, "root").run)
        await supervisor.start_child(ChildSpec("room/r1", Here))
        registry.alias("call/c1", "room/r1")
        assert await registry.ref("room/r1").ask(1) == ("here", 1)
        assert await registry.ref("call/c1").ask(2) == ("here", 2)
        registry.ref("room/elsewhere").tell(3)
        assert wire.delivered == ["room/elsewhere"]
        nursery.cancel_scope.cancel(reason="test over")
