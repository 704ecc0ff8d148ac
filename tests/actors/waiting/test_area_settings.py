"""Editing a waiting area's settings through the setup actor, over a real store and running actors.

A settings change goes: page -> ``admin/setup`` (permission, validation, one write, audit) ->
``areas`` -> the running ``area/<id>``, which re-reads its settings in place: nobody waiting and no
watching provider is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trio

from actors.admin.setup import (
    MAX_CONSENT,
    SETUP_ADDRESS,
    AddAreaClosure,
    AreaSettings,
    ClosureEntry,
    Fields,
    GetAreaSettings,
    RemoveAreaClosure,
    UpdateAreaSettings,
)
from actors.boot import start_actors
from actors.inbound import Inbound, Push
from actors.messages import AreaPublic, ArrivalTicket, Arrive, DescribeArea, FindArea
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import areas as area_store
from storage import audit, orgs, seed
from storage.db import Store, open_store
from tests.actors.inbox import Inbox

ALL_WEEK = tuple((day, "00:00", "24:00") for day in range(7))
FORM: Fields = (
    ("name", "Full name", "name", True),
    ("dob", "Date of birth", "dob", True),
    ("reason", "Reason for your visit", "reason", False),
    ("custom_1", "NHS number", "custom", True),
)


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    demo: seed.DemoInfo
    area: str
    other_unit_id: int

    @property
    def area_id(self) -> int:
        return self.demo.areas[0].id

    def staff(self, *grants: Grant) -> Principal:
        return Principal("staff", "Someone", "1", str(self.demo.org_id), frozenset(grants))

    def org_admin(self) -> Principal:
        return self.staff(Grant(Role.ORG_ADMIN, Scope.ORG, str(self.demo.org_id)))

    def unit_admin(self, unit_id: int | None = None) -> Principal:
        unit = self.demo.unit_id if unit_id is None else unit_id
        return self.staff(Grant(Role.UNIT_ADMIN, Scope.UNIT, str(unit)))

    def provider(self) -> Principal:
        return self.staff(Grant(Role.PROVIDER, Scope.AREA, str(self.area_id)))

    def settings(self, principal: Principal, **changes: object) -> UpdateAreaSettings:
        current = UpdateAreaSettings(
            principal,
            self.area_id,
            name="General Practice",
            time_zone="Europe/London",
            opening_hours=ALL_WEEK,
            form_fields=(("name", "Name", "name", True),),
            consent_text="",
            active=True,
        )
        return replace(current, **changes)  # type: ignore[arg-type]

    async def setup(self, message: object) -> object:
        return await self.registry.ref(SETUP_ADDRESS).ask(message)

    async def describe(self) -> AreaPublic:
        info: AreaPublic = await self.registry.ref(self.area).ask(DescribeArea())
        return info

    async def arrive(self, details: dict[str, str]) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.registry.ref(self.area).ask(Arrive(details))
        return ticket

    async def watch(self, conn: str) -> list[str]:
        reply = await self.registry.ref(self.area).ask(
            Inbound("area.watch", {}, self.provider(), conn)
        )
        return [c["name"] for c in reply["callers"]]


async def boot(nursery: trio.Nursery, store: Store, demo: seed.DemoInfo, other: int) -> Clinic:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    await start_actors(nursery, root, store)
    area = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
    return Clinic(registry, root, store, demo, area, other)


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        other = await orgs.create_unit(store, demo.org_id, "Other Clinic")
        yield await boot(nursery, store, demo, other.id)
        nursery.cancel_scope.cancel()


async def test_settings_change_reaches_the_running_area_and_nobody_is_lost(clinic: Clinic) -> None:
    events: list[Push] = []
    await clinic.root.start_child(ChildSpec("conn/dash", lambda: Inbox(events)))
    await clinic.arrive({"name": "Ada"})
    await clinic.arrive({"name": "Bob"})
    assert await clinic.watch("conn/dash") == ["Ada", "Bob"]

    reply = await clinic.setup(
        clinic.settings(
            clinic.unit_admin(),
            name="GP Evening",
            time_zone="Europe/Kyiv",
            # Two spells on Monday that meet, so the area is open whenever this runs (the next
            # arrival below must be let in; split hours with a gap failed on Monday evenings).
            opening_hours=((0, "00:00", "12:00"), (0, "12:00", "24:00"), *ALL_WEEK[1:]),
            form_fields=FORM,
            consent_text="  The call is not recorded.  ",
            remote_addr="10.0.0.7",
        )
    )

    assert isinstance(reply, AreaSettings)
    assert reply.area.name == "GP Evening" and reply.form_fields == FORM
    stored = await area_store.get_area(clinic.store, clinic.area_id)
    assert (stored.name, stored.time_zone, stored.consent_text) == (
        "GP Evening",
        "Europe/Kyiv",
        "The call is not recorded.",
    )
    assert [(h.weekday, h.opens, h.closes) for h in stored.opening_hours][:2] == [
        (0, "00:00", "12:00"),
        (0, "12:00", "24:00"),
    ]
    info = await clinic.describe()  # the running actor, not a restarted one
    assert info.name == "GP Evening" and info.time_zone == "Europe/Kyiv"
    assert info.consent_text == "The call is not recorded."
    assert [f["key"] for f in info.form_fields] == ["name", "dob", "reason", "custom_1"]

    # The new form applies to the next arrival; the callers already waiting are all still there.
    with pytest.raises(Refusal) as missing:
        await clinic.arrive({"name": "Cy", "dob": "1990-01-01"})
    assert missing.value.code == "missing_field" and "NHS number" in missing.value.detail
    cy = await clinic.arrive({"name": "Cy", "dob": "1990-01-01", "custom_1": "943 476 5919"})
    # The provider's existing subscription survived: Cy's arrival is pushed to it.
    # Pushed before the arrival was acknowledged: once every task waits, the inbox has it.
    await trio.testing.wait_all_tasks_blocked()
    assert any(e.type == "queue.caller" and e.body["caller"]["id"] == cy.caller_id for e in events)
    assert await clinic.watch("conn/dash") == ["Ada", "Bob", "Cy"]

    entries = await audit.list_entries(clinic.store, action=audit.AREA_UPDATED)
    assert len(entries) == 1
    assert entries[0].action == "area.updated" and entries[0].area_id == clinic.area_id
    assert entries[0].remote_addr == "10.0.0.7" and entries[0].subject == "GP Evening"
    assert entries[0].details["changed"] == [
        "consent_text",
        "form_fields",
        "name",
        "opening_hours",
        "time_zone",
    ]


async def test_deactivating_refuses_new_arrivals_but_keeps_those_waiting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.sqlite3"
    async with open_store(path) as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        async with trio.open_nursery() as nursery:
            clinic = await boot(nursery, store, demo, 0)
            ada = await clinic.arrive({"name": "Ada"})
            await clinic.setup(clinic.settings(clinic.org_admin(), active=False))

            with pytest.raises(Refusal) as refused:
                await clinic.arrive({"name": "Bob"})
            assert refused.value.code == "inactive"
            assert "not taking callers" in refused.value.detail
            info = await clinic.describe()
            assert not info.active and not info.open_now
            # Ada still waits, and a provider can still see and join her.
            assert await clinic.watch("conn/dash") == ["Ada"]
            joined = await clinic.registry.ref(clinic.area).ask(
                Inbound("caller.join", {"caller_id": ada.caller_id}, clinic.provider(), "c/p")
            )
            assert joined["room"] == ada.room_id
            nursery.cancel_scope.cancel()
        # After a server restart the inactive area still runs, with Ada in its queue.
        async with trio.open_nursery() as nursery:
            again = await boot(nursery, store, demo, 0)
            assert await again.watch("conn/dash") == ["Ada"]
            assert not (await again.describe()).active
            await again.setup(again.settings(again.org_admin(), active=True))
            bob = await again.arrive({"name": "Bob"})
            assert bob.caller_id and await again.watch("conn/dash") == ["Ada", "Bob"]
            nursery.cancel_scope.cancel()


async def test_wrong_roles_and_bad_input_are_refused_and_change_nothing(clinic: Clinic) -> None:
    before = await area_store.get_area(clinic.store, clinic.area_id)
    admin = clinic.org_admin()
    for principal in (clinic.provider(), clinic.unit_admin(clinic.other_unit_id)):
        forbidden: list[object] = [
            clinic.settings(principal, name="Taken over"),
            GetAreaSettings(principal, clinic.area_id),
            AddAreaClosure(principal, clinic.area_id, date(2030, 1, 1), date(2030, 1, 2)),
            RemoveAreaClosure(principal, clinic.area_id, 1),
        ]
        for message in forbidden:
            with pytest.raises(Refusal) as refused:
                await clinic.setup(message)
            assert refused.value.code == "forbidden", message
    with pytest.raises(Refusal) as unknown:  # an unknown area looks the same as a foreign one
        await clinic.setup(GetAreaSettings(admin, 99999))
    assert unknown.value.code == "forbidden"

    invalid: list[tuple[UpdateAreaSettings, str]] = [
        (clinic.settings(admin, time_zone="Mars/Olympus_Mons"), "time zone"),
        (clinic.settings(admin, time_zone=" "), "time zone"),
        (clinic.settings(admin, opening_hours=((0, "9am", "5pm"),)), "HH:MM"),
        (clinic.settings(admin, opening_hours=((0, "17:00", "09:00"),)), "open before"),
        (clinic.settings(admin, opening_hours=((7, "09:00", "17:00"),)), "weekday"),
        (
            clinic.settings(admin, opening_hours=((2, "09:00", "13:00"), (2, "12:00", "17:00"))),
            "Wednesday: 09:00-13:00 overlaps 12:00-17:00",
        ),
        (clinic.settings(admin, name="   "), "area name"),
        (clinic.settings(admin, name="x" * 121), "area name"),
        (clinic.settings(admin, name="Physiotherapy"), "already has an area called"),
        (clinic.settings(admin, consent_text="y" * (MAX_CONSENT + 1)), "consent"),
        (clinic.settings(admin, form_fields=(("dob", "Born", "dob", True),)), "name"),
        (clinic.settings(admin, form_fields=(("name", "Name", "name", False),)), "name"),
        (
            clinic.settings(
                admin,
                form_fields=(
                    ("name", "N", "name", True),
                    ("x", "A", "custom", False),
                    ("x", "B", "custom", False),
                ),
            ),
            "same key",
        ),
        (clinic.settings(admin, form_fields=(("name", "", "name", True),)), "label"),
        (clinic.settings(admin, form_fields=(("Bad Key", "N", "name", True),)), "key"),
        (clinic.settings(admin, form_fields=(("name", "N", "fax", True),)), "field"),
    ]
    for message, why in invalid:
        with pytest.raises(Refusal) as refused:
            await clinic.setup(message)
        assert refused.value.code == "invalid", message
        assert why.lower() in refused.value.detail.lower(), (why, refused.value.detail)
    for start, end in [(date(2030, 1, 5), date(2030, 1, 4)), (date(2030, 1, 1), date(2031, 6, 1))]:
        with pytest.raises(Refusal) as refused:
            await clinic.setup(AddAreaClosure(admin, clinic.area_id, start, end))
        assert refused.value.code == "invalid"
    with pytest.raises(Refusal) as no_such:
        await clinic.setup(RemoveAreaClosure(admin, clinic.area_id, 12345))
    assert no_such.value.code == "invalid"

    assert await area_store.get_area(clinic.store, clinic.area_id) == before
    assert await area_store.list_closures(clinic.store, clinic.area_id) == []
    assert await audit.list_entries(clinic.store, action=audit.AREA_UPDATED) == []
    assert (await clinic.describe()).name == before.name


async def test_a_closure_today_closes_the_area_until_it_is_removed(clinic: Clinic) -> None:
    admin = clinic.unit_admin()  # a unit admin of the area's own unit may edit it
    today = datetime.now(ZoneInfo("Europe/London")).date()
    closure = await clinic.setup(
        AddAreaClosure(admin, clinic.area_id, today, today + timedelta(days=1), "Bank holiday")
    )
    assert isinstance(closure, ClosureEntry) and closure.reason == "Bank holiday"
    info = await clinic.describe()
    assert not info.open_now and info.active
    assert info.next_opening is not None
    reopens = datetime.fromisoformat(info.next_opening).astimezone(ZoneInfo("Europe/London"))
    assert reopens.date() == today + timedelta(days=2)
    with pytest.raises(Refusal) as closed:
        await clinic.arrive({"name": "Ada"})
    assert closed.value.code == "closed"
    settings = await clinic.setup(GetAreaSettings(admin, clinic.area_id))
    assert isinstance(settings, AreaSettings) and settings.closures == (closure,)
    assert settings.unit_name == seed.DEMO_UNIT

    assert await clinic.setup(RemoveAreaClosure(admin, clinic.area_id, closure.id)) is True
    assert (await clinic.describe()).open_now
    assert (await clinic.arrive({"name": "Ada"})).caller_id
    entries = await audit.list_entries(clinic.store, action=audit.AREA_UPDATED)
    assert [e.details["changed"] for e in entries] == [["closures"], ["closures"]]
    assert entries[0].details["closure_removed"] == entries[1].details["closure_added"]
    assert entries[1].details["closure_added"] == [
        today.isoformat(),
        (today + timedelta(days=1)).isoformat(),
    ]


async def test_an_inactive_area_takes_no_transfers_either(clinic: Clinic) -> None:
    other = clinic.demo.areas[1]
    await clinic.setup(
        clinic.settings(
            clinic.org_admin(), area_id=other.id, name=other.name, time_zone="UTC", active=False
        )
    )
    ada = await clinic.arrive({"name": "Ada"})
    referrer = clinic.staff(
        Grant(Role.PROVIDER, Scope.AREA, str(clinic.area_id)),
        Grant(Role.REFERRER, Scope.AREA, str(other.id)),
    )
    with pytest.raises(Refusal) as refused:
        await clinic.registry.ref(clinic.area).ask(
            Inbound(
                "caller.transfer",
                {"caller_id": ada.caller_id, "target_area": str(other.id)},
                referrer,
                "c/r",
            )
        )
    assert refused.value.code == "inactive" and other.name in refused.value.detail
    assert await clinic.watch("conn/dash") == ["Ada"]
