"""A protocol-level WebRTC peer: what a browser's call page does on the wire, without a browser.

It offers the slot-model SDP that ``web/static/js/media.js`` sends (own audio and video
``sendonly``, then ``slots`` receive-only audio/video pairs, max-bundle), answers the SFU's
ICE-lite with a STUN check carrying the right credentials, runs the DTLS client handshake and
refuses a server whose certificate does not match the answer's fingerprint, then speaks SRTP
(pylibsrtp) on its own UDP socket. The load tester publishes pre-encoded Opus and VP8 through it
at real-time pace and counts what it receives; the media tests use it (``tests/media/fakepeer.py``)
to talk to the worker exactly as a browser would, and to misbehave on purpose.

Many peers share one process: a :class:`MediaPump` task paces every peer's packets from a heap
and sends them with synchronous non-blocking ``sendto`` (no await per packet); each peer's
receive task waits for readability once and then drains its socket synchronously.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import os
import secrets
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pylibsrtp
import trio
from aioice import stun
from aiortc import sdp as aiortc_sdp
from OpenSSL import SSL, crypto

from media.dtls import (
    EXPORTER_LABEL,
    SRTP_PROFILES,
    Certificate,
    SrtpSessions,
    key_material_length,
    srtp_sessions,
)

RECV_TIMEOUT = 2.0
#: A STUN check is retransmitted this often until answered (RFC 8445 uses 50 ms..500 ms).
CHECK_RETRANSMIT = 0.25
#: When OpenSSL has no DTLS timer armed, look again this often.
DTLS_RETRANSMIT = 0.5
#: Consent freshness (RFC 7675): browsers re-check about every 5 s; the SFU expires at 30 s.
CONSENT_INTERVAL = 5.0
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
MAX_DATAGRAM = 2048
RECV_BATCH = 64
SOCKET_BUFFER_BYTES = 1024 * 1024
#: The pump sends everything due within this much of now in one wake-up.
PUMP_SLACK = 0.001
_RTP_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_RTP_FIRST_BYTE = range(128, 192)
_RTCP_PT = range(192, 224)
_STUN_FIRST_BYTE = range(0, 4)
_DTLS_FIRST_BYTE = range(20, 64)
#: Linux getsockopt(SOL_SOCKET, SO_MEMINFO): nine u32 counters, the last the socket's drops.
_SO_MEMINFO = 55
_MEMINFO = struct.Struct("9I")
#: The PRIORITY a browser's host candidate carries (type preference 126).
_CHECK_PRIORITY = 1853824767


def socket_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped on this socket (receive buffer full); 0 where unknown."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
        return int(_MEMINFO.unpack(raw)[8])
    except (OSError, struct.error):
        return 0


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


def offer_sdp(
    ufrag: str, pwd: str, fingerprint: str, audio: int, video: int, slots: int = DEFAULT_SLOTS
) -> str:
    """A Chrome-shaped offer: sendonly audio+video, then `slots` recvonly audio/video pairs."""
    mids = list(range(2 + 2 * slots))
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(map(str, mids)),
        "a=msid-semantic: WMS *",
    ]
    kinds: list[tuple[str, str, int | None]] = [
        ("audio", "sendonly", audio),
        ("video", "sendonly", video),
    ]
    kinds += [(k, "recvonly", None) for _ in range(slots) for k in ("audio", "video")]
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
            lines += [f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli"]
        if ssrc is not None:
            lines.append(f"a=ssrc:{ssrc} cname:fake")
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
    return answer


@dataclass(frozen=True)
class Clip:
    """Pre-encoded media replayed in a loop: Opus payloads (20 ms each), VP8 frames (packets).

    ``video[0]`` is the keyframe, sent once; the loop replays ``video[1:]`` (delta frames), so the
    bit rate stays that of a steady call instead of a keyframe every loop.
    """

    audio: tuple[bytes, ...]
    video: tuple[tuple[bytes, ...], ...]

    def stats(self) -> dict[str, float]:
        deltas = self.video[1:]
        return {
            "audio_bytes_per_packet": sum(map(len, self.audio)) / len(self.audio),
            "video_packets_per_frame": sum(map(len, deltas)) / len(deltas),
            "video_kbps": sum(len(p) for f in deltas for p in f)
            * 8
            * FRAME_RATE
            / len(deltas)
            / 1000,
            "keyframe_packets": len(self.video[0]),
        }


#: Clip generation: 640x480 (media.js's ideal), a textured gradient panning sideways so the VP8
#: encoder produces delta frames of realistic size (about 2 packets per frame at aiortc's
#: 500 kbit/s default), and a speech-band tone for Opus at a browser-like 32 kbit/s.
CLIP_SECONDS = 2.0
CLIP_SIZE = (640, 480)
CLIP_NOISE = 48
OPUS_BITRATE = 32000


#: Bump when make_clip changes, so a stale cached clip is not replayed.
CLIP_VERSION = 1


def clip_cache_path() -> Path:
    return Path(tempfile.gettempdir()) / f"waitroom-loadtest-clip-v{CLIP_VERSION}.msgpack"


@functools.cache
def load_clip() -> Clip:
    """The clip, encoded once per host and cached: load-generator processes start at once.

    A missing, unreadable or malformed cache file is simply re-encoded and rewritten (atomically,
    so processes starting together never read half a file).
    """
    path = clip_cache_path()
    with contextlib.suppress(OSError, ValueError, TypeError, msgpack.UnpackException):
        audio, video = msgpack.unpackb(path.read_bytes())
        clip = Clip(tuple(audio), tuple(tuple(frame) for frame in video))
        if clip.audio and len(clip.video) > 1 and all(isinstance(a, bytes) for a in clip.audio):
            return clip
    clip = make_clip()
    with contextlib.suppress(OSError):
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(msgpack.packb([list(clip.audio), [list(f) for f in clip.video]]))
        partial.replace(path)
    return clip


@functools.cache
def make_clip(seconds: float = CLIP_SECONDS) -> Clip:
    """Encode a short clip once per process with aiortc's encoders (PyAV, libvpx, libopus)."""
    import fractions

    import numpy
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from av import AudioFrame, VideoFrame

    width, height = CLIP_SIZE
    rng = numpy.random.default_rng(1)
    gradient = (
        numpy.linspace(0, 180, height)[:, None, None]
        + numpy.linspace(0, 60, 2 * width)[None, :, None]
    )
    texture = (gradient + rng.integers(0, CLIP_NOISE, (height, 2 * width, 3))).clip(0, 255)
    texture = texture.astype(numpy.uint8)
    video_codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=VIDEO_CLOCK, payloadType=96)
    video_encoder = get_encoder(video_codec)
    frames: list[tuple[bytes, ...]] = []
    for i in range(int(seconds * FRAME_RATE)):
        x = (i * 6) % width
        frame = VideoFrame.from_ndarray(
            numpy.ascontiguousarray(texture[:, x : x + width, :]), format="bgr24"
        )
        frame.pts, frame.time_base = i * VIDEO_TS_STEP, fractions.Fraction(1, VIDEO_CLOCK)
        payloads, _ = video_encoder.encode(frame)
        frames.append(tuple(payloads))
    audio_codec = RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=AUDIO_CLOCK, channels=2, payloadType=111
    )
    audio_encoder = get_encoder(audio_codec)
    audio_encoder.codec.bit_rate = OPUS_BITRATE  # type: ignore[attr-defined]
    packets: list[bytes] = []
    for i in range(int(seconds / AUDIO_PTIME)):
        t = numpy.arange(AUDIO_TS_STEP) + i * AUDIO_TS_STEP
        wave = (numpy.sin(2 * numpy.pi * 220 * t / AUDIO_CLOCK) * 6000).astype(numpy.int16)
        pcm = numpy.stack([wave, wave], axis=1).reshape(1, -1)
        audio = AudioFrame.from_ndarray(numpy.ascontiguousarray(pcm), format="s16", layout="stereo")
        audio.sample_rate = AUDIO_CLOCK
        audio.pts, audio.time_base = i * AUDIO_TS_STEP, fractions.Fraction(1, AUDIO_CLOCK)
        payloads, _ = audio_encoder.encode(audio)
        packets.extend(payloads)
    return Clip(tuple(packets), tuple(frames))


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


