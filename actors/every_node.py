"""Reaching the same per-node actor on every other live node of a cluster.

Some actors run once per node under a fixed name (``notices``, ``meetings``, ``consult``), and
the people they serve reach any node through a load balancer: what one node's copy hears (a
notice stored, someone entering a meeting room), the watchers connected to the other nodes must
hear too. The node where it happens does the work once (storage is shared) and then tells each
peer's copy a push-only message; those copies push to their own watchers and store nothing.

One node alone has no peers (``Registry.peers()`` is empty): nothing is sent and nothing costs.
Tells do not wait (the transport queues them), so a desk never waits on another node; what
cannot be sent is logged and dropped, as a push to a closed socket is.
"""

from __future__ import annotations

import logging

import trio

from actors import addresses
from runtime.address import Address
from runtime.errors import ActorError
from runtime.kernel import Actor

log = logging.getLogger(__name__)


def tell_every_node(actor: Actor, name: Address, message: object) -> int:
    """Tell ``message`` to the actor ``name`` of every other live node; how many were told."""
    told = 0
    for node in actor.registry.peers():
        try:
            actor.ref(addresses.on_node(node, name)).tell(message)
        except ActorError as exc:  # Redis away, outbox full: those watchers miss this push
            log.warning("%s not told to %s on node %s: %r", type(message).__name__, name, node, exc)
        else:
            told += 1
    return told


async def ask_every_node(
    actor: Actor, name: Address, message: object, timeout: float
) -> dict[str, object]:
    """Ask the actor ``name`` of every other live node at once; the replies by node id.

    Waits at most ``timeout`` in all; a node that refuses, fails or does not answer in time is
    left out (what it knows is missing, never waited for).
    """
    replies: dict[str, object] = {}

    async def one(node: str) -> None:
        try:
            replies[node] = await actor.ref(addresses.on_node(node, name)).ask(
                message, timeout=timeout
            )
        except ActorError as exc:
            log.info("node %s did not answer %s: %r", node, type(message).__name__, exc)

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            for node in actor.registry.peers():
                nursery.start_soon(one, node)
    return replies
