"""The append-only audit log: who did what, when (UTC), in which area, from which address.

Append-only is enforced twice: this module has no update or delete function, and SQLite triggers
(migration 1) abort any UPDATE or DELETE on ``audit_log`` whoever issues it. Each entry also
carries a hash chained to the one before (``storage.audit_chain``, migration 6), so a change made
by someone who dropped the triggers shows.

The client's address is the one part of an entry that is forgotten (issue 15): it is kept apart,
in ``audit_addresses`` with a key of its own, and the chain covers only its keyed digest
(``storage.audit_chain``, migration 10). `forget_addresses` deletes the addresses of entries
older than the retention policy's days; the entries themselves, who did what and when, stay as
they were and the chain still holds. Entries read back show a forgotten address as "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlite_utils import Database

from storage import audit_chain
from storage.db import (
    Row,
    Store,
    dump_json,
    execute,
    fetch_all,
    fetch_required,
    insert,
    load_json,
)
from storage.times import from_db, to_db, utcnow

ActorKind = Literal["user", "caller", "guest", "system"]

DEFAULT_PAGE = 200
MAX_PAGE = 1000

_SECRET_KEY = re.compile(r"token|password|secret|session|csrf", re.IGNORECASE)
"""Detail keys that suggest a credential: refused, so no token can ever reach the log."""

# The one vocabulary of action names: dotted, lower case, ``<what it is about>.<what happened>``.
# Every writer uses these constants and the admin page's filter offers `ACTIONS`; rows written
# before this vocabulary (plain names such as ``sign_in``) stay as they are: the log is append-only.
SIGN_IN = "auth.sign_in"
SIGN_IN_FAILED = "auth.sign_in_failed"
SIGN_OUT = "auth.sign_out"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
AREA_CREATED = "area.created"
AREA_UPDATED = "area.updated"
AREA_LINK_ROTATED = "area.link_rotated"
STAFF_CREATED = "staff.created"
STAFF_DEACTIVATED = "staff.deactivated"
STAFF_REACTIVATED = "staff.reactivated"
PASSWORD_RESET = "staff.password_reset"
PASSWORD_CHANGED = "staff.password_changed"
ARRIVAL = "caller.arrived"
JOIN = "call.joined"
INVITE = "call.invite_created"
INVITE_CLAIMED = "call.invite_claimed"
#: A staff member entered a caller's call (details: ``announced`` when they were not the
#: provider who joined the caller and confirmed "join this call"; issue 15).
STAFF_ENTERED = "call.staff_entered"
HOLD = "call.hold"
TRANSFER = "caller.transferred"
END = "call.ended"
UNCONNECTED_REMOVED = "area.unconnected_removed"
LINK_SENT = "link.sent"
RETENTION_SWEEP = "retention.sweep"
# Consult Now (issue 13): a link sent (the start), opened, extended, cancelled, expired unused;
# each person's entry into the call, and its end.
CONSULT_STARTED = "consult.started"
CONSULT_OPENED = "consult.opened"
CONSULT_EXTENDED = "consult.extended"
CONSULT_CANCELLED = "consult.cancelled"
CONSULT_EXPIRED = "consult.expired"
CONSULT_ENTERED = "consult.entered"
CONSULT_ENDED = "consult.ended"
# On-demand sessions (issue 14); subject ``ondemand:<request id>``, details name the org.
ONDEMAND_CLAIM = "ondemand.claimed"
ONDEMAND_ASSIGN = "ondemand.assigned"
ONDEMAND_DECLINE = "ondemand.declined"
ONDEMAND_START = "ondemand.started"
ONDEMAND_END = "ondemand.ended"
ONDEMAND_SETTINGS = "ondemand.settings_updated"
MEETING_ROOM_CREATED = "meeting_room.created"
MEETING_ROOM_RENAMED = "meeting_room.renamed"
MEETING_ROOM_ARCHIVED = "meeting_room.archived"
MEETING_LINK_ROTATED = "meeting_room.link_rotated"
MEETING_CALL_STARTED = "meeting_room.call_started"
MEETING_ENTERED = "meeting_room.entered"
MEETING_CALL_ENDED = "meeting_room.call_ended"
USER_ROOM_CREATED = "user_room.created"
USER_ROOM_ARCHIVED = "user_room.archived"
USER_ROOM_CALL_STARTED = "user_room.call_started"
USER_ROOM_ENTERED = "user_room.entered"
USER_ROOM_CALL_ENDED = "user_room.call_ended"
# Group consultations (issue 12); subject ``group:<session id>``, details name participants by id.
GROUP_CREATED = "group.created"
GROUP_CHANGED = "group.changed"
GROUP_LINK_ROTATED = "group.link_rotated"
GROUP_LINK_SENT = "group.link_sent"
GROUP_ARRIVED = "group.arrived"
GROUP_STARTED = "group.started"
GROUP_ADMITTED = "group.admitted"
GROUP_SENT_BACK = "group.sent_back"
GROUP_REMOVED = "group.removed"
GROUP_LOCKED = "group.locked"
GROUP_ENDED = "group.ended"
#: Breakout rooms opened and closed (written by the breakout desk, ``actors/group/breakouts.py``).
GROUP_BREAKOUT_OPENED = "group.breakout_opened"
GROUP_BREAKOUT_CLOSED = "group.breakout_closed"

ACTIONS: tuple[str, ...] = (
    SIGN_IN,
    SIGN_IN_FAILED,
    SIGN_OUT,
    ARRIVAL,
    JOIN,
    INVITE,
    INVITE_CLAIMED,
    STAFF_ENTERED,
    HOLD,
    TRANSFER,
    END,
    UNCONNECTED_REMOVED,
    LINK_SENT,
    RETENTION_SWEEP,
    CONSULT_STARTED,
    CONSULT_OPENED,
    CONSULT_EXTENDED,
    CONSULT_CANCELLED,
    CONSULT_EXPIRED,
    CONSULT_ENTERED,
    CONSULT_ENDED,
    ROLE_GRANTED,
    ROLE_REVOKED,
    AREA_CREATED,
    AREA_UPDATED,
    AREA_LINK_ROTATED,
    STAFF_CREATED,
    STAFF_DEACTIVATED,
    STAFF_REACTIVATED,
    PASSWORD_RESET,
    PASSWORD_CHANGED,
    MEETING_ROOM_CREATED,
    MEETING_ROOM_RENAMED,
    MEETING_ROOM_ARCHIVED,
    MEETING_LINK_ROTATED,
    MEETING_CALL_STARTED,
    MEETING_ENTERED,
    MEETING_CALL_ENDED,
    USER_ROOM_CREATED,
    USER_ROOM_ARCHIVED,
    USER_ROOM_CALL_STARTED,
    USER_ROOM_ENTERED,
    USER_ROOM_CALL_ENDED,
    GROUP_CREATED,
    GROUP_CHANGED,
    GROUP_LINK_ROTATED,
    GROUP_LINK_SENT,
    GROUP_ARRIVED,
    GROUP_STARTED,
    GROUP_ADMITTED,
    GROUP_SENT_BACK,
    GROUP_REMOVED,
    GROUP_LOCKED,
    GROUP_ENDED,
    GROUP_BREAKOUT_OPENED,
    GROUP_BREAKOUT_CLOSED,
    ONDEMAND_CLAIM,
    ONDEMAND_ASSIGN,
    ONDEMAND_DECLINE,
    ONDEMAND_START,
    ONDEMAND_END,
    ONDEMAND_SETTINGS,
)
"""Every action name the application writes, in the order the admin filter lists them."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_kind: ActorKind
    actor_user_id: int | None
    action: str
    area_id: int | None
    subject: str
    remote_addr: str
    details: dict[str, Any]


