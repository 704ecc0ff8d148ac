"""Tells, asks and replies to actors on other nodes, through one Redis stream per node.

This is the :class:`~runtime.registry.RemoteTransport` the registry consults for an address it
does not host: senders do not change. The registry's calls are synchronous (a tell never blocks),
so :meth:`RedisTransport.deliver` only encodes the message (an unregistered type is refused right
there, at the sender) and queues it in a bounded outbox; one task drains the outbox in order,
finds each address's owner (``placement``; owners are remembered for ``OWNER_CACHE_TTL``) and
appends the batch to the owners' inbox streams in one pipeline (``XADD``).

Each node reads its own inbox with ``XREADGROUP`` as the only consumer of one group and
acknowledges (``XACK``) an entry once it is queued in the local mailbox (or answered with an
error), in one pipeline with the next read. After any break (Redis paused, restarted, the
connection lost) the node first re-reads its pending entries, those delivered to it but never
acknowledged, so an entry it had not queued is not lost; entries it had queued but could not
acknowledge are recognised by id and not queued twice.

A tell of one message to several addresses on one node (an area's event to every dashboard that
watches it) crosses as one entry naming them all, when the sender told them one after another
and the receiving node reads such entries (its liveness key offers ``READS_MANY``): the body is
encoded once, appended once, read, decoded and acknowledged once, then queued in each mailbox.

An ask's reply travels the same way to the asker's node (``reply/<node>/<n>``); a reply nobody
waits for is dropped there, as on one node. Asks keep their sender's timeout. What cannot be sent
fails at the sender where it can and at the asker otherwise: while Redis is known to be down a
send raises :class:`~cluster.connection.ClusterUnavailable` at once; an ask whose batch could not
be appended is answered with it; an ask to an address nobody owns gets
:class:`~runtime.errors.ActorNotFound`, unless the node was given ``on_unowned``: then that is
called (the server starts the address again, on this node or wherever its claim lands) and the
message is held, looked up again every ``RETRY_HELD`` seconds for up to ``HOLD_UNOWNED`` seconds,
and sent once the address has an owner (in order with what follows it to the same address). A tell that cannot be sent after it left the sender is
dropped, logged and counted (a tell has no answer to carry the error), as a tell to a full mailbox
is refused on one node.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import coredis
import coredis.exceptions
import trio

from cluster.codec import MessageTypes, UnknownMessageType
from cluster.connection import COMMAND_TIMEOUT, Client, ClusterUnavailable, Health, call
from cluster.keys import INBOX_GROUP, Keys
from cluster.placement import Placement
from runtime.errors import UNKNOWN_MESSAGE, ActorError, ActorNotFound, MailboxFull, Refusal
from runtime.kernel import Envelope, Failure

if TYPE_CHECKING:
    from runtime.registry import Registry

log = logging.getLogger(__name__)

#: Envelopes waiting to leave this node; a full outbox refuses the send like a full mailbox.
OUTBOX_SIZE = 4096
#: Entries appended or read per round trip.
BATCH = 256
#: Milliseconds a read of the inbox blocks waiting for entries.
READ_BLOCK_MS = 500
#: Seconds an address's owner is remembered before it is looked up again.
OWNER_CACHE_TTL = 1.0
#: Owners remembered before the expired ones are dropped.
OWNER_CACHE_SIZE = 10_000
#: An inbox keeps about this many entries (approximate trimming), so a node that is gone for
#: long cannot fill Redis' memory.
INBOX_MAXLEN = 100_000
#: Times one message may be forwarded by a node that found it was no longer the owner.
MAX_HOPS = 2
#: Entry ids remembered to recognise an entry delivered again after its ack was lost.
SEEN_IDS = 10_000

#: Seconds a message to an address nobody owns is held while the address is started again.
HOLD_UNOWNED = 10.0
#: Seconds between look-ups of the owners of held messages.
RETRY_HELD = 0.2
#: Seconds before ``on_unowned`` is called again for the same address.
REVIVE_EVERY = 1.0

#: Entry kinds.
MESSAGE, REPLY = b"m", b"r"
#: The trait of a node that reads an entry for several addresses (``a`` joined by newlines);
#: an older node's key lacks it, and gets an entry per address.
READS_MANY = "reads:many"
#: What joins the addresses of one entry (no address has a newline).
_SEPARATOR = b"\n"


@dataclass
class Outgoing:
    kind: bytes
    address: str
    body: bytes
    reply_to: str | None = None
    hops: int = 0
    #: ``<node>:<entry id>`` of an entry rescued from a dead node's inbox: its identity, so a
    #: second rescue of the same entry is recognised and not queued twice.
    origin: bytes | None = None
    #: Held for an owner until then (trio clock), once ``on_unowned`` was called for it.
    held_until: float | None = None


@dataclass
class Counts:
    """What crossed, for tests, metrics and the benchmark's figures."""

    #: Inbox entries appended and read (an entry may be for several addresses).
    sent: int = 0
    received: int = 0
    forwarded: int = 0
    #: Messages held for an address nobody owned, and the starts asked for (``on_unowned``).
    held: int = 0
    revivals: int = 0
    dropped: int = 0
    batches: int = 0
    reads: int = 0
    #: Reads that acknowledged what the read before them queued, in the same round trip.
    acknowledgements: int = 0
    #: Addresses carried by entries beyond their first (tells that shared an entry).
    shared: int = 0
    #: Reasons of dropped tells, latest last (bounded).
    drops: deque[str] = field(default_factory=lambda: deque(maxlen=100))


