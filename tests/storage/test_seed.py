"""The demo seed fills an empty database once, in one transaction, and never touches real data."""

from __future__ import annotations

import pytest

from storage import areas, orgs, staff
from storage.db import Store
from storage.errors import DatabaseNotEmptyError
from storage.seed import is_empty, seed_demo


async def test_seed_demo_on_empty_database(store: Store) -> None:
    assert await is_empty(store)
    info = await seed_demo(store, "$argon2id$demo")
    assert not await is_empty(store)

    assert (await orgs.get_unit(store, info.unit_id)).name == "Demo Clinic"
    assert [a.name for a in info.areas] == ["General Practice", "Physiotherapy"]
    for demo_area in info.areas:
        area = await areas.get_area_by_slug(store, demo_area.slug)
        assert area is not None and area.id == demo_area.id
        assert {h.weekday for h in area.opening_hours} == set(range(7))
        assert all((h.opens, h.closes) == ("00:00", "24:00") for h in area.opening_hours)
        roles = await staff.roles_in_area(store, info.provider_user_id, area.id)
        assert {"provider", "referrer"} <= roles
        assert "org_admin" in await staff.roles_in_area(store, info.admin_user_id, area.id)

    for username in (info.provider_username, info.admin_username):
        login = await staff.find_login(store, username)
        assert login is not None and login.password_hash == "$argon2id$demo"


async def test_seed_refuses_a_database_with_data(store: Store) -> None:
    await orgs.create_organisation(store, "Real clinic")
    assert not await is_empty(store)
    with pytest.raises(DatabaseNotEmptyError):
        await seed_demo(store, "h")
    assert [o.name for o in await orgs.list_organisations(store)] == ["Real clinic"]


async def test_seed_twice_is_refused(store: Store) -> None:
    await seed_demo(store, "h")
    with pytest.raises(DatabaseNotEmptyError):
        await seed_demo(store, "h")
    assert len(await staff.list_users(store)) == 2
