"""ICE-lite STUN binding responder, sans-IO (RFC 8445 section 2.5, RFC 8489).

Parsing is `aioice.stun`'s; this module decides what to answer. A lite agent never sends checks:
it answers authenticated binding requests, and the address of each authenticated request becomes
an address the peer may send media from.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from aioice import stun

# RFC 8489 section 14.8 error codes.
ERROR_BAD_REQUEST = 400
ERROR_UNAUTHORIZED = 401
SOFTWARE = "waitroom-sfu"


class Verdict(Enum):
    """What became of one STUN datagram."""

    ACCEPTED = "accepted"  # authenticated binding request, answered with success
    BAD_REQUEST = "bad_request"  # answered 400 (USERNAME or MESSAGE-INTEGRITY missing)
    UNAUTHORIZED = "unauthorized"  # answered 401 (unknown username or wrong integrity)
    MALFORMED = "malformed"  # unparseable or bad FINGERPRINT: dropped without an answer
    IGNORED = "ignored"  # indications and responses: a lite agent has nothing to say


@dataclass(frozen=True, slots=True)
class StunOutcome:
    verdict: Verdict
    response: bytes | None = None
    local_ufrag: str | None = None
    remote_ufrag: str | None = None
    nominated: bool = False


def handle_datagram(
    data: bytes, source: tuple[str, int], password_of: Callable[[str], str | None]
) -> StunOutcome:
    """Answer one STUN datagram received from `source`.

    `password_of(local_ufrag)` returns the local ICE password of the transport that owns that
    username fragment, or None if no transport does.
    """
    try:
        message = stun.parse_message(data)
    except (ValueError, struct.error, IndexError, KeyError):
        return StunOutcome(Verdict.MALFORMED)
    if message.message_method != stun.Method.BINDING or message.message_class != stun.Class.REQUEST:
        return StunOutcome(Verdict.IGNORED)

    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or "MESSAGE-INTEGRITY" not in message.attributes:
        return StunOutcome(Verdict.BAD_REQUEST, _error(message, ERROR_BAD_REQUEST, "Bad Request"))
    local_ufrag, _, remote_ufrag = username.partition(":")
    password = password_of(local_ufrag)
    if password is None or not message.check_message_integrity(password.encode()):
        return StunOutcome(
            Verdict.UNAUTHORIZED, _error(message, ERROR_UNAUTHORIZED, "Unauthorized")
        )

    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=message.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = source
    response.add_message_integrity(password.encode())
    return StunOutcome(
        Verdict.ACCEPTED,
        bytes(response),
        local_ufrag=local_ufrag,
        remote_ufrag=remote_ufrag,
        nominated="USE-CANDIDATE" in message.attributes,
    )


def _error(request: stun.Message, code: int, reason: str) -> bytes:
    """An error response; without a known password it carries FINGERPRINT only."""
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=request.transaction_id,
    )
    response.attributes["ERROR-CODE"] = (code, reason)
    response.attributes["SOFTWARE"] = SOFTWARE
    response.add_fingerprint()
    return bytes(response)
