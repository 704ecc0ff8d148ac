"""How ``waitroom serve`` learns where shared links are delivered: SMTP for email, an HTTP gateway
for text messages, each from ``WAITROOM_*`` environment variables or ``--smtp-*``/``--sms-*`` flags.

Nothing configured means the embedded default: every link is recorded in the outbox (an admin
page lists it) and nothing leaves the building. A channel that is configured gets the real sender
from :mod:`services.sender`; the other channel stays record-only. Passwords and API keys are read
from the environment only (a command line is visible to every user of the machine in ``ps``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast, get_args
from urllib.parse import urlsplit

from services.sender import (
    HttpSmsSender,
    RecordOnlySender,
    Sender,
    SmsGatewayConfig,
    SmtpConfig,
    SmtpSender,
    TlsMode,
)
from storage.outbox import Channel

#: The usual port for each way of protecting an SMTP connection, when none is given.
SMTP_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
TLS_MODES: tuple[str, ...] = get_args(TlsMode)
MAX_PORT = 65535
#: Sender ids of SMS gateways: up to 11 letters or a phone number of up to 16 characters.
MAX_SENDER_ID = 16

#: Environment variable per setting; `settings_from_env` reads them, flags override them.
ENV = {
    "smtp_host": "WAITROOM_SMTP_HOST",
    "smtp_port": "WAITROOM_SMTP_PORT",
    "smtp_tls": "WAITROOM_SMTP_TLS",
    "smtp_username": "WAITROOM_SMTP_USERNAME",
    "smtp_password": "WAITROOM_SMTP_PASSWORD",
    "smtp_from": "WAITROOM_SMTP_FROM",
    "sms_url": "WAITROOM_SMS_URL",
    "sms_api_key": "WAITROOM_SMS_API_KEY",
    "sms_sender_id": "WAITROOM_SMS_SENDER_ID",
}


#: Hosts a secret may reach without TLS: a relay or gateway on this machine never crosses a network.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


class SenderConfigError(ValueError):
    """The sender settings cannot work; the message names the setting to fix."""


@dataclass(frozen=True)
class SenderSettings:
    """Where email and text messages go; empty strings mean "not configured"."""

    smtp_host: str = ""
    #: 0 = the usual port for ``smtp_tls`` (`SMTP_DEFAULT_PORTS`).
    smtp_port: int = 0
    smtp_tls: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    sms_url: str = ""
    sms_api_key: str = field(default="", repr=False)
    sms_sender_id: str = ""

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def sms_configured(self) -> bool:
        return bool(self.sms_url)


def _port(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SenderConfigError(f"{name} must be a port number, not {text!r}") from None
    if not 0 < value <= MAX_PORT:
        raise SenderConfigError(f"{name} must be between 1 and {MAX_PORT}, not {value}")
    return value


def settings_from_env(environ: Mapping[str, str]) -> SenderSettings:
    """The settings the ``WAITROOM_*`` variables give (unset or empty variables are defaults)."""
    values = {key: environ.get(var, "").strip() for key, var in ENV.items()}
    port_text = values.pop("smtp_port")
    port = _port(port_text, ENV["smtp_port"]) if port_text else 0
    tls = values.pop("smtp_tls") or "starttls"
    return SenderSettings(smtp_port=port, smtp_tls=tls, **values)


def validate(settings: SenderSettings) -> SenderSettings:
    """Refuse settings that could never deliver, naming the setting; returns them unchanged."""
    s = settings
    smtp_extras = (s.smtp_port, s.smtp_username, s.smtp_password, s.smtp_from)
    if not s.smtp_configured and any(smtp_extras):
        raise SenderConfigError("SMTP settings were given without a host (WAITROOM_SMTP_HOST)")
    if s.smtp_tls not in TLS_MODES:
        raise SenderConfigError(
            f"the SMTP TLS mode must be one of {', '.join(TLS_MODES)}, not {s.smtp_tls!r}"
        )
    if s.smtp_port and not 0 < s.smtp_port <= MAX_PORT:
        raise SenderConfigError(f"the SMTP port must be between 1 and {MAX_PORT}")
    if bool(s.smtp_username) != bool(s.smtp_password):
        raise SenderConfigError(
            "an SMTP username needs a password (WAITROOM_SMTP_PASSWORD) and the other way round"
        )
    if s.smtp_configured and "@" not in s.smtp_from:
        raise SenderConfigError("the SMTP from address (WAITROOM_SMTP_FROM) must be an address")
    if s.smtp_password and s.smtp_tls == "none" and s.smtp_host not in LOOPBACK_HOSTS:
        raise SenderConfigError("refusing to send an SMTP password without TLS to a remote host")
    if not s.sms_configured and (s.sms_api_key or s.sms_sender_id):
        raise SenderConfigError("SMS settings were given without a gateway URL (WAITROOM_SMS_URL)")
    if s.sms_configured:
        parts = urlsplit(s.sms_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SenderConfigError(f"the SMS gateway URL must be http(s)://..., not {s.sms_url!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise SenderConfigError(
                "refusing to send the SMS gateway's API key without TLS to a remote host:"
                " use an https:// URL (WAITROOM_SMS_URL)"
            )
        if not s.sms_api_key:
            raise SenderConfigError("the SMS gateway needs an API key (WAITROOM_SMS_API_KEY)")
        if len(s.sms_sender_id) > MAX_SENDER_ID:
            raise SenderConfigError(f"the SMS sender id is longer than {MAX_SENDER_ID} characters")
    return settings


def build_senders(settings: SenderSettings) -> dict[Channel, Sender]:
    """One sender per channel: the configured ones real, the rest record-only."""
    validate(settings)
    senders: dict[Channel, Sender] = {
        "email": RecordOnlySender("email"),
        "sms": RecordOnlySender("sms"),
    }
    if settings.smtp_configured:
        tls = cast(TlsMode, settings.smtp_tls)  # checked by validate()
        senders["email"] = SmtpSender(
            SmtpConfig(
                settings.smtp_host,
                settings.smtp_port or SMTP_DEFAULT_PORTS[tls],
                tls=tls,
                username=settings.smtp_username,
                password=settings.smtp_password,
                from_address=settings.smtp_from,
            )
        )
    if settings.sms_configured:
        senders["sms"] = HttpSmsSender(
            SmsGatewayConfig(
                settings.sms_url, settings.sms_api_key, sender_id=settings.sms_sender_id
            )
        )
    return senders


def describe(settings: SenderSettings) -> str:
    """One log line saying where links go, without any secret."""
    email = (
        f"SMTP {settings.smtp_host}:{settings.smtp_port or SMTP_DEFAULT_PORTS[settings.smtp_tls]}"
        f" ({settings.smtp_tls})"
        if settings.smtp_configured
        else "recorded only"
    )
    sms = (
        f"gateway {urlsplit(settings.sms_url).hostname}"
        if settings.sms_configured
        else ("recorded only")
    )
    return f"shared links: email {email}, text messages {sms}"
