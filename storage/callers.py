"""Waiting callers (arrivals): the persisted queue that waiting-area actors restore after a restart.

Every status change is also appended to ``caller_events`` (caller, area, status, at), which is
what reports read: a caller's wait, a transfer and a walk-out stay visible after the row moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlite_utils import Database

from storage import audit
from storage.areas import WaitingArea, _get_area
from storage.calls import _active_for_room
from storage.db import Row, Store, dump_json, execute, fetch_all, fetch_required, load_json, new_id
from storage.errors import InvalidTransitionError
from storage.orgs import Unit, _get_unit
from storage.rooms import (
    IssuedToken,
    Room,
    _list_tokens,
    create_room_sync,
    get_room_sync,
    issue_token_for,
)
from storage.times import from_db, opt_from_db, opt_to_db, to_db, utcnow

CallerStatus = Literal["waiting", "in_call", "on_hold", "transferred", "left", "ended"]
ACTIVE_STATUSES: tuple[CallerStatus, ...] = ("waiting", "in_call", "on_hold")
"""Statuses of a caller still in an area's queue (what a restarted area actor restores)."""
FINAL_STATUSES: tuple[CallerStatus, ...] = ("left", "ended")


@dataclass(frozen=True, slots=True)
class Caller:
    id: str
    area_id: int
    origin_area_id: int
    room_id: str | None
    details: dict[str, str]
    status: CallerStatus
    arrived_at: datetime
    queued_at: datetime
    """When the caller joined the current area's queue (arrival, or transfer in): the queue order."""
    status_changed_at: datetime
    first_call_at: datetime | None
    finished_at: datetime | None
    transferred_from_area_id: int | None
    grace_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class CallerEvent:
    id: int
    caller_id: str
    area_id: int
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Arrival:
    """The result of `register_arrival`: the caller, their private room and their room token."""

    caller: Caller
    room: Room
    token: IssuedToken


@dataclass(frozen=True, slots=True)
class ArrivalRequest:
    """One arrival of a batch: the cleaned form answers and what the audit log records of it."""

    details: dict[str, str]
    audit_action: str
    remote_addr: str


@dataclass(frozen=True, slots=True)
class RoomRestore:
    """What a room actor restores on start, read in one transaction (see `load_room_restore`)."""

    room: Room
    caller: Caller | None
    """The caller bound to the room's caller token (the oldest one), if any."""
    area: WaitingArea | None
    """The caller's current area (else the room's); None for a room without an area."""
    unit: Unit | None
    active_call_id: str | None


def _caller(row: Row) -> Caller:
    return Caller(
        id=row["id"],
        area_id=row["area_id"],
        origin_area_id=row["origin_area_id"],
        room_id=row["room_id"],
        details=load_json(row["details"]),
        status=row["status"],
        arrived_at=from_db(row["arrived_at"]),
        queued_at=from_db(row["queued_at"]),
        status_changed_at=from_db(row["status_changed_at"]),
        first_call_at=opt_from_db(row["first_call_at"]),
        finished_at=opt_from_db(row["finished_at"]),
        transferred_from_area_id=row["transferred_from_area_id"],
        grace_expires_at=opt_from_db(row["grace_expires_at"]),
    )


def _event(db: Database, caller_id: str, area_id: int, status: str, now: datetime) -> None:
    execute(
        db,
        "INSERT INTO caller_events (caller_id, area_id, status, at) VALUES (?, ?, ?, ?)",
        (caller_id, area_id, status, to_db(now)),
    )


def get_caller_sync(db: Database, caller_id: str) -> Caller:
    return _caller(
        fetch_required(
            db, "SELECT * FROM callers WHERE id = ?", (caller_id,), f"caller {caller_id}"
        )
    )


def _register(
    db: Database,
    area_id: int,
    details: dict[str, str],
    room_id: str | None,
    token_expires_at: datetime | None,
    now: datetime,
) -> Arrival:
    if room_id is None:
        room = create_room_sync(db, "caller", area_id, None, None, "", now)
    else:
        room = get_room_sync(db, room_id)
    caller_id = new_id()
    stamp, stored = to_db(now), dump_json(details)
    execute(
        db,
        """INSERT INTO callers (id, area_id, origin_area_id, room_id, details, status, arrived_at,
               queued_at, status_changed_at) VALUES (?, ?, ?, ?, ?, 'waiting', ?, ?, ?)""",
        (caller_id, area_id, area_id, room.id, stored, stamp, stamp, stamp),
    )
    _event(db, caller_id, area_id, "waiting", now)
    token = issue_token_for(db, room, "caller", False, token_expires_at, caller_id, "", now)
    # The row as a read would give it, without the read (issue 17): the rest are NULL.
    at = from_db(stamp)
    caller = Caller(
        id=caller_id,
        area_id=area_id,
        origin_area_id=area_id,
        room_id=room.id,
        details=load_json(stored),
        status="waiting",
        arrived_at=at,
        queued_at=at,
        status_changed_at=at,
        first_call_at=None,
        finished_at=None,
        transferred_from_area_id=None,
        grace_expires_at=None,
    )
    return Arrival(caller, room, token)


