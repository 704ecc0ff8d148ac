"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Chrome numbers every packet it sends on a transport with the transport-cc header extension and
runs its send-side bandwidth estimator (GCC) on the arrival times the receiver reports back.
The SFU is the receiver of a publisher's packets: `TwccRecorder.record` notes when each
transport-wide sequence number arrived, and `TwccRecorder.build` turns what arrived since the
last feedback into RTCP transport-cc packets (RTPFB, FMT 15). When the publisher's uplink
shrinks, the reported delays grow and losses appear, Chrome's estimate falls, and its simulcast
allocator stops sending its highest layers: that is how a publisher's layers are lowered
without the SFU deciding anything.

Sans-IO: times are the caller's clock in seconds. `parse_feedback` reads the packets back (the
tests' and the fuzzer's round trip, and a check that what is built is what the draft says).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PT_RTPFB = 205
FMT_TWCC = 15
SEQ_MASK = 0xFFFF
SEQ_SPAN = 1 << 16
HALF_SEQ = 1 << 15
# Receive deltas are in multiples of 250 us; the reference time in multiples of 64 ms.
TICKS_PER_SECOND = 4000
TICKS_PER_REFERENCE = 256
REFERENCE_MASK = 0xFFFFFF
FB_COUNT_MASK = 0xFF
SMALL_DELTA_MAX = 0xFF
LARGE_DELTA_MIN = -(1 << 15)
LARGE_DELTA_MAX = (1 << 15) - 1
# Packet status symbols.
NOT_RECEIVED = 0
SMALL_DELTA = 1
LARGE_DELTA = 2
RUN_LENGTH_MAX = (1 << 13) - 1
TWO_BIT_CAPACITY = 7
ONE_BIT_CAPACITY = 14
# Statuses per feedback packet: a packet of all large deltas stays under ~1 kB, well below an MTU.
MAX_STATUSES_PER_PACKET = 400
# A sender that skips this many sequence numbers is not "losing" them: start afresh after it.
MAX_PENDING = 8192
#: How often a publisher gets feedback (libwebrtc sends every 50-250 ms, by bitrate).
FEEDBACK_INTERVAL = 0.1
HEADER_LENGTH = 20

_HEAD = struct.Struct("!BBHIIHHI")


class TwccError(ValueError):
    """A malformed transport-cc feedback packet."""


class TwccRecorder:
    """Arrival times of one transport's transport-wide sequence numbers, until reported."""

    __slots__ = ("arrivals", "fb_count", "highest", "last_feedback_at", "next_seq")

    def __init__(self) -> None:
        self.arrivals: dict[int, int] = {}  # unwrapped sequence -> arrival in 250 us ticks
        self.highest: int | None = None  # unwrapped, highest seen
        self.next_seq: int | None = None  # unwrapped, first not yet reported
        self.fb_count = 0
        self.last_feedback_at = float("-inf")

    def record(self, seq: int, now: float) -> None:
        """One packet with transport-wide sequence number `seq` arrived at `now`."""
        highest = self.highest
        if highest is None:
            ext = SEQ_SPAN + (seq & SEQ_MASK)  # room below for reordered first packets
            self.highest = highest = ext
            self.next_seq = ext
        else:
            diff = (seq - highest) & SEQ_MASK
            if diff >= HALF_SEQ:
                diff -= SEQ_SPAN
            ext = highest + diff
            if ext > highest:
                self.highest = highest = ext
        next_seq = self.next_seq
        assert next_seq is not None
        if ext < next_seq:
            return  # reported as lost already (or a replay): the sender has moved on
        self.arrivals.setdefault(ext, int(now * TICKS_PER_SECOND))
        if highest - next_seq >= MAX_PENDING:
            # A jump: forget what cannot be reported in a sensible number of packets.
            floor = highest - MAX_PENDING + 1
            self.arrivals = {s: t for s, t in self.arrivals.items() if s >= floor}
            self.next_seq = min(self.arrivals) if self.arrivals else highest

    def due(self, now: float) -> bool:
        return bool(self.arrivals) and now - self.last_feedback_at >= FEEDBACK_INTERVAL

    def build(self, sender_ssrc: int, media_ssrc: int, now: float) -> list[bytes]:
        """Feedback packets covering everything since the last feedback (empty if nothing new)."""
        self.last_feedback_at = now
        if not self.arrivals or self.next_seq is None or self.highest is None:
            return []
        packets: list[bytes] = []
        seq = self.next_seq
        last = self.highest
        while seq <= last:
            packet, seq = self._one_packet(sender_ssrc, media_ssrc, seq, last)
            packets.append(packet)
        self.arrivals = {}
        self.next_seq = last + 1
        return packets

    def _one_packet(self, sender: int, media: int, base: int, last: int) -> tuple[bytes, int]:
        arrivals = self.arrivals
        # The reference time is that of the first packet that arrived (`last` always did).
        first_seq = next(s for s in range(base, last + 1) if s in arrivals)
        if first_seq - base >= MAX_STATUSES_PER_PACKET:
            base = first_seq  # a loss run this long is not reported (the sender's RTO covers it)
        first = arrivals[first_seq]
        reference = first // TICKS_PER_REFERENCE
        previous = reference * TICKS_PER_REFERENCE
        symbols: list[int] = []
        deltas = bytearray()
        seq = base
        while seq <= last and len(symbols) < MAX_STATUSES_PER_PACKET:
            arrived = arrivals.get(seq)
            if arrived is None:
                symbols.append(NOT_RECEIVED)
            else:
                delta = arrived - previous
                if 0 <= delta <= SMALL_DELTA_MAX:
                    symbols.append(SMALL_DELTA)
                    deltas.append(delta)
                elif LARGE_DELTA_MIN <= delta <= LARGE_DELTA_MAX:
                    symbols.append(LARGE_DELTA)
                    deltas += struct.pack("!h", delta)
                else:
                    break  # too far from the last one: the next packet gets its own reference
                previous = arrived
            seq += 1
        while symbols and symbols[-1] == NOT_RECEIVED:  # end at a received packet
            symbols.pop()
            seq -= 1
        chunks = encode_chunks(symbols)
        body = chunks + bytes(deltas)
        length = HEADER_LENGTH + len(body)
        padding = -length % 4
        head = _HEAD.pack(
            0x80 | (0x20 if padding else 0) | FMT_TWCC,
            PT_RTPFB,
            (length + padding) // 4 - 1,
            sender,
            media,
            base & SEQ_MASK,
            len(symbols),
            ((reference & REFERENCE_MASK) << 8) | (self.fb_count & FB_COUNT_MASK),
        )
        self.fb_count = (self.fb_count + 1) & FB_COUNT_MASK
        pad = bytes(padding - 1) + bytes((padding,)) if padding else b""
        return head + body + pad, seq


