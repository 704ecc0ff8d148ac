"""RTCP compound-packet parsing and the few packets the SFU writes itself, sans-IO.

Parsers raise `RtcpError` (a ValueError) on anything malformed so that a hostile peer costs a
counter increment and nothing else. Builders return `bytes` ready for SRTCP protection.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204
PT_RTPFB = 205
PT_PSFB = 206

FMT_NACK = 1  # RTPFB generic NACK (RFC 4585)
FMT_TWCC = 15  # RTPFB transport-wide congestion control (built by media.twcc)
FMT_PLI = 1  # PSFB picture loss indication
FMT_FIR = 4  # PSFB full intra request (RFC 5104)
FMT_AFB = 15  # PSFB application layer feedback (REMB lives here)

RTCP_HEADER_LENGTH = 4
REMB_IDENTIFIER = b"REMB"
# REMB bitrate: 6-bit exponent, 18-bit mantissa.
REMB_MANTISSA_MAX = (1 << 18) - 1
NACK_BITMASK_SPAN = 16
NTP_MIDDLE_SHIFT = 16
REPORT_BLOCK_LENGTH = 24
MAX_REPORT_BLOCKS = 31

_SR = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets
_FB_HEADER = struct.Struct("!II")  # sender ssrc, media ssrc
_NACK_FCI = struct.Struct("!HH")


class RtcpError(ValueError):
    """A malformed RTCP packet."""


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packets: int
    octets: int


def iter_packets(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (packet type, count/format field, whole packet) for each packet of a compound.

    Raises RtcpError if any length field disagrees with the datagram; nothing is yielded after
    that point, but packets before it were already yielded (callers treat them as valid).
    """
    pos = 0
    n = len(data)
    if n < RTCP_HEADER_LENGTH:
        raise RtcpError("RTCP packet shorter than its header")
    while pos < n:
        if pos + RTCP_HEADER_LENGTH > n:
            raise RtcpError("RTCP header truncated")
        b0 = data[pos]
        if b0 >> 6 != 2:
            raise RtcpError("RTCP version is not 2")
        length = 4 * (((data[pos + 2] << 8) | data[pos + 3]) + 1)
        if pos + length > n:
            raise RtcpError("RTCP length field exceeds the datagram")
        yield data[pos + 1], b0 & 0x1F, data[pos : pos + length]
        pos += length


def parse_sr(packet: bytes) -> SenderReport:
    if len(packet) < 4 + _SR.size:
        raise RtcpError("sender report truncated")
    ssrc, msw, lsw, rtp_ts, packets, octets = _SR.unpack_from(packet, 4)
    return SenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets, octets)


def parse_feedback_ssrcs(packet: bytes) -> tuple[int, int]:
    """(sender SSRC, media SSRC) of an RTPFB/PSFB packet."""
    if len(packet) < 12:
        raise RtcpError("feedback packet truncated")
    sender, media = _FB_HEADER.unpack_from(packet, 4)
    return sender, media


def parse_nack(packet: bytes) -> list[int]:
    """Sequence numbers a generic NACK asks for."""
    if len(packet) < 16:
        raise RtcpError("NACK without FCI")
    lost: list[int] = []
    for pos in range(12, len(packet) - 3, 4):
        pid, blp = _NACK_FCI.unpack_from(packet, pos)
        lost.append(pid)
        for bit in range(NACK_BITMASK_SPAN):
            if blp & (1 << bit):
                lost.append((pid + bit + 1) & 0xFFFF)
    return lost


def parse_fir_ssrcs(packet: bytes) -> list[int]:
    """SSRCs a FIR asks keyframes of (RFC 5104: media SSRC field is unused, FCI carries them)."""
    if len(packet) < 20:
        raise RtcpError("FIR without FCI")
    return [struct.unpack_from("!I", packet, pos)[0] for pos in range(12, len(packet) - 7, 8)]


