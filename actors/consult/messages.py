"""What pages ask of the Consult Now desk (``consult``), and what it answers.

Kept apart from the actor so the web layer imports only these definitions. A link is never
described by its secret: pages and the console know it by its ``id`` (a handle), and only the
message that carries the link to its recipient ever holds the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from actors.principal import Principal

Channel = Literal["email", "sms"]

#: Where the link goes in the message body a page composes (replaced by the desk, which alone
#: knows the secret), and where the minutes it is valid for go (the desk's setting).
LINK_MARK = "{link}"
MINUTES_MARK = "{minutes}"


@dataclass(frozen=True)
class SendConsultLink:
    """A provider of ``area_id`` sends a new link to ``recipient`` by ``channel``. Replies the
    pending :class:`LinkView` once the outbox has the message (recorded, or sent)."""

    principal: Principal
    area_id: int
    channel: Channel
    recipient: str = field(repr=False)
    subject: str
    #: The message text with :data:`LINK_MARK` where the link goes.
    body: str = field(repr=False)
    #: The site's public base URL (``https://video.example.org``), for the absolute link.
    base_url: str
    #: Who it is for, as the provider's list shows it (optional; never clinical details).
    label: str = field(default="", repr=False)
    #: The language of the message, and of the pages the link opens when the browser says none.
    lang: str = "en"
    remote_addr: str = ""


@dataclass(frozen=True)
class ExtendConsultLink:
    """Move the expiry of one of the provider's own pending links on by one extension."""

    principal: Principal
    link_id: str
    remote_addr: str = ""


@dataclass(frozen=True)
class CancelConsultLink:
    """Cancel one of the provider's own pending links: opening it shows "cancelled"."""

    principal: Principal
    link_id: str
    remote_addr: str = ""


@dataclass(frozen=True)
class MyConsultLinks:
    """The principal's own pending links, soonest due first (the console, the send page)."""

    principal: Principal


@dataclass(frozen=True)
class DescribeLinkTimes:
    """How long links are valid and may be extended (``--consult-link-seconds``): replies
    :class:`LinkTimes`, for what the pages say."""


@dataclass(frozen=True)
class LinkTimes:
    lifetime_seconds: float
    extension_seconds: float
    max_extensions: int


@dataclass(frozen=True)
class CheckConsultLink:
    """The landing page of a link (a GET; link previews fetch it too): uses nothing. Replies a
    :class:`LinkStatus`, never refuses for the link's state."""

    secret: str = field(repr=False)


@dataclass(frozen=True)
class OpenConsultLink:
    """The recipient pressed the button: open the link (once) and start the call. Replies a
    :class:`ConsultPass`; refuses ``link_expired``, ``link_used``, ``link_cancelled`` or
    ``invalid_token``."""

    secret: str = field(repr=False)
    name: str = field(default="", repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class LinkChanged:
    """Another node's desk changed link ``link_id`` (sent, extended, cancelled, opened, expired):
    read it again, arm or disarm its timer, and push ``event`` (``consult.link`` or
    ``consult.opened``) to this node's pages that watch its provider's links."""

    link_id: str
    event: str


@dataclass(frozen=True)
class LinkStatus:
    """``state``: pending | used | cancelled | expired | unknown; ``lang`` the message's."""

    state: str
    lang: str = ""


@dataclass(frozen=True)
class ConsultPass:
    """The opener's guest token (``<room id>.<secret>``, for the websocket hello) and the call."""

    token: str = field(repr=False)
    room_id: str
    area_name: str


@dataclass(frozen=True)
class LinkView:
    """A link as its provider sees it (the wire's ``consult.link`` body is :meth:`wire`)."""

    id: str
    area_id: int
    area_name: str
    channel: str
    recipient_hint: str
    label: str = field(repr=False)
    state: str
    #: Seconds until it expires when this view was made (0 once it is no longer pending).
    seconds_left: float
    extensions: int
    extensions_left: int
    #: What one extension adds, in seconds.
    extension_seconds: float
    #: The call it opened (``opened`` only): the provider's call page is ``/consult/call/<room_id>``.
    room_id: str | None

    def wire(self) -> dict[str, object]:
        return {
            "id": self.id,
            "area_id": self.area_id,
            "area": self.area_name,
            "channel": self.channel,
            "to": self.recipient_hint,
            "label": self.label,
            "state": self.state,
            "seconds_left": self.seconds_left,
            "extensions": self.extensions,
            "extensions_left": self.extensions_left,
            "extension_seconds": self.extension_seconds,
            "room": self.room_id,
        }