#: Entries with their address while it is kept (``address`` NULL once forgotten or for none).
_SELECT = """SELECT l.*, a.address FROM audit_log l
               LEFT JOIN audit_addresses a ON a.entry_id = l.id"""


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        row["id"],
        from_db(row["at"]),
        row["actor_kind"],
        row["actor_user_id"],
        row["action"],
        row["area_id"],
        row["subject"],
        row["address"] or "",
        load_json(row["details"]),
    )


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        if _SECRET_KEY.search(key):
            raise ValueError(f"audit details must not carry credentials (key {key!r})")
        if isinstance(value, dict):
            _check_details(value)


def _append(
    db: Database,
    action: str,
    actor_kind: ActorKind,
    actor_user_id: int | None,
    area_id: int | None,
    subject: str,
    remote_addr: str,
    details: dict[str, Any],
    now: datetime,
) -> AuditEntry:
    # The id is chosen here because it is part of the chain hash; rows are never deleted, so
    # the next rowid is the newest one's plus one.
    last_id, previous = audit_chain.head(db)
    key = audit_chain.new_address_key() if remote_addr else ""
    fields: dict[str, object] = {
        "id": last_id + 1,
        "at": to_db(now),
        "actor_kind": actor_kind,
        "actor_user_id": actor_user_id,
        "action": action,
        "area_id": area_id,
        "subject": subject,
        "remote_addr": "",  # the address itself goes to audit_addresses, below
        "address_digest": audit_chain.address_digest(key, remote_addr),
        "details": dump_json(details),
    }
    entry_id = insert(
        db,
        """INSERT INTO audit_log (id, at, actor_kind, actor_user_id, action, area_id, subject,
               remote_addr, address_digest, details, chain)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (*fields.values(), audit_chain.link(previous, fields)),  # type: ignore[arg-type]
    )
    if remote_addr:
        execute(
            db,
            "INSERT INTO audit_addresses (entry_id, address, address_key) VALUES (?, ?, ?)",
            (entry_id, remote_addr, key),
        )
    return _entry(fetch_required(db, f"{_SELECT} WHERE l.id = ?", (entry_id,), "entry"))


def _list(
    db: Database,
    action: str | None,
    area_id: int | None,
    user_id: int | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    since_text = None if since is None else to_db(since)
    until_text = None if until is None else to_db(until)
    rows = fetch_all(
        db,
        f"""{_SELECT}
           WHERE (:action IS NULL OR l.action = :action)
             AND (:area IS NULL OR l.area_id = :area)
             AND (:user IS NULL OR l.actor_user_id = :user)
             AND (:since IS NULL OR l.at >= :since)
             AND (:until IS NULL OR l.at < :until)
             AND (:before IS NULL OR l.id < :before)
           ORDER BY l.id DESC LIMIT :limit""",
        {
            "action": action,
            "area": area_id,
            "user": user_id,
            "since": since_text,
            "until": until_text,
            "before": before_id,
            "limit": limit,
        },
    )
    return [_entry(r) for r in rows]


async def append(
    store: Store,
    action: str,
    *,
    actor_kind: ActorKind = "user",
    actor_user_id: int | None = None,
    area_id: int | None = None,
    subject: str = "",
    remote_addr: str = "",
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Write one entry. ``subject`` names what was acted on (a caller id, a username), never
    clinical details; ``details`` keys that look like credentials raise `ValueError`."""
    payload = details or {}
    _check_details(payload)
    return await store.run(
        _append,
        action,
        actor_kind,
        actor_user_id,
        area_id,
        subject,
        remote_addr,
        payload,
        now or utcnow(),
    )


async def list_entries(
    store: Store,
    *,
    action: str | None = None,
    area_id: int | None = None,
    user_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> list[AuditEntry]:
    """Entries matching every given filter, newest first; ``since`` inclusive, ``until``
    exclusive. Page with ``before_id`` = the last id of the previous page."""
    return await store.run(
        _list, action, area_id, user_id, since, until, before_id, min(max(limit, 1), MAX_PAGE)
    )


def forget_addresses(db: Database, before: datetime) -> int:
    """Forget the client addresses (with their keys) of entries written before ``before``, in the
    caller's transaction (the retention sweep's); how many. The entries stay as they were."""
    return execute(
        db,
        """DELETE FROM audit_addresses
           WHERE entry_id IN (SELECT id FROM audit_log WHERE at < ?)""",
        (to_db(before),),
    ).rowcount
