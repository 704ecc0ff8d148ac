"""Selection on a real worker and across the pool's pipe: video nobody selects is not forwarded.

Fake browsers (the load tester's peer) with two receive slots each, four to a call, so that not
everyone fits: each subscriber receives two of the three others, chosen by `media.selection`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import trio

from gateway.protocol import MAX_FRAME_BYTES
from gateway.routes import ROUTES
from media.control import MAX_FRAME, ControlError, encode, view_fields
from media.events import SlotsChanged
from media.pool import MediaPool
from media.sdp import parse_offer
from media.selection import MAX_SHOWN
from media.worker import Worker, WorkerConfig
from tests.media.conftest import RecordingWorker
from tests.media.fakepeer import FakePeer

CALL = "c-select"
NAMES = ["a", "b", "c", "d"]
SLOTS = 2
PACKETS = 10
WAIT = 5.0
POLL = 0.01


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / POLL)):
        if predicate():
            return
        await trio.sleep(POLL)
    raise AssertionError(f"not within {WAIT} s: {what}")


async def join(worker: Worker | MediaPool, names: list[str]) -> dict[str, FakePeer]:
    peers = {name: FakePeer(name) for name in names}
    for name, peer in peers.items():
        await peer.connect(worker, CALL, name, slots=SLOTS)  # type: ignore[arg-type]
    return peers


async def forwarded_for(worker: Worker, peer: FakePeer) -> int:
    """How many packets the worker forwarded for PACKETS video packets of `peer`."""
    rtp_in, forwarded = worker.counters.rtp_in, worker.counters.forwarded
    await peer.send_media(PACKETS)
    await wait_until(lambda: worker.counters.rtp_in >= rtp_in + PACKETS, "packets read")
    return worker.counters.forwarded - forwarded


async def test_video_nobody_selects_is_not_forwarded_and_a_view_brings_it(
    worker: RecordingWorker,
) -> None:
    peers = await join(worker, NAMES)
    # Nobody said what they show: join order fills the two slots; d's video is wanted by no one.
    assert worker.slots(CALL, "a") == {0: "b", 1: "c"}
    assert worker.slots(CALL, "d") == {0: "a", 1: "b"}
    assert worker.unwanted_video(CALL) == {"d"}
    await wait_until(
        lambda: all(t.can_receive for t in worker._routers[CALL].transports.values()), "up"
    )
    assert await forwarded_for(worker, peers["d"]) == 0
    assert await forwarded_for(worker, peers["b"]) == 3 * PACKETS  # to a, c and d

    # a's page shows only d: a gets d's video (and keeps its audio of b and c), b's video no more.
    worker.events.clear()
    worker.set_view(CALL, "a", {"d": 120}, [])
    assert worker.slots(CALL, "a") == {0: "d"}
    assert worker.audio_slots(CALL, "a") == {0: "b", 1: "c"}
    assert SlotsChanged(CALL, "a", {0: "d"}, {0: "b", 1: "c"}) in worker.events
    assert worker.unwanted_video(CALL) == set()
    assert await forwarded_for(worker, peers["b"]) == 2 * PACKETS  # to c and d only
    assert await forwarded_for(worker, peers["d"]) == PACKETS  # to a
    video_ssrc = peers["a"].answer.slot_ssrcs[(0, "video")]  # type: ignore[union-attr]
    await peers["d"].send_media(1)
    await peers["a"].receive_media(video_ssrc)
    for peer in peers.values():
        peer.close()


async def test_a_view_of_strangers_or_of_oneself_changes_nothing(worker: RecordingWorker) -> None:
    peers = await join(worker, NAMES)
    before = {p: (worker.slots(CALL, p), worker.audio_slots(CALL, p)) for p in NAMES}
    worker.events.clear()
    worker.set_view(CALL, "a", {"zz": 100, "a": 100}, ["nobody", "a"])  # nothing real in it
    worker.set_view(CALL, "stranger", {"b": 100}, [])  # not in the call
    worker.set_view("other-call", "a", {"b": 100}, [])
    # a now reports a view (of nothing it can get): its video empties, nobody else's changes.
    for p in ("b", "c", "d"):
        assert (worker.slots(CALL, p), worker.audio_slots(CALL, p)) == before[p]
    assert all(e.peer_id == "a" for e in worker.events if isinstance(e, SlotsChanged))
    for peer in peers.values():
        peer.close()


async def test_a_speaker_change_moves_the_speaker_into_last_n(worker: RecordingWorker) -> None:
    peers = await join(worker, NAMES)
    worker._speaker_changed(CALL, "d")  # what the detector's decision calls
    assert "d" in worker.slots(CALL, "a").values()
    assert "d" in worker.slots(CALL, "b").values()
    # Everyone keeps one holder (stable) and takes d: c, the last in join order, drops out.
    assert worker.slots(CALL, "a") == {0: "b", 1: "d"}
    assert worker.unwanted_video(CALL) == {"c"}
    for peer in peers.values():
        peer.close()


def test_view_frames_are_checked_strictly() -> None:
    assert view_fields({"shown": [["a", 90]], "pinned": ["b"]}) == ({"a": 90}, ["b"])
    bad: list[dict[str, object]] = [
        {"shown": {"a": 90}, "pinned": []},
        {"shown": [["a", "90"]], "pinned": []},
        {"shown": [["a", 90, 1]], "pinned": []},
        {"shown": [["a", -1]], "pinned": []},
        {"shown": [["a", True]], "pinned": []},
        {"shown": [[f"p{i}", 1] for i in range(MAX_SHOWN + 1)], "pinned": []},
        {"shown": [], "pinned": ["a", "b", "c", "d", "e"]},
        {"shown": [], "pinned": [1]},
        {"shown": [["x" * 300, 1]], "pinned": []},
        {"shown": []},
    ]
    for frame in bad:
        with pytest.raises(ControlError):
            view_fields(frame)


async def test_a_view_crosses_the_pool_s_pipe() -> None:
    events: list[object] = []
    pool = MediaPool(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        workers=1,
        on_event=events.append,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        peers = await join(pool, NAMES)
        await wait_until(lambda: pool.slots(CALL, "a") == {0: "b", 1: "c"}, "first slots")
        assert pool.audio_slots(CALL, "a") == {0: "b", 1: "c"}
        pool.set_view(CALL, "a", {"d": 200}, ["c"])
        await wait_until(lambda: pool.slots(CALL, "a") == {0: "d", 1: "c"}, "slots after view")
        assert SlotsChanged(CALL, "a", {0: "d", 1: "c"}, {0: "b", 1: "c"}) in events
        for peer in peers.values():
            peer.close()
        nursery.cancel_scope.cancel()


async def test_sixty_people_s_offers_and_answers_do_not_grow_with_the_call(
    worker: RecordingWorker,
) -> None:
    """Fixed slots: the 60th person's offer and answer are as long as the first's."""
    sizes = []
    for i in range(60):
        peer = FakePeer(f"p{i}")
        offer = peer.offer(9)
        peer.bind()
        answer = await worker.open_peer(CALL, f"p{i}", offer)
        sizes.append((len(offer), len(answer)))
        assert len(parse_offer(offer).media) == 20
        peer.close()
    # The same, give or take the digits of random SSRCs and ICE values.
    assert max(a for _, a in sizes) - min(a for _, a in sizes) < 100
    assert max(o for o, _ in sizes) < ROUTES["media.offer"].fields["sdp"].max_len
    reply = {"id": 1, "ok": True, "sdp": answer, "slots": [[i, "x" * 64] for i in range(9)]}
    assert len(encode(reply)) < MAX_FRAME
    assert len(json.dumps({"t": "reply", "b": {"sdp": answer}})) < MAX_FRAME_BYTES // 4
    assert len(worker.slots(CALL, "p59")) == 9
    assert len(worker.audio_slots(CALL, "p59")) == 9
