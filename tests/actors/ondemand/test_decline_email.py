"""A declined request's email reaches a real SMTP server (aiosmtpd on loopback), in English and
Ukrainian, to the address the patient gave; a patient who gave none gets no email."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

import trio

from actors import addresses
from actors.admin.outbox import DeliverDue
from services.sender import SmtpConfig, SmtpSender
from tests.actors.admin.test_outbox import Received, smtp_server
from tests.actors.ondemand.world import world_at

__all__ = ["smtp_server"]  # the fixture, used by name


def text_of(message: Message) -> str:
    if message.is_multipart():
        return "".join(text_of(part) for part in message.get_payload())  # type: ignore[arg-type]
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


async def test_decline_email_is_delivered(
    tmp_path: Path, smtp_server: tuple[int, Received]
) -> None:
    port, received = smtp_server
    sender = SmtpSender(
        SmtpConfig("127.0.0.1", port, tls="none", from_address="clinic@example.org")
    )
    async with world_at(tmp_path, senders={"email": sender}) as world:
        silent = await world.meet_now("Bo")
        ticket = await world.meet_now("Ada", email="ada@example.org")
        for request in (silent, ticket):
            await world.ask(world.admin, "ondemand.decline", {"request_id": request.request_id})
        # The outbox handles what it was told in order: once this ask is answered, the decline's
        # email has been handed to the SMTP server.
        with trio.fail_after(10):
            await world.registry.ref(addresses.OUTBOX).ask(DeliverDue())
        assert len(received.messages) == 1
        _, recipients, content = received.messages[0]
        assert recipients == ["ada@example.org"]
        body = text_of(message_from_bytes(content))
        assert "Riverside" in body and "declined" in body and "відхилено" in body
