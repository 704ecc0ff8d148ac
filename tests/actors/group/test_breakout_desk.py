"""The breakout desk and its rooms' calls, as actors over a real SQLite store.

The group call is a stand-in (:class:`MainCall`) that records what the desk tells it; each
participant's sockets are :class:`Socket` actors that record pushes and closes. Every test whose
subject is time runs on Trio's virtual clock (``autojump_clock``): the 60 s countdown, the timer
ending the rooms, extending and shortening it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import addresses, refusals
from actors.group import breakouts
from actors.group.breakout_call import CLOSE_MOVED, KIND
from actors.group.breakout_plan import CLOSING_COUNTDOWN
from actors.group.breakouts import BreakoutDesk
from actors.group.messages import (
    BreakoutFrame,
    BreakoutSetup,
    GroupEnded,
    GroupMember,
    InBreakout,
    MembersChanged,
    Privacy,
    PushToMembers,
    participant_member,
)
from actors.inbound import CloseConnection, Inbound, Push, RedeemToken
from actors.principal import Principal
from runtime import ChildSpec, Refusal, Registry, Restart, Supervisor
from runtime.kernel import Actor, handles
from storage import audit, group_breakouts
from storage.db import Store, open_store
from tests.actors.calls.fakes import SlowMedia

SESSION = 4
MAIN = "main-room"
MODERATOR = Principal("staff", "Dr Moderator", user_id="7")
OTHER_STAFF = Principal("staff", "Dr Elsewhere", user_id="99")
#: Bounds every wait on the real clock; virtual-clock tests are bounded by the test itself.
TIMEOUT = 5.0


class Changes:
    """A list of what arrived, with a wait for the next one that matches."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._arrived = trio.Event()

    def add(self, item: object) -> None:
        self.items.append(item)
        self._arrived.set()
        self._arrived = trio.Event()

    async def wait_for(self, matches: Callable[[Any], bool]) -> Any:
        while True:
            found = next((item for item in self.items if matches(item)), None)
            if found is not None:
                return found
            await self._arrived.wait()


