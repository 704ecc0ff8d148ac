"""The outbox actor and its senders: a real SMTP server (aiosmtpd, in its own thread) receives the
link; a dead server or gateway leaves the message queued with its error, retried with growing
delays, and failed for good after the last one; nothing is ever dropped from the table."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import Controller

from actors.admin.outbox import OUTBOX_ADDRESS, DeliverDue, ListOutbox, OutboxActor, SendLink
from actors.boot import start_actors
from actors.messages import FindArea
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from services.sender import HttpSmsSender, Sender, SmsGatewayConfig, SmtpConfig, SmtpSender
from storage import audit, seed
from storage import outbox as outbox_store
from storage.db import Store, open_store
from storage.outbox import Channel
from storage.times import utcnow

#: Short in tests; production uses minutes.
RETRY_DELAYS = (10.0, 20.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Received]]:
    """A real SMTP server on a free loopback port, stopped after the test."""
    received = Received()
    port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@dataclass
class Setup:
    registry: Registry
    store: Store
    area_id: int
    provider: Principal
    admin: Principal


async def start(nursery: trio.Nursery, store: Store, senders: dict[Channel, Sender]) -> Setup:
    demo = await seed.seed_demo(store, await Passwords().hash("pw"))
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await start_actors(nursery, root, store)
    await root.stop_child(OUTBOX_ADDRESS)  # the default records only; these tests send for real
    await root.start_child(
        ChildSpec(OUTBOX_ADDRESS, lambda: OutboxActor(store, senders, RETRY_DELAYS))
    )
    address = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
    area_id = int(str(address).split("/")[1])
    org = str(demo.org_id)
    provider = Principal(
        "staff", "Dr Demo", "1", org, frozenset({Grant(Role.PROVIDER, Scope.AREA, str(area_id))})
    )
    admin = Principal(
        "staff", "Admin", "2", org, frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, org)})
    )
    return Setup(registry, store, area_id, provider, admin)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "w.sqlite3") as opened:
        yield opened


def link_message(setup: Setup, channel: Channel, recipient: str) -> SendLink:
    return SendLink(
        setup.provider,
        setup.area_id,
        channel,
        recipient,
        "Your video appointment",
        "Join at https://clinic.example/w/abc",
        remote_addr="127.0.0.1",
    )


async def test_smtp_delivers_the_link_to_a_real_server(
    store: Store, nursery: trio.Nursery, smtp_server: tuple[int, Received]
) -> None:
    port, received = smtp_server
    sender = SmtpSender(
        SmtpConfig("127.0.0.1", port, tls="none", from_address="clinic@example.org")
    )
    setup = await start(nursery, store, {"email": sender})
    sent = await setup.registry.ref(OUTBOX_ADDRESS).ask(
        link_message(setup, "email", "ada@example.org"), timeout=20
    )
    assert sent.status == "sent" and sent.attempts == 1
    [(mail_from, rcpt, content)] = received.messages
    assert mail_from == "clinic@example.org" and rcpt == ["ada@example.org"]
    parsed = message_from_bytes(content)
    assert parsed["Subject"] == "Your video appointment"
    assert "https://clinic.example/w/abc" in parsed.get_payload()
    listed = await setup.registry.ref(OUTBOX_ADDRESS).ask(ListOutbox(setup.admin))
    assert [(m.id, m.status, m.recipient) for m in listed] == [(sent.id, "sent", "ada@example.org")]
    [entry] = await audit.list_entries(store, action=audit.LINK_SENT)
    assert entry.area_id == setup.area_id and entry.details == {"channel": "email"}
    assert "ada@example.org" not in repr(entry)  # the address is not an audit detail


async def test_a_dead_server_means_retries_then_failed_and_the_message_is_kept(
    store: Store, nursery: trio.Nursery, smtp_server: tuple[int, Received]
) -> None:
    _, received = smtp_server
    dead = SmtpSender(SmtpConfig("127.0.0.1", free_port(), tls="none", timeout=3))
    setup = await start(nursery, store, {"email": dead})
    outbox = setup.registry.ref(OUTBOX_ADDRESS)
    first = await outbox.ask(link_message(setup, "email", "bob@example.org"), timeout=20)
    assert first.status == "queued" and first.attempts == 1
    assert first.last_error and "Connection" in first.last_error
    assert first.next_attempt_at > first.updated_at

    # Not due yet: nothing is tried.
    assert await outbox.ask(DeliverDue(utcnow()), timeout=20) == []
    second = (await outbox.ask(DeliverDue(utcnow() + timedelta(seconds=11)), timeout=20))[0]
    assert second.status == "queued" and second.attempts == 2
    third = (await outbox.ask(DeliverDue(utcnow() + timedelta(seconds=40)), timeout=20))[0]
    assert third.status == "failed" and third.attempts == 3 and third.last_error
    assert await outbox.ask(DeliverDue(utcnow() + timedelta(days=1)), timeout=20) == []
    [kept] = await outbox_store.list_messages(store)
    assert (kept.id, kept.status, kept.body) == (first.id, "failed", first.body)
    assert received.messages == []


async def test_a_retry_that_succeeds_is_sent_once(
    store: Store, nursery: trio.Nursery, smtp_server: tuple[int, Received]
) -> None:
    port, received = smtp_server
    sender = SmtpSender(SmtpConfig("127.0.0.1", free_port(), tls="none", timeout=3))
    setup = await start(nursery, store, {"email": sender})
    outbox = setup.registry.ref(OUTBOX_ADDRESS)
    queued = await outbox.ask(link_message(setup, "email", "cy@example.org"), timeout=20)
    assert queued.status == "queued"
    sender.config = SmtpConfig("127.0.0.1", port, tls="none")  # the server is back
    [sent] = await outbox.ask(DeliverDue(utcnow() + timedelta(seconds=11)), timeout=20)
    assert sent.status == "sent" and sent.attempts == 2
    assert len(received.messages) == 1


class Gateway(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []
    status = 202

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Gateway.bodies.append((self.headers["Authorization"], self.rfile.read(length)))
        self.send_response(Gateway.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


async def test_sms_gateway_and_refusals(store: Store, nursery: trio.Nursery) -> None:
    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/send"
        sms = HttpSmsSender(SmsGatewayConfig(url, "k3y"))
        setup = await start(nursery, store, {"sms": sms})
        outbox = setup.registry.ref(OUTBOX_ADDRESS)
        sent = await outbox.ask(link_message(setup, "sms", "+380501234567"), timeout=20)
        assert sent.status == "sent"
        [(auth, body)] = Gateway.bodies
        assert auth == "Bearer k3y" and b"+380501234567" in body
        Gateway.status = 500
        failed = await outbox.ask(link_message(setup, "sms", "+380501234568"), timeout=20)
        assert failed.status == "queued" and failed.last_error == "gateway answered 500"
        stranger = Principal("staff", "Nobody", "9", "1", frozenset())
        with pytest.raises(Refusal):
            await outbox.ask(SendLink(stranger, setup.area_id, "sms", "+1", "s", "b"), timeout=20)
        with pytest.raises(Refusal):
            await outbox.ask(link_message(setup, "email", "x@example.org"), timeout=20)
        with pytest.raises(Refusal):
            await outbox.ask(ListOutbox(setup.provider), timeout=20)
        assert len(await outbox_store.list_messages(store)) == 2
    finally:
        await trio.to_thread.run_sync(server.shutdown)
        server.server_close()