class RedisTransport:
    """Carries envelopes and replies to other nodes (the registry's RemoteTransport)."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        health: Health,
        node_id: str,
        types: MessageTypes,
        placement: Placement,
        placed: Callable[[str], bool] | None = None,
        located: Callable[[str], str | None] | None = None,
        outbox_size: int = OUTBOX_SIZE,
        reads_many: Callable[[str], bool] = lambda node: False,
    ) -> None:
        self.client = client
        self.keys = keys
        self.health = health
        self.node_id = node_id
        self.types = types
        self.placement = placement
        #: Which non-local addresses may live on another node (by default every one).
        self._placed = placed
        #: The node an address names by itself (a connection's), routed without a look-up.
        self._located = located
        #: Whether a node reads an entry for several addresses (``READS_MANY``, as last read).
        self.reads_many = reads_many
        #: The message last encoded and its body: a fan-out loop encodes its message once.
        self._last_message: object = None
        self._last_body = b""
        self.registry: Registry | None = None
        self._outbox_size = outbox_size
        self._send, self._receive = trio.open_memory_channel[Outgoing](outbox_size)
        self._owners: dict[str, tuple[str, float]] = {}
        self._seen: set[bytes] = set()
        self._seen_order: deque[bytes] = deque()
        #: Hops of the entry being handed to the registry now (None outside an incoming entry).
        self._incoming_hops: int | None = None
        self.counts = Counts()
        #: Called (synchronously) with a placed address nobody owns that a message is for.
        self.on_unowned: Callable[[str], None] | None = None
        self._held: list[Outgoing] = []
        self._held_retry_at = 0.0
        self._revived: dict[str, float] = {}

    def bind(self, registry: Registry) -> None:
        self.registry = registry

    # -- what the registry calls (synchronous) ----------------------------------------------------
    def owns(self, address: str) -> bool:
        if address.startswith("reply/"):
            node, sep, _ = address[6:].partition("/")
            return bool(sep) and node != self.node_id
        if self._located is not None and (named := self._located(address)) is not None:
            return named != self.node_id  # named here and not registered: gone
        return self._placed is None or self._placed(address)

    def deliver(self, address: str, envelope: Envelope) -> None:
        hops = 0 if self._incoming_hops is None else self._incoming_hops + 1
        if hops > MAX_HOPS:
            raise ActorNotFound(address)
        self.health.check(f"send to {address}")
        message = envelope.message
        if message is self._last_message:  # messages are immutable: the same object, the same bytes
            body = self._last_body
        else:
            body = self.types.encode(message)
            self._last_message, self._last_body = message, body
        self._queue(Outgoing(MESSAGE, address, body, envelope.reply_to, hops), address)
        if hops:
            self.counts.forwarded += 1

    def reply(self, address: str, outcome: object) -> None:
        try:
            body = self.types.encode(outcome)
        except UnknownMessageType as exc:
            body = self.types.encode(Failure(ActorError(f"the reply could not cross: {exc}")))
        try:
            self.health.check(f"reply to {address}")
            self._queue(Outgoing(REPLY, address, body), address)
        except ActorError as exc:  # the asker times out, as for any reply that does not come
            self._drop(f"reply to {address}: {exc}")

    def _queue(self, item: Outgoing, address: str) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            raise MailboxFull(
                f"outbox of node {self.node_id} (to {address})", self._outbox_size
            ) from None

    def _drop(self, reason: str) -> None:
        self.counts.dropped += 1
        self.counts.drops.append(reason)
        log.warning("dropped: %s", reason)

    # -- placement cache --------------------------------------------------------------------------
    def remember_owner(self, address: str, node: str) -> None:
        self._owners[address] = (node, trio.current_time() + OWNER_CACHE_TTL)

    def forget_owner(self, address: str) -> None:
        self._owners.pop(address, None)

    # -- the outbox -------------------------------------------------------------------------------
    async def send_loop(self) -> None:
        """Drain the outbox in order, a batch per round trip (a background task)."""
        receive = self._receive
        while True:
            batch: list[Outgoing] = []
            if self._held:
                with trio.move_on_at(self._held_retry_at):
                    batch.append(await receive.receive())
            else:
                batch.append(await receive.receive())
            while len(batch) < BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            if self._held and trio.current_time() >= self._held_retry_at:
                # Held ones first: they were sent before anything in this batch.
                batch, self._held = self._held + batch, []
                for item in batch:
                    if item.held_until is not None:
                        self.forget_owner(item.address)
            elif self._held:
                # Still waiting: what follows a held message to the same address waits behind it.
                waiting = {item.address for item in self._held}
                self._held.extend(item for item in batch if item.address in waiting)
                batch = [item for item in batch if item.address not in waiting]
            if batch:
                await self._send_batch(batch)

    async def _send_batch(self, batch: list[Outgoing]) -> None:
        try:
            routed = await self._route(batch)
        except ClusterUnavailable as exc:
            for item in batch:
                self._fail(item, exc)
            return
        try:
            appended = await self._append(routed) if routed else 0
        except ClusterUnavailable as exc:  # the items _route answered itself are not failed again
            for _, item in routed:
                self._fail(item, exc)
            return
        self.counts.sent += appended
        self.counts.shared += len(routed) - appended
        self.counts.batches += 1

    async def _route(self, batch: list[Outgoing]) -> list[tuple[str, Outgoing]]:
        """Each item with the node it goes to; items for an address nobody owns are answered here."""
        now = trio.current_time()
        unknown = []
        if len(self._owners) > OWNER_CACHE_SIZE:  # forget the expired ones, keep memory bounded
            self._owners = {a: known for a, known in self._owners.items() if known[1] >= now}
        for item in batch:
            if item.kind == MESSAGE and (
                self._located is None or self._located(item.address) is None
            ):
                cached = self._owners.get(item.address)
                if cached is None or cached[1] < now:
                    unknown.append(item.address)
        if unknown:
            for address, owner in (await self.placement.owners(sorted(set(unknown)))).items():
                if owner is None:
                    self._owners.pop(address, None)
                else:
                    self.remember_owner(address, owner)
        routed = []
        for item in batch:
            if item.kind == REPLY:
                routed.append((item.address[6:].partition("/")[0], item))
                continue
            if self._located is not None and (node := self._located(item.address)) is not None:
                routed.append((node, item))
                continue
            known = self._owners.get(item.address)
            if known is None and self._hold(item, now):
                continue
            if known is None:
                self._fail(item, ActorNotFound(item.address))
            elif known[0] == self.node_id:
                assert self.registry is not None
                if (
                    item.address not in self.registry
                    and item.address in self.placement.held
                    and self._hold(item, now, revive=False)
                ):
                    continue  # claimed here and still starting (an adopted area): it will run
                # Placed here but not running when it was sent: here now, or nowhere.
                self._hand_over([item.address], item.body, item.reply_to, MAX_HOPS)
            else:
                routed.append((known[0], item))
        return routed

    def _hold(self, item: Outgoing, now: float, *, revive: bool = True) -> bool:
        """Hold a message for an address nobody owns while it is started again (True), or not.

        ``revive=False``: the address is claimed by this node and its actor is starting (a
        handover's new home between its claim and its start); nothing is asked to start it.
        """
        if (revive and self.on_unowned is None) or item.kind != MESSAGE:
            return False
        if item.held_until is None:
            item.held_until = now + HOLD_UNOWNED
            self.counts.held += 1
        elif now >= item.held_until:
            return False
        if revive:
            self.revive(item.address)
        if not self._held:
            self._held_retry_at = now + RETRY_HELD
        self._held.append(item)
        return True

    def revive(self, address: str) -> None:
        """Ask the server to start ``address`` again (at most once per ``REVIVE_EVERY``)."""
        if self.on_unowned is None:
            return
        now = trio.current_time()
        if self._revived.get(address, -REVIVE_EVERY) + REVIVE_EVERY > now:
            return
        if len(self._revived) > OWNER_CACHE_SIZE:
            self._revived = {a: t for a, t in self._revived.items() if t + REVIVE_EVERY > now}
        self._revived[address] = now
        self.counts.revivals += 1
        try:
            self.on_unowned(address)
        except Exception:  # the server's hook must not end the outbox
            log.exception("starting %s again failed", address)

    async def append(self, routed: list[tuple[str, Outgoing]]) -> None:
        """Append entries to the given nodes' inboxes in one pipeline (the rescue uses it too)."""
        await self._append(routed)

    async def _append(self, routed: list[tuple[str, Outgoing]]) -> int:
        """Append ``routed`` in one pipeline; the number of entries it took."""
        entries = self._entries(routed)

        async def pipeline() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for node, item, addresses in entries:
                    fields: dict[bytes, bytes] = {
                        b"k": item.kind,
                        b"a": addresses,
                        b"b": item.body,
                    }
                    if item.reply_to is not None:
                        fields[b"r"] = item.reply_to.encode()
                    if item.hops:
                        fields[b"h"] = str(item.hops).encode()
                    if item.origin is not None:
                        fields[b"o"] = item.origin
                    pipe.xadd(
                        self.keys.inbox(node),
                        fields,  # type: ignore[arg-type]
                        trim_strategy=coredis.PureToken.MAXLEN,
                        trim_operator=coredis.PureToken.APPROXIMATELY,
                        threshold=INBOX_MAXLEN,
                    )

        await call(self.health, "append to inboxes", pipeline())
        return len(entries)

    def _entries(self, routed: list[tuple[str, Outgoing]]) -> list[tuple[str, Outgoing, bytes]]:
        """The inbox entries for ``routed``: each with its node and the addresses it is for.

        A run of plain tells with one body (told one after another, as a fan-out loop does) goes
        to each node that reads many as one entry for all of its addresses. Nothing else is told
        to those addresses within the run, so each address still gets its messages in order.
        """
        entries: list[tuple[str, Outgoing, list[bytes]]] = []
        run_body: bytes | None = None
        run: dict[str, list[bytes]] = {}  # node -> the addresses of its entry in this run
        for node, item in routed:
            address = item.address.encode()
            plain = (
                item.kind == MESSAGE
                and item.reply_to is None
                and not item.hops
                and item.origin is None
            )
            if not plain:
                run_body, run = None, {}
            elif run_body is None or not (item.body is run_body or item.body == run_body):
                run_body, run = item.body, {}
            if plain and node in run:
                run[node].append(address)
                continue
            entries.append((node, item, [address]))
            if plain and self.reads_many(node):
                run[node] = entries[-1][2]
        return [(node, item, _SEPARATOR.join(names)) for node, item, names in entries]

    def _fail(self, item: Outgoing, error: ActorError) -> None:
        """An item that will not arrive: its asker hears why; a tell or a reply is dropped."""
        if item.kind == MESSAGE and item.reply_to is not None and self.registry is not None:
            self.registry.reply(item.reply_to, Failure(error))
        else:
            self._drop(f"{item.address}: {error}")

    # -- the inbox --------------------------------------------------------------------------------
    async def ensure_inbox(self) -> None:
        """Create this node's stream and its consumer group if they do not exist yet."""
        # A group made by an earlier run of this node stays: its pending entries are read first.
        with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
            await call(
                self.health,
                "create inbox",
                self.client.xgroup_create(
                    self.keys.inbox(self.node_id), INBOX_GROUP, identifier="0", mkstream=True
                ),
            )

    async def receive_loop(self) -> None:
        """Read this node's inbox forever (a background task); after a break, pending entries first.

        What one read queued is acknowledged in the same round trip as the next read (``XACK``
        and ``XREADGROUP`` in one pipeline): one command's worth of work per read, not two. An
        entry whose acknowledgement is lost with a break stays pending, is read again after it
        and recognised (``_seen``), then acknowledged with the read after that.
        """
        pending_first = True
        inbox = self.keys.inbox(self.node_id)
        read_entries: list[str | bytes] = []  # read and queued, not yet acknowledged
        while True:
            try:
                if pending_first:
                    await self.ensure_inbox()
                    read_entries = []  # the pending read brings back whatever was not acked
                response = await call(
                    self.health,
                    "read inbox",
                    self._read(inbox, pending_first, read_entries),
                    timeout=COMMAND_TIMEOUT + READ_BLOCK_MS / 1000,
                )
                if read_entries:
                    self.counts.acknowledgements += 1
                read_entries = []
                entries = (response or {}).get(inbox.encode(), ())
                self.counts.reads += 1
                if not entries:
                    pending_first = False
                    continue
                for entry in entries:
                    self._accept(entry.identifier, entry.field_values)  # type: ignore[arg-type]
                read_entries = [e.identifier for e in entries]
                if pending_first:  # at once: the next read of pending entries would bring them back
                    await call(
                        self.health,
                        "acknowledge",
                        self.client.xack(inbox, INBOX_GROUP, read_entries),
                    )
                    read_entries = []
            except ClusterUnavailable as exc:
                log.warning("inbox of %s not read: %s", self.node_id, exc)
                pending_first = True
                await trio.sleep(0.2)
            except coredis.exceptions.StreamConsumerGroupError as exc:
                # NOGROUP: Redis came back without its data; the group is made again (from the
                # stream's start: whatever was appended since is read).
                log.warning("inbox of %s lost its group (%s): making it again", self.node_id, exc)
                pending_first = True

    async def _read(self, inbox: str, pending: bool, acknowledge: list[str | bytes]) -> Any:
        """One read of the inbox (its pending entries, or new ones, waiting up to
        ``READ_BLOCK_MS``), after acknowledging ``acknowledge`` in the same round trip."""
        streams = {inbox: "0" if pending else ">"}
        block = None if pending else READ_BLOCK_MS
        if not acknowledge:
            return await self.client.xreadgroup(
                INBOX_GROUP, self.node_id, streams, count=BATCH, block=block
            )
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xack(inbox, INBOX_GROUP, acknowledge)
            read = pipe.xreadgroup(INBOX_GROUP, self.node_id, streams, count=BATCH, block=block)
        return await read

    def _accept(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Hand one entry to the local registry; errors go back to the asker. Never raises."""
        identity = fields.get(b"o") or entry_id
        if identity in self._seen:
            return  # queued before: its ack was lost, or it was rescued twice
        self._remember(identity)
        self.counts.received += 1
        kind = fields.get(b"k")
        raw_addresses = fields.get(b"a", b"")
        address = raw_addresses.decode()
        body = fields.get(b"b", b"")
        if kind == REPLY:
            assert self.registry is not None
            try:
                outcome = self.types.decode(body)
            except Exception as exc:  # an unknown or malformed reply still ends the ask
                outcome = Failure(ActorError(f"the reply could not be read: {exc}"))
            self.registry.reply(address, outcome)
        elif kind == MESSAGE:
            raw_reply = fields.get(b"r")
            reply_to = raw_reply.decode() if raw_reply is not None else None
            addresses = address.split("\n") if _SEPARATOR in raw_addresses else [address]
            for one in addresses:  # they were sent here: whatever this node knew is stale
                self.forget_owner(one)
            self._hand_over(addresses, body, reply_to, int(fields.get(b"h", b"0")))
        else:
            self._drop(f"entry {entry_id!r} of unknown kind {kind!r}")

    def _hand_over(
        self, addresses: list[str], body: bytes, reply_to: str | None, hops: int
    ) -> None:
        """Queue a message for each local actor (forwarded on if it moved); errors to the asker."""
        registry = self.registry
        assert registry is not None
        try:
            message = self.types.decode(body)
        except UnknownMessageType as exc:
            for address in addresses:
                self._answer(reply_to, Failure(Refusal(UNKNOWN_MESSAGE, str(exc))), address)
            return
        except Exception as exc:  # a malformed body from a foreign writer
            for address in addresses:
                self._answer(reply_to, Failure(ActorError(f"undecodable message: {exc}")), address)
            return
        self._incoming_hops = hops
        try:
            for address in addresses:
                try:
                    registry.deliver(address, Envelope(message, reply_to))
                except ActorError as exc:  # one gone or full mailbox does not stop the others
                    self._answer(reply_to, Failure(exc), address)
        finally:
            self._incoming_hops = None

    def _answer(self, reply_to: str | None, failure: Failure, address: str) -> None:
        if reply_to is not None and self.registry is not None:
            self.registry.reply(reply_to, failure)
        else:
            self._drop(f"tell to {address}: {failure.error}")

    def _remember(self, entry_id: bytes) -> None:
        self._seen.add(entry_id)
        self._seen_order.append(entry_id)
        if len(self._seen_order) > SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())
