"""Reconnection within and after the grace period, at actor level, on a virtual clock.

The room's grace is a timer. The clock here (pytest-trio's ``mock_clock``) stands still until the
test moves it, so the storage thread (real SQLite, real time) never races it: each step runs to
completion at one virtual instant, then the test jumps the clock. So the tests use the server's
own two minutes, and see the caller dropped at exactly the grace, not at the next idle check.
Waits for pushes are unbounded on a clock that only the test moves; pytest's timeout bounds them.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import addresses
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.messages import ArrivalTicket, Arrive, FindArea
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AreaHost
from actors.waiting.rooms import RECONNECT_GRACE, Room, RoomHost
from gateway.auth import Authenticator
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import callers, reports, seed
from storage import rooms as room_store
from storage.db import Store, open_store
from storage.errors import TokenRejectedError
from tests.actors.inbox import Inbox, Pushes

GRACE = RECONNECT_GRACE
#: The last step before the grace runs out (an exact binary fraction: the sums stay exact).
STEP = 1.0
#: Real seconds during which nothing may run for the room to count as settled: every message
#: and storage call that one virtual instant set off has been handled (a commit takes milliseconds).
SETTLE = 0.05


@dataclass
class Clinic:
    registry: Registry
    root: Supervisor
    store: Store
    area: str
    area_id: int

    def provider(self) -> Principal:
        grant = Grant(Role.PROVIDER, Scope.AREA, str(self.area_id))
        return Principal("staff", "Dr Demo", "1", None, frozenset({grant}))

    async def inbox(self, name: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        return events

    async def arrive(self, name: str) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.registry.ref(self.area).ask(Arrive({"name": name}))
        return ticket

    async def connect(self, ticket: ArrivalTicket, conn: str) -> dict[str, object]:
        """What the gateway does for a caller's tab: redeem the token, then enter the room."""
        who = await Authenticator(self.registry).authenticate(ticket.token, None, "127.0.0.1")
        await self.inbox(conn)
        reply: dict[str, object] = await self.registry.ref(addresses.room(ticket.room_id)).ask(
            Inbound("room.enter", {}, who, conn)
        )
        return reply

    def disconnect(self, ticket: ArrivalTicket, conn: str) -> None:
        """What the gateway tells the room when the tab closes."""
        who = Principal("caller", "", room_id=ticket.room_id)
        self.registry.ref(addresses.room(ticket.room_id)).tell(ConnectionClosed(conn, who))

    async def queue(self) -> list[dict[str, object]]:
        reply = await self.registry.ref(self.area).ask(
            Inbound("area.watch", {}, self.provider(), "conn/dash")
        )
        callers_now: list[dict[str, object]] = reply["callers"]
        return callers_now

    async def names(self) -> list[object]:
        return [c["name"] for c in await self.queue()]


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        rooms: Supervisor = await nursery.start(Supervisor(registry, "rooms").run)
        areas: Supervisor = await nursery.start(Supervisor(registry, "areas").run)
        await root.start_child(ChildSpec(addresses.ROOMS, lambda: RoomHost(store, rooms, None)))
        await root.start_child(ChildSpec(addresses.AREAS, lambda: AreaHost(store, areas)))
        area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
        yield Clinic(registry, root, store, area, demo.areas[0].id)
        nursery.cancel_scope.cancel()


async def settle() -> None:
    """Let everything the current virtual instant set off run to its end."""
    await trio.testing.wait_all_tasks_blocked(SETTLE)


def presence(caller_id: str, connected: bool) -> Callable[[Push], bool]:
    return lambda e: (
        e.type == "queue.caller"
        and e.body["caller"]["id"] == caller_id
        and e.body["caller"]["connected"] is connected
    )


def removed(caller_id: str) -> Callable[[Push], bool]:
    return lambda e: e.type == "queue.removed" and e.body["id"] == caller_id


def test_the_server_default_grace_is_two_minutes() -> None:
    assert RECONNECT_GRACE == 120.0
    assert inspect.signature(RoomHost).parameters["grace"].default == RECONNECT_GRACE
    assert inspect.signature(Room).parameters["grace"].default == RECONNECT_GRACE


