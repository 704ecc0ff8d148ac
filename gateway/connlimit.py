"""Open websocket connections per client address, bounded (issue 15).

Without a bound one machine could open sockets until the server's memory or file descriptors ran
out, each costing a connection actor and a slot in every watcher list, long before any message
rate limit applies (those count messages, not sockets). A clinic behind one NAT address has many
honest tabs at once (reception screens, providers' dashboards and calls, patients on the guest
Wi-Fi), so the default is generous: :data:`DEFAULT_PER_ADDRESS`.

The address is the one the ASGI scope names, which :mod:`waitroom.trusted_proxy` has already set
to the real client behind a trusted proxy. Loopback (and an unknown address) is never counted, as
for the sign-in throttle (:data:`services.throttle.NEVER_COUNTED`): behind a proxy that is not
trusted every client looks like 127.0.0.1, and one limit for all of them would lock the clinic
out; load tests run from loopback too.

A connection over the limit is accepted only to be closed at once with :data:`CLOSE_TOO_MANY`
and a reason a person can read, before ``hello``: no session is looked up, no token redeemed, no
actor started. Browsers reconnect with backoff (``web/static/js/wire.js``), so a tab gets in once
another from its address closes. Memory is one counter per address with an open connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from gateway import counters
from services.throttle import NEVER_COUNTED

log = logging.getLogger(__name__)

#: Open websockets one client address may hold: a large clinic's waiting room behind one NAT.
DEFAULT_PER_ADDRESS = 200
#: Websocket close code (docs/protocol.md): too many open connections from this address; try
#: again later (after another closes). 4000 + HTTP's 429.
CLOSE_TOO_MANY = 4029
CLOSE_REASON = "too many connections from this address"
#: How long the refusal waits for the client's Close frame before letting go.
CLOSE_HANDSHAKE_TIMEOUT = 5.0

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class PerAddressLimit:
    """Counts open connections per address; :meth:`acquire` says whether one more may open."""

    def __init__(self, maximum: int = DEFAULT_PER_ADDRESS) -> None:
        if maximum < 1:
            raise ValueError(f"the per-address connection limit must be 1 or more, not {maximum}")
        self.maximum = maximum
        self._open: dict[str, int] = {}
        #: Addresses refused since they were last below the limit: one log line each, not one
        #: per reconnect attempt.
        self._warned: set[str] = set()
        #: Connections refused since start (for logs and tests).
        self.refused = 0

    def counted(self, address: str) -> bool:
        return address not in NEVER_COUNTED

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False (nothing counted) if over the limit.
        Every True must be matched by one :meth:`release`."""
        if not self.counted(address):
            return True
        held = self._open.get(address, 0)
        if held >= self.maximum:
            if address not in self._warned:
                self._warned.add(address)
                log.warning("websockets from %s refused: %d open from that address", address, held)
            self.refused += 1
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        if not self.counted(address):
            return
        held = self._open.get(address, 0)
        self._warned.discard(address)
        if held <= 1:
            self._open.pop(address, None)
        else:
            self._open[address] = held - 1

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)


async def refuse(send: Send, receive: Receive) -> None:
    """Close an accepted websocket with :data:`CLOSE_TOO_MANY`, then wait (bounded) for the
    client's Close: returning while Hypercorn still answers it races that send on the socket.
    Each refusal is counted for /metrics (``waitroom_ws_refusals_total{reason="per_address_limit"}``),
    the log line being only the first of each address."""
    counters.refused(counters.PER_ADDRESS_LIMIT)
    await send({"type": "websocket.close", "code": CLOSE_TOO_MANY, "reason": CLOSE_REASON})
    with trio.move_on_after(CLOSE_HANDSHAKE_TIMEOUT):
        while (await receive())["type"] != "websocket.disconnect":
            pass
