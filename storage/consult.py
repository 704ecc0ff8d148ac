"""Consult Now links: single-use, time-limited links a provider sends to start a call on the spot.

A link is a row in ``consult_links`` (migration 3) with the SHA-256 of its secret, never the
secret itself, so a copy of the database opens nothing. It is ``pending`` from sending until it is
``opened`` (once), ``cancelled`` by its provider, or ``expired``. Every move out of ``pending`` is
one conditional UPDATE whose own WHERE decides whether it wins (still pending, not yet due), so two
people opening one link at the same moment get exactly one call: the winner's UPDATE creates the
call's room and the opener's guest token in the same transaction, the loser sees ``used``. An
expired, used or cancelled link creates nothing.

Times are passed in (``now``) by the actor that owns the links' timers, so the expiry the storage
checks and the timer that marks it are on one clock (a virtual one in tests).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlite_utils import Database

from storage.db import Row, Store, execute, fetch_all, fetch_one, fetch_required, new_id
from storage.errors import NotFoundError
from storage.rooms import Room, create_room_sync, hash_token, issue_token_sync
from storage.times import from_db, opt_from_db, to_db

LinkState = Literal["pending", "opened", "cancelled", "expired"]
Channel = Literal["email", "sms"]

#: Random bytes in a link's secret (as room tokens).
SECRET_BYTES = 32

#: Migration 3 (``storage.migrations``) runs this.
SCHEMA = """
CREATE TABLE consult_links (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    area_id          INTEGER NOT NULL REFERENCES waiting_areas(id),
    provider_user_id INTEGER NOT NULL REFERENCES staff_users(id),
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient_hint   TEXT NOT NULL DEFAULT '',
    label            TEXT NOT NULL DEFAULT '',
    lang             TEXT NOT NULL DEFAULT 'en',
    state            TEXT NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'opened', 'cancelled', 'expired')),
    extensions       INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    finished_at      TEXT,
    room_id          TEXT REFERENCES rooms(id)
);
CREATE INDEX consult_links_pending ON consult_links (state, expires_at);
CREATE INDEX consult_links_by_provider ON consult_links (provider_user_id, state);
CREATE INDEX consult_links_by_room ON consult_links (room_id);
"""


class ConsultLinkRejected(Exception):
    """A link that cannot be used or changed; ``reason`` (unknown | used | cancelled | expired |
    limit) picks the page the recipient or the provider sees."""

    def __init__(self, reason: str, lang: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        #: The link's language when the link is known, so its "expired" page speaks it too.
        self.lang = lang


@dataclass(frozen=True, slots=True)
class ConsultLink:
    id: str
    area_id: int
    provider_user_id: int
    channel: Channel
    recipient_hint: str
    label: str
    lang: str
    state: LinkState
    extensions: int
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    room_id: str | None


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A new link: ``raw`` goes into the message once; only ``link`` is kept."""

    raw: str
    link: ConsultLink


@dataclass(frozen=True, slots=True)
class Redeemed:
    """The one winning opening: the call's new room and the opener's guest token secret."""

    link: ConsultLink
    room: Room
    guest_secret: str


def _link(row: Row) -> ConsultLink:
    return ConsultLink(
        row["id"],
        row["area_id"],
        row["provider_user_id"],
        row["channel"],
        row["recipient_hint"],
        row["label"],
        row["lang"],
        row["state"],
        row["extensions"],
        from_db(row["created_at"]),
        from_db(row["expires_at"]),
        opt_from_db(row["finished_at"]),
        row["room_id"],
    )


def _get(db: Database, link_id: str) -> ConsultLink:
    return _link(
        fetch_required(db, "SELECT * FROM consult_links WHERE id = ?", (link_id,), "consult link")
    )


