"""DTLS-SRTP server endpoint on pyOpenSSL memory BIOs, sans-IO.

The caller feeds received datagrams in and sends out what comes back; it also asks `timeout()`
when to call `handle_timeout()` (the Trio adapter runs that timer in a cancel scope). The peer's
certificate must hash to the fingerprint its offer announced, or the handshake fails.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

# Server's order wins: AES-GCM is cheaper per packet than AES-CM + HMAC-SHA1.
SRTP_PROFILES = b"SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
# profile name -> (pylibsrtp profile, key length, salt length) per RFC 5764 / RFC 7714.
_PROFILES = {
    b"SRTP_AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
    b"SRTP_AES128_CM_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
}
EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
# Path MTU budget for handshake flights: fits any sane path with IPv6 and UDP headers.
FLIGHT_MTU = 1200
RECORD_HEADER_LENGTH = 13
READ_CHUNK = 65536
CERT_VALIDITY = datetime.timedelta(days=30)
CERT_BACKDATE = datetime.timedelta(days=1)
# libsrtp replay window: large enough for reordering at a few Mbit/s.
SRTP_REPLAY_WINDOW = 1024


class DtlsState(enum.Enum):
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class DtlsError(Exception):
    """The handshake failed; `reason` says why (counted by the worker)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Certificate:
    """The worker's self-signed ECDSA certificate; one serves every transport of a worker."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def generate(cls) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "waitroom-sfu")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CERT_BACKDATE)
            .not_valid_after(now + CERT_VALIDITY)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint as SDP writes it: upper-case hex pairs joined by colons."""
        digest = self.cert.fingerprint(hashes.SHA256())
        return ":".join(f"{b:02X}" for b in digest)

    def pem(self) -> tuple[bytes, bytes]:
        return (
            self.cert.public_bytes(serialization.Encoding.PEM),
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def _accept_chain(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    """Self-signed certificates are the norm in WebRTC: the fingerprint is what is checked."""
    if depth != 0:
        return True
    endpoint = conn.get_app_data()
    assert isinstance(endpoint, DtlsServer)
    got = cert.digest("sha256").decode().upper()
    if got != endpoint.expected_fingerprint:
        endpoint.fingerprint_mismatch = True
        return False
    return True


def make_context(certificate: Certificate, method: int = SSL.DTLS_METHOD) -> SSL.Context:
    """A DTLS server context that offers SRTP profiles and requires a client certificate."""
    ctx = SSL.Context(method)
    ctx.use_certificate(certificate.cert)
    ctx.use_privatekey(certificate.key)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_chain)
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)
    ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    return ctx


@dataclass(frozen=True, slots=True)
class SrtpSessions:
    """Inbound (unprotect) and outbound (protect) SRTP sessions for one transport."""

    rx: pylibsrtp.Session
    tx: pylibsrtp.Session
    profile: str


def srtp_sessions(profile: bytes, material: bytes, *, is_server: bool) -> SrtpSessions:
    """Split exported keying material (client key, server key, client salt, server salt)."""
    srtp_profile, key_len, salt_len = _PROFILES[profile]
    client_key = material[:key_len]
    server_key = material[key_len : 2 * key_len]
    client_salt = material[2 * key_len : 2 * key_len + salt_len]
    server_salt = material[2 * key_len + salt_len : 2 * (key_len + salt_len)]
    remote, local = (client_key + client_salt, server_key + server_salt)
    if not is_server:
        remote, local = local, remote
    rx_policy = pylibsrtp.Policy(
        key=remote, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=srtp_profile
    )
    rx_policy.window_size = SRTP_REPLAY_WINDOW
    tx_policy = pylibsrtp.Policy(
        key=local, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=srtp_profile
    )
    # NACKs are answered by re-protecting cached packets with their original index.
    tx_policy.allow_repeat_tx = True
    return SrtpSessions(
        pylibsrtp.Session(policy=rx_policy),
        pylibsrtp.Session(policy=tx_policy),
        profile.decode(),
    )


def key_material_length(profile: bytes) -> int:
    _, key_len, salt_len = _PROFILES[profile]
    return 2 * (key_len + salt_len)


def split_records(data: bytes, mtu: int = FLIGHT_MTU) -> list[bytes]:
    """Pack the DTLS records of a memory-BIO read into datagrams of at most `mtu` bytes.

    A memory BIO is a byte stream, so a whole flight comes out at once; records are never split.
    """
    out: list[bytes] = []
    current = b""
    pos = 0
    while pos + RECORD_HEADER_LENGTH <= len(data):
        length = RECORD_HEADER_LENGTH + ((data[pos + 11] << 8) | data[pos + 12])
        record = data[pos : pos + length]
        pos += length
        if current and len(current) + len(record) > mtu:
            out.append(current)
            current = b""
        current += record
    if current:
        out.append(current)
    return out


class DtlsServer:
    """One transport's DTLS server side: handshake, then SRTP keys, then alerts only."""

    def __init__(self, context: SSL.Context, expected_fingerprint: str) -> None:
        self.expected_fingerprint = expected_fingerprint.upper()
        self.fingerprint_mismatch = False
        self.state = DtlsState.HANDSHAKING
        self.srtp: SrtpSessions | None = None
        self._conn = SSL.Connection(context, None)
        self._conn.set_app_data(self)
        self._conn.set_accept_state()
        self._conn.set_ciphertext_mtu(FLIGHT_MTU)

    def receive(self, data: bytes) -> list[bytes]:
        """Feed one datagram; return datagrams to send. Raises DtlsError if the peer is refused."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return []
        self._conn.bio_write(data)
        if self.state is DtlsState.HANDSHAKING:
            self._step()
        else:
            self._drain_application_data()
        return self._pending()

    def timeout(self) -> float | None:
        """Seconds until `handle_timeout` must run, or None if no retransmission is pending."""
        if self.state is not DtlsState.HANDSHAKING:
            return None
        value: Any = self._conn.DTLSv1_get_timeout()
        return None if value is None else float(value)

    def handle_timeout(self) -> list[bytes]:
        """Retransmit the last flight if its timer expired."""
        if self.state is not DtlsState.HANDSHAKING:
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self.state = DtlsState.FAILED
            raise DtlsError("handshake_error") from exc
        return self._pending()

    def close(self) -> list[bytes]:
        """Send close_notify if connected; idempotent."""
        if self.state is DtlsState.CONNECTED:
            with contextlib.suppress(SSL.Error):
                self._conn.shutdown()
        self.state = DtlsState.CLOSED
        return self._pending()

    def _step(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self.state = DtlsState.FAILED
            reason = "fingerprint_mismatch" if self.fingerprint_mismatch else "handshake_error"
            raise DtlsError(reason) from exc
        profile = self._conn.get_selected_srtp_profile()
        if profile not in _PROFILES:
            self.state = DtlsState.FAILED
            raise DtlsError("no_srtp_profile")
        material = self._conn.export_keying_material(EXPORTER_LABEL, key_material_length(profile))
        self.srtp = srtp_sessions(profile, material, is_server=True)
        self.state = DtlsState.CONNECTED

    def _drain_application_data(self) -> None:
        """After the handshake only retransmitted flights and alerts arrive; close_notify ends it."""
        try:
            while True:
                self._conn.recv(READ_CHUNK)
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self.state = DtlsState.CLOSED
            raise DtlsError("closed_by_peer") from None
        except SSL.Error as exc:
            self.state = DtlsState.FAILED
            raise DtlsError("protocol_error") from exc

    def _pending(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunk = self._conn.bio_read(READ_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        return split_records(b"".join(chunks))
