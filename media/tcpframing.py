"""RFC 4571 framing for ICE-TCP: each packet on the stream is a 2-byte big-endian length, then it.

RFC 6544 carries STUN, DTLS, RTP and RTCP over a TCP connection this way, so what comes out of
`Deframer.feed` is exactly what a UDP datagram would have been and goes through the same demux.
Sans-IO, standard library only. A frame longer than `max_frame` (far above any packet the worker
sends or accepts over UDP) or an empty one is garbage: `FramingError`, and the caller closes that
one connection. The deframer never holds more than one partial frame.
"""

from __future__ import annotations

import struct

#: The length prefix: RFC 4571 section 2, 16 bits, network order.
LENGTH = struct.Struct("!H")
LENGTH_BYTES = LENGTH.size
#: Frames longer than this are refused: the UDP path reads at most 2048 bytes a datagram, and no
#: STUN, DTLS or SRTP packet the browser sends over TCP is longer than a path MTU.
MAX_FRAME = 2048


class FramingError(ValueError):
    """The stream is not RFC 4571 frames within our bounds; close the connection."""


def frame(packet: bytes) -> bytes:
    """One packet with its length prefix; a packet too long for the prefix is a bug here."""
    if not packet or len(packet) > 0xFFFF:
        raise FramingError(f"cannot frame a packet of {len(packet)} bytes")
    return LENGTH.pack(len(packet)) + packet


class Deframer:
    """Splits a byte stream into packets; bounded by `max_frame` plus one read."""

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of an incomplete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The complete packets `data` finishes; raises FramingError on an empty or long frame.

        After an error the deframer is spent: the stream has no frame boundary left to trust.
        """
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        at = 0
        end = len(buffer)
        max_frame = self.max_frame
        while end - at >= LENGTH_BYTES:
            length = (buffer[at] << 8) | buffer[at + 1]
            if length == 0 or length > max_frame:
                buffer.clear()
                raise FramingError(f"frame of {length} bytes (1..{max_frame} allowed)")
            if end - at - LENGTH_BYTES < length:
                break
            start = at + LENGTH_BYTES
            out.append(bytes(buffer[start : start + length]))
            at = start + length
        if at:
            del buffer[:at]
        return out