def _register_many(
    db: Database, area_id: int, batch: list[ArrivalRequest], now: datetime | None
) -> list[tuple[Arrival, RoomRestore]]:
    area = _get_area(db, area_id)
    unit = _get_unit(db, area.unit_id)
    arrivals: list[tuple[Arrival, RoomRestore]] = []
    for request in batch:
        # Each its own time (unless one is given), so the restored queue keeps arrival order.
        stamp = now or utcnow()
        arrival = _register(db, area_id, request.details, None, None, stamp)
        audit._append(
            db,
            request.audit_action,
            "caller",
            None,
            area_id,
            arrival.caller.id,
            request.remote_addr,
            {},
            stamp,
        )
        snapshot = RoomRestore(arrival.room, arrival.caller, area, unit, None)
        arrivals.append((arrival, snapshot))
    return arrivals


def _room_snapshot(db: Database, room_id: str, caller_token_kind: str) -> RoomRestore:
    room = get_room_sync(db, room_id)
    if room.state != "open" or room.area_id is None:
        return RoomRestore(room, None, None, None, None)  # ended: nothing more to restore
    caller_ids = [
        t.caller_id
        for t in _list_tokens(db, room_id)
        if t.kind == caller_token_kind and t.caller_id
    ]
    caller = get_caller_sync(db, caller_ids[0]) if caller_ids else None
    area_id = caller.area_id if caller is not None else room.area_id
    area = _get_area(db, area_id) if area_id is not None else None
    unit = _get_unit(db, area.unit_id) if area is not None else None
    active = _active_for_room(db, room_id)
    return RoomRestore(room, caller, area, unit, active.id if active else None)


def _set_status(db: Database, caller_id: str, status: CallerStatus, now: datetime) -> Caller:
    if status not in get_args(CallerStatus) or status == "transferred":
        raise ValueError(f"set_status cannot set {status!r} (use transfer_caller for transfers)")
    caller = get_caller_sync(db, caller_id)
    if caller.status in FINAL_STATUSES:
        raise InvalidTransitionError(f"caller {caller_id} is already {caller.status}")
    stamp = to_db(now)
    execute(
        db,
        """UPDATE callers SET status = ?, status_changed_at = ?, grace_expires_at = NULL,
               first_call_at = CASE WHEN ? = 'in_call' THEN COALESCE(first_call_at, ?)
                                    ELSE first_call_at END,
               finished_at = CASE WHEN ? IN ('left', 'ended') THEN ? ELSE finished_at END
           WHERE id = ?""",
        (status, stamp, status, stamp, status, stamp, caller_id),
    )
    _event(db, caller_id, caller.area_id, status, now)
    return get_caller_sync(db, caller_id)


def _transfer(db: Database, caller_id: str, to_area_id: int, now: datetime) -> Caller:
    caller = get_caller_sync(db, caller_id)
    if caller.status in FINAL_STATUSES:
        raise InvalidTransitionError(f"caller {caller_id} is already {caller.status}")
    if caller.area_id == to_area_id:
        raise InvalidTransitionError(f"caller {caller_id} is already in area {to_area_id}")
    fetch_required(db, "SELECT id FROM waiting_areas WHERE id = ?", (to_area_id,), "area")
    stamp = to_db(now)
    _event(db, caller_id, caller.area_id, "transferred", now)
    execute(
        db,
        """UPDATE callers SET area_id = ?, transferred_from_area_id = ?, status = 'waiting',
               queued_at = ?, status_changed_at = ?, grace_expires_at = NULL WHERE id = ?""",
        (to_area_id, caller.area_id, stamp, stamp, caller_id),
    )
    if caller.room_id is not None:
        execute(
            db,
            "UPDATE rooms SET area_id = ? WHERE id = ? AND kind = 'caller'",
            (to_area_id, caller.room_id),
        )
    _event(db, caller_id, to_area_id, "waiting", now)
    return get_caller_sync(db, caller_id)


def _set_grace(db: Database, caller_id: str, expires_at: datetime | None) -> Caller:
    get_caller_sync(db, caller_id)
    execute(
        db,
        "UPDATE callers SET grace_expires_at = ? WHERE id = ?",
        (opt_to_db(expires_at), caller_id),
    )
    return get_caller_sync(db, caller_id)


def _list_queue(
    db: Database, area_id: int | None, statuses: tuple[CallerStatus, ...]
) -> list[Caller]:
    marks = ", ".join("?" for _ in statuses)
    rows = fetch_all(
        db,
        f"""SELECT * FROM callers WHERE (? IS NULL OR area_id = ?) AND status IN ({marks})
            ORDER BY queued_at, arrived_at, id""",
        (area_id, area_id, *statuses),
    )
    return [_caller(r) for r in rows]


