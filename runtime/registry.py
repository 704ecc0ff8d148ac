"""Name resolution for actors.

Addresses are plain strings with a kind prefix: ``area/<id>``, ``room/<id>``, ``call/<id>``,
``conn/<id>``. Every send goes through :meth:`Registry.deliver`, which resolves the name at that moment.
Today every name resolves to a local mailbox; when rooms are placed across nodes (through Redis or
Valkey), a :class:`RemoteTransport` is consulted for names that are not local, and senders do not
change.

An ask's reply goes to an address too: ``reply/<n>`` (``reply/<node>/<n>`` on a named node), a
one-shot slot the registry holds only while the asker waits. The handler's outcome is delivered with
:meth:`Registry.reply`, locally or through the transport; a reply nobody waits for any more (the
asker timed out or was cancelled) is dropped. Slots are a plain dict, not mailboxes: every ask opens
and closes one, so they must stay cheap.

Some actors run once per node under a fixed name (``notices``, ``meetings``). On a named node the
registry also knows the other live nodes (``peers()``, supplied by the cluster; none on one
node) and answers ``node/<this node>/<name>`` with its local ``name``, so one node's copy can
tell the same actor on every other node (``runtime.address.on_node``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from runtime.address import NODE_KIND, SEPARATOR
from runtime.errors import ActorNotFound
from runtime.kernel import ActorRef, Envelope, Mailbox, Reply

#: The address kind of reply slots.
REPLY_KIND = "reply"


class RemoteTransport(Protocol):
    """What a cross-node transport must offer the registry (not implemented on a single node).

    ``owns`` answers for actor addresses and for reply addresses of other nodes alike. An envelope
    carries its reply address as a string, so ``deliver`` can send it as it is; the node that
    handles it answers with ``reply``, which this transport carries back to the asker's node,
    where it is handed to that node's ``Registry.reply``. Outcomes are the reply value or a
    :class:`~runtime.kernel.Failure` holding a runtime error, to be serialised by the transport.
    """

    def owns(self, address: str) -> bool: ...

    def deliver(self, address: str, envelope: Envelope) -> None: ...

    def reply(self, address: str, outcome: object) -> None: ...


class Registry:
    """Maps actor addresses to mailboxes; the single place where a name becomes a destination.

    ``node`` names this node in its reply addresses, so that a transport can route a reply home;
    ``peers`` gives the ids of the other live nodes as last seen (the cluster's membership).
    """

    def __init__(
        self,
        remote: RemoteTransport | None = None,
        node: str = "",
        peers: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.node = node
        self._peers = peers
        #: ``node/<this node>/``: a per-node name addressed to this node (see ``on_node``).
        self._here = NODE_KIND + SEPARATOR + node + SEPARATOR if node else None
        self._local: dict[str, Mailbox] = {}
        #: Second names: ``call/<id>`` -> the address of the actor that runs the call.
        self._aliases: dict[str, str] = {}
        self._remote = remote
        self._replies: dict[str, Reply] = {}
        self._reply_prefix = REPLY_KIND + SEPARATOR + (node + SEPARATOR if node else "")
        self._reply_serial = 0
        #: Registered actors and messages queued for them, per address kind: kept on every
        #: register, put and take, so a metrics scrape costs the same at 10 actors and 10,000.
        self._kinds: Counter[str] = Counter()
        self._queued: dict[str, int] = {}

    def register(self, mailbox: Mailbox) -> None:
        current = self._local.get(mailbox.address)
        if current is not None and current is not mailbox and not current.closed:
            raise ValueError(f"address {mailbox.address} is already registered")
        if current is not None:
            self._forget(current)
        self._local[mailbox.address] = mailbox
        self._kinds[mailbox.kind] += 1
        mailbox.registry = self
        if mailbox.tally is not self._queued:
            mailbox.tally = self._queued
            self._queued[mailbox.kind] = self._queued.get(mailbox.kind, 0) + mailbox.depth()

    def unregister(self, mailbox: Mailbox) -> None:
        if self._local.get(mailbox.address) is mailbox:
            del self._local[mailbox.address]
            self._forget(mailbox)

    def _forget(self, mailbox: Mailbox) -> None:
        """Stop counting ``mailbox``: what it still holds leaves the tally with it."""
        self._kinds[mailbox.kind] -= 1
        if not self._kinds[mailbox.kind]:
            del self._kinds[mailbox.kind]
        if mailbox.tally is self._queued:
            self._queued[mailbox.kind] -= mailbox.depth()
            mailbox.tally = None

    def deliver(self, address: str, envelope: Envelope) -> None:
        mailbox = self._local.get(address)
        if mailbox is not None:
            mailbox.put(envelope)
        elif (target := self._aliases.get(address)) is not None:
            # Looked up only when the name is no actor's own: the hot path pays nothing for it.
            try:
                self.deliver(target, envelope)
            except ActorNotFound:
                self._aliases.pop(address, None)  # its actor is gone
                raise ActorNotFound(address) from None
        elif self._here is not None and address.startswith(self._here):
            # Another node's desk told this node's copy of a per-node actor.
            name = address[len(self._here) :]
            if not name or name not in self._local:
                raise ActorNotFound(address)
            self._local[name].put(envelope)
        elif self._remote is not None and self._remote.owns(address):
            # Not hosted here under any name: the transport finds the node that hosts it.
            self._remote.deliver(address, envelope)
        else:
            raise ActorNotFound(address)

    # -- aliases ----------------------------------------------------------------------------------
    def alias(self, name: str, target: str) -> None:
        """Let ``name`` reach the actor at ``target`` too (resolved at send time, like any name).

        An actor answers at more than one name this way: a call runs at its room's address for
        the wire and is known by its own id to the media plane. Re-aliasing moves the name.
        """
        if name in self._local:
            raise ValueError(f"{name} is an actor's own address")
        self._aliases[name] = target

    def unalias(self, name: str, target: str | None = None) -> None:
        """Forget ``name`` (only if it still points at ``target``, when given); idempotent."""
        if target is None or self._aliases.get(name) == target:
            self._aliases.pop(name, None)

    def aliases(self) -> dict[str, str]:
        """Every alias and its target, for tests and introspection."""
        return dict(self._aliases)

    # -- replies ----------------------------------------------------------------------------------
    def open_reply(self) -> tuple[str, Reply]:
        """A new reply address and its slot; the asker closes it when it stops waiting."""
        self._reply_serial += 1
        address = self._reply_prefix + str(self._reply_serial)
        slot = self._replies[address] = Reply()
        return address, slot

    def close_reply(self, address: str) -> None:
        """Forget a reply address: a reply that still comes is dropped."""
        self._replies.pop(address, None)

    def reply(self, address: str, outcome: object) -> None:
        """Deliver an ask's outcome (a value, or a ``Failure``); dropped if nobody waits any more."""
        slot = self._replies.pop(address, None)
        if slot is not None:
            slot.resolve(outcome)
        elif self._remote is not None and self._remote.owns(address):
            self._remote.reply(address, outcome)

    def waiting_replies(self) -> int:
        """Reply slots open now (asks waiting for an answer), for tests and metrics."""
        return len(self._replies)

    def peers(self) -> tuple[str, ...]:
        """The other live nodes as last seen (sorted); empty on one node."""
        if self._peers is None:
            return ()
        return tuple(sorted(n for n in self._peers() if n != self.node))

    def ref(self, address: str) -> ActorRef:
        return ActorRef(self, address)

    def __contains__(self, address: str) -> bool:
        return address in self._local

    def addresses(self, prefix: str = "") -> Iterator[str]:
        return (a for a in list(self._local) if a.startswith(prefix))

    def count_by_kind(self) -> Counter[str]:
        """Actors per address prefix (``area``, ``room`` ...), for metrics; O(kinds)."""
        return Counter(self._kinds)

    def mailbox_depths(self) -> dict[str, int]:
        """Total queued messages per kind, for metrics; O(kinds), never walks the mailboxes."""
        return {kind: self._queued.get(kind, 0) for kind in self._kinds}
