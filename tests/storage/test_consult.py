"""Consult Now links in storage (issue 13): pending until opened once, cancelled or expired.

Real SQLite. The race: many Trio tasks on one store and on two stores (two connections, two
worker threads) open the same link at once; exactly one gets the room, and no loser creates one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from storage import areas, consult, orgs, rooms, staff
from storage.consult import ConsultLinkRejected
from storage.db import Store, open_store
from storage.db import fetch_one as _fetch_one

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


async def _place(store: Store) -> tuple[int, int]:
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    area = await areas.create_area(store, unit.id, "GP")
    user = await staff.create_user(store, "doc", "Dr Doc", "x" * 20)
    return area.id, user.id


async def _link(store: Store, area_id: int, user_id: int) -> consult.IssuedLink:
    return await consult.create_link(
        store,
        area_id=area_id,
        provider_user_id=user_id,
        channel="sms",
        lifetime=FIVE,
        now=T0,
        recipient_hint="•••123",
    )


async def _consult_rooms(store: Store) -> int:
    row = await store.run(
        lambda db: _fetch_one(db, "SELECT COUNT(*) AS n FROM rooms WHERE kind = 'consult_now'")
    )
    assert row is not None
    return int(row["n"])


async def test_a_link_opens_once_and_the_room_and_guest_token_come_with_it(store: Store) -> None:
    area_id, user_id = await _place(store)
    issued = await _link(store, area_id, user_id)
    assert issued.link.state == "pending" and issued.link.expires_at == T0 + FIVE
    assert (await consult.check_link(store, issued.raw, now=T0)).id == issued.link.id

    opened = await consult.redeem_link(store, issued.raw, guest_name="Sam", now=T0 + FIVE / 2)
    assert opened.link.state == "opened" and opened.link.room_id == opened.room.id
    assert opened.room.kind == "consult_now" and opened.room.owner_user_id == user_id
    guest = await rooms.check_token(store, opened.guest_secret)
    assert guest.kind == "guest" and guest.label == "Sam" and guest.room_id == opened.room.id
    assert (await consult.link_for_room(store, opened.room.id)).id == issued.link.id

    for attempt in (consult.check_link, consult.redeem_link):
        with pytest.raises(ConsultLinkRejected) as used:
            if attempt is consult.check_link:
                await consult.check_link(store, issued.raw, now=T0)
            else:
                await consult.redeem_link(store, issued.raw, guest_name="x", now=T0)
        assert used.value.reason == "used"
    assert await _consult_rooms(store) == 1


async def test_expired_cancelled_and_unknown_links_create_nothing(store: Store) -> None:
    area_id, user_id = await _place(store)
    late = await _link(store, area_id, user_id)
    with pytest.raises(ConsultLinkRejected) as expired:
        await consult.redeem_link(store, late.raw, guest_name="x", now=T0 + FIVE)
    assert expired.value.reason == "expired"
    # Not marked yet (the desk's timer does that), yet it is expired for everyone already.
    with pytest.raises(ConsultLinkRejected):
        await consult.cancel_link(store, late.link.id, now=T0 + FIVE)
    assert (await consult.expire_link(store, late.link.id, now=T0 + FIVE)).state == "expired"

    cancelled = await _link(store, area_id, user_id)
    await consult.cancel_link(store, cancelled.link.id, now=T0)
    with pytest.raises(ConsultLinkRejected) as no:
        await consult.redeem_link(store, cancelled.raw, guest_name="x", now=T0)
    assert no.value.reason == "cancelled"

    with pytest.raises(ConsultLinkRejected) as unknown:
        await consult.redeem_link(store, "not-a-secret", guest_name="x", now=T0)
    assert unknown.value.reason == "unknown"
    assert await _consult_rooms(store) == 0


async def test_extensions_move_the_expiry_up_to_the_limit(store: Store) -> None:
    area_id, user_id = await _place(store)
    issued = await _link(store, area_id, user_id)
    with pytest.raises(ConsultLinkRejected) as early:  # not due yet: the timer must not win
        await consult.expire_link(store, issued.link.id, now=T0 + FIVE / 2)
    assert early.value.reason == "pending"
    for n in range(1, 4):
        link = await consult.extend_link(
            store, issued.link.id, by=FIVE, max_extensions=3, now=T0 + FIVE / 2
        )
        assert link.extensions == n and link.expires_at == T0 + FIVE * (n + 1)
    with pytest.raises(ConsultLinkRejected) as limit:
        await consult.extend_link(store, issued.link.id, by=FIVE, max_extensions=3, now=T0)
    assert limit.value.reason == "limit"
    # Extended to T0 + 20 min: still open at 19 minutes, not at 20.
    await consult.check_link(store, issued.raw, now=T0 + FIVE * 4 - timedelta(seconds=1))
    with pytest.raises(ConsultLinkRejected):
        await consult.extend_link(
            store, issued.link.id, by=FIVE, max_extensions=9, now=T0 + FIVE * 4
        )
    pending = await consult.list_pending(store, provider_user_id=user_id)
    assert [p.id for p in pending] == [issued.link.id]
    assert await consult.list_pending(store, provider_user_id=user_id + 1) == []


async def _race(stores: list[Store], raw: str, openers: int) -> tuple[int, list[str]]:
    wins = 0
    reasons: list[str] = []
    start = trio.Event()

    async def open_it(store: Store, n: int) -> None:
        nonlocal wins
        await start.wait()
        try:
            await consult.redeem_link(store, raw, guest_name=f"opener {n}", now=T0)
        except ConsultLinkRejected as rejected:
            reasons.append(rejected.reason)
        else:
            wins += 1

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(openers):
                nursery.start_soon(open_it, stores[n % len(stores)], n)
            await trio.testing.wait_all_tasks_blocked()
            start.set()
    return wins, reasons


@pytest.mark.parametrize("openers", [2, 20])
async def test_simultaneous_openings_on_one_store_start_one_call(
    store: Store, openers: int
) -> None:
    area_id, user_id = await _place(store)
    for round_ in range(1, 6):
        issued = await _link(store, area_id, user_id)
        wins, reasons = await _race([store], issued.raw, openers)
        assert wins == 1 and reasons == ["used"] * (openers - 1)
        assert await _consult_rooms(store) == round_


async def test_simultaneous_openings_on_two_connections_start_one_call(db_path: Path) -> None:
    async with open_store(db_path) as first, open_store(db_path) as second:
        area_id, user_id = await _place(first)
        for round_ in range(1, 6):
            issued = await _link(first, area_id, user_id)
            wins, reasons = await _race([first, second], issued.raw, 2)
            assert wins == 1 and reasons == ["used"]
            assert await _consult_rooms(first) == round_
