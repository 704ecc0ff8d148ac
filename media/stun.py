"""ICE-lite STUN binding responder, sans-IO (RFC 8445 section 2.5, RFC 8489).

The few attributes ICE needs are parsed and written here (standard library only), so a media
worker does not load aioice and its asyncio machinery. A lite agent never sends checks: it answers
authenticated binding requests, and the address of each authenticated request becomes an address
the peer may send media from.
"""

from __future__ import annotations

import binascii
import hmac
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

# RFC 8489 section 14.8 error codes.
ERROR_BAD_REQUEST = 400
ERROR_UNAUTHORIZED = 401
SOFTWARE = "waitroom-sfu"

HEADER_LENGTH = 20
MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E
INTEGRITY_LENGTH = 20  # HMAC-SHA1
ATTR_HEADER_LENGTH = 4

# Message types (method | class bits, RFC 8489 section 5).
METHOD_MASK = 0x3EEF
CLASS_MASK = 0x0110
METHOD_BINDING = 0x0001
CLASS_REQUEST = 0x0000
CLASS_INDICATION = 0x0010
CLASS_RESPONSE = 0x0100
CLASS_ERROR = 0x0110
# Methods of RFC 8489 and TURN: any other method makes the datagram malformed.
KNOWN_METHODS = frozenset({0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9})

# Attribute types.
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PRIORITY = 0x0024
ATTR_USE_CANDIDATE = 0x0025
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
ATTR_ICE_CONTROLLED = 0x8029
ATTR_ICE_CONTROLLING = 0x802A

FAMILY_IPV4 = 1
FAMILY_IPV6 = 2

_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")
_U32 = struct.Struct("!I")


class StunError(ValueError):
    """A datagram that is not a well-formed STUN message (or whose FINGERPRINT is wrong)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed STUN message: raw attribute values by type (the first of each type counts).

    Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are not authenticated and are left
    out (RFC 8489 section 9). `integrity_data` is the message up to MESSAGE-INTEGRITY.
    """

    method: int
    klass: int
    transaction_id: bytes
    attributes: dict[int, bytes]
    integrity_data: bytes | None = None

    def text(self, attr: int) -> str | None:
        value = self.attributes.get(attr)
        return value.decode("utf-8") if value is not None else None

    def check_integrity(self, key: bytes) -> bool:
        """True if MESSAGE-INTEGRITY is present and keyed with `key` (short-term credentials)."""
        mac = self.attributes.get(ATTR_MESSAGE_INTEGRITY)
        if self.integrity_data is None or mac is None:
            return False
        return hmac.compare_digest(mac, _integrity(self.integrity_data, key))

    @property
    def error_code(self) -> int | None:
        value = self.attributes.get(ATTR_ERROR_CODE)
        if value is None or len(value) < 4:
            return None
        return (value[2] & 0x07) * 100 + value[3]


def parse(data: bytes) -> Message:
    """Parse one STUN message; raise StunError if malformed or its FINGERPRINT is wrong."""
    if len(data) < HEADER_LENGTH:
        raise StunError("STUN message shorter than its header")
    message_type, length, _cookie, transaction_id = _HEADER.unpack_from(data, 0)
    if len(data) != HEADER_LENGTH + length:
        raise StunError("STUN message length does not match the datagram")
    method = message_type & METHOD_MASK
    if method not in KNOWN_METHODS:
        raise StunError(f"unknown STUN method {method:#x}")
    attributes: dict[int, bytes] = {}
    integrity_data: bytes | None = None
    pos = HEADER_LENGTH
    end = len(data)
    while pos <= end - ATTR_HEADER_LENGTH:
        attr_type, attr_len = _ATTR.unpack_from(data, pos)
        value = data[pos + ATTR_HEADER_LENGTH : pos + ATTR_HEADER_LENGTH + attr_len]
        if integrity_data is None or attr_type == ATTR_FINGERPRINT:
            attributes.setdefault(attr_type, value)
            if attr_type == ATTR_FINGERPRINT:
                if len(value) != 4 or _U32.unpack(value)[0] != _fingerprint(data[:pos]):
                    raise StunError("STUN FINGERPRINT does not match")
            elif attr_type == ATTR_MESSAGE_INTEGRITY:
                integrity_data = data[:pos]
        pos += ATTR_HEADER_LENGTH + attr_len + _padding(attr_len)
    return Message(method, message_type & CLASS_MASK, transaction_id, attributes, integrity_data)


