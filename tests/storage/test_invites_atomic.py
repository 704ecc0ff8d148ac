"""Issue 15: a single-use invite redeemed at the same moment by many holders is used exactly once.

Real concurrency through the real store: many Trio tasks on one `Store`, and two `Store`s (two
SQLite connections, two worker threads) on one file, so the race happens inside SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from storage import areas, orgs, rooms
from storage.db import Store, open_store
from storage.errors import TokenRejectedError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROUNDS = 15


async def _room(store: Store) -> str:
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    area = await areas.create_area(store, unit.id, "GP")
    return (await rooms.create_room(store, "consult_now", area_id=area.id, now=T0)).id


async def _race(stores: list[Store], raw: str, holders: int) -> tuple[int, list[BaseException]]:
    """`holders` tasks, spread over `stores`, all redeem ``raw`` at once; (wins, failures)."""
    wins = 0
    failures: list[BaseException] = []
    start = trio.Event()

    async def redeem(store: Store) -> None:
        nonlocal wins
        await start.wait()
        try:
            await rooms.redeem_token(store, raw, now=T0)
        except Exception as error:  # every outcome is counted below
            failures.append(error)
        else:
            wins += 1

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(holders):
                nursery.start_soon(redeem, stores[n % len(stores)])
            await trio.testing.wait_all_tasks_blocked()
            start.set()
    return wins, failures


def _only_used(failures: list[BaseException]) -> None:
    reasons = [getattr(f, "reason", repr(f)) for f in failures]
    assert all(isinstance(f, TokenRejectedError) for f in failures), reasons
    assert set(reasons) <= {"used"}, reasons


@pytest.mark.parametrize("holders", [2, 20])
async def test_simultaneous_redemptions_on_one_store_use_the_invite_once(
    store: Store, holders: int
) -> None:
    room_id = await _room(store)
    for _ in range(ROUNDS):
        invite = await rooms.issue_token(store, room_id, "invite", single_use=True, now=T0)
        wins, failures = await _race([store], invite.raw, holders)
        assert wins == 1
        assert len(failures) == holders - 1
        _only_used(failures)


@pytest.mark.parametrize(("holders", "rounds"), [(2, ROUNDS), (20, 2)])
async def test_simultaneous_redemptions_on_two_connections_use_the_invite_once(
    db_path: Path, holders: int, rounds: int
) -> None:
    async with open_store(db_path) as first, open_store(db_path) as second:
        room_id = await _room(first)
        for _ in range(rounds):
            invite = await rooms.issue_token(first, room_id, "invite", single_use=True, now=T0)
            wins, failures = await _race([first, second], invite.raw, holders)
            assert wins == 1
            assert len(failures) == holders - 1
            _only_used(failures)
