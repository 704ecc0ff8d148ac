"""Issue 15: who may enter a caller's call, and how many.

The whole actor tree over a real SQLite store seeded with the demo clinic, with real connection
actors (``Inbox``) in every presence. Staff other than the provider who joined the caller, the
organisation administrator included, are refused ``join_confirm_needed`` until they announce
themselves; then everyone in the call, the caller too, gets ``call.notice``; every staff entry
is audited; and the six-person limit counts the people in and the invitations still open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.boot import start_actors
from actors.inbound import Inbound, RedeemToken
from actors.messages import ArrivalTicket, Arrive, ClaimInvite, FindArea, ProviderJoining
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.rooms import MAX_PARTICIPANTS, STAFF_JOINED
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, seed, staff
from storage.db import Store, open_store
from tests.actors.inbox import Inbox, Pushes

LEE, KIM, ADMIN = "Dr Lee", "Dr Kim", "Org Admin"
#: Bound on every wait for a push (the pushes are told before the reply; this never elapses).
WAIT = 5.0


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    org_id: str
    area: str
    area_id: str
    room: str
    caller_id: str
    caller_secret: str
    #: Staff accounts in storage (the audit rows name them): display name -> user id.
    users: dict[str, int]
    ticket: ArrivalTicket
    pushes: dict[str, Pushes] = field(default_factory=dict)

    def provider(self, name: str) -> Principal:
        grant = Grant(Role.PROVIDER, Scope.AREA, self.area_id)
        return Principal("staff", name, str(self.users[name]), self.org_id, frozenset({grant}))

    def org_admin(self) -> Principal:
        grant = Grant(Role.ORG_ADMIN, Scope.ORG, self.org_id)
        user = str(self.users[ADMIN])
        return Principal("staff", ADMIN, user, self.org_id, frozenset({grant}))

    def ids(self, *entries: tuple[str, bool]) -> list[tuple[int | None, bool]]:
        return sorted((self.users[name], announced) for name, announced in entries)

    async def connect(self, conn: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(conn, lambda: Inbox(events)))
        self.pushes[conn] = events
        return events

    async def send(self, who: Principal, conn: str, kind: str, **body: object) -> Any:
        return await self.registry.ref(self.room).ask(Inbound(kind, dict(body), who, conn))

    async def enter(self, who: Principal, conn: str, **body: object) -> dict[str, Any]:
        if conn not in self.pushes:
            await self.connect(conn)
        reply: dict[str, Any] = await self.send(who, conn, "room.enter", **body)
        return reply

    async def caller(self) -> Principal:
        who: Principal = await self.registry.ref(self.room).ask(RedeemToken(self.caller_secret))
        return who

    async def join(self, who: Principal) -> None:
        await self.registry.ref(self.area).ask(
            Inbound("caller.join", {"caller_id": self.caller_id}, who, "conn/list")
        )

    async def guest(self, invite_url: str, name: str) -> Principal:
        claimed = await self.registry.ref(self.room).ask(
            ClaimInvite(invite_url.split(".", 1)[1], name)
        )
        who: Principal = await self.registry.ref(self.room).ask(
            RedeemToken(claimed.token.split(".", 1)[1])
        )
        return who

    async def staff_entries(self) -> list[tuple[int | None, bool]]:
        rows = await audit.list_entries(self.store, action=audit.STAFF_ENTERED)
        return sorted((r.actor_user_id, bool(r.details.get("announced"))) for r in rows)


async def boot(
    nursery: trio.Nursery,
    store: Store,
    demo: seed.DemoInfo,
    users: dict[str, int],
    ticket: ArrivalTicket | None = None,
) -> Clinic:
    """Start the actor tree; a first boot has Ada arrive, a restart finds her room again."""
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await start_actors(nursery, root, store)
    area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
    if ticket is None:
        ticket = await registry.ref(area).ask(Arrive({"name": "Ada", "reason": "knee"}))
    assert ticket is not None
    return Clinic(
        registry,
        root,
        store,
        str(demo.org_id),
        area,
        area.split("/")[1],
        addresses.room(ticket.room_id),
        ticket.caller_id,
        ticket.token.split(".", 1)[1],
        users,
        ticket,
    )


async def make_users(store: Store) -> dict[str, int]:
    users = {}
    for n, name in enumerate((LEE, KIM, ADMIN)):
        users[name] = (await staff.create_user(store, f"u{n}", name, "not-a-hash")).id
    return users


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        yield await boot(nursery, store, demo, await make_users(store))
        nursery.cancel_scope.cancel()


def notices(events: Pushes) -> list[dict[str, Any]]:
    return [dict(p.body) for p in events if p.type == "call.notice"]


async def in_call(clinic: Clinic) -> tuple[Principal, Principal]:
    """Ada (the caller) and Dr Lee (who joined her) are in the call."""
    ada = await clinic.caller()
    await clinic.enter(ada, "conn/ada")
    lee = clinic.provider(LEE)
    await clinic.join(lee)
    await clinic.enter(lee, "conn/lee")
    return ada, lee


async def test_the_org_admin_is_asked_to_confirm_and_then_everyone_is_told(
    clinic: Clinic,
) -> None:
    """Before the fix the administrator walked straight in and nobody was told."""
    await in_call(clinic)
    admin = clinic.org_admin()
    with pytest.raises(Refusal) as asked:
        await clinic.enter(admin, "conn/admin")
    assert asked.value.code == refusals.JOIN_CONFIRM_NEEDED
    assert "Dr Lee is in this call with the caller" in asked.value.detail
    view = await clinic.send(admin, "conn/admin", "room.leave")
    assert view == {}  # not in: nothing to leave, and nobody was told anything
    assert notices(clinic.pushes["conn/ada"]) == [] == notices(clinic.pushes["conn/lee"])

    view = await clinic.enter(admin, "conn/admin", announce=True)
    assert [p["name"] for p in view["participants"]] == ["Ada", "Dr Lee", "Org Admin"]
    told = {"kind": STAFF_JOINED, "name": "Org Admin"}
    for conn in ("conn/ada", "conn/lee", "conn/admin"):
        with trio.fail_after(WAIT):
            await clinic.pushes[conn].wait_for(lambda p: p.type == "call.notice")
        assert notices(clinic.pushes[conn]) == [told]
    assert await clinic.staff_entries() == clinic.ids((LEE, False), (ADMIN, True))

    # A reload of the administrator's page does not ask or announce again (but is audited).
    await clinic.send(admin, "conn/admin", "room.leave")
    await clinic.enter(admin, "conn/admin-2")
    assert notices(clinic.pushes["conn/ada"]) == [told]
    assert await clinic.staff_entries() == clinic.ids((LEE, False), (ADMIN, True), (ADMIN, False))


async def test_a_colleague_must_announce_but_the_provider_who_joined_need_not(
    clinic: Clinic,
) -> None:
    """The "already joined by another provider" rule holds in ``room.enter`` too."""
    await in_call(clinic)
    colleague = clinic.provider(KIM)
    with pytest.raises(Refusal) as asked:
        await clinic.enter(colleague, "conn/kim")
    assert asked.value.code == refusals.JOIN_CONFIRM_NEEDED
    with pytest.raises(Refusal) as bad:  # only a JSON true announces
        await clinic.enter(colleague, "conn/kim", announce="yes")
    assert bad.value.code == refusals.JOIN_CONFIRM_NEEDED
    # An area that restarted forgot who is with the caller and let a second join through:
    # the room keeps the provider who joined first.
    clinic.registry.ref(clinic.room).tell(ProviderJoining(KIM, str(clinic.users[KIM])))
    with pytest.raises(Refusal) as still:
        await clinic.enter(colleague, "conn/kim")
    assert still.value.code == refusals.JOIN_CONFIRM_NEEDED
    # The provider who joined enters again (another tab) without a question.
    await clinic.enter(clinic.provider(LEE), "conn/lee-2")
    assert notices(clinic.pushes["conn/ada"]) == []
    assert await clinic.staff_entries() == clinic.ids((LEE, False), (LEE, False))


async def test_every_staff_entry_is_audited(clinic: Clinic) -> None:
    """Before the fix a staff ``room.enter`` wrote no audit row."""
    await in_call(clinic)
    rows = await audit.list_entries(clinic.store, action=audit.STAFF_ENTERED)
    assert len(rows) == 1
    assert rows[0].actor_user_id == clinic.users[LEE] and rows[0].subject == clinic.caller_id
    assert rows[0].area_id == int(clinic.area_id)


async def test_after_a_hold_the_next_provider_to_join_enters_unannounced(clinic: Clinic) -> None:
    _, lee = await in_call(clinic)
    await clinic.send(lee, "conn/lee", "call.hold")
    kim = clinic.provider(KIM)
    await clinic.join(kim)
    await clinic.enter(kim, "conn/kim")
    with pytest.raises(Refusal) as asked:  # now Dr Lee is the colleague
        await clinic.enter(lee, "conn/lee")
    assert asked.value.code == refusals.JOIN_CONFIRM_NEEDED
    assert "Dr Kim" in asked.value.detail


async def test_three_in_and_three_invited_leave_no_place_for_a_seventh(clinic: Clinic) -> None:
    """Before the fix only the people present were counted when staff entered."""
    _, lee = await in_call(clinic)
    first = await clinic.send(lee, "conn/lee", "call.invite", label="interpreter")
    interpreter = await clinic.guest(first["url"], "Interpreter")
    await clinic.enter(interpreter, "conn/guest")
    for n in range(3):
        await clinic.send(lee, "conn/lee", "call.invite", label=f"g{n}")
    admin = clinic.org_admin()
    for body in ({}, {"announce": True}):  # full before any question
        with pytest.raises(Refusal) as full:
            await clinic.enter(admin, "conn/admin", **body)
        assert full.value.code == refusals.CALL_FULL
    colleague = clinic.provider(KIM)
    with pytest.raises(Refusal) as also_full:
        await clinic.enter(colleague, "conn/kim", announce=True)
    assert also_full.value.code == refusals.CALL_FULL
    assert notices(clinic.pushes["conn/ada"]) == []
    assert await clinic.staff_entries() == clinic.ids((LEE, False))

    # A second tab of someone in the call is the same person: it is not refused.
    await clinic.enter(lee, "conn/lee-2")
    # Once the interpreter leaves, there is a place again (3 in + 2 in tabs of one + 3 invited).
    await clinic.send(interpreter, "conn/guest", "room.leave")
    view = await clinic.enter(admin, "conn/admin", announce=True)
    people = {p["name"] for p in view["participants"]}
    assert people == {"Ada", "Dr Lee", "Org Admin"}
    assert len(people) + 3 == MAX_PARTICIPANTS


async def test_after_a_restart_the_provider_who_joined_is_known_from_the_call_record(
    tmp_path: Path,
) -> None:
    """A restarted room must not let a colleague in unannounced because it forgot who joined."""
    path = tmp_path / "w.sqlite3"
    async with open_store(path) as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        users = await make_users(store)
        async with trio.open_nursery() as nursery:
            first = await boot(nursery, store, demo, users)
            await in_call(first)
            nursery.cancel_scope.cancel()  # the whole server goes down mid-call
    async with open_store(path) as store, trio.open_nursery() as nursery:
        second = await boot(nursery, store, demo, users, first.ticket)
        with pytest.raises(Refusal) as asked:
            await second.enter(second.provider(KIM), "conn/kim")
        assert asked.value.code == refusals.JOIN_CONFIRM_NEEDED and LEE in asked.value.detail
        view = await second.enter(second.provider(LEE), "conn/lee")
        assert view["state"] == "in_call"
        nursery.cancel_scope.cancel()
