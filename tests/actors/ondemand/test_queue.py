"""The on-demand queue at actor level (issue 14), on Trio's virtual clock: states, order, the live
list, claim / assign / decline and their refusals, Start Session gating media, the alert, the
estimate, another organisation's ids. Real SQLite, the real actors; the media port is the call
core tests' recording port (media itself is tested in tests/media and the browser journey)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.inbound import ConnectionClosed, Inbound
from actors.messages import StartAgain
from actors.ondemand.messages import DescribePublic, OnCallStatus, StaffStatus
from actors.principal import Principal
from actors.staff.notices import ListNotices, NoticeList
from runtime import Refusal, Supervisor
from runtime.kernel import Stop
from storage import audit
from storage import ondemand as store_od
from storage import outbox as outbox_store
from tests.actors.ondemand.world import STEP_ONE, STEP_TWO, World, events_of, settle, world_at


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with world_at(tmp_path) as w:
        yield w


async def refused(code: str, call: object) -> Refusal:
    with pytest.raises(Refusal) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code, caught.value
    return caught.value


async def test_request_lifecycle_from_intake_to_ended(world: World, autojump_clock: object) -> None:
    await world.on_call(world.lee)
    _, watched, first = await world.watch(world.lee)
    assert first["requests"] == [] and first["on_call"] is True

    ticket = await world.meet_now("Ada")
    pconn, patient_events, patient, entered = await world.patient(ticket)
    assert entered["ondemand"]["state"] == "intake"
    assert entered["ondemand"]["step"] == 0 and entered["ondemand"]["steps_total"] == 2
    await settle()
    listed = events_of(watched, "ondemand.request")[-1]["request"]
    assert listed["state"] == "intake" and listed["case"] == {}
    assert listed["name"] == "Ada" and listed["region"] == "Kent"
    assert "email" not in listed and "room" not in listed

    reply = await world.in_room(
        ticket, patient, "ondemand.step", pconn, {"step": 0, "values": STEP_ONE}
    )
    assert reply == {"step": 1, "steps_total": 2, "state": "intake"}
    await settle()
    assert events_of(watched, "ondemand.request")[-1]["request"]["case"] == STEP_ONE

    reply = await world.in_room(
        ticket, patient, "ondemand.step", pconn, {"step": 1, "values": STEP_TWO}
    )
    assert reply["state"] == "waiting"
    await settle()
    last = events_of(watched, "ondemand.request")[-1]["request"]
    assert last["state"] == "waiting" and last["case"] == {**STEP_ONE, **STEP_TWO}

    claim = await world.ask(world.lee, "ondemand.claim", {"request_id": ticket.request_id})
    assert claim["room"] == ticket.room_id and claim["url"].endswith(ticket.room_id)
    await settle()
    state = events_of(patient_events, "room.state")[-1]
    assert state["ondemand"]["state"] == "claimed" and state["ondemand"]["claimed_by"] == "Dr Lee"

    sconn, _ = await world.socket()
    await world.in_room(ticket, world.lee, "room.enter", sconn)
    await world.in_room(ticket, world.lee, "session.start", sconn)
    done = await world.in_room(ticket, patient, "session.start", pconn)
    assert done == {"started": {"staff": True, "patient": True}}
    await settle()
    assert events_of(patient_events, "room.state")[-1]["state"] == "in_call"
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "in_session"

    await world.in_room(ticket, world.lee, "call.end", sconn)
    await settle()
    assert events_of(watched, "ondemand.removed")[-1] == {
        "org": world.org_id,
        "id": ticket.request_id,
        "state": "ended",
    }
    actions = [e.action for e in await audit.list_entries(world.store)]
    for action in (audit.ONDEMAND_CLAIM, audit.ONDEMAND_START, audit.ONDEMAND_END):
        assert action in actions


async def test_media_is_gated_until_both_press_start(world: World, autojump_clock: object) -> None:
    ticket = await world.meet_now()
    pconn, _, patient, _ = await world.patient(ticket)
    await world.ask(world.admin, "ondemand.claim", {"request_id": ticket.request_id})
    await settle()
    sconn, _ = await world.socket()
    await world.in_room(ticket, world.admin, "room.enter", sconn)
    for conn, who in ((pconn, patient), (sconn, world.admin)):
        await world.in_room(ticket, who, "media.offer", conn, {"sdp": "v=0"})
    staff_peer, patient_peer = sconn.replace("/", "-"), pconn.replace("/", "-")
    assert world.media.gates == {patient_peer: False, staff_peer: False}

    await world.in_room(ticket, patient, "session.start", pconn)
    assert world.media.gates == {patient_peer: False, staff_peer: False}
    await world.in_room(ticket, world.admin, "session.start", sconn)
    assert world.media.gates == {patient_peer: True, staff_peer: True}


async def test_list_is_longest_wait_first(world: World, autojump_clock: object) -> None:
    names = ["Ada", "Bo", "Cy"]
    for name in names:
        await world.meet_now(name)
        await trio.sleep(1.5)  # virtual; storage stamps the wall clock, which moves too
    _, _, reply = await world.watch(world.admin)
    assert [r["name"] for r in reply["requests"]] == names
    waited = [r["waited"] for r in reply["requests"]]
    assert waited == sorted(waited, reverse=True)


async def test_claim_before_the_intake_ends(world: World, autojump_clock: object) -> None:
    await world.on_call(world.kim)
    ticket = await world.meet_now()
    pconn, _, patient, _ = await world.patient(ticket)
    await world.ask(world.kim, "ondemand.claim", {"request_id": ticket.request_id})
    # The patient may finish the intake after the claim; the request stays claimed.
    reply = await world.in_room(
        ticket, patient, "ondemand.step", pconn, {"step": 0, "values": STEP_ONE}
    )
    assert reply["state"] == "claimed"


async def test_two_claims_at_once_exactly_one_wins(world: World, autojump_clock: object) -> None:
    await world.on_call(world.lee)
    await world.on_call(world.kim)
    ticket = await world.meet_now()
    outcomes: dict[str, object] = {}

    async def claim(who: Principal) -> None:
        try:
            outcomes[who.display_name] = await world.ask(
                who, "ondemand.claim", {"request_id": ticket.request_id}
            )
        except Refusal as refusal:
            outcomes[who.display_name] = refusal

    async with trio.open_nursery() as nursery:
        for who in (world.lee, world.kim, world.admin):
            nursery.start_soon(claim, who)
    winners = [n for n, o in outcomes.items() if isinstance(o, dict)]
    assert len(winners) == 1
    for name, outcome in outcomes.items():
        if name not in winners:
            assert isinstance(outcome, Refusal) and outcome.code == refusals.ALREADY_CLAIMED
            assert winners[0] in outcome.detail
    stored = await store_od.get_request(world.store, ticket.request_id)
    assert stored.claimed_name == winners[0]


async def test_assign_notifies_and_only_the_assignee_claims(
    world: World, autojump_clock: object
) -> None:
    await world.on_call(world.lee)
    await world.on_call(world.kim)
    ticket = await world.meet_now("Ada")
    assert world.lee.user_id is not None
    await world.ask(
        world.admin,
        "ondemand.assign",
        {"request_id": ticket.request_id, "user_id": world.lee.user_id},
    )
    await settle()
    bell: NoticeList = await world.registry.ref("notices").ask(ListNotices(world.lee))
    assert bell.unread == 1
    assert bell.notices[0]["kind"] == "ondemand.assigned" and bell.notices[0]["ring"] is True

    lost = await refused(
        refusals.ALREADY_CLAIMED,
        world.ask(world.kim, "ondemand.claim", {"request_id": ticket.request_id}),
    )
    assert "Dr Lee" in lost.detail
    await world.ask(world.lee, "ondemand.claim", {"request_id": ticket.request_id})
    # Once claimed, an assign is refused too.
    assert world.kim.user_id is not None
    await refused(
        refusals.ALREADY_CLAIMED,
        world.ask(
            world.admin,
            "ondemand.assign",
            {"request_id": ticket.request_id, "user_id": world.kim.user_id},
        ),
    )


async def test_assign_to_a_provider_not_on_call_is_refused(
    world: World, autojump_clock: object
) -> None:
    ticket = await world.meet_now()
    assert world.lee.user_id is not None
    await refused(
        refusals.NOT_ON_CALL,
        world.ask(
            world.admin,
            "ondemand.assign",
            {"request_id": ticket.request_id, "user_id": world.lee.user_id},
        ),
    )
    stored = await store_od.get_request(world.store, ticket.request_id)
    assert stored.state == "intake" and stored.assigned_to is None


async def test_staff_refusals_change_nothing(world: World, autojump_clock: object) -> None:
    ticket = await world.meet_now()
    rid = {"request_id": ticket.request_id}
    # A provider not on call neither sees the list nor claims.
    await refused(refusals.NOT_ON_CALL, world.ask(world.lee, "ondemand.watch"))
    await refused(refusals.NOT_ON_CALL, world.ask(world.lee, "ondemand.claim", rid))
    # Decline and assign are for administrators only.
    await world.on_call(world.lee)
    await refused(refusals.FORBIDDEN, world.ask(world.lee, "ondemand.decline", rid))
    assert world.kim.user_id is not None
    await refused(
        refusals.FORBIDDEN,
        world.ask(world.lee, "ondemand.assign", {**rid, "user_id": world.kim.user_id}),
    )
    # A caller's principal reaching the queue (the gateway already refuses it) is refused here too.
    caller = Principal("caller", "Ada", room_id=ticket.room_id)
    for kind in ("ondemand.watch", "ondemand.claim", "ondemand.decline", "ondemand.oncall"):
        await refused(refusals.FORBIDDEN, world.ask(caller, kind, {**rid, "on": True}))
    stored = await store_od.get_request(world.store, ticket.request_id)
    assert stored.state == "intake" and stored.claimed_by is None and stored.assigned_to is None


async def test_another_organisations_ids_are_refused(world: World, autojump_clock: object) -> None:
    ticket = await world.meet_now()
    rid = {"request_id": ticket.request_id}
    # Staff of another organisation cannot watch, go on call or claim here.
    await refused(refusals.FORBIDDEN, world.ask(world.outsider, "ondemand.watch"))
    await refused(refusals.FORBIDDEN, world.ask(world.outsider, "ondemand.oncall", {"on": True}))
    await refused(refusals.FORBIDDEN, world.ask(world.outsider_admin, "ondemand.decline", rid))
    # This organisation's request through the other organisation's queue reads as missing.
    await world.other_queue.ask(Inbound("ondemand.oncall", {"on": True}, world.outsider, "conn/o"))
    await refused(
        refusals.NOT_FOUND,
        world.other_queue.ask(Inbound("ondemand.claim", rid, world.outsider, "conn/o")),
    )
    await refused(
        refusals.NOT_FOUND,
        world.other_queue.ask(Inbound("ondemand.decline", rid, world.outsider_admin, "conn/o")),
    )
    # Assigning to a provider of the other organisation: no such provider here.
    assert world.outsider.user_id is not None
    await refused(
        refusals.NOT_FOUND,
        world.ask(world.admin, "ondemand.assign", {**rid, "user_id": world.outsider.user_id}),
    )
    stored = await store_od.get_request(world.store, ticket.request_id)
    assert stored.state == "intake" and stored.claimed_by is None and stored.assigned_to is None


async def test_decline_tells_the_patient_emails_and_rings_the_bell(
    world: World, autojump_clock: object
) -> None:
    _, watched, _ = await world.watch(world.admin)
    ticket = await world.meet_now("Ada", email="ada@example.org")
    _, patient_events, _, _ = await world.patient(ticket)
    await world.ask(
        world.admin, "ondemand.decline", {"request_id": ticket.request_id, "reason": "Closed today"}
    )
    await settle()
    declined = [s for s in events_of(patient_events, "room.state") if s.get("ondemand")]
    assert declined[-1]["ondemand"]["state"] == "declined"
    assert declined[-1]["ondemand"]["reason"] == "Closed today"
    assert events_of(patient_events, "room.state")[-1]["reason"] == "declined"
    assert events_of(watched, "ondemand.removed")[-1]["state"] == "declined"
    sent = await outbox_store.list_messages(world.store)
    assert [m.recipient for m in sent] == ["ada@example.org"]
    assert "declined" in sent[0].body and "Closed today" in sent[0].body
    bell: NoticeList = await world.registry.ref("notices").ask(ListNotices(world.admin))
    assert bell.notices[0]["kind"] == "ondemand.declined"
    # The token no longer opens anything; a second decline or a claim is told it is over.
    await refused(
        refusals.ENDED, world.ask(world.admin, "ondemand.claim", {"request_id": ticket.request_id})
    )


async def test_a_claimed_request_cannot_be_declined(world: World, autojump_clock: object) -> None:
    ticket = await world.meet_now()
    await world.ask(world.admin, "ondemand.claim", {"request_id": ticket.request_id})
    await refused(
        refusals.ALREADY_CLAIMED,
        world.ask(world.admin, "ondemand.decline", {"request_id": ticket.request_id}),
    )
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "claimed"


async def test_intake_answers_are_checked(world: World, autojump_clock: object) -> None:
    ticket = await world.meet_now()
    pconn, _, patient, _ = await world.patient(ticket)

    async def step(n: int, values: dict[str, Any]) -> object:
        return await world.in_room(
            ticket, patient, "ondemand.step", pconn, {"step": n, "values": values}
        )

    await refused(refusals.BAD_FIELD, step(1, STEP_TWO))  # out of order
    bad_answers: list[dict[Any, Any]] = [
        {"symptoms": "cough"},  # required choice missing
        {"symptoms": "cough", "urgency": "maybe"},  # not an option
        {"symptoms": "x" * 501, "urgency": "low"},  # too long
        {"symptoms": "cough", "urgency": "low", "extra": "1"},  # not a field
        {"symptoms": "cough", "urgency": "low", b"bytes": "1", "x": "1"},  # bytes keys too
        {"symptoms": ["a list"], "urgency": "low"},  # not text
    ]
    for bad in bad_answers:
        await refused(refusals.INVALID, step(0, bad))
    await step(0, STEP_ONE)
    for bad in (
        {"since": "28/11/2026", "agree": "yes"},
        {"callback": "12", "agree": "yes"},
        {"agree": "no"},
    ):
        await refused(refusals.INVALID, step(1, bad))
    stored = await store_od.get_request(world.store, ticket.request_id)
    assert stored.steps_done == 1 and stored.case_info == STEP_ONE
    # Staff cannot send the patient's intake.
    sconn, _ = await world.socket()
    await refused(refusals.NOT_JOINED, world.in_room(ticket, world.admin, "room.enter", sconn))


async def test_patient_cancel_and_on_call_status(world: World, autojump_clock: object) -> None:
    _, watched, _ = await world.watch(world.admin)
    ticket = await world.meet_now()
    pconn, _, patient, _ = await world.patient(ticket)
    await world.in_room(ticket, patient, "ondemand.cancel", pconn)
    await settle()
    assert events_of(watched, "ondemand.removed")[-1]["state"] == "cancelled"
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "cancelled"

    status: StaffStatus = await world.queue.ask(OnCallStatus(world.lee))
    assert status == StaffStatus(False, False, True, False)
    await world.on_call(world.lee)
    assert (await world.queue.ask(OnCallStatus(world.lee))).sees_list is True
    assert (await world.queue.ask(OnCallStatus(world.admin))).is_admin is True


async def test_going_off_call_ends_a_providers_watch(world: World, autojump_clock: object) -> None:
    await world.on_call(world.lee)
    conn, watched, _ = await world.watch(world.lee)
    await world.ask(world.lee, "ondemand.oncall", {"on": False})
    await world.meet_now()
    await settle()
    assert events_of(watched, "ondemand.request") == []
    world.queue.tell(ConnectionClosed(conn, world.lee))


async def test_estimate_follows_recent_claims(world: World, autojump_clock: object) -> None:
    public = await world.queue.ask(DescribePublic())
    assert public.estimate is None  # nothing to go on yet
    for _ in range(3):
        ticket = await world.meet_now()
        await trio.sleep(2)
        await world.ask(world.admin, "ondemand.claim", {"request_id": ticket.request_id})
    public = await world.queue.ask(DescribePublic())
    assert public.estimate is not None and public.estimate >= 0
    waiting = await world.meet_now("Late")
    _, _, _, entered = await world.patient(waiting)
    assert entered["ondemand"]["estimate"] == public.estimate


async def test_alert_when_a_request_waits_past_the_threshold(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with world_at(tmp_path, alert_after=300) as world:
        await world.on_call(world.lee)
        quick = await world.meet_now("Quick")
        slow = await world.meet_now("Slow")
        for ticket in (quick, slow):
            await world.patient(ticket)  # connected: a patient who never comes is cancelled
        await world.ask(world.admin, "ondemand.claim", {"request_id": quick.request_id})
        await trio.sleep(299)
        bell: NoticeList = await world.registry.ref("notices").ask(ListNotices(world.lee))
        assert bell.notices == ()
        await trio.sleep(2)
        await settle()
        for who in (world.lee, world.admin):
            bell = await world.registry.ref("notices").ask(ListNotices(who))
            texts = [n["text"] for n in bell.notices if n["kind"] == "ondemand.waiting"]
            assert len(texts) == 1 and "Slow" in texts[0]
        kim: NoticeList = await world.registry.ref("notices").ask(ListNotices(world.kim))
        assert kim.notices == ()  # not on call


async def test_a_restarted_queue_rebuilds_from_storage(
    world: World, autojump_clock: object
) -> None:
    await world.on_call(world.lee)
    ticket = await world.meet_now("Ada")
    await world.ask(world.lee, "ondemand.claim", {"request_id": ticket.request_id})
    await world.meet_now("Bo")
    await world.patient(ticket)
    _, before, _ = await world.watch(world.admin)
    # The queue stops (a clean stop: its supervisor restarts a permanent child from storage).
    world.queue.tell(Stop())
    await trio.sleep(1)
    _, _, reply = await world.watch(world.lee)
    assert [(r["name"], r["state"]) for r in reply["requests"]] == [
        ("Ada", "claimed"),
        ("Bo", "intake"),
    ]
    assert reply["on_call"] is True
    # A new instance, with the old one's watchers (the host keeps them, as the area host does):
    # it sends them the list and goes on pushing to them.
    [snapshot] = events_of(before, "ondemand.snapshot")
    assert [r["name"] for r in snapshot["requests"]] == ["Ada", "Bo"]
    await world.meet_now("Cy")
    await settle()
    assert events_of(before, "ondemand.request")[-1]["request"]["name"] == "Cy"


async def test_a_patient_who_does_not_come_back_is_cancelled_after_the_grace(
    world: World, autojump_clock: object
) -> None:
    _, watched, _ = await world.watch(world.admin)
    ticket = await world.meet_now("Ada")
    pconn, _, patient, _ = await world.patient(ticket)
    world.room(ticket).tell(ConnectionClosed(pconn, patient))
    await trio.sleep(119)
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "intake"
    # Back within the grace: the place is kept.
    again, _ = await world.socket()
    await world.in_room(ticket, patient, "room.enter", again)
    await trio.sleep(200)
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "intake"
    world.room(ticket).tell(ConnectionClosed(again, patient))
    await trio.sleep(121)
    await settle()
    assert (await store_od.get_request(world.store, ticket.request_id)).state == "cancelled"
    assert events_of(watched, "ondemand.removed")[-1]["state"] == "cancelled"


def _sessions(world: World) -> Supervisor:
    """The supervisor the host and the queues start the sessions under."""
    sessions = getattr(world.root.instance(addresses.ONDEMAND), "sessions", None)
    assert isinstance(sessions, Supervisor)
    return sessions


async def _gone(world: World, address: str) -> None:
    with trio.fail_after(5):
        while address in world.registry:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_session_whose_node_died_starts_again_once_in_session_and_both_are_back(
    world: World, autojump_clock: object
) -> None:
    """``StartAgain`` (a cluster node's message for the session found no owner, its queue
    alive): the host starts the session again from its request under the sessions' supervisor,
    in session with who claimed it; asks at once and a later one start one copy; both gateways
    enter it again and they chat."""
    await world.on_call(world.lee)
    ticket = await world.meet_now("Ada")
    pconn, patient_events, patient, _ = await world.patient(ticket)
    for step, values in enumerate((STEP_ONE, STEP_TWO)):
        await world.in_room(
            ticket, patient, "ondemand.step", pconn, {"step": step, "values": values}
        )
    await world.ask(world.lee, "ondemand.claim", {"request_id": ticket.request_id})
    sconn, _ = await world.socket()
    await world.in_room(ticket, world.lee, "room.enter", sconn)
    await world.in_room(ticket, world.lee, "session.start", sconn)
    await world.in_room(ticket, patient, "session.start", pconn)
    address = addresses.room(ticket.room_id)
    sessions = _sessions(world)
    await sessions.stop_child(address)  # as its node dying leaves it: nothing ended in the store
    await _gone(world, address)

    async with trio.open_nursery() as both:  # two messages for it at once: one copy
        for _ in range(2):
            both.start_soon(world.registry.ref(addresses.ONDEMAND).ask, StartAgain(ticket.room_id))
    first = sessions.instance(address)
    assert first is not None and sessions.children().count(address) == 1
    await world.registry.ref(addresses.ONDEMAND).ask(StartAgain(ticket.room_id))
    assert sessions.instance(address) is first

    for who, conn in ((world.lee, sconn), (patient, pconn)):
        entered = await world.room(ticket).ask(Inbound("room.enter", {}, who, conn, again=True))
        assert entered["state"] == "in_call", entered
        assert entered["ondemand"]["state"] == "in_session"
        assert entered["ondemand"]["claimed_by"] == "Dr Lee"
    await world.in_room(ticket, world.lee, "chat.send", sconn, {"text": "back"})
    await settle()
    assert events_of(patient_events, "chat.message")[-1]["text"] == "back"


async def test_a_request_that_is_over_or_an_unknown_room_is_not_started_again(
    world: World, autojump_clock: object
) -> None:
    ticket = await world.meet_now("Ada")
    pconn, _, patient, _ = await world.patient(ticket)
    await world.in_room(ticket, patient, "ondemand.cancel", pconn)
    address = addresses.room(ticket.room_id)
    await _gone(world, address)
    host = world.registry.ref(addresses.ONDEMAND)
    for room_id, code in ((ticket.room_id, refusals.CLOSED), ("nope", refusals.NOT_FOUND)):
        await refused(code, host.ask(StartAgain(room_id)))
    assert address not in world.registry