class CallMedia(SlowMedia):
    """Records under which media call id each peer was opened."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[tuple[str, str]] = []

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str:
        self.peers.append((call_id, peer_id))
        return await super().open_peer(call_id, peer_id, offer_sdp)


class MainCall(Actor):
    """Stands in for the group call: records every push and every move in or out of a room."""

    def __init__(self, told: Changes) -> None:
        super().__init__()
        self.told = told

    @handles(PushToMembers, InBreakout)
    async def _told(self, message: PushToMembers | InBreakout) -> None:
        self.told.add(message)


class Socket(Actor):
    """A participant's or moderator's websocket: records pushes and the close."""

    def __init__(self, got: Changes) -> None:
        super().__init__()
        self.got = got

    @handles(Push, CloseConnection)
    async def _got(self, message: Push | CloseConnection) -> None:
        self.got.add(message)


def person(n: int) -> tuple[GroupMember, Principal]:
    member = GroupMember(participant_member(str(n)), f"Person{n} Surname", f"Person{n}")
    return member, Principal("guest", member.display_name, room_id=MAIN, participant_id=str(n))


@dataclass
class Rig:
    registry: Registry
    root: Supervisor
    store: Store
    media: CallMedia
    told: Changes
    people: dict[str, Principal] = field(default_factory=dict)
    members: list[GroupMember] = field(default_factory=list)
    sockets: int = 0

    @property
    def desk(self) -> str:
        return addresses.group_breakouts(SESSION)

    def admit(self, count: int) -> list[str]:
        for n in range(len(self.members) + 1, len(self.members) + count + 1):
            member, principal = person(n)
            self.members.append(member)
            self.people[member.participant_id] = principal
        return [m.participant_id for m in self.members]

    async def start_desk(self) -> None:
        setup = BreakoutSetup(SESSION, MAIN, 1, 1, "Group", Privacy(), (7,))
        await self.root.start_child(
            ChildSpec(
                self.desk,
                lambda: BreakoutDesk(setup, self.store, self.root, self.media, random.Random(3)),
                Restart.TRANSIENT,
            )
        )

    async def mod(self, kind: str, **body: Any) -> Any:
        frame = Inbound(f"group.breakout.{kind}", body, MODERATOR, "conn/mod")
        return await self._ask(BreakoutFrame(frame, True, tuple(self.members)))

    async def part(self, member: str, kind: str, **body: Any) -> Any:
        frame = Inbound(f"group.breakout.{kind}", body, self.people[member], f"conn/{member}")
        return await self._ask(BreakoutFrame(frame, False, tuple(self.members)))

    async def _ask(self, frame: BreakoutFrame) -> Any:
        """The desk's answer, once the actors it told on the way (the main call's pushes) have
        taken their mail: the desk answers without waiting for them."""
        answer = await self.registry.ref(self.desk).ask(frame)
        await trio.testing.wait_all_tasks_blocked()
        return answer

    async def socket(self) -> tuple[str, Changes]:
        self.sockets += 1
        conn = addresses.conn(self.sockets)
        got = Changes()
        await self.root.start_child(ChildSpec(conn, lambda: Socket(got)))
        return conn, got

    def pushes(self, kind: str, member: str | None = None) -> list[PushToMembers]:
        return [
            p
            for p in self.told.items
            if isinstance(p, PushToMembers)
            and p.type == kind
            and (member is None or p.participant_ids is None or member in p.participant_ids)
        ]

    async def pushed(self, kind: str, after: int = 0) -> PushToMembers:
        """The first push of this type told to the group call from ``told.items[after:]``."""
        with trio.fail_after(TIMEOUT):
            found: PushToMembers = await self.told.wait_for(
                lambda m: (
                    isinstance(m, PushToMembers)
                    and m.type == kind
                    and self.told.items.index(m) >= after
                )
            )
        return found

    def move_of(self, member: str) -> dict[str, Any]:
        """The last ``group.breakout.move`` this member got."""
        return self.pushes("group.breakout.move", member)[-1].body

    async def join_room(self, member: str) -> tuple[Principal, str, Changes]:
        """What the page does with its move event: hello with the token, then ``room.enter``."""
        move = self.move_of(member)
        room_id, _, secret = move["token"].partition(".")
        principal: Principal = await self.registry.ref(addresses.room(room_id)).ask(
            RedeemToken(secret)
        )
        conn, got = await self.socket()
        await self.registry.ref(addresses.room(room_id)).ask(
            Inbound("room.enter", {}, principal, conn)
        )
        return principal, conn, got


@pytest.fixture
async def rig(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Rig]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        told = Changes()
        await root.start_child(ChildSpec(addresses.room(MAIN), lambda: MainCall(told)))
        made = Rig(registry, root, store, CallMedia(), told)
        await made.start_desk()
        yield made
        nursery.cancel_scope.cancel()


async def opened(rig: Rig, people: int, rooms: int, duration: int = 600) -> dict[str, Any]:
    rig.admit(people)
    await rig.mod("create", count=rooms)
    await rig.mod("assign", mode="random")
    view: dict[str, Any] = await rig.mod("open", duration=duration)
    return view


def sizes(view: dict[str, Any]) -> list[int]:
    return [len(room["people"]) for room in view["rooms"]]


# -- opening --------------------------------------------------------------------------------------
async def test_opening_moves_everyone_into_their_room_evenly_with_a_token_each(rig: Rig) -> None:
    view = await opened(rig, 13, 4)
    assert view["phase"] == "open" and sorted(sizes(view)) == [3, 3, 3, 4]
    tokens = set()
    for room in view["rooms"]:
        for member in (p["id"] for p in room["people"]):
            move = rig.move_of(member)
            assert move["room"] == room["id"] and move["name"] == room["name"]
            assert move["address"] == room["address"]
            assert move["token"].startswith(room["address"].split("/", 1)[1] + ".")
            tokens.add(move["token"])
    assert len(tokens) == 13
    inside = [m for m in rig.told.items if isinstance(m, InBreakout)]
    assert sorted(len(m.participant_ids) for m in inside) == [3, 3, 3, 4]
    assert {m.room_id for m in inside} == {r["address"].split("/", 1)[1] for r in view["rooms"]}
    (timer,) = rig.pushes("group.breakout.timer")
    assert timer.participant_ids is None and timer.body["ends_at"] == view["ends_at"]
    (entry,) = await audit.list_entries(rig.store, action=audit.GROUP_BREAKOUT_OPENED)
    assert entry.subject == f"group:{SESSION}" and entry.actor_user_id == 7
    assert entry.details == {"rooms": 4, "people": 13, "duration": 600, "mode": "random"}


async def test_media_stays_inside_a_room(rig: Rig) -> None:
    view = await opened(rig, 4, 2)
    first, second = view["rooms"]
    one, two = first["people"][0]["id"], second["people"][0]["id"]
    principal, conn, _ = await rig.join_room(one)
    other, other_conn, _ = await rig.join_room(two)
    assert principal.room_id == first["address"].split("/", 1)[1]
    for who, at, address in ((principal, conn, first), (other, other_conn, second)):
        await rig.registry.ref(address["address"]).ask(
            Inbound("media.offer", {"sdp": "offer"}, who, at)
        )
    # Each room is its own media call: the two peers were opened under two different call ids,
    # and nobody of room 1 is a peer of room 2's call.
    peers_by_call: dict[str, set[str]] = {}
    for call_id, peer in rig.media.peers:
        peers_by_call.setdefault(call_id, set()).add(peer)
    assert len(peers_by_call) == 2
    (call_one,) = [c for c, peers in peers_by_call.items() if conn.replace("/", "-") in peers]
    (call_two,) = [c for c in peers_by_call if c != call_one]
    assert conn.replace("/", "-") not in peers_by_call[call_two]
    # The same person's principal does not open the other room's call, and is not in it.
    with pytest.raises(Refusal) as refused:
        await rig.registry.ref(second["address"]).ask(Inbound("room.enter", {}, principal, conn))
    assert refused.value.code == refusals.NOT_FOUND
    state_two = await rig.registry.ref(second["address"]).ask(
        Inbound("room.enter", {}, other, other_conn)
    )
    assert state_two["kind"] == KIND and state_two["name"] == second["name"]
    assert [p["id"] for p in state_two["participants"]] == [other_conn.replace("/", "-")]
    # A token of one room is not a token of the other.
    _, _, secret = rig.move_of(one)["token"].partition(".")
    with pytest.raises(Refusal) as wrong:
        await rig.registry.ref(second["address"]).ask(RedeemToken(secret))
    assert wrong.value.code == refusals.INVALID_TOKEN


async def gone(rig: Rig, address: str) -> None:
    """The registry has no event for an actor going away: look until it has gone (bounded)."""
    with trio.fail_after(TIMEOUT):
        while address in rig.registry:  # noqa: ASYNC110
            await trio.sleep(0.01)


# -- time -----------------------------------------------------------------------------------------
async def test_the_timer_ends_the_rooms_after_a_60_second_countdown_in_every_room(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    view = await opened(rig, 4, 2, duration=300)
    inside = {}
    for room in view["rooms"]:
        member = room["people"][0]["id"]
        inside[room["id"]] = (member, *(await rig.join_room(member))[1:])
    closing = await rig.told.wait_for(
        lambda m: isinstance(m, PushToMembers) and m.type == "group.breakout.closing"
    )
    assert trio.current_time() - start == pytest.approx(300)
    assert closing.participant_ids is None and closing.body["in_seconds"] == CLOSING_COUNTDOWN
    assert closing.body["reason"] == "timer"
    for _, _, got in inside.values():  # the countdown is seen inside every room
        push = await got.wait_for(
            lambda e: isinstance(e, Push) and e.type == "group.breakout.closing"
        )
        assert push.body["ends_at"] == closing.body["ends_at"]
    back = await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start == pytest.approx(300 + CLOSING_COUNTDOWN)
    assert sorted(back.participant_ids) == sorted(rig.people)
    returned = await rig.told.wait_for(
        lambda m: isinstance(m, PushToMembers) and m.type == "group.breakout.back"
    )
    assert sorted(returned.participant_ids or ()) == sorted(rig.people)
    for room in view["rooms"]:  # the rooms' calls end: every socket in them is closed
        await gone(rig, room["address"])
    for _, _, got in inside.values():
        await got.wait_for(lambda e: isinstance(e, CloseConnection))
    (entry,) = await audit.list_entries(rig.store, action=audit.GROUP_BREAKOUT_CLOSED)
    assert entry.actor_kind == "system"
    assert entry.details == {"reason": "timer", "rooms": 2, "people": 4, "seconds": 360}
    again = await rig.mod("state")
    assert again["phase"] == "ready" and again["ends_at"] is None
    assert sizes(again) == sizes(view)  # remembered


async def test_the_moderator_extends_and_shortens_the_timer_everyone_sees(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    view = await opened(rig, 3, 1, duration=300)
    member = view["rooms"][0]["people"][0]["id"]
    _, _, got = await rig.join_room(member)
    longer = await rig.mod("extend", seconds=120)
    assert longer["ends_at"] == pytest.approx(view["ends_at"] + 120, abs=0.01)
    pushed = await got.wait_for(lambda e: isinstance(e, Push) and e.type == "group.breakout.timer")
    assert pushed.body["ends_at"] == longer["ends_at"]
    assert rig.pushes("group.breakout.timer")[-1].body["ends_at"] == longer["ends_at"]
    await trio.sleep(400)  # past the first end: still open
    assert (await rig.mod("state"))["phase"] == "open"
    shorter = await rig.mod("extend", seconds=-10)
    assert shorter["ends_at"] == pytest.approx(longer["ends_at"] - 10, abs=0.01)
    await rig.told.wait_for(
        lambda m: isinstance(m, PushToMembers) and m.type == "group.breakout.closing"
    )
    assert trio.current_time() - start == pytest.approx(410)
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start == pytest.approx(470)


async def test_shortening_past_now_starts_the_countdown_at_once(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await opened(rig, 2, 1, duration=600)
    start = trio.current_time()
    reply = await rig.mod("extend", seconds=-3600)
    assert reply["phase"] == "closing"
    with pytest.raises(Refusal) as closing:
        await rig.mod("extend", seconds=60)
    assert closing.value.code == refusals.BREAKOUT_NOT_OPEN
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start == pytest.approx(CLOSING_COUNTDOWN)


async def test_the_moderator_closes_all_rooms_at_once_with_the_countdown(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await opened(rig, 6, 3, duration=3600)
    start = trio.current_time()
    closing = await rig.mod("close")
    assert closing["phase"] == "closing"
    assert (await rig.mod("close"))["phase"] == "closing"  # a second press changes nothing
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start == pytest.approx(CLOSING_COUNTDOWN)
    (entry,) = await audit.list_entries(rig.store, action=audit.GROUP_BREAKOUT_CLOSED)
    assert entry.actor_user_id == 7 and entry.details["reason"] == "moderator"
    with pytest.raises(Refusal) as closed:
        await rig.mod("close")
    assert closed.value.code == refusals.BREAKOUT_NOT_OPEN


# -- while the rooms run --------------------------------------------------------------------------
async def test_a_broadcast_reaches_every_room_and_only_the_moderator_sends_one(rig: Rig) -> None:
    view = await opened(rig, 6, 3)
    sockets = []
    for room in view["rooms"]:
        sockets.append((await rig.join_room(room["people"][0]["id"]))[2])
    member = view["rooms"][0]["people"][0]["id"]
    with pytest.raises(Refusal) as refused:
        await rig.part(member, "broadcast", text="hello all")
    assert refused.value.code == refusals.NOT_MODERATOR
    assert await rig.mod("broadcast", text="  Two minutes left  ") == {"rooms": 3}
    with trio.fail_after(TIMEOUT):
        for got in sockets:
            event = await got.wait_for(
                lambda e: isinstance(e, Push) and e.type == "group.breakout.broadcast"
            )
            assert event.body["text"] == "Two minutes left"
            assert event.body["from"] == "Dr Moderator"
    everyone = [e for got in sockets for e in got.items if isinstance(e, Push)]
    assert [e.body["text"] for e in everyone if e.type == "group.breakout.broadcast"] == [
        "Two minutes left"
    ] * 3  # the participant's attempt reached nobody
    with pytest.raises(Refusal) as empty:
        await rig.mod("broadcast", text="   ")
    assert empty.value.code == refusals.BAD_FIELD


async def test_ask_for_help_tells_the_moderators_which_room_and_a_visit_answers_it(
    rig: Rig,
) -> None:
    view = await opened(rig, 4, 2)
    first, second = view["rooms"]
    asking = first["people"][0]["id"]
    assert await rig.part(asking, "help") == {}
    help_push = await rig.pushed("group.breakout.help")
    assert help_push.participant_ids == ("s-7",)
    assert help_push.body["room"] == first["id"] and help_push.body["name"] == first["name"]
    assert help_push.body["address"] == first["address"]
    assert (
        help_push.body["id"] == asking
        and help_push.body["who"] == "Person" + asking[2:] + " Surname"
    )
    mark = len(rig.told.items)
    assert [r["help"] for r in (await rig.mod("state"))["rooms"]] == [True, False]
    # From inside the other room, on that room's own socket.
    other = second["people"][0]["id"]
    principal, conn, _ = await rig.join_room(other)
    assert (
        await rig.registry.ref(second["address"]).ask(
            Inbound("group.breakout.help", {}, principal, conn)
        )
        == {}
    )
    assert (await rig.pushed("group.breakout.help", mark)).body["room"] == second["id"]
    assert [r["help"] for r in (await rig.mod("state"))["rooms"]] == [True, True]
    # The moderator visits the first room (addressing it as staff) and comes back.
    visit, _ = await rig.socket()
    entered = await rig.registry.ref(first["address"]).ask(
        Inbound("room.enter", {}, MODERATOR, visit)
    )
    assert entered["kind"] == KIND and entered["breakout"] == first["id"]
    with trio.fail_after(TIMEOUT):
        seen = await rig.told.wait_for(
            lambda m: (
                isinstance(m, PushToMembers)
                and m.type == "group.breakout.rooms"
                and m.body["phase"] == "open"
                and m.body["rooms"][0]["visitors"] == ["s-7"]
            )
        )
    assert [r["help"] for r in seen.body["rooms"]] == [False, True]  # the visit answers it
    await rig.registry.ref(first["address"]).ask(Inbound("room.leave", {}, MODERATOR, visit))
    with trio.fail_after(TIMEOUT):
        await rig.told.wait_for(
            lambda m: (
                isinstance(m, PushToMembers)
                and m.type == "group.breakout.rooms"
                and m.body["phase"] == "open"
                and m.body["rooms"][0]["visitors"] == []
                and m.body["rooms"][0]["present"] == []
            )
        )
    # Someone in the main call has nobody to call.
    member = second["people"][-1]["id"]
    await rig.mod("move", id=member, room=None)
    with pytest.raises(Refusal) as nowhere:
        await rig.part(member, "help")
    assert nowhere.value.code == refusals.BREAKOUT_NOT_OPEN
    with pytest.raises(Refusal) as moderator:
        await rig.mod("help")
    assert moderator.value.code == refusals.FORBIDDEN


async def test_only_the_sessions_moderators_visit_and_others_hear_the_room_does_not_exist(
    rig: Rig,
) -> None:
    view = await opened(rig, 2, 1)
    address = view["rooms"][0]["address"]
    conn, _ = await rig.socket()
    with pytest.raises(Refusal) as stranger:
        await rig.registry.ref(address).ask(Inbound("room.enter", {}, OTHER_STAFF, conn))
    assert stranger.value.code == refusals.NOT_FOUND
    assert stranger.value.detail == f"{address} does not exist (any more)"
    # A staff member the group call says may run the session (a unit admin) may visit once
    # they have acted on the breakouts.
    admin = Principal("staff", "Unit Admin", user_id="12")
    frame = Inbound("group.breakout.state", {}, admin, "conn/admin")
    await rig.registry.ref(rig.desk).ask(BreakoutFrame(frame, True, tuple(rig.members)))
    with trio.fail_after(TIMEOUT):
        while True:
            try:
                await rig.registry.ref(address).ask(Inbound("room.enter", {}, admin, conn))
                break
            except Refusal:
                await trio.sleep(0.01)
    with pytest.raises(Refusal) as ended:
        await rig.registry.ref(address).ask(Inbound("call.end", {}, admin, conn))
    assert ended.value.code == refusals.FORBIDDEN


async def test_the_moderator_moves_someone_between_running_rooms(rig: Rig) -> None:
    view = await opened(rig, 4, 2)
    first, second = view["rooms"]
    member = first["people"][0]["id"]
    old_token = rig.move_of(member)["token"]
    principal, conn, got = await rig.join_room(member)
    moved = await rig.mod("move", id=member, room=second["id"])
    assert member in [p["id"] for p in moved["rooms"][1]["people"]]
    assert member not in [p["id"] for p in moved["rooms"][0]["people"]]
    move = rig.move_of(member)
    assert move["room"] == second["id"] and move["token"] != old_token
    assert move["token"].startswith(second["address"].split("/", 1)[1] + ".")
    into = [m for m in rig.told.items if isinstance(m, InBreakout) and member in m.participant_ids]
    assert into[-1].room_id == second["address"].split("/", 1)[1]
    # Out of the old room at once: the socket there is closed, they are no longer present.
    with trio.fail_after(TIMEOUT):
        closed = await got.wait_for(lambda e: isinstance(e, CloseConnection))
    assert closed.code == CLOSE_MOVED
    state = (
        await rig.registry.ref(first["address"]).ask(
            Inbound("room.enter", {}, MODERATOR, "conn/mod-visit")
        )
        if False
        else None
    )
    assert state is None
    with pytest.raises(Refusal):
        await rig.registry.ref(first["address"]).ask(Inbound("room.enter", {}, principal, conn))
    old_room, _, old_secret = old_token.partition(".")
    with pytest.raises(Refusal) as revoked:
        await rig.registry.ref(addresses.room(old_room)).ask(RedeemToken(old_secret))
    assert revoked.value.code == refusals.INVALID_TOKEN
    await rig.join_room(member)  # the new token opens the new room
    # Back to the main call, and an unknown room or person changes nothing.
    before = await rig.mod("state")
    for body, code in (
        ({"id": member, "room": "another-sessions-room"}, refusals.NOT_FOUND),
        ({"id": "p-nobody", "room": second["id"]}, refusals.NOT_FOUND),
        ({"id": 5, "room": second["id"]}, refusals.NOT_FOUND),
    ):
        with pytest.raises(Refusal) as bad:
            await rig.mod("move", **body)
        assert bad.value.code == code
    assert await rig.mod("state") == before
    await rig.mod("move", id=member, room=None)
    back = [m for m in rig.told.items if isinstance(m, InBreakout) and member in m.participant_ids]
    assert back[-1].room_id is None
    assert rig.pushes("group.breakout.back", member)


# -- participants choose; people come and go -------------------------------------------------------
async def test_participants_choose_their_room_when_the_moderator_lets_them(rig: Rig) -> None:
    members = rig.admit(3)
    view = await rig.mod("create", count=2, names=["Walking", "Cooking"])
    walking, cooking = (r["id"] for r in view["rooms"])
    with pytest.raises(Refusal) as not_yet:
        await rig.part(members[0], "choose", room=walking)
    assert not_yet.value.code == refusals.FORBIDDEN
    await rig.mod("assign", mode="choose")
    with trio.fail_after(TIMEOUT):
        offered = await rig.told.wait_for(
            lambda m: (
                isinstance(m, PushToMembers)
                and m.type == "group.breakout.plan"
                and m.body["mode"] == "choose"
            )
        )
    assert [r["name"] for r in offered.body["rooms"]] == ["Walking", "Cooking"]
    mine = await rig.part(members[0], "choose", room=walking)
    assert mine["room"] == {"id": walking, "name": "Walking"}
    with pytest.raises(Refusal) as unknown:
        await rig.part(members[1], "choose", room="someone-elses")
    assert unknown.value.code == refusals.NOT_FOUND
    opened_view = await rig.mod("open", duration=600)
    assert [len(r["people"]) for r in opened_view["rooms"]] == [1, 0]
    assert [p["id"] for p in opened_view["unassigned"]] == members[1:]
    await rig.part(members[1], "choose", room=cooking)  # while open: straight in
    assert rig.move_of(members[1])["room"] == cooking
    with pytest.raises(Refusal) as moderator:
        await rig.mod("choose", room=walking)
    assert moderator.value.code == refusals.FORBIDDEN


async def test_late_arrivals_fill_the_smallest_room_and_people_who_leave_leave_their_room(
    rig: Rig,
) -> None:
    view = await opened(rig, 5, 2)
    assert sorted(sizes(view)) == [2, 3]
    rig.admit(1)
    late = rig.members[-1].participant_id
    await rig.registry.ref(rig.desk).ask(MembersChanged(tuple(rig.members)))
    state = await rig.mod("state")
    assert sizes(state) == [3, 3]
    assert rig.move_of(late)["room"] in [r["id"] for r in state["rooms"]]
    # Someone sent back to waiting (or removed) is out of their room at once.
    leaving = state["rooms"][0]["people"][0]["id"]
    _, _, got = await rig.join_room(leaving)
    rig.members = [m for m in rig.members if m.participant_id != leaving]
    await rig.registry.ref(rig.desk).ask(MembersChanged(tuple(rig.members)))
    with trio.fail_after(TIMEOUT):
        await got.wait_for(lambda e: isinstance(e, CloseConnection))
    room_id, _, secret = rig.move_of(leaving)["token"].partition(".")
    with pytest.raises(Refusal):
        await rig.registry.ref(addresses.room(room_id)).ask(RedeemToken(secret))
    after = await rig.mod("state")
    assert leaving in [p["id"] for p in after["rooms"][0]["people"]]  # remembered for later


async def test_the_end_of_the_session_closes_the_rooms_at_once(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    view = await opened(rig, 4, 2)
    start = trio.current_time()
    rig.registry.ref(rig.desk).tell(GroupEnded("ended"))
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start < 1
    for room in view["rooms"]:
        await gone(rig, room["address"])
    await gone(rig, rig.desk)
    (entry,) = await audit.list_entries(rig.store, action=audit.GROUP_BREAKOUT_CLOSED)
    assert entry.details["reason"] == "session_ended"


async def private_rig(nursery: trio.Nursery, privacy: Privacy, store: Store) -> Rig:
    """A rig whose session has these privacy options."""
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    told = Changes()
    await root.start_child(ChildSpec(addresses.room(MAIN), lambda: MainCall(told)))
    rig = Rig(registry, root, store, CallMedia(), told)
    setup = BreakoutSetup(SESSION, MAIN, 1, 1, "Group", privacy, (7,))
    await root.start_child(ChildSpec(rig.desk, lambda: BreakoutDesk(setup, store, root, rig.media)))
    return rig


async def test_first_names_only_in_the_rooms_when_the_session_says_so(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with open_store(tmp_path / "w.sqlite3") as store:
        rig = await private_rig(nursery, Privacy(first_names_only=True), store)
        view = await opened(rig, 2, 1)
        principal, _, _ = await rig.join_room(view["rooms"][0]["people"][0]["id"])
        assert principal.display_name in ("Person1", "Person2")
        assert view["rooms"][0]["people"][0]["name"].endswith(" Surname")  # moderators: full
        nursery.cancel_scope.cancel()


async def test_a_hidden_list_hides_the_other_participants_names_inside_a_room(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with open_store(tmp_path / "w.sqlite3") as store:
        rig = await private_rig(nursery, Privacy(hide_participant_list=True), store)
        view = await opened(rig, 2, 1)
        address = view["rooms"][0]["address"]
        first, second = (p["id"] for p in view["rooms"][0]["people"])
        one, one_conn, one_got = await rig.join_room(first)
        two, two_conn, _ = await rig.join_room(second)
        visit, visit_got = await rig.socket()
        seen = await rig.registry.ref(address).ask(Inbound("room.enter", {}, MODERATOR, visit))
        assert sorted(p["name"] for p in seen["participants"]) == sorted(
            [one.display_name, two.display_name, "Dr Moderator"]
        )
        mine = await rig.registry.ref(address).ask(Inbound("room.enter", {}, one, one_conn))
        names = {p["id"]: p["name"] for p in mine["participants"]}
        assert names == {
            one_conn.replace("/", "-"): one.display_name,
            two_conn.replace("/", "-"): "",
            visit.replace("/", "-"): "Dr Moderator",
        }
        assert all("member" not in p for p in mine["participants"] if p["name"] == "")
        await rig.registry.ref(address).ask(Inbound("chat.send", {"text": "hello"}, two, two_conn))
        with trio.fail_after(TIMEOUT):
            to_one = await one_got.wait_for(
                lambda e: isinstance(e, Push) and e.type == "chat.message"
            )
            to_mod = await visit_got.wait_for(
                lambda e: isinstance(e, Push) and e.type == "chat.message"
            )
        assert to_one.body["from"] == "" and to_mod.body["from"] == two.display_name
        nursery.cancel_scope.cancel()


# -- remembered ------------------------------------------------------------------------------------
async def test_assignments_are_remembered_for_reopening_and_across_a_restart(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    members = rig.admit(4)
    view = await rig.mod("create", count=2, names=["North", "South"])
    north, south = (r["id"] for r in view["rooms"])
    plan = {members[0]: north, members[1]: south, members[2]: south, members[3]: None}
    await rig.mod("assign", mode="manual", assignments=plan)
    first = await rig.mod("open", duration=60)
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    for room in first["rooms"]:
        await gone(rig, room["address"])
    second = await rig.mod("open", duration=60)

    def people(v: dict[str, Any]) -> list[list[str]]:
        return [[p["id"] for p in r["people"]] for r in v["rooms"]]

    assert people(second) == people(first) == [[members[0]], [members[1], members[2]]]
    assert [r["address"] for r in second["rooms"]] != [r["address"] for r in first["rooms"]]
    await rig.mod("close")
    await trio.sleep(CLOSING_COUNTDOWN + 1)
    # A new desk (a restart, the next day's session) reads the plan back from storage.
    rig.registry.ref(rig.desk).tell(GroupEnded("ended"))
    await gone(rig, rig.desk)
    await rig.start_desk()
    again = await rig.mod("state")
    assert again["phase"] == "ready" and [r["name"] for r in again["rooms"]] == ["North", "South"]
    assert people(again) == people(first)


def wall_follows_trio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's epoch clock moves with Trio's virtual one (a restart reads the deadline back
    as an epoch moment)."""
    monkeypatch.setattr(breakouts, "wall_clock", lambda: 1_700_000_000.0 + trio.current_time())