class MessageBuilder:
    """Writes one STUN message attribute by attribute; integrity and fingerprint come last."""

    def __init__(self, method: int, klass: int, transaction_id: bytes) -> None:
        self.message_type = method | klass
        self.transaction_id = transaction_id
        self._body = bytearray()

    def add(self, attr: int, value: bytes) -> MessageBuilder:
        self._body += _ATTR.pack(attr, len(value)) + value + bytes(_padding(len(value)))
        return self

    def add_xor_address(self, attr: int, addr: tuple[str, int]) -> MessageBuilder:
        ip = ipaddress.ip_address(addr[0])
        family = FAMILY_IPV4 if ip.version == 4 else FAMILY_IPV6
        pad = _U32.pack(MAGIC_COOKIE) + self.transaction_id
        raw = struct.pack("!H", addr[1]) + ip.packed
        xored = bytes(b ^ p for b, p in zip(raw, pad[:2] + pad, strict=False))
        return self.add(attr, bytes((0, family)) + xored)

    def _header(self, extra: int) -> bytes:
        length = len(self._body) + extra
        return _HEADER.pack(self.message_type, length, MAGIC_COOKIE, self.transaction_id)

    def build(self, integrity_key: bytes | None = None) -> bytes:
        """The message with MESSAGE-INTEGRITY (if keyed) and FINGERPRINT appended."""
        if integrity_key is not None:
            mac = _integrity(self._header(0) + self._body, integrity_key)
            self.add(ATTR_MESSAGE_INTEGRITY, mac)
        head = self._header(ATTR_HEADER_LENGTH + 4)
        crc = _fingerprint(head + self._body)
        return bytes(head + self._body + _ATTR.pack(ATTR_FINGERPRINT, 4) + _U32.pack(crc))


def xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    """Decode an XOR-MAPPED-ADDRESS value."""
    if len(value) not in (8, 20):
        raise StunError("XOR address of the wrong length")
    pad = _U32.pack(MAGIC_COOKIE) + transaction_id
    raw = bytes(b ^ p for b, p in zip(value[2:], pad[:2] + pad, strict=False))
    port = (raw[0] << 8) | raw[1]
    return str(ipaddress.ip_address(raw[2:])), port


def _padding(length: int) -> int:
    return (4 - length % 4) % 4


def _with_length(data: bytes | bytearray, length: int) -> bytes:
    return bytes(data[:2]) + struct.pack("!H", length) + bytes(data[4:])


def _integrity(data: bytes | bytearray, key: bytes) -> bytes:
    """HMAC-SHA1 over the message with its length covering MESSAGE-INTEGRITY (RFC 8489 14.5)."""
    covered = _with_length(data, len(data) - HEADER_LENGTH + ATTR_HEADER_LENGTH + INTEGRITY_LENGTH)
    return hmac.new(key, covered, "sha1").digest()


def _fingerprint(data: bytes | bytearray) -> int:
    """CRC-32 over the message with its length covering FINGERPRINT, XOR 0x5354554E (14.7)."""
    covered = _with_length(data, len(data) - HEADER_LENGTH + ATTR_HEADER_LENGTH + 4)
    return binascii.crc32(covered) ^ FINGERPRINT_XOR


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
        message = parse(data)
        username = message.text(ATTR_USERNAME)
    except (StunError, UnicodeDecodeError):
        return StunOutcome(Verdict.MALFORMED)
    if message.method != METHOD_BINDING or message.klass != CLASS_REQUEST:
        return StunOutcome(Verdict.IGNORED)

    if username is None or ATTR_MESSAGE_INTEGRITY not in message.attributes:
        return StunOutcome(Verdict.BAD_REQUEST, _error(message, ERROR_BAD_REQUEST, "Bad Request"))
    local_ufrag, _, remote_ufrag = username.partition(":")
    password = password_of(local_ufrag)
    if password is None or not message.check_integrity(password.encode()):
        return StunOutcome(
            Verdict.UNAUTHORIZED, _error(message, ERROR_UNAUTHORIZED, "Unauthorized")
        )

    response = MessageBuilder(METHOD_BINDING, CLASS_RESPONSE, message.transaction_id)
    response.add_xor_address(ATTR_XOR_MAPPED_ADDRESS, source)
    return StunOutcome(
        Verdict.ACCEPTED,
        response.build(password.encode()),
        local_ufrag=local_ufrag,
        remote_ufrag=remote_ufrag,
        nominated=ATTR_USE_CANDIDATE in message.attributes,
    )


def _error(request: Message, code: int, reason: str) -> bytes:
    """An error response; without a known password it carries FINGERPRINT only."""
    response = MessageBuilder(METHOD_BINDING, CLASS_ERROR, request.transaction_id)
    response.add(ATTR_ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode())
    response.add(ATTR_SOFTWARE, SOFTWARE.encode())
    return response.build()
