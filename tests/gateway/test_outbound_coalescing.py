"""A dashboard that falls behind during a burst is brought up to date, not disconnected.

A real waiting area (real SQLite store, demo clinic) publishes to a real connection session whose
socket does not drain for a while: its writes block, as they do when the client is slow or the
server's loop was stalled. The session must stay open, and once the socket drains the events
written must rebuild exactly the area's queue. A client that never reads is still closed (1013),
because the bound is on distinct state, not on time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.boot import start_actors
from actors.inbound import Inbound, Push
from actors.messages import Arrive, CallerGone, CallerUpdate, FindArea
from actors.principal import Grant, Principal, Role, Scope
from actors.waiting.areas import AREAS_ADDRESS
from gateway import protocol
from gateway.auth import Authenticator
from gateway.connection import CLOSE_TRY_AGAIN, ClientSession, Limits, OutboundMailbox
from runtime import Registry, Supervisor
from runtime.kernel import Envelope
from services.passwords import Passwords
from storage import seed
from storage.db import open_store

#: Arrivals in the burst; more than the old per-event bound (256) in events alone.
BURST = 300
#: Of those, callers that leave before the dashboard reads again, and callers updated twice.
LEAVING = 60
UPDATED = 100
#: Generous bounds on waiting for the session to drain or close.
SETTLE = 10.0


class SlowSocket:
    """The transport of a client that stops reading: writes block until the gate opens."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.frames: list[dict[str, Any]] = []
        #: Messages per websocket frame written (more than one only at protocol version 2).
        self.per_write: list[int] = []
        #: When each frame was written (Trio's clock).
        self.written_at: list[float] = []

    async def write(self, frame: bytes) -> None:
        await self.gate.wait()
        messages = protocol.decode_server_messages(frame)
        self.frames.extend(messages)
        self.per_write.append(len(messages))
        self.written_at.append(trio.current_time())

    async def never_sends(self) -> bytes | None:
        await trio.sleep_forever()


@dataclass
class Dashboard:
    registry: Registry
    area: str
    provider: Principal
    session: ClientSession
    socket: SlowSocket

    async def arrive(self, name: str) -> str:
        ticket = await self.registry.ref(self.area).ask(Arrive({"name": name, "reason": "burst"}))
        caller_id: str = ticket.caller_id
        return caller_id

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """The area's queue as a provider connecting now would get it."""
        reply: dict[str, Any] = await self.registry.ref(self.area).ask(
            Inbound("area.watch", {}, self.provider, "conn/observer")
        )
        return {c["id"]: c for c in reply["callers"]}


async def open_dashboard(
    nursery: trio.Nursery, tmp_path: Path, limits: Limits
) -> AsyncIterator[Dashboard]:
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store)
        area = await registry.ref(AREAS_ADDRESS).ask(FindArea(demo.areas[0].slug))
        provider = Principal(
            kind="staff",
            display_name="Dr Demo",
            user_id="1",
            org_id=str(demo.org_id),
            grants=frozenset({Grant(Role.PROVIDER, Scope.AREA, area.split("/")[1])}),
        )
        socket = SlowSocket()
        session = ClientSession(
            registry, Authenticator(registry), socket.write, None, "127.0.0.1", limits
        )
        nursery.start_soon(session.run, socket.never_sends)
        await trio.testing.wait_all_tasks_blocked()
        await registry.ref(area).ask(Inbound("area.watch", {}, provider, session.address))
        yield Dashboard(registry, area, provider, session, socket)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def dashboard(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Dashboard]:
    # No linger: these tests are about what queues while the socket is blocked, and they wait
    # for every task to block, which a lingering event (a sleep) already is.
    limits = Limits(hello_timeout=60.0, list_linger=0.0)
    async for value in open_dashboard(nursery, tmp_path, limits):
        yield value


