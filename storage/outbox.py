"""Outgoing emails and text messages. Queued first, then sent by a sender actor, so a failing
SMTP server or SMS gateway never loses a message: it stays queued with its last error and is
retried until the sender gives up and marks it failed. The admin outbox page lists this table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_required, insert
from storage.errors import InvalidTransitionError
from storage.times import from_db, opt_from_db, opt_to_db, to_db, utcnow

Channel = Literal["email", "sms"]
OutboxStatus = Literal["queued", "sent", "failed"]

DEFAULT_PAGE = 200


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    channel: Channel
    recipient: str
    subject: str
    body: str
    status: OutboxStatus
    attempts: int
    last_error: str | None
    area_id: int | None
    requested_by_user_id: int | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def _message(row: Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        channel=row["channel"],
        recipient=row["recipient"],
        subject=row["subject"],
        body=row["body"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        area_id=row["area_id"],
        requested_by_user_id=row["requested_by_user_id"],
        created_at=from_db(row["created_at"]),
        updated_at=from_db(row["updated_at"]),
        next_attempt_at=from_db(row["next_attempt_at"]),
        sent_at=opt_from_db(row["sent_at"]),
    )


def _get(db: Database, message_id: int) -> OutboxMessage:
    return _message(
        fetch_required(
            db, "SELECT * FROM outbox WHERE id = ?", (message_id,), f"message {message_id}"
        )
    )


def _enqueue(
    db: Database,
    channel: Channel,
    recipient: str,
    subject: str,
    body: str,
    area_id: int | None,
    user_id: int | None,
    now: datetime,
) -> OutboxMessage:
    stamp = to_db(now)
    message_id = insert(
        db,
        """INSERT INTO outbox (channel, recipient, subject, body, area_id, requested_by_user_id,
               created_at, updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (channel, recipient, subject, body, area_id, user_id, stamp, stamp, stamp),
    )
    return _get(db, message_id)


def _due(db: Database, now: datetime, limit: int) -> list[OutboxMessage]:
    rows = fetch_all(
        db,
        """SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
           ORDER BY next_attempt_at, id LIMIT ?""",
        (to_db(now), limit),
    )
    return [_message(r) for r in rows]


def _require_queued(db: Database, message_id: int) -> None:
    message = _get(db, message_id)
    if message.status != "queued":
        raise InvalidTransitionError(f"message {message_id} is already {message.status}")


def _mark_sent(db: Database, message_id: int, now: datetime) -> OutboxMessage:
    _require_queued(db, message_id)
    stamp = to_db(now)
    execute(
        db,
        """UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, updated_at = ?
           WHERE id = ?""",
        (stamp, stamp, message_id),
    )
    return _get(db, message_id)


def _record_failure(
    db: Database, message_id: int, error: str, retry_at: datetime | None, now: datetime
) -> OutboxMessage:
    _require_queued(db, message_id)
    execute(
        db,
        """UPDATE outbox SET attempts = attempts + 1, last_error = ?, updated_at = ?,
               status = CASE WHEN ? IS NULL THEN 'failed' ELSE 'queued' END,
               next_attempt_at = COALESCE(?, next_attempt_at)
           WHERE id = ?""",
        (error, to_db(now), None if retry_at is None else 1, opt_to_db(retry_at), message_id),
    )
    return _get(db, message_id)


def _list(
    db: Database,
    status: OutboxStatus | None,
    area_id: int | None,
    limit: int,
    org_ids: tuple[int, ...] | None,
) -> list[OutboxMessage]:
    scope = ""
    scope_params: tuple[int, ...] = ()
    if org_ids is not None:
        marks = ", ".join("?" for _ in org_ids) or "NULL"
        scope = f""" AND area_id IN (SELECT a.id FROM waiting_areas a JOIN units u ON u.id = a.unit_id
                                     WHERE u.org_id IN ({marks}))"""
        scope_params = org_ids
    rows = fetch_all(
        db,
        f"""SELECT * FROM outbox WHERE (? IS NULL OR status = ?) AND (? IS NULL OR area_id = ?)
           {scope} ORDER BY id DESC LIMIT ?""",
        (status, status, area_id, area_id, *scope_params, limit),
    )
    return [_message(r) for r in rows]


async def enqueue(
    store: Store,
    channel: Channel,
    recipient: str,
    body: str,
    *,
    subject: str = "",
    area_id: int | None = None,
    requested_by_user_id: int | None = None,
    now: datetime | None = None,
) -> OutboxMessage:
    """Queue a message, due immediately. The committed row is the promise it will be tried."""
    return await store.run(
        _enqueue,
        channel,
        recipient,
        subject,
        body,
        area_id,
        requested_by_user_id,
        now or utcnow(),
    )


async def get_message(store: Store, message_id: int) -> OutboxMessage:
    return await store.run(_get, message_id)


async def list_due(
    store: Store, *, now: datetime | None = None, limit: int = DEFAULT_PAGE
) -> list[OutboxMessage]:
    """Queued messages whose next attempt is due, oldest first. Meant for a single sender task;
    two concurrent senders could both pick the same message."""
    return await store.run(_due, now or utcnow(), limit)


async def mark_sent(store: Store, message_id: int, *, now: datetime | None = None) -> OutboxMessage:
    """Record a successful attempt. `InvalidTransitionError` unless the message was queued."""
    return await store.run(_mark_sent, message_id, now or utcnow())


async def record_failure(
    store: Store,
    message_id: int,
    error: str,
    *,
    retry_at: datetime | None,
    now: datetime | None = None,
) -> OutboxMessage:
    """Record a failed attempt: stays queued until ``retry_at``, or with ``retry_at=None`` (the
    sender's retry limit reached) becomes failed for good. The error text is kept either way."""
    return await store.run(_record_failure, message_id, error, retry_at, now or utcnow())


async def list_messages(
    store: Store,
    *,
    status: OutboxStatus | None = None,
    area_id: int | None = None,
    limit: int = DEFAULT_PAGE,
    org_ids: tuple[int, ...] | None = None,
) -> list[OutboxMessage]:
    """The outbox for the admin page, newest first; with ``org_ids``, only messages about areas of
    those organisations (an organisation's administrator must not see other clinics' patients)."""
    return await store.run(_list, status, area_id, limit, org_ids)
