"""The VP8 RTP payload descriptor (RFC 7741 section 4.2) and key-frame header, sans-IO.

Nothing is decoded: a simulcast switch needs to know where a key frame starts (S bit, partition
0, the P bit of the VP8 payload header), its size (the key frame's 10-byte header, RFC 6386
section 9.1), and where the picture id and TL0PICIDX sit so that they can be rewritten in place
for each subscriber. `parse_descriptor` raises `Vp8Error` (a ValueError) on a descriptor that
runs past the payload; a hostile publisher costs a counter.
"""

from __future__ import annotations

from dataclasses import dataclass

X_BIT = 0x80
N_BIT = 0x20
S_BIT = 0x10
PID_MASK = 0x07
I_BIT = 0x80
L_BIT = 0x40
T_BIT = 0x20
K_BIT = 0x10
M_BIT = 0x80
PICTURE_ID_7_MASK = 0x7F
PICTURE_ID_15_MASK = 0x7FFF
TL0PICIDX_MASK = 0xFF
# VP8 payload header (RFC 6386 9.1): bit 0 of the first byte is 0 for a key frame ("P" in 7741).
INVERSE_KEY_FRAME_BIT = 0x01
KEY_FRAME_START_CODE = b"\x9d\x01\x2a"
KEY_FRAME_HEADER_LENGTH = 10
DIMENSION_MASK = 0x3FFF
NO_OFFSET = -1


class Vp8Error(ValueError):
    """A VP8 payload descriptor that does not fit its payload."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """What a switch needs of one packet's descriptor. Offsets are from the payload start."""

    start: bool  # S: first packet of a VP8 partition
    partition: int
    picture_id: int | None
    picture_id_offset: int  # NO_OFFSET if absent
    picture_id_bits: int  # 0, 7 or 15
    tl0picidx: int | None
    tl0picidx_offset: int
    temporal_id: int | None
    size: int  # descriptor length in bytes
    keyframe: bool  # start of partition 0 of a key frame
    width: int  # of a key frame; 0 otherwise
    height: int


def parse_descriptor(
    payload: bytes | bytearray, offset: int = 0, end: int | None = None
) -> Vp8Descriptor:
    """Parse the descriptor of the VP8 payload at payload[offset:end]."""
    if end is None:
        end = len(payload)
    pos = offset
    if pos >= end:
        raise Vp8Error("empty VP8 payload")
    b0 = payload[pos]
    start = bool(b0 & S_BIT)
    partition = b0 & PID_MASK
    pos += 1
    picture_id = tl0 = tid = None
    pid_offset = tl0_offset = NO_OFFSET
    pid_bits = 0
    if b0 & X_BIT:
        if pos >= end:
            raise Vp8Error("extension byte missing")
        x = payload[pos]
        pos += 1
        if x & I_BIT:
            if pos >= end:
                raise Vp8Error("picture id missing")
            pid_offset = pos - offset
            if payload[pos] & M_BIT:
                if pos + 2 > end:
                    raise Vp8Error("15-bit picture id truncated")
                picture_id = ((payload[pos] & PICTURE_ID_7_MASK) << 8) | payload[pos + 1]
                pid_bits = 15
                pos += 2
            else:
                picture_id = payload[pos] & PICTURE_ID_7_MASK
                pid_bits = 7
                pos += 1
        if x & L_BIT:
            if pos >= end:
                raise Vp8Error("TL0PICIDX missing")
            tl0_offset = pos - offset
            tl0 = payload[pos]
            pos += 1
        if x & (T_BIT | K_BIT):
            if pos >= end:
                raise Vp8Error("TID/KEYIDX missing")
            if x & T_BIT:
                tid = payload[pos] >> 6
            pos += 1
    size = pos - offset
    keyframe = False
    width = height = 0
    if start and partition == 0 and pos < end and not payload[pos] & INVERSE_KEY_FRAME_BIT:
        keyframe = True
        header = payload[pos : pos + KEY_FRAME_HEADER_LENGTH]
        if len(header) == KEY_FRAME_HEADER_LENGTH and header[3:6] == KEY_FRAME_START_CODE:
            width = (header[6] | (header[7] << 8)) & DIMENSION_MASK
            height = (header[8] | (header[9] << 8)) & DIMENSION_MASK
    return Vp8Descriptor(
        start,
        partition,
        picture_id,
        pid_offset,
        pid_bits,
        tl0,
        tl0_offset,
        tid,
        size,
        keyframe,
        width,
        height,
    )


def write_picture_id(buf: bytearray, at: int, bits: int, picture_id: int) -> None:
    """Write a picture id in place, in the width the publisher used (the packet length stays)."""
    if bits == 15:
        picture_id &= PICTURE_ID_15_MASK
        buf[at] = M_BIT | (picture_id >> 8)
        buf[at + 1] = picture_id & 0xFF
    elif bits == 7:
        buf[at] = picture_id & PICTURE_ID_7_MASK


def picture_id_mask(bits: int) -> int:
    return PICTURE_ID_15_MASK if bits == 15 else PICTURE_ID_7_MASK


def build_descriptor(
    *,
    start: bool = True,
    partition: int = 0,
    picture_id: int | None = None,
    picture_id_bits: int = 15,
    tl0picidx: int | None = None,
    temporal_id: int | None = None,
) -> bytes:
    """A descriptor (tests and the load tester's simulated publishers)."""
    b0 = (S_BIT if start else 0) | (partition & PID_MASK)
    x = 0
    tail = bytearray()
    if picture_id is not None:
        x |= I_BIT
        if picture_id_bits == 15:
            tail += bytes((M_BIT | ((picture_id >> 8) & PICTURE_ID_7_MASK), picture_id & 0xFF))
        else:
            tail.append(picture_id & PICTURE_ID_7_MASK)
    if tl0picidx is not None:
        x |= L_BIT
        tail.append(tl0picidx & TL0PICIDX_MASK)
    if temporal_id is not None:
        x |= T_BIT
        tail.append((temporal_id & 0x03) << 6)
    if x:
        return bytes((b0 | X_BIT, x)) + bytes(tail)
    return bytes((b0,))


def key_frame_header(width: int, height: int) -> bytes:
    """The first 10 bytes of a VP8 key frame of this size (tests: the rest is not read)."""
    tag = bytes(
        (0x10, 0x02, 0x00)
    )  # P=0 (key frame), version 0, show_frame, a first-partition size
    return (
        tag
        + KEY_FRAME_START_CODE
        + (width & DIMENSION_MASK).to_bytes(2, "little")
        + (height & DIMENSION_MASK).to_bytes(2, "little")
    )
