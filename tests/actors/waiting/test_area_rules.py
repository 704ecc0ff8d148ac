"""Every forbidden action in a waiting area and a room: a typed refusal and no state change.

Also the transfer rules (same unit only, referrer role, not in a call) and the tokens (single use,
expired, wrong room), all at actor level over a real SQLite store seeded with the demo clinic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.boot import start_actors
from actors.inbound import Inbound, RedeemToken
from actors.messages import (
    ArrivalTicket,
    Arrive,
    ClaimInvite,
    DescribeForLeaflet,
    FindArea,
    ReloadArea,
    RoomSnapshot,
)
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import areas as area_store
from storage import audit, callers, orgs, seed
from storage import rooms as room_store
from storage.db import Store, open_store
from tests.actors.inbox import Inbox

ALL_WEEK = tuple(area_store.OpeningInterval(d, "00:00", "24:00") for d in range(7))


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    area: str
    area_id: int
    other_area_id: int  # same unit
    far_area_id: int  # another unit of the organisation

    def staff(self, name: str, *grants: tuple[Role, int]) -> Principal:
        return Principal(
            "staff",
            name,
            "1",
            None,
            frozenset(Grant(role, Scope.AREA, str(area)) for role, area in grants),
        )

    async def ask(self, to: str, message: object) -> Any:
        return await self.registry.ref(to).ask(message)

    async def send(self, to: str, kind: str, body: dict[str, object], who: Principal) -> object:
        conn = f"conn/{who.display_name}"
        if conn not in self.registry:
            await self.root.start_child(ChildSpec(conn, Inbox))
        return await self.ask(to, Inbound(kind, body, who, conn))

    async def arrive(self, name: str) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.ask(self.area, Arrive({"name": name}))
        return ticket


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        far_unit = await orgs.create_unit(store, demo.org_id, "Far Clinic")
        far = await area_store.create_area(store, far_unit.id, "Far", opening_hours=ALL_WEEK)
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        await registry.ref(AREAS_ADDRESS).ask(ReloadArea(far.id))
        area = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
        yield Clinic(registry, root, store, area, demo.areas[0].id, demo.areas[1].id, far.id)
        nursery.cancel_scope.cancel()


async def state(clinic: Clinic, ticket: ArrivalTicket) -> tuple[str, int, str, list[str], int, int]:
    """Everything a forbidden action could have changed, from storage and from the actors."""
    row = await callers.get_caller(clinic.store, ticket.caller_id)
    room = await clinic.ask(f"room/{ticket.room_id}", RoomSnapshot(ticket.room_id, "", 0))
    assert isinstance(room, RoomSnapshot)
    tokens = await room_store.list_tokens(clinic.store, ticket.room_id)
    entries = await audit.list_entries(clinic.store)
    return (row.status, row.area_id, room.state, room.participants, len(tokens), len(entries))


async def test_a_stranger_is_refused_everything_and_changes_nothing(clinic: Clinic) -> None:
    ticket = await clinic.arrive("Ada")
    before = await state(clinic, ticket)
    # A provider (and referrer) of the other area of the same unit, but not of this one.
    stranger = clinic.staff(
        "stranger", (Role.PROVIDER, clinic.other_area_id), (Role.REFERRER, clinic.other_area_id)
    )
    caller_id = ticket.caller_id
    forbidden: list[tuple[str, str, dict[str, object]]] = [
        (clinic.area, "area.watch", {}),
        (clinic.area, "caller.join", {"caller_id": caller_id}),
        (clinic.area, "caller.hold", {"caller_id": caller_id}),
        (clinic.area, "caller.end", {"caller_id": caller_id}),
        (clinic.area, "caller.transfer", {"caller_id": caller_id, "target_area": "2"}),
        (f"room/{ticket.room_id}", "room.enter", {}),
    ]
    for to, kind, body in forbidden:
        with pytest.raises(Refusal) as refused:
            await clinic.send(to, kind, body, stranger)
        assert refused.value.code == "forbidden", kind
    with pytest.raises(Refusal) as leaflet:
        await clinic.ask(clinic.area, DescribeForLeaflet(stranger))
    assert leaflet.value.code == "forbidden"
    # Another caller's token cannot enter Ada's room, nor claim as if it were an invite.
    bob = await clinic.arrive("Bob")
    bob_who = await clinic.ask(f"room/{bob.room_id}", RedeemToken(bob.token.split(".", 1)[1]))
    assert isinstance(bob_who, Principal)
    with pytest.raises(Refusal) as other_room:
        await clinic.send(f"room/{ticket.room_id}", "room.enter", {}, bob_who)
    assert other_room.value.code == "forbidden"
    with pytest.raises(Refusal) as wrong_token:
        await clinic.ask(f"room/{ticket.room_id}", RedeemToken(bob.token.split(".", 1)[1]))
    assert wrong_token.value.code == "invalid_token"
    with pytest.raises(Refusal) as not_an_invite:
        await clinic.ask(f"room/{ticket.room_id}", ClaimInvite(ticket.token.split(".", 1)[1], "X"))
    assert not_an_invite.value.code == "invalid_token"

    after = await state(clinic, ticket)
    assert after[:5] == before[:5]
    assert after[5] == before[5] + 1  # only Bob's arrival was audited


async def test_in_the_room_only_a_joined_provider_enters_and_only_staff_invite(
    clinic: Clinic,
) -> None:
    ticket = await clinic.arrive("Ada")
    room = f"room/{ticket.room_id}"
    provider = clinic.staff("provider", (Role.PROVIDER, clinic.area_id))
    with pytest.raises(Refusal) as early:  # not joined from the list yet
        await clinic.send(room, "room.enter", {}, provider)
    assert early.value.code == "not_joined"
    ada = await clinic.ask(room, RedeemToken(ticket.token.split(".", 1)[1]))
    assert isinstance(ada, Principal)
    await clinic.send(room, "room.enter", {}, ada)
    with pytest.raises(Refusal) as caller_invites:
        await clinic.send(room, "call.invite", {"label": "Friend"}, ada)
    assert caller_invites.value.code == "forbidden"
    await clinic.send(clinic.area, "caller.join", {"caller_id": ticket.caller_id}, provider)
    await clinic.send(room, "room.enter", {}, provider)
    with pytest.raises(Refusal) as busy:  # a caller in a call is not transferred
        await clinic.send(
            clinic.area,
            "caller.transfer",
            {"caller_id": ticket.caller_id, "target_area": str(clinic.other_area_id)},
            clinic.staff(
                "provider",
                (Role.PROVIDER, clinic.area_id),
                (Role.REFERRER, clinic.other_area_id),
            ),
        )
    assert busy.value.code == "in_call"
    tokens = await room_store.list_tokens(clinic.store, ticket.room_id)
    assert [t.kind for t in tokens] == ["caller"]  # the caller's attempt minted nothing


async def test_transfers_stay_in_the_unit(clinic: Clinic) -> None:
    ticket = await clinic.arrive("Ada")
    everywhere = clinic.staff(
        "referrer",
        (Role.PROVIDER, clinic.area_id),
        (Role.REFERRER, clinic.far_area_id),
        (Role.PROVIDER, clinic.far_area_id),
    )
    for target, code in [
        (str(clinic.far_area_id), "other_unit"),
        (str(clinic.area_id), "bad_target"),
        ("nowhere", "bad_target"),
        ("99999", "not_found"),
    ]:
        with pytest.raises(Refusal) as refused:
            await clinic.send(
                clinic.area,
                "caller.transfer",
                {"caller_id": ticket.caller_id, "target_area": target},
                everywhere,
            )
        assert refused.value.code == code, target
    row = await callers.get_caller(clinic.store, ticket.caller_id)
    assert (row.area_id, row.status) == (clinic.area_id, "waiting")
    watched = await clinic.send(clinic.area, "area.watch", {}, everywhere)
    assert isinstance(watched, dict) and [c["name"] for c in watched["callers"]] == ["Ada"]


async def test_invites_are_single_use_and_expire(clinic: Clinic) -> None:
    ticket = await clinic.arrive("Ada")
    room = f"room/{ticket.room_id}"
    past = datetime.now(UTC) - timedelta(days=2)
    stale = await room_store.issue_token(
        clinic.store,
        ticket.room_id,
        "invite",
        single_use=True,
        expires_at=past + timedelta(hours=1),
        label="Interpreter",
        now=past,
    )
    with pytest.raises(Refusal) as expired:
        await clinic.ask(room, ClaimInvite(stale.raw, "Olena"))
    assert expired.value.code == "invalid_token" and "expired" in expired.value.detail
    fresh = await room_store.issue_token(
        clinic.store,
        ticket.room_id,
        "invite",
        single_use=True,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    guest = await clinic.ask(room, ClaimInvite(fresh.raw, "Olena"))
    with pytest.raises(Refusal) as again:
        await clinic.ask(room, ClaimInvite(fresh.raw, "Mallory"))
    assert again.value.code == "invalid_token"
    assert guest is not None
    guests = [t for t in await room_store.list_tokens(clinic.store, ticket.room_id) if t.label]
    assert sorted(t.label for t in guests if t.kind == "guest") == ["Olena"]
