"""Messages between the gateway's connection actors and the actors they talk to.

``Inbound`` carries a validated client request to its target actor, with who sent it and which
connection to push events to. ``Push`` and ``CloseConnection`` go the other way: any actor that holds
a connection's address (a subscriber) tells it events to forward to the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.principal import Principal


@dataclass(frozen=True, slots=True)
class Inbound:
    type: str
    body: dict[str, Any] = field(repr=False)
    principal: Principal
    conn: str  # the sending connection actor's address, e.g. "conn/17"
    remote_addr: str = ""
    #: A ``room.enter`` the gateway sends on the page's behalf after the room answered
    #: ``not_in_room`` (it restarted, here or on another node): a room takes it only from a
    #: connection it never had, so a person removed from the call is not let back in by it.
    again: bool = False


@dataclass(frozen=True, slots=True)
class Push:
    """An event for the client behind a connection actor."""

    type: str
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close a client's websocket with a reason (its room ended, its session was revoked)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Told by a connection, as it closes, to every actor it addressed (subscriptions end)."""

    conn: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class RedeemToken:
    """Asked of ``room/<id>`` by the gateway at hello: the secret part of a participant token.

    Replies with the participant's :class:`~actors.principal.Principal` or refuses ``invalid_token``.
    """

    secret: str = field(repr=False)
    remote_addr: str = ""
