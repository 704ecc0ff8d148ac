"""Outgoing messages are queued, retried with their last error, and never lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import outbox
from storage.db import Store
from storage.errors import InvalidTransitionError

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def test_send_retry_fail_cycle(store: Store) -> None:
    mail = await outbox.enqueue(
        store, "email", "pat@example.org", "Your link: https://x/a/slug", subject="Link", now=T0
    )
    sms = await outbox.enqueue(store, "sms", "+441234567890", "Link: https://x", now=T0)
    assert (mail.status, mail.attempts, mail.next_attempt_at) == ("queued", 0, T0)
    assert await outbox.list_due(store, now=T0) == [mail, sms]

    retry_at = T0 + timedelta(minutes=1)
    failed_once = await outbox.record_failure(
        store, mail.id, "connection refused", retry_at=retry_at, now=T0
    )
    assert (failed_once.status, failed_once.attempts, failed_once.last_error) == (
        "queued",
        1,
        "connection refused",
    )
    assert await outbox.list_due(store, now=T0) == [sms]
    assert [m.id for m in await outbox.list_due(store, now=retry_at)] == [sms.id, mail.id]

    sent = await outbox.mark_sent(store, mail.id, now=retry_at)
    assert (sent.status, sent.attempts, sent.sent_at) == ("sent", 2, retry_at)
    assert sent.last_error == "connection refused"  # history of the failure is kept

    given_up = await outbox.record_failure(store, sms.id, "gateway 503", retry_at=None, now=T0)
    assert (given_up.status, given_up.attempts, given_up.last_error) == ("failed", 1, "gateway 503")
    assert await outbox.list_due(store, now=T0 + timedelta(days=1)) == []
    with pytest.raises(InvalidTransitionError):
        await outbox.mark_sent(store, sms.id)

    assert [m.id for m in await outbox.list_messages(store)] == [sms.id, mail.id]
    assert await outbox.list_messages(store, status="failed") == [given_up]
    assert await outbox.get_message(store, mail.id) == sent
