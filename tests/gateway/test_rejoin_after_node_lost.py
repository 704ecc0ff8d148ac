"""When another node dies, each connection here watches its areas and enters its rooms again.

The areas and rooms of a dead node start on a live node without the watchers and people they
had (issue 18), and a dashboard that only listens would never find out. ``ClientSession.rejoin``
(what ``GatewayEndpoint.after_node_lost`` runs for every connection) watches again, sends the
page the area's whole list (``queue.snapshot``) and so gets its updates again; a room that never
restarted refuses the gateway's entry (it still has the connection) and the page is told nothing.

The session here is the gateway's own, served the frames a browser would send through a memory
channel instead of a websocket, against the whole server's actors; the area's loss of its
watchers is what a restart elsewhere leaves (the area forgets the connection, the page does not).
"""

from __future__ import annotations

from typing import Any

import trio

from actors import addresses
from actors.inbound import Inbound
from actors.ondemand.messages import StartRequest
from gateway.auth import Authenticator
from gateway.connection import ClientSession, Limits
from gateway.protocol import decode_server_messages, encode_client
from storage import orgs
from storage.db import open_store
from tests.conftest import RunningServer
from tests.gateway.test_entry_rules import ADMIN, LEE, world

WAIT = 10.0


class Page:
    """One `ClientSession` fed frames through a channel; what it sent back, decoded."""

    def __init__(self, session: ClientSession, send: trio.MemorySendChannel[bytes | str | None]):
        self.session = session
        self.send = send
        self.got: list[dict[str, Any]] = []
        self.changed = trio.Event()
        self._next = 0

    async def write(self, frame: bytes) -> None:
        self.got.extend(decode_server_messages(frame))
        self.changed.set()
        self.changed = trio.Event()

    async def call(self, kind: str, body: dict[str, Any], to: str | None = None) -> dict[str, Any]:
        self._next += 1
        await self.send.send(encode_client(kind, body, self._next, to))
        return await self.first(
            lambda m: m["t"] in ("reply", "error") and m.get("id") == self._next
        )

    async def first(self, match: Any) -> dict[str, Any]:
        with trio.fail_after(WAIT):
            while True:
                found = next((m for m in self.got if match(m)), None)
                if found is not None:
                    return found
                await self.changed.wait()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m["b"] for m in self.got if m["t"] == kind]


async def open_page(server: RunningServer, nursery: trio.Nursery, cookie: str) -> Page:
    send, receive = trio.open_memory_channel[bytes | str | None](16)
    page: Page

    async def write(frame: bytes) -> None:
        await page.write(frame)

    session = ClientSession(
        server.registry, Authenticator(server.registry), write, cookie, "127.0.0.1", Limits()
    )
    page = Page(session, send)
    nursery.start_soon(session.run, receive.receive)
    hello = await page.call("hello", {"versions": [2]})
    assert hello["t"] == "reply" and hello["b"]["kind"] == "staff", hello
    return page


async def test_a_dashboard_watches_again_and_gets_its_area_s_updates_again(
    waitroom_server: RunningServer, nursery: trio.Nursery
) -> None:
    async with world(waitroom_server) as w:
        page = await open_page(waitroom_server, nursery, w.staff[LEE][1])
        watched = await page.call("area.watch", {}, w.area)
        assert watched["t"] == "reply", watched
        first = await w.arrive("Ada")
        await page.first(lambda m: m["t"] == "queue.caller" and m["b"]["caller"]["name"] == "Ada")
        # The area loses its watcher, as one started again on another node has none.
        principal = page.session.principal
        assert principal is not None
        await waitroom_server.registry.ref(w.area).ask(
            Inbound("area.unwatch", {}, principal, page.session.address)
        )
        await w.arrive("Unseen")
        with trio.move_on_after(0.5):
            await page.first(
                lambda m: m["t"] == "queue.caller" and m["b"]["caller"]["name"] == "Unseen"
            )
        assert "Unseen" not in [e["caller"]["name"] for e in page.events("queue.caller")]

        with trio.fail_after(WAIT):
            await page.session.rejoin()
        (snapshot,) = page.events("queue.snapshot")
        assert snapshot["area"] == w.area_id
        assert {c["name"] for c in snapshot["callers"]} == {"Ada", "Unseen"}
        assert first.caller_id in {c["id"] for c in snapshot["callers"]}
        await w.arrive("Bo")
        await page.first(lambda m: m["t"] == "queue.caller" and m["b"]["caller"]["name"] == "Bo")
        await page.send.send(None)


async def test_an_on_demand_list_is_watched_again_and_given_whole(
    waitroom_server: RunningServer, nursery: trio.Nursery
) -> None:
    """The organisation's on-demand queue also lives on one node: after a node died the page
    watching it gets ``ondemand.snapshot`` (the watch reply's shape) and the queue's pushes."""
    async with open_store(waitroom_server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
    queue = addresses.ondemand(org.id)
    registry = waitroom_server.registry

    async def request(name: str) -> None:
        await registry.ref(queue).ask(StartRequest({"name": name, "phone": "+44 20 7946 0000"}))

    def pushed(name: str) -> bool:
        return name in [e["request"]["name"] for e in page.events("ondemand.request")]

    async with world(waitroom_server) as w:
        page = await open_page(waitroom_server, nursery, w.staff[ADMIN][1])
        watched = await page.call("ondemand.watch", {}, queue)
        assert watched["t"] == "reply", watched
        await request("Ada")
        await page.first(lambda m: m["t"] == "ondemand.request" and pushed("Ada"))
        principal = page.session.principal
        assert principal is not None
        await registry.ref(queue).ask(
            Inbound("ondemand.unwatch", {}, principal, page.session.address)
        )
        await request("Unseen")
        with trio.move_on_after(0.5):
            await page.first(lambda m: m["t"] == "ondemand.request" and pushed("Unseen"))
        assert not pushed("Unseen")

        with trio.fail_after(WAIT):
            await page.session.rejoin()
        (snapshot,) = page.events("ondemand.snapshot")
        assert snapshot["org"]["id"] == org.id
        assert {"Ada", "Unseen"} <= {r["name"] for r in snapshot["requests"]}
        await request("Bo")
        await page.first(lambda m: m["t"] == "ondemand.request" and pushed("Bo"))
        unwatched = await page.call("ondemand.unwatch", {}, queue)
        assert unwatched["t"] == "reply", unwatched
        with trio.fail_after(WAIT):
            await page.session.rejoin()  # nothing watched any more: nothing sent
        assert len(page.events("ondemand.snapshot")) == 1
        await page.send.send(None)


async def test_a_room_that_never_restarted_is_left_alone(
    waitroom_server: RunningServer, nursery: trio.Nursery
) -> None:
    async with world(waitroom_server) as w:
        ticket = await w.arrive("Ada")
        page = await open_page(waitroom_server, nursery, w.staff[LEE][1])
        joined = await page.call("caller.join", {"caller_id": ticket.caller_id}, w.area)
        assert joined["t"] == "reply", joined
        room = addresses.room(ticket.room_id)
        entered = await page.call("room.enter", {}, room)
        assert entered["t"] == "reply", entered
        states_before = len(page.events("room.state"))
        with trio.fail_after(WAIT):
            await page.session.rejoin()  # the room refuses: it has this connection
        assert len(page.events("room.state")) == states_before
        said = await page.call("chat.send", {"text": "still here"}, room)
        assert said["t"] == "reply", said
        await page.send.send(None)
