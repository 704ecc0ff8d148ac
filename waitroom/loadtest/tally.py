"""What the media peers of one load-generator process measured: streams, flows and the timeline.

Kept apart from the peers so the report reads counts without knowing about sockets or SRTP:
per received SSRC the RFC 3550 sequence bookkeeping and interarrival jitter, per direction and
kind the sent, received and expected packets, and once a second the running totals.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from waitroom.loadtest.mediapeer import MediaPeer

#: Linux getsockopt(SOL_SOCKET, SO_MEMINFO): nine u32 counters, the last the socket's drops.
_SO_MEMINFO = 55
_MEMINFO = struct.Struct("9I")


def socket_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped on this socket (receive buffer full); 0 where unknown."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
        return int(_MEMINFO.unpack(raw)[8])
    except (OSError, struct.error):
        return 0


@dataclass
class ReceiveStream:
    """One received SSRC: RFC 3550 sequence bookkeeping and interarrival jitter."""

    key: str
    clock: int
    received: int = 0
    base: int = -1
    highest: int = -1  # extended highest sequence number
    jitter: float = 0.0  # timestamp units
    transit: float | None = None
    #: Payload-and-header bytes received (large-call figures: bytes per subscriber).
    octets: int = 0
    #: RFC 3550 A.3 interval state for this receiver's reports (RR).
    expected_prior: int = 0
    received_prior: int = 0
    #: RTP timestamp of the newest packet: a new value starts a frame (video).
    last_ts: int = -1
    #: (arrival, width, height) of each VP8 key frame seen (large-call peers only).
    keyframes: list[tuple[float, int, int]] = field(default_factory=list)
    #: Arrival of the newest packet, and the longest silence between packets since the peer
    #: began watching (`MediaPeer.watch_gaps_from`): frozen video during a layer switch.
    last_arrival: float = 0.0
    max_gap: float = 0.0

    def on_packet(self, seq: int, timestamp: int, arrival: float) -> None:
        self.received += 1
        if self.base < 0:
            self.base = self.highest = seq
        else:
            delta = (seq - self.highest) & 0xFFFF
            if 0 < delta < 0x8000:
                self.highest += delta
        transit = arrival * self.clock - timestamp
        if self.transit is not None:
            d = transit - self.transit
            # A 32-bit timestamp wrap looks like a huge jump: ignore that one sample.
            if abs(d) < 2**31:
                self.jitter += (abs(d) - self.jitter) / 16
        self.transit = transit

    @property
    def expected(self) -> int:
        return 0 if self.base < 0 else self.highest - self.base + 1

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self.jitter / self.clock


@dataclass
class Flow:
    """Counts for one direction and kind (e.g. ``caller->provider/video``), summed over peers."""

    sent: int = 0
    sent_bytes: int = 0
    send_dropped: int = 0
    received: int = 0
    expected: int = 0
    streams: int = 0
    #: Jitter of each live stream, sampled once a second (ms).
    jitter_ms: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "send_dropped": self.send_dropped,
            "received": self.received,
            "expected": self.expected,
            "streams": self.streams,
            "jitter_ms": [round(j, 3) for j in self.jitter_ms],
        }


class MediaTally:
    """Everything the media peers of one process measured, ready for the report."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.flows: dict[str, Flow] = {}
        self.live: set[MediaPeer] = set()
        self.connected = 0
        self.connect_latency: list[tuple[float, float]] = []
        self.rtcp_in = 0
        self.stun_in = 0
        self.srtp_errors = 0
        #: Datagrams the kernel dropped at our peers' sockets: the load generator fell behind.
        self.socket_drops = 0
        #: (t, sent, received, live peers): running totals for the plot.
        self.timeline: list[tuple[float, int, int, int]] = []
        self.now = now

    def flow(self, key: str) -> Flow:
        found = self.flows.get(key)
        if found is None:
            found = self.flows[key] = Flow()
        return found

    def sample(self) -> None:
        """Once a second: every live stream's jitter, and the running totals for the plot."""
        for peer in self.live:
            for stream in peer.streams.values():
                if stream.received > 1:
                    self.flow(stream.key).jitter_ms.append(stream.jitter_ms)
        sent = sum(f.sent for f in self.flows.values())
        received = sum(f.received for f in self.flows.values())
        self.timeline.append((self.now(), sent, received, len(self.live)))

    def retire(self, peer: MediaPeer) -> None:
        """A peer stopped: fold its streams' expected counts into the flows."""
        self.live.discard(peer)
        self.socket_drops += socket_drops(peer.raw)
        for stream in peer.streams.values():
            flow = self.flow(stream.key)
            flow.expected += stream.expected
            flow.streams += 1
            if stream.received > 1:
                flow.jitter_ms.append(stream.jitter_ms)

    def to_json(self) -> dict[str, Any]:
        for peer in list(self.live):
            self.retire(peer)
        return {
            "flows": {k: f.to_json() for k, f in sorted(self.flows.items())},
            "connected": self.connected,
            "connect_latency": self.connect_latency,
            "rtcp_in": self.rtcp_in,
            "stun_in": self.stun_in,
            "srtp_errors": self.srtp_errors,
            "socket_drops": self.socket_drops,
            "timeline": self.timeline,
        }
