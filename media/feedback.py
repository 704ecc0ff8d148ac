"""RTCP the SFU reads and writes: sender reports, NACK, keyframe requests, receiver reports, REMB.

Kept apart from the RTP data path because it is not per media packet: it runs for the few RTCP
packets a browser sends and on the worker's ticker. Subscribers' feedback is answered here
(NACKs from the cache, PLI/FIR coalesced into one request to the publisher, REMB split and
clamped); publishers get receiver reports and a REMB; SRs are translated per subscriber.
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp

from media import rtcp
from media.counters import Counters
from media.datapath import DataPath
from media.forward import Consumer, Producer, split_remb
from media.rtcp import RtcpError
from media.simulcast import Simulcast, subscriber_budget
from media.transport import Transport, TransportState

# REMB sent to publishers is clamped: a floor so a bad estimate cannot starve a call, a ceiling
# so one subscriber with a fat pipe does not let a publisher flood everyone else.
REMB_MIN_BPS = 100_000
REMB_MAX_BPS = 2_500_000
NTP_FRACTION = 65536  # DLSR is in units of 1/65536 s
U32_MASK = 0xFFFFFFFF
FRACTION_LOST_MAX = 255
#: A subscriber's layers are chosen again at most this often when its estimate moves (issue 11:
#: promptly, where the once-a-second report tick took up to a second).
LAYER_CHOICE_INTERVAL = 0.2


class Feedback:
    """One worker's RTCP handling; sends through the worker's `DataPath`."""

    __slots__ = ("clock", "counters", "datapath")

    def __init__(self, datapath: DataPath, counters: Counters, clock: Callable[[], float]) -> None:
        self.datapath = datapath
        self.counters = counters
        self.clock = clock

    def on_rtcp(self, transport: Transport, data: bytes) -> None:
        """One SRTCP datagram from a peer: unprotect, then act on each packet of the compound."""
        counters = self.counters
        srtp = transport.srtp
        if srtp is None:
            counters.dropped_not_ready += 1
            return
        try:
            plain = srtp.rx.unprotect_rtcp(data)
        except (pylibsrtp.Error, ValueError):
            counters.dropped_srtcp_auth += 1
            return
        counters.rtcp_in += 1
        now = self.clock()
        try:
            for pt, fmt, packet in rtcp.iter_packets(plain):
                if pt == rtcp.PT_SR:
                    report = rtcp.parse_sr(packet)
                    producer = transport.producers.get(report.ssrc)
                    if producer is not None:
                        self._forward_sender_report(producer, report, now)
                    self._on_report_blocks(transport, rtcp.parse_report_blocks(packet, fmt, 28))
                elif pt == rtcp.PT_RR:
                    self._on_report_blocks(transport, rtcp.parse_report_blocks(packet, fmt, 8))
                elif pt == rtcp.PT_RTPFB and fmt == rtcp.FMT_NACK:
                    _, media_ssrc = rtcp.parse_feedback_ssrcs(packet)
                    consumer = transport.consumers.get(media_ssrc)
                    if consumer is not None:
                        self.datapath.retransmit(consumer, rtcp.parse_nack(packet))
                elif pt == rtcp.PT_PSFB:
                    self._on_payload_feedback(transport, fmt, packet, now)
        except RtcpError:
            counters.dropped_malformed += 1

    def _on_payload_feedback(
        self, transport: Transport, fmt: int, packet: bytes, now: float
    ) -> None:
        if fmt == rtcp.FMT_PLI:
            _, media_ssrc = rtcp.parse_feedback_ssrcs(packet)
            self._keyframe_for(transport, media_ssrc, now)
        elif fmt == rtcp.FMT_FIR:
            for media_ssrc in rtcp.parse_fir_ssrcs(packet):
                self._keyframe_for(transport, media_ssrc, now)
        elif fmt == rtcp.FMT_AFB:
            remb = rtcp.parse_remb(packet)
            if remb is not None:
                before = subscriber_budget(transport)
                transport.remb_bitrate = remb[0]
                if subscriber_budget(transport) != before:
                    self.estimate_changed(transport, now)

    def _on_report_blocks(self, transport: Transport, blocks: list[rtcp.ReportBlock]) -> None:
        """A subscriber's loss on the streams we send it: part of its bandwidth estimate."""
        mine = [b.fraction_lost for b in blocks if b.ssrc in transport.consumers]
        if mine:
            before = subscriber_budget(transport)
            transport.loss_fraction = max(mine) / 256
            if subscriber_budget(transport) != before:
                self.estimate_changed(transport, self.clock())

    def estimate_changed(self, transport: Transport, now: float) -> None:
        """A subscriber's budget moved (REMB, or loss above the threshold): choose its layers
        again now, or, within LAYER_CHOICE_INTERVAL of the last time, once that has passed (the
        ticker). Bounded per subscriber, so a REMB every few milliseconds costs nothing more;
        the choice itself has the hysteresis (`media.simulcast`: headroom and hold up-switches).
        """
        if now < transport.layer_choice_at:
            transport.layer_choice_owed = True
            return
        self.choose_layers(transport, now)

    def choose_layers(self, transport: Transport, now: float) -> None:
        """Re-choose the layer of every simulcast line of this subscriber; ask at once for the
        key frame of each new target (the switch happens there)."""
        transport.layer_choice_at = now + LAYER_CHOICE_INTERVAL
        transport.layer_choice_owed = False
        for consumer in transport.consumers.values():
            track = consumer.producer
            if track is None or track.simulcast is None:
                continue
            before = consumer.target
            track.simulcast.select(consumer, now)
            if consumer.target is not None and consumer.target is not before:
                self.request_keyframe(track, now, consumer)

    def _keyframe_for(self, transport: Transport, media_ssrc: int, now: float) -> None:
        consumer = transport.consumers.get(media_ssrc)
        if consumer is not None and consumer.producer is not None:
            self.request_keyframe(consumer.producer, now, consumer)

    def _forward_sender_report(
        self, producer: Producer, report: rtcp.SenderReport, now: float
    ) -> None:
        """Translate a publisher's SR into each subscriber's timestamp space (keeps lip-sync)."""
        producer.last_sr_mid = rtcp.ntp_middle(report.ntp)
        producer.last_sr_at = now
        for consumer in producer.targets:
            if not consumer.synced:
                continue
            packet = rtcp.build_sr(
                consumer.ssrc,
                report.ntp,
                report.rtp_timestamp + consumer.ts_off,
                producer.packets - consumer.base_packets,
                producer.octets - consumer.base_octets,
            )
            self.datapath.send_rtcp(consumer.transport, packet)
            self.counters.sr_forwarded += 1

    def request_keyframe(
        self, producer: Producer, now: float, consumer: Consumer | None = None
    ) -> None:
        """Ask the publisher for a keyframe, at most once per KEYFRAME_INTERVAL.

        For a simulcast track the interval is per layer, and ``consumer`` (a line just attached,
        or the subscriber that sent a PLI) narrows the request to the layer it waits for, else
        the one it forwards: a switch to one layer is never held back by a recent key frame of
        another, and layers whose subscribers lost nothing are not asked."""
        if producer.kind != "video":
            return
        if producer.transport.state is not TransportState.CONNECTED:
            producer.keyframes.pending = True  # flushed by the ticker once it connects
            return
        track = producer.simulcast
        if track is not None:
            if consumer is not None:
                wanted = consumer.target or consumer.layer
                layers = [wanted] if wanted is not None else []
            else:
                layers = track.keyframe_layers()
            asked = []
            for layer in layers:
                if layer.keyframes.request(now):
                    asked.append(layer)
                else:
                    self.counters.keyframe_coalesced += 1
            self.send_layer_plis(producer, asked)
            return
        if producer.keyframes.request(now):
            self.send_pli(producer)
        else:
            self.counters.keyframe_coalesced += 1

    def resend_nacks(self, producer: Producer, now: float) -> None:
        """The ticker: NACK again what a publisher was asked for and has not sent (forward.py,
        NACK_RETRY), one generic NACK for all of them."""
        due = producer.nacks_due(now)
        if due:
            transport = producer.transport
            self.datapath.send_rtcp(
                transport, rtcp.build_nack(transport.rtcp_ssrc, producer.ssrc, due)
            )
            self.counters.nack_upstream_retries += 1

    def send_owed_layer_plis(self, track: Simulcast, now: float) -> None:
        """The ticker: layers owed a key frame (a request was coalesced) whose own interval has
        passed, and layers a switch has waited on for KEYFRAME_RETRY, in one compound PLI."""
        due = [
            layer
            for layer in track.layers.values()
            if (layer.pending or (layer.consumers and layer.keyframes.pending))
            and layer.keyframes.due(now, waited=bool(layer.pending))
        ]
        self.send_layer_plis(track.track, due)

    def send_layer_plis(self, track: Producer, layers: list[Producer]) -> None:
        if not layers:
            return
        transport = track.transport
        packet = b"".join(rtcp.build_pli(transport.rtcp_ssrc, layer.ssrc) for layer in layers)
        self.datapath.send_rtcp(transport, packet)
        self.counters.keyframe_requests += len(layers)

    def send_pli(self, producer: Producer) -> None:
        """A PLI to the publisher; for a simulcast track, one per layer that needs a key frame
        (waited for by a switching consumer, or forwarded to a subscriber that lost one)."""
        transport = producer.transport
        if producer.simulcast is not None:
            layers = producer.simulcast.keyframe_layers()
            now = self.clock()
            for layer in layers:
                layer.keyframes.last_sent, layer.keyframes.pending = now, False
            self.send_layer_plis(producer, layers)
            return
        self.datapath.send_rtcp(transport, rtcp.build_pli(transport.rtcp_ssrc, producer.ssrc))
        self.counters.keyframe_requests += 1

    def send_reports(self, transport: Transport, now: float) -> None:
        """Receiver reports on each published stream (simulcast layers too), a REMB for its
        single-layer video, and once a second a fresh layer choice for its simulcast tracks."""
        blocks = []
        remb = b""
        for producer in transport.producers.values():
            if not producer.started:
                continue
            blocks.append(report_block(producer, now))
            if producer.kind == "video" and producer.simulcast is None:
                # A simulcast publisher gets no REMB: it would cap every layer by the weakest
                # subscriber's downlink. Its own estimator, fed by transport-cc, picks its layers.
                estimates = [
                    split_remb(c.transport.remb_bitrate, c.transport.video_slots_in_use())
                    for c in producer.targets
                    if c.transport.remb_bitrate
                ]
                if estimates:
                    bitrate = max(REMB_MIN_BPS, min(REMB_MAX_BPS, *estimates))
                    remb = rtcp.build_remb(transport.rtcp_ssrc, bitrate, [producer.ssrc])
                    self.counters.remb_sent += 1
        if blocks:
            self.datapath.send_rtcp(transport, rtcp.build_rr(transport.rtcp_ssrc, blocks) + remb)
            self.counters.rr_sent += 1
        for track in transport.simulcast:
            for layer in track.layers.values():
                measure_bitrate(layer, now)
            track.reselect(now)
        twcc = transport.twcc
        if twcc is not None and twcc.arrivals:
            media_ssrc = next(iter(transport.producers.values())).ssrc
            for packet in twcc.build(transport.rtcp_ssrc, media_ssrc, now):
                self.datapath.send_rtcp(transport, packet)
                self.counters.twcc_sent += 1