async def test_list_events_wait_a_moment_to_share_a_frame_and_others_do_not(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """At protocol version 2 a dashboard's list event waits `Limits.list_linger` for others to
    share its frame (issue 17); any other event (a call's, a caller's own) is written at once."""
    registry = Registry()
    socket = SlowSocket()
    socket.gate.set()
    limits = Limits(hello_timeout=60.0)
    session = ClientSession(
        registry, Authenticator(registry), socket.write, None, "127.0.0.1", limits
    )
    session.version = protocol.BATCHED_EVENTS_VERSION  # as its hello would have set
    nursery.start_soon(session.run, socket.never_sends)
    await trio.testing.wait_all_tasks_blocked()
    connection = registry.ref(session.address)
    began = trio.current_time()
    for n in range(3):
        connection.tell(Push("queue.caller", {"area": 1, "caller": {"id": f"c{n}"}}))
        await trio.sleep(limits.list_linger / 4)
    await trio.sleep(1)
    assert socket.per_write == [3]  # one frame for the three
    assert socket.written_at[0] - began == pytest.approx(limits.list_linger)
    sent = trio.current_time()
    connection.tell(Push("room.state", {"state": "waiting"}))
    await trio.sleep(1)
    assert socket.per_write == [3, 1] and socket.written_at[1] == sent
    # A client that takes one event per frame gets each at once.
    session.version = 1
    sent = trio.current_time()
    connection.tell(Push("queue.removed", {"area": 1, "id": "c0"}))
    await trio.sleep(1)
    assert socket.per_write == [3, 1, 1] and socket.written_at[2] == sent


async def burst(dash: Dashboard, count: int) -> list[str]:
    ids: list[str] = []

    async def one(n: int) -> None:
        ids.append(await dash.arrive(f"Caller {n}"))

    async with trio.open_nursery() as nursery:
        for n in range(count):
            nursery.start_soon(one, n)
    return ids


def replay(frames: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a dashboard shows after applying these events to an empty list (as dashboard.js)."""
    shown: dict[str, dict[str, Any]] = {}
    for frame in frames:
        if frame["t"] == "queue.caller":
            shown[frame["b"]["caller"]["id"]] = frame["b"]["caller"]
        elif frame["t"] == "queue.removed":
            shown.pop(frame["b"]["id"], None)
    return shown


async def test_dashboard_behind_during_a_burst_stays_open_and_ends_with_the_queue(
    dashboard: Dashboard,
) -> None:
    ids = await burst(dashboard, BURST)
    area = dashboard.registry.ref(dashboard.area)
    for caller_id in ids[:UPDATED]:
        area.tell(CallerUpdate(caller_id, connected=True))
        area.tell(CallerUpdate(caller_id, status="on_hold"))
    for caller_id in ids[-LEAVING:]:
        area.tell(CallerGone(caller_id, "left"))
    await trio.testing.wait_all_tasks_blocked()
    # Every caller changed more than once, some were removed: well over 256 events were published,
    # but only one entry per caller waits (the first event is held by the blocked write).
    assert dashboard.session.close_code is None, dashboard.session.close_reason
    assert dashboard.session.mailbox.depth() <= BURST
    dashboard.socket.gate.set()
    with trio.fail_after(SETTLE):
        await trio.testing.wait_all_tasks_blocked()  # the writes no longer block: all drained
    assert dashboard.session.mailbox.depth() == 0
    assert dashboard.session.close_code is None
    expected = await dashboard.snapshot()
    assert len(expected) == BURST - LEAVING
    shown = replay(dashboard.socket.frames)
    assert shown == expected  # nobody missing, nobody removed still shown, latest state of each
    assert sum(1 for c in shown.values() if c["status"] == "on_hold") == UPDATED
    assert len(dashboard.socket.frames) <= BURST + 1  # one write per caller, not per event


async def test_a_version_2_dashboard_gets_what_queued_up_in_few_frames_and_the_same_queue(
    dashboard: Dashboard,
) -> None:
    """Protocol version 2: the events queued while the socket was blocked go out several per
    frame (one send each), and replaying them still gives exactly the area's queue."""
    dashboard.session.version = protocol.BATCHED_EVENTS_VERSION  # as its hello would have set
    ids = await burst(dashboard, BURST)
    area = dashboard.registry.ref(dashboard.area)
    for caller_id in ids[:UPDATED]:
        area.tell(CallerUpdate(caller_id, status="on_hold"))
    for caller_id in ids[-LEAVING:]:
        area.tell(CallerGone(caller_id, "left"))
    await trio.testing.wait_all_tasks_blocked()
    queued = dashboard.session.mailbox.depth()
    dashboard.socket.gate.set()
    with trio.fail_after(SETTLE):
        await trio.testing.wait_all_tasks_blocked()
    assert dashboard.session.mailbox.depth() == 0
    assert dashboard.session.close_code is None
    assert replay(dashboard.socket.frames) == await dashboard.snapshot()
    writes = dashboard.socket.per_write
    assert sum(writes) == len(dashboard.socket.frames)
    # The first write was already under way when the rest queued; the rest took ceil(n/64) sends.
    assert len(writes) <= 1 + -(-queued // protocol.MAX_BATCH_EVENTS)
    assert max(writes) == protocol.MAX_BATCH_EVENTS


async def test_a_version_1_dashboard_gets_one_event_per_frame(dashboard: Dashboard) -> None:
    dashboard.session.version = 1
    await burst(dashboard, 20)
    await trio.testing.wait_all_tasks_blocked()
    dashboard.socket.gate.set()
    with trio.fail_after(SETTLE):
        await trio.testing.wait_all_tasks_blocked()
    assert dashboard.socket.per_write == [1] * 20


async def test_dashboard_that_never_reads_is_closed_with_1013(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    limits = Limits(hello_timeout=60.0, outbound_queue=50)
    async for dash in open_dashboard(nursery, tmp_path, limits):
        # The same callers changing again and again do not fill the queue ...
        first = await burst(dash, 20)
        area = dash.registry.ref(dash.area)
        for round_ in range(50):
            for caller_id in first:
                area.tell(CallerUpdate(caller_id, connected=round_ % 2 == 0))
        await trio.testing.wait_all_tasks_blocked()
        assert dash.session.close_code is None
        # ... but more distinct state than the bound does, and memory stays bounded.
        await burst(dash, 40)
        with trio.fail_after(SETTLE):
            await trio.testing.wait_all_tasks_blocked()
        assert dash.session.close_code == CLOSE_TRY_AGAIN
        assert dash.session.mailbox.depth() <= limits.outbound_queue


def envelope(message: object) -> Envelope:
    return Envelope(message, None)


async def test_superseded_queue_events_are_replaced_in_place_others_kept_in_order() -> None:
    mailbox = OutboundMailbox("conn/t", 10)
    take: Callable[[], Awaitable[Envelope]] = mailbox.get
    mailbox.put(envelope(Push("queue.caller", {"area": 1, "caller": {"id": "a", "v": 1}})))
    mailbox.put(envelope(Push("chat.message", {"text": "hi"})))
    mailbox.put(envelope(Push("queue.caller", {"area": 1, "caller": {"id": "b", "v": 1}})))
    mailbox.put(envelope(Push("queue.caller", {"area": 1, "caller": {"id": "a", "v": 2}})))
    mailbox.put(envelope(Push("queue.caller", {"area": 2, "caller": {"id": "a", "v": 1}})))
    mailbox.put(envelope(Push("queue.removed", {"area": 1, "id": "b"})))
    mailbox.put(envelope(Push("chat.message", {"text": "hi"})))
    assert mailbox.depth() == 5
    got = [(await take()).message for _ in range(5)]
    assert got == [
        Push("chat.message", {"text": "hi"}),
        Push("queue.caller", {"area": 1, "caller": {"id": "a", "v": 2}}),
        Push("queue.caller", {"area": 2, "caller": {"id": "a", "v": 1}}),
        Push("queue.removed", {"area": 1, "id": "b"}),
        Push("chat.message", {"text": "hi"}),
    ]
    assert mailbox.get_nowait() is None
    mailbox.close()
    with pytest.raises(trio.EndOfChannel):
        await take()


async def test_on_demand_events_of_one_request_supersede_each_other() -> None:
    """A watcher that falls behind catches up with each request's current state, once."""
    mailbox = OutboundMailbox("conn/t", 10)
    mailbox.put(envelope(Push("ondemand.request", {"org": 1, "request": {"id": "r1", "v": 1}})))
    mailbox.put(envelope(Push("ondemand.request", {"org": 1, "request": {"id": "r2", "v": 1}})))
    mailbox.put(envelope(Push("ondemand.request", {"org": 1, "request": {"id": "r1", "v": 2}})))
    mailbox.put(envelope(Push("ondemand.removed", {"org": 1, "id": "r2", "state": "declined"})))
    assert mailbox.depth() == 2
    got = [(await mailbox.get()).message for _ in range(2)]
    assert got == [
        Push("ondemand.request", {"org": 1, "request": {"id": "r1", "v": 2}}),
        Push("ondemand.removed", {"org": 1, "id": "r2", "state": "declined"}),
    ]


async def test_the_registry_tally_follows_a_coalescing_mailbox() -> None:
    """/metrics reads queued messages per kind from the registry's tally (issue 17): puts,
    supersessions and takes of a connection's mailbox keep it exact."""
    from runtime import Registry

    registry = Registry()
    mailbox = OutboundMailbox("conn/t", 10)
    registry.register(mailbox)
    for version in range(3):
        mailbox.put(
            envelope(Push("queue.caller", {"area": 1, "caller": {"id": "a", "v": version}}))
        )
    mailbox.put(envelope(Push("chat.message", {"text": "hi"})))
    assert registry.mailbox_depths() == {"conn": 2} == {"conn": mailbox.depth()}
    await mailbox.get()
    assert registry.mailbox_depths() == {"conn": 1}
    registry.unregister(mailbox)
    assert registry.mailbox_depths() == {}