def encode_chunks(symbols: list[int]) -> bytes:
    """Packet status chunks: run-length for runs, 1-bit or 2-bit status vectors otherwise."""
    out = bytearray()
    n = len(symbols)
    i = 0
    while i < n:
        symbol = symbols[i]
        j = i + 1
        while j < n and symbols[j] == symbol and j - i < RUN_LENGTH_MAX:
            j += 1
        if j - i >= ONE_BIT_CAPACITY or (j - i >= TWO_BIT_CAPACITY and symbol == LARGE_DELTA):
            out += struct.pack("!H", (symbol << 13) | (j - i))
            i = j
            continue
        window = symbols[i : i + ONE_BIT_CAPACITY]
        if len(window) > TWO_BIT_CAPACITY and LARGE_DELTA not in window:
            word = 0x8000
            for k, s in enumerate(window):
                word |= s << (13 - k)
            out += struct.pack("!H", word)
            i += len(window)
        else:
            word = 0xC000
            for k, s in enumerate(symbols[i : i + TWO_BIT_CAPACITY]):
                word |= s << (12 - 2 * k)
            out += struct.pack("!H", word)
            i += TWO_BIT_CAPACITY
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Feedback:
    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int  # 64 ms units, 24 bits
    fb_count: int
    #: (sequence number, arrival in 250 us ticks, or None if not received), in order.
    packets: list[tuple[int, int | None]]


def parse_feedback(packet: bytes) -> Feedback:
    """Read a transport-cc feedback packet; raises TwccError on anything malformed."""
    if len(packet) < HEADER_LENGTH:
        raise TwccError("transport-cc feedback truncated")
    b0, pt, words, sender, media, base, count, ref_fb = _HEAD.unpack_from(packet, 0)
    if b0 >> 6 != 2 or pt != PT_RTPFB or b0 & 0x1F != FMT_TWCC:
        raise TwccError("not a transport-cc feedback packet")
    end = 4 * (words + 1)
    if end > len(packet):
        raise TwccError("length field exceeds the packet")
    if b0 & 0x20:
        pad = packet[end - 1]
        if pad == 0 or pad > end - HEADER_LENGTH:
            raise TwccError("bad padding")
        end -= pad
    pos = HEADER_LENGTH
    symbols: list[int] = []
    while len(symbols) < count:
        if pos + 2 > end:
            raise TwccError("packet status chunks truncated")
        word = (packet[pos] << 8) | packet[pos + 1]
        pos += 2
        if not word & 0x8000:
            run = word & RUN_LENGTH_MAX
            if run == 0:
                raise TwccError("empty run-length chunk")
            symbols += [(word >> 13) & 0x03] * run
        elif not word & 0x4000:
            symbols += [(word >> (13 - k)) & 0x01 for k in range(ONE_BIT_CAPACITY)]
        else:
            symbols += [(word >> (12 - 2 * k)) & 0x03 for k in range(TWO_BIT_CAPACITY)]
    symbols = symbols[:count]
    reference = ref_fb >> 8
    if reference & 0x800000:
        reference -= 1 << 24
    time = reference * TICKS_PER_REFERENCE
    out: list[tuple[int, int | None]] = []
    for k, symbol in enumerate(symbols):
        seq = (base + k) & SEQ_MASK
        if symbol == NOT_RECEIVED:
            out.append((seq, None))
            continue
        if symbol == SMALL_DELTA:
            if pos + 1 > end:
                raise TwccError("receive delta truncated")
            time += packet[pos]
            pos += 1
        elif symbol == LARGE_DELTA:
            if pos + 2 > end:
                raise TwccError("receive delta truncated")
            time += struct.unpack_from("!h", packet, pos)[0]
            pos += 2
        else:
            raise TwccError("reserved packet status symbol")
        out.append((seq, time))
    return Feedback(sender, media, base, ref_fb >> 8, ref_fb & FB_COUNT_MASK, out)
