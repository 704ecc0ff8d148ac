"""Rooms and hashed tokens, the persisted caller queue, and calls with participants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import areas, callers, calls, orgs, rooms
from storage.db import Store, open_store
from storage.errors import InvalidTransitionError, TokenRejectedError
from storage.rooms import hash_token

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Place:
    unit_id: int
    gp: int
    physio: int


async def _place(store: Store) -> Place:
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    gp = await areas.create_area(store, unit.id, "GP")
    physio = await areas.create_area(store, unit.id, "Physio")
    return Place(unit.id, gp.id, physio.id)


async def test_raw_tokens_never_reach_the_database(store: Store, db_path: Path) -> None:
    place = await _place(store)
    arrival = await callers.register_arrival(store, place.gp, {"name": "Olena"})
    room = await rooms.create_room(store, "consult_now", area_id=place.gp)
    invite = await rooms.issue_token(store, room.id, "invite", single_use=True)
    raw_tokens = [arrival.token.raw, invite.raw]
    # Checkpoint so the WAL is folded in, then scan every byte of the files.
    await store.run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    blob = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    for raw in raw_tokens:
        assert raw.encode() not in blob
        assert hash_token(raw).encode() in blob


async def test_token_rules(store: Store) -> None:
    place = await _place(store)
    room = await rooms.create_room(store, "caller", area_id=place.gp, now=T0)
    invite = await rooms.issue_token(
        store, room.id, "invite", single_use=True, expires_at=T0 + timedelta(minutes=5), now=T0
    )
    assert invite.token.used_at is None
    # Checking (a link preview) does not use the token up.
    checked = await rooms.check_token(store, invite.raw, now=T0)
    assert checked.id == invite.token.id and checked.used_at is None
    used = await rooms.redeem_token(store, invite.raw, now=T0 + timedelta(minutes=1))
    assert used.used_at == T0 + timedelta(minutes=1)
    with pytest.raises(TokenRejectedError) as refused:
        await rooms.redeem_token(store, invite.raw, now=T0 + timedelta(minutes=2))
    assert refused.value.reason == "used"

    late = await rooms.issue_token(
        store, room.id, "guest", single_use=True, expires_at=T0 + timedelta(minutes=5), now=T0
    )
    with pytest.raises(TokenRejectedError, match="expired"):
        await rooms.redeem_token(store, late.raw, now=T0 + timedelta(minutes=5))
    extended = await rooms.extend_token(store, late.token.id, T0 + timedelta(minutes=15))
    assert extended.expires_at == T0 + timedelta(minutes=15)
    await rooms.redeem_token(store, late.raw, now=T0 + timedelta(minutes=10))

    reusable = await rooms.issue_token(store, room.id, "caller", single_use=False, now=T0)
    for _ in range(3):
        await rooms.redeem_token(store, reusable.raw, now=T0)
    await rooms.revoke_token(store, reusable.token.id)
    with pytest.raises(TokenRejectedError, match="revoked"):
        await rooms.redeem_token(store, reusable.raw)
    with pytest.raises(TokenRejectedError, match="unknown"):
        await rooms.check_token(store, "made-up")


async def test_closing_a_room_revokes_its_tokens(store: Store) -> None:
    place = await _place(store)
    room = await rooms.create_room(store, "meeting", unit_id=place.unit_id, name="Huddle")
    guest = await rooms.issue_token(store, room.id, "guest", single_use=False)
    assert await rooms.list_open_rooms(store, kind="meeting") == [room]
    closed = await rooms.close_room(store, room.id)
    assert closed.state == "closed" and closed.closed_at is not None
    assert await rooms.close_room(store, room.id) == closed  # idempotent
    with pytest.raises(TokenRejectedError, match="room_closed"):
        await rooms.check_token(store, guest.raw)
    assert all(t.revoked_at is not None for t in await rooms.list_tokens(store, room.id))
    with pytest.raises(TokenRejectedError, match="room_closed"):
        await rooms.issue_token(store, room.id, "invite", single_use=True)
    assert await rooms.list_open_rooms(store) == []
    assert await rooms.find_room(store, "nope") is None


async def test_arrival_creates_room_token_and_queue_entry(store: Store) -> None:
    place = await _place(store)
    first = await callers.register_arrival(store, place.gp, {"name": "A"}, now=T0)
    second = await callers.register_arrival(
        store, place.gp, {"name": "B", "reason": "cough"}, now=T0 + timedelta(minutes=1)
    )
    assert first.room.kind == "caller" and first.room.area_id == place.gp
    assert first.caller.room_id == first.room.id and first.caller.status == "waiting"
    assert second.caller.details == {"name": "B", "reason": "cough"}
    token = await rooms.redeem_token(store, first.token.raw)
    assert (token.caller_id, token.room_id, token.single_use) == (
        first.caller.id,
        first.room.id,
        False,
    )
    assert [c.id for c in await callers.list_queue(store, place.gp)] == [
        first.caller.id,
        second.caller.id,
    ]
    assert first.caller.id != second.caller.id and first.room.id != second.room.id


async def test_queue_survives_restart(db_path: Path) -> None:
    async with open_store(db_path) as store:
        place = await _place(store)
        waiting = await callers.register_arrival(store, place.gp, {"name": "A"}, now=T0)
        held = await callers.register_arrival(store, place.gp, {"name": "B"}, now=T0)
        gone = await callers.register_arrival(store, place.gp, {"name": "C"}, now=T0)
        await callers.set_status(store, held.caller.id, "on_hold")
        await callers.set_status(store, gone.caller.id, "left")
    async with open_store(db_path) as store:
        restored = await callers.list_queue(store, place.gp)
        assert {c.id for c in restored} == {waiting.caller.id, held.caller.id}
        assert [c.id for c in await callers.list_waiting(store, place.gp)] == [waiting.caller.id]
        assert await callers.list_queue(store) == restored


async def test_status_timestamps_and_rules(store: Store) -> None:
    place = await _place(store)
    arrival = await callers.register_arrival(store, place.gp, {"name": "A"}, now=T0)
    cid = arrival.caller.id
    t1, t2, t3 = (T0 + timedelta(minutes=m) for m in (4, 9, 20))
    in_call = await callers.set_status(store, cid, "in_call", now=t1)
    assert in_call.first_call_at == t1 and in_call.status_changed_at == t1
    await callers.set_status(store, cid, "on_hold", now=t2)
    again = await callers.set_status(store, cid, "in_call", now=t2)
    assert again.first_call_at == t1  # the first call time is kept
    ended = await callers.set_status(store, cid, "ended", now=t3)
    assert ended.finished_at == t3
    with pytest.raises(InvalidTransitionError):
        await callers.set_status(store, cid, "waiting")
    with pytest.raises(ValueError):
        await callers.set_status(store, cid, "transferred")
    assert [e.status for e in await callers.list_events(store, cid)] == [
        "waiting",
        "in_call",
        "on_hold",
        "in_call",
        "ended",
    ]


async def test_grace_period(store: Store) -> None:
    place = await _place(store)
    arrival = await callers.register_arrival(store, place.gp, {"name": "A"}, now=T0)
    cid = arrival.caller.id
    await callers.set_grace(store, cid, T0 + timedelta(seconds=60))
    assert await callers.list_grace_expired(store, now=T0 + timedelta(seconds=59)) == []
    expired = await callers.list_grace_expired(store, now=T0 + timedelta(seconds=60))
    assert [c.id for c in expired] == [cid]
    back = await callers.set_grace(store, cid, None)  # reconnected in time
    assert back.grace_expires_at is None and back.status == "waiting"
    assert await callers.list_grace_expired(store, now=T0 + timedelta(hours=1)) == []


async def test_transfer_keeps_details_and_moves_room(store: Store) -> None:
    place = await _place(store)
    arrival = await callers.register_arrival(store, place.gp, {"name": "A", "dob": "1970"}, now=T0)
    moved = await callers.transfer_caller(
        store, arrival.caller.id, place.physio, now=T0 + timedelta(minutes=3)
    )
    assert (moved.area_id, moved.origin_area_id, moved.transferred_from_area_id) == (
        place.physio,
        place.gp,
        place.gp,
    )
    assert moved.status == "waiting" and moved.details == {"name": "A", "dob": "1970"}
    assert moved.queued_at == T0 + timedelta(minutes=3) and moved.arrived_at == T0
    assert (await rooms.get_room(store, arrival.room.id)).area_id == place.physio
    assert await callers.list_queue(store, place.gp) == []
    assert await callers.list_queue(store, place.physio) == [moved]
    with pytest.raises(InvalidTransitionError):
        await callers.transfer_caller(store, moved.id, place.physio)


async def test_group_area_callers_share_a_room(store: Store) -> None:
    place = await _place(store)
    group_room = await rooms.create_room(store, "group", area_id=place.gp)
    a = await callers.register_arrival(store, place.gp, {"name": "A"}, room_id=group_room.id)
    b = await callers.register_arrival(store, place.gp, {"name": "B"}, room_id=group_room.id)
    assert a.room == b.room == group_room
    assert a.token.raw != b.token.raw
    assert (await rooms.check_token(store, b.token.raw)).caller_id == b.caller.id


async def test_call_and_participants(store: Store) -> None:
    place = await _place(store)
    arrival = await callers.register_arrival(store, place.gp, {"name": "A"}, now=T0)
    call = await calls.start_call(
        store, arrival.room.id, caller_id=arrival.caller.id, now=T0 + timedelta(minutes=2)
    )
    assert call.area_id == place.gp and call.ended_at is None
    assert await calls.active_call_for_room(store, arrival.room.id) == call
    assert await calls.list_active_calls(store) == [call]
    doc = await calls.add_participant(store, call.id, "staff", "Dr D", user_id=None)
    pat = await calls.add_participant(store, call.id, "caller", "A")
    interp = await calls.add_participant(store, call.id, "invitee", "Interpreter")
    left = await calls.participant_left(store, interp.id, now=T0 + timedelta(minutes=5))
    assert left.left_at == T0 + timedelta(minutes=5)
    assert [p.id for p in await calls.list_participants(store, call.id, present_only=True)] == [
        doc.id,
        pat.id,
    ]
    ended = await calls.end_call(store, call.id, now=T0 + timedelta(minutes=12))
    assert ended.ended_at == T0 + timedelta(minutes=12)
    assert all(p.left_at is not None for p in await calls.list_participants(store, call.id))
    assert await calls.active_call_for_room(store, arrival.room.id) is None
    assert await calls.get_call(store, call.id) == ended


async def test_what_an_arrival_returns_is_what_a_read_gives(store: Store) -> None:
    """An arrival builds its caller, room and token from what it wrote, without reading them
    back (issue 17): they must be what a read of the rows gives, field for field."""
    place = await _place(store)
    details = {"reason": "knee", "name": "Olena", "phone": "+380 44"}
    arrival = await callers.register_arrival(store, place.gp, details, now=T0)
    assert arrival.caller == await callers.get_caller(store, arrival.caller.id)
    assert list(arrival.caller.details) == sorted(details)  # stored key-sorted, read the same
    assert arrival.room == await rooms.get_room(store, arrival.room.id)
    assert [arrival.token.token] == await rooms.list_tokens(store, arrival.room.id)
    room = await rooms.create_room(store, "meeting", unit_id=place.unit_id, name="Team", now=T0)
    assert room == await rooms.get_room(store, room.id)
    invite = await rooms.issue_token(
        store, room.id, "invite", single_use=True, expires_at=T0 + timedelta(minutes=5), now=T0
    )
    assert [invite.token] == await rooms.list_tokens(store, room.id)
