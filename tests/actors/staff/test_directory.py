"""The Directory and the sign-in desk over a real SQLite store: sign-in, sessions, CSRF, rehash,
area listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
from argon2 import PasswordHasher

from actors.principal import AreaPlace, Role
from actors.staff.directory import (
    DIRECTORY_ADDRESS,
    AreaSummary,
    CheckCsrf,
    DescribeSession,
    Directory,
    ListMyAreas,
    ProbeStorage,
    ResolveSession,
    SessionInfo,
    SessionView,
    SignOut,
)
from actors.staff.signin import AUDIT_USERNAME_CHARS, SIGN_IN_ADDRESS, SignIn, SignInDesk
from runtime import ActorRef, ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from services.throttle import FailureThrottle
from storage import areas, audit, orgs, staff
from storage.db import Store, execute, fetch_all, open_store

PASSWORD = "correct horse battery staple"
#: Long enough that a slow machine cannot age the test's failures out (time is tested in
#: tests/services/test_throttle.py with a mock clock).
THROTTLE_WINDOW = 600.0


@dataclass
class World:
    store: Store
    directory: ActorRef
    desk: ActorRef
    passwords: Passwords
    user_id: int
    area_id: int
    unit_id: int
    org_id: int


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    passwords = Passwords.fast_for_tests()
    async with open_store(tmp_path / "dir.sqlite3") as store, trio.open_nursery() as nursery:
        org = await orgs.create_organisation(store, "Org")
        unit = await orgs.create_unit(store, org.id, "Clinic")
        area = await areas.create_area(store, unit.id, "Front desk")
        await areas.create_area(store, unit.id, "Not mine")  # same unit, no grant
        user = await staff.create_user(store, "dana", "Dr Dana", await passwords.hash(PASSWORD))
        await staff.grant_role(store, user.id, "provider", "area", area.id)
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await sup.start_child(ChildSpec(DIRECTORY_ADDRESS, lambda: Directory(store)))
        desk = await sup.start_child(
            ChildSpec(SIGN_IN_ADDRESS, lambda: SignInDesk(store, passwords))
        )
        yield World(store, ref, desk, passwords, user.id, area.id, unit.id, org.id)
        nursery.cancel_scope.cancel()


async def sign_in(world: World, password: str = PASSWORD, username: str = "dana") -> SessionInfo:
    info = await world.desk.ask(SignIn(username, password, "192.0.2.1"))
    assert isinstance(info, SessionInfo)
    return info


async def audit_actions(store: Store) -> list[str]:
    rows = await store.run(fetch_all, "SELECT action FROM audit_log ORDER BY id")
    return [r["action"] for r in rows]


async def test_sign_in_returns_a_session_that_resolves_to_the_principal(world: World) -> None:
    info = await sign_in(world)
    assert info.principal.display_name == "Dr Dana"
    assert info.principal.user_id == str(world.user_id)
    assert info.principal.org_id == str(world.org_id)
    place = AreaPlace(str(world.area_id), str(world.unit_id), str(world.org_id))
    assert info.principal.has_role(Role.PROVIDER, place)
    assert await world.directory.ask(ResolveSession(info.session_id)) == info.principal
    view = await world.directory.ask(DescribeSession(info.session_id))
    assert view == SessionView(info.principal, info.csrf_token)
    assert await audit_actions(world.store) == [audit.SIGN_IN]


async def test_usernames_are_case_insensitive(world: World) -> None:
    info = await sign_in(world, username="DANA")
    assert info.principal.display_name == "Dr Dana"


@pytest.mark.parametrize(
    ("username", "password"),
    [("dana", "not-the-secret"), ("nobody", PASSWORD), ("", ""), ("dana", "x" * 5000)],
)
async def test_bad_credentials_are_one_refusal_and_are_audited(
    world: World, username: str, password: str
) -> None:
    with pytest.raises(Refusal) as refused:
        await world.desk.ask(SignIn(username, password, remote_addr="198.51.100.7"))
    assert refused.value.code == "bad_credentials"
    assert refused.value.detail == "The username or password is not right."
    [row] = await audit.list_entries(world.store)
    assert row.action == audit.SIGN_IN_FAILED
    assert row.actor_user_id is None
    assert row.subject == username
    assert row.remote_addr == "198.51.100.7"
    assert not password or password not in repr(row)
    sessions = await world.store.run(fetch_all, "SELECT * FROM web_sessions")
    assert sessions == []


async def test_an_address_that_keeps_failing_is_refused_for_a_while(
    world: World, nursery: trio.Nursery
) -> None:
    """After its failures an address is refused even with the right password, with one audit
    row for the block; another address is not affected."""
    sup: Supervisor = await nursery.start(Supervisor(Registry(), "throttled").run)
    throttled = await sup.start_child(
        ChildSpec(
            SIGN_IN_ADDRESS,
            lambda: SignInDesk(world.store, world.passwords, FailureThrottle(3, THROTTLE_WINDOW)),
        )
    )
    guesser = "203.0.113.50"
    for guess in ("a-guess-1", "a-guess-2", "a-guess-3"):
        with pytest.raises(Refusal) as refused:
            await throttled.ask(SignIn("dana", guess, guesser))
        assert refused.value.code == "bad_credentials"
    for _ in range(2):
        with pytest.raises(Refusal) as refused:
            await throttled.ask(SignIn("dana", PASSWORD, guesser))
        assert refused.value.code == "too_many_attempts"
    with pytest.raises(Refusal) as unknown:
        await throttled.ask(SignIn("nobody-at-all", PASSWORD, guesser))
    assert unknown.value.code == "too_many_attempts"  # the same answer for any username
    assert isinstance(await throttled.ask(SignIn("dana", PASSWORD, "192.0.2.1")), SessionInfo)
    failed = await audit.list_entries(world.store, action=audit.SIGN_IN_FAILED)
    assert [e.details["reason"] for e in reversed(failed)] == ["wrong_password"] * 3 + ["throttled"]


async def test_a_failed_sign_in_keeps_only_the_start_of_a_long_username(world: World) -> None:
    typed = "  " + "m" * 2000 + "  "
    with pytest.raises(Refusal):
        await world.desk.ask(SignIn(typed, "x" * 12, remote_addr="203.0.113.9"))
    [row] = await audit.list_entries(world.store, action=audit.SIGN_IN_FAILED)
    assert row.subject == "m" * AUDIT_USERNAME_CHARS
    assert row.details == {"reason": "too_long"}


async def test_a_disabled_account_cannot_sign_in(world: World) -> None:
    await staff.update_user(world.store, world.user_id, active=False)
    with pytest.raises(Refusal) as refused:
        await sign_in(world)
    assert refused.value.code == "bad_credentials"


async def test_every_sign_in_gets_a_fresh_session_id_and_csrf_token(world: World) -> None:
    first, second = await sign_in(world), await sign_in(world)
    assert first.session_id != second.session_id
    assert first.csrf_token != second.csrf_token
    # Both stay valid: a provider may be signed in on two devices.
    assert await world.directory.ask(ResolveSession(first.session_id)) == first.principal


async def test_sign_out_ends_the_session_and_is_idempotent(world: World) -> None:
    info = await sign_in(world)
    await world.directory.ask(SignOut(info.session_id, "192.0.2.1"))
    await world.directory.ask(SignOut(info.session_id))
    with pytest.raises(Refusal) as refused:
        await world.directory.ask(ResolveSession(info.session_id))
    assert refused.value.code == "unauthenticated"
    assert await audit_actions(world.store) == [audit.SIGN_IN, audit.SIGN_OUT]


@pytest.mark.parametrize("session_id", ["", "not-a-session", "x" * 5000])
async def test_unknown_sessions_are_unauthenticated(world: World, session_id: str) -> None:
    with pytest.raises(Refusal) as refused:
        await world.directory.ask(ResolveSession(session_id))
    assert refused.value.code == "unauthenticated"


async def test_an_expired_session_is_unauthenticated(world: World) -> None:
    info = await sign_in(world)
    await world.store.run(
        execute, "UPDATE web_sessions SET expires_at = '2000-01-01T00:00:00.000000Z'"
    )
    with pytest.raises(Refusal) as refused:
        await world.directory.ask(ResolveSession(info.session_id))
    assert refused.value.code == "unauthenticated"


async def test_csrf_token_must_match_the_session(world: World) -> None:
    info, other = await sign_in(world), await sign_in(world)
    assert await world.directory.ask(CheckCsrf(info.session_id, info.csrf_token)) is None
    for session_id, token in [
        (info.session_id, other.csrf_token),
        (info.session_id, ""),
        ("", info.csrf_token),
        ("unknown", info.csrf_token),
    ]:
        with pytest.raises(Refusal) as refused:
            await world.directory.ask(CheckCsrf(session_id, token))
        assert refused.value.code == "bad_csrf"


async def test_an_outdated_hash_is_replaced_at_sign_in(world: World) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=16, parallelism=1).hash(PASSWORD)
    await staff.update_user(world.store, world.user_id, password_hash=old)
    await sign_in(world)
    login = await staff.find_login(world.store, "dana")
    assert login is not None
    assert login.password_hash != old
    assert (await world.passwords.verify(login.password_hash, PASSWORD)).needs_rehash is False
    await sign_in(world)  # the new hash works


async def test_areas_listed_are_the_granted_ones(world: World) -> None:
    info = await sign_in(world)
    listed = await world.directory.ask(ListMyAreas(info.principal))
    assert [a.name for a in listed] == ["Front desk"]
    assert isinstance(listed[0], AreaSummary)
    assert listed[0].unit_name == "Clinic"
    await staff.grant_role(world.store, world.user_id, "unit_admin", "unit", world.unit_id)
    listed = await world.directory.ask(ListMyAreas(info.principal))
    assert [a.name for a in listed] == ["Front desk", "Not mine"]


async def test_storage_probe_reports_the_schema_version(world: World) -> None:
    assert await world.directory.ask(ProbeStorage()) >= 1


#: argon2 parameters that make one verify take a noticeable while (hundreds of milliseconds).
SLOW_TIME_COST = 6
SLOW_MEMORY_KIB = 65_536


async def test_session_lookups_do_not_wait_behind_a_slow_sign_in(
    world: World, nursery: trio.Nursery
) -> None:
    """While the desk checks a costly password, the Directory still answers: a lookup sent after
    the sign-in started is answered before the sign-in is (in one mailbox it would queue behind)."""
    info = await sign_in(world)
    slow = PasswordHasher(time_cost=SLOW_TIME_COST, memory_cost=SLOW_MEMORY_KIB, parallelism=1)
    slow_hash = await trio.to_thread.run_sync(slow.hash, PASSWORD)
    await staff.create_user(world.store, "slowpoke", "Dr Slow", slow_hash)
    answered: list[str] = []
    signed_in = trio.Event()

    async def slow_sign_in() -> None:
        await world.desk.ask(SignIn("slowpoke", PASSWORD, "192.0.2.2"), timeout=60)
        answered.append("sign-in")
        signed_in.set()

    nursery.start_soon(slow_sign_in)
    # Every task is blocked: the desk is waiting for its hashing thread.
    await trio.testing.wait_all_tasks_blocked()
    assert await world.directory.ask(ResolveSession(info.session_id)) == info.principal
    answered.append("lookup")
    with trio.fail_after(60):
        await signed_in.wait()
    assert answered == ["lookup", "sign-in"]
