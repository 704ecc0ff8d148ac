"""The waiting-area journey at actor level, over a real SQLite store seeded with the demo clinic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors.boot import start_actors
from actors.inbound import Inbound, Push, RedeemToken
from actors.messages import (
    ArrivalTicket,
    Arrive,
    ClaimInvite,
    DescribeArea,
    FindArea,
    HoldFromCall,
)
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import audit, callers, seed
from storage.db import Store, open_store
from tests.actors.inbox import Inbox


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    demo: seed.DemoInfo
    area: str
    other_area: str

    def provider(self, *roles: tuple[Role, str]) -> Principal:
        grants = frozenset(Grant(role, Scope.AREA, area) for role, area in roles)
        return Principal(
            kind="staff",
            display_name="Dr Demo",
            user_id="1",
            org_id=str(self.demo.org_id),
            grants=grants,
        )

    async def inbox(self, name: str) -> list[Push]:
        events: list[Push] = []
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        return events

    async def arrive(self, name: str, area: str | None = None) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.registry.ref(area or self.area).ask(
            Arrive({"name": name, "reason": "check-up"})
        )
        return ticket

    async def send(
        self, to: str, kind: str, body: dict[str, object], who: Principal, conn: str
    ) -> dict[str, object]:
        reply: dict[str, object] = await self.registry.ref(to).ask(Inbound(kind, body, who, conn))
        return reply


async def boot(nursery: trio.Nursery, store: Store, demo: seed.DemoInfo) -> Clinic:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await start_actors(nursery, root, store)
    area = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
    other = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[1].slug))
    return Clinic(registry, root, store, demo, area, other)


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        yield await boot(nursery, store, demo)
        nursery.cancel_scope.cancel()


async def test_arrival_appears_on_the_dashboard_longest_wait_first(clinic: Clinic) -> None:
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    events = await clinic.inbox("conn/dash")
    snapshot = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    assert snapshot["callers"] == []
    first = await clinic.arrive("Ada")
    await clinic.arrive("Bob")
    await trio.testing.wait_all_tasks_blocked()
    names = [e.body["caller"]["name"] for e in events if e.type == "queue.caller"]
    assert names == ["Ada", "Bob"]
    again = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    assert [c["name"] for c in again["callers"]] == ["Ada", "Bob"]  # type: ignore[union-attr]
    assert first.token.startswith(first.room_id + ".")


async def test_required_fields_and_roles_are_refused_without_changes(clinic: Clinic) -> None:
    with pytest.raises(Refusal) as missing:
        await clinic.registry.ref(clinic.area).ask(Arrive({"reason": "no name"}))
    assert missing.value.code == "missing_field"
    stranger = clinic.provider((Role.PROVIDER, "99999"))
    for kind, body in [("area.watch", {}), ("caller.join", {"caller_id": "x"})]:
        with pytest.raises(Refusal) as refused:
            await clinic.send(clinic.area, kind, body, stranger, "conn/x")
        assert refused.value.code == "forbidden"
    info = await clinic.registry.ref(clinic.area).ask(DescribeArea())
    assert info.open_now


async def test_second_provider_gets_a_clear_message_not_a_second_call(clinic: Clinic) -> None:
    area_id = clinic.area.split("/")[1]
    ticket = await clinic.arrive("Ada")
    one = clinic.provider((Role.PROVIDER, area_id))
    two = Principal(
        kind="staff", display_name="Dr Two", user_id="2", org_id=one.org_id, grants=one.grants
    )
    joined = await clinic.send(
        clinic.area, "caller.join", {"caller_id": ticket.caller_id}, one, "conn/1"
    )
    assert joined["room"] == ticket.room_id
    with pytest.raises(Refusal) as second:
        await clinic.send(
            clinic.area, "caller.join", {"caller_id": ticket.caller_id}, two, "conn/2"
        )
    assert second.value.code == "already_joined" and "Dr Demo" in second.value.detail


async def test_transfer_needs_the_referrer_role_in_the_target_area(clinic: Clinic) -> None:
    area_id = clinic.area.split("/")[1]
    other_id = clinic.other_area.split("/")[1]
    ticket = await clinic.arrive("Ada")
    only_provider = clinic.provider((Role.PROVIDER, area_id))
    with pytest.raises(Refusal) as refused:
        await clinic.send(
            clinic.area,
            "caller.transfer",
            {"caller_id": ticket.caller_id, "target_area": other_id},
            only_provider,
            "c/1",
        )
    assert refused.value.code == "forbidden"
    referrer = clinic.provider(
        (Role.PROVIDER, area_id), (Role.REFERRER, other_id), (Role.PROVIDER, other_id)
    )
    await clinic.send(
        clinic.area,
        "caller.transfer",
        {"caller_id": ticket.caller_id, "target_area": other_id},
        referrer,
        "c/1",
    )
    here = await clinic.send(clinic.area, "area.watch", {}, referrer, "c/1")
    there = await clinic.send(clinic.other_area, "area.watch", {}, referrer, "c/1")
    assert here["callers"] == []
    moved = there["callers"][0]  # type: ignore[index]
    assert moved["name"] == "Ada" and moved["transferred_from"] == clinic.demo.areas[0].name


async def test_restart_with_callers_waiting_loses_nobody(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    async with open_store(path) as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        async with trio.open_nursery() as nursery:
            first = await boot(nursery, store, demo)
            ticket = await first.arrive("Ada")
            await first.arrive("Bob")
            nursery.cancel_scope.cancel()  # the whole server goes down
    async with open_store(path) as store, trio.open_nursery() as nursery:
        second = await boot(nursery, store, demo)
        provider = second.provider((Role.PROVIDER, second.area.split("/")[1]))
        queue = await second.send(second.area, "area.watch", {}, provider, "conn/d")
        assert [c["name"] for c in queue["callers"]] == ["Ada", "Bob"]  # type: ignore[union-attr]
        # The caller's token still opens their room after the restart.
        who = await second.registry.ref(f"room/{ticket.room_id}").ask(
            RedeemToken(ticket.token.split(".", 1)[1])
        )
        assert who.kind == "caller" and who.display_name == "Ada"
        nursery.cancel_scope.cancel()


async def test_ending_the_call_revokes_tokens_and_invites(clinic: Clinic) -> None:
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    ticket = await clinic.arrive("Ada")
    room = f"room/{ticket.room_id}"
    secret = ticket.token.split(".", 1)[1]
    caller = await clinic.registry.ref(room).ask(RedeemToken(secret))
    caller_events = await clinic.inbox("conn/caller")
    await clinic.send(room, "room.enter", {}, caller, "conn/caller")
    await clinic.send(
        clinic.area, "caller.join", {"caller_id": ticket.caller_id}, provider, "conn/p"
    )
    await clinic.inbox("conn/p")
    entered = await clinic.send(room, "room.enter", {}, provider, "conn/p")
    assert entered["state"] == "in_call"
    invite = await clinic.send(room, "call.invite", {"label": "Interpreter"}, provider, "conn/p")
    invite_secret = str(invite["url"]).split(".", 1)[1]
    guest = await clinic.registry.ref(room).ask(ClaimInvite(invite_secret, "Olena"))
    with pytest.raises(Refusal):  # single use
        await clinic.registry.ref(room).ask(ClaimInvite(invite_secret, "Olena"))
    assert guest.token.startswith(ticket.room_id)
    await clinic.send(room, "call.end", {}, provider, "conn/p")
    await trio.testing.wait_all_tasks_blocked()
    assert any(e.type == "room.state" and e.body.get("state") == "ended" for e in caller_events)
    assert room not in clinic.registry
    queue = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/p")
    assert queue["callers"] == []


async def test_hold_from_the_call_has_the_rules_and_effects_of_the_providers_hold(
    clinic: Clinic,
) -> None:
    """A call asks its area with a typed message, not a forged client frame; same outcome."""
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    stranger = clinic.provider((Role.PROVIDER, "99999"))
    ticket = await clinic.arrive("Ada")
    area = clinic.registry.ref(clinic.area)
    with pytest.raises(Refusal) as not_in_call:
        await area.ask(HoldFromCall(ticket.caller_id, provider, "10.0.0.9"))
    assert not_in_call.value.code == "not_in_call"
    await clinic.send(clinic.area, "caller.join", {"caller_id": ticket.caller_id}, provider, "c/1")
    with pytest.raises(Refusal) as forbidden:
        await area.ask(HoldFromCall(ticket.caller_id, stranger, "10.0.0.9"))
    assert forbidden.value.code == "forbidden"
    with pytest.raises(Refusal) as unknown:
        await area.ask(HoldFromCall("nobody", provider, "10.0.0.9"))
    assert unknown.value.code == "not_found"

    assert await area.ask(HoldFromCall(ticket.caller_id, provider, "10.0.0.9")) == {}
    queue = await clinic.send(clinic.area, "area.watch", {}, provider, "c/1")
    held = queue["callers"][0]  # type: ignore[index]
    assert held["status"] == "on_hold" and held["with"] == []
    assert (await callers.get_caller(clinic.store, ticket.caller_id)).status == "on_hold"
    entries = [e for e in await audit.list_entries(clinic.store) if e.action == audit.HOLD]
    assert [(e.subject, e.remote_addr) for e in entries] == [(ticket.caller_id, "10.0.0.9")]
