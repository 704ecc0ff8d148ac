"""Group consultations (issue 12) on Trio's virtual clock: the desk creates a session and starts
its call; arrivals wait in the group waiting area, invisible to each other, until the moderator
admits them (one, several, all; never a 61st); sending back, removing, locking, mute requests,
raised hands, private chat under the privacy options, the four-hour end with its warnings, and
participants' attempts at moderator frames refused with nothing changed.

The whole actor tree over a real SQLite store with the demo clinic, as the server runs it; the
desk under test runs on the same virtual clock as its timers. Connections are :class:`Inbox`
actors that record what they are pushed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import addresses, refusals
from actors.admin.reports import ReportFor
from actors.boot import start_actors
from actors.group.breakouts import breakout_factory
from actors.group.desk import GroupDesk
from actors.group.messages import (
    MAX_SECONDS,
    ArriveGroup,
    CancelGroupSession,
    CheckGroupLink,
    CreateGroupSession,
    GroupPass,
    GroupSessionDetail,
    GroupSessionsFor,
    Privacy,
    Registrant,
    RotateGroupLink,
    SendGroupLink,
    SessionDetail,
)
from actors.inbound import Inbound, Push, RedeemToken
from actors.messages import StartAgain
from actors.principal import Grant, Principal, Role, Scope
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, seed, staff
from storage import group_sessions as groups
from storage import outbox as outbox_store
from storage.db import Store, open_store
from tests.actors.inbox import Inbox, Pushes

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def virtual_now() -> datetime:
    """Wall time that moves with the virtual clock, so storage's times and the timers agree."""
    return T0 + timedelta(seconds=trio.current_time())


@dataclass
class Person:
    principal: Principal
    conn: str
    pushes: Pushes
    member: str = ""
    #: The participant token's secret part (staff have none).
    secret: str = ""

    def last(self, kind: str) -> Push:
        return next(p for p in reversed(self.pushes) if p.type == kind)

    def kinds(self) -> list[str]:
        return [p.type for p in self.pushes]


@dataclass
class World:
    store: Store
    registry: Registry
    root: Supervisor
    org_id: int
    unit_id: int
    area_id: int
    moderator: Principal
    _conns: int = 0
    sockets: dict[str, Pushes] = field(default_factory=dict)

    def ref(self, address: str = addresses.GROUP) -> Any:
        return self.registry.ref(address)

    async def create(self, **changes: Any) -> SessionDetail:
        message = CreateGroupSession(
            changes.pop("principal", self.moderator),
            changes.pop("unit_id", self.unit_id),
            changes.pop("title", "Living well with pain"),
            changes.pop("starts_at", T0),
            **changes,
        )
        detail: SessionDetail = await self.ref().ask(message)
        return detail

    async def socket(self) -> tuple[str, Pushes]:
        self._conns += 1
        conn = f"conn/{self._conns}"
        events = Pushes()
        await self.root.start_child(ChildSpec(conn, lambda: Inbox(events)))
        return conn, events

    async def arrive(self, detail: SessionDetail, name: str) -> Person:
        ticket: GroupPass = await self.ref().ask(ArriveGroup(detail.link, name))
        room, _, secret = ticket.token.partition(".")
        principal: Principal = await self.ref(addresses.room(room)).ask(RedeemToken(secret))
        conn, pushes = await self.socket()
        return Person(principal, conn, pushes, f"p-{ticket.participant_id}", secret)

    async def staff_socket(self, principal: Principal) -> Person:
        conn, pushes = await self.socket()
        return Person(principal, conn, pushes, f"s-{principal.user_id}")

    async def send(
        self, detail: SessionDetail, person: Person, kind: str, body: dict[str, Any] | None = None
    ) -> Any:
        room = addresses.room(detail.summary.room_id)
        try:
            return await self.ref(room).ask(
                Inbound(kind, body or {}, person.principal, person.conn)
            )
        finally:
            # Pushes are told, not asked: let every connection take what it was sent.
            await trio.testing.wait_all_tasks_blocked()

    async def refused(
        self, detail: SessionDetail, person: Person, kind: str, body: dict[str, Any] | None = None
    ) -> str:
        with pytest.raises(Refusal) as refusal:
            await self.send(detail, person, kind, body)
        return refusal.value.code

    async def actions(self) -> list[str]:
        return [
            e.action for e in await audit.list_entries(self.store) if e.action.startswith("group.")
        ]


def staff_of(user_id: int, org_id: int, area_id: int, name: str = "Dr Demo") -> Principal:
    grant = Grant(Role.PROVIDER, Scope.AREA, str(area_id))
    return Principal(
        "staff", name, user_id=str(user_id), org_id=str(org_id), grants=frozenset({grant})
    )


def desk_on(store: Store, rooms: Supervisor) -> GroupDesk:
    """The desk under test: on the virtual clock, with the real breakout desks."""
    return GroupDesk(store, rooms, breakouts=breakout_factory(store, rooms, None), now=virtual_now)


