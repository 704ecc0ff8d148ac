"""The websocket endpoint as a raw ASGI application, mounted at ``/ws`` beside the Quart pages.

Raw ASGI rather than a Quart route: the gateway is the hot path, and Quart's websocket wrapper costs a
request context per connection and a layer of queues per message. Hypercorn hands us ``receive`` and
``send``; the rest is :class:`~gateway.connection.ClientSession`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import trio

from gateway import connlimit, counters
from gateway.auth import Authenticator
from gateway.connection import ClientSession, Limits
from runtime.registry import Registry

log = logging.getLogger(__name__)

#: How long a server-initiated close waits for the client's Close frame before letting go.
CLOSE_HANDSHAKE_TIMEOUT = 5.0

#: The web layer's session cookie; the gateway reads it to recognise signed-in staff.
SESSION_COOKIE = "waitroom_session"
#: Its name over HTTPS (``web.security.SECURE_SESSION_COOKIE``); preferred when both are sent.
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def session_cookie_of(scope: Scope) -> str | None:
    """The staff session cookie, but only for same-origin upgrades.

    Browsers send cookies with cross-site websocket upgrades too; without this check any web page a
    provider visits could open a socket with the provider's session (cross-site websocket hijacking).
    """
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if origin is not None and (host is None or urlsplit(origin).netloc != host):
        log.warning("ignoring session cookie on a cross-origin websocket from %s", origin)
        counters.refused(counters.CROSS_ORIGIN_COOKIE)
        return None
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(SECURE_SESSION_COOKIE) or cookie.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


#: Connections catching up at once after another node died (`GatewayEndpoint.after_node_lost`).
REJOIN_AT_ONCE = 64


class GatewayEndpoint:
    """ASGI app for websocket scopes; one :class:`ClientSession` per connection."""

    def __init__(
        self,
        registry: Registry,
        limits: Limits | None = None,
        per_address: connlimit.PerAddressLimit | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits or Limits()
        #: Open websockets per client address (gateway.connlimit; issue 15).
        self.per_address = per_address or connlimit.PerAddressLimit()
        self.authenticator = Authenticator(registry)
        self.open_connections = 0
        self.total_connections = 0
        #: Every open connection, for `after_node_lost`.
        self.sessions: set[ClientSession] = set()

    async def after_node_lost(self) -> None:
        """Another node of the cluster died: every connection here watches its areas and enters
        its rooms again (`ClientSession.rejoin`; each bounded), ``REJOIN_AT_ONCE`` connections
        at a time, so a node with thousands of waiting callers does not ask them all at once."""
        limiter = trio.CapacityLimiter(REJOIN_AT_ONCE)

        async def rejoin(session: ClientSession) -> None:
            async with limiter:
                await session.rejoin()

        async with trio.open_nursery() as nursery:
            for session in list(self.sessions):
                nursery.start_soon(rejoin, session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("the gateway only serves websocket scopes")
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client") or ("", 0)
        disconnected = False

        async def frames() -> bytes | str | None:
            nonlocal disconnected
            event = await receive()
            if event["type"] == "websocket.receive":
                data = event.get("bytes")
                return data if data is not None else str(event.get("text", ""))
            disconnected = True
            return None

        async def write(frame: bytes) -> None:
            if not disconnected:
                await send({"type": "websocket.send", "bytes": frame})

        session = ClientSession(
            self.registry,
            self.authenticator,
            write,
            session_cookie_of(scope),
            str(client[0]),
            self.limits,
        )
        if not self.per_address.acquire(str(client[0])):  # before any hello work (issue 15)
            await connlimit.refuse(send, receive)
            return
        self.open_connections += 1
        self.total_connections += 1
        self.sessions.add(session)
        try:
            await session.run(frames)
        finally:
            self.sessions.discard(session)
            self.open_connections -= 1
            self.per_address.release(str(client[0]))
        if not disconnected:
            await send(
                {
                    "type": "websocket.close",
                    "code": session.close_code or 1000,
                    "reason": session.close_reason[:120],
                }
            )
            # Wait for the client's closing handshake before returning: if the app returns while
            # Hypercorn is still answering the client's Close frame, its connection teardown races
            # that send on the same socket (BusyResourceError), which ends the whole server.
            with trio.move_on_after(CLOSE_HANDSHAKE_TIMEOUT):
                while (await receive())["type"] != "websocket.disconnect":
                    pass
