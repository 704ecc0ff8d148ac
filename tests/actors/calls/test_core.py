"""The call core on a storage-free policy: state, limit, grace, hold and media signalling.

Real actors under a real supervisor; the media plane is :class:`SlowMedia`, which answers an offer
only when the test releases it, so the tests can hold one peer's offer and watch what else the
call does meanwhile. Time is the subject only of the grace tests, which run on the virtual clock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from actors import addresses, refusals
from actors.calls.core import Call
from actors.calls.routing import call_id_for
from actors.calls.state import CallState, InvalidMove, check_move
from actors.inbound import Inbound
from actors.principal import Principal
from media import SlotsChanged
from runtime import ChildSpec, Refusal, Registry, Restart, Supervisor
from tests.actors.calls.fakes import OpenPolicy, SlowMedia
from tests.actors.inbox import Inbox, Pushes

ROOM_ID = "r1"
#: Bounds every wait in the tests that run on the real clock.
TIMEOUT = 5.0
GRACE = 30.0


def caller(name: str = "Ada") -> Principal:
    return Principal("caller", name, room_id=ROOM_ID, participant_id=name.lower())


def guest(n: int) -> Principal:
    return Principal("guest", f"Guest {n}", room_id=ROOM_ID, participant_id=f"g{n}")


def staff(user: str = "1") -> Principal:
    return Principal("staff", f"Dr {user}", user_id=user)


@dataclass
class Rig:
    registry: Registry
    root: Supervisor
    policy: OpenPolicy
    media: SlowMedia
    room: str
    call_id: str

    async def inbox(self, conn: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(conn, lambda: Inbox(events)))
        return events

    async def send(
        self, who: Principal, conn: str, kind: str, body: dict[str, object] | None = None
    ) -> Any:
        return await self.registry.ref(self.room).ask(Inbound(kind, body or {}, who, conn))

    async def enter(self, who: Principal, conn: str) -> Pushes:
        events = await self.inbox(conn)
        await self.send(who, conn, "room.enter")
        return events


async def start(nursery: trio.Nursery, policy: OpenPolicy) -> Rig:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    media = SlowMedia()
    room = addresses.room(ROOM_ID)
    call_id = call_id_for(room)
    await root.start_child(
        ChildSpec(room, lambda: Call(call_id, ROOM_ID, policy, media), Restart.TRANSIENT)
    )
    return Rig(registry, root, policy, media, room, call_id)


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[Rig]:
    yield await start(nursery, OpenPolicy())
    nursery.cancel_scope.cancel()


# -- state ----------------------------------------------------------------------------------------
async def test_the_state_setter_logs_old_to_new(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    await rig.enter(staff(), "conn/p")
    with caplog.at_level(logging.INFO, logger="actors.calls.core"):
        await rig.send(staff(), "conn/p", "call.hold")
        await rig.enter(caller(), "conn/c")
        await rig.send(caller(), "conn/c", "call.end")
    moves = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert moves == [
        f"{rig.room} (call {rig.call_id}): in_call -> on_hold",
        f"{rig.room} (call {rig.call_id}): on_hold -> ended",
    ]


def test_an_ended_call_stays_ended() -> None:
    check_move(CallState.WAITING, CallState.IN_CALL)
    check_move(CallState.ON_HOLD, CallState.ENDED)
    for state in (CallState.WAITING, CallState.IN_CALL, CallState.ON_HOLD):
        with pytest.raises(InvalidMove):
            check_move(CallState.ENDED, state)


# -- the limit ------------------------------------------------------------------------------------
async def test_the_limit_refuses_the_seventh_person_but_never_the_one_the_call_is_for(
    rig: Rig,
) -> None:
    for n in range(rig.policy.limit):
        await rig.enter(guest(n), f"conn/g{n}")
    with pytest.raises(Refusal) as full:
        await rig.enter(guest(6), "conn/g6")
    assert full.value.code == refusals.CALL_FULL
    await rig.send(guest(0), "conn/g0", "room.enter")  # entering again from the same tab
    await rig.inbox("conn/c")
    view = await rig.send(caller(), "conn/c", "room.enter")  # the caller always has a place
    assert view["you"] == "conn-c" and len(view["participants"]) == 7


async def test_the_policy_decides_who_may_enter(rig: Rig) -> None:
    with pytest.raises(Refusal) as refused:
        await rig.send(Principal("nobody", "?"), "conn/x", "room.enter")
    assert refused.value.code == "forbidden"
    with pytest.raises(Refusal) as outside:
        await rig.send(guest(1), "conn/x", "chat.send", {"text": "hi"})
    assert outside.value.code == refusals.NOT_IN_ROOM


# -- hold -----------------------------------------------------------------------------------------
async def test_on_hold_only_the_caller_stays_and_no_media_passes(rig: Rig) -> None:
    await rig.enter(caller(), "conn/c")
    doctor = await rig.enter(staff(), "conn/p")
    olena = await rig.enter(guest(1), "conn/g")
    for conn in ("conn/c", "conn/p", "conn/g"):
        who = {"conn/c": caller(), "conn/p": staff(), "conn/g": guest(1)}[conn]
        await rig.send(who, conn, "media.offer", {"sdp": conn})
    await rig.send(staff(), "conn/p", "call.hold")
    with trio.fail_after(TIMEOUT):
        for events in (doctor, olena):
            await events.wait_for(lambda e: e.type == "room.state" and e.body["state"] == "on_hold")
    view = await rig.send(caller(), "conn/c", "room.enter")
    assert view["state"] == "on_hold" and [p["id"] for p in view["participants"]] == ["conn-c"]
    assert rig.media.gates["conn-c"] is False
    assert set(rig.media.closed) >= {"conn-p", "conn-g"}
    events = rig.policy.events
    assert events.index("holding") < events.index("left conn/p") < events.index("held")


# -- media signalling -----------------------------------------------------------------------------
async def test_offers_of_several_peers_run_side_by_side(rig: Rig, nursery: trio.Nursery) -> None:
    """A slow answer for one peer holds up neither a chat message nor another peer's offer."""
    a_events = await rig.enter(guest(1), "conn/a")
    await rig.enter(guest(2), "conn/b")
    rig.media.hold("conn-a")
    replies: dict[str, Any] = {}

    async def offer_a() -> None:
        replies["a"] = await rig.send(guest(1), "conn/a", "media.offer", {"sdp": "a"})

    nursery.start_soon(offer_a)
    with trio.fail_after(TIMEOUT):
        await trio.testing.wait_all_tasks_blocked()
        assert rig.media.opening == [("conn-a", "a")]  # A's offer is with the media plane ...
        b = await rig.send(guest(2), "conn/b", "media.offer", {"sdp": "b"})
        assert isinstance(b.pop("seq"), int)  # the slot maps' number (a newer map, a larger one)
        assert b == {
            "sdp": f"answer to b in {rig.call_id}",
            "slots": {"0": "conn-other"},
            "audio": {"0": "conn-other"},
        }
        assert await rig.send(guest(2), "conn/b", "chat.send", {"text": "hello"}) == {}
        await a_events.wait_for(lambda e: e.type == "chat.message")
        assert "a" not in replies  # ... and still there, while B was answered and chat went by
        rig.media.release("conn-a")
        while "a" not in replies:
            await trio.testing.wait_all_tasks_blocked()
    assert replies["a"]["sdp"] == f"answer to a in {rig.call_id}"


