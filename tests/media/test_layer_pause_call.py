"""The call forwards the media plane's `LayersWanted` to the publisher's connection only, as the
push ``media.layers`` {"active": [rid]} (issue 11: the page pauses the layers nobody wants).

A real call actor under a real supervisor, as tests/actors/calls/test_speaker.py runs it; the media
plane is the fake port of those tests, and the event is told to ``call/<call id>`` the way the
server wires a worker's or a pool's ``on_event``. The group call and the breakout call are this
same core with other policies, so they inherit it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import trio

from actors import addresses
from actors.calls.core import Call
from actors.calls.routing import call_id_for
from actors.inbound import Inbound
from actors.principal import Principal
from media import LayersWanted
from runtime import ActorError, ChildSpec, Registry, Restart, Supervisor
from tests.actors.calls.fakes import OpenPolicy, SlowMedia
from tests.actors.inbox import Inbox, Pushes

ROOM_ID = "r-layers"
TIMEOUT = 5.0


def guest(n: int) -> Principal:
    return Principal("guest", f"Guest {n}", room_id=ROOM_ID, participant_id=f"g{n}")


class Rig:
    def __init__(self, registry: Registry, root: Supervisor) -> None:
        self.registry, self.root = registry, root
        self.room = addresses.room(ROOM_ID)
        self.call_id = call_id_for(self.room)

    async def enter(self, who: Principal, conn: str) -> Pushes:
        events = Pushes()
        await self.root.start_child(ChildSpec(conn, lambda: Inbox(events)))
        await self.registry.ref(self.room).ask(Inbound("room.enter", {}, who, conn))
        return events

    def layers_wanted(self, peer_id: str, active: tuple[str, ...]) -> None:
        """What the server's ``on_event`` does with a media event: tell it to the call."""
        with contextlib.suppress(ActorError):
            self.registry.ref(addresses.call(self.call_id)).tell(
                LayersWanted(self.call_id, peer_id, active)
            )


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[Rig]:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    rig = Rig(registry, root)
    media = SlowMedia()
    await root.start_child(
        ChildSpec(
            rig.room, lambda: Call(rig.call_id, ROOM_ID, OpenPolicy(), media), Restart.TRANSIENT
        )
    )
    yield rig
    nursery.cancel_scope.cancel()


def is_layers(push: object) -> bool:
    return getattr(push, "type", None) == "media.layers"


async def test_the_publisher_alone_is_told_which_layers_to_send_in_order(rig: Rig) -> None:
    publisher = await rig.enter(guest(1), "conn/a")
    other = await rig.enter(guest(2), "conn/b")
    rig.layers_wanted("conn-a", ("q",))
    rig.layers_wanted("conn-a", ("q", "f"))
    with trio.fail_after(TIMEOUT):
        await publisher.wait_for(lambda p: is_layers(p) and p.body == {"active": ["q", "f"]})
    assert [p.body for p in publisher if is_layers(p)] == [
        {"active": ["q"]},
        {"active": ["q", "f"]},
    ]
    # The other person's connection hears nothing of it (a later push to them arrives first).
    rig.layers_wanted("conn-b", ("q", "h", "f"))
    with trio.fail_after(TIMEOUT):
        await other.wait_for(is_layers)
    assert [p.body for p in other if is_layers(p)] == [{"active": ["q", "h", "f"]}]


async def test_layers_for_someone_who_left_or_was_never_in_the_call_go_nowhere(rig: Rig) -> None:
    publisher = await rig.enter(guest(1), "conn/a")
    rig.layers_wanted("conn-gone", ("q",))  # left between the media plane's check and this
    rig.layers_wanted("conn-a", ("q", "h"))
    with trio.fail_after(TIMEOUT):
        await publisher.wait_for(is_layers)
    assert [p.body for p in publisher if is_layers(p)] == [{"active": ["q", "h"]}]
