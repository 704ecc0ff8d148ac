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
from actors.ondemand.estimate import MIN_SAMPLES
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
