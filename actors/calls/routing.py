"""A call's own id, and how messages addressed by it (``call/<id>``) reach the call's actor.

A call is not the room, area or meeting that opened it: the media plane knows it by its call id,
and so do its events. The id is derived from the address of what opened the call, so a restarted
actor, the media plane and the server agree on it without a storage read, and it says nothing
about the room (a room id is half of a caller's link; the call id is sent to media workers).

The actor itself runs at the address the wire uses (clients send ``to: room/<id>``), and answers
at ``call/<id>`` too, through an alias in the registry (resolved at send time like any name, and
forgotten when the actor it points at is gone).
"""

from __future__ import annotations

import hashlib

from actors import addresses
from runtime.address import Address
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


def alias(registry: Registry, call_id: str, target: str) -> Address:
    """Make ``call/<call_id>`` reach ``target``; idempotent (a restarted call keeps its alias)."""
    address = addresses.call(call_id)
    registry.alias(address, target)
    return address


def unalias(registry: Registry, address: str, target: str | None = None) -> None:
    """Remove an alias made by :func:`alias` (if it still points at ``target``); idempotent."""
    registry.unalias(address, target)
