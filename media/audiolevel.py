"""RFC 6464 client-to-mixer audio level, read from an RTP packet's header extension, sans-IO.

A browser puts the level of each audio packet it sends in the
`urn:ietf:params:rtp-hdrext:ssrc-audio-level` extension: one byte, V (voice activity, the most
significant bit) and the level in -dBov (0 is the loudest, 127 silence). The SFU reads it to find
speakers without decoding Opus. The extension rides in an RFC 8285 one-byte header block
(profile 0xBEDE); packets with two-byte blocks carry no level we read.

Everything here takes untrusted bytes (SRTP authenticates, it does not make a peer honest) and
never raises: malformed input reads as "no level".
"""

from __future__ import annotations

from dataclasses import dataclass

RTP_VERSION = 2
RTP_FIXED_HEADER = 12
CSRC_LENGTH = 4
EXTENSION_HEADER = 4
EXTENSION_BIT = 0x10
CSRC_COUNT_MASK = 0x0F
ONE_BYTE_PROFILE = 0xBEDE
# RFC 8285 section 4.2: id 0 is a padding byte, id 15 ends the block.
PADDING_ID = 0
STOP_ID = 15
ID_MIN, ID_MAX = 1, 14
# RFC 6464 section 3: one byte, V in the top bit, the level in -dBov in the low seven.
VOICE_BIT = 0x80
LEVEL_MASK = 0x7F
SILENCE = LEVEL_MASK  # 127 -dBov: the quietest level the field can say


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """One packet's level: `level` in -dBov (0 loudest, 127 silent), `voice` the V flag."""

    level: int
    voice: bool


def decode(value: int) -> AudioLevel:
    """The level byte itself."""
    return AudioLevel(level=value & LEVEL_MASK, voice=bool(value & VOICE_BIT))


def find_one_byte_element(block: bytes, ext_id: int) -> bytes | None:
    """The data of element `ext_id` in the body of a one-byte extension block, or None.

    `block` is the extension data after the 0xBEDE profile and length words. A block whose
    elements overrun it is malformed as a whole: None, rather than a guess.
    """
    if not ID_MIN <= ext_id <= ID_MAX:
        return None
    found: bytes | None = None
    pos = 0
    n = len(block)
    while pos < n:
        head = block[pos]
        element_id = head >> 4
        if element_id == PADDING_ID:
            pos += 1
            continue
        if element_id == STOP_ID:
            break
        size = (head & 0x0F) + 1
        start = pos + 1
        if start + size > n:
            return None
        if element_id == ext_id and found is None:
            found = block[start : start + size]
        pos = start + size
    return found


def extension_block(packet: bytes) -> bytes | None:
    """The body of the packet's one-byte extension block, or None (absent, two-byte, malformed)."""
    n = len(packet)
    if n < RTP_FIXED_HEADER:
        return None
    b0 = packet[0]
    if b0 >> 6 != RTP_VERSION or not b0 & EXTENSION_BIT:
        return None
    pos = RTP_FIXED_HEADER + CSRC_LENGTH * (b0 & CSRC_COUNT_MASK)
    if pos + EXTENSION_HEADER > n:
        return None
    profile = int.from_bytes(packet[pos : pos + 2], "big")
    words = int.from_bytes(packet[pos + 2 : pos + 4], "big")
    start = pos + EXTENSION_HEADER
    end = start + 4 * words
    if profile != ONE_BYTE_PROFILE or end > n:
        return None
    return packet[start:end]


def parse_audio_level(packet: bytes, ext_id: int) -> AudioLevel | None:
    """The RFC 6464 level of an (unprotected) RTP packet, under the id the offer negotiated."""
    block = extension_block(packet)
    if block is None:
        return None
    data = find_one_byte_element(block, ext_id)
    if data is None or len(data) != 1:  # RFC 6464: exactly one byte (L field 0)
        return None
    return decode(data[0])
