"""RTP header extensions (RFC 8285), one-byte and two-byte forms, sans-IO.

The simulcast binding reads `sdes:mid`, `rtp-stream-id` and `repaired-rtp-stream-id` from the
first packets of a stream whose SSRC was never signalled; the transport-cc recorder reads the
transport-wide sequence number of every packet of a producer that negotiated it. Both run on
packets a peer sent us, so everything here treats the bytes as hostile: `parse_extensions`
raises `ExtensionError` (a ValueError) on a malformed block, and `find_extension` never raises
(anything malformed reads as "not there").
"""

from __future__ import annotations

from media.rtp import RTP_HEADER_LENGTH, RTP_VERSION

ONE_BYTE_PROFILE = 0xBEDE
# RFC 8285 section 4.3: 0x100 followed by 4 "appbits"; the low nibble is not ours to read.
TWO_BYTE_PROFILE = 0x1000
TWO_BYTE_PROFILE_MASK = 0xFFF0
ONE_BYTE_STOP_ID = 15
ONE_BYTE_MAX_ID = 14
TWO_BYTE_MAX_ID = 255
EXTENSION_BIT = 0x10
CSRC_MASK = 0x0F
# An RTP stream id (RFC 8852) is an RFC 8851 rid: alphanumeric, at most 16 characters in practice
# (Chrome uses "q", "h", "f" or "0", "1", "2"). Anything longer or not ASCII is refused.
MAX_RID_LENGTH = 16


class ExtensionError(ValueError):
    """A malformed header-extension block."""


def extension_block(data: bytes | bytearray) -> tuple[int, int, int] | None:
    """(profile, first element offset, end offset) of the packet's extension block, or None.

    Raises ExtensionError when the header says there is a block but the datagram cannot hold it.
    """
    n = len(data)
    if n < RTP_HEADER_LENGTH or data[0] >> 6 != RTP_VERSION:
        raise ExtensionError("not an RTP packet")
    if not data[0] & EXTENSION_BIT:
        return None
    start = RTP_HEADER_LENGTH + 4 * (data[0] & CSRC_MASK)
    if start + 4 > n:
        raise ExtensionError("extension header truncated")
    profile = (data[start] << 8) | data[start + 1]
    end = start + 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
    if end > n:
        raise ExtensionError("extension block longer than the packet")
    return profile, start + 4, end


def iter_elements(
    data: bytes | bytearray, profile: int, pos: int, end: int
) -> list[tuple[int, int, int]]:
    """(id, value offset, value length) of each element of a one- or two-byte block.

    An unknown profile has no elements we can read (RFC 3550 allows any profile). Raises
    ExtensionError if an element runs past the block.
    """
    out: list[tuple[int, int, int]] = []
    if profile == ONE_BYTE_PROFILE:
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
                raise ExtensionError("one-byte element truncated")
            out.append((ext_id, pos + 1, size))
            pos += 1 + size
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            ext_id = data[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ExtensionError("two-byte element header truncated")
            size = data[pos + 1]
            if pos + 2 + size > end:
                raise ExtensionError("two-byte element truncated")
            out.append((ext_id, pos + 2, size))
            pos += 2 + size
    return out


def parse_extensions(data: bytes | bytearray) -> dict[int, bytes]:
    """Every header extension of a packet, by id (the first element wins on a repeated id)."""
    block = extension_block(data)
    if block is None:
        return {}
    profile, pos, end = block
    out: dict[int, bytes] = {}
    for ext_id, offset, size in iter_elements(data, profile, pos, end):
        out.setdefault(ext_id, bytes(data[offset : offset + size]))
    return out


def find_extension(data: bytes | bytearray, ext_id: int) -> bytes | None:
    """The value of extension `ext_id`, or None if absent or the block is malformed; never raises.

    Walks the block without building a list: this runs for every packet that carries a
    transport-wide sequence number.
    """
    n = len(data)
    if n < RTP_HEADER_LENGTH or not data[0] & EXTENSION_BIT:
        return None
    start = RTP_HEADER_LENGTH + 4 * (data[0] & CSRC_MASK)
    if start + 4 > n:
        return None
    profile = (data[start] << 8) | data[start + 1]
    end = start + 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
    if end > n:
        return None
    pos = start + 4
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = data[pos]
            if byte == 0:
                pos += 1
                continue
            found = byte >> 4
            if found == ONE_BYTE_STOP_ID:
                return None
            size = (byte & 0x0F) + 1
            if pos + 1 + size > end:
                return None
            if found == ext_id:
                return bytes(data[pos + 1 : pos + 1 + size])
            pos += 1 + size
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            found = data[pos]
            if found == 0:
                pos += 1
                continue
            if pos + 2 > end:
                return None
            size = data[pos + 1]
            if pos + 2 + size > end:
                return None
            if found == ext_id:
                return bytes(data[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return None


def read_rid(value: bytes | None) -> str | None:
    """An RtpStreamId / RepairedRtpStreamId / MID value as text, or None if absent or not a token.

    RFC 8852 allows padding the value with zero bytes; they are stripped.
    """
    if value is None:
        return None
    text = value.rstrip(b"\x00")
    if not text or len(text) > MAX_RID_LENGTH:
        return None
    if not all(48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in (45, 95) for b in text):
        return None
    return text.decode("ascii")


def read_transport_seq(value: bytes | None) -> int | None:
    """The 16-bit transport-wide sequence number of the transport-cc extension, if well formed."""
    if value is None or len(value) != 2:
        return None
    return (value[0] << 8) | value[1]


def build_one_byte_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte extension block (profile header included), padded to 32 bits. For tests and the
    load tester's simulated peers."""
    body = bytearray()
    for ext_id, value in elements:
        if not 1 <= ext_id <= ONE_BYTE_MAX_ID or not 1 <= len(value) <= 16:
            raise ExtensionError("element does not fit the one-byte form")
        body.append((ext_id << 4) | (len(value) - 1))
        body += value
    body += bytes(-len(body) % 4)
    return ONE_BYTE_PROFILE.to_bytes(2, "big") + (len(body) // 4).to_bytes(2, "big") + bytes(body)


def build_two_byte_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A two-byte extension block (profile 0x1000), padded to 32 bits."""
    body = bytearray()
    for ext_id, value in elements:
        if not 1 <= ext_id <= TWO_BYTE_MAX_ID or len(value) > TWO_BYTE_MAX_ID:
            raise ExtensionError("element does not fit the two-byte form")
        body += bytes((ext_id, len(value))) + value
    body += bytes(-len(body) % 4)
    return TWO_BYTE_PROFILE.to_bytes(2, "big") + (len(body) // 4).to_bytes(2, "big") + bytes(body)
