"""``outbox``: the one actor that sends emails and texts, so no message is ever lost or sent twice.

A :class:`SendLink` is written to storage's outbox first (the committed row is the promise), then
delivered at once; a failure leaves it queued with its error and a retry time, retried on the next
round (every ``poll_interval`` seconds when idle) with growing delays, and marked failed for good after
the last delay. Being a single actor is what makes ``list_due`` safe (one sender task). Rows are
never deleted: the admin page lists them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from actors import addresses, refusals
from actors.messages import DescribeForLeaflet
from actors.principal import Principal, Role
from runtime.errors import Refusal
from runtime.kernel import Actor, handles
from services.sender import RecordOnlySender, Sender, SendError
from storage import audit
from storage import outbox as outbox_store
from storage.db import Store

# Re-exported: the outbox's channels, statuses and messages are what pages show and send, and pages
# take them from this actor's module, never from storage.
from storage.outbox import Channel as Channel
from storage.outbox import OutboxMessage as OutboxMessage
from storage.outbox import OutboxStatus as OutboxStatus
from storage.times import utcnow

log = logging.getLogger(__name__)

#: Kept importable; the address lives in ``actors.addresses``.
OUTBOX_ADDRESS = addresses.OUTBOX
#: Delays before the 2nd, 3rd, ... attempts; after the last one a message is marked failed.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (30.0, 120.0, 600.0, 1800.0)
#: How often an idle outbox looks for messages due a retry.
POLL_INTERVAL = 15.0
#: Most messages one round tries, so a long backlog cannot hold the actor for minutes.
ROUND_LIMIT = 20
MAX_BODY = 1000
#: How long the outbox waits for an area to confirm a provider.
AREA_TIMEOUT = 5.0
MAX_RECIPIENT = 254


@dataclass(frozen=True)
class SendLink:
    """A provider sends an area's link to a caller. Refused unless they are a provider there."""

    principal: Principal
    area_id: int
    channel: Channel
    recipient: str = field(repr=False)
    subject: str
    body: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class SendMessage:
    """Another actor sends a person a message it wrote itself (issue 14: a declined on-demand
    request's email). Queued and tried like a link; the sender audits what it did."""

    channel: Channel
    recipient: str = field(repr=False)
    subject: str
    body: str = field(repr=False)
    requested_by_user_id: int | None = None


@dataclass(frozen=True)
class DeliverDue:
    """Try every message whose next attempt is due at ``now`` (default: the clock)."""

    now: datetime | None = None


@dataclass(frozen=True)
class ListOutbox:
    principal: Principal
    status: OutboxStatus | None = None
    limit: int = outbox_store.DEFAULT_PAGE


class OutboxActor(Actor):
    idle_timeout: ClassVar[float | None] = POLL_INTERVAL

    def __init__(
        self,
        store: Store,
        senders: dict[Channel, Sender] | None = None,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        super().__init__()
        self.store = store
        self.senders: dict[Channel, Sender] = senders or {
            "email": RecordOnlySender("email"),
            "sms": RecordOnlySender("sms"),
        }
        self.retry_delays = retry_delays

    async def on_idle(self) -> bool:
        await self._deliver_due(utcnow())
        return False

    @handles(SendLink)
    async def _on_send_link(self, message: SendLink) -> object:
        return await self._send_link(message)

    @handles(SendMessage)
    async def _on_send_message(self, message: SendMessage) -> object:
        recipient = message.recipient.strip()
        if not recipient or len(recipient) > MAX_RECIPIENT or len(message.body) > MAX_BODY:
            raise Refusal(refusals.INVALID, "the address or the message is not valid")
        if message.channel not in self.senders:
            raise Refusal(refusals.UNAVAILABLE, f"sending by {message.channel} is not set up")
        queued = await outbox_store.enqueue(
            self.store,
            message.channel,
            recipient,
            message.body,
            subject=message.subject,
            requested_by_user_id=message.requested_by_user_id,
        )
        return await self._attempt(queued, utcnow())

    @handles(DeliverDue)
    async def _on_deliver_due(self, message: DeliverDue) -> object:
        return await self._deliver_due(message.now or utcnow())

    @handles(ListOutbox)
    async def _list(self, message: ListOutbox) -> object:
        org_ids = tuple(
            sorted(
                int(g.scope_id)
                for g in message.principal.grants
                if g.role is Role.ORG_ADMIN and g.scope_id.isascii() and g.scope_id.isdigit()
            )
        )
        if not message.principal.is_staff or not org_ids:
            raise Refusal(refusals.FORBIDDEN, "only administrators see the outbox")
        # Only the administrator's own organisations: the outbox holds patients' addresses.
        return await outbox_store.list_messages(
            self.store, status=message.status, limit=message.limit, org_ids=org_ids
        )

    async def _send_link(self, msg: SendLink) -> OutboxMessage:
        # The area decides who is a provider there (it refuses everyone else).
        await self.ref(addresses.area(msg.area_id)).ask(
            DescribeForLeaflet(msg.principal), timeout=AREA_TIMEOUT
        )
        recipient = msg.recipient.strip()
        if not recipient or len(recipient) > MAX_RECIPIENT or len(msg.body) > MAX_BODY:
            raise Refusal(refusals.INVALID, "the address or the message is not valid")
        if msg.channel not in self.senders:
            raise Refusal(refusals.UNAVAILABLE, f"sending by {msg.channel} is not set up")
        user_id = int(msg.principal.user_id) if msg.principal.user_id else None
        queued = await outbox_store.enqueue(
            self.store,
            msg.channel,
            recipient,
            msg.body,
            subject=msg.subject,
            area_id=msg.area_id,
            requested_by_user_id=user_id,
        )
        # Who sent which area's link by which channel; never the address or the text.
        await audit.append(
            self.store,
            audit.LINK_SENT,
            actor_user_id=user_id,
            area_id=msg.area_id,
            subject=f"outbox:{queued.id}",
            remote_addr=msg.remote_addr,
            details={"channel": msg.channel},
        )
        return await self._attempt(queued, utcnow())

    async def _deliver_due(self, now: datetime) -> list[OutboxMessage]:
        due = await outbox_store.list_due(self.store, now=now, limit=ROUND_LIMIT)
        return [await self._attempt(message, now) for message in due]

    async def _attempt(self, message: OutboxMessage, now: datetime) -> OutboxMessage:
        sender = self.senders.get(message.channel)
        try:
            if sender is None:
                raise SendError(f"no sender for {message.channel}")
            await sender.send(message.recipient, message.subject, message.body)
        except SendError as exc:
            attempt = message.attempts  # attempts made before this one
            retry_at = (
                now + timedelta(seconds=self.retry_delays[attempt])
                if attempt < len(self.retry_delays)
                else None
            )
            log.info("outbox message %s failed (attempt %s): %s", message.id, attempt + 1, exc)
            return await outbox_store.record_failure(
                self.store, message.id, str(exc), retry_at=retry_at, now=now
            )
        return await outbox_store.mark_sent(self.store, message.id, now=now)