async def test_reconnect_within_grace_keeps_the_same_place_and_room(
    clinic: Clinic, mock_clock: trio.testing.MockClock
) -> None:
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()  # the provider watches
    tickets = [await clinic.arrive(name) for name in ("Ada", "Bob", "Cy")]
    for i, ticket in enumerate(tickets):
        await clinic.connect(ticket, f"conn/tab-{i}")
    before = await clinic.queue()
    ada = tickets[0]

    mark = len(dashboard)
    clinic.disconnect(ada, "conn/tab-0")  # Ada closes her tab ...
    await dashboard.wait_for(presence(ada.caller_id, connected=False), start=mark)
    mark = len(dashboard)
    mock_clock.jump(GRACE - STEP)  # ... and comes back in the grace's last second, with her token
    entered = await clinic.connect(ada, "conn/tab-0-again")

    assert entered["room"] == ada.room_id and entered["state"] == "waiting"
    await dashboard.wait_for(presence(ada.caller_id, connected=True), start=mark)
    after = await clinic.queue()
    assert [c["name"] for c in after] == ["Ada", "Bob", "Cy"]
    assert [(c["id"], c["room"], c["queued_at"]) for c in after] == [
        (c["id"], c["room"], c["queued_at"]) for c in before
    ]
    assert after[0]["connected"] is True
    # Connected callers are never timed out, however long they wait; her first grace was cancelled.
    mock_clock.jump(2 * GRACE)
    await settle()
    assert await clinic.names() == ["Ada", "Bob", "Cy"]
    assert not [e for e in dashboard if e.type == "queue.removed"]
    assert (await callers.get_caller(clinic.store, ada.caller_id)).status == "waiting"


async def test_after_grace_the_caller_has_left_and_the_room_is_gone(
    clinic: Clinic, mock_clock: trio.testing.MockClock
) -> None:
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()
    ada, bob = await clinic.arrive("Ada"), await clinic.arrive("Bob")
    await clinic.connect(ada, "conn/ada")
    await clinic.connect(bob, "conn/bob")
    since = datetime.now(UTC) - timedelta(minutes=1)

    mark = len(dashboard)
    clinic.disconnect(ada, "conn/ada")
    left_at = trio.current_time()
    await dashboard.wait_for(presence(ada.caller_id, connected=False), start=mark)
    mock_clock.jump(GRACE - STEP)
    await settle()
    assert await clinic.names() == ["Ada", "Bob"]  # not before the grace ran out ...
    mock_clock.jump(STEP)
    gone = await dashboard.wait_for(removed(ada.caller_id))
    assert trio.current_time() - left_at == GRACE  # ... and when it did, not up to 30 s later

    # The providers' lists: Ada is gone, Bob (still connected) keeps his place.
    assert gone.body["area"] == clinic.area_id
    assert await clinic.names() == ["Bob"]
    # Her room and its token are dead: the gateway refuses the token with a typed error.
    await settle()
    assert addresses.room(ada.room_id) not in clinic.registry
    with pytest.raises(Refusal) as refused:
        await Authenticator(clinic.registry).authenticate(ada.token, None, "127.0.0.1")
    assert refused.value.code == "invalid_token"
    with pytest.raises(TokenRejectedError):
        await room_store.check_token(clinic.store, ada.token.split(".", 1)[1])
    assert (await room_store.get_room(clinic.store, ada.room_id)).state != "open"
    # Recorded as having left before anyone saw her.
    row = await callers.get_caller(clinic.store, ada.caller_id)
    assert row.status == "left" and row.first_call_at is None and row.finished_at is not None
    report = await reports.area_report(
        clinic.store, clinic.area_id, since, datetime.now(UTC) + timedelta(minutes=1)
    )
    assert report.left_before_seen == 1
    assert (await callers.get_caller(clinic.store, bob.caller_id)).status == "waiting"


async def test_coming_back_cancels_the_grace_and_leaving_again_starts_a_new_one(
    clinic: Clinic, mock_clock: trio.testing.MockClock
) -> None:
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()
    ada = await clinic.arrive("Ada")
    await clinic.connect(ada, "conn/ada")

    mark = len(dashboard)
    clinic.disconnect(ada, "conn/ada")
    await dashboard.wait_for(presence(ada.caller_id, connected=False), start=mark)
    mock_clock.jump(GRACE / 2)
    await clinic.connect(ada, "conn/ada-2")  # back: the first grace is cancelled
    mark = len(dashboard)
    clinic.disconnect(ada, "conn/ada-2")
    left_again_at = trio.current_time()
    await dashboard.wait_for(presence(ada.caller_id, connected=False), start=mark)

    mock_clock.jump(GRACE - STEP)  # well past where the first grace would have ended
    await settle()
    assert await clinic.names() == ["Ada"]
    mock_clock.jump(STEP)
    await dashboard.wait_for(removed(ada.caller_id))
    assert trio.current_time() - left_again_at == GRACE


async def test_a_caller_who_never_connects_is_gone_after_the_grace(
    clinic: Clinic, mock_clock: trio.testing.MockClock
) -> None:
    """A ticket's room waits the grace for its caller's first connection (a closed arrival tab)."""
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()
    arrived_at = trio.current_time()
    ada = await clinic.arrive("Ada")
    mock_clock.jump(GRACE)
    await dashboard.wait_for(removed(ada.caller_id))
    assert trio.current_time() - arrived_at == GRACE
    assert (await callers.get_caller(clinic.store, ada.caller_id)).status == "left"