def parse_remb(packet: bytes) -> tuple[int, list[int]] | None:
    """(bitrate in bit/s, SSRCs) of a REMB, or None if this AFB packet is something else."""
    if len(packet) < 20 or packet[12:16] != REMB_IDENTIFIER:
        return None
    count = packet[16]
    exponent = packet[17] >> 2
    mantissa = ((packet[17] & 0x03) << 16) | (packet[18] << 8) | packet[19]
    if len(packet) < 20 + 4 * count:
        raise RtcpError("REMB SSRC list truncated")
    ssrcs = [struct.unpack_from("!I", packet, 20 + 4 * i)[0] for i in range(count)]
    return mantissa << exponent, ssrcs


def parse_report_blocks(packet: bytes, count: int, offset: int) -> list[ReportBlock]:
    """The report blocks of an SR (offset 28) or RR (offset 8); `count` is the header's RC."""
    if len(packet) < offset + REPORT_BLOCK_LENGTH * count:
        raise RtcpError("report blocks truncated")
    out = []
    for i in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = struct.unpack_from(
            "!IIIIII", packet, offset + REPORT_BLOCK_LENGTH * i
        )
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        out.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return out


def _header(count_or_fmt: int, pt: int, length_bytes: int) -> bytes:
    return struct.pack("!BBH", 0x80 | count_or_fmt, pt, length_bytes // 4 - 1)


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(FMT_PLI, PT_PSFB, 12) + _FB_HEADER.pack(sender_ssrc, media_ssrc)


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Sequence[int]) -> bytes:
    """A generic NACK (RFC 4585 section 6.2.1) packing `lost` into (PID, BLP) pairs.

    `media_ssrc` must be the publisher's media SSRC: senders (libwebrtc, aiortc) route feedback by
    it and silently ignore a NACK addressed to any other SSRC, 0 included.
    """
    fci = bytearray()
    items = sorted(set(lost))
    i = 0
    while i < len(items):
        pid = items[i]
        blp = 0
        i += 1
        while i < len(items) and 0 < ((items[i] - pid) & 0xFFFF) <= NACK_BITMASK_SPAN:
            blp |= 1 << (((items[i] - pid) & 0xFFFF) - 1)
            i += 1
        fci += _NACK_FCI.pack(pid, blp)
    return (
        _header(FMT_NACK, PT_RTPFB, 12 + len(fci)) + _FB_HEADER.pack(sender_ssrc, media_ssrc) + fci
    )


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    exponent = 0
    mantissa = max(0, bitrate)
    while mantissa > REMB_MANTISSA_MAX:
        mantissa >>= 1
        exponent += 1
    body = (
        _FB_HEADER.pack(sender_ssrc, 0)
        + REMB_IDENTIFIER
        + struct.pack("!BBH", len(ssrcs), (exponent << 2) | (mantissa >> 16), mantissa & 0xFFFF)
        + b"".join(struct.pack("!I", s) for s in ssrcs)
    )
    return _header(FMT_AFB, PT_PSFB, 4 + len(body)) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255
    cumulative_lost: int
    highest_seq: int  # extended
    jitter: int
    lsr: int  # middle 32 bits of the last SR's NTP time
    dlsr: int  # 1/65536 s since that SR


def build_rr(sender_ssrc: int, blocks: Sequence[ReportBlock]) -> bytes:
    body = bytearray(struct.pack("!I", sender_ssrc))
    for b in blocks[:MAX_REPORT_BLOCKS]:
        lost = max(-(1 << 23), min(b.cumulative_lost, (1 << 23) - 1)) & 0xFFFFFF
        body += struct.pack(
            "!IIIIII",
            b.ssrc,
            (b.fraction_lost << 24) | lost,
            b.highest_seq & 0xFFFFFFFF,
            b.jitter,
            b.lsr,
            b.dlsr,
        )
    count = min(len(blocks), MAX_REPORT_BLOCKS)
    return _header(count, PT_RR, 4 + len(body)) + body


def build_sr(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int) -> bytes:
    """A sender report without report blocks (the SFU reports on reception in separate RRs)."""
    return _header(0, PT_SR, 28) + _SR.pack(
        ssrc,
        (ntp >> 32) & 0xFFFFFFFF,
        ntp & 0xFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (the LSR field of a report block)."""
    return (ntp >> NTP_MIDDLE_SHIFT) & 0xFFFFFFFF
