"""Debian's coturn (`turnserver`), started by a test on loopback with the TURN REST API secret.

A missing `turnserver` fails the test that needs it (./manage installs coturn): a TURN path that
is never tested is a TURN path that does not work. Relay ports are taken from RELAY_PORTS, below
Linux's ephemeral range, so a test can tell a relayed address from a browser's own host port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TURNSERVER = "turnserver"
REALM = "waitroom.test"
#: Relayed transport addresses: never a port the kernel hands out as ephemeral (32768-60999).
RELAY_PORTS = range(20000, 20200)
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Coturn:
    host: str
    port: int
    secret: str
    log: Path
    #: The TURN-over-TLS port when started with a certificate, else 0.
    tls_port: int = 0

    @property
    def relay_ports(self) -> range:
        return RELAY_PORTS

    def url(self, transport: str = "udp") -> str:
        """``udp`` or ``tcp`` to the plain port; ``tls``: ``turns:`` to the TLS port."""
        if transport == "tls":
            return f"turns:{self.host}:{self.tls_port}?transport=tcp"
        return f"turn:{self.host}:{self.port}?transport={transport}"


def free_port() -> int:
    """A port free for both TCP and UDP on loopback (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made on the spot (PEM files in ``tmp``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "turn-cert.pem", tmp / "turn-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def coturn(tmp: Path, secret: str = "test-turn-secret", tls: bool = False) -> Iterator[Coturn]:
    """Run coturn with `use-auth-secret` on 127.0.0.1 until the block ends; with ``tls``, also
    TURN over TLS with a self-signed certificate made here."""
    binary = shutil.which(TURNSERVER)
    assert binary is not None, "turnserver is missing: install Debian's coturn (./manage does)"
    port = free_port()
    tls_port = free_port() if tls else 0
    log = tmp / "coturn.log"
    command = [
        binary,
        "-n",  # no configuration file: everything is here
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={RELAY_PORTS.start}",
        f"--max-port={RELAY_PORTS.stop - 1}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--fingerprint",
        "--no-dtls",
        "--no-cli",
        "--allow-loopback-peers",
        "--no-multicast-peers",
        f"--userdb={tmp / 'turndb'}",
        f"--pidfile={tmp / 'turnserver.pid'}",
        "--simple-log",
        f"--log-file={log}",
        "--verbose",
    ]
    if tls:
        cert, key = self_signed(tmp)
        command += [f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}"]
    else:
        command.append("--no-tls")
    with open(tmp / "coturn.stdout", "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _listening(port):
                assert process.poll() is None, (tmp / "coturn.stdout").read_text()
                assert time.monotonic() < deadline, "coturn did not start listening"
                time.sleep(0.05)
            yield Coturn("127.0.0.1", port, secret, log, tls_port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
