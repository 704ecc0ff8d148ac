"""Two callers with the same name in one waiting area (issue 15).

What a clinic expects when a second "John Smith" arrives while the first is still connected: it
may be another patient (common names are common), so both are admitted, each with a room and a
token of their own, and the dashboard tells them apart ("John Smith (2)"; case and spacing of the
name aside). The first caller's own reconnect goes through their token to their own room and
adds nobody to the queue; one caller's token never opens the other's room; the numbers survive a
restart of the area, and a later namesake never takes a number still in use.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from actors.inbound import RedeemToken
from actors.principal import Principal, Role
from actors.waiting.areas import AREAS_ADDRESS, AreaHost
from runtime import Refusal
from tests.actors.waiting.test_waiting_area import Clinic, clinic  # noqa: F401 (fixture)

SETTLE = 5


async def enter(clinic: Clinic, token: str, conn: str) -> Principal:  # noqa: F811
    room_id, _, secret = token.partition(".")
    room = f"room/{room_id}"
    who: Principal = await clinic.registry.ref(room).ask(RedeemToken(secret))
    await clinic.inbox(conn)
    await clinic.send(room, "room.enter", {}, who, conn)
    await trio.testing.wait_all_tasks_blocked()
    return who


def by_id(queue: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in queue["callers"]}


async def test_two_callers_with_one_name_are_both_admitted_and_told_apart(
    clinic: Clinic,  # noqa: F811
) -> None:
    """Failed on the old code: the two rows had nothing but their wait time to tell them apart."""
    provider = clinic.provider((Role.PROVIDER, clinic.area.split("/")[1]))
    first = await clinic.arrive("John Smith")
    john = await enter(clinic, first.token, "conn/john-1")
    second = await clinic.arrive("john  SMITH")  # another patient, typed differently
    other = await clinic.arrive("Ada Lovelace")
    assert len({first.caller_id, second.caller_id}) == 2
    assert len({first.room_id, second.room_id}) == 2

    queue = by_id(await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash"))
    assert queue[first.caller_id]["connected"] is True
    assert (queue[first.caller_id]["namesake"], queue[second.caller_id]["namesake"]) == (1, 2)
    assert queue[other.caller_id]["namesake"] == 1

    # The first caller's own reconnect (a reload, a dropped network): same room, nobody new.
    again = await enter(clinic, first.token, "conn/john-2")
    assert (again.room_id, again.participant_id) == (john.room_id, john.participant_id)
    queue = by_id(await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash"))
    assert len(queue) == 3
    # One caller's token never opens the other's room.
    with pytest.raises(Refusal) as wrong:
        await clinic.registry.ref(f"room/{first.room_id}").ask(
            RedeemToken(second.token.partition(".")[2])
        )
    assert wrong.value.code == "invalid_token"
    # The provider joins the one they chose.
    joined = await clinic.send(
        clinic.area, "caller.join", {"caller_id": second.caller_id}, provider, "conn/dash"
    )
    assert second.room_id in str(joined["url"])

    # A restart of the area keeps the numbers.
    host = clinic.root.instance(AREAS_ADDRESS)
    assert isinstance(host, AreaHost)
    before = host.supervisor.instance(clinic.area)
    assert before is not None
    before._actor_fail(RuntimeError("a fault in the area"))
    with trio.fail_after(SETTLE):
        while host.supervisor.instance(clinic.area) in (None, before):  # noqa: ASYNC110 (the supervisor restarts it)
            await trio.sleep(0.01)
    queue = by_id(await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash"))
    assert (queue[first.caller_id]["namesake"], queue[second.caller_id]["namesake"]) == (1, 2)

    # The first leaves; a third John Smith does not get the 2 still on the dashboard.
    await clinic.send(
        clinic.area, "caller.end", {"caller_id": first.caller_id}, provider, "conn/dash"
    )
    third = await clinic.arrive("John Smith")
    queue = by_id(await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash"))
    assert first.caller_id not in queue
    assert (queue[second.caller_id]["namesake"], queue[third.caller_id]["namesake"]) == (2, 3)


async def test_a_caller_transferred_to_an_area_with_their_namesake_is_told_apart_there(
    clinic: Clinic,  # noqa: F811
) -> None:
    here, there = clinic.area.split("/")[1], clinic.other_area.split("/")[1]
    provider = clinic.provider(
        (Role.PROVIDER, here), (Role.PROVIDER, there), (Role.REFERRER, there)
    )
    waiting_there = await clinic.arrive("John Smith", clinic.other_area)
    moving = await clinic.arrive("John Smith")
    assert (
        by_id(await clinic.send(clinic.area, "area.watch", {}, provider, "conn/d"))[
            moving.caller_id
        ]["namesake"]
        == 1
    )
    await clinic.send(
        clinic.area,
        "caller.transfer",
        {"caller_id": moving.caller_id, "target_area": there},
        provider,
        "conn/d",
    )
    queue = by_id(await clinic.send(clinic.other_area, "area.watch", {}, provider, "conn/d"))
    assert (queue[waiting_there.caller_id]["namesake"], queue[moving.caller_id]["namesake"]) == (
        1,
        2,
    )


async def test_a_name_whose_callers_all_left_starts_again_at_one(clinic: Clinic) -> None:  # noqa: F811
    """The numbers are kept in an index beside the queue (issue 17): leaving must update it, so
    the highest number still queued is what counts, and a name nobody has any more is plain."""
    provider = clinic.provider((Role.PROVIDER, clinic.area.split("/")[1]))

    async def end(caller_id: str) -> None:
        await clinic.send(clinic.area, "caller.end", {"caller_id": caller_id}, provider, "conn/d")

    async def numbers() -> dict[str, int]:
        queue = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/d")
        return {c["id"]: c["namesake"] for c in queue["callers"]}

    first = await clinic.arrive("John Smith")
    second = await clinic.arrive("John Smith")
    await end(second.caller_id)  # the highest number leaves: it is free again
    third = await clinic.arrive("John Smith")
    assert await numbers() == {first.caller_id: 1, third.caller_id: 2}
    await end(first.caller_id)  # a lower one leaves: the next is still above the highest
    fourth = await clinic.arrive("john smith")
    assert await numbers() == {third.caller_id: 2, fourth.caller_id: 3}
    await end(third.caller_id)
    await end(fourth.caller_id)
    fifth = await clinic.arrive("JOHN SMITH")  # nobody of that name is left
    assert await numbers() == {fifth.caller_id: 1}
