"""A room that restarted forgets who was in it; the pages in it must not have to notice (issue 18).

A caller's room stops and starts again from the store, as it does on a live node after the node
that hosted it died (or after a crash). The provider's and the caller's pages keep their
websockets. Their next request is answered ``not_in_room`` by the new room; the gateway enters it
again on each page's behalf (``Inbound.again``), tells the page the room's state (``room.state``)
and repeats the request: the chat goes through and nobody enters by hand. A person the room
removed is not let back in this way: the room takes such an entry only from a connection it
never had.
"""

from __future__ import annotations

import trio
import trio.testing

from actors import addresses, refusals
from actors.inbound import Inbound
from actors.messages import OpenRoom
from actors.principal import Principal
from gateway import counters
from runtime.kernel import Envelope, Stop
from tests.conftest import RunningServer
from tests.gateway.test_entry_rules import in_call, world

#: Bound on the room's stop and restart (milliseconds on loopback).
RESTART_S = 10.0


async def restart_room(server: RunningServer, room_id: str) -> None:
    """Stop the room cleanly and have the room host start it again from the store."""
    address = addresses.room(room_id)
    server.registry.deliver(address, Envelope(Stop(), None))
    with trio.fail_after(RESTART_S):
        while address in server.registry:
            await trio.testing.wait_all_tasks_blocked()
        await server.registry.ref(addresses.ROOMS).ask(OpenRoom(room_id))


async def test_pages_in_a_restarted_room_are_entered_again_and_their_request_goes_through(
    waitroom_server: RunningServer,
) -> None:
    async with world(waitroom_server) as w:
        ticket, ada, lee = await in_call(w)
        room = addresses.room(ticket.room_id)
        before = counters.ENTERED_AGAIN["rooms"]
        await restart_room(waitroom_server, ticket.room_id)

        said = await lee.call("chat.send", {"text": "still there?"}, room)
        assert said["t"] == "reply", said
        state = lee.seen("room.state")[-1]
        assert state["state"] == "in_call"  # restored from the store, not started afresh
        assert "you" in state  # the page learns its new place in the call
        assert state["again"] is True  # ... and that its media peer is gone: offer again
        answered = await ada.call("chat.send", {"text": "yes"})
        assert answered["t"] == "reply", answered
        with trio.fail_after(RESTART_S):
            while "yes" not in [m["text"] for m in lee.seen("chat.message")]:
                await lee.call("ping")  # reads what came meanwhile
        names = {p["name"] for p in ada.seen("room.state")[-1]["participants"]}
        assert names == {"Ada", "Dr Lee"}
        assert counters.ENTERED_AGAIN["rooms"] - before == 2


async def test_a_connection_the_room_had_is_not_entered_again_on_its_behalf(
    waitroom_server: RunningServer,
) -> None:
    """Without a restart, ``not_in_room`` means the page is out of the call (it left, or the
    call removed it): the gateway's entry is refused and the page gets the refusal."""
    async with world(waitroom_server) as w:
        ticket, _, lee = await in_call(w)
        room = addresses.room(ticket.room_id)
        before = counters.ENTERED_AGAIN["rooms"]
        # The room lets Dr Lee's connection go as it does when the call removes someone; the
        # page was not told, so the gateway still remembers having entered.
        nobody = Principal("staff", "Dr Lee")
        await waitroom_server.registry.ref(room).ask(
            Inbound("room.leave", {}, nobody, lee.hello["conn"])
        )
        said = await lee.call("chat.send", {"text": "am I in?"}, room)
        assert said["t"] == "error" and said["b"]["code"] == refusals.NOT_IN_ROOM, said
        assert counters.ENTERED_AGAIN["rooms"] == before