def _identity(data: bytes) -> bytes:
    return data


class MediaPeer:
    """One simulated browser: its own socket, ICE credentials, certificate and SSRCs.

    ``secure=False`` skips ICE, DTLS and SRTP (plain RTP to a relay): the reference run of
    ``bench/media_load.py`` sends the same packets through a raw UDP forwarder.
    """

    def __init__(
        self,
        role: str = "peer",
        certificate: Certificate | None = None,
        announce: str | None = None,
        *,
        secure: bool = True,
    ) -> None:
        self.role = role
        self.other = {"caller": "provider", "provider": "caller"}.get(role, "peer")
        self.secure = secure
        self.certificate = certificate or Certificate.generate()
        # The fingerprint put in the offer; a hostile peer announces one cert and presents another.
        self.announced_fingerprint = announce or self.certificate.fingerprint
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.audio_ssrc = secrets.randbelow(2**31) + 1
        self.video_ssrc = secrets.randbelow(2**31) + 1
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.raw.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.raw.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        self.sock = trio.socket.from_stdlib_socket(self.raw)
        self.server: tuple[str, int] = ("127.0.0.1", 0)
        self.answer: Answer | None = None
        self.srtp: SrtpSessions | None = None
        self.srtp_profile = b""
        self.key_material = b""
        self.seq = 0
        #: How long a connectivity check and the DTLS handshake may take (a browser waits longer
        #: than a test: the load test raises these).
        self.check_timeout = RECV_TIMEOUT
        self.handshake_timeout = 2 * RECV_TIMEOUT
        self.protect: Callable[[bytes], bytes] = _identity
        self.unprotect: Callable[[bytes], bytes] = _identity
        self.streams: dict[int, ReceiveStream] = {}
        self.publishing = False
        self._seqs = {AUDIO_PT: secrets.randbelow(0x8000), VIDEO_PT: secrets.randbelow(0x8000)}
        self._ts_base = {AUDIO_PT: secrets.randbelow(2**31), VIDEO_PT: secrets.randbelow(2**31)}

    # -- signalling ---------------------------------------------------------------------------

    def bind(self, host: str = "127.0.0.1") -> None:
        self.raw.bind((host, 0))

    def offer(self, slots: int = DEFAULT_SLOTS) -> str:
        return offer_sdp(
            self.ufrag,
            self.pwd,
            self.announced_fingerprint,
            self.audio_ssrc,
            self.video_ssrc,
            slots,
        )

    def accept(self, answer_sdp: str) -> Answer:
        self.answer = parse_answer(answer_sdp)
        self.server = (self.answer.host, self.answer.port)
        return self.answer

    # -- ICE, DTLS, SRTP ----------------------------------------------------------------------

    def binding_request(self, password: str | None = None, username: str | None = None) -> bytes:
        assert self.answer is not None
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = username or f"{self.answer.ufrag}:{self.ufrag}"
        request.attributes["PRIORITY"] = _CHECK_PRIORITY
        request.attributes["ICE-CONTROLLING"] = 1
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity((password or self.answer.pwd).encode())
        return bytes(request)

    async def check(self, password: str | None = None) -> stun.Message:
        """Send a connectivity check (retransmitted) and return the server's response."""
        request = self.binding_request(password)
        with trio.fail_after(self.check_timeout):
            while True:
                await self.sock.sendto(request, self.server)
                with trio.move_on_after(CHECK_RETRANSMIT):
                    return stun.parse_message(await self.recv_kind(_STUN_FIRST_BYTE))

    async def recv_kind(self, first_bytes: range) -> bytes:
        with trio.fail_after(RECV_TIMEOUT):
            while True:
                data, _ = await self.sock.recvfrom(MAX_DATAGRAM)
                if data and data[0] in first_bytes:
                    return data

    def _server_certificate_ok(
        self, _conn: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, _ok: int
    ) -> bool:
        """Self-signed, as in every WebRTC call: the answer's fingerprint is what is checked."""
        if depth != 0 or self.answer is None or not self.answer.fingerprint:
            return True
        return bool(cert.digest("sha256").decode().upper() == self.answer.fingerprint)

    async def handshake(self) -> None:
        """DTLS client handshake; raises SSL.Error if either side refuses the other."""
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(self.certificate.cert)
        ctx.use_privatekey(self.certificate.key)
        ctx.set_tlsext_use_srtp(SRTP_PROFILES)
        ctx.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._server_certificate_ok
        )
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        with trio.fail_after(self.handshake_timeout):
            while True:
                try:
                    conn.do_handshake()
                    done = True
                except SSL.WantReadError:
                    done = False
                while True:
                    try:
                        out = conn.bio_read(65536)
                    except SSL.WantReadError:
                        break
                    await self.sock.sendto(out, self.server)
                if done:
                    break
                # Retransmit our flight when OpenSSL's timer says so (a lost datagram on a busy
                # host must not stall the call), as browsers do.
                timeout = conn.DTLSv1_get_timeout()
                with trio.move_on_after(DTLS_RETRANSMIT if timeout is None else timeout):
                    conn.bio_write(await self.recv_kind(_DTLS_FIRST_BYTE))
                    continue
                conn.DTLSv1_handle_timeout()
        profile = conn.get_selected_srtp_profile()
        material = conn.export_keying_material(EXPORTER_LABEL, key_material_length(profile))
        self.srtp = srtp_sessions(profile, material, is_server=False)
        self.srtp_profile, self.key_material = profile, material
        self.protect, self.unprotect = self.srtp.tx.protect, self.srtp.rx.unprotect

    async def establish(self) -> None:
        """ICE check then DTLS, as a browser does once it has the answer."""
        try:
            response = await self.check()
        except trio.TooSlowError:
            raise MediaPeerError("ice_timeout") from None
        if response.message_class != stun.Class.RESPONSE:
            raise MediaPeerError("ice_refused", str(response.attributes.get("ERROR-CODE")))
        try:
            await self.handshake()
        except trio.TooSlowError:
            raise MediaPeerError("dtls_timeout") from None
        except SSL.Error as error:
            raise MediaPeerError("dtls_refused", str(error)) from None

    def attach_raw(self, relay: tuple[str, int], hello: bytes) -> None:
        """Reference mode: no ICE/DTLS/SRTP; register with the relay by a hello datagram."""
        self.server = relay
        self.raw.sendto(hello, relay)

    # -- test helpers: single packets ---------------------------------------------------------

    def rtp(self, ssrc: int, payload: bytes = b"\x10" + bytes(99), pt: int = VIDEO_PT) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        header = _RTP_HEADER.pack(0x80, pt, self.seq, self.seq * 3000, ssrc)
        return header + payload

    async def send_media(self, count: int = 1) -> None:
        assert self.srtp is not None
        for _ in range(count):
            await self.sock.sendto(self.srtp.tx.protect(self.rtp(self.video_ssrc)), self.server)

    async def receive_media(self, ssrc: int, timeout: float = RECV_TIMEOUT) -> bytes:
        """The next RTP packet (decrypted) the server sends us with `ssrc`."""
        assert self.srtp is not None
        with trio.fail_after(timeout):
            while True:
                data = await self.recv_kind(_RTP_FIRST_BYTE)
                if data[1] in _RTCP_PT:
                    continue
                plain = self.srtp.rx.unprotect(data)
                if struct.unpack_from("!I", plain, 8)[0] == ssrc:
                    return plain

    # -- load: paced publishing and counted receiving -----------------------------------------

    def send_rtp(
        self, tally: MediaTally, pt: int, payload: bytes, index: int, marker: bool
    ) -> None:
        """Protect and send one packet now (synchronous; a full buffer counts, never waits)."""
        seq = self._seqs[pt] = (self._seqs[pt] + 1) & 0xFFFF
        step = AUDIO_TS_STEP if pt == AUDIO_PT else VIDEO_TS_STEP
        ts = (self._ts_base[pt] + index * step) & 0xFFFFFFFF
        ssrc = self.audio_ssrc if pt == AUDIO_PT else self.video_ssrc
        packet = _RTP_HEADER.pack(0x80, pt | (0x80 if marker else 0), seq, ts, ssrc) + payload
        flow = tally.flow(f"{self.role}->{self.other}/{'audio' if pt == AUDIO_PT else 'video'}")
        try:
            self.raw.sendto(self.protect(packet), self.server)
        except BlockingIOError:
            flow.send_dropped += 1
            return
        except OSError:
            flow.send_dropped += 1
            return
        flow.sent += 1
        flow.sent_bytes += len(packet)

    def send_consent(self) -> None:
        if self.secure and self.answer is not None:
            # A failed send is retried at the next interval; consent expires only after 30 s.
            with contextlib.suppress(OSError):
                self.raw.sendto(self.binding_request(), self.server)

    async def receive(self, tally: MediaTally) -> None:
        """Count every packet the server sends us until cancelled: one await per wake-up."""
        recv, on_datagram = self.raw.recv, self._on_datagram
        while True:
            await trio.lowlevel.wait_readable(self.raw)
            for _ in range(RECV_BATCH):
                try:
                    data = recv(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError:
                    continue  # ICMP unreachable from an earlier send, reported on this socket
                on_datagram(data, tally)

    def _on_datagram(self, data: bytes, tally: MediaTally) -> None:
        if len(data) < 12 or data[0] not in _RTP_FIRST_BYTE:
            if data and data[0] in _STUN_FIRST_BYTE:
                tally.stun_in += 1
            return
        if data[1] in _RTCP_PT:
            tally.rtcp_in += 1
            return
        try:
            plain = self.unprotect(data)
        except pylibsrtp.Error:
            tally.srtp_errors += 1
            return
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(plain, 2)
        stream = self.streams.get(ssrc)
        if stream is None:
            audio = plain[1] & 0x7F == AUDIO_PT
            kind = "audio" if audio else "video"
            stream = self.streams[ssrc] = ReceiveStream(
                f"{self.other}->{self.role}/{kind}", AUDIO_CLOCK if audio else VIDEO_CLOCK
            )
        stream.on_packet(seq, ts, time.monotonic())
        tally.flow(stream.key).received += 1

    def close(self) -> None:
        self.publishing = False
        self.sock.close()


class MediaPump:
    """Paces every publishing peer of a process from one heap: 50 Opus packets/s, 30 VP8 frames/s.

    Each packet's RTP timestamp is its scheduled time, so any lateness of the pump, the SFU or the
    receiver shows up as interarrival jitter at the receiver. Start offsets are random so a
    hundred peers do not send in lockstep.
    """

    def __init__(self, clip: Clip, tally: MediaTally) -> None:
        self.clip = clip
        self.tally = tally
        self._heap: list[tuple[float, int, int, MediaPeer, int]] = []
        self._order = 0
        self._wake = trio.Event()

    def add(self, peer: MediaPeer) -> None:
        """Start publishing ``peer`` now (audio, video and consent checks)."""
        now = trio.current_time()
        peer.publishing = True
        self.tally.live.add(peer)
        offset = secrets.randbelow(1000) / 1000 * AUDIO_PTIME
        self._push(now + offset, peer, AUDIO_PT, 0)
        self._push(now + offset, peer, VIDEO_PT, 0)
        self._push(now + CONSENT_INTERVAL, peer, 0, 0)
        self._wake.set()

    def remove(self, peer: MediaPeer) -> None:
        """Stop publishing (its heap entries lapse) and fold its receive counts into the tally."""
        if peer in self.tally.live:
            peer.publishing = False
            self.tally.retire(peer)

    def _push(self, due: float, peer: MediaPeer, kind: int, index: int) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, index, peer, kind))

    def _send_due(self, now: float) -> None:
        heap, clip, tally = self._heap, self.clip, self.tally
        audio, video = clip.audio, clip.video
        loop = len(video) - 1
        while heap and heap[0][0] <= now + PUMP_SLACK:
            due, _, index, peer, kind = heapq.heappop(heap)
            if not peer.publishing:
                continue
            if kind == AUDIO_PT:
                peer.send_rtp(tally, AUDIO_PT, audio[index % len(audio)], index, False)
                self._push(due + AUDIO_PTIME, peer, kind, index + 1)
            elif kind == VIDEO_PT:
                frame = video[0] if index == 0 else video[1 + (index - 1) % loop]
                last = len(frame) - 1
                for n, payload in enumerate(frame):
                    peer.send_rtp(tally, VIDEO_PT, payload, index, n == last)
                self._push(due + 1 / FRAME_RATE, peer, kind, index + 1)
            else:
                peer.send_consent()
                self._push(due + CONSENT_INTERVAL, peer, kind, index + 1)

    async def run(self) -> None:
        """Send until cancelled; sleeps until the next packet is due (or a peer is added)."""
        while True:
            self._send_due(trio.current_time())
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake = trio.Event()
