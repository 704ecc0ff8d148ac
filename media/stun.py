"""ICE-lite STUN binding responder, sans-IO (RFC 8445 section 2.5, RFC 8489).

The few attributes ICE needs are parsed and written here (standard library only), so a media
worker does not load aioice and its asyncio machinery. A lite agent never sends checks: it answers
authenticated binding requests, and the address of each authenticated request becomes an address
the peer may send media from.

Facing the internet, the responder is built not to be a cheap target: the cheap checks (length,
magic cookie, class and method, a known username prefix) come before the CRC and the HMAC; a
request without credentials is never answered (a 20-byte request from a forged source must not
buy a reply); error replies are as small as they can be, carry no SOFTWARE, and are sent at a
bounded rate per source address and in all (`ReplyLimiter`).
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

# Error replies to failed checks (ReplyLimiter). A browser whose check fails retries a handful of
# times, so a small burst per source keeps it informed; a flood gets the refill rate at most.
REPLY_BURST = 4
REPLY_RATE = 2.0  # tokens per second per source
# Forged sources each bring a fresh bucket: this bounds the replies to all of them together.
REPLY_GLOBAL_BURST = 64
REPLY_GLOBAL_RATE = 200.0
# Sources remembered; the least recently seen is forgotten first (a forgotten source starts full,
# which the global bucket bounds).
REPLY_TABLE_SIZE = 4096

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
_MAGIC_COOKIE_BYTES = _U32.pack(MAGIC_COOKIE)
# Header, ERROR-CODE without a reason phrase, FINGERPRINT: every error reply has this length.
ERROR_LENGTH = HEADER_LENGTH + 2 * ATTR_HEADER_LENGTH + 4 + 4


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
    return hmac.digest(key, covered, "sha1")


def _fingerprint(data: bytes | bytearray) -> int:
    """CRC-32 over the message with its length covering FINGERPRINT, XOR 0x5354554E (14.7)."""
    covered = _with_length(data, len(data) - HEADER_LENGTH + ATTR_HEADER_LENGTH + 4)
    return binascii.crc32(covered) ^ FINGERPRINT_XOR


class Verdict(Enum):
    """What became of one STUN datagram."""

    ACCEPTED = "accepted"  # authenticated binding request, answered with success
    BAD_REQUEST = "bad_request"  # 400 (USERNAME present, MESSAGE-INTEGRITY missing)
    UNAUTHORIZED = "unauthorized"  # 401 (unknown username or wrong integrity)
    NO_CREDENTIALS = "no_credentials"  # no USERNAME, or a 400 larger than the request: no answer
    MALFORMED = "malformed"  # unparseable, bad cookie or FINGERPRINT: dropped without an answer
    UNSOLICITED = "unsolicited"  # a response or error response: a lite agent sends no requests
    INDICATION = "indication"  # nothing to answer
    UNSUPPORTED_METHOD = "method"  # a known method other than binding (TURN's, ...)


@dataclass(frozen=True, slots=True)
class StunOutcome:
    verdict: Verdict
    response: bytes | None = None
    local_ufrag: str | None = None
    remote_ufrag: str | None = None
    nominated: bool = False
    limited: bool = False  # a failed check left unanswered by the ReplyLimiter


class ReplyLimiter:
    """Token buckets for error replies: one small bucket per source address and one for all.

    The table of sources is bounded (`table_size`); the least recently seen source is forgotten.
    Time is passed in (`now`, seconds), so the limiter is sans-IO and testable on any clock.
    """

    def __init__(
        self,
        burst: int = REPLY_BURST,
        rate: float = REPLY_RATE,
        global_burst: float = REPLY_GLOBAL_BURST,
        global_rate: float = REPLY_GLOBAL_RATE,
        table_size: int = REPLY_TABLE_SIZE,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.global_burst = global_burst
        self.global_rate = global_rate
        self.table_size = table_size
        # source -> [tokens, time of the last refill]; dict order is least recently seen first.
        self._buckets: dict[tuple[str, int], list[float]] = {}
        self._global = [float(global_burst), 0.0]

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, source: object) -> bool:
        return source in self._buckets

    def allow(self, source: tuple[str, int], now: float) -> bool:
        """Take a token from `source`'s bucket and the global one; False if either is empty."""
        buckets = self._buckets
        bucket = buckets.pop(source, None)
        if bucket is None:
            if len(buckets) >= self.table_size:
                del buckets[next(iter(buckets))]
            bucket = [float(self.burst), now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        buckets[source] = bucket  # re-inserted: now the most recently seen
        shared = self._global
        shared[0] = min(self.global_burst, shared[0] + (now - shared[1]) * self.global_rate)
        shared[1] = now
        if bucket[0] < 1.0 or shared[0] < 1.0:
            return False
        bucket[0] -= 1.0
        shared[0] -= 1.0
        return True


def _credentials(data: bytes) -> tuple[bytes | None, int]:
    """USERNAME (the first, before MESSAGE-INTEGRITY) and the offset of MESSAGE-INTEGRITY (-1).

    Walks the attribute headers only: no CRC, no HMAC, no dict.
    """
    username: bytes | None = None
    pos = HEADER_LENGTH
    end = len(data)
    while pos <= end - ATTR_HEADER_LENGTH:
        attr_type, attr_len = _ATTR.unpack_from(data, pos)
        if attr_type == ATTR_MESSAGE_INTEGRITY:
            return username, pos  # what follows is not authenticated
        if attr_type == ATTR_USERNAME and username is None:
            username = data[pos + ATTR_HEADER_LENGTH : pos + ATTR_HEADER_LENGTH + attr_len]
        pos += ATTR_HEADER_LENGTH + attr_len + _padding(attr_len)
    return username, -1


def handle_datagram(
    data: bytes,
    source: tuple[str, int],
    password_of: Callable[[str], str | None],
    *,
    limiter: ReplyLimiter | None = None,
    now: float = 0.0,
) -> StunOutcome:
    """Answer one STUN datagram received from `source`.

    `password_of(local_ufrag)` returns the local ICE password of the transport that owns that
    username fragment, or None if no transport does. Error replies are sent only while
    `limiter` (if given) allows one to `source` at `now`, and only if no larger than `data`.
    """
    # Cheap checks first: a flood of junk costs a few comparisons, not a CRC and an HMAC.
    length = len(data)
    if (
        length < HEADER_LENGTH
        or length != HEADER_LENGTH + ((data[2] << 8) | data[3])
        or length % 4
        or data[4:8] != _MAGIC_COOKIE_BYTES
    ):
        return StunOutcome(Verdict.MALFORMED)
    message_type = (data[0] << 8) | data[1]
    method = message_type & METHOD_MASK
    if method not in KNOWN_METHODS:
        return StunOutcome(Verdict.MALFORMED)
    klass = message_type & CLASS_MASK
    if klass == CLASS_INDICATION:
        return StunOutcome(Verdict.INDICATION)
    if klass != CLASS_REQUEST:
        return StunOutcome(Verdict.UNSOLICITED)
    if method != METHOD_BINDING:
        return StunOutcome(Verdict.UNSUPPORTED_METHOD)

    raw_username, integrity_at = _credentials(data)
    if raw_username is None:
        return StunOutcome(Verdict.NO_CREDENTIALS)  # never answered: a reflector's food
    if integrity_at < 0:
        return _refuse(data, source, ERROR_BAD_REQUEST, limiter, now)
    try:
        username = raw_username.decode("utf-8")
    except UnicodeDecodeError:
        return StunOutcome(Verdict.MALFORMED)
    local_ufrag, _, remote_ufrag = username.partition(":")
    password = password_of(local_ufrag)
    if password is None:  # unknown ufrag: refused without the CRC or an HMAC
        return _refuse(data, source, ERROR_UNAUTHORIZED, limiter, now)
    mac_length = _ATTR.unpack_from(data, integrity_at)[1]
    mac_at = integrity_at + ATTR_HEADER_LENGTH
    mac = data[mac_at : mac_at + mac_length]
    if mac_length != INTEGRITY_LENGTH or not hmac.compare_digest(
        mac, _integrity(data[:integrity_at], password.encode())
    ):  # the HMAC before the full parse: a wrong password costs no attribute dict
        return _refuse(data, source, ERROR_UNAUTHORIZED, limiter, now)
    try:
        message = parse(data)  # checks FINGERPRINT, reads USE-CANDIDATE
    except StunError:
        return StunOutcome(Verdict.MALFORMED)

    response = MessageBuilder(METHOD_BINDING, CLASS_RESPONSE, message.transaction_id)
    response.add_xor_address(ATTR_XOR_MAPPED_ADDRESS, source)
    return StunOutcome(
        Verdict.ACCEPTED,
        response.build(password.encode()),
        local_ufrag=local_ufrag,
        remote_ufrag=remote_ufrag,
        nominated=ATTR_USE_CANDIDATE in message.attributes,
    )


def _refuse(
    request: bytes, source: tuple[str, int], code: int, limiter: ReplyLimiter | None, now: float
) -> StunOutcome:
    """A failed check: answered while the limiter allows and the reply is no larger."""
    verdict = Verdict.BAD_REQUEST if code == ERROR_BAD_REQUEST else Verdict.UNAUTHORIZED
    if len(request) < ERROR_LENGTH:
        # Only a 400 can be this short (a 401 needs MESSAGE-INTEGRITY): no amplification.
        return StunOutcome(Verdict.NO_CREDENTIALS)
    if limiter is not None and not limiter.allow(source, now):
        return StunOutcome(verdict, limited=True)
    return StunOutcome(verdict, _error(request[8:HEADER_LENGTH], code))


def _error(transaction_id: bytes, code: int) -> bytes:
    """The smallest error response ICE accepts: ERROR-CODE without a reason phrase, FINGERPRINT.

    No SOFTWARE (it names the product to anyone who probes) and no reason phrase (the code says it).
    """
    response = MessageBuilder(METHOD_BINDING, CLASS_ERROR, transaction_id)
    response.add(ATTR_ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100))
    return response.build()
