"""TURN servers for browsers, with short-lived credentials (the TURN REST API scheme).

coturn's ``use-auth-secret`` (and most TURN servers') checks a username of the form
``<expiry unix time>:<user id>`` and the password ``base64(HMAC-SHA1(secret, username))``, so the
server never stores per-user TURN accounts and a leaked credential expires by itself
(draft-uberti-behave-turn-rest-00). The user id here is random per page, never a name or a visit
token: the TURN server's logs learn nothing about who called. Standard library only.

URLs are checked once at start-up (`parse_url`): ``turn:`` (UDP, or ``?transport=tcp``) and
``turns:`` (TLS) need the secret; ``stun:`` URLs are passed on without credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

#: Credentials outlive any call: a page asks once, at load, and a TURN allocation is refreshed
#: with the same username for as long as the call lasts.
DEFAULT_TTL = 24 * 3600
MIN_TTL = 60
MAX_TTL = 7 * 24 * 3600
#: Random bytes of the user id part of a username.
USER_ID_BYTES = 8
SCHEMES = ("turn", "turns", "stun")
TRANSPORTS = ("udp", "tcp")
_URL_RE = re.compile(
    r"^(?P<scheme>turns?|stun):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[a-z]+))?"
)


class TurnConfigError(ValueError):
    """A TURN setting that cannot work; the message says which and why."""


def parse_url(url: str) -> str:
    """Check one ICE server URL (RFC 7064/7065); returns it unchanged or raises TurnConfigError."""
    found = _URL_RE.fullmatch(url)
    if found is None:
        raise TurnConfigError(
            f"{url!r} is not a turn:, turns: or stun: URL (e.g. turn:turn.example.org:3478)"
        )
    port = found["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise TurnConfigError(f"{url!r}: port out of range")
    transport = found["transport"]
    if transport is not None and (found["scheme"] == "stun" or transport not in TRANSPORTS):
        raise TurnConfigError(f"{url!r}: transport must be udp or tcp, on turn: or turns: only")
    return url


@dataclass(frozen=True)
class TurnConfig:
    """The TURN servers handed to browsers; empty `urls` hands none."""

    urls: tuple[str, ...] = ()
    #: Shared with the TURN server (coturn ``static-auth-secret``); from the environment only.
    secret: str = ""
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        for url in self.urls:
            parse_url(url)
        if any(not u.startswith("stun:") for u in self.urls) and not self.secret:
            raise TurnConfigError("a turn: or turns: URL needs the shared secret")
        if not MIN_TTL <= self.ttl <= MAX_TTL:
            raise TurnConfigError(f"credential lifetime must be {MIN_TTL}..{MAX_TTL} s")


def credentials(secret: str, user_id: str, expires: int) -> tuple[str, str]:
    """(username, password) valid until the unix time `expires`."""
    username = f"{expires}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    config: TurnConfig, *, now: float | None = None, user_id: str | None = None
) -> list[dict[str, object]]:
    """What `RTCPeerConnection({iceServers})` takes: fresh TURN credentials, STUN without."""
    stun = [u for u in config.urls if u.startswith("stun:")]
    turn = [u for u in config.urls if not u.startswith("stun:")]
    out: list[dict[str, object]] = []
    if stun:
        out.append({"urls": stun})
    if turn:
        expires = int(time.time() if now is None else now) + config.ttl
        user = user_id or secrets.token_hex(USER_ID_BYTES)
        username, password = credentials(config.secret, user, expires)
        out.append({"urls": turn, "username": username, "credential": password})
    return out
