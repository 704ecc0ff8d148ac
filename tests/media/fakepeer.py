"""A protocol-level WebRTC peer for tests: STUN checks, a DTLS client and SRTP on a real socket.

It lets tests speak to the worker exactly as a browser would, and also misbehave on purpose.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field

import trio
from aioice import stun
from aiortc import sdp as aiortc_sdp
from OpenSSL import SSL

from media.dtls import (
    EXPORTER_LABEL,
    SRTP_PROFILES,
    Certificate,
    SrtpSessions,
    key_material_length,
    srtp_sessions,
)
from media.worker import Worker

RECV_TIMEOUT = 2.0
AUDIO_PT = 111
VIDEO_PT = 96


@dataclass
class Answer:
    ufrag: str
    pwd: str
    port: int
    slot_ssrcs: dict[tuple[int, str], int] = field(default_factory=dict)


def offer_sdp(ufrag: str, pwd: str, fingerprint: str, audio: int, video: int, slots: int) -> str:
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
    session = aiortc_sdp.SessionDescription.parse(text)
    first = next(m for m in session.media if m.port)
    assert first.ice is not None
    answer = Answer(str(first.ice.usernameFragment), str(first.ice.password), first.port)
    slot = {"audio": 0, "video": 0}
    for m in session.media:
        if m.direction == "sendonly" and m.ssrc:
            answer.slot_ssrcs[(slot[m.kind], m.kind)] = m.ssrc[0].ssrc
            slot[m.kind] += 1
    return answer


class FakePeer:
    """One fake browser: its own socket, ICE credentials, certificate and SSRCs."""

    def __init__(self, certificate: Certificate | None = None, announce: str | None = None) -> None:
        self.certificate = certificate or Certificate.generate()
        # The fingerprint put in the offer; a hostile peer announces one cert and presents another.
        self.announced_fingerprint = announce or self.certificate.fingerprint
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(12)
        self.audio_ssrc = secrets.randbelow(2**31) + 1
        self.video_ssrc = secrets.randbelow(2**31) + 1
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.server: tuple[str, int] = ("127.0.0.1", 0)
        self.answer: Answer | None = None
        self.srtp: SrtpSessions | None = None
        self.srtp_profile = b""
        self.key_material = b""
        self.seq = 0

    async def open(self, worker: Worker, call_id: str, peer_id: str, slots: int = 2) -> Answer:
        await self.sock.bind(("127.0.0.1", 0))
        text = offer_sdp(
            self.ufrag,
            self.pwd,
            self.announced_fingerprint,
            self.audio_ssrc,
            self.video_ssrc,
            slots,
        )
        self.answer = parse_answer(await worker.open_peer(call_id, peer_id, text))
        self.server = ("127.0.0.1", self.answer.port)
        return self.answer

    def binding_request(self, password: str | None = None, username: str | None = None) -> bytes:
        assert self.answer is not None
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = username or f"{self.answer.ufrag}:{self.ufrag}"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity((password or self.answer.pwd).encode())
        return bytes(request)

    async def check(self, password: str | None = None) -> stun.Message:
        """Send a connectivity check; return the server's response."""
        await self.sock.sendto(self.binding_request(password), self.server)
        return stun.parse_message(await self.recv_kind(range(0, 4)))

    async def recv_kind(self, first_bytes: range) -> bytes:
        with trio.fail_after(RECV_TIMEOUT):
            while True:
                data, _ = await self.sock.recvfrom(4096)
                if data and data[0] in first_bytes:
                    return data

    async def handshake(self) -> None:
        """DTLS client handshake; raises SSL.Error if the server refuses us."""
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(self.certificate.cert)
        ctx.use_privatekey(self.certificate.key)
        ctx.set_tlsext_use_srtp(SRTP_PROFILES)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        with trio.fail_after(RECV_TIMEOUT * 2):
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
                conn.bio_write(await self.recv_kind(range(20, 64)))
        profile = conn.get_selected_srtp_profile()
        material = conn.export_keying_material(EXPORTER_LABEL, key_material_length(profile))
        self.srtp = srtp_sessions(profile, material, is_server=False)
        self.srtp_profile, self.key_material = profile, material

    async def connect(self, worker: Worker, call_id: str, peer_id: str, slots: int = 2) -> None:
        await self.open(worker, call_id, peer_id, slots)
        response = await self.check()
        assert response.message_class == stun.Class.RESPONSE
        await self.handshake()

    def rtp(self, ssrc: int, payload: bytes = b"\x10" + bytes(99), pt: int = VIDEO_PT) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, pt, self.seq, self.seq * 3000, ssrc)
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
                data = await self.recv_kind(range(128, 192))
                if 192 <= data[1] <= 223:
                    continue
                plain = self.srtp.rx.unprotect(data)
                if struct.unpack_from("!I", plain, 8)[0] == ssrc:
                    return plain

    def close(self) -> None:
        self.sock.close()
