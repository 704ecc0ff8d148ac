"""Issue 15: the idle timeout beside the absolute one, on an injected clock (the Directory reads the
time through ``clock``; storage gets it as ``now``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trio

from actors import refusals
from actors.staff.directory import DIRECTORY_ADDRESS, DescribeSession, Directory, ResolveSession
from runtime import ActorRef, ChildSpec, Refusal, Registry, Supervisor
from storage import sessions, staff
from storage.db import Store, open_store
from storage.times import utcnow

IDLE = timedelta(minutes=60)
TTL = timedelta(hours=12)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class World:
    store: Store
    directory: ActorRef
    clock: Clock
    user_id: int


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock(utcnow())  # now: code that ignores the clock agrees at first
    async with open_store(tmp_path / "idle.sqlite3") as store, trio.open_nursery() as nursery:
        user = await staff.create_user(store, "dana", "Dr Dana", "not-a-hash")
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await sup.start_child(
            ChildSpec(
                DIRECTORY_ADDRESS,
                lambda: Directory(store, clock=clock, ttl=TTL, idle_timeout=IDLE),
            )
        )
        yield World(store, ref, clock, user.id)
        nursery.cancel_scope.cancel()


async def refused(world: World, session_id: str) -> bool:
    try:
        await world.directory.ask(ResolveSession(session_id))
    except Refusal as refusal:
        assert refusal.code == refusals.UNAUTHENTICATED
        return True
    return False


async def test_a_session_nobody_uses_for_the_idle_timeout_is_over(world: World) -> None:
    """Before the fix a session lived its 12 hours whether or not anyone used it."""
    created = await sessions.create_session(world.store, world.user_id, now=world.clock())
    world.clock.advance(IDLE - timedelta(minutes=1))
    assert not await refused(world, created.session_id)
    world.clock.advance(IDLE - timedelta(minutes=1))  # used 59 minutes ago: still on
    assert not await refused(world, created.session_id)
    world.clock.advance(IDLE + timedelta(seconds=1))  # idle for over an hour
    assert await refused(world, created.session_id)


async def test_page_requests_keep_a_session_on_but_never_past_the_absolute_limit(
    world: World,
) -> None:
    created = await sessions.create_session(world.store, world.user_id, now=world.clock())
    step = timedelta(minutes=30)
    for _ in range(TTL // step - 1):  # a page every half hour for 11.5 hours
        world.clock.advance(step)
        await world.directory.ask(DescribeSession(created.session_id))
    world.clock.advance(step)  # 12 h after sign-in
    assert await refused(world, created.session_id)


async def test_a_shorter_configured_idle_timeout_wins_over_the_one_set_at_sign_in(
    tmp_path: Path,
) -> None:
    """The sign-in desk sets the default idle deadline; a Directory configured for 15 minutes must
    pull it in at the first request, not let the session idle for the default hour."""
    clock = Clock(utcnow())
    short = timedelta(minutes=15)
    async with open_store(tmp_path / "short.sqlite3") as store, trio.open_nursery() as nursery:
        user = await staff.create_user(store, "dana", "Dr Dana", "not-a-hash")
        sup: Supervisor = await nursery.start(Supervisor(Registry(), "root").run)
        ref = await sup.start_child(
            ChildSpec(DIRECTORY_ADDRESS, lambda: Directory(store, clock=clock, idle_timeout=short))
        )
        world = World(store, ref, clock, user.id)
        created = await sessions.create_session(store, user.id, now=clock())
        await ref.ask(DescribeSession(created.session_id))
        clock.advance(short + timedelta(minutes=1))
        assert await refused(world, created.session_id)
        nursery.cancel_scope.cancel()
