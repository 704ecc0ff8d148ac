"""Reconnection within and after the grace period, at actor level, in real (short) time.

The rooms host is built with a one-second grace instead of 120 s (the constructor parameter the
server leaves at its default), so the tests run the real idle check of a real room actor over a real
SQLite store: no mocked clock, no sleeping for two minutes.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from actors.inbound import ConnectionClosed, Inbound, Push
from actors.messages import ArrivalTicket, Arrive, FindArea
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS, ROOMS_ADDRESS, AreaHost
from actors.waiting.rooms import RECONNECT_GRACE, Room, RoomHost
from gateway.auth import Authenticator
from runtime import ChildSpec, Refusal, Registry, Supervisor
from services.passwords import Passwords
from storage import callers, reports, seed
from storage import rooms as room_store
from storage.db import Store, open_store
from storage.errors import TokenRejectedError
from tests.actors.inbox import Inbox

#: Short enough to wait out in a test, long enough that an immediate reconnect is well within it.
GRACE = 1.0
#: A reconnect "within the grace period" comes back after this fraction of it.
WITHIN = GRACE / 10
#: Bounds every wait for an event: generous for a loaded 2-core machine.
EVENT_TIMEOUT = 15.0
POLL = 0.02


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

    async def inbox(self, name: str) -> list[Push]:
        events: list[Push] = []
        await self.root.start_child(ChildSpec(name, lambda: Inbox(events)))
        return events

    async def arrive(self, name: str) -> ArrivalTicket:
        ticket: ArrivalTicket = await self.registry.ref(self.area).ask(Arrive({"name": name}))
        return ticket

    async def connect(self, ticket: ArrivalTicket, conn: str) -> dict[str, object]:
        """What the gateway does for a caller's tab: redeem the token, then enter the room."""
        who = await Authenticator(self.registry).authenticate(ticket.token, None, "127.0.0.1")
        await self.inbox(conn)
        reply: dict[str, object] = await self.registry.ref(f"room/{ticket.room_id}").ask(
            Inbound("room.enter", {}, who, conn)
        )
        return reply

    def disconnect(self, ticket: ArrivalTicket, conn: str) -> None:
        """What the gateway tells the room when the tab closes."""
        who = Principal("caller", "", room_id=ticket.room_id)
        self.registry.ref(f"room/{ticket.room_id}").tell(ConnectionClosed(conn, who))

    async def queue(self) -> list[dict[str, object]]:
        reply = await self.registry.ref(self.area).ask(
            Inbound("area.watch", {}, self.provider(), "conn/dash")
        )
        callers_now: list[dict[str, object]] = reply["callers"]
        return callers_now


@pytest.fixture
async def clinic(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Clinic]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        rooms: Supervisor = await nursery.start(Supervisor(registry, "rooms").run)
        areas: Supervisor = await nursery.start(Supervisor(registry, "areas").run)
        await root.start_child(
            ChildSpec(ROOMS_ADDRESS, lambda: RoomHost(store, rooms, None, grace=GRACE))
        )
        await root.start_child(ChildSpec(AREAS_ADDRESS, lambda: AreaHost(store, areas)))
        area = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
        yield Clinic(registry, root, store, area, demo.areas[0].id)
        nursery.cancel_scope.cancel()


async def wait_for(events: list[Push], matches: Callable[[Push], bool], start: int = 0) -> Push:
    """The first event from ``events[start:]`` that matches, waiting for it if need be."""
    with trio.fail_after(EVENT_TIMEOUT):
        while True:
            found = [e for e in events[start:] if matches(e)]
            if found:
                return found[0]
            await trio.sleep(POLL)


async def wait_until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(EVENT_TIMEOUT):
        while True:
            if condition():
                return
            await trio.sleep(POLL)


def presence(caller_id: str, connected: bool) -> Callable[[Push], bool]:
    return lambda e: (
        e.type == "queue.caller"
        and e.body["caller"]["id"] == caller_id
        and e.body["caller"]["connected"] is connected
    )


def test_the_server_default_grace_is_two_minutes() -> None:
    assert RECONNECT_GRACE == 120.0
    assert inspect.signature(RoomHost).parameters["grace"].default == RECONNECT_GRACE
    assert inspect.signature(Room).parameters["grace"].default == RECONNECT_GRACE


async def test_reconnect_within_grace_keeps_the_same_place_and_room(clinic: Clinic) -> None:
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()  # the provider watches
    tickets = [await clinic.arrive(name) for name in ("Ada", "Bob", "Cy")]
    for i, ticket in enumerate(tickets):
        await clinic.connect(ticket, f"conn/tab-{i}")
    before = await clinic.queue()
    ada = tickets[0]

    clinic.disconnect(ada, "conn/tab-0")  # Ada closes her tab ...
    await wait_for(dashboard, presence(ada.caller_id, connected=False))
    mark = len(dashboard)
    await trio.sleep(WITHIN)
    entered = await clinic.connect(ada, "conn/tab-0-again")  # ... and comes back with her token

    assert entered["room"] == ada.room_id and entered["state"] == "waiting"
    await wait_for(dashboard, presence(ada.caller_id, connected=True), start=mark)
    after = await clinic.queue()
    assert [c["name"] for c in after] == ["Ada", "Bob", "Cy"]
    assert [(c["id"], c["room"], c["queued_at"]) for c in after] == [
        (c["id"], c["room"], c["queued_at"]) for c in before
    ]
    assert after[0]["connected"] is True
    assert not [e for e in dashboard if e.type == "queue.removed"]
    # Connected callers are never timed out, however long they wait.
    await trio.sleep(2 * GRACE)
    assert [c["name"] for c in await clinic.queue()] == ["Ada", "Bob", "Cy"]
    assert (await callers.get_caller(clinic.store, ada.caller_id)).status == "waiting"


async def test_after_grace_the_caller_has_left_and_the_room_is_gone(clinic: Clinic) -> None:
    dashboard = await clinic.inbox("conn/dash")
    await clinic.queue()
    ada, bob = await clinic.arrive("Ada"), await clinic.arrive("Bob")
    await clinic.connect(ada, "conn/ada")
    await clinic.connect(bob, "conn/bob")
    since = datetime.now(UTC) - timedelta(minutes=1)

    clinic.disconnect(ada, "conn/ada")
    left_at = trio.current_time()
    await wait_for(dashboard, presence(ada.caller_id, connected=False))
    removed = await wait_for(
        dashboard, lambda e: e.type == "queue.removed" and e.body["id"] == ada.caller_id
    )
    assert trio.current_time() - left_at >= GRACE  # not before the grace period ran out

    # The providers' lists: Ada is gone, Bob (still connected) keeps his place.
    assert removed.body["area"] == clinic.area_id
    assert [c["name"] for c in await clinic.queue()] == ["Bob"]
    # Her room and its token are dead: the gateway refuses the token with a typed error.
    await wait_until(lambda: f"room/{ada.room_id}" not in clinic.registry)
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
