"""A provider removes everyone waiting who is not connected, at once (issue 15): after a flood of
fake arrivals, or a morning of abandoned tabs. A connected caller stays, so does one in a call;
the removed ones' rooms end; one audit entry counts them; a caller may not do it."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.inbound import RedeemToken
from actors.principal import Principal, Role
from runtime import Refusal
from storage import callers
from storage.db import fetch_all
from tests.actors.waiting.test_waiting_area import Clinic, clinic  # noqa: F401 (fixture)

ROOMS_END_S = 5.0


async def test_only_the_unconnected_waiting_callers_are_removed(
    clinic: Clinic,  # noqa: F811
) -> None:
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    fakes = [await clinic.arrive(f"Fake {n}") for n in range(3)]
    real = await clinic.arrive("Ada")
    room = f"room/{real.room_id}"
    ada = await clinic.registry.ref(room).ask(RedeemToken(real.token.split(".", 1)[1]))
    await clinic.inbox("conn/ada")
    await clinic.send(room, "room.enter", {}, ada, "conn/ada")
    await trio.testing.wait_all_tasks_blocked()

    stranger = Principal("caller", "Fake 0", None, None, frozenset())
    with pytest.raises(Refusal):
        await clinic.send(clinic.area, "area.clear_unconnected", {}, stranger, "conn/x")

    reply = await clinic.send(clinic.area, "area.clear_unconnected", {}, provider, "conn/p")
    assert reply == {"removed": 3}
    queue = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/p")
    assert [c["name"] for c in queue["callers"]] == ["Ada"]
    for fake in fakes:
        assert (await callers.get_caller(clinic.store, fake.caller_id)).status == "ended"
    with trio.fail_after(ROOMS_END_S):  # their rooms end, each once it has written its end
        while any(f"room/{fake.room_id}" in clinic.registry for fake in fakes):
            await trio.testing.wait_all_tasks_blocked()
    rows = await clinic.store.run(
        fetch_all, "SELECT details FROM audit_log WHERE action = 'area.unconnected_removed'"
    )
    assert [r["details"] for r in rows] == ['{"removed":3}']
    again = await clinic.send(clinic.area, "area.clear_unconnected", {}, provider, "conn/p")
    assert again == {"removed": 0}
