"""Real storage under Trio's virtual clock: SQLite work takes no virtual time.

With ``autojump_clock`` the clock jumps to the next deadline whenever every task is blocked, and a
task waiting for a worker thread counts as blocked: if the store worked in a thread here, every
write would move time on to the next timer (a 5 s ask timeout, a 60 s actor timer) while SQLite
worked. See `storage.db` for how the store keeps its work where the clock can see it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.admin.setup import SETUP_ADDRESS, AreaEntry, CreateArea
from actors.boot import start_actors
from actors.principal import Grant, Principal, Role, Scope
from runtime import Registry, Supervisor
from runtime.kernel import Actor, handles
from runtime.supervisor import ChildSpec
from services.passwords import Passwords
from storage import orgs, seed
from storage.db import Store, open_store

WRITES = 30
ASK_TIMEOUT = 5.0
"""The bound a test puts around each write: on the virtual clock it must never be reached."""
ALARM_DELAY = 60.0
"""An actor timer pending while the writes run: the writes must not bring it forward."""
LEDGER_ADDRESS = "ledger"


@dataclass(frozen=True)
class Record:
    name: str


@dataclass(frozen=True)
class Alarm:
    pass


class Ledger(Actor):
    """Writes an organisation per `Record`; an alarm set at start notes when it went off."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.alarmed_at: float | None = None

    async def on_start(self) -> None:
        self.send_after(ALARM_DELAY, Alarm())

    @handles(Record)
    async def record(self, message: Record) -> int:
        org = await orgs.create_organisation(self.store, message.name)
        return org.id

    @handles(Alarm)
    async def alarm(self, message: Alarm) -> None:
        self.alarmed_at = trio.current_time()


async def test_writes_take_no_virtual_time(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, ALARM_DELAY)  # a deadline the clock could jump to
        for i in range(WRITES):
            with trio.fail_after(ASK_TIMEOUT):
                await orgs.create_organisation(store, f"org {i:02}")
        assert trio.current_time() == start
        nursery.cancel_scope.cancel()
    assert len(await orgs.list_organisations(store)) == WRITES


async def test_concurrent_writes_still_share_batches_on_the_virtual_clock(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    before = store.batches
    with trio.fail_after(ASK_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(WRITES):
                nursery.start_soon(orgs.create_organisation, store, f"org {i:02}")
    assert len(await orgs.list_organisations(store)) == WRITES
    assert store.batches - before < WRITES / 2  # queued while a batch ran, then ran together


async def test_an_actor_writing_to_storage_answers_within_its_timeout(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    ledgers: list[Ledger] = []

    def make() -> Ledger:
        ledgers.append(Ledger(store))
        return ledgers[-1]

    async with trio.open_nursery() as nursery:
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await root.start_child(ChildSpec(LEDGER_ADDRESS, make))
        start = trio.current_time()
        ids = [
            await registry.ref(LEDGER_ADDRESS).ask(Record(f"org {i:02}"), timeout=ASK_TIMEOUT)
            for i in range(WRITES)
        ]
        assert len(set(ids)) == WRITES
        assert trio.current_time() == start
        assert ledgers[-1].alarmed_at is None  # the writes did not move time on to the alarm
        await trio.sleep(2 * ALARM_DELAY)  # and time itself still passes when everyone waits
        assert ledgers[-1].alarmed_at == pytest.approx(start + ALARM_DELAY)
        assert len(ledgers) == 1  # never restarted
        nursery.cancel_scope.cancel()


@pytest.fixture
async def clinic(
    tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[tuple[Registry, seed.DemoInfo]]:
    """The whole actor tree (outbox and area timers pending) over a seeded store."""
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        yield registry, demo
        nursery.cancel_scope.cancel()


async def test_the_actor_tree_creates_areas_on_the_virtual_clock(
    autojump_clock: trio.testing.MockClock, clinic: tuple[Registry, seed.DemoInfo]
) -> None:
    registry, demo = clinic
    org = str(demo.org_id)
    grants = frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, org)})
    admin = Principal("staff", "Admin", str(demo.admin_user_id), org, grants)
    start = trio.current_time()
    for i in range(WRITES // 3):
        created = await registry.ref(SETUP_ADDRESS).ask(
            CreateArea(admin, demo.unit_id, f"Area {i}", "UTC"), timeout=ASK_TIMEOUT
        )
        assert isinstance(created, AreaEntry)
    assert trio.current_time() == start
