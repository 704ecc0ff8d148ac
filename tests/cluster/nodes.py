"""Running a cluster node with a supervisor inside a test, and placing the echo actor on it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import trio

from cluster import MessageTypes, Node, open_node
from runtime import ChildSpec, Restart, Supervisor
from tests.cluster.echo import Echo, echo_types


@dataclass
class Running:
    node: Node
    supervisor: Supervisor


@contextlib.asynccontextmanager
async def running(
    url: str, node_id: str, types: MessageTypes | None = None
) -> AsyncIterator[Running]:
    async with (
        open_node(url, types or echo_types(), node_id=node_id, prefix="t") as node,
        trio.open_nursery() as nursery,
    ):
        supervisor = await nursery.start(Supervisor(node.registry, f"root-{node_id}").run)
        yield Running(node, supervisor)
        nursery.cancel_scope.cancel(reason="test over")


def echo(address: str, node: str, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(address, partial(Echo, node), restart)