def _create(
    db: Database,
    area_id: int,
    provider_user_id: int,
    channel: Channel,
    recipient_hint: str,
    label: str,
    lang: str,
    lifetime: timedelta,
    now: datetime,
) -> IssuedLink:
    raw = secrets.token_urlsafe(SECRET_BYTES)
    link_id = new_id()
    execute(
        db,
        """INSERT INTO consult_links (id, token_hash, area_id, provider_user_id, channel,
               recipient_hint, label, lang, created_at, expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            link_id,
            hash_token(raw),
            area_id,
            provider_user_id,
            channel,
            recipient_hint,
            label,
            lang,
            to_db(now),
            to_db(now + lifetime),
        ),
    )
    return IssuedLink(raw, _get(db, link_id))


def _by_secret(db: Database, raw: str) -> ConsultLink:
    row = fetch_one(db, "SELECT * FROM consult_links WHERE token_hash = ?", (hash_token(raw),))
    if row is None:
        raise ConsultLinkRejected("unknown")
    return _link(row)


def _why_not(link: ConsultLink, now: datetime) -> str:
    """Why a link that did not win cannot be used: its state, or ``expired`` once it is due."""
    if link.state == "opened":
        return "used"
    if link.state == "pending" and link.expires_at <= now:
        return "expired"
    return link.state


def _check(db: Database, raw: str, now: datetime) -> ConsultLink:
    link = _by_secret(db, raw)
    if link.state != "pending" or link.expires_at <= now:
        raise ConsultLinkRejected(_why_not(link, now), link.lang)
    return link


def _redeem(db: Database, raw: str, guest_name: str, now: datetime) -> Redeemed:
    """The conditional UPDATE is the transaction's first statement: it takes the write lock at
    once and its WHERE alone decides the winner (see ``storage.rooms._claim`` for why no SELECT
    may come first)."""
    stamp = to_db(now)
    won = execute(
        db,
        """UPDATE consult_links SET state = 'opened', finished_at = ?
           WHERE token_hash = ? AND state = 'pending' AND expires_at > ?""",
        (stamp, hash_token(raw), stamp),
    ).rowcount
    link = _by_secret(db, raw)
    if won != 1:
        raise ConsultLinkRejected(_why_not(link, now), link.lang)
    room = create_room_sync(
        db, "consult_now", link.area_id, None, link.provider_user_id, link.label, now
    )
    execute(db, "UPDATE consult_links SET room_id = ? WHERE id = ?", (room.id, link.id))
    guest = issue_token_sync(db, room.id, "guest", False, None, None, guest_name, now)
    return Redeemed(_get(db, link.id), room, guest.raw)


def _finish(
    db: Database, link_id: str, state: LinkState, now: datetime, due_only: bool
) -> ConsultLink:
    stamp = to_db(now)
    changed = execute(
        db,
        f"""UPDATE consult_links SET state = ?, finished_at = ?
            WHERE id = ? AND state = 'pending' AND expires_at {"<=" if due_only else ">"} ?""",
        (state, stamp, link_id, stamp),
    ).rowcount
    link = _get(db, link_id)
    if changed != 1:
        raise ConsultLinkRejected(_why_not(link, now))
    return link


def _extend(
    db: Database, link_id: str, by: timedelta, max_extensions: int, now: datetime
) -> ConsultLink:
    link = _get(db, link_id)
    stamp = to_db(now)
    changed = execute(
        db,
        """UPDATE consult_links SET expires_at = ?, extensions = extensions + 1
           WHERE id = ? AND state = 'pending' AND expires_at > ? AND extensions < ?
             AND expires_at = ?""",
        (to_db(link.expires_at + by), link_id, stamp, max_extensions, to_db(link.expires_at)),
    ).rowcount
    if changed != 1:
        if link.state == "pending" and link.expires_at > now:
            raise ConsultLinkRejected("limit")
        raise ConsultLinkRejected(_why_not(link, now))
    return _get(db, link_id)


def _pending(db: Database, provider_user_id: int | None) -> list[ConsultLink]:
    rows = fetch_all(
        db,
        """SELECT * FROM consult_links WHERE state = 'pending'
             AND (? IS NULL OR provider_user_id = ?) ORDER BY expires_at, id""",
        (provider_user_id, provider_user_id),
    )
    return [_link(r) for r in rows]


def _for_room(db: Database, room_id: str) -> ConsultLink:
    row = fetch_one(db, "SELECT * FROM consult_links WHERE room_id = ?", (room_id,))
    if row is None:
        raise NotFoundError(f"consult link of room {room_id}")
    return _link(row)


async def create_link(
    store: Store,
    *,
    area_id: int,
    provider_user_id: int,
    channel: Channel,
    lifetime: timedelta,
    now: datetime,
    recipient_hint: str = "",
    label: str = "",
    lang: str = "en",
) -> IssuedLink:
    """A new pending link, due ``lifetime`` after ``now``. ``recipient_hint`` is a masked address
    for the provider's list (the outbox keeps the real one)."""
    return await store.run(
        _create, area_id, provider_user_id, channel, recipient_hint, label, lang, lifetime, now
    )


async def get_link(store: Store, link_id: str) -> ConsultLink:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(_get, link_id)


async def check_link(store: Store, raw: str, *, now: datetime) -> ConsultLink:
    """The pending link behind ``raw``, using nothing (a landing page, a link preview), or
    `ConsultLinkRejected` (unknown | used | cancelled | expired)."""
    return await store.run(_check, raw, now)


async def redeem_link(store: Store, raw: str, *, guest_name: str, now: datetime) -> Redeemed:
    """Open the link once: atomic, so of any number of simultaneous openings exactly one gets the
    call's room (created here) and a guest token named ``guest_name``; the others get
    `ConsultLinkRejected('used')`. Expired, cancelled and unknown links create nothing."""
    return await store.run(_redeem, raw, guest_name, now)


async def cancel_link(store: Store, link_id: str, *, now: datetime) -> ConsultLink:
    """Cancel a pending link; `ConsultLinkRejected` if it is no longer pending (or is due)."""
    return await store.run(_finish, link_id, "cancelled", now, False)


async def expire_link(store: Store, link_id: str, *, now: datetime) -> ConsultLink:
    """Mark a pending link whose time is up expired; `ConsultLinkRejected` if it was opened,
    cancelled or extended past ``now`` meanwhile."""
    return await store.run(_finish, link_id, "expired", now, True)


async def extend_link(
    store: Store, link_id: str, *, by: timedelta, max_extensions: int, now: datetime
) -> ConsultLink:
    """Move a pending link's expiry ``by`` later, at most ``max_extensions`` times;
    `ConsultLinkRejected('limit')` past that, or its state once it is no longer pending."""
    return await store.run(_extend, link_id, by, max_extensions, now)


async def list_pending(store: Store, *, provider_user_id: int | None = None) -> list[ConsultLink]:
    """Pending links (of one provider), soonest due first: what the desk re-arms after a restart
    and what a provider's console lists."""
    return await store.run(_pending, provider_user_id)


async def link_for_room(store: Store, room_id: str) -> ConsultLink:
    """The opened link a Consult Now room was created for; `NotFoundError` if none."""
    return await store.run(_for_room, room_id)