async def test_offers_of_one_peer_are_answered_in_order(rig: Rig, nursery: trio.Nursery) -> None:
    await rig.enter(guest(1), "conn/a")
    rig.media.hold("conn-a")
    replies: list[str] = []

    async def offer(sdp: str) -> None:
        reply = await rig.send(guest(1), "conn/a", "media.offer", {"sdp": sdp})
        replies.append(reply["sdp"])

    nursery.start_soon(offer, "first")
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(offer, "second")
    with trio.fail_after(TIMEOUT):
        await trio.testing.wait_all_tasks_blocked()
        assert rig.media.opening == [("conn-a", "first")]  # the second waits for the first
        rig.media.release("conn-a")
        while len(replies) < 2:
            await trio.testing.wait_all_tasks_blocked()
    assert [peer_sdp[1] for peer_sdp in rig.media.answered] == ["first", "second"]
    assert replies == [f"answer to {sdp} in {rig.call_id}" for sdp in ("first", "second")]


async def test_a_peer_that_left_while_its_offer_was_answered_gets_no_media(
    rig: Rig, nursery: trio.Nursery
) -> None:
    await rig.enter(guest(1), "conn/a")
    rig.media.hold("conn-a")
    outcome: dict[str, Refusal] = {}

    async def offer() -> None:
        try:
            await rig.send(guest(1), "conn/a", "media.offer", {"sdp": "a"})
        except Refusal as refusal:
            outcome["refusal"] = refusal

    nursery.start_soon(offer)
    await trio.testing.wait_all_tasks_blocked()
    await rig.send(guest(1), "conn/a", "room.leave")
    rig.media.release("conn-a")
    with trio.fail_after(TIMEOUT):
        while "refusal" not in outcome:
            await trio.testing.wait_all_tasks_blocked()
    assert outcome["refusal"].code == refusals.NOT_IN_ROOM
    # Closed when it left, and again once the late answer came: no peer outlives its presence.
    assert rig.media.closed == ["conn-a", "conn-a"]