def measure_bitrate(layer: Producer, now: float) -> None:
    """A layer's payload bit rate since the last measurement (what layer choice compares)."""
    elapsed = now - layer.rate_at
    if elapsed <= 0:
        return
    layer.bitrate = int((layer.octets - layer.rate_octets) * 8 / elapsed)
    layer.rate_octets = layer.octets
    layer.rate_at = now


def report_block(producer: Producer, now: float) -> rtcp.ReportBlock:
    """RFC 3550 appendix A.3 loss figures for one published track (jitter is not computed)."""
    highest = producer.extended_highest
    expected = highest - producer.base_seq + 1
    expected_interval = expected - producer.expected_prior
    received_interval = producer.packets - producer.received_prior
    producer.expected_prior = expected
    producer.received_prior = producer.packets
    lost_interval = expected_interval - received_interval
    fraction = 0
    if expected_interval > 0 and lost_interval > 0:
        fraction = min(FRACTION_LOST_MAX, (lost_interval << 8) // expected_interval)
    dlsr = int((now - producer.last_sr_at) * NTP_FRACTION) if producer.last_sr_at else 0
    return rtcp.ReportBlock(
        ssrc=producer.ssrc,
        fraction_lost=fraction,
        cumulative_lost=max(0, expected - producer.packets),
        highest_seq=highest,
        jitter=0,
        lsr=producer.last_sr_mid,
        dlsr=dlsr & U32_MASK,
    )
