"""Layers nobody wants are paused at the publisher: the worker's `LayersWanted` (issue 11).

The debounce (`LayerPause`) and the judgement of what views want (`Simulcast.wanted_rids`) are
tested on their own, then the real worker with the load tester's simulated peers (a Chrome-shaped
simulcast publisher from tests/media/test_simulcast.py and two single-layer subscribers, real
SRTP over loopback) on an injected clock that the test moves: the event says which rids the
publisher should send, a layer is left out only after nobody's view wanted it for PAUSE_AFTER,
and a layer wanted again is back in at the next check. The lowest layer is never left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from media.control import ControlError, FrameReader
from media.events import LayersWanted, MediaEvent
from media.forward import Producer
from media.pool import MediaPool, _Call
from media.process import WorkerProcess
from media.simulcast import PAUSE_AFTER, LayerPause, Simulcast
from media.worker import LAYER_CHECK_INTERVAL, Worker, WorkerConfig
from tests.media.fakepeer import FakePeer
from tests.media.stepclock import StepClock
from tests.media.test_simulcast import CALL, Publisher, Received, read

STEP = LAYER_CHECK_INTERVAL + 0.05  # each step of the injected clock is one layer check
WAIT = 5.0


# ---- the debounce -------------------------------------------------------------------------------


def test_a_layer_is_paused_only_after_nobody_wanted_it_for_pause_after_and_resumes_at_once() -> (
    None
):
    pause = LayerPause(["q", "h", "f"])
    assert pause.update({"q", "h", "f"}, 0.0) == ("q", "h", "f")  # the first call always says
    assert pause.update({"q", "h", "f"}, 0.2) is None  # unchanged: nothing to tell
    t = 0.2  # h and f last wanted now
    assert pause.update({"q"}, 1.0) is None
    assert pause.update({"q"}, t + PAUSE_AFTER - 0.01) is None
    assert pause.update({"q"}, t + PAUSE_AFTER) == ("q",)
    # Wanted for a moment (a tile grows): active at once, and a flicker back does not pause it.
    assert pause.update({"q", "f"}, t + PAUSE_AFTER + 0.2) == ("q", "f")
    assert pause.update({"q"}, t + PAUSE_AFTER + 0.4) is None
    assert pause.update({"q", "h"}, t + PAUSE_AFTER + 0.6) == ("q", "h", "f")
    assert pause.update(set(), t + 2 * PAUSE_AFTER + 0.61) == ("q",)


def test_the_lowest_layer_is_never_paused_even_when_nobody_wants_any() -> None:
    pause = LayerPause(["q", "h", "f"])
    assert pause.update(set(), 0.0) == ("q", "h", "f")  # new layers get PAUSE_AFTER to show
    assert pause.update(set(), PAUSE_AFTER) == ("q",)
    assert pause.update(set(), 100.0) is None
    assert LayerPause(["only"]).update(set(), 50.0) == ("only",)


class _Line:
    """What `wanted_rids` reads of a consumer: its producer, whether and how tall it is shown."""

    def __init__(self, track: Producer, max_height: int | None) -> None:
        self.producer = track
        self.wanted = max_height is not None
        self.max_height = max_height


def _track(heights: dict[str, int]) -> Simulcast:
    track = Producer(None, "video", 0, 96, 90000, {})  # type: ignore[arg-type]
    simulcast = Simulcast(track, "1", ["q", "h", "f"], {})
    for rid, height in heights.items():
        layer = simulcast.bind(None, 0x100 + len(simulcast.layers), rid, 0.0)  # type: ignore[arg-type]
        assert layer is not None
        layer.height = height
    return simulcast


def test_views_want_the_smallest_layer_that_fits_their_tile_whether_or_not_it_sends() -> None:
    track = _track({"q": 180, "h": 360, "f": 720})
    assert track.wanted_rids() == set()  # nobody shows it
    track.track.consumers = [_Line(track.track, 180), _Line(track.track, None)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"q"}
    track.track.consumers.append(_Line(track.track, 500))  # type: ignore[arg-type]
    assert track.wanted_rids() == {"q", "f"}
    track.track.consumers = [_Line(track.track, 4000)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"f"}  # taller than any layer: the tallest


def test_layers_of_unknown_size_are_wanted_from_the_first_unknown_up_unless_one_below_fits() -> (
    None
):
    track = _track({"q": 180, "h": 0})  # h has not declared its size, f has not arrived
    track.track.consumers = [_Line(track.track, 90)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"q"}  # q fits: h and f, above it, are only larger
    track.track.consumers = [_Line(track.track, 240)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"q", "h", "f"}  # q is too small: h or f may be the one
    track = _track({"q": 180, "h": 360})  # f has not arrived (Chrome's allocator holds it)
    track.track.consumers = [_Line(track.track, 131)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"q"}
    track.track.consumers = [_Line(track.track, 200)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"h"}  # h fits: f is not needed, so it stays paused
    track.track.consumers.append(_Line(track.track, 500))  # type: ignore[arg-type]
    assert track.wanted_rids() == {"h", "f"}  # taller than h: f may fit it, and is wanted
    track = _track({"q": 0})  # nothing known yet: everything may be needed
    track.track.consumers = [_Line(track.track, 90)]  # type: ignore[list-item]
    assert track.wanted_rids() == {"q", "h", "f"}


# ---- the worker ---------------------------------------------------------------------------------


@dataclass
class Call:
    worker: Worker
    clock: StepClock
    events: list[MediaEvent]
    pub: Publisher
    big: FakePeer
    small: FakePeer

    def told(self) -> list[tuple[str, ...]]:
        return [e.active for e in self.events if isinstance(e, LayersWanted)]

    def forwarded(self, peer: str) -> str | None:
        line = self.worker._transports[(CALL, peer)].slots[0]["video"]
        return line.layer.rid if line.layer is not None else None

    async def step(self, key: str = "") -> None:
        """One step of the clock: a frame of every layer (key frames for `key`), then a tick."""
        self.clock.now += STEP
        for rid in "qhf":
            await self.pub.send(self.pub.frame(rid, rid in key))
        await trio.sleep(0.05)  # loopback: let the worker read them (no reply to wait for)
        self.worker._tick(self.clock.now, False)

    async def step_until_told(self, limit: int = 40) -> float:
        """Step until the worker tells a new set; the clock's time then."""
        told = len(self.told())
        for _ in range(limit):
            await self.step()
            if len(self.told()) > told:
                return self.clock.now
        raise AssertionError(f"nothing told in {limit} steps")

    def last_wanted(self, rid: str) -> float:
        return self.worker._transports[(CALL, "pub")].simulcast[0].pause.wanted_at[rid]

    async def received(self, peer: FakePeer) -> Received:
        assert peer.answer is not None
        ssrc = peer.answer.slot_ssrcs[(0, "video")]
        return read(await peer.receive_media(ssrc, timeout=WAIT))


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    clock = StepClock()
    events: list[MediaEvent] = []
    config = WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1")
    worker = Worker(config, on_event=events.append, clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        pub, big, small = Publisher("pub"), FakePeer("big"), FakePeer("small")
        for peer, peer_id in ((pub, "pub"), (big, "big"), (small, "small")):
            await peer.connect(worker, CALL, peer_id)
        try:
            yield Call(worker, clock, events, pub, big, small)
        finally:
            for peer in (pub, big, small):
                peer.close()
            nursery.cancel_scope.cancel()


async def test_the_only_large_view_shrinking_pauses_the_top_layer_after_the_debounce(
    call: Call,
) -> None:
    worker = call.worker
    worker.set_view(CALL, "big", {"pub": 720}, [])
    worker.set_view(CALL, "small", {"pub": 180}, [])
    await call.step(key="qhf")  # every layer starts with a key frame (as Chrome's do)
    await call.step()
    assert call.forwarded("big") == "f" and call.forwarded("small") == "q"
    assert call.told() == [("q", "h", "f")]  # the first check says what is active
    # Nobody wants h: it is left out once nobody wanted it for PAUSE_AFTER, not before.
    paused_at = await call.step_until_told()
    assert call.told() == [("q", "h", "f"), ("q", "f")]
    assert PAUSE_AFTER <= paused_at - call.last_wanted("h") < PAUSE_AFTER + STEP

    # The only subscriber that shows the publisher large shrinks it: f too, after the debounce.
    worker.set_view(CALL, "big", {"pub": 180}, [])
    shrunk = call.clock.now
    await call.step(key="q")  # the switch down waits for q's key frame
    assert call.forwarded("big") == "q"
    paused_at = await call.step_until_told()
    assert call.told()[-1] == ("q",)
    assert call.last_wanted("f") >= shrunk  # f was wanted until the switch down
    assert PAUSE_AFTER <= paused_at - call.last_wanted("f") < PAUSE_AFTER + STEP
    assert [e for e in call.events if isinstance(e, LayersWanted)][-1] == LayersWanted(
        CALL, "pub", ("q",)
    )

    # Shown large again: f is back at the next check, and the line moves up at f's key frame.
    worker.set_view(CALL, "big", {"pub": 720}, [])
    await call.step()
    assert call.told()[-1] == ("q", "f")
    await call.step(key="f")
    assert call.forwarded("big") == "f"
    got = await call.received(call.big)
    assert got.rid in "qf"


async def test_a_publisher_nobody_shows_keeps_only_its_lowest_layer(call: Call) -> None:
    """Views that show nobody: the call fits its slots, so the lines still carry the publisher,
    at the preroll height (the lowest layer, for a fast start when a tile appears)."""
    for peer in ("big", "small"):
        call.worker.set_view(call_id=CALL, peer_id=peer, shown={}, pinned=[])
    await call.step(key="qhf")
    for _ in range(int(PAUSE_AFTER / STEP) + 2):
        await call.step()
    assert call.told() == [("q", "h", "f"), ("q",)]
    assert call.forwarded("big") == "q" and call.forwarded("small") == "q"


# ---- through a worker process ---------------------------------------------------------------


def test_a_worker_process_relays_the_event_to_its_pool_and_the_pool_checks_it() -> None:
    """The worker process encodes LayersWanted as its `layers` frame and the pool decodes it
    into the same event (for a peer it carries); a malformed list is a ControlError (the pool
    counts the frame refused and changes nothing)."""
    config = WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1")
    process = WorkerProcess(config, -1, -1)
    process._on_event(LayersWanted(CALL, "pub", ("q", "f")))
    [frame] = FrameReader().feed(process._outbox_receive.receive_nowait())
    assert isinstance(frame, dict)
    assert frame == {"ev": "layers", "call": CALL, "peer": "pub", "active": ["q", "f"]}

    got: list[MediaEvent] = []
    pool = MediaPool(config, on_event=got.append)
    slot = pool._workers[0]
    pool._calls[CALL] = _Call(worker=slot, peers={"pub"})
    outbox, _ = trio.open_memory_channel[bytes](1)
    pool._on_frame(slot, frame, outbox)
    assert got == [LayersWanted(CALL, "pub", ("q", "f"))]
    pool._on_frame(slot, {**frame, "peer": "gone"}, outbox)  # not (any longer) in the call
    assert len(got) == 1
    for bad in (["q", 7], ["q", ""], "qf", ["a", "b", "c", "d"], ["x" * 100]):
        with pytest.raises(ControlError):
            pool._on_frame(slot, {**frame, "active": bad}, outbox)
    assert len(got) == 1