async def test_ending_the_call_refuses_the_offers_in_flight_and_frees_its_addresses(
    rig: Rig, nursery: trio.Nursery
) -> None:
    await rig.enter(guest(1), "conn/a")
    await rig.enter(staff(), "conn/p")
    rig.media.hold("conn-a")
    outcome: dict[str, Refusal] = {}

    async def offer() -> None:
        try:
            await rig.send(guest(1), "conn/a", "media.offer", {"sdp": "a"})
        except Refusal as refusal:
            outcome["refusal"] = refusal

    nursery.start_soon(offer)
    await trio.testing.wait_all_tasks_blocked()
    await rig.send(staff(), "conn/p", "call.end")
    with trio.fail_after(TIMEOUT):
        while "refusal" not in outcome:
            await trio.testing.wait_all_tasks_blocked()
    assert outcome["refusal"].code == refusals.ENDED
    assert rig.policy.events[-2:] == ["closing ended", "closed ended"]
    assert f"call {rig.call_id}" in rig.media.closed
    await trio.testing.wait_all_tasks_blocked()
    assert rig.room not in rig.registry
    assert addresses.call(rig.call_id) not in rig.registry


async def test_media_events_reach_the_call_by_its_own_id(rig: Rig) -> None:
    assert rig.call_id != ROOM_ID and rig.call_id == call_id_for(addresses.room(ROOM_ID))
    events = await rig.enter(guest(1), "conn/a")
    rig.registry.ref(addresses.call(rig.call_id)).tell(
        SlotsChanged(rig.call_id, "conn-a", {0: "conn-other"})
    )
    with trio.fail_after(TIMEOUT):
        slots = await events.wait_for(lambda e: e.type == "media.slots")
    seq = slots.body.pop("seq")
    assert slots.body == {"slots": {"0": "conn-other"}, "audio": {"0": "conn-other"}}
    # Every map is numbered, newer above older, so a page can drop one that arrives late.
    rig.registry.ref(addresses.call(rig.call_id)).tell(
        SlotsChanged(rig.call_id, "conn-a", {0: "conn-other", 1: "conn-third"})
    )
    with trio.fail_after(TIMEOUT):
        newer = await events.wait_for(lambda e: e.type == "media.slots" and e is not slots)
    assert isinstance(seq, int) and newer.body["seq"] > seq


# -- the grace ------------------------------------------------------------------------------------
async def test_the_grace_ends_the_call_exactly_when_due(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await start(nursery, OpenPolicy(wait=GRACE))
    await rig.enter(caller(), "conn/c")
    await rig.enter(staff(), "conn/p")  # others present do not keep the call waiting forever
    left_at = trio.current_time()
    await rig.send(caller(), "conn/c", "room.leave")
    await rig.policy.ended.wait()
    assert rig.policy.ended_at is not None and rig.policy.ended_at - left_at == GRACE
    assert rig.policy.events[-3:] == ["abandoned", "closing left", "closed left"]
    nursery.cancel_scope.cancel()


async def test_coming_back_cancels_the_grace(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await start(nursery, OpenPolicy(wait=GRACE))
    await rig.enter(caller(), "conn/c")
    await rig.send(caller(), "conn/c", "room.leave")
    await trio.sleep(GRACE - 1)
    await rig.enter(caller(), "conn/c2")
    await trio.sleep(10 * GRACE)
    assert not rig.policy.ended.is_set()
    left_again_at = trio.current_time()
    await rig.send(caller(), "conn/c2", "room.leave")
    await rig.policy.ended.wait()
    assert rig.policy.ended_at is not None and rig.policy.ended_at - left_again_at == GRACE
    nursery.cancel_scope.cancel()


async def test_a_call_without_a_grace_waits_for_ever(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await start(nursery, OpenPolicy(wait=None))
    await rig.enter(caller(), "conn/c")
    await rig.send(caller(), "conn/c", "room.leave")
    await trio.sleep(1000 * GRACE)
    assert not rig.policy.ended.is_set() and rig.room in rig.registry
    nursery.cancel_scope.cancel()


async def test_a_connection_that_cannot_be_told_leaves_and_the_grace_starts(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await start(nursery, OpenPolicy(wait=GRACE))
    await rig.enter(caller(), "conn/c")
    doctor = await rig.enter(staff(), "conn/p")
    await rig.root.stop_child("conn/c")  # the caller's connection is gone, unannounced
    gone_at = trio.current_time()
    await rig.send(staff(), "conn/p", "chat.send", {"text": "still there?"})
    left = await doctor.wait_for(
        lambda e: e.type == "room.participants" and len(e.body["participants"]) == 1
    )
    assert left.body["participants"][0]["id"] == "conn-p"
    assert "left conn/c" in rig.policy.events and "conn-c" in rig.media.closed
    await rig.policy.ended.wait()
    assert rig.policy.ended_at is not None and rig.policy.ended_at - gone_at == GRACE
    nursery.cancel_scope.cancel()
