"""Issue 14, beyond the seed: a caller in an ordinary waiting area sees an estimated wait in their
own ``room.state``, from the area's recent joins; before there are enough joins, none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors import addresses
from actors.inbound import Inbound
from actors.messages import FindArea
from actors.ondemand import estimate as estimate_module
from actors.ondemand.estimate import MIN_SAMPLES, in_whole_minutes
from actors.waiting.areas import AreaHost
from actors.waiting.rooms import RoomHost
from gateway.auth import Authenticator
from runtime import ChildSpec, Registry, Supervisor
from services.passwords import Passwords
from storage import seed
from storage.db import open_store
from tests.actors.waiting.test_reconnect_grace import Clinic


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        rooms: Supervisor = await nursery.start(Supervisor(registry, "rooms").run)
        areas: Supervisor = await nursery.start(Supervisor(registry, "areas").run)
        await root.start_child(ChildSpec(addresses.ROOMS, lambda: RoomHost(store, rooms, None)))
        await root.start_child(ChildSpec(addresses.AREAS, lambda: AreaHost(store, areas)))
        area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
        yield Clinic(registry, root, store, area, demo.areas[0].id)
        nursery.cancel_scope.cancel()


async def test_waiting_callers_get_the_estimate_from_recent_joins(clinic: Clinic) -> None:
    waiting = await clinic.arrive("Wendy")
    who = await Authenticator(clinic.registry).authenticate(waiting.token, None, "127.0.0.1")
    pushes = await clinic.inbox("conn/wendy")
    room = clinic.registry.ref(addresses.room(waiting.room_id))
    entered = await room.ask(Inbound("room.enter", {}, who, "conn/wendy"))
    assert entered["estimate"] is None  # no joins yet: no estimate

    for n in range(MIN_SAMPLES):
        ticket = await clinic.arrive(f"Joined {n}")
        await trio.sleep(0.01 * (n + 1))
        await clinic.registry.ref(clinic.area).ask(
            Inbound("caller.join", {"caller_id": ticket.caller_id}, clinic.provider(), "conn/dash")
        )
    # The caller still waiting hears it in their own room.state, and it is only a number.
    with trio.fail_after(5):
        pushed = await pushes.wait_for(
            lambda p: p.type == "room.state" and p.body.get("estimate") is not None
        )
    estimate = pushed.body["estimate"]
    assert isinstance(estimate, float) and 0 <= estimate < 60
    assert set(pushed.body) == {"room", "state", "area", "joining", "estimate", "participants"}
    # A newcomer gets the same estimate when they enter.
    late = await clinic.arrive("Late")
    await trio.sleep(0.05)
    late_state = await clinic.connect(late, "conn/late")
    assert late_state["estimate"] == estimate


async def test_waiting_callers_are_told_again_only_when_the_minutes_they_see_change(
    clinic: Clinic,
) -> None:
    """Every join moves the median a little; a page shows whole minutes. Telling every waiting
    caller on every join was a message and a websocket push each (issue 17): now only a change
    of the minutes shown is told."""
    waiting = await clinic.arrive("Wendy")
    who = await Authenticator(clinic.registry).authenticate(waiting.token, None, "127.0.0.1")
    pushes = await clinic.inbox("conn/wendy")
    room = clinic.registry.ref(addresses.room(waiting.room_id))
    await room.ask(Inbound("room.enter", {}, who, "conn/wendy"))

    def told() -> list[object]:
        return [p.body["estimate"] for p in pushes if p.type == "room.state"]

    for n in range(MIN_SAMPLES + 4):  # each wait a little longer than the one before
        ticket = await clinic.arrive(f"Joined {n}")
        await trio.sleep(0.01 * (n + 1))
        await clinic.registry.ref(clinic.area).ask(
            Inbound("caller.join", {"caller_id": ticket.caller_id}, clinic.provider(), "conn/dash")
        )
    await clinic.arrive("Late")  # the area has handled every join before it answers this
    with trio.fail_after(5):
        await pushes.wait_for(lambda p: p.type == "room.state" and p.body["estimate"] == 0.0)
    await trio.sleep(0.05)
    assert [estimate for estimate in told() if estimate is not None] == [0.0]


async def test_when_the_recent_waits_age_out_every_waiting_caller_stops_seeing_them(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Joins older than the window say nothing about now. The next arrival finds no estimate;
    the callers already waiting must not keep the stale figure while the newcomer sees none,
    and when joins bring a figure back, both see it."""
    wendy = await clinic.arrive("Wendy")
    pushes = await clinic.inbox("conn/wendy")
    who = await Authenticator(clinic.registry).authenticate(wendy.token, None, "127.0.0.1")
    await clinic.registry.ref(addresses.room(wendy.room_id)).ask(
        Inbound("room.enter", {}, who, "conn/wendy")
    )

    async def joins(count: int, prefix: str) -> None:
        for n in range(count):
            ticket = await clinic.arrive(f"{prefix} {n}")
            await clinic.registry.ref(clinic.area).ask(
                Inbound(
                    "caller.join", {"caller_id": ticket.caller_id}, clinic.provider(), "conn/dash"
                )
            )

    def told() -> list[object]:
        return [p.body["estimate"] for p in pushes if p.type == "room.state"]

    await joins(MIN_SAMPLES, "Early")
    with trio.fail_after(5):
        await pushes.wait_for(lambda p: p.type == "room.state" and p.body["estimate"] == 0.0)

    monkeypatch.setattr(estimate_module, "WINDOW", 0.0)  # every recorded join is now too old
    late = await clinic.arrive("Late")
    with trio.fail_after(5):
        await pushes.wait_for(lambda p: p.type == "room.state" and p.body["estimate"] is None)
    late_pushes = await clinic.inbox("conn/late")
    who_late = await Authenticator(clinic.registry).authenticate(late.token, None, "127.0.0.1")
    entered = await clinic.registry.ref(addresses.room(late.room_id)).ask(
        Inbound("room.enter", {}, who_late, "conn/late")
    )
    assert entered["estimate"] is None

    monkeypatch.undo()  # the joins count again
    await joins(1, "Again")
    with trio.fail_after(5):
        await pushes.wait_for(lambda p: p.type == "room.state" and told()[-1] == 0.0)
        await late_pushes.wait_for(lambda p: p.type == "room.state" and p.body["estimate"] == 0.0)
    assert [e for e in told() if e is not None] == [0.0, 0.0]


def test_an_estimate_is_rounded_to_the_minutes_a_page_shows() -> None:
    assert in_whole_minutes(None) is None
    assert [in_whole_minutes(s) for s in (0.0, 29.9, 30.0, 89.9, 90.0, 150.0)] == [
        0.0,
        0.0,
        60.0,
        60.0,
        120.0,
        180.0,  # 2.5 minutes shows as 3 (JavaScript's Math.round), not as 2
    ]
