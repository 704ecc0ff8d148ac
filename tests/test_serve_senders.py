"""``waitroom serve`` builds its senders from ``WAITROOM_*`` variables and flags: a link shared on
the provider's page arrives at a real SMTP server (aiosmtpd) and a real HTTP SMS gateway started by
the test; with nothing configured, links are recorded only; bad settings stop the start clearly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from functools import partial
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import Controller

from services.sender import HttpSmsSender, RecordOnlySender, SmtpSender
from tests.actors.admin.test_outbox import Received, free_port
from tests.conftest import RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from tests.web.test_share import area_id
from waitroom.cli import build_parser, config_from_args
from waitroom.senders import SenderConfigError, SenderSettings, build_senders
from waitroom.server import ServerInfo, run_server

PASSWORD = "demo-password-for-senders"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Received]]:
    received = Received()
    port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


class SmsGateway(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        SmsGateway.posts.append(
            (self.headers["Authorization"], json.loads(self.rfile.read(length)))
        )
        self.send_response(202)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def sms_gateway() -> Iterator[str]:
    SmsGateway.posts = []
    server = HTTPServer(("127.0.0.1", 0), SmsGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/messages"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve_args(db: Path, *extra: str) -> list[str]:
    return [
        "serve",
        "--port",
        "0",
        "--media-port",
        "0",
        "--db",
        str(db),
        "--demo-password",
        PASSWORD,
        *extra,
    ]


async def test_configured_smtp_and_sms_deliver_links_shared_on_the_page(
    tmp_path: Path, smtp_server: tuple[int, Received], sms_gateway: str
) -> None:
    port, received = smtp_server
    environ = {
        "WAITROOM_SMTP_HOST": "127.0.0.1",
        "WAITROOM_SMTP_PORT": str(port),
        "WAITROOM_SMTP_FROM": "reception@clinic.example",
        "WAITROOM_SMS_URL": sms_gateway,
        "WAITROOM_SMS_API_KEY": "gateway-key-1",
    }
    db = tmp_path / "senders.sqlite3"
    args = build_parser().parse_args(
        serve_args(db, "--smtp-tls", "none", "--sms-sender-id", "DemoClinic")
    )
    config = config_from_args(args, environ)
    assert "gateway-key-1" not in repr(config)
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        assert info.demo is not None
        server = RunningServer(info.url, info.registry, info.demo, db, info)
        provider = HttpClient(info.url)
        await sign_in(provider, info.demo.provider_username, PASSWORD)
        area, link = await area_id(server)
        page = await provider.get(f"/areas/{area}/share")
        for channel, recipient in (("email", "ada@example.org"), ("sms", "+380501234567")):
            sent = await provider.post(
                f"/areas/{area}/share",
                {
                    "csrf_token": page.csrf_token(),
                    "channel": channel,
                    "recipient": recipient,
                    "body": "See you at ten.",
                },
            )
            assert sent.status == 200, sent.text
            assert f"Sent to {recipient}" in sent.text
        nursery.cancel_scope.cancel()

    [(mail_from, rcpt, content)] = received.messages
    assert mail_from == "reception@clinic.example" and rcpt == ["ada@example.org"]
    mail = message_from_bytes(content)
    assert "See you at ten." in mail.get_payload() and link in mail.get_payload()
    [(auth, text)] = SmsGateway.posts
    assert auth == "Bearer gateway-key-1"
    assert text["to"] == "+380501234567" and text["from"] == "DemoClinic"
    assert link in text["text"]


def test_nothing_configured_means_record_only() -> None:
    config = config_from_args(build_parser().parse_args(["serve"]), environ={})
    assert config.senders == SenderSettings()
    senders = build_senders(config.senders)
    assert isinstance(senders["email"], RecordOnlySender)
    assert isinstance(senders["sms"], RecordOnlySender)


def test_flags_override_the_environment_and_ports_follow_tls() -> None:
    environ = {
        "WAITROOM_SMTP_HOST": "mail.internal",
        "WAITROOM_SMTP_TLS": "starttls",
        "WAITROOM_SMTP_USERNAME": "clinic",
        "WAITROOM_SMTP_PASSWORD": "pw-from-env",
        "WAITROOM_SMTP_FROM": "clinic@example.org",
    }
    args = build_parser().parse_args(
        ["serve", "--smtp-host", "smtp.example.org", "--smtp-tls", "ssl"]
    )
    settings = config_from_args(args, environ).senders
    assert (settings.smtp_host, settings.smtp_tls, settings.smtp_password) == (
        "smtp.example.org",
        "ssl",
        "pw-from-env",
    )
    email = build_senders(settings)["email"]
    assert isinstance(email, SmtpSender)
    assert (email.config.host, email.config.port, email.config.tls) == (
        "smtp.example.org",
        465,
        "ssl",
    )
    assert (email.config.username, email.config.password) == ("clinic", "pw-from-env")
    assert isinstance(build_senders(settings)["sms"], RecordOnlySender)
    sms = build_senders(
        SenderSettings(sms_url="https://sms.example/api", sms_api_key="k", sms_sender_id="Clinic")
    )["sms"]
    assert isinstance(sms, HttpSmsSender) and sms.config.sender_id == "Clinic"


@pytest.mark.parametrize(
    ("environ", "flags", "complaint"),
    [
        ({"WAITROOM_SMTP_FROM": "a@example.org"}, [], "without a host"),
        ({"WAITROOM_SMTP_HOST": "mail.internal"}, [], "from address"),
        ({"WAITROOM_SMTP_PORT": "smtp"}, [], "port number"),
        ({"WAITROOM_SMTP_PORT": "70000"}, [], "between 1 and"),
        ({"WAITROOM_SMTP_TLS": "maybe"}, ["--smtp-host", "m.example"], "TLS mode"),
        (
            {"WAITROOM_SMTP_USERNAME": "clinic", "WAITROOM_SMTP_FROM": "a@example.org"},
            ["--smtp-host", "m.example"],
            "needs a password",
        ),
        (
            {"WAITROOM_SMTP_PASSWORD": "x", "WAITROOM_SMTP_USERNAME": "u"},
            ["--smtp-host", "m.example", "--smtp-tls", "none", "--smtp-from", "a@example.org"],
            "without TLS",
        ),
        ({"WAITROOM_SMS_API_KEY": "k"}, [], "without a gateway URL"),
        ({}, ["--sms-url", "ftp://sms.example"], "http(s)"),
        ({}, ["--sms-url", "https://sms.example/send"], "API key"),
    ],
)
def test_bad_sender_settings_stop_the_start_with_a_clear_message(
    environ: dict[str, str], flags: list[str], complaint: str
) -> None:
    args = build_parser().parse_args(["serve", *flags])
    with pytest.raises(SystemExit) as stopped:
        config_from_args(args, environ)
    assert complaint in str(stopped.value)
    assert str(stopped.value).startswith("waitroom serve: ")


def test_the_server_refuses_unchecked_bad_settings_too() -> None:
    with pytest.raises(SenderConfigError, match="API key"):
        build_senders(SenderSettings(sms_url="https://sms.example/send"))


@pytest.mark.parametrize(
    "url", ["http://sms.example/send", "http://10.0.0.5:8080/send", "HTTP://Sms.Example/send"]
)
def test_the_sms_key_never_travels_over_plain_http_to_a_remote_gateway(url: str) -> None:
    """Issue 15: the gateway's API key in clear is refused as the SMTP password in clear is."""
    args = build_parser().parse_args(["serve", "--sms-url", url])
    with pytest.raises(SystemExit) as stopped:
        config_from_args(args, {"WAITROOM_SMS_API_KEY": "k"})
    assert "without TLS" in str(stopped.value)
    with pytest.raises(SenderConfigError, match="without TLS"):
        build_senders(SenderSettings(sms_url=url, sms_api_key="k"))


@pytest.mark.parametrize(
    "url", ["https://sms.example/send", "http://127.0.0.1:9000/send", "http://localhost/send"]
)
def test_https_or_a_loopback_gateway_may_have_the_key(url: str) -> None:
    """A gateway on this machine stays allowed, as the SMTP local relay rule allows it."""
    sms = build_senders(SenderSettings(sms_url=url, sms_api_key="k"))["sms"]
    assert isinstance(sms, HttpSmsSender)
