"""Where an actor lives: each placed address is owned by exactly one node, through ``SET NX PX``.

A node takes an address with ``SET place:<address> <node> NX GET PX ttl``: Redis runs one command at
a time, so of two nodes starting the same room at the same moment exactly one sets the key and the
other reads the winner's id. The claim is idempotent (a node that already owns the address is told
so and its TTL is extended), so a claim whose answer was lost can be repeated without harm.

The owner refreshes its addresses every ``REFRESH_EVERY`` seconds (one script for all of them):
a key that still names it is extended, a key that expired while the node or Redis was away and
that nobody took is set again (the actor never stopped running here), and an address whose key
names another node is *lost* (someone took it over meanwhile): the node is told so that it stops
the actor instead of running it twice. A clean stop releases the key at once; a dead node's
keys expire ``PLACE_TTL`` seconds after its last refresh, and the next claim takes the address over.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import coredis
import trio

from cluster.connection import Client, ClusterUnavailable, Health, call
from cluster.keys import Keys

log = logging.getLogger(__name__)

#: Seconds a placement outlives its owner's last refresh (the same as a node's liveness).
PLACE_TTL = 5.0
REFRESH_EVERY = 1.5
#: Seconds between refresh attempts while Redis does not answer.
RETRY_EVERY = 0.25
#: Addresses refreshed per script call, so one call stays short with thousands of rooms.
REFRESH_BATCH = 500

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif owner then
    lost[#lost + 1] = i
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return lost
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PlacementTaken(Exception):
    """Another node owns this address: the actor runs there, not here."""

    def __init__(self, address: str, owner: str) -> None:
        super().__init__(f"{address} is placed on node {owner}")
        self.address = address
        self.owner = owner


class Placement:
    """This node's claims on addresses, and look-ups of who owns any address."""

    def __init__(
        self, client: Client, keys: Keys, health: Health, node_id: str, ttl: float = PLACE_TTL
    ) -> None:
        self.client = client
        self.keys = keys
        self.health = health
        self.node_id = node_id
        self.ttl_ms = int(ttl * 1000)
        #: The addresses this node owns (claimed, not yet released or lost).
        self.held: set[str] = set()

    async def claim(self, address: str) -> str:
        """Take ``address`` if nobody owns it; the owner's id either way (this node's if it won).

        Fails closed: while Redis is unreachable this raises ClusterUnavailable and nothing is
        placed (a claim that reached Redis before the failure expires unrefreshed, or is
        confirmed by the next claim, which is idempotent).
        """
        self.health.check(f"place {address}")
        node = self.node_id.encode()
        previous = await call(
            self.health,
            f"place {address}",
            self.client.set(
                self.keys.place(address),
                node,
                condition=coredis.PureToken.NX,
                get=True,
                px=self.ttl_ms,
            ),
        )
        if previous is None:
            self.held.add(address)
            return self.node_id
        if previous == node:
            await call(
                self.health,
                f"extend {address}",
                self.client.eval(_EXTEND, [self.keys.place(address)], [node, self.ttl_ms]),
            )
            self.held.add(address)
            return self.node_id
        return previous.decode()

    async def acquire(self, address: str) -> None:
        """Claim ``address`` for this node or raise PlacementTaken naming its owner."""
        owner = await self.claim(address)
        if owner != self.node_id:
            raise PlacementTaken(address, owner)

    async def owner(self, address: str) -> str | None:
        """The id of the node that owns ``address`` now, or None."""
        value = await call(
            self.health, f"locate {address}", self.client.get(self.keys.place(address))
        )
        return None if value is None else value.decode()

    async def owners(self, addresses: list[str]) -> dict[str, str | None]:
        """Owners of many addresses in one round trip."""
        if not addresses:
            return {}
        values = await call(
            self.health,
            "locate",
            self.client.mget([self.keys.place(a) for a in addresses]),
        )
        return {
            a: (None if v is None else v.decode()) for a, v in zip(addresses, values, strict=True)
        }

    async def release(self, address: str) -> None:
        """Give ``address`` up now (only if this node still owns it); idempotent."""
        self.held.discard(address)
        await call(
            self.health,
            f"release {address}",
            self.client.eval(_RELEASE, [self.keys.place(address)], [self.node_id.encode()]),
        )

    async def refresh(self, addresses: Iterable[str] | None = None) -> list[str]:
        """Extend this node's claims (re-take expired ones nobody took); the lost ones, dropped."""
        todo = sorted(self.held if addresses is None else addresses)
        lost: list[str] = []
        node = self.node_id.encode()
        for start in range(0, len(todo), REFRESH_BATCH):
            batch = todo[start : start + REFRESH_BATCH]
            indexes = await call(
                self.health,
                "refresh placements",
                self.client.eval(
                    _REFRESH, [self.keys.place(a) for a in batch], [node, self.ttl_ms]
                ),
            )
            lost.extend(batch[int(i) - 1] for i in indexes)  # type: ignore[union-attr, arg-type]
        for address in lost:
            self.held.discard(address)
        return lost

    async def keep(
        self,
        hosted: Callable[[str], bool],
        on_lost: Callable[[str], Awaitable[None]],
    ) -> None:
        """Refresh forever (a background task): release what no longer runs here, report what was lost.

        ``hosted(address)`` says whether the actor still runs on this node (an actor that stopped
        by itself, idle or done, releases its address here within one period).
        """
        period = REFRESH_EVERY
        while True:
            await trio.sleep(period)
            try:
                for address in [a for a in self.held if not hosted(a)]:
                    await self.release(address)
                for address in await self.refresh():
                    log.warning("%s was taken over while %s was away", address, self.node_id)
                    await on_lost(address)
                period = REFRESH_EVERY
            except ClusterUnavailable as exc:
                # Refreshing is idempotent: try again soon, so keys outlive a short outage.
                log.warning("placements of %s not refreshed: %s", self.node_id, exc)
                period = RETRY_EVERY
