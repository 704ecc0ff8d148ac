"""A peer's WebRTC transport: ICE-lite state, DTLS, SRTP and its producers and consumers.

Sans-IO: the worker feeds it and sends what it returns. One transport per (call, peer); closing it
is idempotent and detaches it from its router (docs/media.md, "Lifecycle").
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable

from media.dtls import DtlsServer, SrtpSessions
from media.forward import Consumer, Producer
from media.sdp import CODEC_FOR_KIND, TWCC_URI, Offer, Plan
from media.simulcast import MAX_BIND_FAILURES, Simulcast
from media.twcc import TwccRecorder

ICE_UFRAG_BYTES = 6  # 8 base64 chars; RFC 8445 asks for at least 24 bits of randomness
ICE_PWD_BYTES = 18  # 24 base64 chars; RFC 8445 asks for at least 128 bits
SSRC_MAX = 0xFFFFFFFF
# `producers` is keyed by SSRC; a simulcast track (no SSRC of its own) sits at TRACK_KEY - index.
TRACK_KEY = -1


class TransportState(enum.Enum):
    NEW = "new"  # answer given, no authenticated connectivity check yet
    CONNECTING = "connecting"  # ICE bound, DTLS handshaking
    CONNECTED = "connected"  # SRTP keys in place
    CLOSED = "closed"


def random_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = secrets.randbelow(SSRC_MAX) + 1
        if ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class Transport:
    """What the SFU knows about one peer of one call."""

    def __init__(
        self,
        call_id: str,
        peer_id: str,
        offer: Offer,
        dtls: DtlsServer,
        now: float,
        ufrag: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.peer_id = peer_id
        self.offer = offer
        self.ufrag = ufrag or secrets.token_urlsafe(ICE_UFRAG_BYTES).replace("-", "a")
        self.pwd = secrets.token_urlsafe(ICE_PWD_BYTES)
        self.dtls = dtls
        self.state = TransportState.NEW
        self.srtp: SrtpSessions | None = None
        self.unprotect: Callable[[bytes], bytes] | None = None
        self.addrs: set[tuple[str, int]] = set()
        self.addr: tuple[str, int] | None = None
        self.nominated = False
        self.opened_at = now
        self.last_consent = now
        self.receiving = True
        self.publishing = True
        self.remb_bitrate: int | None = None
        #: Highest fraction lost (0..1) in the subscriber's last receiver reports on our streams.
        self.loss_fraction = 0.0
        #: Layer choice on a changed estimate (`Feedback.estimate_changed`): not before this
        #: time, and whether one is owed for then (the ticker makes it).
        self.layer_choice_at = float("-inf")
        self.layer_choice_owed = False
        #: Arrival times of the transport-wide sequence numbers it sends (None: not negotiated).
        self.twcc: TwccRecorder | None = None
        #: Simulcast tracks it publishes, and how many unknown SSRCs failed to bind to one.
        self.simulcast: list[Simulcast] = []
        self.bind_failures = 0
        self.ssrcs: set[int] = set()
        self.rtcp_ssrc = random_ssrc(self.ssrcs)
        self.producers: dict[int, Producer] = {}  # by media SSRC
        self.publish: dict[str, Producer] = {}  # by kind
        self.consumers: dict[int, Consumer] = {}  # by the SSRC the SFU sends with
        self.slots: dict[int, dict[str, Consumer]] = {}
        self.slot_owner: dict[int, str | None] = {}
        self.plan: Plan | None = None

    def new_ssrc(self) -> int:
        return random_ssrc(self.ssrcs)

    def build(self, plan: Plan) -> None:
        """Create producers and consumers from the answered plan."""
        self.plan = plan
        publish_lines = {
            m.index: line for line, m in zip(plan.lines, self.offer.media, strict=True)
        }
        for kind, m in plan.publish.items():
            assert m.payload_type is not None
            line = publish_lines[m.index]
            ext_ids = dict(line.extensions)
            if TWCC_URI in ext_ids and self.twcc is None:
                self.twcc = TwccRecorder()
            if line.rids:
                # The track: what the router attaches subscribers to; packets come on its layers,
                # bound as they arrive. Kept under a key no SSRC can equal, so the router's walk
                # over `producers` (refresh, detaching on leave) covers it.
                track = Producer(self, kind, 0, m.payload_type, CODEC_FOR_KIND[kind][1], ext_ids)
                track.cache = None
                track.simulcast = Simulcast(track, m.mid, line.rids, ext_ids)
                self.simulcast.append(track.simulcast)
                self.producers[TRACK_KEY - m.index] = track
                self.publish[kind] = track
                continue
            assert m.ssrc is not None
            producer = Producer(
                self, kind, m.ssrc, m.payload_type, CODEC_FOR_KIND[kind][1], ext_ids
            )
            self.producers[m.ssrc] = producer
            self.publish[kind] = producer
        for line, m in zip(plan.lines, self.offer.media, strict=True):
            if line.role != "slot":
                continue
            assert line.slot is not None and line.ssrc is not None and m.payload_type is not None
            consumer = Consumer(self, m.kind, line.slot, line.ssrc, m.payload_type, m.extensions)
            self.consumers[line.ssrc] = consumer
            self.slots.setdefault(line.slot, {})[m.kind] = consumer
            self.slot_owner[line.slot] = None

    @property
    def can_receive(self) -> bool:
        """True if media may be sent to this peer right now."""
        return self.state is TransportState.CONNECTED and self.receiving and self.addr is not None

    def bind(self, addr: tuple[str, int], nominated: bool, now: float) -> bool:
        """Record an authenticated check; returns True if the sending address changed."""
        self.last_consent = now
        self.addrs.add(addr)
        if self.state is TransportState.NEW:
            self.state = TransportState.CONNECTING
        if nominated and (not self.nominated or self.addr != addr):
            self.nominated = True
            self.addr = addr
            return True
        if self.addr is None:
            self.addr = addr
            return True
        return False

    def connected(self, srtp: SrtpSessions) -> None:
        self.srtp = srtp
        self.unprotect = srtp.rx.unprotect
        self.state = TransportState.CONNECTED

    def bind_layer(
        self, ssrc: int, mid: str | None, rid: str | None, now: float
    ) -> Producer | None:
        """Bind an unsignalled SSRC to the simulcast layer its MID and RID name, if any."""
        for track in self.simulcast:
            if mid is not None and mid != track.mid:
                continue
            if rid is None:
                continue
            layer = track.bind(self, ssrc, rid, now)
            if layer is not None:
                self.producers[ssrc] = layer
                return layer
        return None  # the caller counts the failure (bind_failures)

    @property
    def binding(self) -> bool:
        """True while an unknown SSRC may still be a simulcast layer worth unprotecting."""
        return self.bind_failures < MAX_BIND_FAILURES and any(t.unbound for t in self.simulcast)

    def video_slots_in_use(self) -> int:
        return sum(
            1 for s, c in self.slots.items() if "video" in c and self.slot_owner.get(s) is not None
        )
