"""Staff users, role grants (with unit/org inheritance) and server-side web sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import areas, orgs, sessions, staff
from storage.db import Store, fetch_all
from storage.errors import ConflictError, NotFoundError
from storage.times import utcnow


async def test_user_round_trip_and_login(store: Store) -> None:
    user = await staff.create_user(store, "Dana", "Dr Dana", "$argon2id$hash", email="d@x.org")
    assert await staff.get_user(store, user.id) == user
    assert not hasattr(user, "password_hash")  # safe to hand to templates
    for login in ("dana", "DANA", "D@X.org"):
        record = await staff.find_login(store, login)
        assert record is not None
        assert (record.user, record.password_hash) == (user, "$argon2id$hash")
    assert await staff.find_login(store, "nobody") is None
    with pytest.raises(ConflictError):
        await staff.create_user(store, "dana", "Other", "h")
    updated = await staff.update_user(store, user.id, active=False, password_hash="new")
    assert not updated.active
    record = await staff.find_login(store, "dana")
    assert record is not None and record.password_hash == "new"
    assert await staff.list_users(store) == []
    assert await staff.list_users(store, include_inactive=True) == [updated]


async def test_grants_and_effective_roles(store: Store) -> None:
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    other_unit = await orgs.create_unit(store, org.id, "Other")
    gp = await areas.create_area(store, unit.id, "GP")
    physio = await areas.create_area(store, unit.id, "Physio")
    far = await areas.create_area(store, other_unit.id, "Far")
    dana = await staff.create_user(store, "dana", "Dana", "h")
    boss = await staff.create_user(store, "boss", "Boss", "h")

    grant = await staff.grant_role(store, dana.id, "provider", "area", gp.id)
    assert await staff.grant_role(store, dana.id, "provider", "area", gp.id) == grant  # idempotent
    await staff.grant_role(store, dana.id, "referrer", "unit", unit.id)
    await staff.grant_role(store, boss.id, "org_admin", "org", org.id)

    assert await staff.roles_in_area(store, dana.id, gp.id) == {"provider", "referrer"}
    assert await staff.roles_in_area(store, dana.id, physio.id) == {"referrer"}
    assert await staff.roles_in_area(store, dana.id, far.id) == frozenset()
    assert await staff.roles_in_area(store, boss.id, far.id) == {"org_admin"}
    assert await staff.areas_with_role(store, dana.id, "referrer") == [gp.id, physio.id]
    assert [u.id for u in await staff.users_with_role_in_area(store, gp.id, "provider")] == [
        dana.id
    ]
    assert [g.role for g in await staff.list_grants(store, dana.id)] == ["provider", "referrer"]
    assert await staff.list_scope_grants(store, "org", org.id) == await staff.list_grants(
        store, boss.id
    )

    await staff.update_user(store, dana.id, active=False)
    assert await staff.roles_in_area(store, dana.id, gp.id) == frozenset()

    assert await staff.revoke_role(store, dana.id, "provider", "area", gp.id)
    assert not await staff.revoke_role(store, dana.id, "provider", "area", gp.id)
    with pytest.raises(NotFoundError):
        await staff.grant_role(store, dana.id, "provider", "area", 999)


async def test_session_lifecycle(store: Store) -> None:
    user = await staff.create_user(store, "dana", "Dana", "h")
    created = await sessions.create_session(store, user.id, ttl=timedelta(minutes=30))
    session = await sessions.get_valid_session(store, created.session_id)
    assert session == created.session
    assert session.user_id == user.id and len(session.csrf_token) >= 32
    # Only the hash is stored: the cookie value appears nowhere in the table.
    rows = await store.run(fetch_all, "SELECT * FROM web_sessions")
    assert created.session_id not in repr(rows)

    later = utcnow() + timedelta(minutes=31)
    assert await sessions.get_valid_session(store, created.session_id, now=later) is None
    assert await sessions.get_valid_session(store, "forged") is None

    second = await sessions.create_session(store, user.id)
    assert second.session_id != created.session_id
    assert await sessions.revoke_session(store, second.session_id)
    assert not await sessions.revoke_session(store, second.session_id)
    assert await sessions.get_valid_session(store, second.session_id) is None

    third = await sessions.create_session(store, user.id)
    await staff.update_user(store, user.id, active=False)
    assert await sessions.get_valid_session(store, third.session_id) is None
    assert await sessions.revoke_user_sessions(store, user.id) == 2  # first and third
    assert await sessions.purge_sessions(store) == 3
