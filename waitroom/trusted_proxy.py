"""Behind a reverse proxy: the client's address and scheme from ``X-Forwarded-*``, from it only.

Behind nginx every request reaches Waitroom from the proxy's address (often 127.0.0.1): the
sign-in throttle would exempt everyone as loopback, every audit row would name the proxy, and
``/metrics`` (loopback only) would be public. With ``--trusted-proxy`` set, a request whose direct
peer is one of those addresses has its client address taken from ``X-Forwarded-For`` (the
right-most entry that is not itself a trusted proxy, so a client cannot forge its way past a
proxy that appends) and its scheme from ``X-Forwarded-Proto``. From any other peer both headers
are ignored: a client that reaches the server directly cannot claim another address.

One ASGI middleware in front of the router, so pages, the websocket gateway and ``/metrics`` all
see the same client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

#: Longest ``X-Forwarded-For`` considered; a longer one is ignored (the proxy's own address stays).
MAX_FORWARDED_FOR = 2048
SCHEMES = {"http": "http", "https": "https", "ws": "ws", "wss": "wss"}


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``127.0.0.1``, ``10.0.0.0/8``, ``::1`` ... as networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {text!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxy:
    """Rewrites ``scope["client"]`` and ``scope["scheme"]`` for requests from a trusted proxy."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    def is_trusted(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in net for net in self.trusted)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.trusted and scope.get("type") in ("http", "websocket"):
            client = scope.get("client") or ("", 0)
            if self.is_trusted(str(client[0])):
                scope = dict(scope)
                self._rewrite(scope, client)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: dict[str, Any], client: tuple[str, int]) -> None:
        forwarded_for: list[str] = []
        proto = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for" and len(value) <= MAX_FORWARDED_FOR:
                forwarded_for.extend(value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").strip().lower()
        for hop in reversed(forwarded_for):
            address = _address(hop)
            if address is None:
                break  # garbage in the chain: trust nothing left of it
            scope["client"] = (str(address), 0)
            if not any(address in net for net in self.trusted):
                break
        if proto in SCHEMES:
            if scope["type"] == "websocket":
                proto = {"http": "ws", "https": "wss"}.get(proto, proto)
            scope["scheme"] = SCHEMES[proto]