async def node_died(rig: Rig, rooms: list[str]) -> None:
    """The desk and its rooms' calls stop as their node's death stops them: nothing closes,
    nothing is revoked (what storage says stays as it was)."""
    await rig.root.stop_child(rig.desk)
    for address in rooms:
        await rig.root.stop_child(address)
        assert address not in rig.registry


async def test_a_desk_started_again_while_rooms_ran_resumes_them_until_the_original_deadline(
    rig: Rig, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall_follows_trio(monkeypatch)
    start = trio.current_time()
    view = await opened(rig, 4, 2, duration=300)
    rooms = [room["address"] for room in view["rooms"]]
    member = view["rooms"][0]["people"][0]["id"]
    token = rig.move_of(member)["token"]
    room_id, _, secret = token.partition(".")
    assert await group_breakouts.session_of_room(rig.store, room_id) == SESSION
    await trio.sleep(100)
    await node_died(rig, rooms)
    mark = len(rig.told.items)
    await rig.start_desk()
    # The same rooms run again, and the seat the page holds still opens its room.
    for address in rooms:
        assert address in rig.registry
    principal: Principal = await rig.registry.ref(addresses.room(room_id)).ask(RedeemToken(secret))
    assert principal.participant_id == member and principal.room_id == room_id
    conn, got = await rig.socket()
    state = await rig.registry.ref(addresses.room(room_id)).ask(
        Inbound("room.enter", {}, principal, conn)
    )
    assert state["kind"] == KIND and state["name"] == view["rooms"][0]["name"]
    assert state["ends_at"] == view["ends_at"]
    # The group call hears again who is in which room; the moderator sees them open as before.
    again = [m for m in rig.told.items[mark:] if isinstance(m, InBreakout)]
    assert sorted(p for m in again for p in m.participant_ids) == sorted(rig.people)
    assert {m.room_id for m in again} == {a.split("/", 1)[1] for a in rooms}
    now = await rig.mod("state")
    assert now["phase"] == "open" and now["ends_at"] == view["ends_at"]
    assert [r["address"] for r in now["rooms"]] == rooms and sizes(now) == sizes(view)
    # The timer closes them at the deadline of the opening, not 300 s after the restart.
    with trio.fail_after(300):  # virtual seconds: bounded, not waited for
        closing = await rig.told.wait_for(
            lambda m: (
                isinstance(m, PushToMembers)
                and m.type == "group.breakout.closing"
                and rig.told.items.index(m) >= mark
            )
        )
    assert trio.current_time() - start == pytest.approx(300)
    assert closing.body["reason"] == "timer"
    await got.wait_for(lambda e: isinstance(e, Push) and e.type == "group.breakout.closing")
    back = await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - start == pytest.approx(300 + CLOSING_COUNTDOWN)
    assert sorted(back.participant_ids) == sorted(rig.people)
    for address in rooms:
        await gone(rig, address)
    assert await group_breakouts.session_of_room(rig.store, room_id) is None


async def test_a_desk_started_again_after_its_deadline_passed_closes_the_rooms_at_once(
    rig: Rig, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall_follows_trio(monkeypatch)
    view = await opened(rig, 4, 2, duration=60)
    rooms = [room["address"] for room in view["rooms"]]
    await node_died(rig, rooms)
    await trio.sleep(90)  # nobody ran the desk when the time was up
    mark = len(rig.told.items)
    started = trio.current_time()
    await rig.start_desk()
    closing = await rig.pushed("group.breakout.closing", mark)
    assert trio.current_time() == pytest.approx(started)
    assert closing.body["reason"] == "timer"
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    assert trio.current_time() - started == pytest.approx(CLOSING_COUNTDOWN)
    for address in rooms:
        await gone(rig, address)


async def test_a_desk_started_again_after_the_rooms_closed_starts_none(
    rig: Rig, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall_follows_trio(monkeypatch)
    view = await opened(rig, 4, 2)
    rooms = [room["address"] for room in view["rooms"]]
    _, _, secret = rig.move_of(view["rooms"][0]["people"][0]["id"])["token"].partition(".")
    await rig.mod("close")
    await rig.told.wait_for(lambda m: isinstance(m, InBreakout) and m.room_id is None)
    for address in rooms:
        await gone(rig, address)
    await rig.root.stop_child(rig.desk)
    mark = len(rig.told.items)
    await rig.start_desk()
    now = await rig.mod("state")
    assert now["phase"] == "ready" and now["ends_at"] is None
    assert all(room["address"] is None for room in now["rooms"])
    await trio.sleep(CLOSING_COUNTDOWN * 2)
    for address in rooms:
        assert address not in rig.registry
        assert await group_breakouts.session_of_room(rig.store, address.split("/", 1)[1]) is None
    assert not [m for m in rig.told.items[mark:] if isinstance(m, InBreakout)]
    seat = await group_breakouts.find_seat(rig.store, rooms[0].split("/", 1)[1], secret)
    assert seat is None


async def test_a_desk_that_crashed_while_rooms_ran_keeps_them_running(
    rig: Rig, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall_follows_trio(monkeypatch)
    view = await opened(rig, 4, 2)
    _, _, got = await rig.join_room(view["rooms"][0]["people"][0]["id"])
    await rig.root.stop_child(rig.desk)  # as if it had crashed: its rooms run on
    await rig.start_desk()
    now = await rig.mod("state")
    assert now["phase"] == "open" and now["ends_at"] == view["ends_at"]
    assert [r["address"] for r in now["rooms"]] == [r["address"] for r in view["rooms"]]
    await trio.testing.wait_all_tasks_blocked()
    assert not [e for e in got.items if isinstance(e, CloseConnection)]


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("create", {"count": 2}),
        ("rename", {"room": "x", "name": "y"}),
        ("assign", {"mode": "random"}),
        ("open", {"duration": 60}),
        ("extend", {"seconds": 60}),
        ("broadcast", {"text": "hi"}),
        ("move", {"id": "p-1", "room": None}),
        ("close", {}),
    ],
)
async def test_a_participant_sending_a_moderator_frame_is_refused_and_nothing_changes(
    rig: Rig, kind: str, body: dict[str, Any]
) -> None:
    view = await opened(rig, 4, 2)
    member = view["rooms"][0]["people"][0]["id"]
    told = len(rig.told.items)
    with pytest.raises(Refusal) as refused:
        await rig.part(member, kind, **body)
    assert refused.value.code == refusals.NOT_MODERATOR
    assert await rig.mod("state") == view
    assert len(rig.told.items) == told


async def test_bad_fields_and_wrong_moments_are_refused_and_change_nothing(rig: Rig) -> None:
    rig.admit(3)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("open", {"duration": 60}, refusals.BAD_FIELD),  # no rooms yet
        ("assign", {"mode": "random"}, refusals.BAD_FIELD),
        ("create", {"count": 0}, refusals.BAD_FIELD),
        ("create", {"count": 21}, refusals.BAD_FIELD),
        ("create", {"count": "4"}, refusals.BAD_FIELD),
        ("create", {"count": 2, "names": ["a", "b", "c"]}, refusals.BAD_FIELD),
        ("extend", {"seconds": 60}, refusals.BREAKOUT_NOT_OPEN),
        ("broadcast", {"text": "hi"}, refusals.BREAKOUT_NOT_OPEN),
        ("close", {}, refusals.BREAKOUT_NOT_OPEN),
        ("teleport", {}, refusals.UNKNOWN_TYPE),
    ]
    for kind, body, code in cases:
        with pytest.raises(Refusal) as refused:
            await rig.mod(kind, **body)
        assert refused.value.code == code, kind
    assert (await rig.mod("state"))["phase"] == "none"
    view = await rig.mod("create", count=2)
    cases = [
        ("open", {"duration": 5}, refusals.BAD_FIELD),
        ("open", {"duration": "600"}, refusals.BAD_FIELD),
        ("open", {}, refusals.BAD_FIELD),
        ("rename", {"room": view["rooms"][0]["id"], "name": ""}, refusals.BAD_FIELD),
        ("rename", {"room": "another-orgs-room", "name": "Mine"}, refusals.NOT_FOUND),
        ("assign", {"mode": "manual", "assignments": {}}, refusals.BAD_FIELD),
        ("assign", {"mode": "manual", "assignments": ["p-1"]}, refusals.BAD_FIELD),
        ("assign", {"mode": "manual", "assignments": {"p-1": "nope"}}, refusals.NOT_FOUND),
        ("assign", {"mode": "sorted"}, refusals.BAD_FIELD),
    ]
    for kind, body, code in cases:
        with pytest.raises(Refusal) as refused:
            await rig.mod(kind, **body)
        assert refused.value.code == code, (kind, body)
    assert await rig.mod("state") == view
    await rig.mod("assign", mode="random")
    running = await rig.mod("open", duration=600)
    for kind, body in (
        ("create", {"count": 3}),
        ("assign", {"mode": "random"}),
        ("open", {"duration": 600}),
    ):
        with pytest.raises(Refusal) as refused:
            await rig.mod(kind, **body)
        assert refused.value.code == refusals.BREAKOUT_RUNNING
    for seconds in (0, 1.5, "60", 10**6):
        with pytest.raises(Refusal) as refused:
            await rig.mod("extend", seconds=seconds)
        assert refused.value.code == refusals.BAD_FIELD
    assert await rig.mod("state") == running


async def test_switching_to_manual_without_assignments_keeps_everyone_where_they_are(
    rig: Rig,
) -> None:
    rig.admit(6)
    await rig.mod("create", count=3)
    shuffled = await rig.mod("assign", mode="random")
    manual = await rig.mod("assign", mode="manual")
    assert manual["mode"] == "manual" and manual["rooms"] == shuffled["rooms"]
    member = shuffled["rooms"][0]["people"][0]["id"]
    target = shuffled["rooms"][1]["id"]
    moved = await rig.mod("assign", mode="manual", assignments={member: target})
    assert member in [p["id"] for p in moved["rooms"][1]["people"]]
    back = await rig.mod("assign", mode="manual", assignments={member: None})
    assert [p["id"] for p in back["unassigned"]] == [member]


async def test_sixty_people_in_ten_rooms_of_six_each_in_their_own_call_only(rig: Rig) -> None:
    view = await opened(rig, 60, 10)
    assert sizes(view) == [6] * 10
    look, _ = await rig.socket()
    calls: dict[str, str] = {}  # member -> the room address whose call let them in
    for room in view["rooms"]:
        for person in room["people"]:
            principal, _, _ = await rig.join_room(person["id"])
            calls[person["id"]] = addresses.room(principal.room_id or "")
            assert calls[person["id"]] == room["address"]
    for room in view["rooms"]:
        state = await rig.registry.ref(room["address"]).ask(
            Inbound("room.enter", {}, MODERATOR, look)
        )
        inside = {p["member"] for p in state["participants"] if not p["moderator"]}
        assert inside == {p["id"] for p in room["people"]}
        await rig.registry.ref(room["address"]).ask(Inbound("room.leave", {}, MODERATOR, look))
    assert len(set(calls.values())) == 10


async def test_renaming_a_running_room_shows_the_new_name_inside_it(rig: Rig) -> None:
    view = await opened(rig, 2, 1)
    room = view["rooms"][0]
    _, _, got = await rig.join_room(room["people"][0]["id"])
    renamed = await rig.mod("rename", room=room["id"], name="Stretching")
    assert renamed["rooms"][0]["name"] == "Stretching"
    with trio.fail_after(TIMEOUT):
        state = await got.wait_for(
            lambda e: isinstance(e, Push) and e.type == "room.state" and "name" in e.body
        )
    assert state.body["name"] == "Stretching" and state.body["kind"] == KIND
