"""Arrivals queued together at one area are admitted as one batch, each answered on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors.messages import AreaPublic, ArrivalTicket, Arrive, DescribeArea
from actors.principal import Role
from runtime import Refusal
from runtime.kernel import MESSAGES_HANDLED
from services.passwords import Passwords
from storage import audit, callers, seed
from storage.db import open_store
from tests.actors.waiting.test_waiting_area import Clinic, boot

ARRIVALS = 12
BAD = 5  # this one has no name: refused, alone


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        yield await boot(nursery, store, demo)
        nursery.cancel_scope.cancel()


async def test_queued_arrivals_are_admitted_together_and_answered_each(clinic: Clinic) -> None:
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    events = await clinic.inbox("conn/dash")
    await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    handled_before = MESSAGES_HANDLED.get("area", 0)
    calls_before = clinic.store.calls
    outcomes: dict[int, object] = {}
    described: list[object] = []
    ref = clinic.registry.ref(clinic.area)

    async def arrive(i: int) -> None:
        details = {"reason": "check-up"} if i == BAD else {"name": f"Caller {i:02}"}
        try:
            outcomes[i] = await ref.ask(Arrive(details, f"10.0.0.{i}"))
        except Refusal as refusal:
            outcomes[i] = refusal

    async def describe() -> None:
        described.append(await ref.ask(DescribeArea()))

    # Every ask is queued before the area runs (tasks start in order, none blocks on its way in).
    async with trio.open_nursery() as nursery:
        for i in range(ARRIVALS):
            nursery.start_soon(arrive, i)
            if i == ARRIVALS // 2:
                nursery.start_soon(describe)  # a different message in the middle: still answered

    refused = outcomes.pop(BAD)
    assert isinstance(refused, Refusal) and refused.code == "missing_field"
    assert all(isinstance(t, ArrivalTicket) for t in outcomes.values())
    assert len(described) == 1 and isinstance(described[0], AreaPublic)
    assert MESSAGES_HANDLED["area"] - handled_before == ARRIVALS + 1
    # One storage call per room started plus one for the whole batch (it was two per arrival,
    # plus six per room): the queued arrivals were written together.
    assert clinic.store.calls - calls_before <= (ARRIVALS - 1) + 2

    expected = {f"Caller {i:02}" for i in range(ARRIVALS) if i != BAD}
    await trio.testing.wait_all_tasks_blocked()
    shown = [e.body["caller"]["name"] for e in events if e.type == "queue.caller"]
    assert set(shown) == expected and len(shown) == len(expected)
    # Persisted before acknowledged, in the order the area took them (the order the dashboard
    # showed; Trio starts the asking tasks in no set order), each with its audit entry.
    waiting = await callers.list_waiting(clinic.store, int(area_id))
    assert [c.details["name"] for c in waiting] == shown
    entries = await audit.list_entries(clinic.store, action=audit.ARRIVAL)
    tickets = [t for t in outcomes.values() if isinstance(t, ArrivalTicket)]
    assert {e.subject for e in entries} == {t.caller_id for t in tickets}
    assert {e.remote_addr for e in entries} == {f"10.0.0.{i}" for i in outcomes}
