"""One Waitroom node in a cluster: its Redis client, liveness, placements, transport and registry.

``open_node`` enters the coredis client once in the calling (parent) task, joins the cluster,
builds the :class:`~runtime.registry.Registry` whose remote transport is this node's, and runs the
background tasks (liveness, placement refresh, outbox, inbox, the rescue of dead nodes'
inboxes) in its own nursery until the block ends; then it releases what it owns and leaves, so
the other nodes need not wait for a TTL.

Hosting an actor is ``await node.host(supervisor, spec)``: the address is claimed first (exactly
one node wins) and the actor started only by the winner; the loser is told who owns it
(:class:`~cluster.placement.PlacementTaken`). ``await node.ensure(supervisor, spec)`` is the
same for a sender that only needs the actor running somewhere (it returns the owner's id). While
Redis is unreachable both fail closed with :class:`~cluster.connection.ClusterUnavailable`, and
actors already running keep running (the
local registry never waits on Redis). An address found taken over after the node was away longer
than the TTL is stopped here, so no actor runs on two nodes for longer than one refresh period.

A :class:`PlacingSupervisor` is the server's form of ``ensure``: a supervisor whose placed
children (``placed(address)``) start through the node, so the actors that start rooms and areas
on demand do not change. The node's registry (:class:`NodeRegistry`) takes an admission
``gate``: the server refuses new admissions there while Redis is down (fail closed), before
any actor stores anything.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import trio

from cluster.codec import MessageTypes
from cluster.connection import Client, ClusterUnavailable, Health, open_client
from cluster.keys import DEFAULT_PREFIX, Keys
from cluster.membership import Membership
from cluster.placement import Placement
from cluster.rescue import Rescue
from cluster.spread import Spread
from cluster.transport import READS_MANY, RedisTransport
from runtime.kernel import ActorRef, Envelope
from runtime.registry import Registry
from runtime.supervisor import ChildSpec, Supervisor

log = logging.getLogger(__name__)

#: Seconds a clean stop may spend releasing placements and leaving (Redis may be gone).
LEAVE_TIMEOUT = 2.0


class NodeRegistry(Registry):
    """A node's registry: the runtime's, with an optional ``gate`` every delivery passes first
    (local ones and those arriving from other nodes alike); the gate raises to refuse one."""

    gate: Callable[[str, object], None] | None = None

    def deliver(self, address: str, envelope: Envelope) -> None:
        if self.gate is not None:
            self.gate(address, envelope.message)
        super().deliver(address, envelope)


@dataclass
class Node:
    """A running node; made by :func:`open_node`."""

    id: str
    client: Client
    keys: Keys
    health: Health
    membership: Membership
    placement: Placement
    transport: RedisTransport
    registry: NodeRegistry
    rescue: Rescue
    #: Supervisor hosting each address this node claimed through ``host``, to stop a lost one.
    _hosts: dict[str, Supervisor]
    #: Which live node should host each spread address (set by the server; None: wherever
    #: an address is first claimed).
    spread: Spread | None = None

    async def host(self, supervisor: Supervisor, spec: ChildSpec) -> None:
        """Claim ``spec.address`` for this node and start it under ``supervisor``.

        Raises PlacementTaken if another node owns it, ClusterUnavailable if Redis cannot be
        reached (nothing started either way). The claim is released if the start fails, and
        when the actor stops (within one refresh period, or at once through ``unhost``). Hosting
        an address that already runs here only confirms its claim.
        """
        await self.placement.acquire(spec.address)
        await self._start(supervisor, spec)

    async def ensure(self, supervisor: Supervisor, spec: ChildSpec) -> str:
        """Make sure ``spec.address`` runs somewhere; the id of the node it runs on.

        What a sender does before talking to an actor that may not be running yet: the first
        node to claim the address starts it (here, under ``supervisor``), every other node is
        told the owner and its messages go there. ClusterUnavailable if Redis cannot be reached.
        """
        owner = await self.placement.claim(spec.address)
        if owner != self.id:
            self.transport.remember_owner(spec.address, owner)
            return owner
        await self._start(supervisor, spec)
        return self.id

    async def _start(self, supervisor: Supervisor, spec: ChildSpec) -> None:
        """Start a claimed address here (already running: nothing to do); release it on failure."""
        if spec.address in self.registry:
            return
        try:
            if isinstance(supervisor, PlacingSupervisor):
                await supervisor.start_here(spec)
            else:
                await supervisor.start_child(spec)
        except BaseException:
            with contextlib.suppress(ClusterUnavailable), trio.move_on_after(LEAVE_TIMEOUT):
                await self.placement.release(spec.address)
            raise
        self._hosts[spec.address] = supervisor
        self.transport.remember_owner(spec.address, self.id)

    async def unhost(self, address: str) -> None:
        """Stop the actor at ``address`` and release its placement now."""
        supervisor = self._hosts.pop(address, None)
        if supervisor is not None:
            await supervisor.stop_child(address)
        self.transport.forget_owner(address)
        await self.placement.release(address)

    async def live_nodes(self) -> list[str]:
        return await self.membership.live_nodes()

    def _hosted(self, address: str) -> bool:
        return address in self.registry

    async def _lost(self, address: str) -> None:
        """Another node took ``address`` over while this one was away: stop the local copy."""
        self.transport.forget_owner(address)
        supervisor = self._hosts.pop(address, None)
        if supervisor is not None and address in self.registry:
            await supervisor.stop_child(address)


class PlacingSupervisor(Supervisor):
    """A supervisor whose placed children start through ``node.ensure``: here if this node wins
    the address, else nowhere (its owner's copy is reached through the transport).

    ``start_child`` of a placed address returns a reference either way; it raises
    ClusterUnavailable while Redis is down (nothing started). Restarts after a crash stay local
    (the claim is held while the actor runs); unplaced children start as under any supervisor.
    """

    def __init__(
        self,
        node: Node,
        name: str,
        *,
        placed: Callable[[str], bool],
        **options: Any,
    ) -> None:
        super().__init__(node.registry, name, **options)
        self.node = node
        self._placed = placed

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        if not self._placed(spec.address):
            return await super().start_child(spec)
        await self.node.ensure(self, spec)
        return ActorRef(self.registry, spec.address)

    async def start_here(self, spec: ChildSpec) -> ActorRef:
        """Start a child this node has claimed (what ``node.ensure`` calls)."""
        return await super().start_child(spec)


@contextlib.asynccontextmanager
async def open_node(
    redis_url: str,
    types: MessageTypes,
    *,
    node_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    placed: Callable[[str], bool] | None = None,
    located: Callable[[str], str | None] | None = None,
    on_unowned: Callable[[str], None] | None = None,
    traits: frozenset[str] = frozenset(),
) -> AsyncIterator[Node]:
    """Join the cluster at ``redis_url`` as ``node_id`` (random if not given) until the block ends.

    ``types`` are the messages that may cross; ``placed(address)`` says which addresses not hosted
    here may be on another node (by default every one; the others fail as ActorNotFound at once);
    ``located(address)`` names the node of an address that says where it lives (a connection's
    ``conn/<node>-<n>``), which is then reached without a placement look-up.
    ``on_unowned(address)`` is called when a message is for a placed address nobody owns (its node
    died): the server starts it again; the message is held meanwhile (see ``cluster.transport``).
    ``traits`` are what this release offers the others (``cluster.membership``), beside the
    transport's own (``READS_MANY``).
    Raises ClusterUnavailable if Redis cannot be reached at the start, NodeIdTaken if another
    live process runs as ``node_id``.
    """
    node_id = node_id or secrets.token_hex(4)
    keys = Keys(prefix)
    async with open_client(redis_url) as client:
        health = Health()
        membership = Membership(client, keys, health, node_id, traits | {READS_MANY})
        placement = Placement(client, keys, health, node_id)
        transport = RedisTransport(
            client,
            keys,
            health,
            node_id,
            types,
            placement,
            placed,
            located,
            reads_many=lambda node: READS_MANY in membership.traits_of(node),
        )
        registry = NodeRegistry(transport, node=node_id, peers=membership.peers)
        transport.bind(registry)
        transport.on_unowned = on_unowned
        rescue = Rescue(client, keys, health, membership, placement, transport)
        node = Node(
            node_id, client, keys, health, membership, placement, transport, registry, rescue, {}
        )
        await membership.join()
        try:
            await transport.ensure_inbox()
            await membership.live_nodes()  # the peers are known before any actor starts
            async with trio.open_nursery() as nursery:
                nursery.start_soon(membership.keep_alive, name=f"node {node_id} liveness")
                nursery.start_soon(membership.keep_view, name=f"node {node_id} peers")
                nursery.start_soon(
                    placement.keep, node._hosted, node._lost, name=f"node {node_id} placements"
                )
                nursery.start_soon(transport.send_loop, name=f"node {node_id} outbox")
                nursery.start_soon(transport.receive_loop, name=f"node {node_id} inbox")
                nursery.start_soon(rescue.keep, name=f"node {node_id} rescue")
                yield node
                nursery.cancel_scope.cancel(reason=f"node {node_id} leaves")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT):
                for address in sorted(placement.held):
                    with contextlib.suppress(ClusterUnavailable):
                        await placement.release(address)
                with contextlib.suppress(ClusterUnavailable):
                    await membership.leave()