@pytest.fixture
async def world(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[World]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        area_id = demo.areas[0].id
        # The desk under test runs on the virtual clock (start_actors' one on the real one).
        await root.stop_child(addresses.GROUP)
        rooms = getattr(root.instance(addresses.ROOMS), "supervisor", None)
        assert isinstance(rooms, Supervisor)
        await root.start_child(ChildSpec(addresses.GROUP, lambda: desk_on(store, rooms)))
        yield World(
            store,
            registry,
            root,
            demo.org_id,
            demo.unit_id,
            area_id,
            staff_of(demo.provider_user_id, demo.org_id, area_id),
        )
        nursery.cancel_scope.cancel()


async def running(world: World, **changes: Any) -> tuple[SessionDetail, Person]:
    """A session whose moderator has entered (so it has started)."""
    detail = await world.create(**changes)
    moderator = await world.staff_socket(world.moderator)
    view = await world.send(detail, moderator, "room.enter")
    assert view["state"] == "in_call" and view["kind"] == "group" and view["lobby"] == []
    return detail, moderator


async def waiting(world: World, detail: SessionDetail, name: str) -> Person:
    person = await world.arrive(detail, name)
    view = await world.send(detail, person, "room.enter")
    assert view["state"] == "waiting" and view["participants"] == []
    assert view["member"] == person.member
    return person


async def test_create_list_detail_and_the_link(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create(
        capacity=12, registrants=(Registrant("Ann Smith", "ann@example.org"),)
    )
    assert detail.summary.capacity == 12 and detail.summary.state == "scheduled"
    assert detail.summary.moderating and len(detail.link) >= 20
    assert [m.user_id for m in detail.moderators] == [int(world.moderator.user_id or 0)]
    assert [r.name for r in detail.registrations] == ["Ann Smith"]
    listed = await world.ref().ask(GroupSessionsFor(world.moderator))
    assert [s.id for s in listed] == [detail.summary.id]
    status = await world.ref().ask(CheckGroupLink(detail.link))
    assert status.state == "scheduled" and status.title == "Living well with pain"
    assert (await world.ref().ask(CheckGroupLink("nope"))).state == "unknown"
    assert (await world.ref().ask(CheckGroupLink("../../x"))).state == "unknown"
    # The call exists from creation: arrivals can wait before the moderator comes.
    assert addresses.room(detail.summary.room_id) in world.registry

    rotated = await world.ref().ask(RotateGroupLink(world.moderator, detail.summary.id))
    assert rotated.link != detail.link
    with pytest.raises(Refusal) as old:
        await world.ref().ask(ArriveGroup(detail.link, "Late"))
    assert old.value.code == refusals.INVALID_TOKEN

    for bad in (
        {"capacity": 61},
        {"capacity": 0},
        {"title": "  "},
        {"title": "x" * 121},
        {"starts_at": datetime(2026, 3, 2, 9, 0)},
        {"registrants": (Registrant(""),)},
    ):
        with pytest.raises(Refusal) as invalid:
            await world.create(**bad)
        assert invalid.value.code == refusals.INVALID, bad
    with pytest.raises(Refusal) as no_user:
        await world.create(moderator_ids=(99999,))
    assert no_user.value.code == refusals.NOT_FOUND
    assert await world.actions() == ["group.link_rotated", "group.created"]


async def test_another_organisations_ids_answer_like_unknown_ones(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create()
    stranger = Principal(
        "staff",
        "Stranger",
        user_id="777",
        org_id=str(world.org_id + 1),
        grants=frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, str(world.org_id + 1))}),
    )
    codes = []
    for session_id in (detail.summary.id, 424242):
        with pytest.raises(Refusal) as refusal:
            await world.ref().ask(GroupSessionDetail(stranger, session_id))
        codes.append(refusal.value.code)
    assert codes == [refusals.NOT_FOUND, refusals.NOT_FOUND]
    with pytest.raises(Refusal) as unit:
        await world.create(principal=stranger)
    assert unit.value.code == refusals.NOT_FOUND
    assert await world.ref().ask(GroupSessionsFor(stranger)) == ()
    person = await world.staff_socket(stranger)
    with pytest.raises(Refusal) as theirs:
        await world.send(detail, person, "room.enter")
    assert theirs.value.code == refusals.NOT_FOUND
    assert theirs.value.detail == f"room/{detail.summary.room_id} does not exist (any more)"
    # A provider of the organisation who is not a moderator sees nothing of it either.
    other = await staff.create_user(world.store, "other", "Dr Other", "x")
    colleague = staff_of(other.id, world.org_id, world.area_id, "Dr Other")
    with pytest.raises(Refusal) as forbidden:
        await world.ref().ask(GroupSessionDetail(colleague, detail.summary.id))
    assert forbidden.value.code == refusals.FORBIDDEN
    colleague_socket = await world.staff_socket(colleague)
    assert await world.refused(detail, colleague_socket, "room.enter") == refusals.FORBIDDEN


