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

from media.demux import DTLS_FIRST_BYTES, RTCP_PACKET_TYPES, RTP_FIRST_BYTES, STUN_FIRST_BYTES
from media.dtls import (
    EXPORTER_LABEL,
    SRTP_PROFILES,
    Certificate,
    SrtpSessions,
    key_material_length,
    srtp_sessions,
)
from media.rtp import RTP_HEADER_LENGTH
from waitroom.loadtest.clip import Clip, load_clip, make_clip
from waitroom.loadtest.pacer import MediaPump
from waitroom.loadtest.peersdp import (
    AUDIO_CLOCK,
    AUDIO_PT,
    AUDIO_TS_STEP,
    DEFAULT_SLOTS,
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
        if len(data) < RTP_HEADER_LENGTH or data[0] not in RTP_FIRST_BYTES:
            if data and data[0] in STUN_FIRST_BYTES:
                tally.stun_in += 1
            return
        if data[1] in RTCP_PACKET_TYPES:
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


__all__ = [
    "AUDIO_CLOCK",
    "AUDIO_PT",
    "RECV_TIMEOUT",
    "VIDEO_CLOCK",
    "VIDEO_PT",
    "Answer",
    "Clip",
    "Flow",
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
