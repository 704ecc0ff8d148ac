"""What a browser's call page says in SDP: the slot-model offer it sends, the answer it reads.

The offer is the one ``web/static/js/media.js`` sends (own audio and video ``sendonly``, then
``slots`` receive-only audio/video pairs, max-bundle). Kept apart from the peer's sockets so the
media tests can write offers and read answers without opening one. The payload types, clock
rates and pacing constants of the simulated media live here too, as the offer declares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import sdp as aiortc_sdp

AUDIO_PT = 111
VIDEO_PT = 96
AUDIO_CLOCK = 48000
VIDEO_CLOCK = 90000
AUDIO_PTIME = 0.020
AUDIO_TS_STEP = int(AUDIO_CLOCK * AUDIO_PTIME)
FRAME_RATE = 30
VIDEO_TS_STEP = VIDEO_CLOCK // FRAME_RATE
#: What the browser offers by default (media.js DEFAULT_SLOTS).
DEFAULT_SLOTS = 5
#: Header-extension URIs (RFC 8285 ``a=extmap``) and the ids Chrome offers them with.
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
CHROME_EXTENSION_IDS = {
    AUDIO_LEVEL_URI: 1,
    TWCC_URI: 3,
    MID_URI: 4,
    RID_URI: 10,
    REPAIRED_RID_URI: 11,
}
#: The layers media.js publishes for a large call, low to high (SIMULCAST_ENCODINGS).
SIMULCAST_RIDS = ("q", "h", "f")


class MediaPeerError(Exception):
    """Setting up media failed; ``kind`` names the step (for the load test's error table)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass
class Answer:
    ufrag: str
    pwd: str
    host: str
    port: int
    fingerprint: str
    slot_ssrcs: dict[tuple[int, str], int] = field(default_factory=dict)
    #: Extensions the SFU accepted on each publish line: kind -> uri -> id.
    publish_extensions: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Simulcast layers the SFU accepted (``a=rid:<id> recv``) on the video publish line.
    rids: list[str] = field(default_factory=list)
    #: Whether the SFU answered ``a=rtcp-fb:<pt> transport-cc`` on a publish line.
    transport_cc: bool = False


def offer_sdp(
    ufrag: str,
    pwd: str,
    fingerprint: str,
    audio: int,
    video: int,
    slots: int = DEFAULT_SLOTS,
    *,
    audio_slots: int | None = None,
    simulcast: bool = False,
    extensions: bool = False,
) -> str:
    """A Chrome-shaped offer: sendonly audio+video, then `slots` recvonly video lines and
    `audio_slots` (default `slots`) recvonly audio lines, slot by slot (audio first).

    ``extensions`` offers what Chrome does (audio level, transport-cc, MID; RID and repaired RID
    on video, transport-cc feedback); ``simulcast`` publishes video as `SIMULCAST_RIDS` with no
    SSRC signalled (``a=rid``/``a=simulcast:send``), as Chrome does with ``sendEncodings``.
    """
    audio_slots = slots if audio_slots is None else audio_slots
    extensions = extensions or simulcast
    kinds: list[tuple[str, str, int | None]] = [
        ("audio", "sendonly", audio),
        ("video", "sendonly", None if simulcast else video),
    ]
    for i in range(max(slots, audio_slots)):
        if i < audio_slots:
            kinds.append(("audio", "recvonly", None))
        if i < slots:
            kinds.append(("video", "recvonly", None))
    mids = list(range(len(kinds)))
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(map(str, mids)),
        "a=msid-semantic: WMS *",
    ]
    for mid, (kind, direction, ssrc) in zip(mids, kinds, strict=True):
        pt = AUDIO_PT if kind == "audio" else VIDEO_PT
        codec = "opus/48000/2" if kind == "audio" else "VP8/90000"
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}",
            "c=IN IP4 0.0.0.0",
            f"a=mid:{mid}",
            f"a={direction}",
            f"a=ice-ufrag:{ufrag}",
            f"a=ice-pwd:{pwd}",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:actpass",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} {codec}",
        ]
        if kind == "video":
            lines += [f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli", f"a=rtcp-fb:{pt} ccm fir"]
        if extensions:
            lines.append(f"a=rtcp-fb:{pt} transport-cc")
            uris = [AUDIO_LEVEL_URI] if kind == "audio" else []
            uris += [TWCC_URI, MID_URI]
            if kind == "video":
                uris += [RID_URI, REPAIRED_RID_URI]
            lines += [f"a=extmap:{CHROME_EXTENSION_IDS[uri]} {uri}" for uri in uris]
        if ssrc is not None:
            lines.append(f"a=ssrc:{ssrc} cname:fake")
        elif simulcast and kind == "video" and direction == "sendonly":
            lines += [f"a=rid:{rid} send" for rid in SIMULCAST_RIDS]
            lines.append("a=simulcast:send " + ";".join(SIMULCAST_RIDS))
    return "\r\n".join(lines) + "\r\n"


def parse_answer(text: str) -> Answer:
    """The SFU's answer: ICE credentials, its candidate, its DTLS fingerprint, slot SSRCs."""
    try:
        session = aiortc_sdp.SessionDescription.parse(text)
    except (ValueError, KeyError, IndexError) as error:
        raise MediaPeerError("bad_answer", str(error)) from None
    first = next((m for m in session.media if m.port), None)
    if first is None or first.ice is None or first.dtls is None:
        raise MediaPeerError("bad_answer", "no accepted media line with ICE and DTLS")
    fingerprint = next(
        (f.value.upper() for f in first.dtls.fingerprints if f.algorithm == "sha-256"), ""
    )
    candidate = first.ice_candidates[0] if first.ice_candidates else None
    host = candidate.ip if candidate is not None else "127.0.0.1"
    port = candidate.port if candidate is not None else first.port
    answer = Answer(
        str(first.ice.usernameFragment), str(first.ice.password), host, port, fingerprint
    )
    slot = {"audio": 0, "video": 0}
    for m in session.media:
        if m.direction == "sendonly" and m.ssrc:
            answer.slot_ssrcs[(slot[m.kind], m.kind)] = m.ssrc[0].ssrc
            slot[m.kind] += 1
        elif m.direction == "recvonly" and m.port:
            answer.publish_extensions[m.kind] = {ext.uri: ext.id for ext in m.rtp.headerExtensions}
            for codec in m.rtp.codecs:
                if any(fb.type == "transport-cc" for fb in codec.rtcpFeedback):
                    answer.transport_cc = True
    answer.rids = _answered_rids(text)
    return answer


def _answered_rids(text: str) -> list[str]:
    """The layers of ``a=rid:<id> recv`` (aiortc's parser does not keep them)."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("a=rid:"):
            bits = line[6:].split()
            if len(bits) >= 2 and bits[1] == "recv" and bits[0] not in out:
                out.append(bits[0])
    return out
