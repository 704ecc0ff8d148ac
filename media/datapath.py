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
from media.forward import PACKET_CACHE_MASK, Consumer, Producer
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
    header_length,
    rewrite_extension_ids,
)
from media.rtpext import find_extension, read_rid, read_transport_seq
from media.sdp import AUDIO_LEVEL_URI, TWCC_URI
from media.transport import Transport
from media.vp8 import Vp8Descriptor as _Descriptor
from media.vp8 import Vp8Error, parse_descriptor, picture_id_mask, write_picture_id

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
        ssrc = _SSRC_AT(data, SSRC_OFFSET)[0]
        producer = transport.producers.get(ssrc)
        if producer is None:
            if transport.simulcast and transport.binding:
                self._bind(transport, ssrc, data)
            else:
                counters.dropped_unknown_ssrc += 1
            return
        try:
            plain = unprotect(data)
        except (pylibsrtp.Error, ValueError):
            counters.dropped_srtp_auth += 1
            return
        self._received(transport, producer, plain)

    def _bind(self, transport: Transport, ssrc: int, data: bytes) -> None:
        """An SSRC nobody signalled: a simulcast layer if its MID/RID extensions say so."""
        counters = self.counters
        assert transport.unprotect is not None
        try:
            plain = transport.unprotect(data)
        except (pylibsrtp.Error, ValueError):
            counters.dropped_srtp_auth += 1
            return
        now = self.clock()
        for track in transport.simulcast:
            mid = read_rid(find_extension(plain, track.mid_id)) if track.mid_id else None
            if mid is not None and mid != track.mid:
                continue
            rid = read_rid(find_extension(plain, track.rid_id)) if track.rid_id else None
            if rid is not None:
                layer = transport.bind_layer(ssrc, mid, rid, now)
                if layer is not None:
                    counters.simulcast_layers_bound += 1
                    track.reselect(now)
                    self._received(transport, layer, plain)
                    return
            elif track.rrid_id:
                rrid = read_rid(find_extension(plain, track.rrid_id))
                if rrid is not None and track.bind_rtx(ssrc, rrid):
                    break  # noted; RTX is not negotiated, so its packets are not used
        else:
            transport.bind_failures += 1
        counters.dropped_unknown_ssrc += 1

    def _received(self, transport: Transport, producer: Producer, plain: bytes) -> None:
        """One authenticated packet of `producer`: bookkeeping, feedback, then the fan-out."""
        counters = self.counters
        counters.rtp_in += 1
        twcc = transport.twcc
        if twcc is not None:
            twcc_id = producer.ext_ids.get(TWCC_URI)
            if twcc_id is not None:
                tseq = read_transport_seq(find_extension(plain, twcc_id))
                if tseq is not None:
                    now = self.clock()
                    twcc.record(tseq, now)
                    if twcc.due(now):
                        for packet in twcc.build(transport.rtcp_ssrc, producer.ssrc, now):
                            self.send_rtcp(transport, packet)
                            counters.twcc_sent += 1
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
                producer.asked_for(lost, self.clock())
            elif producer.nacked:
                producer.nacked.pop(seq, None)  # a NACK answered (or a late packet came)
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
        if producer.simulcast is not None:
            self._forward_layer(producer, plain, seq, ts)
            return
        targets = producer.targets
        if not targets:
            return
        buf = bytearray(plain)
        marker = plain[1] & MARKER_BIT
        sendto = self.sendto
        sent = 0
        mapped_for: dict[int, int] | None = None
        mapped = buf
        for consumer in targets:
            if not consumer.wanted:
                continue
            ext_map = consumer.ext_map
            if ext_map is None:
                out_buf = buf
            else:
                # Equal maps are one interned dict: the ids are rewritten once per packet.
                if ext_map is not mapped_for:
                    mapped = bytearray(plain)
                    try:
                        rewrite_extension_ids(mapped, ext_map)
                    except RtpError:
                        counters.dropped_malformed += 1
                        return
                    mapped_for = ext_map
                out_buf = mapped
            _REWRITE(
                out_buf,
                REWRITE_OFFSET,
                marker | consumer.payload_type,
                (seq + consumer.seq_off) & SEQ_MASK,
                (ts + consumer.ts_off) & TS_MASK,
                consumer.ssrc,
            )
            out = consumer.protect(bytes(out_buf))
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

    def _forward_layer(self, layer: Producer, plain: bytes, seq: int, ts: int) -> None:
        """A simulcast layer's packet: switch waiting consumers at a key frame, then forward it
        to the consumers on this layer with their seq/timestamp/picture-id/TL0PICIDX offsets."""
        counters = self.counters
        now = self.clock()
        layer.last_at = now
        try:
            start = header_length(plain)
        except RtpError:
            counters.dropped_malformed += 1
            return
        end = len(plain)
        if plain[0] & 0x20:  # RTP padding: the last byte counts it
            end -= plain[-1]
            if end < start:
                counters.dropped_malformed += 1
                return
        desc = None
        if end > start:
            try:
                desc = parse_descriptor(plain, start, end)
            except Vp8Error:
                counters.dropped_malformed += 1
                return
            _note_picture(layer, desc)
            if desc.keyframe:
                track = layer.simulcast
                assert track is not None
                if desc.width and (desc.width, desc.height) != (layer.width, layer.height):
                    layer.width, layer.height = desc.width, desc.height
                    track.reselect(now)  # the layers' order or fit may have changed
                layer.keyframes.pending = False  # whoever was owed one gets this one
                if layer.pending:
                    counters.simulcast_switches += track.switch(layer, seq, ts, desc, now)
        targets = layer.targets
        if not targets:
            return
        marker = plain[1] & MARKER_BIT
        pid_at = tl0_at = -1
        pid = tl0 = 0
        bits = 0
        mask = 0
        if desc is not None:
            if desc.picture_id is not None:
                pid_at = start + desc.picture_id_offset
                pid = desc.picture_id
                bits = desc.picture_id_bits
                mask = picture_id_mask(bits)
            if desc.tl0picidx is not None:
                tl0_at = start + desc.tl0picidx_offset
                tl0 = desc.tl0picidx
        base = bytearray(plain)
        mapped_for: dict[int, int] | None = None
        mapped = base
        sendto = self.sendto
        sent = 0
        for consumer in targets:
            ext_map = consumer.ext_map
            if ext_map is None:
                buf = base
            else:
                if ext_map is not mapped_for:
                    mapped = bytearray(plain)
                    try:
                        rewrite_extension_ids(mapped, ext_map)
                    except RtpError:
                        counters.dropped_malformed += 1
                        return
                    mapped_for = ext_map
                buf = mapped
            _REWRITE(
                buf,
                REWRITE_OFFSET,
                marker | consumer.payload_type,
                (seq + consumer.seq_off) & SEQ_MASK,
                (ts + consumer.ts_off) & TS_MASK,
                consumer.ssrc,
            )
            if pid_at >= 0:
                write_picture_id(buf, pid_at, bits, (pid + consumer.picture_id_off) & mask)
            if tl0_at >= 0:
                buf[tl0_at] = (tl0 + consumer.tl0_off) & 0xFF
            try:
                sendto(consumer.protect(bytes(buf)), consumer.addr)
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
        if producer is not None and producer.simulcast is not None:
            producer = consumer.layer  # the layer it forwards now; older switches are misses
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
            if producer.simulcast is not None:
                _rewrite_picture(buf, consumer)
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


