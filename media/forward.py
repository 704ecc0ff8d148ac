"""Producers, consumers and their per-subscriber rewriting state, sans-IO.

Mediasoup's vocabulary: a *Producer* is one track a peer publishes; a *Consumer* is one track a
subscriber receives (here: the audio or video line of one slot). A consumer has its own SSRC,
sequence-number and timestamp space; when its slot is handed to another producer the numbering
continues where it stopped, so the browser sees one long stream and never renegotiates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from media.probe import PROBE_FIRST
from media.rtp import SEQ_MASK, TS_MASK, seq_newer

if TYPE_CHECKING:
    from media.probe import Probe
    from media.simulcast import Simulcast
    from media.transport import Transport

# About a second of video at the 30 fps, ~1 Mbit/s a browser sends: NACKs older than that are
# useless anyway (the jitter buffer has given up on them).
PACKET_CACHE_SIZE = 512
PACKET_CACHE_MASK = PACKET_CACHE_SIZE - 1
# At most one keyframe request per publisher per this many seconds (issue 4).
KEYFRAME_INTERVAL = 0.5
# A switch still waiting for its layer's key frame this long after the request asks again: a PLI
# can be lost, and no browser sends key frames unasked (mediasoup's KeyFrameRequestManager
# retransmits after 1 s too).
KEYFRAME_RETRY = 1.0
# A gap larger than this is a restart or a reordering storm, not loss worth NACKing.
MAX_NACK_GAP = 32
# A NACKed packet still missing this long after the NACK is asked for again (the NACK or the
# resend can be lost too; libwebrtc's receiver repeats its NACKs in the same way), at most
# NACK_TRIES times in all. Longer than a resend takes on any sane path, so a resend that is only
# slow is rarely asked twice (a second copy would be refused by SRTP's replay check).
NACK_RETRY = 0.25
NACK_TRIES = 3
# At most this many sequence numbers are followed per publisher; the oldest are given up first.
NACK_TRACKED = 64
MIN_SLOT_SWITCH_TS_GAP = 1
#: `Consumer.attach`'s default: keep the line's wanted height.
KEEP_HEIGHT = -1


class PacketCache:
    """The last PACKET_CACHE_SIZE plaintext packets of a producer, indexed by sequence number."""

    __slots__ = ("packets",)

    def __init__(self) -> None:
        self.packets: list[bytes | None] = [None] * PACKET_CACHE_SIZE

    def put(self, seq: int, packet: bytes) -> None:
        self.packets[seq & PACKET_CACHE_MASK] = packet

    def get(self, seq: int) -> bytes | None:
        packet = self.packets[seq & PACKET_CACHE_MASK]
        if packet is None or ((packet[2] << 8) | packet[3]) != seq:
            return None
        return packet


class KeyframeLimiter:
    """Coalesces keyframe requests: one sent now, later ones folded into one sent when allowed."""

    __slots__ = ("last_sent", "pending")

    def __init__(self) -> None:
        self.last_sent = float("-inf")
        self.pending = False

    def request(self, now: float) -> bool:
        """True if a request may go out now; otherwise remember that one is owed."""
        if now - self.last_sent >= KEYFRAME_INTERVAL:
            self.last_sent = now
            self.pending = False
            return True
        self.pending = True
        return False

    def due(self, now: float, waited: bool = False) -> bool:
        """True (once) when a coalesced request is owed and the interval has passed, or when
        ``waited`` (someone still waits for a key frame) and KEYFRAME_RETRY has."""
        since = now - self.last_sent
        if (self.pending and since >= KEYFRAME_INTERVAL) or (waited and since >= KEYFRAME_RETRY):
            self.last_sent = now
            self.pending = False
            return True
        return False


class Producer:
    """One published track. `targets` is the fan-out the hot path walks: active consumers only."""

    __slots__ = (
        "base_seq",
        "bitrate",
        "cache",
        "clock_rate",
        "consumers",
        "cycles",
        "expected_prior",
        "ext_ids",
        "height",
        "keyframes",
        "kind",
        "last_at",
        "last_seq",
        "last_sr_at",
        "last_sr_mid",
        "last_ts",
        "nack_due_at",
        "nacked",
        "octets",
        "packets",
        "payload_type",
        "pending",
        "picture_id",
        "picture_id_bits",
        "rate_at",
        "rate_octets",
        "received_prior",
        "rid",
        "rtx_ssrc",
        "simulcast",
        "ssrc",
        "started",
        "targets",
        "tl0picidx",
        "transport",
        "width",
    )

    def __init__(
        self,
        transport: Transport,
        kind: str,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        ext_ids: dict[str, int],
    ) -> None:
        self.transport = transport
        self.kind = kind
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ext_ids = ext_ids
        self.consumers: list[Consumer] = []
        self.targets: tuple[Consumer, ...] = ()
        self.cache: PacketCache | None = PacketCache() if kind == "video" else None
        #: Sequence numbers NACKed upstream and not yet arrived: seq -> (last asked at, tries).
        self.nacked: dict[int, tuple[float, int]] = {}
        #: When the first of them is due to be asked again (the ticker looks no sooner).
        self.nack_due_at = float("inf")
        self.keyframes = KeyframeLimiter()
        self.started = False
        self.last_seq = 0
        self.last_ts = 0
        self.base_seq = 0
        self.cycles = 0
        self.packets = 0
        self.octets = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.last_sr_mid = 0
        self.last_sr_at = 0.0
        # Simulcast (media/simulcast.py). On a track: its Simulcast, never any packets. On a layer:
        # the same Simulcast, the layer's rid, what its key frames and picture ids say, and the
        # consumers waiting for its next key frame to switch to it.
        self.simulcast: Simulcast | None = None
        self.rid: str | None = None
        self.rtx_ssrc: int | None = None
        self.width = 0
        self.height = 0
        self.last_at = float("-inf")
        self.picture_id: int | None = None
        self.picture_id_bits = 0
        self.tl0picidx: int | None = None
        self.pending: list[Consumer] = []
        self.bitrate = 0
        self.rate_octets = 0
        self.rate_at = 0.0

    def start(self, seq: int, ts: int, now: float) -> None:
        """First packet: fix the numbering origin and sync consumers attached before it."""
        self.started = True
        self.last_seq = seq
        self.last_ts = ts
        self.base_seq = seq
        for consumer in self.consumers:
            if not consumer.synced:
                consumer.sync(now)

    def on_jump(self, seq: int, ts: int) -> list[int]:
        """A packet that is not the successor of the last: returns sequence numbers to NACK."""
        last = self.last_seq
        if seq_newer(seq, last):
            missing = (seq - last - 1) & SEQ_MASK
            if seq < last:
                self.cycles += 1
            self.last_seq = seq
            self.last_ts = ts
            if 0 < missing <= MAX_NACK_GAP:
                return [(last + 1 + i) & SEQ_MASK for i in range(missing)]
        return []

    def asked_for(self, lost: list[int], now: float) -> None:
        """`lost` was just NACKed: follow each until it arrives or NACK_TRIES are spent."""
        nacked = self.nacked
        for seq in lost:
            nacked[seq] = (now, 1)
        while len(nacked) > NACK_TRACKED:
            del nacked[next(iter(nacked))]
        self.nack_due_at = min(self.nack_due_at, now + NACK_RETRY)

    def nacks_due(self, now: float) -> list[int]:
        """Sequence numbers to NACK again now (each counted as one more try); gives up on those
        that have had NACK_TRIES."""
        due: list[int] = []
        nacked = self.nacked
        if now < self.nack_due_at:
            return due
        next_at = float("inf")
        for seq, (asked_at, tries) in list(nacked.items()):
            if now - asked_at < NACK_RETRY:
                next_at = min(next_at, asked_at + NACK_RETRY)
            elif tries >= NACK_TRIES:
                del nacked[seq]
            else:
                nacked[seq] = (now, tries + 1)
                next_at = min(next_at, now + NACK_RETRY)
                due.append(seq)
        self.nack_due_at = next_at
        return due

    @property
    def extended_highest(self) -> int:
        return (self.cycles << 16) | self.last_seq


class Consumer:
    """One subscriber line (a slot's audio or video): the subscriber's own numbering space."""

    __slots__ = (
        "addr",
        "base_octets",
        "base_packets",
        "budget_limited_at",
        "detached_at",
        "ext_ids",
        "ext_map",
        "kind",
        "last_out_picture_id",
        "last_out_seq",
        "last_out_tl0",
        "last_out_ts",
        "layer",
        "max_height",
        "payload_type",
        "picture_id_off",
        "probe",
        "probe_at",
        "probe_wait",
        "producer",
        "protect",
        "seq_off",
        "slot",
        "ssrc",
        "sync_out_seq",
        "synced",
        "target",
        "tl0_off",
        "transport",
        "ts_off",
        "wanted",
    )

    def __init__(
        self,
        transport: Transport,
        kind: str,
        slot: int,
        ssrc: int,
        payload_type: int,
        ext_ids: dict[str, int],
    ) -> None:
        self.transport = transport
        self.kind = kind
        self.slot = slot
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.ext_ids = ext_ids
        self.producer: Producer | None = None
        self.ext_map: dict[int, int] | None = None
        self.seq_off = 0
        self.ts_off = 0
        self.synced = False
        self.sync_out_seq = 0
        self.last_out_seq: int | None = None
        self.last_out_ts = 0
        self.detached_at = 0.0
        self.base_packets = 0
        self.base_octets = 0
        # Simulcast: the layer forwarded now, the one waited for (its next key frame), and the
        # VP8 picture id / TL0PICIDX offsets that keep the subscriber's numbering continuous.
        self.layer: Producer | None = None
        self.target: Producer | None = None
        self.picture_id_off = 0
        self.tl0_off = 0
        self.last_out_picture_id: int | None = None
        self.last_out_tl0: int | None = None
        #: When the subscriber's budget last held this line below the layer its tile wants.
        self.budget_limited_at = float("-inf")
        #: Trying the layer above the budget (media.probe), when the next try may start (None:
        #: not held down), and the wait before a try (doubled by each failed one).
        self.probe: Probe | None = None
        self.probe_at: float | None = None
        self.probe_wait = PROBE_FIRST
        # What the subscriber shows this line at (set_wanted): False forwards nothing.
        self.wanted = True
        self.max_height: int | None = DEFAULT_MAX_HEIGHT
        # Cached by Router.refresh for the hot path: the subscriber's protect and address.
        self.protect: Callable[[bytes], bytes] = _not_ready
        self.addr: tuple[str, int] = NO_ADDRESS

    def attach(self, producer: Producer, now: float, shown_at: int | None = KEEP_HEIGHT) -> None:
        """Point this line at `producer`; numbering continues if the line carried another one.

        ``shown_at``: the height the subscriber shows the new publisher at (as `set_wanted`), so
        a simulcast layer is chosen once, for the new publisher, not for the line's previous one.
        """
        if self.producer is not None:
            self.detach(now)
        self.probe, self.probe_at, self.probe_wait = None, None, PROBE_FIRST
        if shown_at != KEEP_HEIGHT:
            self.wanted = shown_at is not None
            self.max_height = shown_at
        self.producer = producer
        producer.consumers.append(self)
        self.ext_map = extension_map(producer.ext_ids, self.ext_ids)
        self.synced = False
        if producer.simulcast is not None:
            producer.simulcast.select(self, now)
        elif producer.started and self.wanted:
            self.sync(now)

    def set_wanted(self, max_height: int | None, now: float | None = None) -> None:
        """What the subscriber shows this line at: a height in pixels, or None (not shown).

        None forwards nothing on this line (a simulcast layer nobody wants is paused). A height
        picks a simulcast publisher's layer (the smallest at least that tall, lowered further by
        the subscriber's bandwidth estimate); a single-layer publisher is forwarded as it is.
        Numbering continues across a pause, like a slot handed over.
        """
        when = time.monotonic() if now is None else now
        wanted = max_height is not None
        was = self.wanted
        if max_height != self.max_height:
            self.budget_limited_at = float("-inf")  # a new size is a new choice: no up-hold
        self.wanted = wanted
        self.max_height = max_height
        p = self.producer
        if p is None:
            return
        if p.simulcast is not None:
            p.simulcast.select(self, when)
        elif was and not wanted:
            self.remember(when)
            self.synced = False
        elif wanted and not was and p.started:
            self.sync(when)
            p.keyframes.pending = True  # the worker's ticker sends the PLI

    def remember(self, now: float) -> None:
        """Note where this line's numbering stands, so a later sync continues from it."""
        source = self.layer if self.layer is not None else self.producer
        if source is None or not source.started or not self.synced:
            return
        self.last_out_seq = (source.last_seq + self.seq_off) & SEQ_MASK
        self.last_out_ts = (source.last_ts + self.ts_off) & TS_MASK
        self.detached_at = now
        if source.picture_id is not None:
            mask = 0x7FFF if source.picture_id_bits == 15 else 0x7F
            self.last_out_picture_id = (source.picture_id + self.picture_id_off) & mask
        if source.tl0picidx is not None:
            self.last_out_tl0 = (source.tl0picidx + self.tl0_off) & 0xFF

    def sync(self, now: float) -> None:
        p = self.producer
        assert p is not None and p.started
        if self.last_out_seq is None:
            self.seq_off = 0
            self.ts_off = 0
        else:
            gap = max(MIN_SLOT_SWITCH_TS_GAP, int((now - self.detached_at) * p.clock_rate))
            self.seq_off = (self.last_out_seq - p.last_seq) & SEQ_MASK
            self.ts_off = (self.last_out_ts + gap - p.last_ts) & TS_MASK
        self.sync_out_seq = (p.last_seq + 1 + self.seq_off) & SEQ_MASK
        self.base_packets = p.packets
        self.base_octets = p.octets
        self.synced = True

    def detach(self, now: float) -> None:
        p = self.producer
        if p is None:
            return
        self.remember(now)
        if p.simulcast is not None:
            p.simulcast.leave(self)
        p.consumers.remove(self)
        p.targets = tuple(c for c in p.targets if c is not self)
        self.producer = None
        self.synced = False

    def original_seq(self, out_seq: int) -> int | None:
        """The producer's sequence number behind `out_seq`, if it was sent since the last sync."""
        if not self.synced or seq_newer(self.sync_out_seq, out_seq):
            return None
        return (out_seq - self.seq_off) & SEQ_MASK


NO_ADDRESS = ("", 0)
# What a line shows until the page says otherwise: a full-size tile (the highest layer).
DEFAULT_MAX_HEIGHT = 720
_INTERNED_MAPS: dict[tuple[tuple[int, int], ...], dict[int, int]] = {}


def _not_ready(packet: bytes) -> bytes:
    raise RuntimeError("consumer used before its transport was ready")


def extension_map(publisher: dict[str, int], subscriber: dict[str, int]) -> dict[int, int] | None:
    """Publisher id -> subscriber id for shared extensions; None when no rewriting is needed."""
    mapping = {pid: subscriber[uri] for uri, pid in publisher.items() if uri in subscriber}
    if len(mapping) == len(publisher) and all(a == b for a, b in mapping.items()):
        return None
    # Interned: consumers with equal maps share one dict, so the data path rewrites a packet's
    # ids once for all of them (Chrome subscribers all negotiate the same ids).
    key = tuple(sorted(mapping.items()))
    return _INTERNED_MAPS.setdefault(key, mapping)


def split_remb(total_bitrate: int, video_slots: int) -> int:
    """A subscriber's REMB covers its whole downlink: each forwarded video gets an equal share."""
    return total_bitrate // max(1, video_slots)
