"""A call's own id, and how messages addressed by it (``call/<id>``) reach the call's actor.

A call is not the room, area or meeting that opened it: the media plane knows it by its call id,
and so do its events. The id is derived from the address of what opened the call, so a restarted
actor, the media plane and the server agree on it without a storage read, and it says nothing
about the room (a room id is half of a caller's link; the call id is sent to media workers).

The actor itself runs at the address the wire uses (clients send ``to: room/<id>``), and answers
at ``call/<id>`` too, through an alias in the registry that forwards to it. The registry has no
alias yet; :class:`_Alias` is a stand-in registered in its place: a mailbox that holds nothing and
hands every envelope to the target's mailbox, resolved at send time like any other name.
"""

from __future__ import annotations

import hashlib
import weakref

from actors import addresses
from runtime.address import Address
from runtime.errors import ActorNotFound
from runtime.kernel import Envelope, Mailbox
from runtime.registry import Registry

#: 96 bits, as every other random id in Waitroom: no two calls collide.
CALL_ID_BYTES = 12
#: Keeps call ids apart from any other hash of an address Waitroom may take one day.
_PERSONALISATION = b"waitroom.call"


def call_id_for(opener: Address) -> str:
    """The id of the call opened by ``opener`` (``room/<id>`` for a caller's room): stable."""
    digest = hashlib.blake2b(
        opener.encode(), digest_size=CALL_ID_BYTES, person=_PERSONALISATION
    ).hexdigest()
    return digest


class _Alias(Mailbox):
    """Registered at ``call/<id>``: every envelope goes on to the call's own address."""

    __slots__ = ("_registry", "target")

    def __init__(self, registry: Registry, address: str, target: str) -> None:
        super().__init__(address, 0)
        self._registry = registry
        self.target = target

    def put(self, envelope: Envelope) -> None:
        try:
            self._registry.deliver(self.target, envelope)
        except ActorNotFound:
            # The call is gone (its actor stopped without removing us): nothing to forward to.
            unalias(self._registry, self.address)
            raise ActorNotFound(self.address) from None

    def depth(self) -> int:
        return 0


#: The aliases each registry holds, so the actor that made one (or its restarted successor) can
#: remove it. Weak: a registry that is dropped (a test's) takes its aliases with it.
_ALIASES: weakref.WeakKeyDictionary[Registry, dict[str, _Alias]] = weakref.WeakKeyDictionary()


def alias(registry: Registry, call_id: str, target: str) -> Address:
    """Make ``call/<call_id>`` reach ``target``; idempotent (a restarted call keeps its alias)."""
    address = addresses.call(call_id)
    held = _ALIASES.setdefault(registry, {})
    current = held.get(address)
    if current is None or current.target != target:
        if current is not None:
            registry.unregister(current)
        current = held[address] = _Alias(registry, address, target)
        registry.register(current)
    return address


def unalias(registry: Registry, address: str) -> None:
    """Remove an alias made by :func:`alias`; idempotent."""
    current = _ALIASES.get(registry, {}).pop(address, None)
    if current is not None:
        registry.unregister(current)