def _note_picture(layer: Producer, desc: _Descriptor) -> None:
    """Keep the layer's newest picture id and TL0PICIDX (modular: reordering cannot lower it)."""
    pid = desc.picture_id
    if pid is not None:
        mask = picture_id_mask(desc.picture_id_bits)
        last = layer.picture_id
        if last is None or layer.picture_id_bits != desc.picture_id_bits:
            layer.picture_id = pid
            layer.picture_id_bits = desc.picture_id_bits
        elif 0 < ((pid - last) & mask) <= mask >> 1:
            layer.picture_id = pid
    tl0 = desc.tl0picidx
    if tl0 is not None:
        last_tl0 = layer.tl0picidx
        if last_tl0 is None or 0 < ((tl0 - last_tl0) & 0xFF) <= 0x7F:
            layer.tl0picidx = tl0


def _rewrite_picture(buf: bytearray, consumer: Consumer) -> None:
    """A retransmitted layer packet gets the same picture-id/TL0PICIDX offsets as the original."""
    try:
        start = header_length(buf)
        desc = parse_descriptor(buf, start)
    except (RtpError, Vp8Error):
        return
    if desc.picture_id is not None:
        mask = picture_id_mask(desc.picture_id_bits)
        write_picture_id(
            buf,
            start + desc.picture_id_offset,
            desc.picture_id_bits,
            (desc.picture_id + consumer.picture_id_off) & mask,
        )
    if desc.tl0picidx is not None:
        buf[start + desc.tl0picidx_offset] = (desc.tl0picidx + consumer.tl0_off) & 0xFF
