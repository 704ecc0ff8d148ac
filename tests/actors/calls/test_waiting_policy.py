"""The waiting-area policy on the call core: a caller's room holds six people, invitations included.

The whole actor tree over a real SQLite store seeded with the demo clinic, as the server runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import addresses, refusals
from actors.boot import start_actors
from actors.calls.routing import call_id_for
from actors.inbound import Inbound, RedeemToken
from actors.messages import Arrive, ClaimInvite, FindArea, RoomSnapshot
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.rooms import MAX_PARTICIPANTS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import seed
from storage.db import open_store
from tests.actors.inbox import Inbox


@dataclass
class Room:
    registry: Registry
    root: Supervisor
    area: str
    area_id: str
    address: str
    room_id: str
    caller_id: str
    caller_secret: str

    def provider(self, user: str) -> Principal:
        grant = Grant(Role.PROVIDER, Scope.AREA, self.area_id)
        return Principal("staff", f"Dr {user}", user_id=user, grants=frozenset({grant}))

    async def send(self, who: Principal, conn: str, kind: str, **body: object) -> Any:
        return await self.registry.ref(self.address).ask(Inbound(kind, dict(body), who, conn))

    async def enter(self, who: Principal, conn: str) -> dict[str, Any]:
        await self.root.start_child(ChildSpec(conn, Inbox))
        reply: dict[str, Any] = await self.send(who, conn, "room.enter")
        return reply

    async def guest(self, invite_url: str, name: str) -> Principal:
        claimed = await self.registry.ref(self.address).ask(
            ClaimInvite(invite_url.split(".", 1)[1], name)
        )
        who: Principal = await self.registry.ref(self.address).ask(
            RedeemToken(claimed.token.split(".", 1)[1])
        )
        return who


@pytest.fixture
async def room(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Room]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
        ticket = await registry.ref(area).ask(Arrive({"name": "Ada", "reason": "knee"}))
        yield Room(
            registry,
            root,
            area,
            area.split("/")[1],
            addresses.room(ticket.room_id),
            ticket.room_id,
            ticket.caller_id,
            ticket.token.split(".", 1)[1],
        )
        nursery.cancel_scope.cancel()


async def test_six_people_invitations_included_and_the_seventh_is_refused(room: Room) -> None:
    ada = await room.registry.ref(room.address).ask(RedeemToken(room.caller_secret))
    await room.enter(ada, "conn/ada")
    doctor = room.provider("1")
    await room.registry.ref(room.area).ask(
        Inbound("caller.join", {"caller_id": room.caller_id}, doctor, "conn/list")
    )
    await room.enter(doctor, "conn/doc")

    # Two people in, four invitations out: the call is full before anyone has claimed one.
    invites = [await room.send(doctor, "conn/doc", "call.invite", label=f"g{n}") for n in range(4)]
    with pytest.raises(Refusal) as no_more:
        await room.send(doctor, "conn/doc", "call.invite")
    assert no_more.value.code == refusals.CALL_FULL

    for n, invite in enumerate(invites):
        await room.enter(await room.guest(invite["url"], f"Guest {n}"), f"conn/g{n}")
    snapshot = await room.registry.ref(room.address).ask(RoomSnapshot(room.room_id, "", 0))
    assert len(snapshot.participants) == MAX_PARTICIPANTS

    # The seventh person, a colleague who is a provider of the area too, is refused ...
    with pytest.raises(Refusal) as full:
        await room.enter(room.provider("2"), "conn/colleague")
    assert full.value.code == refusals.CALL_FULL
    # ... while the caller, whose room it is, always gets back in (another tab here).
    view = await room.enter(ada, "conn/ada-2")
    assert view["state"] == "in_call" and len(view["participants"]) == MAX_PARTICIPANTS + 1


async def test_the_call_has_its_own_id_and_who_may_enter_is_the_policys(room: Room) -> None:
    assert room.room_id not in call_id_for(addresses.room(room.room_id))
    assert addresses.call(call_id_for(addresses.room(room.room_id))) in room.registry.aliases()
    with pytest.raises(Refusal) as early:  # staff only once the caller has been joined
        await room.enter(room.provider("1"), "conn/doc")
    assert early.value.code == refusals.NOT_JOINED
    stranger = Principal("guest", "Mallory", room_id="another-room", participant_id="m")
    with pytest.raises(Refusal) as elsewhere:
        await room.enter(stranger, "conn/m")
    assert elsewhere.value.code == refusals.FORBIDDEN
