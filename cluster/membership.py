"""Which nodes are alive: each node's liveness key, refreshed every 1.5 s, gone ~5 s after it stops.

A node joins with ``SET key token NX PX``: a second process that starts with a live node's id is
refused instead of silently sharing its inbox. Every refresh extends the key only while it still
holds this process's token (a script, so a refresh after the key expired and another process took
the id does not steal it back). Redis expires the key on its own clock, so a node that dies, hangs
or loses its network drops out of :meth:`Membership.live_nodes` about ``NODE_TTL`` seconds later,
and its placements (refreshed by the same loop) can then be taken over. Every node that joined
is also named in one set (``Keys.nodes``), so listing the nodes reads that set and their keys,
never the keyspace; a dead node stays in the set, and the rescue finds its inbox there.

A liveness key's value is the joining process's token and, after a ``|``, the *traits* its
release offers (opaque words the composition root chooses, comma-separated): while two releases
run side by side, a node of the newer one learns from them what an older node cannot do (a
node whose key has no traits offers none).
"""

from __future__ import annotations

import logging
import secrets

import coredis
import trio

from cluster.connection import Client, ClusterUnavailable, Health, call
from cluster.keys import Keys

log = logging.getLogger(__name__)

#: Seconds a liveness key lives without a refresh: the "dead after about 5 s" of the design.
NODE_TTL = 5.0
#: Seconds between refreshes: three refreshes may fail before the node counts as dead.
REFRESH_EVERY = 1.5
#: Seconds between refresh attempts while Redis does not answer.
RETRY_EVERY = 0.25
#: Seconds between reads of the live nodes for :meth:`Membership.peers` (the per-node desks
#: tell the same desk on every other node; a node that joined is told within this).
VIEW_EVERY = 2.0

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SADD', KEYS[2], ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_LEAVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NodeIdTaken(Exception):
    """Another live process already runs as this node id."""


class Membership:
    """This node's liveness key and the view of every live node."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        health: Health,
        node_id: str,
        traits: frozenset[str] = frozenset(),
    ) -> None:
        self.client = client
        self.keys = keys
        self.health = health
        self.node_id = node_id
        self.traits = traits
        self.token = secrets.token_hex(8) + ("|" + ",".join(sorted(traits)) if traits else "")
        #: Each live node's traits as last read (this node's own always).
        self._traits: dict[str, frozenset[str]] = {node_id: traits}
        #: False after a refresh found the key gone (expired while Redis or this node was away).
        self.alive = False
        #: The live nodes as last read (every read of them updates it), this one excluded.
        self.last_peers: tuple[str, ...] = ()

    async def join(self) -> None:
        key = self.keys.node(self.node_id)
        won = await call(
            self.health,
            "join",
            self.client.set(key, self.token, condition=coredis.PureToken.NX, px=_ms(NODE_TTL)),
        )
        if not won:
            raise NodeIdTaken(f"node {self.node_id} is already live")
        await self._list()
        self.alive = True

    async def _list(self) -> None:
        """Name this node in the set of nodes (idempotent; every refresh does it again, so a set
        lost with Redis' data is made again within a period)."""
        await call(self.health, "list node", self.client.sadd(self.keys.nodes(), [self.node_id]))

    async def refresh(self) -> bool:
        """Extend this node's key; False if it had expired (the node was away longer than the TTL).

        An expired key is set again at once, so the node comes back; what it hosted may meanwhile
        have been taken over, which the placement refresh finds out for each address.
        """
        key = self.keys.node(self.node_id)
        kept = await call(
            self.health,
            "refresh liveness",
            self.client.eval(
                _REFRESH, [key, self.keys.nodes()], [self.token, _ms(NODE_TTL), self.node_id]
            ),
        )
        if kept:
            self.alive = True
            return True
        rejoined = await call(
            self.health,
            "rejoin",
            self.client.set(key, self.token, condition=coredis.PureToken.NX, px=_ms(NODE_TTL)),
        )
        if not rejoined:
            raise NodeIdTaken(f"node {self.node_id} was taken by another process while away")
        await self._list()
        log.warning("node %s was away longer than %.0f s and joined again", self.node_id, NODE_TTL)
        self.alive = True
        return False

    async def leave(self) -> None:
        """Remove the key now (a clean stop), so nobody waits the TTL to learn the node is gone."""
        await call(
            self.health,
            "leave",
            self.client.eval(_LEAVE, [self.keys.node(self.node_id)], [self.token]),
        )
        self.alive = False

    async def live_nodes(self) -> list[str]:
        """The ids of every node whose liveness key exists now, sorted: two round trips, however
        many keys the cluster holds (a ``SCAN`` would walk every room's placement)."""
        live = sorted(node for node, live in (await self.known_nodes()).items() if live)
        self.last_peers = tuple(n for n in live if n != self.node_id)
        return live

    def peers(self) -> tuple[str, ...]:
        """The other live nodes as last read, without waiting on Redis (the registry's)."""
        return self.last_peers

    async def keep_view(self) -> None:
        """Read the live nodes every ``VIEW_EVERY`` s, forever (a background task), so
        :meth:`peers` is at most that old; Redis away: the last view stays until it answers."""
        while True:
            await trio.sleep(VIEW_EVERY)
            try:
                await self.live_nodes()
            except ClusterUnavailable as exc:
                log.warning("live nodes of %s not read: %s", self.node_id, exc)

    async def known_nodes(self) -> dict[str, bool]:
        """Every node id that ever joined this cluster (since Redis last lost its data), each
        with whether it is live now."""
        members = await call(self.health, "list nodes", self.client.smembers(self.keys.nodes()))
        ids = sorted(m.decode() for m in members)
        if not ids:
            return {}
        values = await call(
            self.health, "nodes alive", self.client.mget([self.keys.node(i) for i in ids])
        )
        self._traits = {
            i: _traits(v) for i, v in zip(ids, values, strict=True) if v is not None
        } | {self.node_id: self.traits}
        return {i: v is not None for i, v in zip(ids, values, strict=True)}

    def traits_of(self, node_id: str) -> frozenset[str]:
        """What ``node_id``'s release offers, as last read (nothing for a node not seen live)."""
        return self._traits.get(node_id, frozenset())

    async def is_live(self, node_id: str) -> bool:
        return bool(
            await call(self.health, "node alive", self.client.exists([self.keys.node(node_id)]))
        )

    async def keep_alive(self) -> None:
        """Refresh forever (a background task); a failed refresh is logged and tried next period."""
        period = REFRESH_EVERY
        while True:
            await trio.sleep(period)
            try:
                await self.refresh()
                period = REFRESH_EVERY
            except ClusterUnavailable as exc:
                # A refresh is idempotent: try again soon, so the key outlives a short outage.
                log.warning("liveness of %s not refreshed: %s", self.node_id, exc)
                period = RETRY_EVERY


def _traits(value: bytes) -> frozenset[str]:
    """The traits in a liveness key's value (``token|a,b``); none in an older node's token."""
    _, sep, listed = value.decode(errors="replace").partition("|")
    return frozenset(t for t in listed.split(",") if t) if sep else frozenset()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
