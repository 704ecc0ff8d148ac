"""Reading browser offers and writing the SFU's answers, sans-IO.

Offers are parsed with `aiortc.sdp`; answers are written as text because the SFU needs exact
control over a few lines aiortc does not write the way Chrome wants them (`a=ice-lite`,
`a=setup:passive`, one codec per m-line, declared SSRCs on the slots it sends).

The slot model (see docs/media.md): an m-line the peer sends on is a *publish* line (at most one
audio and one video); every further m-line the peer can receive on is a *slot* line; the n-th audio
slot line and the n-th video slot line together are slot n. The server answers slot lines
`sendonly` with an SSRC of its own, and never needs to renegotiate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import sdp as aiortc_sdp

OPUS = ("opus", 48000)
VP8 = ("vp8", 90000)
# The codec each kind is forwarded in: every browser supports both, so no transcoding is needed.
CODEC_FOR_KIND = {"audio": OPUS, "video": VP8}
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# Extensions forwarded end to end (ids rewritten per subscriber). transport-wide-cc is left out on
# purpose: echoing it without generating transport-cc feedback collapses Chrome's send rate.
EXTENSIONS_FOR_KIND = {"audio": (AUDIO_LEVEL_URI,), "video": (ABS_SEND_TIME_URI,)}
# Feedback the SFU handles for video (NACK from its cache, PLI/FIR coalesced, REMB rewritten).
VIDEO_FEEDBACK = (("nack", None), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", None))
SENDING_DIRECTIONS = frozenset({"sendrecv", "sendonly"})
RECEIVING_DIRECTIONS = frozenset({"sendrecv", "recvonly"})
# RFC 8445 section 5.1.2.1 recommended host candidate priority for a single component.
HOST_CANDIDATE_PRIORITY = 2130706431
_FINGERPRINT_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){31}$")


class SdpError(ValueError):
    """An offer the SFU cannot answer."""


@dataclass(slots=True)
class OfferedMedia:
    """One m-line of an offer, reduced to what the SFU needs."""

    index: int
    kind: str
    mid: str
    direction: str
    payload_type: int | None  # of the codec the SFU forwards in, None if not offered
    fmtp: str | None
    feedback: list[tuple[str, str | None]]
    extensions: dict[str, int]  # uri -> id, only those the SFU forwards
    ssrc: int | None  # primary media SSRC the peer will send with
    rtx_ssrc: int | None


@dataclass(slots=True)
class Offer:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # SHA-256, upper-case hex with colons
    media: list[OfferedMedia] = field(default_factory=list)


@dataclass(slots=True)
class LinePlan:
    """How the answer treats one offered m-line."""

    role: str  # "publish", "slot" or "reject"
    slot: int | None = None
    ssrc: int | None = None  # the SSRC the SFU sends with on a slot line


@dataclass(slots=True)
class Plan:
    """The media roles of an offer: publish lines, and slot lines grouped by slot index."""

    lines: list[LinePlan]
    publish: dict[str, OfferedMedia]  # kind -> line
    slots: dict[int, dict[str, OfferedMedia]]  # slot -> kind -> line


def parse_offer(text: str) -> Offer:
    """Parse an offer; raise SdpError for anything the SFU cannot or will not answer."""
    try:
        session = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc asserts and raises assorted errors on bad input
        raise SdpError(f"unparseable offer: {exc!r}") from exc
    if not session.media:
        raise SdpError("offer has no m-lines")
    first = session.media[0]
    if first.ice is None or not first.ice.usernameFragment or not first.ice.password:
        raise SdpError("offer lacks ICE credentials")
    fingerprint = None
    if first.dtls is not None:
        for fp in first.dtls.fingerprints:
            if fp.algorithm.lower() == "sha-256":
                fingerprint = fp.value.upper()
    if fingerprint is None or not _FINGERPRINT_RE.match(fingerprint):
        raise SdpError("offer lacks a SHA-256 DTLS fingerprint")
    offer = Offer(first.ice.usernameFragment, first.ice.password, fingerprint)
    for index, m in enumerate(session.media):
        offer.media.append(_reduce_media(index, m))
    return offer


def _reduce_media(index: int, m: aiortc_sdp.MediaDescription) -> OfferedMedia:
    kind = m.kind
    wanted = CODEC_FOR_KIND.get(kind)
    payload_type = None
    fmtp = None
    feedback: list[tuple[str, str | None]] = []
    if wanted is not None:
        for codec in m.rtp.codecs:
            name = codec.mimeType.split("/", 1)[1].lower()
            if (name, codec.clockRate) == wanted:
                payload_type = codec.payloadType
                fmtp = ";".join(
                    f"{k}={v}" if v is not None else k for k, v in codec.parameters.items()
                )
                feedback = [(fb.type, fb.parameter) for fb in codec.rtcpFeedback]
                break
    extensions = {
        ext.uri: ext.id
        for ext in m.rtp.headerExtensions
        if ext.uri in EXTENSIONS_FOR_KIND.get(kind, ())
    }
    ssrc = rtx_ssrc = None
    for group in m.ssrc_group:
        if group.semantic == "FID" and len(group.items) >= 2:
            ssrc, rtx_ssrc = int(group.items[0]), int(group.items[1])
    if ssrc is None and m.ssrc:
        ssrc = m.ssrc[0].ssrc
    return OfferedMedia(
        index=index,
        kind=kind,
        mid=m.rtp.muxId or str(index),
        direction=m.direction or "sendrecv",
        payload_type=payload_type,
        fmtp=fmtp or None,
        feedback=feedback,
        extensions=extensions,
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
    )


def plan_offer(offer: Offer, new_ssrc: Callable[[], int]) -> Plan:
    """Decide each m-line's role. `new_ssrc()` returns a fresh SSRC for each slot line."""
    lines: list[LinePlan] = []
    publish: dict[str, OfferedMedia] = {}
    slots: dict[int, dict[str, OfferedMedia]] = {}
    slot_count = {"audio": 0, "video": 0}
    for m in offer.media:
        if m.kind not in CODEC_FOR_KIND or m.payload_type is None:
            lines.append(LinePlan("reject"))
        elif m.direction in SENDING_DIRECTIONS and m.kind not in publish and m.ssrc is not None:
            publish[m.kind] = m
            lines.append(LinePlan("publish"))
        elif m.direction in RECEIVING_DIRECTIONS:
            slot = slot_count[m.kind]
            slot_count[m.kind] += 1
            slots.setdefault(slot, {})[m.kind] = m
            lines.append(LinePlan("slot", slot=slot, ssrc=new_ssrc()))
        else:
            lines.append(LinePlan("reject"))
    return Plan(lines, publish, slots)


