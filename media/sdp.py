"""Reading browser offers and writing the SFU's answers, sans-IO.

Offers are parsed here, only as far as the SFU needs (standard library only, so a media worker
does not load aiortc and its asyncio machinery); answers are written as text for exact control
over the lines Chrome needs (`a=ice-lite`, `a=setup:passive`, one codec per m-line, declared
SSRCs on the slots it sends).

The slot model (see docs/media.md): an m-line the peer sends on is a *publish* line (at most one
audio and one video); every further m-line the peer can receive on is a *slot* line; the n-th audio
slot line and the n-th video slot line together are slot n. The server answers slot lines
`sendonly` with an SSRC of its own, and never needs to renegotiate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

OPUS = ("opus", 48000)
VP8 = ("vp8", 90000)
# The codec each kind is forwarded in: every browser supports both, so no transcoding is needed.
CODEC_FOR_KIND = {"audio": OPUS, "video": VP8}
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
# Extensions forwarded end to end (ids rewritten per subscriber).
EXTENSIONS_FOR_KIND = {"audio": (AUDIO_LEVEL_URI,), "video": (ABS_SEND_TIME_URI,)}
# Extensions the SFU reads on a publish line and never forwards (they describe the publisher's own
# stream or transport; the forwarder blanks them): transport-cc numbers for the feedback the SFU
# generates (media/twcc.py), MID/RID/repaired RID to bind simulcast layers whose SSRCs were not
# signalled. Slot lines never get them: subscribers demultiplex by the SSRCs the answer declares.
PUBLISH_EXTENSIONS = (TWCC_URI,)
SIMULCAST_EXTENSIONS = (MID_URI, RID_URI, REPAIRED_RID_URI)
# Feedback the SFU handles for video (NACK from its cache, PLI/FIR coalesced, REMB rewritten).
VIDEO_FEEDBACK = (("nack", None), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", None))
# transport-cc feedback is generated for what a peer publishes (answered on publish lines only).
TRANSPORT_CC_FEEDBACK = ("transport-cc", None)
# Simulcast layers read from `a=rid:... send` / `a=simulcast:send` (RFC 8851, RFC 8853).
MAX_SIMULCAST_LAYERS = 3
_RID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
SENDING_DIRECTIONS = frozenset({"sendrecv", "sendonly"})
RECEIVING_DIRECTIONS = frozenset({"sendrecv", "recvonly"})
# RFC 8445 section 5.1.2.1 recommended host candidate priority for a single component.
HOST_CANDIDATE_PRIORITY = 2130706431
# RFC 6544 section 4.2: a passive TCP host candidate, local preference 2^13 * 4 + 8191 (direction
# preference 4 for passive), so the browser prefers UDP whenever both work.
TCP_HOST_CANDIDATE_PRIORITY = (126 << 24) | (((4 << 13) | 8191) << 8) | 255
_FINGERPRINT_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){31}$")
_MLINE_RE = re.compile(r"^m=([^ ]+) [0-9]+ [A-Z/]+ (.+)$")
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
PAYLOAD_TYPE_MAX = 255
# RFC 5761 section 4: payload types that collide with RTCP packet types once the marker is set.
_FORBIDDEN_PAYLOAD_TYPES = range(72, 77)


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
    #: Every extension the line offers (uri -> id): the publish-only ones are chosen from it.
    offered_extensions: dict[str, int] = field(default_factory=dict)
    #: Simulcast layers the peer sends, in its `a=simulcast:send` order (empty: one layer).
    rids: list[str] = field(default_factory=list)


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
    #: The extensions answered on this line (uri -> the offer's id).
    extensions: dict[str, int] = field(default_factory=dict)
    #: Simulcast layers accepted on a publish line (answered `a=rid:<id> recv`).
    rids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """The media roles of an offer: publish lines, and slot lines grouped by slot index."""

    lines: list[LinePlan]
    publish: dict[str, OfferedMedia]  # kind -> line
    slots: dict[int, dict[str, OfferedMedia]]  # slot -> kind -> line


def parse_offer(text: str) -> Offer:
    """Parse an offer; raise SdpError for anything the SFU cannot or will not answer."""
    try:
        session = _parse_session(text)
    except (ValueError, IndexError) as exc:
        raise SdpError(f"unparseable offer: {exc!r}") from exc
    if not session:
        raise SdpError("offer has no m-lines")
    first = session[0]
    if not first.ice_ufrag or not first.ice_pwd:
        raise SdpError("offer lacks ICE credentials")
    fingerprint = None
    if first.setup is not None:
        for algorithm, value in first.fingerprints:
            if algorithm.lower() == "sha-256":
                fingerprint = value.upper()
    if fingerprint is None or not _FINGERPRINT_RE.match(fingerprint):
        raise SdpError("offer lacks a SHA-256 DTLS fingerprint")
    offer = Offer(first.ice_ufrag, first.ice_pwd, fingerprint)
    for index, m in enumerate(session):
        offer.media.append(_reduce_media(index, m))
    return offer


@dataclass(slots=True)
class _Codec:
    payload_type: int
    name: str  # lower case
    clock_rate: int
    parameters: dict[str, str | None] = field(default_factory=dict)
    feedback: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    """One m-line with the attributes the SFU reads (session-level ICE and DTLS inherited)."""

    kind: str
    formats: list[str]
    ice_ufrag: str | None
    ice_pwd: str | None
    fingerprints: list[tuple[str, str]]
    setup: str | None
    mid: str | None = None
    direction: str | None = None
    codecs: list[_Codec] = field(default_factory=list)
    extensions: list[tuple[int, str]] = field(default_factory=list)
    ssrcs: list[int] = field(default_factory=list)
    ssrc_groups: list[tuple[str, list[int]]] = field(default_factory=list)
    send_rids: list[str] = field(default_factory=list)
    simulcast_send: list[str] = field(default_factory=list)


def _attribute(line: str) -> tuple[str, str]:
    name, _, value = line[2:].partition(":")
    return name, value


def _parse_session(text: str) -> list[_Section]:
    """The m-lines of an SDP (RFC 8866), reduced to what `_reduce_media` reads."""
    ufrag = pwd = setup = None
    fingerprints: list[tuple[str, str]] = []
    sections: list[_Section] = []
    bodies: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("m="):
            match = _MLINE_RE.match(line)
            if match is None:
                raise ValueError(f"bad m-line {line!r}")
            kind, formats = match.group(1), match.group(2).split()
            if kind in CODEC_FOR_KIND:
                for fmt in formats:
                    pt = int(fmt)
                    if not 0 <= pt <= PAYLOAD_TYPE_MAX or pt in _FORBIDDEN_PAYLOAD_TYPES:
                        raise ValueError(f"bad payload type {pt}")
            sections.append(_Section(kind, formats, ufrag, pwd, list(fingerprints), setup))
            bodies.append([])
        elif bodies:
            bodies[-1].append(line)
        elif line.startswith("a="):
            name, value = _attribute(line)
            if name == "ice-ufrag":
                ufrag = value
            elif name == "ice-pwd":
                pwd = value
            elif name == "fingerprint":
                algorithm, digest = value.split()
                fingerprints.append((algorithm, digest))
            elif name == "setup":
                setup = value
    for section, body in zip(sections, bodies, strict=True):
        _parse_section(section, body)
    return sections


def _parse_section(m: _Section, body: list[str]) -> None:
    codecs: dict[int, _Codec] = {}
    attributes = [_attribute(line) for line in body if line.startswith("a=")]
    for name, value in attributes:
        if name == "ice-ufrag":
            m.ice_ufrag = value
        elif name == "ice-pwd":
            m.ice_pwd = value
        elif name == "fingerprint":
            algorithm, digest = value.split()
            m.fingerprints.append((algorithm, digest))
        elif name == "setup":
            m.setup = value
        elif name == "mid":
            m.mid = value
        elif name in _DIRECTIONS:
            m.direction = name
        elif name == "rtpmap":
            pt, description = value.split(" ", 1)
            bits = description.split("/")
            codec = _Codec(int(pt), bits[0].lower(), int(bits[1]))
            codecs[codec.payload_type] = codec
            m.codecs.append(codec)
        elif name == "extmap":
            ext_id, uri = value.split()[:2]
            m.extensions.append((int(ext_id.split("/")[0]), uri))
        elif name == "ssrc":
            ssrc = int(value.split(" ", 1)[0])
            if ssrc not in m.ssrcs:
                m.ssrcs.append(ssrc)
        elif name == "ssrc-group":
            semantic, *items = value.split()
            m.ssrc_groups.append((semantic, [int(item) for item in items]))
        elif name == "rid":
            bits = value.split()
            send = len(bits) >= 2 and bits[1] == "send" and _RID_RE.match(bits[0])
            if send and bits[0] not in m.send_rids:
                m.send_rids.append(bits[0])
        elif name == "simulcast":
            m.simulcast_send = _simulcast_send(value)
    # fmtp and rtcp-fb refer to codecs, which may be declared after them.
    for name, value in attributes:
        if name == "fmtp":
            pt, parameters = value.split(" ", 1)
            target = codecs.get(int(pt))
            if target is not None:
                target.parameters = _fmtp_parameters(parameters)
        elif name == "rtcp-fb":
            bits = value.split(" ", 2)
            for codec in m.codecs:
                if bits[0] in ("*", str(codec.payload_type)):
                    codec.feedback.append((bits[1], bits[2] if len(bits) > 2 else None))


def _simulcast_send(value: str) -> list[str]:
    """The send streams of `a=simulcast:` (RFC 8853): first alternative of each, paused ones too."""
    bits = value.split()
    for direction, streams in zip(bits[::2], bits[1::2], strict=False):
        if direction == "send":
            out: list[str] = []
            for stream in streams.split(";"):
                rid = stream.split(",")[0].lstrip("~")
                if _RID_RE.match(rid) and rid not in out:
                    out.append(rid)
            return out
    return []


def _fmtp_parameters(text: str) -> dict[str, str | None]:
    parameters: dict[str, str | None] = {}
    for param in text.split(";"):
        key, sep, value = param.partition("=")
        parameters[key] = value if sep else None
    return parameters


def _reduce_media(index: int, m: _Section) -> OfferedMedia:
    kind = m.kind
    wanted = CODEC_FOR_KIND.get(kind)
    payload_type = None
    fmtp = None
    feedback: list[tuple[str, str | None]] = []
    if wanted is not None:
        for codec in m.codecs:
            if (codec.name, codec.clock_rate) == wanted:
                payload_type = codec.payload_type
                fmtp = ";".join(
                    f"{k}={v}" if v is not None else k for k, v in codec.parameters.items()
                )
                feedback = list(codec.feedback)
                break
    extensions = {
        uri: ext_id for ext_id, uri in m.extensions if uri in EXTENSIONS_FOR_KIND.get(kind, ())
    }
    offered = {uri: ext_id for ext_id, uri in m.extensions}
    # A layer must be declared by `a=rid` and listed by `a=simulcast:send`, and the RID header
    # extension must be offered to bind its SSRC; otherwise the line is one ordinary stream.
    rids: list[str] = []
    if kind == "video" and MID_URI in offered and RID_URI in offered:
        rids = [r for r in m.simulcast_send if r in m.send_rids][:MAX_SIMULCAST_LAYERS]
    ssrc = rtx_ssrc = None
    for semantic, items in m.ssrc_groups:
        if semantic == "FID" and len(items) >= 2:
            ssrc, rtx_ssrc = items[0], items[1]
    if ssrc is None and m.ssrcs:
        ssrc = m.ssrcs[0]
    return OfferedMedia(
        index=index,
        kind=kind,
        mid=m.mid or str(index),
        direction=m.direction or "sendrecv",
        payload_type=payload_type,
        fmtp=fmtp or None,
        feedback=feedback,
        extensions=extensions,
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
        offered_extensions=offered,
        rids=rids,
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
        elif (
            m.direction in SENDING_DIRECTIONS
            and m.kind not in publish
            and (m.ssrc is not None or m.rids)
        ):
            publish[m.kind] = m
            lines.append(LinePlan("publish", extensions=publish_extensions(m), rids=list(m.rids)))
        elif m.direction in RECEIVING_DIRECTIONS:
            slot = slot_count[m.kind]
            slot_count[m.kind] += 1
            slots.setdefault(slot, {})[m.kind] = m
            lines.append(
                LinePlan("slot", slot=slot, ssrc=new_ssrc(), extensions=dict(m.extensions))
            )
        else:
            lines.append(LinePlan("reject"))
    return Plan(lines, publish, slots)


def publish_extensions(m: OfferedMedia) -> dict[str, int]:
    """The extensions answered on a publish line: forwarded ones, transport-cc, simulcast ids."""
    out = dict(m.extensions)
    wanted: tuple[str, ...] = SIMULCAST_EXTENSIONS if m.rids else ()
    if TRANSPORT_CC_FEEDBACK in m.feedback:  # the extension alone would starve Chrome's sender
        wanted = PUBLISH_EXTENSIONS + wanted
    for uri in wanted:
        ext_id = m.offered_extensions.get(uri)
        if ext_id is not None:
            out[uri] = ext_id
    return out


@dataclass(frozen=True, slots=True)
class LocalParameters:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    address: str
    port: int
    cname: str
    #: ICE-TCP port (a passive candidate, RFC 6544) or 0 for none.
    tcp_port: int = 0
    #: False offers no UDP candidate (tests of the ICE-TCP path).
    udp: bool = True


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
    if p.role == "publish" and TWCC_URI in p.extensions and TRANSPORT_CC_FEEDBACK in m.feedback:
        lines.append(f"a=rtcp-fb:{m.payload_type} transport-cc")
    for uri, ext_id in p.extensions.items():
        lines.append(f"a=extmap:{ext_id} {uri}")
    if p.role == "publish" and p.rids:
        lines += [f"a=rid:{rid} recv" for rid in p.rids]
        lines.append("a=simulcast:recv " + ";".join(p.rids))
    if p.role == "slot":
        assert p.ssrc is not None and p.slot is not None
        # A stream (and a CNAME) of its own per line: slot n's audio and video may carry two
        # different people in a large call, and Chrome lip-syncs the audio and video of one
        # stream, which would then delay one person's sound or picture to match another's.
        stream = f"slot{p.slot}-{m.kind}"
        track = f"{stream}-track"
        lines += [
            f"a=msid:{stream} {track}",
            f"a=ssrc:{p.ssrc} cname:{local.cname}-{p.slot}-{m.kind}",
            f"a=ssrc:{p.ssrc} msid:{stream} {track}",
        ]
    lines += _candidates(local)
    return lines


def _candidates(local: LocalParameters) -> list[str]:
    """The host candidates: UDP, and passive TCP (RFC 6544) when the worker listens on TCP."""
    out: list[str] = []
    if local.udp:
        out.append(
            f"a=candidate:1 1 udp {HOST_CANDIDATE_PRIORITY} {local.address} {local.port} typ host"
        )
    if local.tcp_port:
        out.append(
            f"a=candidate:2 1 tcp {TCP_HOST_CANDIDATE_PRIORITY} {local.address} {local.tcp_port}"
            " typ host tcptype passive"
        )
    out.append("a=end-of-candidates")
    return out
