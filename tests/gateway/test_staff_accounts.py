"""Administrators deactivate staff and reset passwords, staff change their own (issue 15): each
ends the member's live sessions and closes their open dashboards within a second; an
administrator of another organisation neither sees nor changes them."""

from __future__ import annotations

import pytest

from actors import addresses, refusals
from actors.admin.setup import (
    ChangeOwnPassword,
    ListSetup,
    ResetStaffPassword,
    SetStaffActive,
    SetupAdmin,
    SetupView,
)
from actors.principal import Grant, Principal, Role, Scope
from actors.staff.directory import CLOSE_SESSION_ENDED
from runtime import ActorRef, ChildSpec, Refusal
from services.passwords import Passwords
from storage import orgs, sessions, staff
from tests.gateway.test_staff_rights import (
    PROMPTLY,
    StaffWorld,
    closed_with,
    staff_hello,
    staff_socket,
    world,  # noqa: F401 (fixture)
)

PASSWORD = "the current password"
NEW_PASSWORD = "a brand new password"


def admin_of(org_id: int, user_id: str = "999") -> Principal:
    grant = Grant(Role.ORG_ADMIN, Scope.ORG, str(org_id))
    return Principal("staff", "Admin", user_id, str(org_id), frozenset({grant}))


async def setup_actor(w: StaffWorld, passwords: Passwords) -> ActorRef:
    return await w.root.start_child(
        ChildSpec(addresses.SETUP, lambda: SetupAdmin(w.store, passwords))
    )


async def test_deactivation_from_the_setup_actor_closes_the_dashboard(
    world: StaffWorld,  # noqa: F811
) -> None:
    setup = await setup_actor(world, Passwords.fast_for_tests())
    async with staff_socket(world) as ws:
        await staff_hello(ws)
        await setup.ask(SetStaffActive(admin_of(world.org_id), world.user_id, False))
        assert await closed_with(ws, PROMPTLY) == CLOSE_SESSION_ENDED
    assert not (await staff.get_user(world.store, world.user_id)).active
    # Reactivating revives no session: they sign in again.
    await setup.ask(SetStaffActive(admin_of(world.org_id), world.user_id, True))
    assert await sessions.get_valid_session(world.store, world.session_id) is None


async def test_a_password_reset_closes_the_dashboard(world: StaffWorld) -> None:  # noqa: F811
    passwords = Passwords.fast_for_tests()
    setup = await setup_actor(world, passwords)
    async with staff_socket(world) as ws:
        await staff_hello(ws)
        await setup.ask(ResetStaffPassword(admin_of(world.org_id), world.user_id, NEW_PASSWORD))
        assert await closed_with(ws, PROMPTLY) == CLOSE_SESSION_ENDED
    login = await staff.find_login(world.store, "dana")
    assert login is not None and (await passwords.verify(login.password_hash, NEW_PASSWORD)).ok
    with pytest.raises(Refusal) as short:
        await setup.ask(ResetStaffPassword(admin_of(world.org_id), world.user_id, "short"))
    assert short.value.code == refusals.INVALID


async def test_changing_ones_own_password_proves_the_current_one_and_signs_out(
    world: StaffWorld,  # noqa: F811
) -> None:
    passwords = Passwords.fast_for_tests()
    await staff.update_user(
        world.store, world.user_id, password_hash=await passwords.hash(PASSWORD)
    )
    setup = await setup_actor(world, passwords)
    me = Principal("staff", "Dr Dana", str(world.user_id), str(world.org_id), frozenset())
    async with staff_socket(world) as ws:
        await staff_hello(ws)
        with pytest.raises(Refusal) as wrong:
            await setup.ask(ChangeOwnPassword(me, "not it", NEW_PASSWORD))
        assert wrong.value.code == refusals.INVALID
        assert await sessions.get_valid_session(world.store, world.session_id) is not None
        await setup.ask(ChangeOwnPassword(me, PASSWORD, NEW_PASSWORD))
        assert await closed_with(ws, PROMPTLY) == CLOSE_SESSION_ENDED
    login = await staff.find_login(world.store, "dana")
    assert login is not None and (await passwords.verify(login.password_hash, NEW_PASSWORD)).ok


async def test_another_organisations_administrator_neither_sees_nor_changes_them(
    world: StaffWorld,  # noqa: F811
) -> None:
    setup = await setup_actor(world, Passwords.fast_for_tests())
    other = await orgs.create_organisation(world.store, "Other Org")
    await orgs.create_unit(world.store, other.id, "Other Clinic")
    stranger = admin_of(other.id, user_id="998")
    view = await setup.ask(ListSetup(stranger))
    assert isinstance(view, SetupView)
    assert world.user_id not in {person.id for person in view.staff}
    own = await setup.ask(ListSetup(admin_of(world.org_id)))
    assert world.user_id in {person.id for person in own.staff}
    for message in (
        SetStaffActive(stranger, world.user_id, False),
        ResetStaffPassword(stranger, world.user_id, NEW_PASSWORD),
        SetStaffActive(stranger, 123456, False),  # no such user: the same answer
    ):
        with pytest.raises(Refusal) as refused:
            await setup.ask(message)
        assert refused.value.code == refusals.FORBIDDEN
    assert (await staff.get_user(world.store, world.user_id)).active
    assert await sessions.get_valid_session(world.store, world.session_id) is not None
