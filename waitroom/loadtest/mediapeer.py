"""A protocol-level WebRTC peer: what a browser's call page does on the wire, without a browser.

It offers the slot-model SDP (``peersdp``), answers the SFU's ICE-lite with a STUN check carrying
the right credentials, runs the DTLS client handshake and refuses a server whose certificate does
not match the answer's fingerprint, then speaks SRTP (pylibsrtp) on its own UDP socket. The load
tester publishes the pre-encoded clip (``clip``) through it at real-time pace (``pacer``) and
counts what it receives (``tally``); the media tests use it (``tests/media/fakepeer.py``) to talk
to the worker exactly as a browser would, and to misbehave on purpose. Datagrams are told apart
by the same first-byte ranges as the SFU's (``media.demux``).

Each peer's receive task waits for readability once and then drains its socket synchronously.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import time
from collections.abc import Callable

import pylibsrtp
import trio
from aioice import stun
from OpenSSL import SSL, crypto

from media import rtcp
from media.demux import DTLS_FIRST_BYTES, RTCP_PACKET_TYPES, RTP_FIRST_BYTES, STUN_FIRST_BYTES
from media.dtls import (
    EXPORTER_LABEL,
    SRTP_PROFILES,
    Certificate,
    SrtpSessions,
    key_material_length,
    srtp_sessions,
)
from media.rtcp import RtcpError
from media.rtp import RTP_HEADER_LENGTH, RtpError, header_length
from media.rtpext import ExtensionError, build_one_byte_block
from media.vp8 import Vp8Error, parse_descriptor
from waitroom.loadtest.clip import Clip, load_clip, make_clip
from waitroom.loadtest.pacer import MediaPump
from waitroom.loadtest.peersdp import (
    AUDIO_CLOCK,
    AUDIO_LEVEL_URI,
    AUDIO_PT,
    AUDIO_TS_STEP,
    DEFAULT_SLOTS,
    MID_URI,
    RID_URI,
    SIMULCAST_RIDS,
    TWCC_URI,
    VIDEO_CLOCK,
    VIDEO_PT,
    VIDEO_TS_STEP,
    Answer,
    MediaPeerError,
    offer_sdp,
    parse_answer,
)
from waitroom.loadtest.tally import Flow, MediaTally, ReceiveStream, socket_drops

RECV_TIMEOUT = 2.0
#: A STUN check is retransmitted this often until answered (RFC 8445 uses 50 ms..500 ms).
CHECK_RETRANSMIT = 0.25
#: When OpenSSL has no DTLS timer armed, look again this often.
DTLS_RETRANSMIT = 0.5
MAX_DATAGRAM = 2048
RECV_BATCH = 64
SOCKET_BUFFER_BYTES = 1024 * 1024
_RTP_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
#: The PRIORITY a browser's host candidate carries (type preference 126).
_CHECK_PRIORITY = 1853824767
#: RFC 6464: the V (voice activity) bit of the level byte.
VOICE_BIT = 0x80
#: A level at or below this -dBov is flagged as voice (libwebrtc's VAD says about as much).
VOICE_LEVEL = 60
_U32 = 0xFFFFFFFF
_FRACTION_LOST_MAX = 255

#: Audio level in -dBov (0 loudest, 127 silence) at a given (Trio) time, or None for no level.
LevelSchedule = Callable[[float], int]


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
        simulcast: bool = False,
        extensions: bool = False,
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
        # -- large calls (issue 11): what Chrome's large-call page sends beyond the clip --------
        #: Publish video as three layers on SSRCs never signalled, bound by MID/RID.
        self.simulcast = simulcast
        #: Offer (and, once answered, send) audio level, transport-cc and MID/RID extensions.
        self.extensions = extensions or simulcast
        self.layer_ssrcs = [secrets.randbelow(2**31) + 1 for _ in SIMULCAST_RIDS]
        self._layer_seqs = [secrets.randbelow(0x8000) for _ in SIMULCAST_RIDS]
        self._layer_ts_base = secrets.randbelow(2**31)
        #: Extension ids the SFU accepted, per kind (empty until `accept`).
        self.ext_ids: dict[str, dict[str, int]] = {}
        self.rids: list[str] = []
        self.transport_seq = secrets.randbelow(0x10000)
        #: The level each audio packet carries (None: no audio level extension sent).
        self.level_schedule: LevelSchedule | None = None
        #: SSRCs the SFU has reported on (RR blocks): Chrome stops sending MID/RID then.
        self.acked: set[int] = set()
        #: Layers (index into the clip's layers; 0 for single-layer video) owed a key frame.
        self.keyframe_due: set[int] = set()
        self.keyframe_requests = 0
        self.keyframes_sent = 0
        #: (monotonic time, layer index) of every key-frame request that arrived (the speaker
        #: switch's stages, `largecall.speaker_stages`).
        self.keyframe_request_log: list[tuple[float, int]] = []
        #: The SSRC our RTCP is sent from (Chrome uses a local SSRC of its own).
        self.rtcp_ssrc = secrets.randbelow(2**31) + 1
        #: What this subscriber tells the SFU it can receive (REMB, bit/s); None sends none.
        self.remb_bitrate: int | None = None
        #: Large-call receiving: read sequence numbers from the clear SRTP header and decrypt
        #: only the first packet of each video frame (to see key frames and their size).
        self.light_receive = False
        self.rtcp_received: dict[str, int] = {}
        #: From this time (monotonic) each received stream keeps its longest inter-packet gap.
        self.watch_gaps_from: float | None = None

    # -- signalling ---------------------------------------------------------------------------

    def bind(self, host: str = "127.0.0.1") -> None:
        self.raw.bind((host, 0))

    def offer(self, slots: int = DEFAULT_SLOTS, audio_slots: int | None = None) -> str:
        return offer_sdp(
            self.ufrag,
            self.pwd,
            self.announced_fingerprint,
            self.audio_ssrc,
            self.video_ssrc,
            slots,
            audio_slots=audio_slots,
            simulcast=self.simulcast,
            extensions=self.extensions,
        )

    def accept(self, answer_sdp: str) -> Answer:
        self.answer = parse_answer(answer_sdp)
        self.server = (self.answer.host, self.answer.port)
        if self.extensions:
            self.ext_ids = self.answer.publish_extensions
        # Simulcast only if the SFU accepted the layers; otherwise one stream, as Chrome falls
        # back to when the answer has no a=simulcast (it then sends its first encoding).
        self.rids = [r for r in SIMULCAST_RIDS if r in self.answer.rids] if self.simulcast else []
        return self.answer

    @property
    def layered(self) -> bool:
        """Publishing simulcast layers (the SFU accepted them)."""
        return bool(self.rids)

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
                    return stun.parse_message(await self.recv_kind(STUN_FIRST_BYTES))

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
                    conn.bio_write(await self.recv_kind(DTLS_FIRST_BYTES))
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
                data = await self.recv_kind(RTP_FIRST_BYTES)
                if data[1] in RTCP_PACKET_TYPES:
                    continue
                plain = self.srtp.rx.unprotect(data)
                if struct.unpack_from("!I", plain, 8)[0] == ssrc:
                    return plain

    # -- load: paced publishing and counted receiving -----------------------------------------

    def send_rtp(
        self,
        tally: MediaTally,
        pt: int,
        payload: bytes,
        index: int,
        marker: bool,
        *,
        layer: int | None = None,
        now: float = 0.0,
    ) -> None:
        """Protect and send one packet now (synchronous; a full buffer counts, never waits).

        ``layer`` (an index into `SIMULCAST_RIDS`) sends on that layer's unsignalled SSRC; with
        `extensions` the packet carries what Chrome puts in it (`_elements`).
        """
        step = AUDIO_TS_STEP if pt == AUDIO_PT else VIDEO_TS_STEP
        if layer is None:
            seq = self._seqs[pt] = (self._seqs[pt] + 1) & 0xFFFF
            ts = (self._ts_base[pt] + index * step) & 0xFFFFFFFF
            ssrc = self.audio_ssrc if pt == AUDIO_PT else self.video_ssrc
        else:
            seq = self._layer_seqs[layer] = (self._layer_seqs[layer] + 1) & 0xFFFF
            ts = (self._layer_ts_base + index * step) & 0xFFFFFFFF
            ssrc = self.layer_ssrcs[layer]
        b1 = pt | (0x80 if marker else 0)
        if self.ext_ids:
            elements = self._elements(pt, ssrc, layer, now)
            if elements:
                header = _RTP_HEADER.pack(0x90, b1, seq, ts, ssrc)
                packet = header + build_one_byte_block(elements) + payload
            else:
                packet = _RTP_HEADER.pack(0x80, b1, seq, ts, ssrc) + payload
        else:
            packet = _RTP_HEADER.pack(0x80, b1, seq, ts, ssrc) + payload
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

    def _elements(
        self, pt: int, ssrc: int, layer: int | None, now: float
    ) -> list[tuple[int, bytes]]:
        """The header extensions of one packet: audio level (audio), the transport-wide
        sequence number, and MID (plus RID of a layer) until the SFU has reported on the SSRC."""
        kind = "audio" if pt == AUDIO_PT else "video"
        ids = self.ext_ids.get(kind, {})
        out: list[tuple[int, bytes]] = []
        if kind == "audio" and self.level_schedule is not None:
            level_id = ids.get(AUDIO_LEVEL_URI)
            if level_id is not None:
                level = max(0, min(127, self.level_schedule(now)))
                out.append((level_id, bytes((level | (VOICE_BIT if level <= VOICE_LEVEL else 0),))))
        twcc_id = ids.get(TWCC_URI)
        if twcc_id is not None:
            self.transport_seq = (self.transport_seq + 1) & 0xFFFF
            out.append((twcc_id, self.transport_seq.to_bytes(2, "big")))
        if ssrc not in self.acked:
            mid_id = ids.get(MID_URI)
            if mid_id is not None:
                out.append((mid_id, b"0" if kind == "audio" else b"1"))
            rid_id = ids.get(RID_URI)
            if layer is not None and rid_id is not None:
                out.append((rid_id, SIMULCAST_RIDS[layer].encode()))
        return out

    def send_receiver_report(self) -> None:
        """RFC 3550 receiver reports on every stream received (interval loss, jitter), and a
        REMB when `remb_bitrate` is set: what a browser's RTCP tells the SFU once a second."""
        if self.srtp is None or not self.streams:
            return
        blocks = []
        for ssrc, stream in list(self.streams.items())[:31]:
            expected = stream.expected
            interval = expected - stream.expected_prior
            received = stream.received - stream.received_prior
            stream.expected_prior, stream.received_prior = expected, stream.received
            lost = interval - received
            fraction = 0
            if interval > 0 and lost > 0:
                fraction = min(_FRACTION_LOST_MAX, (lost << 8) // interval)
            blocks.append(
                rtcp.ReportBlock(
                    ssrc=ssrc,
                    fraction_lost=fraction,
                    cumulative_lost=max(0, expected - stream.received),
                    highest_seq=stream.highest & _U32,
                    jitter=int(stream.jitter) & _U32,
                    lsr=0,
                    dlsr=0,
                )
            )
        packet = rtcp.build_rr(self.rtcp_ssrc, blocks)
        if self.remb_bitrate:
            video = [s for s, st in self.streams.items() if st.clock == VIDEO_CLOCK]
            packet += rtcp.build_remb(self.rtcp_ssrc, self.remb_bitrate, video)
        with contextlib.suppress(OSError):
            self.raw.sendto(self.srtp.tx.protect_rtcp(packet), self.server)

    def _on_rtcp(self, data: bytes, tally: MediaTally) -> None:
        """The SFU's RTCP: key-frame requests (PLI, FIR) per layer, and RR blocks that tell us
        it knows an SSRC (MID/RID are then left out, as Chrome does)."""
        assert self.srtp is not None
        try:
            plain = self.srtp.rx.unprotect_rtcp(data)
        except pylibsrtp.Error:
            tally.srtp_errors += 1
            return
        counts = self.rtcp_received
        try:
            for pt, fmt, packet in rtcp.iter_packets(plain):
                if pt == rtcp.PT_PSFB and fmt == rtcp.FMT_PLI:
                    counts["pli"] = counts.get("pli", 0) + 1
                    self.request_keyframe(rtcp.parse_feedback_ssrcs(packet)[1])
                elif pt == rtcp.PT_PSFB and fmt == rtcp.FMT_FIR:
                    counts["fir"] = counts.get("fir", 0) + 1
                    for ssrc in rtcp.parse_fir_ssrcs(packet):
                        self.request_keyframe(ssrc)
                elif pt in (rtcp.PT_RR, rtcp.PT_SR):
                    offset = 8 if pt == rtcp.PT_RR else 28
                    for block in rtcp.parse_report_blocks(packet, fmt, offset):
                        self.acked.add(block.ssrc)
                    counts["rr"] = counts.get("rr", 0) + 1
                elif pt == rtcp.PT_RTPFB:
                    counts["rtpfb"] = counts.get("rtpfb", 0) + 1
        except RtcpError:
            counts["malformed"] = counts.get("malformed", 0) + 1

    def request_keyframe(self, media_ssrc: int) -> None:
        """The SFU asked for a key frame of `media_ssrc`: the next frame of that layer is one."""
        if self.layered and media_ssrc in self.layer_ssrcs:
            layer = self.layer_ssrcs.index(media_ssrc)
        elif media_ssrc == self.video_ssrc:
            layer = 0
        else:
            return
        self.keyframe_due.add(layer)
        self.keyframe_requests += 1
        self.keyframe_request_log.append((time.monotonic(), layer))

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
        if len(data) < RTP_HEADER_LENGTH or data[0] not in RTP_FIRST_BYTES:
            if data and data[0] in STUN_FIRST_BYTES:
                tally.stun_in += 1
            return
        if data[1] in RTCP_PACKET_TYPES:
            tally.rtcp_in += 1
            if self.srtp is not None and (self.extensions or self.light_receive):
                self._on_rtcp(data, tally)
            return
        if self.light_receive:
            self._on_light(data, tally)
            return
        try:
            plain = self.unprotect(data)
        except pylibsrtp.Error:
            tally.srtp_errors += 1
            return
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(plain, 2)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self._new_stream(ssrc, plain[1] & 0x7F == AUDIO_PT)
        stream.on_packet(seq, ts, time.monotonic())
        tally.flow(stream.key).received += 1

    def _new_stream(self, ssrc: int, audio: bool) -> ReceiveStream:
        kind = "audio" if audio else "video"
        stream = self.streams[ssrc] = ReceiveStream(
            f"{self.other}->{self.role}/{kind}", AUDIO_CLOCK if audio else VIDEO_CLOCK
        )
        return stream

    def _on_light(self, data: bytes, tally: MediaTally) -> None:
        """Count from the clear SRTP header; decrypt only the first packet of a video frame
        (new timestamp) to note key frames and their size: cheap enough for 60 subscribers."""
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        now = time.monotonic()
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self._new_stream(ssrc, data[1] & 0x7F == AUDIO_PT)
        watch = self.watch_gaps_from
        if watch is not None and now >= watch and stream.last_arrival >= watch:
            stream.max_gap = max(stream.max_gap, now - stream.last_arrival)
        stream.last_arrival = now
        stream.on_packet(seq, ts, now)
        stream.octets += len(data)
        tally.flow(stream.key).received += 1
        if stream.clock != VIDEO_CLOCK or ts == stream.last_ts:
            return
        stream.last_ts = ts
        try:
            plain = self.unprotect(data)
            start = header_length(plain)
            desc = parse_descriptor(plain, start)
        except pylibsrtp.Error:
            tally.srtp_errors += 1
            return
        except (RtpError, Vp8Error, ValueError):
            return
        if desc.keyframe:
            stream.keyframes.append((now, desc.width, desc.height))

    def close(self) -> None:
        self.publishing = False
        self.sock.close()


__all__ = [
    "AUDIO_CLOCK",
    "AUDIO_PT",
    "RECV_TIMEOUT",
    "VIDEO_CLOCK",
    "VIDEO_PT",
    "Answer",
    "Clip",
    "ExtensionError",
    "Flow",
    "LevelSchedule",
    "MediaPeer",
    "MediaPeerError",
    "MediaPump",
    "MediaTally",
    "ReceiveStream",
    "load_clip",
    "make_clip",
    "offer_sdp",
    "parse_answer",
    "socket_drops",
]
