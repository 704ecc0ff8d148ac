"""Clinic setup through the setup actor, over a real SQLite store seeded with the demo clinic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors.admin.setup import (
    SETUP_ADDRESS,
    AreaEntry,
    CreateArea,
    CreateStaff,
    GrantRole,
    ListSetup,
    RevokeRole,
    SetupView,
    StaffEntry,
    UpdateAreaHours,
)
from actors.boot import start_actors
from actors.messages import ArrivalTicket, Arrive, DescribeArea, FindArea
from actors.principal import AreaPlace, Grant, Principal, Role, Scope
from actors.staff.signin import SIGN_IN_ADDRESS, SignIn
from actors.waiting.areas import AREAS_ADDRESS
from runtime import Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import areas as area_store
from storage import audit, seed
from storage.db import Store, open_store

ALL_WEEK = tuple((day, "00:00", "24:00") for day in range(7))


@dataclass
class Clinic:
    registry: Registry
    store: Store
    demo: seed.DemoInfo

    def admin(self) -> Principal:
        grant = Grant(Role.ORG_ADMIN, Scope.ORG, str(self.demo.org_id))
        return Principal(
            "staff",
            "Admin",
            str(self.demo.admin_user_id),
            str(self.demo.org_id),
            frozenset({grant}),
        )

    def provider(self) -> Principal:
        grants = frozenset(Grant(Role.PROVIDER, Scope.AREA, str(a.id)) for a in self.demo.areas)
        return Principal(
            "staff", "Dr", str(self.demo.provider_user_id), str(self.demo.org_id), grants
        )

    async def ask(self, message: object) -> object:
        return await self.registry.ref(SETUP_ADDRESS).ask(message)


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        yield Clinic(registry, store, demo)
        nursery.cancel_scope.cancel()


async def test_admin_creates_an_area_that_accepts_arrivals(clinic: Clinic) -> None:
    created = await clinic.ask(
        CreateArea(clinic.admin(), clinic.demo.unit_id, "Dermatology", "Europe/Oslo", ALL_WEEK)
    )
    assert isinstance(created, AreaEntry) and created.time_zone == "Europe/Oslo"
    address = await clinic.registry.ref(AREAS_ADDRESS).ask(FindArea(created.slug))
    ticket = await clinic.registry.ref(address).ask(Arrive({"name": "Ada"}))
    assert isinstance(ticket, ArrivalTicket)
    view = await clinic.ask(ListSetup(clinic.admin()))
    assert isinstance(view, SetupView)
    assert "Dermatology" in [a.name for u in view.units for a in u.areas]
    rows = await audit.list_entries(clinic.store, action=audit.AREA_CREATED)
    assert [(r.area_id, r.subject) for r in rows] == [(created.id, "Dermatology")]


async def test_bad_input_is_invalid_and_a_provider_is_forbidden(clinic: Clinic) -> None:
    before = await area_store.list_areas(clinic.store)
    for principal, zone, code in [
        (clinic.admin(), "Tz", "invalid"),
        (clinic.provider(), "Europe/Oslo", "forbidden"),
    ]:
        with pytest.raises(Refusal) as refused:
            await clinic.ask(CreateArea(principal, clinic.demo.unit_id, "X", zone, ALL_WEEK))
        assert refused.value.code == code
    with pytest.raises(Refusal) as empty:
        await clinic.ask(CreateArea(clinic.admin(), clinic.demo.unit_id, "  ", "UTC"))
    assert empty.value.code == "invalid"
    forbidden_messages: list[object] = [
        ListSetup(clinic.provider()),
        CreateStaff(clinic.provider(), "mallory", "Mallory", "long enough password"),
        GrantRole(clinic.provider(), clinic.demo.provider_user_id, "org_admin", "org", 1),
    ]
    for message in forbidden_messages:
        with pytest.raises(Refusal) as forbidden:
            await clinic.ask(message)
        assert forbidden.value.code == "forbidden"
    assert await area_store.list_areas(clinic.store) == before
    assert await audit.list_entries(clinic.store, action=audit.ROLE_GRANTED) == []
    assert await audit.list_entries(clinic.store, action=audit.STAFF_CREATED) == []


async def test_new_staff_member_gets_the_provider_role_and_it_is_audited(clinic: Clinic) -> None:
    admin = clinic.admin()
    user = await clinic.ask(CreateStaff(admin, "nurse", "Nurse Joy", "a good long password"))
    assert isinstance(user, StaffEntry)
    with pytest.raises(Refusal) as taken:
        await clinic.ask(CreateStaff(admin, "nurse", "Other", "a good long password"))
    assert taken.value.code == "invalid"
    area = clinic.demo.areas[0]
    await clinic.ask(GrantRole(admin, user.id, "provider", "area", area.id, "10.0.0.9"))
    session = await clinic.registry.ref(SIGN_IN_ADDRESS).ask(
        SignIn("nurse", "a good long password")
    )
    place = AreaPlace(str(area.id), str(clinic.demo.unit_id), str(clinic.demo.org_id))
    assert session.principal.has_role(Role.PROVIDER, place)
    assert await clinic.ask(RevokeRole(admin, user.id, "provider", "area", area.id)) is True
    created = await audit.list_entries(clinic.store, action=audit.STAFF_CREATED)
    assert [r.subject for r in created] == ["nurse"]
    assert all("password" not in str(r.details) for r in created)
    granted = await audit.list_entries(clinic.store, action=audit.ROLE_GRANTED)
    assert [(r.subject, r.area_id, r.remote_addr) for r in granted] == [
        ("nurse", area.id, "10.0.0.9")
    ]
    assert len(await audit.list_entries(clinic.store, action=audit.ROLE_REVOKED)) == 1


async def test_admin_closes_an_area_by_changing_its_hours(clinic: Clinic) -> None:
    area = clinic.demo.areas[0]
    address = await clinic.registry.ref(AREAS_ADDRESS).ask(FindArea(area.slug))
    assert (await clinic.registry.ref(address).ask(DescribeArea())).open_now
    with pytest.raises(Refusal) as forbidden:
        await clinic.ask(UpdateAreaHours(clinic.provider(), area.id, ()))
    assert forbidden.value.code == "forbidden"
    updated = await clinic.ask(UpdateAreaHours(clinic.admin(), area.id, ()))
    assert isinstance(updated, AreaEntry) and updated.opening_hours == ()
    assert not (await clinic.registry.ref(address).ask(DescribeArea())).open_now