@dataclass(frozen=True, slots=True)
class LocalParameters:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    address: str
    port: int
    cname: str


def build_answer(offer: Offer, plan: Plan, local: LocalParameters) -> str:
    """Write the answer: BUNDLE over every accepted line, ICE-lite, DTLS server, rtcp-mux."""
    accepted = [m.mid for m, p in zip(offer.media, plan.lines, strict=True) if p.role != "reject"]
    if not accepted:
        raise SdpError("offer has no audio or video line the SFU can answer")
    ip_version = "IP6" if ":" in local.address else "IP4"
    out = [
        "v=0",
        f"o=- {abs(hash(local.ice_ufrag)) % 10**12} 1 IN {ip_version} {local.address}",
        "s=waitroom",
        "t=0 0",
        "a=ice-lite",
        "a=group:BUNDLE " + " ".join(accepted),
        "a=msid-semantic: WMS *",
    ]
    for m, p in zip(offer.media, plan.lines, strict=True):
        out.extend(_media_section(m, p, local, ip_version))
    return "\r\n".join(out) + "\r\n"


def _media_section(m: OfferedMedia, p: LinePlan, local: LocalParameters, ipv: str) -> list[str]:
    if p.role == "reject":
        proto = "UDP/TLS/RTP/SAVPF" if m.kind in CODEC_FOR_KIND else "UDP/DTLS/SCTP"
        fmt = str(m.payload_type) if m.payload_type is not None else "0"
        if m.kind == "application":
            fmt = "webrtc-datachannel"
        return [f"m={m.kind} 0 {proto} {fmt}", f"c=IN {ipv} {local.address}", f"a=mid:{m.mid}"]
    assert m.payload_type is not None
    name, clock = CODEC_FOR_KIND[m.kind]
    rtpmap = f"{'opus' if m.kind == 'audio' else 'VP8'}/{clock}" + ("/2" if name == "opus" else "")
    lines = [
        f"m={m.kind} {local.port} UDP/TLS/RTP/SAVPF {m.payload_type}",
        f"c=IN {ipv} {local.address}",
        f"a=mid:{m.mid}",
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        f"a=fingerprint:sha-256 {local.fingerprint}",
        "a=setup:passive",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=recvonly" if p.role == "publish" else "a=sendonly",
        f"a=rtpmap:{m.payload_type} {rtpmap}",
    ]
    if m.fmtp:
        lines.append(f"a=fmtp:{m.payload_type} {m.fmtp}")
    if m.kind == "video":
        for fb_type, fb_param in VIDEO_FEEDBACK:
            if (fb_type, fb_param) in m.feedback:
                suffix = f" {fb_param}" if fb_param else ""
                lines.append(f"a=rtcp-fb:{m.payload_type} {fb_type}{suffix}")
    for uri, ext_id in m.extensions.items():
        lines.append(f"a=extmap:{ext_id} {uri}")
    if p.role == "slot":
        assert p.ssrc is not None and p.slot is not None
        stream = f"slot{p.slot}"
        track = f"slot{p.slot}-{m.kind}"
        lines += [
            f"a=msid:{stream} {track}",
            f"a=ssrc:{p.ssrc} cname:{local.cname}-{p.slot}",
            f"a=ssrc:{p.ssrc} msid:{stream} {track}",
        ]
    lines += [
        f"a=candidate:1 1 udp {HOST_CANDIDATE_PRIORITY} {local.address} {local.port} typ host",
        "a=end-of-candidates",
    ]
    return lines
