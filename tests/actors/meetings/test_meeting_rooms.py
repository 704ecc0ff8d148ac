"""Meeting rooms and user rooms on the call core: who enters, the limit, rotation, the end.

The whole actor tree over a real SQLite store seeded with the demo clinic, as the server runs it;
people are stand-in connections (``Inbox`` actors) that address the call as the gateway would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.boot import start_actors
from actors.inbound import ConnectionClosed, Inbound, Push, RedeemToken
from actors.meetings.messages import (
    ArchiveMeetingRoom,
    CreateMeetingRoom,
    CreateUserRoom,
    EnterMeetingRoom,
    EnterUserRoom,
    GuestEnter,
    MeetingAdminEntry,
    MeetingRoomsFor,
    RenameMeetingRoom,
    RotateGuestLink,
    UserRoomFor,
)
from actors.meetings.policies import EXPECT_WINDOW, MAX_PARTICIPANTS
from actors.messages import ClaimInvite, GuestPass, StartAgain
from actors.principal import Principal
from actors.staff.directory import principal_of
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, calls, orgs, seed, staff
from storage import meeting_rooms as store_rooms
from storage.db import Store
from tests.actors.inbox import Inbox, Pushes
from tests.actors.meetings.schema import meeting_store


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    admin: Principal
    member: Principal
    unit_id: int

    async def ask(self, message: object) -> Any:
        return await self.registry.ref(addresses.MEETINGS).ask(message)

    async def staff(self, username: str, *grants: tuple[str, str, int]) -> Principal:
        user = await staff.create_user(self.store, username, f"Dr {username}", "x")
        for role, scope, scope_id in grants:
            await staff.grant_role(self.store, user.id, role, scope, scope_id)  # type: ignore[arg-type]
        return await principal_of(self.store, user.id, user.display_name)

    async def send(self, room: str, who: Principal, conn: str, kind: str, **body: Any) -> Any:
        return await self.registry.ref(addresses.room(room)).ask(
            Inbound(kind, dict(body), who, conn)
        )

    async def enter(self, room: str, who: Principal, conn: str) -> dict[str, Any]:
        if conn not in self.registry:
            await self.root.start_child(ChildSpec(conn, Inbox))
        reply: dict[str, Any] = await self.send(room, who, conn, "room.enter")
        return reply

    async def guest(self, link: str, name: str) -> Principal:
        guest_pass: GuestPass = await self.ask(GuestEnter(link, name))
        room, secret = guest_pass.token.split(".", 1)
        who: Principal = await self.registry.ref(addresses.room(room)).ask(RedeemToken(secret))
        return who

    async def leave(self, room: str, who: Principal, conn: str) -> None:
        self.registry.ref(addresses.room(room)).tell(ConnectionClosed(conn, who))

    async def meeting(self, name: str = "Huddle") -> MeetingAdminEntry:
        entry: MeetingAdminEntry = await self.ask(CreateMeetingRoom(self.admin, self.unit_id, name))
        return entry


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with meeting_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        admin = await principal_of(store, demo.admin_user_id, "Demo Administrator")
        member = await principal_of(store, demo.provider_user_id, "Dr Demo Provider")
        yield Clinic(registry, root, store, admin, member, demo.unit_id)
        nursery.cancel_scope.cancel()


async def _gone(registry: Registry, address: str) -> None:
    """The registry has no event for an actor going away: look until it has gone (bounded)."""
    with trio.fail_after(5):
        while address in registry:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_members_and_guests_enter_others_are_refused_and_the_seventh_too(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    entered = await clinic.enter(view.room_id, clinic.member, "conn/member")
    assert entered["state"] == "in_call" and entered["meeting"] == "Huddle"

    # A provider of the same clinic without the meeting member role: refused at the host and
    # by the call itself (a page is never the only check).
    outsider = await clinic.staff("nomember", ("provider", "unit", clinic.unit_id))
    with pytest.raises(Refusal) as host_says:
        await clinic.ask(EnterMeetingRoom(outsider, room.id))
    assert host_says.value.code == refusals.FORBIDDEN
    with pytest.raises(Refusal) as call_says:
        await clinic.enter(view.room_id, outsider, "conn/outsider")
    assert call_says.value.code == refusals.FORBIDDEN
    # A caller's principal (another room's token) is never let into a meeting room.
    caller = Principal("caller", "Ada", room_id="elsewhere", participant_id="c1")
    with pytest.raises(Refusal) as not_callers:
        await clinic.enter(view.room_id, caller, "conn/caller")
    assert not_callers.value.code == refusals.FORBIDDEN

    # A member by a grant on this one room enters; so do guests with the link, up to six.
    by_room = await clinic.staff("roomonly", ("meeting_member", "meeting_room", room.id))
    await clinic.enter(view.room_id, by_room, "conn/roomonly")
    for n in range(MAX_PARTICIPANTS - 2):
        await clinic.enter(view.room_id, await clinic.guest(room.guest_link, f"G{n}"), f"conn/g{n}")
    listed = await clinic.ask(MeetingRoomsFor(clinic.member))
    assert [len(r.people) for r in listed if r.id == room.id] == [MAX_PARTICIPANTS]
    assert "Dr Demo Provider" in listed[0].people and "G0" in listed[0].people

    # The seventh: a guest at the link is told the meeting is full before getting a token ...
    with pytest.raises(Refusal) as link_full:
        await clinic.ask(GuestEnter(room.guest_link, "Seventh"))
    assert link_full.value.code == refusals.CALL_FULL
    # ... and a seventh member is refused by the call.
    another = await clinic.staff("seventh", ("meeting_member", "unit", clinic.unit_id))
    with pytest.raises(Refusal) as full:
        await clinic.enter(view.room_id, another, "conn/seventh")
    assert full.value.code == refusals.CALL_FULL
    # No hold in a meeting room.
    with pytest.raises(Refusal) as no_hold:
        await clinic.send(view.room_id, clinic.member, "conn/member", "call.hold")
    assert no_hold.value.code == refusals.NO_HOLD


async def test_a_rotated_link_admits_nobody_and_its_guest_tokens_stop_working(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    guest_pass: GuestPass = await clinic.ask(GuestEnter(room.guest_link, "Early"))
    rotated: MeetingAdminEntry = await clinic.ask(RotateGuestLink(clinic.admin, room.id))
    assert rotated.guest_link != room.guest_link
    with pytest.raises(Refusal) as old_link:
        await clinic.ask(GuestEnter(room.guest_link, "Late"))
    assert old_link.value.code == refusals.INVALID_TOKEN
    room_id, secret = guest_pass.token.split(".", 1)
    with pytest.raises(Refusal) as old_token:
        await clinic.registry.ref(addresses.room(room_id)).ask(RedeemToken(secret))
    assert old_token.value.code == refusals.INVALID_TOKEN
    newcomer = await clinic.guest(rotated.guest_link, "New")
    assert (await clinic.enter(room_id, newcomer, "conn/new"))["participants"][0]["name"] == "New"
    # Only an administrator of the unit rotates.
    with pytest.raises(Refusal) as not_admin:
        await clinic.ask(RotateGuestLink(clinic.member, room.id))
    assert not_admin.value.code == refusals.FORBIDDEN
    entries = await audit.list_entries(clinic.store, action=audit.MEETING_LINK_ROTATED)
    assert [e.subject for e in entries] == [room_id]


async def test_the_call_ends_when_the_last_person_leaves_and_the_room_stays(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    guest = await clinic.guest(room.guest_link, "Visitor")
    await clinic.enter(view.room_id, guest, "conn/visitor")
    record = await calls.active_call_for_room(clinic.store, view.room_id)
    assert record is not None

    await clinic.leave(view.room_id, clinic.member, "conn/member")
    await clinic.leave(view.room_id, guest, "conn/visitor")
    await _gone(clinic.registry, addresses.room(view.room_id))
    assert await calls.active_call_for_room(clinic.store, view.room_id) is None
    assert (await calls.get_call(clinic.store, record.id)).ended_at is not None
    actions = [
        e.action for e in await audit.list_entries(clinic.store) if e.subject == view.room_id
    ]
    assert actions.count(audit.MEETING_ENTERED) == 2
    assert audit.MEETING_CALL_STARTED in actions and audit.MEETING_CALL_ENDED in actions

    # The room stays: the next meeting is a new call in the same room.
    again = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    assert again.room_id == view.room_id
    await clinic.enter(view.room_id, clinic.member, "conn/member-2")
    second = await calls.active_call_for_room(clinic.store, view.room_id)
    assert second is not None and second.id != record.id


async def test_a_call_nobody_comes_to_stops_after_the_wait(
    clinic: Clinic, autojump_clock: trio.testing.MockClock
) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    address = addresses.room(view.room_id)
    await trio.sleep(EXPECT_WINDOW / 2)
    assert address in clinic.registry
    await trio.sleep(EXPECT_WINDOW)
    assert address not in clinic.registry
    assert await calls.active_call_for_room(clinic.store, view.room_id) is None


async def test_archived_rooms_and_other_organisations_rooms_are_refused(clinic: Clinic) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")

    other_org = await orgs.create_organisation(clinic.store, "Elsewhere")
    other_unit = await orgs.create_unit(clinic.store, other_org.id, "Far Clinic")
    stranger = await clinic.staff("far", ("org_admin", "org", other_org.id))
    with pytest.raises(Refusal) as theirs:
        await clinic.ask(EnterMeetingRoom(stranger, room.id))
    assert theirs.value.code == refusals.NOT_FOUND
    for message in (
        RenameMeetingRoom(stranger, room.id, "Mine"),
        ArchiveMeetingRoom(stranger, room.id),
        RotateGuestLink(stranger, room.id),
        CreateMeetingRoom(clinic.admin, other_unit.id, "Intruder"),
    ):
        with pytest.raises(Refusal) as refused:
            await clinic.ask(message)
        assert refused.value.code == refusals.FORBIDDEN
    assert (await store_rooms.get_meeting_room(clinic.store, room.id)).name == "Huddle"

    # Archiving ends the meeting in progress, and the room admits nobody afterwards.
    await clinic.ask(ArchiveMeetingRoom(clinic.admin, room.id))
    await _gone(clinic.registry, addresses.room(view.room_id))
    with pytest.raises(Refusal) as archived:
        await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    assert archived.value.code == refusals.CLOSED
    with pytest.raises(Refusal) as link_gone:
        await clinic.ask(GuestEnter(room.guest_link, "Late"))
    assert link_gone.value.code == refusals.INVALID_TOKEN
    assert await clinic.ask(MeetingRoomsFor(clinic.member)) == ()


async def test_renaming_is_checked_and_audited(clinic: Clinic) -> None:
    room = await clinic.meeting()
    await clinic.meeting("Case conference")
    with pytest.raises(Refusal) as taken:
        await clinic.ask(RenameMeetingRoom(clinic.admin, room.id, "Case conference"))
    assert taken.value.code == refusals.INVALID
    with pytest.raises(Refusal) as empty:
        await clinic.ask(RenameMeetingRoom(clinic.admin, room.id, "   "))
    assert empty.value.code == refusals.INVALID
    renamed = await clinic.ask(RenameMeetingRoom(clinic.admin, room.id, "Team room"))
    assert renamed.name == "Team room"
    entries = await audit.list_entries(clinic.store, action=audit.MEETING_ROOM_RENAMED)
    assert len(entries) == 1 and entries[0].details["old_name"] == "Huddle"
    created = await audit.list_entries(clinic.store, action=audit.MEETING_ROOM_CREATED)
    assert len(created) == 2


async def test_a_user_room_admits_its_owner_and_the_guests_they_invite_only(
    clinic: Clinic,
) -> None:
    owner = clinic.member
    entry = await clinic.ask(CreateUserRoom(clinic.admin, clinic.unit_id, int(str(owner.user_id))))
    assert entry.name == "Dr Demo Provider"
    with pytest.raises(Refusal) as twice:
        await clinic.ask(CreateUserRoom(clinic.admin, clinic.unit_id, int(str(owner.user_id))))
    assert twice.value.code == refusals.INVALID
    mine = await clinic.ask(UserRoomFor(owner))
    assert mine is not None and mine.room_id == entry.room_id and not mine.in_use

    colleague = await clinic.staff(
        "colleague",
        ("provider", "unit", clinic.unit_id),
        ("meeting_member", "unit", clinic.unit_id),
    )
    with pytest.raises(Refusal) as no_room:
        await clinic.ask(EnterUserRoom(colleague))
    assert no_room.value.code == refusals.NOT_FOUND
    await clinic.ask(EnterUserRoom(owner))
    await clinic.enter(entry.room_id, owner, "conn/owner")
    with pytest.raises(Refusal) as not_owner:
        await clinic.enter(entry.room_id, colleague, "conn/colleague")
    assert not_owner.value.code == refusals.FORBIDDEN

    invite = await clinic.send(entry.room_id, owner, "conn/owner", "call.invite", label="Kim")
    secret = invite["url"].split(".", 1)[1]
    address = addresses.room(entry.room_id)
    claimed: GuestPass = await clinic.registry.ref(address).ask(ClaimInvite(secret, "Kim"))
    with pytest.raises(Refusal) as used:
        await clinic.registry.ref(address).ask(ClaimInvite(secret, "Kim again"))
    assert used.value.code == refusals.INVALID_TOKEN
    kim = await clinic.registry.ref(address).ask(RedeemToken(claimed.token.split(".", 1)[1]))
    await clinic.enter(entry.room_id, kim, "conn/kim")
    occupied = await clinic.ask(UserRoomFor(owner))
    assert occupied.people == ("Dr Demo Provider", "Kim")
    with pytest.raises(Refusal) as guests_do_not_invite:
        await clinic.send(entry.room_id, kim, "conn/kim", "call.invite")
    assert guests_do_not_invite.value.code == refusals.FORBIDDEN

    # The owner ends the call: the room stays, the guest's token is gone with the call.
    await clinic.send(entry.room_id, owner, "conn/owner", "call.end")
    await _gone(clinic.registry, address)
    assert (await store_rooms.get_user_room(clinic.store, entry.room_id)).archived is False
    await clinic.ask(EnterUserRoom(owner))
    with pytest.raises(Refusal) as kim_out:
        await clinic.registry.ref(address).ask(RedeemToken(claimed.token.split(".", 1)[1]))
    assert kim_out.value.code == refusals.INVALID_TOKEN
    assert len(await audit.list_entries(clinic.store, action=audit.USER_ROOM_CALL_ENDED)) == 1


async def test_consoles_watching_see_who_comes_and_goes_in_the_rooms_they_may_enter(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    seen, unseen = Pushes(), Pushes()
    await clinic.root.start_child(ChildSpec("conn/console", lambda: Inbox(seen)))
    await clinic.root.start_child(ChildSpec("conn/other", lambda: Inbox(unseen)))
    outsider = await clinic.staff("outsider", ("provider", "unit", clinic.unit_id))
    meetings = clinic.registry.ref(addresses.MEETINGS)
    first = await meetings.ask(Inbound("meetings.watch", {}, clinic.member, "conn/console"))
    assert first == {"rooms": [{"id": room.id, "people": []}], "user_room": None}
    none = await meetings.ask(Inbound("meetings.watch", {}, outsider, "conn/other"))
    assert none == {"rooms": [], "user_room": None}

    def occupancy(people: list[str]) -> Callable[[Push], bool]:
        return lambda p: (
            p.type == "meetings.occupancy"
            and p.body
            == {
                "id": room.id,
                "people": people,
            }
        )

    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    guest = await clinic.guest(room.guest_link, "Kim")
    await clinic.enter(view.room_id, guest, "conn/kim")
    with trio.fail_after(5):
        await seen.wait_for(occupancy(["Dr Demo Provider", "Kim"]))
    await clinic.leave(view.room_id, guest, "conn/kim")
    await clinic.leave(view.room_id, clinic.member, "conn/member")
    with trio.fail_after(5):
        await seen.wait_for(occupancy([]))
    assert not [p for p in unseen if p.type == "meetings.occupancy"]
    with pytest.raises(Refusal) as unknown:
        await meetings.ask(Inbound("meetings.nonsense", {}, clinic.member, "conn/console"))
    assert unknown.value.code == refusals.UNKNOWN_TYPE


async def test_a_call_record_left_open_by_a_stop_is_ended_when_the_room_starts_again(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    entry = await store_rooms.get_meeting_room(clinic.store, room.id)
    stale = await calls.start_call(clinic.store, entry.room_id)  # as a crashed call leaves it
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    assert (await calls.get_call(clinic.store, stale.id)).ended_at is not None
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    fresh = await calls.active_call_for_room(clinic.store, view.room_id)
    assert fresh is not None and fresh.id != stale.id


async def test_guests_given_a_token_count_until_they_come_or_the_wait_is_over(
    clinic: Clinic, autojump_clock: trio.testing.MockClock
) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    for n in range(MAX_PARTICIPANTS - 1):  # five tokens handed out, nobody connected yet
        await clinic.ask(GuestEnter(room.guest_link, f"G{n}"))
    with pytest.raises(Refusal) as full:
        await clinic.ask(GuestEnter(room.guest_link, "Seventh"))
    assert full.value.code == refusals.CALL_FULL
    await trio.sleep(EXPECT_WINDOW + 1)  # they never came: their places are free again
    await clinic.enter(view.room_id, await clinic.guest(room.guest_link, "Late"), "conn/late")


def _meetings_supervisor(clinic: Clinic) -> Supervisor:
    supervisor = getattr(clinic.root.instance(addresses.MEETINGS), "supervisor", None)
    assert isinstance(supervisor, Supervisor)
    return supervisor


async def test_a_meeting_call_whose_node_died_starts_again_once_and_its_member_is_back(
    clinic: Clinic,
) -> None:
    """``StartAgain`` (what a cluster node asks when a message for the call finds no owner):
    the host starts the call again from the store under its own supervisor; a second ask
    finds it running and starts no second copy; the member's gateway enters it again."""
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    address = addresses.room(view.room_id)
    supervisor = _meetings_supervisor(clinic)
    # As the call's node dying leaves it: the actor gone, nothing ended, its record still open.
    await supervisor.stop_child(address)
    await _gone(clinic.registry, address)
    assert await calls.active_call_for_room(clinic.store, view.room_id) is not None

    async with trio.open_nursery() as both:  # two messages for it at once: one copy
        for _ in range(2):
            both.start_soon(clinic.ask, StartAgain(view.room_id))
    first = supervisor.instance(address)
    assert first is not None and supervisor.children().count(address) == 1
    await clinic.ask(StartAgain(view.room_id))
    assert supervisor.instance(address) is first

    entered = await clinic.registry.ref(address).ask(
        Inbound("room.enter", {}, clinic.member, "conn/member", again=True)
    )
    assert entered["state"] == "in_call" and entered["meeting"] == "Huddle"
    await clinic.send(view.room_id, clinic.member, "conn/member", "chat.send", text="back")


async def test_a_meeting_call_that_ended_or_an_unknown_room_is_not_started_again(
    clinic: Clinic,
) -> None:
    room = await clinic.meeting()
    view = await clinic.ask(EnterMeetingRoom(clinic.member, room.id))
    await clinic.enter(view.room_id, clinic.member, "conn/member")
    address = addresses.room(view.room_id)
    await clinic.leave(view.room_id, clinic.member, "conn/member")  # the last one out: it ends
    await _gone(clinic.registry, address)
    for room_id, code in ((view.room_id, refusals.CLOSED), ("nope", refusals.NOT_FOUND)):
        with pytest.raises(Refusal) as refused:
            await clinic.ask(StartAgain(room_id))
        assert refused.value.code == code
    assert address not in clinic.registry