def _grace_expired(db: Database, now: datetime) -> list[Caller]:
    rows = fetch_all(
        db,
        """SELECT * FROM callers WHERE grace_expires_at IS NOT NULL AND grace_expires_at <= ?
           AND status NOT IN ('left', 'ended') ORDER BY grace_expires_at, id""",
        (to_db(now),),
    )
    return [_caller(r) for r in rows]


def _events(db: Database, caller_id: str) -> list[CallerEvent]:
    rows = fetch_all(
        db, "SELECT * FROM caller_events WHERE caller_id = ? ORDER BY id", (caller_id,)
    )
    return [
        CallerEvent(r["id"], r["caller_id"], r["area_id"], r["status"], from_db(r["at"]))
        for r in rows
    ]


async def register_arrival(
    store: Store,
    area_id: int,
    details: dict[str, str],
    *,
    room_id: str | None = None,
    token_expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Arrival:
    """Persist an arrival in one transaction: the caller row (status waiting), their private
    caller room (or ``room_id``, e.g. a group area's shared room) and a reusable caller token
    bound to them. Returns once committed, so the arrival can be acknowledged safely.
    Validating ``details`` against the area's form is the caller's job."""
    return await store.run(_register, area_id, details, room_id, token_expires_at, now or utcnow())


async def register_arrivals(
    store: Store, area_id: int, batch: list[ArrivalRequest], *, now: datetime | None = None
) -> list[tuple[Arrival, RoomRestore]]:
    """Persist several arrivals to one area and their audit entries in one transaction (one
    commit, one fsync), in order; like `register_arrival` for each, but all or nothing. Returns
    once committed, with each new room's snapshot as `load_room_restore` would read it, so the
    room can start without reading it back. A waiting-area actor uses it to admit the arrivals
    queued in its mailbox together (validating the details is its job)."""
    if not batch:
        return []
    return await store.run(_register_many, area_id, list(batch), now)


async def load_room_restore(
    store: Store, room_id: str, *, caller_token_kind: str = "caller"
) -> RoomRestore:
    """The room, its caller, the caller's area and unit and the active call, in one read: a room
    actor starting (for every arrival) makes one storage round trip instead of six.
    Raises `NotFoundError` for an unknown room."""
    return await store.run(_room_snapshot, room_id, caller_token_kind)


async def get_caller(store: Store, caller_id: str) -> Caller:
    """Raises `NotFoundError` for an unknown id."""
    return await store.run(get_caller_sync, caller_id)


async def set_status(
    store: Store, caller_id: str, status: CallerStatus, *, now: datetime | None = None
) -> Caller:
    """Move a caller to waiting | in_call | on_hold | left | ended; clears any grace period.
    Records the first call time and the finish time. `InvalidTransitionError` once finished."""
    return await store.run(_set_status, caller_id, status, now or utcnow())


def _end_many(db: Database, caller_ids: list[str], now: datetime) -> int:
    ended = 0
    for caller_id in caller_ids:
        if get_caller_sync(db, caller_id).status not in FINAL_STATUSES:
            _set_status(db, caller_id, "ended", now)
            ended += 1
    return ended


async def end_callers(store: Store, caller_ids: list[str], *, now: datetime | None = None) -> int:
    """End several callers in one transaction (those already finished are skipped); how many."""
    return await store.run(_end_many, caller_ids, now or utcnow())


async def transfer_caller(
    store: Store, caller_id: str, to_area_id: int, *, now: datetime | None = None
) -> Caller:
    """Move a caller (and their caller room) to another area's queue, waiting, with
    ``transferred_from_area_id`` set; the details travel with them. Permission and same-unit
    checks belong to the actor that handles the transfer request."""
    return await store.run(_transfer, caller_id, to_area_id, now or utcnow())


async def set_grace(store: Store, caller_id: str, expires_at: datetime | None) -> Caller:
    """Start (a time) or cancel (None) the reconnect grace period of a disconnected caller."""
    return await store.run(_set_grace, caller_id, expires_at)


async def list_queue(
    store: Store,
    area_id: int | None = None,
    *,
    statuses: tuple[CallerStatus, ...] = ACTIVE_STATUSES,
) -> list[Caller]:
    """Callers of one area (or all areas) in queue order, longest wait first; by default every
    caller still in the queue (waiting, in a call, on hold)."""
    return await store.run(_list_queue, area_id, statuses)


async def list_waiting(store: Store, area_id: int) -> list[Caller]:
    """Only callers with status waiting, longest wait first."""
    return await store.run(_list_queue, area_id, ("waiting",))


async def list_grace_expired(store: Store, *, now: datetime | None = None) -> list[Caller]:
    """Unfinished callers whose reconnect grace period ran out (to be marked left)."""
    return await store.run(_grace_expired, now or utcnow())


async def list_events(store: Store, caller_id: str) -> list[CallerEvent]:
    """A caller's status history, oldest first."""
    return await store.run(_events, caller_id)
