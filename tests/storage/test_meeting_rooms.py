"""Meeting rooms and user rooms in storage (migration 4), on a real SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from storage import calls, orgs, reports, rooms, seed, staff, staff_views
from storage import meeting_rooms as store_rooms
from storage.db import Store
from storage.errors import ConflictError, NotFoundError, TokenRejectedError
from storage.times import utcnow


@pytest.fixture
async def demo(store: Store) -> seed.DemoInfo:
    return await seed.seed_demo(store, "hash")


async def test_meeting_rooms_are_named_once_per_unit_renamed_and_archived(
    store: Store, demo: seed.DemoInfo
) -> None:
    room = await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
    assert room.org_id == demo.org_id and not room.archived and len(room.guest_link) >= 20
    with pytest.raises(ConflictError):
        await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
    with pytest.raises(NotFoundError):
        await store_rooms.create_meeting_room(store, 999, "Nowhere")
    other = await store_rooms.create_meeting_room(store, demo.unit_id, "Case conference")
    with pytest.raises(ConflictError):
        await store_rooms.rename_meeting_room(store, other.id, "Huddle")
    renamed = await store_rooms.rename_meeting_room(store, room.id, "Team room")
    assert renamed.name == "Team room" and renamed.guest_link == room.guest_link
    listed = await store_rooms.list_meeting_rooms(store, unit_ids=(demo.unit_id,))
    assert [r.name for r in listed] == ["Case conference", "Team room"]

    guest = await rooms.issue_token(store, room.room_id, "guest", single_use=False, label="G")
    archived = await store_rooms.archive_meeting_room(store, room.id)
    assert archived.archived and archived.archived_at is not None
    with pytest.raises(TokenRejectedError):
        await rooms.check_token(store, guest.raw)
    assert await store_rooms.find_by_link(store, room.guest_link) is None
    with pytest.raises(NotFoundError):
        await store_rooms.archive_meeting_room(store, room.id)
    with pytest.raises(NotFoundError):
        await store_rooms.rename_meeting_room(store, room.id, "Back")
    # An archived room's name is free again; archived rooms are listed only when asked.
    again = await store_rooms.create_meeting_room(store, demo.unit_id, "Team room")
    assert again.id != room.id
    everything = await store_rooms.list_meeting_rooms(store, include_archived=True)
    assert len(everything) == 3


async def test_rotating_the_link_finds_nothing_by_the_old_one_and_revokes_its_guests(
    store: Store, demo: seed.DemoInfo
) -> None:
    room = await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
    guest = await rooms.issue_token(store, room.room_id, "guest", single_use=False, label="G")
    rotated = await store_rooms.rotate_guest_link(store, room.id)
    assert rotated.guest_link != room.guest_link and rotated.link_rotated_at >= room.created_at
    assert await store_rooms.find_by_link(store, room.guest_link) is None
    assert (await store_rooms.find_by_link(store, rotated.guest_link)) == rotated
    with pytest.raises(TokenRejectedError) as revoked:
        await rooms.check_token(store, guest.raw)
    assert revoked.value.reason == "revoked"


async def test_one_open_user_room_per_staff_member(store: Store, demo: seed.DemoInfo) -> None:
    room = await store_rooms.create_user_room(
        store, demo.provider_user_id, demo.unit_id, "Dr Demo Provider"
    )
    assert await store_rooms.user_room_of(store, demo.provider_user_id) == room
    with pytest.raises(ConflictError):
        await store_rooms.create_user_room(store, demo.provider_user_id, demo.unit_id, "Again")
    with pytest.raises(NotFoundError):
        await store_rooms.create_user_room(store, 999, demo.unit_id, "Nobody")
    invite = await rooms.issue_token(store, room.room_id, "invite", single_use=True)
    assert await store_rooms.revoke_guests(store, room.room_id) == 1
    with pytest.raises(TokenRejectedError):
        await rooms.redeem_token(store, invite.raw)
    await store_rooms.archive_user_room(store, room.room_id)
    assert await store_rooms.user_room_of(store, demo.provider_user_id) is None
    assert await store_rooms.list_user_rooms(store) == []
    fresh = await store_rooms.create_user_room(
        store, demo.provider_user_id, demo.unit_id, "Dr Demo Provider"
    )
    assert fresh.room_id != room.room_id
    with pytest.raises(NotFoundError):  # a meeting room's id is not a user room
        meeting = await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
        await store_rooms.get_user_room(store, meeting.room_id)


async def test_grants_on_one_meeting_room_and_the_rebuilt_grants_table(
    store: Store, demo: seed.DemoInfo
) -> None:
    room = await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
    grant = await staff.grant_role(
        store, demo.admin_user_id, "meeting_member", "meeting_room", room.id
    )
    assert grant.scope_type == "meeting_room" and grant.scope_id == room.id
    # A member by that grant alone belongs to the room's organisation (their principal says so).
    only_room = await staff.create_user(store, "roomonly", "Room Only", "hash")
    await staff.grant_role(store, only_room.id, "meeting_member", "meeting_room", room.id)
    assert await staff_views.orgs_of_user(store, only_room.id) == [demo.org_id]
    with pytest.raises(NotFoundError):
        await staff.grant_role(store, demo.admin_user_id, "meeting_member", "meeting_room", 999)
    # The demo's grants survived the rebuild, and the CHECK still refuses unknown scopes.
    kinds = {(g.role, g.scope_type) for g in await staff.list_grants(store, demo.provider_user_id)}
    assert ("meeting_member", "unit") in kinds and ("provider", "area") in kinds

    def forge(db: object) -> None:
        db.execute(  # type: ignore[attr-defined]
            "INSERT INTO role_grants (user_id, role, scope_type, scope_id, created_at)"
            " VALUES (?, 'provider', 'planet', 1, '2026-01-01')",
            (demo.admin_user_id,),
        )

    with pytest.raises(sqlite3.IntegrityError):
        await store.run(forge)


async def test_the_report_counts_calls_by_kind_within_the_organisation(
    store: Store, demo: seed.DemoInfo
) -> None:
    start = utcnow() - timedelta(minutes=1)
    meeting = await store_rooms.create_meeting_room(store, demo.unit_id, "Huddle")
    user_room = await store_rooms.create_user_room(
        store, demo.provider_user_id, demo.unit_id, "Dr Demo Provider"
    )
    for room_id in (meeting.room_id, meeting.room_id, user_room.room_id):
        await calls.start_call(store, room_id)
    caller_room = await rooms.create_room(store, "caller", area_id=demo.areas[0].id)
    await calls.start_call(store, caller_room.id)
    elsewhere = await orgs.create_organisation(store, "Elsewhere")
    far = await orgs.create_unit(store, elsewhere.id, "Far")
    theirs = await store_rooms.create_meeting_room(store, far.id, "Theirs")
    await calls.start_call(store, theirs.room_id)

    counts = await reports.calls_by_kind(store, demo.org_id, start, utcnow() + timedelta(seconds=1))
    assert counts["meeting"] == 2 and counts["user"] == 1 and counts["caller"] == 1
    assert counts["consult_now"] == 0
    later = await reports.calls_by_kind(
        store, demo.org_id, utcnow() + timedelta(hours=1), utcnow() + timedelta(hours=2)
    )
    assert set(later.values()) == {0}