async def test_waiting_people_never_see_each_other_and_admission_one_several_all(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(
        world, registrants=(Registrant("Ann Smith"),), privacy=Privacy(first_names_only=True)
    )
    ann = await waiting(world, detail, "Ann Smith")
    bob = await waiting(world, detail, "Bob Jones")
    cat = await waiting(world, detail, "Cat Brown")
    dan = await waiting(world, detail, "Dan Green")
    lobby = moderator.last("group.lobby").body
    assert [w["id"] for w in lobby["waiting"]] == [ann.member, bob.member, cat.member, dan.member]
    assert [w["registered"] for w in lobby["waiting"]] == [True, False, False, False]
    assert lobby["admitted"] == 0 and lobby["capacity"] == 60
    # A waiting person hears nothing about anyone and can do nothing but wait (or leave).
    for person in (ann, bob, cat, dan):
        assert person.pushes == []
    assert await world.refused(detail, ann, "chat.send", {"text": "hi"}) == refusals.NOT_ADMITTED
    assert await world.refused(detail, ann, "media.offer", {"sdp": "v=0"}) == refusals.NOT_ADMITTED

    assert await world.send(detail, moderator, "group.admit", {"ids": [ann.member]}) == {
        "admitted": [ann.member]
    }
    admitted = ann.last("room.state").body
    assert admitted["state"] == "in_call" and admitted["member"] == ann.member
    assert "lobby" not in admitted and "hands" not in admitted
    names = {p["member"]: p["name"] for p in admitted["participants"]}
    assert names == {moderator.member: "Dr Demo", ann.member: "Ann"}
    for person in (bob, cat, dan):
        assert person.pushes == []  # still waiting, told nothing of Ann
    assert [w["id"] for w in moderator.last("group.lobby").body["waiting"]] == [
        bob.member,
        cat.member,
        dan.member,
    ]

    several = await world.send(detail, moderator, "group.admit", {"ids": [bob.member, cat.member]})
    assert several == {"admitted": [bob.member, cat.member]}
    assert bob.last("room.state").body["state"] == "in_call"
    assert dan.pushes == []
    everyone = await world.send(detail, moderator, "group.admit_all")
    assert everyone == {"admitted": [dan.member]}
    assert moderator.last("group.lobby").body == {"waiting": [], "admitted": 4, "capacity": 60}
    shown = {p["member"]: p["name"] for p in dan.last("room.state").body["participants"]}
    assert shown[bob.member] == "Bob" and shown[moderator.member] == "Dr Demo"
    assert await world.refused(detail, moderator, "group.admit", {"ids": ["p-nobody"]}) == (
        refusals.NOT_FOUND
    )
    # An admitted participant who reloads comes straight back in.
    conn, pushes = await world.socket()
    again = Person(ann.principal, conn, pushes, ann.member)
    assert (await world.send(detail, again, "room.enter"))["state"] == "in_call"
    actions = await world.actions()
    assert actions.count("group.admitted") == 3 and actions.count("group.arrived") == 4
    assert "group.started" in actions


async def test_the_61st_is_refused_and_stays_waiting(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    people = [await waiting(world, detail, f"Person {n}") for n in range(61)]
    # All at once does not fit: nobody is admitted.
    assert await world.refused(detail, moderator, "group.admit_all") == refusals.GROUP_FULL
    assert all(p.pushes == [] for p in people)
    first_60 = [p.member for p in people[:60]]
    assert (await world.send(detail, moderator, "group.admit", {"ids": first_60}))[
        "admitted"
    ] == first_60
    with pytest.raises(Refusal) as full:
        await world.send(detail, moderator, "group.admit", {"ids": [people[60].member]})
    assert full.value.code == refusals.GROUP_FULL and "0 places left" in full.value.detail
    assert people[60].pushes == []
    lobby = moderator.last("group.lobby").body
    assert [w["id"] for w in lobby["waiting"]] == [people[60].member] and lobby["admitted"] == 60
    stored = await groups.list_participants(world.store, detail.summary.id)
    assert sum(p.admitted for p in stored) == 60
    # Sending one back frees a place for the 61st.
    await world.send(detail, moderator, "group.send_back", {"id": people[0].member})
    await world.send(detail, moderator, "group.admit", {"ids": [people[60].member]})
    assert people[60].last("room.state").body["state"] == "in_call"


async def test_send_back_remove_and_lock(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    bob = await waiting(world, detail, "Bob")
    early = await world.arrive(detail, "Early")  # has the link's token, not in the room yet
    await world.send(detail, moderator, "group.admit_all")

    await world.send(detail, moderator, "group.send_back", {"id": ann.member})
    back = ann.last("room.state").body
    assert back["state"] == "waiting" and back["reason"] == "sent_back"
    waiting_now = moderator.last("group.lobby").body["waiting"]
    assert [(w["id"], w["returned"]) for w in waiting_now] == [(ann.member, True)]
    members = [p["member"] for p in bob.last("room.participants").body["participants"]]
    assert ann.member not in members
    assert await world.refused(detail, ann, "chat.send", {"text": "x"}) == refusals.NOT_ADMITTED
    assert await world.refused(detail, moderator, "group.send_back", {"id": ann.member}) == (
        refusals.NOT_FOUND
    )

    await world.send(detail, moderator, "group.remove", {"id": bob.member})
    gone = bob.last("room.state").body
    assert gone["state"] == "ended" and gone["reason"] == "removed"
    stored = await groups.get_participant(world.store, bob.principal.participant_id or "")
    assert stored.removed_at is not None and not stored.admitted
    with pytest.raises(Refusal) as token:  # the removed participant's token opens nothing
        await world.ref(addresses.room(detail.summary.room_id)).ask(RedeemToken(bob.secret))
    assert token.value.code == refusals.INVALID_TOKEN

    assert await world.send(detail, moderator, "group.lock", {"locked": True}) == {"locked": True}
    assert moderator.last("group.locked").body == {"locked": True}
    with pytest.raises(Refusal) as link:
        await world.ref().ask(ArriveGroup(detail.link, "Later"))
    assert link.value.code == refusals.GROUP_LOCKED
    assert (await world.ref().ask(CheckGroupLink(detail.link))).state == "locked"
    assert await world.refused(detail, early, "room.enter") == refusals.GROUP_LOCKED
    # Ann, who was here already, still waits and can still be let in.
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    assert ann.last("room.state").body["state"] == "in_call"
    await world.send(detail, moderator, "group.lock", {"locked": False})
    assert (await world.send(detail, early, "room.enter"))["state"] == "waiting"
    actions = await world.actions()
    for action in ("group.sent_back", "group.removed", "group.locked"):
        assert action in actions


async def test_mute_requests_camera_spotlight_and_hands_in_order(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    people = [await waiting(world, detail, name) for name in ("Ann", "Bob", "Cat")]
    ann, bob, cat = people
    await world.send(detail, moderator, "group.admit_all")

    await world.send(detail, moderator, "group.mute", {"id": bob.member})
    assert bob.last("group.mute").body == {"by": "Dr Demo"} and "group.mute" not in ann.kinds()
    assert await world.send(detail, moderator, "group.mute_all") == {"muted": 3}
    assert all("group.mute" in p.kinds() for p in people)
    assert "group.mute" not in moderator.kinds()
    await world.send(detail, moderator, "group.ask_unmute", {"id": cat.member})
    assert cat.last("group.unmute_request").body == {"by": "Dr Demo"}
    await world.send(detail, moderator, "group.camera_off", {"id": ann.member})
    assert ann.last("group.camera_off").body == {"by": "Dr Demo"}
    assert await world.refused(detail, moderator, "group.mute", {"id": "p-gone"}) == (
        refusals.NOT_FOUND
    )

    await world.send(detail, moderator, "group.spotlight", {"id": moderator.member})
    spot = cat.last("group.spotlight").body
    assert spot["id"] == moderator.member and spot["peers"] == [moderator.conn.replace("/", "-")]
    await world.send(detail, moderator, "group.spotlight", {"id": None})
    assert cat.last("group.spotlight").body == {"id": None, "peers": []}

    for person in (cat, ann, bob):
        assert await world.send(detail, person, "group.hand", {"raised": True}) == {"raised": True}
        await trio.sleep(1)
    hands = moderator.last("group.hands").body["hands"]
    assert [h["id"] for h in hands] == [cat.member, ann.member, bob.member]
    assert hands[0]["since"] < hands[1]["since"] < hands[2]["since"]
    await world.send(detail, ann, "group.hand", {"raised": False})
    await world.send(detail, moderator, "group.hand_lower", {"id": cat.member})
    assert cat.last("group.hand").body == {"raised": False}
    assert [h["id"] for h in moderator.last("group.hands").body["hands"]] == [bob.member]
    # A participant never gets the moderator's list of hands.
    assert all("group.hands" not in p.kinds() for p in people)


async def test_private_chat_follows_the_privacy_options(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(
        world, privacy=Privacy(first_names_only=True, no_private_chat=True)
    )
    ann = await waiting(world, detail, "Ann Smith")
    bob = await waiting(world, detail, "Bob Jones")
    await world.send(detail, moderator, "group.admit_all")
    body = {"to": bob.member, "text": "hello Bob"}
    assert await world.refused(detail, ann, "group.chat_private", body) == (
        refusals.PRIVATE_CHAT_OFF
    )
    assert "chat.private" not in bob.kinds()
    await world.send(detail, ann, "group.chat_private", {"to": moderator.member, "text": "help"})
    note = moderator.last("chat.private").body
    assert note["from"] == "Ann" and note["from_id"] == ann.member and note["text"] == "help"
    assert ann.last("chat.private").body["to"] == moderator.member  # the sender sees it too
    ann_had = ann.kinds().count("chat.private")
    await world.send(detail, moderator, "group.chat_private", {"to": bob.member, "text": "ok?"})
    assert bob.last("chat.private").body["from"] == "Dr Demo"
    assert ann.kinds().count("chat.private") == ann_had  # nobody else reads it
    # Chat to everyone shows first names to participants, full names to the moderator.
    await world.send(detail, bob, "chat.send", {"text": "hi all"})
    assert ann.last("chat.message").body["from"] == "Bob"
    assert moderator.last("chat.message").body["from"] == "Bob Jones"
    assert await world.refused(detail, ann, "group.chat_private", {"to": "s-999", "text": "x"}) == (
        refusals.NOT_FOUND
    )


async def test_a_hidden_list_shows_participants_only_themselves_and_the_moderator(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world, privacy=Privacy(hide_participant_list=True))
    ann = await waiting(world, detail, "Ann Smith")
    bob = await waiting(world, detail, "Bob Jones")
    await world.send(detail, moderator, "group.admit_all")
    entries = bob.last("room.state").body["participants"]
    named = {e.get("member"): e["name"] for e in entries}
    assert named == {moderator.member: "Dr Demo", bob.member: "Bob Jones", None: ""}
    assert ann.member not in str(bob.last("room.state").body)
    full = {
        p["member"]: p["name"] for p in moderator.last("room.participants").body["participants"]
    }
    assert full[ann.member] == "Ann Smith"
    body = {"to": ann.member, "text": "hi"}
    assert await world.refused(detail, bob, "group.chat_private", body) == (
        refusals.PRIVATE_CHAT_OFF
    )


async def test_participants_cannot_moderate_and_nothing_changes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    bob = await waiting(world, detail, "Bob")
    before_actions = await world.actions()
    before_lobby = moderator.last("group.lobby").body
    frames: list[tuple[str, dict[str, Any]]] = [
        ("group.admit", {"ids": [bob.member]}),
        ("group.admit_all", {}),
        ("group.send_back", {"id": ann.member}),
        ("group.remove", {"id": bob.member}),
        ("group.lock", {"locked": True}),
        ("group.mute", {"id": moderator.member}),
        ("group.mute_all", {}),
        ("group.camera_off", {"id": moderator.member}),
        ("group.spotlight", {"id": ann.member}),
        ("group.hand_lower", {"id": ann.member}),
        ("group.end", {}),
        ("call.end", {}),
    ]
    for kind, body in frames:
        assert await world.refused(detail, ann, kind, body) == refusals.NOT_MODERATOR, kind
        # A waiting participant's attempts are refused before anything is looked at.
        assert await world.refused(detail, bob, kind, body) == refusals.NOT_ADMITTED, kind
    assert await world.refused(detail, ann, "call.hold") == refusals.NO_HOLD
    assert await world.refused(detail, moderator, "call.invite") == refusals.FORBIDDEN
    # Breakout frames from a waiting participant never reach the breakout desk.
    assert await world.refused(detail, bob, "group.breakout.open", {}) == refusals.NOT_ADMITTED
    assert await world.actions() == before_actions
    assert moderator.last("group.lobby").body == before_lobby
    assert "group.mute" not in moderator.kinds()
    assert bob.pushes == []
    session = await groups.get_session(world.store, detail.summary.id)
    assert session.state == "running" and not session.locked


async def test_four_hours_at_most_with_warnings_at_15_and_5_minutes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    late = await waiting(world, detail, "Late")  # still waiting: warned and let go too
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    start = trio.current_time()
    first = await ann.pushes.wait_for(lambda p: p.type == "group.ending")
    assert first.body == {"in_seconds": 15 * 60}
    assert trio.current_time() - start == pytest.approx(MAX_SECONDS - 15 * 60, abs=1)
    second = await ann.pushes.wait_for(
        lambda p: p.type == "group.ending" and p.body["in_seconds"] == 5 * 60
    )
    assert second is not None
    assert trio.current_time() - start == pytest.approx(MAX_SECONDS - 5 * 60, abs=1)
    assert [p.body for p in late.pushes if p.type == "group.ending"] == [
        {"in_seconds": 900},
        {"in_seconds": 300},
    ]
    ended = await moderator.pushes.wait_for(
        lambda p: p.type == "room.state" and p.body["state"] == "ended"
    )
    assert ended.body["reason"] == "time_limit"
    assert trio.current_time() - start == pytest.approx(MAX_SECONDS, abs=1)
    await late.pushes.wait_for(lambda p: p.type == "room.state" and p.body["state"] == "ended")
    session = await groups.get_session(world.store, detail.summary.id)
    assert session.state == "ended" and session.end_reason == "time_limit"
    assert session.ended_at is not None and session.started_at is not None
    assert (session.ended_at - session.started_at).total_seconds() == pytest.approx(
        MAX_SECONDS, abs=2
    )
    assert addresses.room(detail.summary.room_id) not in world.registry
    with pytest.raises(Refusal) as over:
        await world.ref().ask(ArriveGroup(detail.link, "After"))
    assert over.value.code == refusals.ENDED
    stored = await groups.get_participant(world.store, ann.principal.participant_id or "")
    assert stored.seconds_present == pytest.approx(MAX_SECONDS, abs=5)
    assert "group.ended" in await world.actions()


async def test_the_moderator_ends_it_for_everyone_and_a_cancel_before_it_starts(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    await world.send(detail, moderator, "group.admit_all")
    assert await world.send(detail, moderator, "group.end") == {}
    assert ann.last("room.state").body == {
        "state": "ended",
        "reason": "ended",
        "room": detail.summary.room_id,
    }
    entries = [e for e in await audit.list_entries(world.store) if e.action == "group.ended"]
    assert entries[0].actor_user_id == int(world.moderator.user_id or 0)

    later = await world.create(title="Next week")
    cancelled = await world.ref().ask(CancelGroupSession(world.moderator, later.summary.id))
    assert cancelled.summary.state == "ended" and cancelled.end_reason == "cancelled"
    assert (await world.ref().ask(CheckGroupLink(later.link))).state == "ended"
    assert addresses.room(later.summary.room_id) not in world.registry


async def test_the_usage_report_counts_sessions_participants_and_their_minutes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    bob = await waiting(world, detail, "Bob")
    await waiting(world, detail, "Never admitted")
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member, bob.member]})
    await trio.sleep(600)
    await world.send(detail, bob, "room.leave")
    await trio.sleep(600)
    await world.send(detail, moderator, "group.end")
    admin = Principal(
        "staff",
        "Admin",
        user_id="1",
        org_id=str(world.org_id),
        grants=frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, str(world.org_id))}),
    )
    figures = await world.ref(addresses.ADMIN).ask(
        ReportFor(
            admin,
            world.area_id,
            T0 - timedelta(days=1),
            datetime.now(UTC) + timedelta(days=1),
        )
    )
    group = figures.group
    assert group.sessions == 1 and group.participants == 2
    assert group.session_duration.longest == pytest.approx(1200, abs=2)
    assert group.participant_duration.longest == pytest.approx(1200, abs=2)
    assert group.participant_duration.count == 2
    assert dict(figures.calls_by_kind)["group"] == 1


