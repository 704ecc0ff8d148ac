"""Which nodes are alive: each node's liveness key, refreshed every 1.5 s, gone ~5 s after it stops.

A node joins with ``SET key token NX PX``: a second process that starts with a live node's id is
refused instead of silently sharing its inbox. Every refresh extends the key only while it still
holds this process's token (a script, so a refresh after the key expired and another process took
the id does not steal it back). Redis expires the key on its own clock, so a node that dies, hangs
or loses its network drops out of :meth:`Membership.live_nodes` about ``NODE_TTL`` seconds later,
and its placements (refreshed by the same loop) can then be taken over.
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

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
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

    def __init__(self, client: Client, keys: Keys, health: Health, node_id: str) -> None:
        self.client = client
        self.keys = keys
        self.health = health
        self.node_id = node_id
        self.token = secrets.token_hex(8)
        #: False after a refresh found the key gone (expired while Redis or this node was away).
        self.alive = False

    async def join(self) -> None:
        key = self.keys.node(self.node_id)
        won = await call(
            self.health,
            "join",
            self.client.set(key, self.token, condition=coredis.PureToken.NX, px=_ms(NODE_TTL)),
        )
        if not won:
            raise NodeIdTaken(f"node {self.node_id} is already live")
        self.alive = True

    async def refresh(self) -> bool:
        """Extend this node's key; False if it had expired (the node was away longer than the TTL).

        An expired key is set again at once, so the node comes back; what it hosted may meanwhile
        have been taken over, which the placement refresh finds out for each address.
        """
        key = self.keys.node(self.node_id)
        kept = await call(
            self.health,
            "refresh liveness",
            self.client.eval(_REFRESH, [key], [self.token, _ms(NODE_TTL)]),
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
        """The ids of every node whose liveness key exists now, sorted."""
        found: list[str] = []
        cursor = 0
        with trio.fail_after(5):  # a cluster has a handful of nodes: a few SCAN pages at most
            while True:
                cursor, keys = await call(
                    self.health,
                    "list nodes",
                    self.client.scan(cursor, match=self.keys.node_pattern(), count=100),
                )
                found.extend(self.keys.node_of_key(k.decode()) for k in keys)
                if cursor == 0:
                    break
        return sorted(set(found))

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


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
