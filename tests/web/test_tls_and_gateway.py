"""The one port serves HTTPS with Secure cookies when given a certificate, and mounts /ws."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from trio_websocket import open_websocket_url

from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from waitroom.server import ServerConfig, ServerInfo, run_server
from web.security import SECURE_SESSION_COOKIE, SESSION_COOKIE

CERT_DAYS = 1


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[ServerInfo]:
    certfile, keyfile = await trio.to_thread.run_sync(write_self_signed, tmp_path)
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=tmp_path / "tls.sqlite3",
        certfile=certfile,
        keyfile=keyfile,
        demo_password=DEMO_PASSWORD,
    )
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        yield info
        nursery.cancel_scope.cancel()


async def test_https_serves_pages_and_marks_the_session_cookie_secure(
    tls_server: ServerInfo,
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    client = HttpClient(tls_server.url)
    assert (await client.get("/healthz")).status == 200
    page = await client.get("/sign-in")
    response = await client.post(
        "/sign-in",
        {"username": "provider", "password": DEMO_PASSWORD, "csrf_token": page.csrf_token()},
    )
    assert response.status == 303
    [cookie] = [c for c in response.set_cookies() if c.startswith(f"{SECURE_SESSION_COOKIE}=")]
    parts = {part.strip().lower() for part in cookie.split(";")}
    # What browsers require of a __Host- cookie: Secure, Path=/, no Domain.
    assert "secure" in parts and "path=/" in parts
    assert not any(part.startswith("domain=") for part in parts)
    assert not [c for c in response.set_cookies() if c.startswith(f"{SESSION_COOKIE}=")]
    # The session works under that name: the dashboard opens, and sign-out clears it.
    assert (await client.get("/dashboard")).status == 200
    page = await client.get("/dashboard")
    signed_out = await client.post("/sign-out", {"csrf_token": page.csrf_token()})
    assert signed_out.status in (302, 303)
    assert SECURE_SESSION_COOKIE not in client.cookies


async def test_websocket_upgrades_to_ws_reach_the_gateway(waitroom_server: RunningServer) -> None:
    url = waitroom_server.base_url.replace("http://", "ws://") + "/ws"
    with trio.fail_after(10):
        async with open_websocket_url(url) as ws:
            assert not ws.closed
    # Plain HTTP to /ws is a page request, not the gateway.
    assert (await HttpClient(waitroom_server.base_url).get("/ws")).status == 404


def test_the_gateway_reads_the_secure_session_cookie_first() -> None:
    from gateway.asgi import session_cookie_of

    def scope(cookie: str) -> dict[str, object]:
        return {
            "headers": [(b"cookie", cookie.encode()), (b"host", b"h"), (b"origin", b"https://h")]
        }

    assert session_cookie_of(scope(f"{SECURE_SESSION_COOKIE}=s1; {SESSION_COOKIE}=old")) == "s1"
    assert session_cookie_of(scope(f"{SESSION_COOKIE}=plain")) == "plain"
    assert session_cookie_of(scope("other=x")) is None
