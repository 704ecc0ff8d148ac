"""``actors.every_node``: a per-node actor tells or asks the same actor on every other live node.

Three linked registries stand for three nodes (``tests/actors/linked_nodes.py``). One node alone
sends nothing; a node that does not answer an ask is left out within the timeout, never waited
for longer; a dead node is not told at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from actors.every_node import ask_every_node, tell_every_node
from runtime import Actor, ChildSpec, Registry, Supervisor, handles
from runtime.address import Address
from tests.actors.linked_nodes import Linked

DESK = Address.named("desk")


@dataclass(frozen=True)
class Heard:
    text: str


@dataclass(frozen=True)
class Who:
    """Replies the node's id."""


@dataclass(frozen=True)
class Stall:
    """Answered only after a long while."""


class Desk(Actor):
    def __init__(self, heard: list[str]) -> None:
        super().__init__()
        self.heard = heard

    @handles(Heard)
    async def _heard(self, message: Heard) -> None:
        self.heard.append(f"{self.registry.node}:{message.text}")

    @handles(Who)
    async def _who(self, message: Who) -> str:
        return self.registry.node

    @handles(Stall)
    async def _stall(self, message: Stall) -> str:
        await trio.sleep(60)
        return self.registry.node


async def desks(nursery: trio.Nursery, registries: list[Registry], heard: list[str]) -> list[Desk]:
    found = []
    for registry in registries:
        root: Supervisor = await nursery.start(Supervisor(registry, f"root-{registry.node}").run)
        await root.start_child(ChildSpec(DESK, lambda: Desk(heard)))
        desk = root.instance(DESK)
        assert isinstance(desk, Desk)
        found.append(desk)
    return found


async def test_every_other_live_node_is_told_once_and_a_dead_one_not_at_all(
    nursery: trio.Nursery,
) -> None:
    links = Linked()
    heard: list[str] = []
    a, _, _ = await desks(nursery, [links.node(n) for n in ("a", "b", "c")], heard)
    assert tell_every_node(a, DESK, Heard("one")) == 2
    links.kill("c")
    assert tell_every_node(a, DESK, Heard("two")) == 1
    with trio.fail_after(2):
        while len(heard) < 3:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert sorted(heard) == ["b:one", "b:two", "c:one"]  # never its own node


async def test_one_node_alone_tells_and_asks_nobody(nursery: trio.Nursery) -> None:
    heard: list[str] = []
    (alone,) = await desks(nursery, [Registry()], heard)
    assert tell_every_node(alone, DESK, Heard("x")) == 0
    assert await ask_every_node(alone, DESK, Who(), timeout=1) == {}
    assert heard == []


async def test_asks_go_to_every_node_at_once_and_a_silent_one_is_left_out(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    links = Linked()
    a, _, _ = await desks(nursery, [links.node(n) for n in ("a", "b", "c")], [])
    assert await ask_every_node(a, DESK, Who(), timeout=1) == {"b": "b", "c": "c"}
    started = trio.current_time()
    assert await ask_every_node(a, DESK, Stall(), timeout=2) == {}
    assert trio.current_time() - started <= 2.01  # bounded by the timeout in all, not per node