async def test_breakout_frames_go_to_the_breakout_desk_and_people_in_rooms_leave_the_main_media(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    people = [await waiting(world, detail, name) for name in ("Ann", "Bob", "Cat", "Dan")]
    await world.send(detail, moderator, "group.admit_all")
    ann = people[0]
    before = await world.actions()
    # A participant's moderator frames are refused by the breakout desk; nothing opens.
    for kind, body in (
        ("group.breakout.create", {"count": 2}),
        ("group.breakout.open", {"duration": 600}),
        ("group.breakout.move", {"id": people[1].member, "room": None}),
        ("group.breakout.close", {}),
    ):
        assert await world.refused(detail, ann, kind, body) == refusals.NOT_MODERATOR, kind
    assert (await world.send(detail, ann, "group.breakout.state"))["phase"] == "none"
    assert await world.actions() == before

    await world.send(detail, moderator, "group.breakout.create", {"count": 2})
    await world.send(detail, moderator, "group.breakout.assign", {"mode": "random"})
    await world.send(detail, moderator, "group.breakout.open", {"duration": 600})
    moves = [p.last("group.breakout.move").body for p in people]
    assert all(m["token"].startswith(m["address"].split("/", 1)[1] + ".") for m in moves)
    assert len({m["room"] for m in moves}) == 2
    # The main call shows the moderator who is in which room, and keeps their media out.
    listed = {
        p["member"]: p["breakout"]
        for p in moderator.last("room.participants").body["participants"]
        if not p["moderator"]
    }
    assert all(place is not None for place in listed.values())
    assert await world.refused(detail, ann, "media.offer", {"sdp": "v=0"}) == refusals.FORBIDDEN

    await world.send(detail, moderator, "group.breakout.close")
    await trio.sleep(61)
    await trio.testing.wait_all_tasks_blocked()
    assert all("group.breakout.back" in p.kinds() for p in people)
    listed = {
        p["member"]: p["breakout"]
        for p in moderator.last("room.participants").body["participants"]
        if not p["moderator"]
    }
    assert set(listed.values()) == {None}
    actions = await world.actions()
    assert "group.breakout_opened" in actions and "group.breakout_closed" in actions


async def test_a_session_nobody_starts_ends_a_day_after_its_planned_start(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create(starts_at=T0 + timedelta(hours=2))
    ann = await waiting(world, detail, "Ann")
    await trio.sleep(2 * 3600 + 24 * 3600 - 1)
    assert addresses.room(detail.summary.room_id) in world.registry
    ended = await ann.pushes.wait_for(lambda p: p.type == "room.state")
    assert ended.body["state"] == "ended" and ended.body["reason"] == "not_started"
    session = await groups.get_session(world.store, detail.summary.id)
    assert session.state == "ended" and session.started_at is None
    assert addresses.room(detail.summary.room_id) not in world.registry


async def test_after_a_restart_the_admitted_come_straight_back_and_four_hours_still_hold(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann")
    bob = await waiting(world, detail, "Bob")
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    await trio.sleep(3600)
    # The server goes down and up: the call and the desk are gone, storage stays.
    rooms = getattr(world.root.instance(addresses.ROOMS), "supervisor", None)
    assert isinstance(rooms, Supervisor)
    await rooms.stop_child(addresses.room(detail.summary.room_id))
    await world.root.stop_child(addresses.GROUP)
    await world.root.start_child(ChildSpec(addresses.GROUP, lambda: desk_on(world.store, rooms)))
    conn, pushes = await world.socket()
    again = Person(ann.principal, conn, pushes, ann.member)
    assert (await world.send(detail, again, "room.enter"))["state"] == "in_call"
    conn, pushes = await world.socket()
    bob_again = Person(bob.principal, conn, pushes, bob.member)
    assert (await world.send(detail, bob_again, "room.enter"))["state"] == "waiting"
    warned = await again.pushes.wait_for(lambda p: p.type == "group.ending")
    assert warned.body == {"in_seconds": 900}
    assert trio.current_time() == pytest.approx(MAX_SECONDS - 900, abs=2)
    await again.pushes.wait_for(lambda p: p.type == "room.state" and p.body["state"] == "ended")
    assert trio.current_time() == pytest.approx(MAX_SECONDS, abs=2)
    assert (await groups.get_session(world.store, detail.summary.id)).end_reason == "time_limit"


async def test_share_link_sends_the_sessions_link_through_the_outbox(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create()
    body = f"Join the group: https://video.example.org/g/{detail.link}"

    def share(to: str, channel: str = "sms", text: str = body) -> SendGroupLink:
        return SendGroupLink(world.moderator, detail.summary.id, channel, to, "Group", text)

    for bad in (share("not a number"), share("nobody@", "email"), share("+447700900123", "fax")):
        with pytest.raises(Refusal) as invalid:
            await world.ref().ask(bad)
        assert invalid.value.code == refusals.INVALID
    with pytest.raises(Refusal) as no_link:
        await world.ref().ask(share("+447700900123", text="Join us"))
    assert no_link.value.code == refusals.INVALID
    assert await outbox_store.list_messages(world.store) == []

    await world.ref().ask(share("+44 7700 900123"))
    (message,) = await outbox_store.list_messages(world.store)
    assert message.recipient == "+447700900123" and detail.link in message.body
    (entry,) = [e for e in await audit.list_entries(world.store) if e.action == "group.link_sent"]
    assert entry.details == {"channel": "sms", "to": "•••123"}
    assert detail.link not in str(entry.details)


async def test_two_tabs_wait_as_one_person_and_leaving_the_waiting_area_takes_them_off_the_list(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create()
    ann = await waiting(world, detail, "Ann")
    conn, pushes = await world.socket()
    ann_tab = Person(ann.principal, conn, pushes, ann.member)
    assert (await world.send(detail, ann_tab, "room.enter"))["state"] == "waiting"
    bob = await waiting(world, detail, "Bob")
    # The moderator comes later and finds them waiting, each person once.
    moderator = await world.staff_socket(world.moderator)
    view = await world.send(detail, moderator, "room.enter")
    assert [w["id"] for w in view["lobby"]] == [ann.member, bob.member]
    assert await world.send(detail, bob, "room.leave") == {}
    assert [w["id"] for w in moderator.last("group.lobby").body["waiting"]] == [ann.member]
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    assert ann.last("room.state").body["state"] == "in_call"
    assert ann_tab.last("room.state").body["state"] == "in_call"
    assert moderator.last("group.lobby").body["admitted"] == 1
    people = [p["member"] for p in moderator.last("room.participants").body["participants"]]
    assert people.count(ann.member) == 2  # two tabs, one person: one place of the capacity
    await world.send(detail, moderator, "group.spotlight", {"id": ann.member})
    assert len(moderator.last("group.spotlight").body["peers"]) == 2
    await world.send(detail, ann, "room.leave")
    assert moderator.last("group.spotlight").body["id"] == ann.member  # one tab still in
    await world.send(detail, ann_tab, "room.leave")
    assert moderator.last("group.spotlight").body == {"id": None, "peers": []}


async def test_arrivals_are_checked_at_the_link(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail = await world.create()
    for name, contact in (("", ""), ("   ", ""), ("x" * 81, ""), ("Ann", "y" * 255)):
        with pytest.raises(Refusal) as invalid:
            await world.ref().ask(ArriveGroup(detail.link, name, contact))
        assert invalid.value.code == refusals.INVALID
    for link in ("", "../../etc", "x" * 65, "nope"):
        with pytest.raises(Refusal) as unknown:
            await world.ref().ask(ArriveGroup(link, "Ann"))
        assert unknown.value.code == refusals.INVALID_TOKEN
    assert await groups.list_participants(world.store, detail.summary.id) == []
    ticket = await world.ref().ask(ArriveGroup(detail.link, "  Ann   Smith ", "ann@example.org"))
    (stored,) = await groups.list_participants(world.store, detail.summary.id)
    assert stored.id == ticket.participant_id and stored.name == "Ann Smith"
    assert ticket.title == detail.summary.title and ticket.room_id == detail.summary.room_id
    # The landing page follows the session: scheduled, running once a moderator is in, ended.
    moderator = await world.staff_socket(world.moderator)
    await world.send(detail, moderator, "room.enter")
    assert (await world.ref().ask(CheckGroupLink(detail.link))).state == "running"
    await world.send(detail, moderator, "group.end")
    assert (await world.ref().ask(CheckGroupLink(detail.link))).state == "ended"
    assert "group.arrived" in await world.actions()


def _calls(world: World) -> Supervisor:
    """The supervisor the desk starts its sessions' calls under (the room host's)."""
    calls = getattr(world.root.instance(addresses.ROOMS), "supervisor", None)
    assert isinstance(calls, Supervisor)
    return calls


async def _gone(world: World, address: str) -> None:
    with trio.fail_after(5):
        while address in world.registry:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_call_whose_node_died_starts_again_once_running_with_its_admitted_people(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """``StartAgain`` (a cluster node's message for the call found no owner): the desk starts
    the session's call again from the store under its supervisor, running, with whoever was
    admitted; asks at once and a later one start one copy; both gateways enter it again. The
    lobby was in the dead node's memory: someone waiting enters again and waits again."""
    detail, moderator = await running(world)
    ann = await waiting(world, detail, "Ann Smith")
    bob = await waiting(world, detail, "Bob Jones")
    await world.send(detail, moderator, "group.admit", {"ids": [ann.member]})
    await world.send(detail, ann, "chat.send", {"text": "before"})
    room_id = detail.summary.room_id
    address = addresses.room(room_id)
    calls = _calls(world)
    await calls.stop_child(address)  # as its node dying leaves it: nothing ended in the store
    await _gone(world, address)

    async with trio.open_nursery() as both:  # two messages for it at once: one copy
        for _ in range(2):
            both.start_soon(world.ref().ask, StartAgain(room_id))
    first = calls.instance(address)
    assert first is not None and calls.children().count(address) == 1
    await world.ref().ask(StartAgain(room_id))
    assert calls.instance(address) is first

    def again(person: Person) -> Inbound:
        return Inbound("room.enter", {}, person.principal, person.conn, again=True)

    entered = await world.ref(address).ask(again(moderator))
    assert entered["state"] == "in_call" and entered["kind"] == "group"
    assert entered["lobby"] == []  # Bob's place in the lobby died with the node
    back = await world.ref(address).ask(again(ann))
    assert back["state"] == "in_call" and back["member"] == ann.member
    assert (await world.ref(address).ask(again(bob)))["state"] == "waiting"
    await world.send(detail, ann, "chat.send", {"text": "after"})
    assert moderator.last("chat.message").body["text"] == "after"
    assert (await groups.get_session(world.store, detail.summary.id)).state == "running"


async def test_a_session_that_ended_or_an_unknown_room_is_not_started_again(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    detail, moderator = await running(world)
    address = addresses.room(detail.summary.room_id)
    await world.send(detail, moderator, "group.end")
    await _gone(world, address)
    for room_id, code in ((detail.summary.room_id, refusals.CLOSED), ("nope", refusals.NOT_FOUND)):
        with pytest.raises(Refusal) as refused:
            await world.ref().ask(StartAgain(room_id))
        assert refused.value.code == code
    assert address not in world.registry


async def test_a_breakout_room_whose_node_died_starts_again_with_its_desk_and_seats(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """``StartAgain`` for an open breakout room (no ``rooms`` row): the desk starts the
    session's call and its breakout desk again, which resumes every open room with the same
    ids; the token the page holds opens its room again. Once the rooms closed, nothing starts."""
    detail, moderator = await running(world)
    people = [await waiting(world, detail, name) for name in ("Ann", "Bob", "Cat", "Dan")]
    await world.send(detail, moderator, "group.admit_all")
    await world.send(detail, moderator, "group.breakout.create", {"count": 2})
    await world.send(detail, moderator, "group.breakout.assign", {"mode": "random"})
    view = await world.send(detail, moderator, "group.breakout.open", {"duration": 600})
    rooms = [room["address"] for room in view["rooms"]]
    ann = people[0]
    room_id, _, secret = ann.last("group.breakout.move").body["token"].partition(".")
    calls = _calls(world)
    main = addresses.room(detail.summary.room_id)
    desk = addresses.group_breakouts(detail.summary.id)
    for address in (desk, *rooms, main):  # as their node dying leaves them: nothing closed
        await calls.stop_child(address)
        await _gone(world, address)

    await world.ref().ask(StartAgain(room_id))
    assert all(a in world.registry for a in (main, desk, *rooms))
    principal = await world.ref(addresses.room(room_id)).ask(RedeemToken(secret))
    assert principal.participant_id == ann.member
    entered = await world.ref(addresses.room(room_id)).ask(
        Inbound("room.enter", {}, principal, ann.conn, again=True)
    )
    assert entered["kind"] == "breakout" and entered["ends_at"] == view["ends_at"]
    await world.ref(main).ask(  # the moderator's gateway enters the main call again
        Inbound("room.enter", {}, moderator.principal, moderator.conn, again=True)
    )
    state = await world.send(detail, moderator, "group.breakout.state")
    assert state["phase"] == "open" and [r["address"] for r in state["rooms"]] == rooms

    await world.send(detail, moderator, "group.breakout.close")
    await trio.sleep(61)
    for address in rooms:
        await _gone(world, address)
    with pytest.raises(Refusal) as refused:
        await world.ref().ask(StartAgain(room_id))
    assert refused.value.code == refusals.NOT_FOUND
    assert all(a not in world.registry for a in rooms)
