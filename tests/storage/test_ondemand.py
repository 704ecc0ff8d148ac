"""storage.ondemand (issue 14): the conditional state changes, across two connections too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import trio

from storage import ondemand as od
from storage import orgs, staff
from storage.db import Store, open_store
from storage.errors import NotFoundError, TokenRejectedError
from storage.times import utcnow


async def people(store: Store) -> tuple[int, int, int, int]:
    org = await orgs.create_organisation(store, "Riverside")
    other = await orgs.create_organisation(store, "Hillside")
    lee = await staff.create_user(store, "lee", "Dr Lee", "x")
    kim = await staff.create_user(store, "kim", "Dr Kim", "x")
    return org.id, other.id, lee.id, kim.id


async def test_claim_is_exclusive_and_idempotent_for_the_winner(store: Store) -> None:
    org, other, lee, kim = await people(store)
    new = await od.create_request(store, org, {"name": "Ada"}, 2)
    rid = new.request.id
    assert new.request.state == "intake"
    won = await od.claim(store, org, rid, lee)
    assert won.won and won.request.state == "claimed" and won.request.claimed_name == "Dr Lee"
    lost = await od.claim(store, org, rid, kim)
    assert not lost.won and lost.request.claimed_name == "Dr Lee"
    again = await od.claim(store, org, rid, lee)
    assert again.won
    assert not (await od.assign(store, org, rid, kim)).won
    assert not (await od.decline(store, org, rid, "")).won
    with pytest.raises(NotFoundError):
        await od.claim(store, other, rid, kim)  # another organisation's request: missing


async def test_assigned_request_is_claimed_by_its_assignee_only(store: Store) -> None:
    org, _, lee, kim = await people(store)
    rid = (await od.create_request(store, org, {"name": "Ada"}, 0)).request.id
    assert (await od.assign(store, org, rid, lee)).won
    assert not (await od.claim(store, org, rid, kim)).won
    assert (await od.assign(store, org, rid, kim)).won  # an administrator may reassign
    assert not (await od.claim(store, org, rid, lee)).won
    assert (await od.claim(store, org, rid, kim)).won


async def test_steps_in_order_then_waiting(store: Store) -> None:
    org, _, _, _ = await people(store)
    rid = (await od.create_request(store, org, {"name": "Ada"}, 2)).request.id
    assert not (await od.save_step(store, rid, 1, {"b": "2"}, 2)).won  # out of order
    first = await od.save_step(store, rid, 0, {"a": "1"}, 2)
    assert first.won and first.request.steps_done == 1 and first.request.state == "intake"
    redo = await od.save_step(store, rid, 0, {"a": "one"}, 2)  # the last step again
    assert redo.won and redo.request.case_info == {"a": "one"}
    last = await od.save_step(store, rid, 1, {"b": "2"}, 2)
    assert last.request.state == "waiting" and last.request.case_info == {"a": "one", "b": "2"}


async def test_token_opens_only_its_own_live_session(store: Store) -> None:
    org, _, _, _ = await people(store)
    new = await od.create_request(store, org, {"name": "Ada"}, 0)
    other = await od.create_request(store, org, {"name": "Bo"}, 0)
    assert (await od.check_token(store, new.request.room_id, new.raw_token)).id == new.request.id
    with pytest.raises(TokenRejectedError):
        await od.check_token(store, other.request.room_id, new.raw_token)
    assert (await od.finish(store, new.request.id, "cancelled", "left")).won
    with pytest.raises(TokenRejectedError):
        await od.check_token(store, new.request.room_id, new.raw_token)
    assert not (await od.finish(store, new.request.id, "ended", "x")).won  # final stays final


async def test_live_list_waits_on_call_and_usage(store: Store) -> None:
    org, _, lee, kim = await people(store)
    a = (await od.create_request(store, org, {"name": "A"}, 0)).request.id
    b = (await od.create_request(store, org, {"name": "B"}, 0)).request.id
    await od.decline(store, org, b, "no")
    assert [r.id for r in await od.list_live(store, org)] == [a]
    assert await od.orgs_with_live_requests(store) == [org]
    await od.claim(store, org, a, lee)
    waits = await od.recent_claim_waits(store, org)
    assert len(waits) == 1 and 0 <= waits[0] < 60
    assert (await od.start_session(store, a)).won
    now = utcnow()
    assert (
        await od.sessions_between(store, org, now - timedelta(hours=1), now + timedelta(seconds=1))
        == 1
    )
    await od.set_on_call(store, org, kim, True)
    await od.set_on_call(store, org, lee, True)
    await od.set_on_call(store, org, lee, False)
    assert [s.name for s in await od.on_call_staff(store, org)] == ["Dr Kim"]


async def test_settings_round_trip(store: Store) -> None:
    org, _, _, _ = await people(store)
    assert (await od.get_settings(store, org)).intake == []
    steps = [{"title": "T", "fields": [{"key": "a", "label": "A", "kind": "text"}]}]
    saved = await od.save_settings(store, org, False, steps, 600)
    assert saved == od.Settings(org, False, steps, 600)


async def claim_into(results: dict[int, bool], store: Store, org: int, rid: str, user: int) -> None:
    results[user] = (await od.claim(store, org, rid, user)).won


async def test_claims_from_two_connections_one_wins(tmp_path: Path) -> None:
    """Two processes' worth of connections on one file: the conditional UPDATE decides."""
    path = tmp_path / "shared.sqlite3"
    async with open_store(path) as one, open_store(path) as two:
        org, _, lee, kim = await people(one)
        for _ in range(10):
            rid = (await od.create_request(one, org, {"name": "Ada"}, 0)).request.id
            results: dict[int, bool] = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim_into, results, one, org, rid, lee)
                nursery.start_soon(claim_into, results, two, org, rid, kim)
            assert sorted(results.values()) == [False, True]
            winner = next(u for u, won in results.items() if won)
            assert (await od.get_request(two, rid)).claimed_by == winner
