"""RTP header parsing and in-place rewriting, sans-IO.

The forwarder touches only the fixed header (payload type, sequence number, timestamp, SSRC) and,
when two peers negotiated different ids, the one-byte header-extension ids. Nothing here allocates
on the forwarding path except what a caller asks for explicitly. Which datagrams are RTP at all
is `media.demux`'s to say.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_LENGTH = 12
SEQ_MASK = 0xFFFF
TS_MASK = 0xFFFFFFFF
MARKER_BIT = 0x80
PT_MASK = 0x7F
ONE_BYTE_EXTENSION_PROFILE = 0xBEDE
# RFC 8285: id 15 in a one-byte header means "stop parsing", id 0 is padding.
ONE_BYTE_STOP_ID = 15

EXTENSION_BIT = 0x10
CSRC_COUNT_MASK = 0x0F
SEQ_OFFSET = 2
SSRC_OFFSET = 8
#: Byte 1 onwards of the fixed header: marker|payload type, sequence, timestamp, SSRC.
REWRITE_OFFSET = 1

_HEADER = struct.Struct("!BBHII")
#: The structs of the forwarding path, bound once by its callers (`unpack_from`, `pack_into`).
SSRC = struct.Struct("!I")
SEQ_TS = struct.Struct("!HI")
REWRITE = struct.Struct("!BHII")


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fields of an RTP header the forwarder cares about (tests and diagnostics)."""

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    header_length: int
    extensions: dict[int, bytes]


def header_length(data: bytes | bytearray) -> int:
    """Length of the fixed header, CSRCs and extension block, validated against the datagram."""
    n = len(data)
    if n < RTP_HEADER_LENGTH:
        raise RtpError("RTP packet shorter than its fixed header")
    b0 = data[0]
    if b0 >> 6 != RTP_VERSION:
        raise RtpError("RTP version is not 2")
    length = RTP_HEADER_LENGTH + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if n < length + 4:
            raise RtpError("RTP extension header truncated")
        words = (data[length + 2] << 8) | data[length + 3]
        length += 4 + 4 * words
    if length > n:
        raise RtpError("RTP header longer than the packet")
    return length


def parse_header(data: bytes) -> RtpHeader:
    """Parse and validate an RTP header (not used per forwarded packet)."""
    length = header_length(data)
    _b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data, 0)
    extensions: dict[int, bytes] = {}
    if data[0] & 0x10:
        start = RTP_HEADER_LENGTH + 4 * (data[0] & 0x0F)
        profile = (data[start] << 8) | data[start + 1]
        if profile == ONE_BYTE_EXTENSION_PROFILE:
            for ext_id, offset, size in _one_byte_elements(data, start + 4, length):
                extensions[ext_id] = bytes(data[offset : offset + size])
    return RtpHeader(
        marker=bool(b1 & MARKER_BIT),
        payload_type=b1 & PT_MASK,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        header_length=length,
        extensions=extensions,
    )


def _one_byte_elements(data: bytes | bytearray, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(id, data offset, data length) of each one-byte-header element in data[pos:end]."""
    out: list[tuple[int, int, int]] = []
    while pos < end:
        byte = data[pos]
        if byte == 0:
            pos += 1
            continue
        ext_id = byte >> 4
        if ext_id == ONE_BYTE_STOP_ID:
            break
        size = (byte & 0x0F) + 1
        if pos + 1 + size > end:
            raise RtpError("RTP header extension element truncated")
        out.append((ext_id, pos + 1, size))
        pos += 1 + size
    return out


def rewrite_extension_ids(buf: bytearray, id_map: dict[int, int]) -> None:
    """Rewrite one-byte header-extension ids in place; ids mapped to 0 become padding.

    `id_map` maps the publisher's negotiated id to the subscriber's; ids absent from it are blanked
    too, so a subscriber never sees an extension it did not negotiate. Two-byte headers are left
    alone (the answers never allow them).
    """
    b0 = buf[0]
    if not b0 & 0x10:
        return
    start = RTP_HEADER_LENGTH + 4 * (b0 & 0x0F)
    if start + 4 > len(buf) or buf[start] != 0xBE or buf[start + 1] != 0xDE:
        return
    end = start + 4 + 4 * ((buf[start + 2] << 8) | buf[start + 3])
    if end > len(buf):
        raise RtpError("RTP extension block longer than the packet")
    for ext_id, offset, size in _one_byte_elements(buf, start + 4, end):
        new_id = id_map.get(ext_id, 0)
        if new_id:
            buf[offset - 1] = (new_id << 4) | (size - 1)
        else:
            buf[offset - 1 : offset + size] = bytes(size + 1)


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number `a` comes after `b` (RFC 3550 modular comparison)."""
    return a != b and ((a - b) & SEQ_MASK) < 0x8000
