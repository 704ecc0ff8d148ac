"""The call tells everyone present who the dominant speaker is (``call.speaker``).

A real call actor under a real supervisor; the media plane is a fake port that reports a speaker
change the way the server wires a worker's or a pool's ``on_event``: a ``DominantSpeakerChanged``
told to ``call/<call id>``.
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
from media import DominantSpeakerChanged
from runtime import ActorError, ChildSpec, Registry, Restart, Supervisor
from runtime.errors import Refusal
from tests.actors.calls.fakes import OpenPolicy, SlowMedia
from tests.actors.inbox import Inbox, Pushes

ROOM_ID = "r-speaker"
TIMEOUT = 5.0


class SpeakingMedia(SlowMedia):
    """A media port that reports dominant-speaker changes as a worker's ``on_event`` does."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry

    def speaker_changed(self, call_id: str, peer_id: str) -> None:
        with contextlib.suppress(ActorError):
            self.registry.ref(addresses.call(call_id)).tell(
                DominantSpeakerChanged(call_id, peer_id)
            )


def guest(n: int) -> Principal:
    return Principal("guest", f"Guest {n}", room_id=ROOM_ID, participant_id=f"g{n}")


class Rig:
    def __init__(self, registry: Registry, root: Supervisor, media: SpeakingMedia) -> None:
        self.registry, self.root, self.media = registry, root, media
        self.room = addresses.room(ROOM_ID)
        self.call_id = call_id_for(self.room)

    async def enter(self, who: Principal, conn: str) -> tuple[Pushes, dict[str, object]]:
        events = Pushes()
        await self.root.start_child(ChildSpec(conn, lambda: Inbox(events)))
        view = await self.registry.ref(self.room).ask(Inbound("room.enter", {}, who, conn))
        return events, view


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[Rig]:
    registry = Registry()
    root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
    media = SpeakingMedia(registry)
    rig = Rig(registry, root, media)
    await root.start_child(
        ChildSpec(
            rig.room, lambda: Call(rig.call_id, ROOM_ID, OpenPolicy(), media), Restart.TRANSIENT
        )
    )
    yield rig
    nursery.cancel_scope.cancel()


def is_speaker(push: object) -> bool:
    return getattr(push, "type", None) == "call.speaker"


async def test_everyone_in_the_call_hears_who_speaks_by_their_participant_id(rig: Rig) -> None:
    a, _ = await rig.enter(guest(1), "conn/a")
    b, view = await rig.enter(guest(2), "conn/b")
    ids = {p["id"] for p in view["participants"]}  # type: ignore[attr-defined]
    assert ids == {"conn-a", "conn-b"}
    rig.media.speaker_changed(rig.call_id, "conn-b")
    with trio.fail_after(TIMEOUT):
        for inbox in (a, b):
            push = await inbox.wait_for(is_speaker)
            assert push.body == {"peer": "conn-b"}
    # The next change reaches them too, in order.
    rig.media.speaker_changed(rig.call_id, "conn-a")
    with trio.fail_after(TIMEOUT):
        for inbox in (a, b):
            await inbox.wait_for(lambda p: is_speaker(p) and p.body == {"peer": "conn-a"})
    assert [p.body["peer"] for p in a if is_speaker(p)] == ["conn-b", "conn-a"]


async def test_a_speaker_who_is_not_in_the_call_is_not_announced(rig: Rig) -> None:
    a, _ = await rig.enter(guest(1), "conn/a")
    rig.media.speaker_changed(rig.call_id, "conn-gone")  # left before the event arrived
    rig.media.speaker_changed(rig.call_id, "conn-a")
    with trio.fail_after(TIMEOUT):
        await a.wait_for(is_speaker)
    assert [p.body for p in a if is_speaker(p)] == [{"peer": "conn-a"}]


async def test_someone_who_enters_is_told_the_current_speaker_at_once(rig: Rig) -> None:
    a, _ = await rig.enter(guest(1), "conn/a")
    rig.media.speaker_changed(rig.call_id, "conn-a")
    with trio.fail_after(TIMEOUT):
        await a.wait_for(is_speaker)
    b, _ = await rig.enter(guest(2), "conn/b")  # after the change: learns it at entry
    with trio.fail_after(TIMEOUT):
        push = await b.wait_for(is_speaker)
    assert push.body == {"peer": "conn-a"}


async def test_nobody_is_told_a_speaker_before_there_is_one_or_after_they_left(rig: Rig) -> None:
    a, _ = await rig.enter(guest(1), "conn/a")
    rig.media.speaker_changed(rig.call_id, "conn-a")
    with trio.fail_after(TIMEOUT):
        await a.wait_for(is_speaker)
    await rig.registry.ref(rig.room).ask(Inbound("room.leave", {}, guest(1), "conn/a"))
    b, _ = await rig.enter(guest(2), "conn/b")
    await rig.registry.ref(rig.room).ask(Inbound("chat.send", {"text": "hi"}, guest(2), "conn/b"))
    with trio.fail_after(TIMEOUT):
        await b.wait_for(lambda p: getattr(p, "type", None) == "chat.message")
    assert not [p for p in b if is_speaker(p)]


async def test_a_view_reaches_the_media_plane_and_one_naming_a_stranger_changes_nothing(
    rig: Rig,
) -> None:
    await rig.enter(guest(1), "conn/a")
    await rig.enter(guest(2), "conn/b")
    room = rig.registry.ref(rig.room)
    body = {"shown": {"conn-b": {"w": 320, "h": 180}}, "pinned": ["conn-b"]}
    assert await room.ask(Inbound("media.view", body, guest(1), "conn/a")) == {}
    assert rig.media.views == [("conn-a", {"conn-b": 180}, ["conn-b"])]
    for bad in (
        {"shown": {"conn-x": {"w": 320, "h": 180}}},
        {"shown": {}, "pinned": ["conn-b", "conn-x"]},
    ):
        with pytest.raises(Refusal) as refused:
            await room.ask(Inbound("media.view", bad, guest(1), "conn/a"))
        assert refused.value.code == "bad_field"
    with pytest.raises(Refusal) as refused:  # not in the call: not_in_room
        await room.ask(Inbound("media.view", {"shown": {}}, guest(3), "conn/c"))
    assert refused.value.code == "not_in_room"
    assert len(rig.media.views) == 1
