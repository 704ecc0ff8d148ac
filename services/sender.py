"""How a queued email or text message leaves the building: one small interface, three implementations.

* :class:`RecordOnlySender`: the embedded default. Nothing is delivered; the outbox row (which the
  admin page lists) is the record, so a fresh install can share links by copy and paste.
* :class:`SmtpSender`: email through a configured SMTP server (plain, STARTTLS or implicit TLS,
  optional credentials), ``smtplib`` in a worker thread.
* :class:`HttpSmsSender`: text messages through an HTTP SMS gateway configured by URL and key: a JSON
  POST ``{"to", "text"}`` (and ``"from"`` when a sender id is set) with
  ``Authorization: Bearer <key>``, any 2xx is success.

A sender raises :class:`SendError` on failure; the outbox actor decides about retries.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, Protocol

import trio

#: How a link leaves: the same two words the outbox stores (``storage.outbox.Channel``); spelled
#: here because services stand beside storage, not on it.
Channel = Literal["email", "sms"]
TlsMode = Literal["none", "starttls", "ssl"]
#: Seconds one delivery attempt may take before it counts as failed (then it is retried later).
SEND_TIMEOUT = 15.0
#: Longest error text kept in the outbox row: enough to diagnose, never a whole server reply.
MAX_ERROR_LENGTH = 300


class SendError(Exception):
    """A delivery attempt failed; the text is shown to admins (never contains credentials)."""


class Sender(Protocol):
    """Delivers one message on one channel; raises :class:`SendError` if it could not."""

    channel: Channel

    async def send(self, recipient: str, subject: str, body: str) -> None: ...


@dataclass
class RecordOnlySender:
    """Accepts everything: the outbox row is the only trace (the embedded default)."""

    channel: Channel = "email"

    async def send(self, recipient: str, subject: str, body: str) -> None:
        return None


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    tls: TlsMode = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    from_address: str = "waitroom@localhost"
    timeout: float = SEND_TIMEOUT


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_LENGTH]


@dataclass
class SmtpSender:
    """Email through SMTP; one connection per message (links are sent a few times an hour)."""

    config: SmtpConfig
    channel: Channel = "email"

    def _send_sync(self, recipient: str, subject: str, body: str) -> None:
        cfg = self.config
        message = EmailMessage()
        message["From"] = cfg.from_address
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if cfg.tls == "ssl":
            client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with client:
            if cfg.tls == "starttls":
                client.starttls(context=context)
            if cfg.username:
                client.login(cfg.username, cfg.password)
            client.send_message(message)

    async def send(self, recipient: str, subject: str, body: str) -> None:
        try:
            await trio.to_thread.run_sync(self._send_sync, recipient, subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(_short(exc)) from exc


@dataclass(frozen=True)
class SmsGatewayConfig:
    url: str
    key: str = field(repr=False)
    timeout: float = SEND_TIMEOUT
    #: Who the text appears to come from (a short name or number), if the gateway allows it.
    sender_id: str = ""


@dataclass
class HttpSmsSender:
    """Text messages through an HTTP gateway (URL and API key)."""

    config: SmsGatewayConfig
    channel: Channel = "sms"

    def _payload(self, recipient: str, body: str) -> dict[str, str]:
        payload = {"to": recipient, "text": body}
        if self.config.sender_id:
            payload["from"] = self.config.sender_id
        return payload

    def _send_sync(self, recipient: str, body: str) -> None:
        request = urllib.request.Request(
            self.config.url,
            data=json.dumps(self._payload(recipient, body)).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.config.key}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            if not 200 <= response.status < 300:
                raise SendError(f"gateway answered {response.status}")

    async def send(self, recipient: str, subject: str, body: str) -> None:
        try:
            await trio.to_thread.run_sync(self._send_sync, recipient, body)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response socket
            raise SendError(f"gateway answered {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise SendError(_short(exc)) from exc
