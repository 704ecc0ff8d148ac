"""Organisations, units and waiting areas round-trip through a real database."""

from __future__ import annotations

from datetime import date

import pytest

from storage import areas, orgs
from storage.areas import FormField, OpeningInterval
from storage.db import Store
from storage.errors import ConflictError, NotFoundError


async def test_org_and_unit_round_trip(store: Store) -> None:
    org = await orgs.create_organisation(store, "Health Board")
    unit = await orgs.create_unit(store, org.id, "North Clinic")
    assert await orgs.get_organisation(store, org.id) == org
    assert await orgs.get_unit(store, unit.id) == unit
    assert await orgs.list_units(store, org.id) == [unit]
    assert org.created_at.tzinfo is not None
    with pytest.raises(ConflictError):
        await orgs.create_unit(store, org.id, "North Clinic")
    with pytest.raises(ConflictError):
        await orgs.create_unit(store, 999, "Nowhere")  # foreign keys are on
    with pytest.raises(NotFoundError):
        await orgs.get_unit(store, 999)


async def _unit(store: Store) -> int:
    org = await orgs.create_organisation(store, "Org")
    return (await orgs.create_unit(store, org.id, "Clinic")).id


async def test_area_round_trip(store: Store) -> None:
    unit_id = await _unit(store)
    hours = (OpeningInterval(0, "08:30", "12:00"), OpeningInterval(0, "13:00", "17:30"))
    form = (
        FormField("name", "Name", "name", True),
        FormField("dob", "Date of birth", "dob", True),
        FormField("allergies", "Allergies", "custom", False),
    )
    area = await areas.create_area(
        store,
        unit_id,
        "GP",
        time_zone="Europe/Kyiv",
        opening_hours=hours,
        form_fields=form,
        consent_text="I agree",
        kind="group",
    )
    assert area.opening_hours == hours
    assert area.form_fields == form
    assert (area.time_zone, area.consent_text, area.kind, area.active) == (
        "Europe/Kyiv",
        "I agree",
        "group",
        True,
    )
    assert len(area.slug) >= 20
    assert await areas.get_area(store, area.id) == area
    assert await areas.get_area_by_slug(store, area.slug) == area
    assert await areas.get_area_by_slug(store, "nope") is None


async def test_slugs_are_unique_and_rotate(store: Store) -> None:
    unit_id = await _unit(store)
    slugs = {(await areas.create_area(store, unit_id, f"A{i}")).slug for i in range(20)}
    assert len(slugs) == 20
    area = await areas.get_area_by_slug(store, next(iter(slugs)))
    assert area is not None
    rotated = await areas.rotate_slug(store, area.id)
    assert rotated.slug != area.slug
    assert await areas.get_area_by_slug(store, area.slug) is None


async def test_area_update_and_listing(store: Store) -> None:
    unit_id = await _unit(store)
    area = await areas.create_area(store, unit_id, "B")
    await areas.create_area(store, unit_id, "A")
    updated = await areas.update_area(
        store,
        area.id,
        name="C",
        time_zone="UTC",
        opening_hours=(OpeningInterval(6, "00:00", "24:00"),),
        active=False,
    )
    assert (updated.name, updated.slug, updated.active) == ("C", area.slug, False)
    assert updated.opening_hours == (OpeningInterval(6, "00:00", "24:00"),)
    assert [a.name for a in await areas.list_areas(store, unit_id)] == ["A"]
    assert [a.name for a in await areas.list_areas(store, include_inactive=True)] == ["A", "C"]
    with pytest.raises(ConflictError):
        await areas.update_area(store, area.id, name="A")


async def test_area_validation(store: Store) -> None:
    unit_id = await _unit(store)
    with pytest.raises(ValueError, match="time zone"):
        await areas.create_area(store, unit_id, "X", time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="name"):
        await areas.create_area(
            store, unit_id, "X", form_fields=(FormField("phone", "Phone", "phone", True),)
        )
    with pytest.raises(ValueError):
        OpeningInterval(0, "18:00", "09:00")
    with pytest.raises(ValueError):
        OpeningInterval(7, "09:00", "10:00")
    with pytest.raises(ValueError):
        OpeningInterval(0, "9am", "10:00")
    with pytest.raises(ValueError):
        FormField("Bad Key", "x", "custom", False)


async def test_closures(store: Store) -> None:
    unit_id = await _unit(store)
    area = await areas.create_area(store, unit_id, "GP")
    xmas = await areas.add_closure(store, area.id, date(2026, 12, 25), date(2026, 12, 26), "Xmas")
    easter = await areas.add_closure(store, area.id, date(2026, 4, 3), date(2026, 4, 6))
    assert await areas.list_closures(store, area.id) == [easter, xmas]
    assert await areas.list_closures(store, area.id, from_day=date(2026, 5, 1)) == [xmas]
    await areas.remove_closure(store, easter.id)
    assert await areas.list_closures(store, area.id) == [xmas]
    with pytest.raises(NotFoundError):
        await areas.remove_closure(store, easter.id)
    with pytest.raises(ValueError):
        await areas.add_closure(store, area.id, date(2026, 1, 2), date(2026, 1, 1))
