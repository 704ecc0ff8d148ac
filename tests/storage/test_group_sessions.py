"""Group sessions in storage (migration 9), on a real SQLite file: arrival refused when locked or
ended, admission all-or-nothing up to the capacity, time present counted, the usage report."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import group_sessions as groups
from storage import retention, rooms, seed
from storage.db import Store
from storage.errors import NotFoundError, TokenRejectedError
from storage.retention import RetentionPolicy
from storage.times import utcnow


@pytest.fixture
async def demo(store: Store) -> seed.DemoInfo:
    return await seed.seed_demo(store, "hash")


async def _session(store: Store, demo: seed.DemoInfo, capacity: int = 3) -> groups.GroupSession:
    return await groups.create_session(
        store,
        unit_id=demo.unit_id,
        title="Pain management",
        starts_at=utcnow(),
        capacity=capacity,
        moderator_ids=(demo.provider_user_id, demo.provider_user_id),
        registrants=(("Ann Smith", "ann@example.org"), ("Bob Jones", "")),
        created_by=demo.provider_user_id,
    )


async def test_create_lists_and_finds_by_link_and_room(store: Store, demo: seed.DemoInfo) -> None:
    session = await _session(store, demo)
    assert session.moderator_ids == (demo.provider_user_id,)
    assert session.state == "scheduled" and not session.locked and len(session.link) >= 20
    assert (await groups.session_for_link(store, session.link)) == session
    assert (await groups.session_for_room(store, session.room_id)) == session
    assert [s.id for s in await groups.list_sessions(store, demo.org_id)] == [session.id]
    assert await groups.list_sessions(store, demo.org_id + 1) == []
    regs = await groups.list_registrations(store, session.id)
    assert [(r.name, r.arrived) for r in regs] == [("Ann Smith", False), ("Bob Jones", False)]
    with pytest.raises(ValueError):
        await groups.create_session(
            store,
            unit_id=demo.unit_id,
            title="Too big",
            starts_at=utcnow(),
            capacity=61,
            moderator_ids=(),
        )
    with pytest.raises(NotFoundError):
        await groups.create_session(
            store, unit_id=999, title="x", starts_at=utcnow(), capacity=5, moderator_ids=()
        )


async def test_arrival_matches_a_registration_and_refuses_locked_ended_rotated(
    store: Store, demo: seed.DemoInfo
) -> None:
    session = await _session(store, demo)
    arrival = await groups.arrive(store, session.link, " ann smith ", "")
    assert arrival.participant.registration_id is not None
    room_id, _, secret = arrival.token.partition(".")
    assert room_id == session.room_id
    found = await groups.participant_for_token(store, room_id, secret)
    assert found is not None and found.id == arrival.participant.id
    assert await groups.participant_for_token(store, "other", secret) is None
    regs = await groups.list_registrations(store, session.id)
    assert [r.arrived for r in regs] == [True, False]

    await groups.set_locked(store, session.id, True)
    with pytest.raises(groups.ArrivalRejected) as locked:
        await groups.arrive(store, session.link, "Late", "")
    assert locked.value.reason == "locked"
    await groups.set_locked(store, session.id, False)
    rotated = await groups.rotate_link(store, session.id)
    with pytest.raises(groups.ArrivalRejected) as unknown:
        await groups.arrive(store, session.link, "Late", "")
    assert unknown.value.reason == "unknown"
    ended, did = await groups.end_session(store, session.id, "ended")
    assert did and ended.state == "ended"
    assert (await groups.end_session(store, session.id, "again"))[1] is False
    with pytest.raises(groups.ArrivalRejected) as over:
        await groups.arrive(store, rotated.link, "Late", "")
    assert over.value.reason == "ended"
    # Ending revoked the token.
    assert await groups.participant_for_token(store, room_id, secret) is None
    with pytest.raises(TokenRejectedError):
        await rooms.check_token(store, secret)


async def test_admission_is_all_or_nothing_up_to_the_capacity(
    store: Store, demo: seed.DemoInfo
) -> None:
    session = await _session(store, demo, capacity=2)
    people = [(await groups.arrive(store, session.link, f"P{i}", "")).participant for i in range(4)]
    assert await groups.admit(store, session.id, (people[0].id, people[0].id)) == [people[0].id]
    with pytest.raises(groups.GroupFull) as full:
        await groups.admit(store, session.id, (people[1].id, people[2].id))
    assert full.value.places_left == 1
    listed = {p.id: p.admitted for p in await groups.list_participants(store, session.id)}
    assert listed == {
        people[0].id: True,
        people[1].id: False,
        people[2].id: False,
        people[3].id: False,
    }
    assert await groups.admit(store, session.id, (people[1].id,)) == [people[1].id]
    with pytest.raises(groups.GroupFull) as none_left:
        await groups.admit(store, session.id, (people[2].id,))
    assert none_left.value.places_left == 0
    # Sending back frees a place; removing revokes the token for good.
    await groups.send_back(store, people[0].id)
    assert await groups.admit(store, session.id, (people[2].id,)) == [people[2].id]
    removed = await groups.remove_participant(store, people[1].id)
    assert removed.removed_at is not None and not removed.admitted
    assert await groups.admit(store, session.id, (people[1].id,)) == []


async def test_time_present_and_the_usage_report(store: Store, demo: seed.DemoInfo) -> None:
    start = utcnow()
    session = await _session(store, demo)
    started, first = await groups.start_session(store, session.id, now=start)
    assert first and started.state == "running" and started.started_at == start
    assert (await groups.start_session(store, session.id, now=start))[1] is False
    one = (await groups.arrive(store, session.link, "One", "")).participant
    two = (await groups.arrive(store, session.link, "Two", "")).participant
    await groups.admit(store, session.id, (one.id, two.id), now=start)
    await groups.participant_entered(store, one.id, now=start)
    await groups.participant_left(store, one.id, now=start + timedelta(minutes=10))
    await groups.participant_entered(store, one.id, now=start + timedelta(minutes=20))
    await groups.participant_entered(store, two.id, now=start + timedelta(minutes=5))
    await groups.end_session(store, session.id, "time_limit", now=start + timedelta(minutes=30))
    got = await groups.get_participant(store, one.id)
    assert got.seconds_present == pytest.approx(20 * 60)
    usage = await groups.usage(
        store, demo.org_id, start - timedelta(days=1), start + timedelta(days=1)
    )
    assert usage.sessions == 1 and usage.participants == 2
    assert usage.session_seconds == pytest.approx((30 * 60,))
    assert sorted(usage.participant_seconds) == pytest.approx([20 * 60, 25 * 60])
    other = await groups.usage(
        store, demo.org_id + 1, start - timedelta(days=1), start + timedelta(days=1)
    )
    assert other.sessions == 0


async def test_registrations_added_and_removed(store: Store, demo: seed.DemoInfo) -> None:
    session = await _session(store, demo)
    await groups.add_registrations(store, session.id, (("Cara", "07700900000"),))
    regs = await groups.list_registrations(store, session.id)
    assert [r.name for r in regs] == ["Ann Smith", "Bob Jones", "Cara"]
    await groups.arrive(store, session.link, "Cara", "")
    await groups.remove_registration(store, session.id, regs[2].id)
    assert [r.name for r in await groups.list_registrations(store, session.id)] == [
        "Ann Smith",
        "Bob Jones",
    ]
    with pytest.raises(NotFoundError):
        await groups.remove_registration(store, session.id, regs[2].id)


async def test_a_session_takes_a_bounded_number_of_arrivals(
    store: Store, demo: seed.DemoInfo
) -> None:
    session = await _session(store, demo)
    for n in range(3):
        await groups.arrive(store, session.link, f"P{n}", max_arrivals=3)
    with pytest.raises(groups.ArrivalRejected) as full:
        await groups.arrive(store, session.link, "One more", max_arrivals=3)
    assert full.value.reason == "full"
    assert len(await groups.list_participants(store, session.id)) == 3


async def test_the_retention_sweep_forgets_group_names_and_keeps_working(
    store: Store, demo: seed.DemoInfo
) -> None:
    start = utcnow()
    session = await _session(store, demo)
    arrival = await groups.arrive(store, session.link, "Ann Smith", "ann@example.org", now=start)
    await groups.end_session(store, session.id, "ended", now=start)  # revokes the tokens
    later = await groups.create_session(
        store,
        unit_id=demo.unit_id,
        title="Next",
        starts_at=start,
        capacity=5,
        moderator_ids=(),
        registrants=(("Cara Jones", "07700900000"),),
    )
    await groups.arrive(store, later.link, "Dan Brown", "", now=start)
    policy = RetentionPolicy(caller_days=30, outbox_days=30, session_days=7)
    swept = await retention.sweep(store, policy, start + timedelta(days=31))
    assert swept.group_anonymised == 3  # Ann, and the ended session's two registrations
    gone = await groups.get_participant(store, arrival.participant.id)
    assert gone.name == "" and gone.contact == ""
    assert [(r.name, r.contact) for r in await groups.list_registrations(store, session.id)] == [
        ("", ""),
        ("", ""),
    ]
    # The session that has not ended keeps its people's names.
    kept = await groups.list_participants(store, later.id)
    assert [p.name for p in kept] == ["Dan Brown"]
    assert [r.name for r in await groups.list_registrations(store, later.id)] == ["Cara Jones"]
    again = await retention.sweep(store, policy, start + timedelta(days=31))
    assert again.group_anonymised == 0
