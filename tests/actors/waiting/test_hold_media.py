"""Hold cuts media on the server, whatever the pages do: room actors over a real media worker.

Three fake browsers (real UDP sockets, ICE checks, DTLS, SRTP: ``tests.media.fakepeer``) sign in to a
room through its ``media.offer`` as the call page does. The caller's page here never hangs up (a
real page does; this one stands for a modified or stuck one): on hold nothing is forwarded to it or
from it, not even to the interpreter who stays in the room and offers media again; when the
provider joins again, media flows again on the same connection.

No sleeps: waits end when what they wait for is seen (a state in the worker, packets counted in).
The media plane knows the call by the call's own id, not the room's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing

from actors import addresses
from actors.boot import start_actors
from actors.calls.routing import call_id_for
from actors.inbound import Inbound, RedeemToken
from actors.messages import Arrive, ClaimInvite, FindArea
from actors.principal import Grant, Principal, Role, Scope
from media import MediaEvent, Worker, WorkerConfig
from runtime import ChildSpec, Registry, Supervisor
from services.passwords import Passwords
from storage import seed
from storage.db import open_store
from tests.actors.inbox import Inbox
from tests.media.fakepeer import FakePeer

#: Bound on every wait for a packet or a state change.
TIMEOUT = 5.0
#: Packets a peer sends when the test checks that none of them is forwarded.
PROBE_PACKETS = 5


@dataclass
class Call:
    registry: Registry
    worker: Worker
    room: str
    room_id: str
    call_id: str
    provider: Principal
    area: str
    caller_id: str
    caller_secret: str

    async def send(
        self, to: str, kind: str, body: dict[str, object], who: Principal, conn: str
    ) -> dict[str, Any]:
        reply: dict[str, Any] = await self.registry.ref(to).ask(Inbound(kind, body, who, conn))
        return reply

    async def media(self, who: Principal, conn: str) -> FakePeer:
        """Open media for ``conn`` as media.js does (its offer goes through the room), connect."""
        peer = FakePeer()
        # FakePeer offers to whatever has ``open_peer``; here that is the room's media.offer.
        signalling = cast(Worker, RoomSignalling(self, who, conn))
        with trio.fail_after(TIMEOUT):
            await peer.connect(signalling, self.call_id, conn.replace("/", "-"))
        return peer

    def slot_ssrc(self, receiver: str, sender: str, receiving: FakePeer) -> int:
        """The SSRC ``receiving`` (peer id ``receiver``) gets ``sender``'s video on."""
        slots = self.worker.slots(self.call_id, receiver)
        slot = next(s for s, owner in slots.items() if owner == sender)
        assert receiving.answer is not None
        return receiving.answer.slot_ssrcs[(slot, "video")]


@dataclass
class RoomSignalling:
    """The call page's side of signalling: an offer sent as ``media.offer`` to the room actor."""

    call: Call
    who: Principal
    conn: str

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str:
        reply = await self.call.send(
            self.call.room, "media.offer", {"sdp": offer_sdp}, self.who, self.conn
        )
        answer: str = reply["sdp"]
        return answer


async def flows(call: Call, sender: FakePeer, receiver: FakePeer, sid: str, rid: str) -> None:
    await sender.send_media(3)
    with trio.fail_after(TIMEOUT):
        await receiver.receive_media(call.slot_ssrc(rid, sid, receiver))


async def forwards_nothing(worker: Worker, *senders: FakePeer) -> None:
    """The worker takes in every probe packet (they are counted in) and forwards none of them."""
    before = worker.stats()
    for peer in senders:
        await peer.send_media(PROBE_PACKETS)
    arrived = before["rtp_in"] + PROBE_PACKETS * len(senders)
    await eventually(lambda: worker.stats()["rtp_in"] >= arrived)
    assert worker.stats()["forwarded"] == before["forwarded"]


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, looking again each time every task has had its turn."""
    with trio.fail_after(TIMEOUT):
        while not condition():
            await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
async def call(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Call]:
    events: list[MediaEvent] = []
    worker = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        on_event=events.append,
    )
    await nursery.start(worker.run)
    async with open_store(tmp_path / "w.sqlite3") as store:
        demo = await seed.seed_demo(store, await Passwords().hash("pw"))
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store, media=worker)
        for conn in ("conn/caller", "conn/p", "conn/g", "conn/p2", "c/p"):
            await root.start_child(ChildSpec(conn, Inbox))
        area = await registry.ref(addresses.AREAS).ask(FindArea(demo.areas[0].slug))
        provider = Principal(
            kind="staff",
            display_name="Dr Demo",
            user_id="1",
            org_id=str(demo.org_id),
            grants=frozenset({Grant(Role.PROVIDER, Scope.AREA, area.split("/")[1])}),
        )
        ticket = await registry.ref(area).ask(Arrive({"name": "Ada", "reason": "knee"}))
        yield Call(
            registry,
            worker,
            addresses.room(ticket.room_id),
            ticket.room_id,
            call_id_for(addresses.room(ticket.room_id)),
            provider,
            area,
            ticket.caller_id,
            ticket.token.split(".", 1)[1],
        )
        nursery.cancel_scope.cancel()


async def test_hold_cuts_media_both_ways_until_the_provider_joins_again(call: Call) -> None:
    room = call.room
    caller = await call.registry.ref(room).ask(RedeemToken(call.caller_secret))
    await call.send(room, "room.enter", {}, caller, "conn/caller")
    await call.send(call.area, "caller.join", {"caller_id": call.caller_id}, call.provider, "c/p")
    await call.send(room, "room.enter", {}, call.provider, "conn/p")
    invite = await call.send(room, "call.invite", {}, call.provider, "conn/p")
    claimed = await call.registry.ref(room).ask(
        ClaimInvite(str(invite["url"]).split(".", 1)[1], "Olena")
    )
    guest = await call.registry.ref(room).ask(RedeemToken(claimed.token.split(".", 1)[1]))
    await call.send(room, "room.enter", {}, guest, "conn/g")

    ada = await call.media(caller, "conn/caller")
    doc = await call.media(call.provider, "conn/p")
    olena = await call.media(guest, "conn/g")
    peers = (ada, doc, olena)
    try:
        await flows(call, doc, ada, "conn-p", "conn-caller")
        await flows(call, ada, olena, "conn-caller", "conn-g")

        await call.send(
            call.area, "caller.hold", {"caller_id": call.caller_id}, call.provider, "c/p"
        )
        # The caller's connection is still open; the provider's and the guest's are closed.
        await eventually(lambda: call.worker.peers(call.call_id) == ["conn-caller"])
        # The guest waits in the room and offers media again: nothing passes either way.
        await call.send(room, "room.enter", {}, guest, "conn/g")
        olena.close()
        olena = await call.media(guest, "conn/g")
        await forwards_nothing(call.worker, ada, olena)

        # The provider joins again: the same caller connection sends and receives again.
        await call.send(
            call.area, "caller.join", {"caller_id": call.caller_id}, call.provider, "c/p"
        )
        await call.send(room, "room.enter", {}, call.provider, "conn/p2")
        await flows(call, olena, ada, "conn-g", "conn-caller")
        await flows(call, ada, olena, "conn-caller", "conn-g")
    finally:
        for peer in (*peers, olena):
            peer.close()
