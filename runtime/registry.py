"""Name resolution for actors.

Addresses are plain strings with a kind prefix: ``area/<id>``, ``room/<id>``, ``call/<id>``,
``conn/<id>``. Every send goes through :meth:`Registry.deliver`, which resolves the name at that moment.
Today every name resolves to a local mailbox; when rooms are placed across nodes (through Redis or
Valkey), a :class:`RemoteTransport` is consulted for names that are not local, and senders do not
change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from runtime.errors import ActorNotFound
from runtime.kernel import ActorRef, Envelope, Mailbox


class RemoteTransport(Protocol):
    """What a cross-node transport must offer the registry (not implemented on a single node)."""

    def owns(self, address: str) -> bool: ...

    def deliver(self, address: str, envelope: Envelope) -> None: ...


class Registry:
    """Maps actor addresses to mailboxes; the single place where a name becomes a destination."""

    def __init__(self, remote: RemoteTransport | None = None) -> None:
        self._local: dict[str, Mailbox] = {}
        self._remote = remote

    def register(self, mailbox: Mailbox) -> None:
        current = self._local.get(mailbox.address)
        if current is not None and current is not mailbox and not current.closed:
            raise ValueError(f"address {mailbox.address} is already registered")
        self._local[mailbox.address] = mailbox

    def unregister(self, mailbox: Mailbox) -> None:
        if self._local.get(mailbox.address) is mailbox:
            del self._local[mailbox.address]

    def deliver(self, address: str, envelope: Envelope) -> None:
        mailbox = self._local.get(address)
        if mailbox is not None:
            mailbox.put(envelope)
        elif self._remote is not None and self._remote.owns(address):
            self._remote.deliver(address, envelope)
        else:
            raise ActorNotFound(address)

    def ref(self, address: str) -> ActorRef:
        return ActorRef(self, address)

    def __contains__(self, address: str) -> bool:
        return address in self._local

    def addresses(self, prefix: str = "") -> Iterator[str]:
        return (a for a in list(self._local) if a.startswith(prefix))

    def count_by_kind(self) -> Counter[str]:
        """Actors per address prefix (``area``, ``room`` ...), for metrics."""
        return Counter(address.split("/", 1)[0] for address in self._local)

    def mailbox_depths(self) -> dict[str, int]:
        """Total queued messages per kind, for metrics."""
        depths: Counter[str] = Counter()
        for address, mailbox in self._local.items():
            depths[address.split("/", 1)[0]] += mailbox.depth()
        return dict(depths)
