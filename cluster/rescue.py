"""Entries left in a dead node's inbox reach the addresses' new owners instead of waiting forever.

A node killed with entries in its inbox (sent to it in the seconds before the others learned it
was gone, or read but not yet acknowledged) would keep them until a process with the same id
started again. Every live node sweeps the inboxes of nodes whose liveness key is gone, reading
them through the same consumer group under its own name, so two rescuers never take the same entry
(``XREADGROUP`` for entries never delivered, ``XAUTOCLAIM`` for those the dead node or a dead
rescuer had taken but not acknowledged):

* a message goes to the node that owns its address now; while nobody owns it (the room is not
  started again yet; the server is asked to, through the transport's ``on_unowned``) the entry
  stays with the rescuer and is looked at again on the next sweep, up
  to ``HOLD_FOR`` seconds after it was sent, after which its asker is told ``ActorNotFound``;
* a reply goes to the asker's node if that node is alive, and is dropped otherwise.

A dead node's inbox is removed, and its id taken out of the set of nodes, once nothing in it is
left to rescue and nothing was appended to it for ``RETIRE_AFTER`` seconds (long past every
placement's TTL and ``HOLD_FOR``, so no sender still thinks the node owns anything). Checked and
done in one script, so a node that came back with the same id in the meantime keeps its inbox; one
that comes back later makes a new one.

A rescued entry is appended to its new inbox before it is acknowledged in the dead one, and
carries its identity (``<dead node>:<entry id>``): a rescuer that dies between the two lets another
rescue it again, and the receiving node recognises the copy and does not queue it twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import coredis.exceptions
import trio

from cluster.connection import Client, ClusterUnavailable, Health, call
from cluster.keys import INBOX_GROUP, Keys
from cluster.membership import Membership
from cluster.placement import Placement
from cluster.transport import BATCH, MESSAGE, REPLY, Outgoing, RedisTransport
from runtime.errors import ActorNotFound
from runtime.kernel import Failure

if TYPE_CHECKING:
    from coredis.response.types import StreamEntry

log = logging.getLogger(__name__)

#: Seconds between sweeps.
SWEEP_EVERY = 1.0
#: Seconds a message waits in a dead inbox for its address to have an owner again.
HOLD_FOR = 30.0
#: An entry taken by a rescuer and not acknowledged for this long may be taken by another (the
#: first rescuer died); longer than a sweep, so live rescuers do not take each other's entries.
CLAIM_IDLE_MS = int(4 * SWEEP_EVERY * 1000)
#: Seconds a dead node's inbox must have had nothing new before it is removed.
RETIRE_AFTER = 120.0

#: KEYS: the node's liveness key, its inbox, the set of nodes. ARGV: the node id, the group, the
#: quiet milliseconds. 1 if the node was retired; 0 if it is live, has entries not rescued, or
#: was written to too recently.
_RETIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local function field(flat, name)
    for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
  end
  local stream = redis.call('XINFO', 'STREAM', KEYS[2])
  local last = field(stream, 'last-generated-id')
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now_ms - tonumber(string.match(last, '^(%d+)')) < tonumber(ARGV[3]) then return 0 end
  local drained = field(stream, 'length') == 0
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
    if field(group, 'name') == ARGV[2] then
      drained = field(group, 'pending') == 0 and field(group, 'last-delivered-id') == last
    end
  end
  if not drained then return 0 end
  redis.call('DEL', KEYS[2])
end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""


class Rescue:
    """Sweeps dead nodes' inboxes for this node (a background task, :meth:`keep`)."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        health: Health,
        membership: Membership,
        placement: Placement,
        transport: RedisTransport,
    ) -> None:
        self.client = client
        self.keys = keys
        self.health = health
        self.membership = membership
        self.placement = placement
        self.transport = transport
        self.node_id = membership.node_id
        #: Entries rescued so far (forwarded, handed over here, or answered as not found).
        self.rescued = 0
        #: Dead nodes whose inbox and id this node removed.
        self.retired = 0
        #: One sweep at a time (the loop's and a caller's would read the same held entries).
        self._sweeping = trio.Lock()

    async def keep(self) -> None:
        while True:
            await trio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except ClusterUnavailable as exc:
                log.warning("dead inboxes not swept by %s: %s", self.node_id, exc)

    async def dead_nodes(self) -> list[str]:
        """Ids of nodes in the set of nodes with no liveness key (this node's own never counts):
        a handful, the nodes that died and were not retired yet."""
        known = await self.membership.known_nodes()
        return sorted(n for n, live in known.items() if not live and n != self.node_id)

    async def dead_inboxes(self) -> list[str]:
        """Ids of dead nodes that still have an inbox."""
        with_inbox = []
        for node in await self.dead_nodes():
            if await call(self.health, "find inbox", self.client.exists([self.keys.inbox(node)])):
                with_inbox.append(node)
        return with_inbox

    async def sweep(self) -> int:
        """One pass over every dead inbox, then the retirement of those left with nothing to
        rescue; the number of entries rescued."""
        async with self._sweeping:
            before = self.rescued
            for dead in await self.dead_inboxes():
                await self._drain(dead)
            for dead in await self.dead_nodes():
                await self._retire(dead)
            return self.rescued - before

    async def _retire(self, dead: str) -> None:
        keys = [self.keys.node(dead), self.keys.inbox(dead), self.keys.nodes()]
        quiet_ms = str(int(RETIRE_AFTER * 1000))
        retired = await call(
            self.health,
            "retire dead node",
            self.client.eval(_RETIRE, keys, [dead, INBOX_GROUP, quiet_ms]),
        )
        if retired:
            self.retired += 1
            log.info("dead node %s retired: its inbox was empty and quiet", dead)

    async def _drain(self, dead: str) -> None:
        try:
            await self._drain_group(dead)
        except coredis.exceptions.StreamConsumerGroupError:
            # NOGROUP: entries were appended after Redis lost the group (restarted without its
            # data) and nobody read them; read them from the start next sweep.
            with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
                await call(
                    self.health,
                    "make dead inbox group",
                    self.client.xgroup_create(self.keys.inbox(dead), INBOX_GROUP, identifier="0"),
                )

    async def _drain_group(self, dead: str) -> None:
        inbox = self.keys.inbox(dead)
        # Entries the dead node (or a dead rescuer) had taken: to this rescuer, then read below.
        await call(
            self.health,
            "claim dead entries",
            self.client.xautoclaim(
                inbox, INBOX_GROUP, self.node_id, CLAIM_IDLE_MS, "0-0", count=BATCH
            ),
        )
        for start in ("0", ">"):  # what this rescuer holds, then what nobody read yet
            response = await call(
                self.health,
                "read dead inbox",
                self.client.xreadgroup(INBOX_GROUP, self.node_id, {inbox: start}, count=BATCH),
            )
            entries = (response or {}).get(inbox.encode(), ())
            if entries:
                await self._rescue(dead, inbox, entries)

    async def _rescue(self, dead: str, inbox: str, entries: tuple[StreamEntry, ...]) -> None:
        now_ms = time.time() * 1000
        fields_of = {e.identifier: e.field_values for e in entries}
        addresses = sorted(
            {
                address
                for f in fields_of.values()
                if f.get(b"k") == MESSAGE and b"a" in f  # type: ignore[call-overload]
                for address in f[b"a"].decode().split("\n")  # type: ignore[union-attr, index]
            }
        )
        owners = await self.placement.owners(addresses)
        live = set(await self.membership.live_nodes())
        forward: list[tuple[str, Outgoing]] = []
        done: list[bytes] = []
        for entry_id, raw in fields_of.items():
            fields: dict[bytes, bytes] = dict(raw)  # type: ignore[arg-type]
            ident = entry_id if isinstance(entry_id, bytes) else entry_id.encode()
            reply_to = fields[b"r"].decode() if b"r" in fields else None
            origin = fields.get(b"o") or f"{dead}:{ident.decode()}".encode()
            kind, body = fields.get(b"k", b""), fields.get(b"b", b"")
            names = fields.get(b"a", b"").decode().split("\n")
            if kind == REPLY:
                node = names[0][6:].partition("/")[0]
                if node in live:
                    forward.append((node, Outgoing(kind, names[0], body, reply_to, 0, origin)))
                done.append(ident)
                continue
            settled = True
            for index, address in enumerate(names):
                # An entry for several addresses goes on as one per address, each with an
                # identity of its own (the same one at every sweep, so a repeat is recognised).
                part = origin if len(names) == 1 else origin + f"#{index}".encode()
                owner = owners.get(address)
                if owner is not None and owner in live:
                    forward.append((owner, Outgoing(kind, address, body, reply_to, 0, part)))
                elif now_ms - _sent_ms(ident) > HOLD_FOR * 1000 or kind != MESSAGE:
                    if reply_to is not None and self.transport.registry is not None:
                        self.transport.registry.reply(reply_to, Failure(ActorNotFound(address)))
                else:  # nobody owns it yet: it stays with this rescuer until the next sweep
                    settled = False
                    self.transport.revive(address)
            if settled:
                done.append(ident)
        if forward:
            await self.transport.append(forward)
        if done:
            await call(
                self.health, "acknowledge rescued", self.client.xack(inbox, INBOX_GROUP, done)
            )
            self.rescued += len(done)
            log.info("rescued %d entries from the inbox of dead node %s", len(done), dead)


def _sent_ms(entry_id: bytes) -> float:
    """When an entry was appended: the milliseconds part of its stream id."""
    return float(entry_id.partition(b"-")[0] or 0)
