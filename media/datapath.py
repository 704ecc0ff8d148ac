"""The RTP data path: one received SRTP packet out to every subscriber, synchronously.

This is the per-packet hot path, kept apart so it can be read (and measured) on its own: unprotect
once, rewrite the fixed header per consumer (payload type, sequence number, timestamp, SSRC, and
extension ids when they differ), protect for each subscriber and `sendto` without waiting. It is
also the one place that sends: a full socket buffer drops and counts, it never blocks. Built on
`media.rtp`'s structs and masks; no await and no allocation beyond one buffer per packet.
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp

from media import rtcp
from media.audiolevel import parse_audio_level
from media.counters import Counters
from media.forward import PACKET_CACHE_MASK, Consumer
from media.rtp import (
    MARKER_BIT,
    REWRITE,
    REWRITE_OFFSET,
    RTP_HEADER_LENGTH,
    SEQ_MASK,
    SEQ_OFFSET,
    SEQ_TS,
    SSRC,
    SSRC_OFFSET,
    TS_MASK,
    RtpError,
    rewrite_extension_ids,
)
from media.sdp import AUDIO_LEVEL_URI
from media.transport import Transport

_SSRC_AT = SSRC.unpack_from
_SEQ_TS_AT = SEQ_TS.unpack_from
_REWRITE = REWRITE.pack_into

SendTo = Callable[[bytes, tuple[str, int]], int]
#: Told each audio packet's RFC 6464 level (-dBov) with the transport that published it.
OnLevel = Callable[[Transport, int], None]


def not_running(data: bytes, addr: tuple[str, int]) -> int:
    """The `sendto` of a worker whose socket is not open."""
    raise OSError("media worker is not running")


class DataPath:
    """Forwarding and sending for one worker: its counters, clock and socket's `sendto`."""

    __slots__ = ("clock", "counters", "on_level", "sendto")

    def __init__(self, counters: Counters, clock: Callable[[], float]) -> None:
        self.counters = counters
        self.clock = clock
        #: The socket's bound `sendto` while the worker runs (set and reset by the worker).
        self.sendto: SendTo = not_running
        #: Where audio levels go (the worker's speaker detectors); None reads no levels.
        self.on_level: OnLevel | None = None

    def on_rtp(self, transport: Transport, data: bytes) -> None:
        """The hot path: unprotect once, rewrite and protect per subscriber, send synchronously."""
        counters = self.counters
        unprotect = transport.unprotect
        if unprotect is None:
            counters.dropped_not_ready += 1
            return
        producer = transport.producers.get(_SSRC_AT(data, SSRC_OFFSET)[0])
        if producer is None:
            counters.dropped_unknown_ssrc += 1
            return
        try:
            plain = unprotect(data)
        except (pylibsrtp.Error, ValueError):
            counters.dropped_srtp_auth += 1
            return
        counters.rtp_in += 1
        seq, ts = _SEQ_TS_AT(plain, SEQ_OFFSET)
        if producer.started and seq == (producer.last_seq + 1) & SEQ_MASK:
            if seq == 0:
                producer.cycles += 1
            producer.last_seq = seq
            producer.last_ts = ts
        elif producer.started:
            lost = producer.on_jump(seq, ts)
            if lost:
                self.send_rtcp(transport, rtcp.build_nack(transport.rtcp_ssrc, producer.ssrc, lost))
                counters.nack_upstream += 1
        else:
            producer.start(seq, ts, self.clock())
        producer.packets += 1
        producer.octets += len(plain) - RTP_HEADER_LENGTH
        cache = producer.cache
        if cache is not None:
            cache.packets[seq & PACKET_CACHE_MASK] = plain
        elif producer.kind == "audio" and self.on_level is not None:
            # Only audio, and only when the offer negotiated the extension: video pays nothing.
            level_id = producer.ext_ids.get(AUDIO_LEVEL_URI)
            if level_id is not None:
                level = parse_audio_level(plain, level_id)
                if level is not None:
                    self.on_level(transport, level.level)
        targets = producer.targets
        if not targets:
            return
        buf = bytearray(plain)
        marker = plain[1] & MARKER_BIT
        sendto = self.sendto
        sent = 0
        for consumer in targets:
            _REWRITE(
                buf,
                REWRITE_OFFSET,
                marker | consumer.payload_type,
                (seq + consumer.seq_off) & SEQ_MASK,
                (ts + consumer.ts_off) & TS_MASK,
                consumer.ssrc,
            )
            if consumer.ext_map is None:
                out = consumer.protect(bytes(buf))
            else:
                try:
                    copy = bytearray(buf)
                    rewrite_extension_ids(copy, consumer.ext_map)
                except RtpError:
                    counters.dropped_malformed += 1
                    return
                out = consumer.protect(bytes(copy))
            try:
                sendto(out, consumer.addr)
            except BlockingIOError:
                counters.dropped_send_buffer_full += 1
                continue
            except OSError:
                counters.dropped_send_error += 1
                continue
            sent += 1
        counters.forwarded += sent
        counters.forwarded_bytes += sent * len(plain)

    def retransmit(self, consumer: Consumer, lost: list[int]) -> None:
        """Answer a subscriber's NACK from the producer's cache (RFC 4585 without RTX)."""
        producer = consumer.producer
        if producer is None or producer.cache is None or not consumer.transport.can_receive:
            return
        for out_seq in lost:
            seq = consumer.original_seq(out_seq)
            packet = producer.cache.get(seq) if seq is not None else None
            if packet is None:
                self.counters.nack_misses += 1
                continue
            buf = bytearray(packet)
            ts = _SEQ_TS_AT(packet, SEQ_OFFSET)[1]
            _REWRITE(
                buf,
                REWRITE_OFFSET,
                (packet[1] & MARKER_BIT) | consumer.payload_type,
                out_seq,
                (ts + consumer.ts_off) & TS_MASK,
                consumer.ssrc,
            )
            if consumer.ext_map is not None:
                try:
                    rewrite_extension_ids(buf, consumer.ext_map)
                except RtpError:
                    continue
            if self.send(consumer.protect(bytes(buf)), consumer.addr):
                self.counters.nack_retransmits += 1

    # ---- sending --------------------------------------------------------------------------------

    def send_rtcp(self, transport: Transport, packet: bytes) -> None:
        """Protect and send one compound RTCP packet to a connected transport."""
        if transport.srtp is None or transport.addr is None:
            return
        if self.send(transport.srtp.tx.protect_rtcp(packet), transport.addr):
            self.counters.rtcp_out += 1

    def send_all(self, datagrams: list[bytes], addr: tuple[str, int]) -> None:
        for datagram in datagrams:
            self.send(datagram, addr)

    def send(self, data: bytes, addr: tuple[str, int]) -> bool:
        """Send now; a full buffer or a send error drops and counts (False)."""
        try:
            self.sendto(data, addr)
        except BlockingIOError:
            self.counters.dropped_send_buffer_full += 1
            return False
        except OSError:
            self.counters.dropped_send_error += 1
            return False
        return True
