"""The load tester's large-call peers through the real SFU (an in-process media worker, issue 11).

Simulcast publishers (three VP8 layers from the pre-encoded clip, SSRCs never signalled, bound by
MID/RID), RFC 6464 levels with speakers in turns, receiver reports, key frames on request and
``media.view``: what ``bench/large_call.py`` drives at 60 participants, here at 3 to 5.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
import trio

from media.events import MediaEvent, SlotsChanged
from media.worker import Worker, WorkerConfig
from waitroom.loadtest.clip import SIMULCAST_LAYERS, SimulcastClip, make_simulcast_clip
from waitroom.loadtest.largecall import LargeCall, SlotEvent, TurnSchedule, speaker_switches
from waitroom.loadtest.peersdp import SIMULCAST_RIDS

CALL = "c-large"
WAIT = 10.0
POLL = 0.05
#: A short clip is enough (encoded once per test module).
CLIP_SECONDS = 0.5


@pytest.fixture(scope="module")
def clip() -> SimulcastClip:
    return make_simulcast_clip(CLIP_SECONDS)


class Sfu:
    """A worker on loopback with its SlotsChanged events (monotonic time, subscriber, video)."""

    def __init__(self, worker: Worker, events: list[SlotEvent]) -> None:
        self.worker = worker
        self.events = events

    async def open_peer(self, name: str, offer: str) -> str:
        return await self.worker.open_peer(CALL, name, offer)

    async def set_view(self, name: str, shown: dict[str, int]) -> None:
        self.worker.set_view(CALL, name, shown, [])


def recorder(events: list[SlotEvent]) -> Callable[[MediaEvent], None]:
    def on_event(event: MediaEvent) -> None:
        if isinstance(event, SlotsChanged):
            events.append((time.monotonic(), event.peer_id, dict(event.slots)))

    return on_event


@pytest.fixture
async def sfu(request: pytest.FixtureRequest) -> AsyncIterator[Sfu]:
    last_n = getattr(request, "param", 9)
    events: list[SlotEvent] = []
    config = WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1", last_n=last_n)
    worker = Worker(config, on_event=recorder(events))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield Sfu(worker, events)
        nursery.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / POLL)):
        if predicate():
            return
        await trio.sleep(POLL)
    raise AssertionError(f"not within {WAIT} s: {what}")


def heights(call: LargeCall, name: str, ssrc: int) -> list[int]:
    stream = call.peers[name].streams.get(ssrc)
    return [h for *_, h in stream.keyframes] if stream is not None else []


async def test_simulcast_peers_with_levels_get_media_through_the_sfu_and_pli_gets_a_key_frame(
    sfu: Sfu, clip: SimulcastClip
) -> None:
    """Four publishers of three layers each: every layer binds by its RID, every subscriber
    receives the others' audio and the layer that fits its tiles (180 px: the lowest), RTCP
    flows both ways (RRs stop MID/RID; transport-cc feedback comes back), and when one page
    enlarges a tile the SFU's PLI for the top layer is answered with that layer's key frame."""
    names = ["a", "b", "c", "d"]
    schedule = TurnSchedule(("d",), time.monotonic() + 0.5, turn=1.0)
    call = LargeCall(clip, names, names, schedule, slots=3, audio_slots=3, tiles=3, tile_height=180)
    try:
        await call.connect(sfu.open_peer)
        assert all(p.layered and p.rids == list(SIMULCAST_RIDS) for p in call.peers.values())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.run, 60.0, sfu.set_view)
            counters = sfu.worker.counters
            await wait_until(
                lambda: counters.simulcast_layers_bound == len(names) * len(SIMULCAST_RIDS),
                "every layer of every publisher bound by MID/RID",
            )
            a = call.peers["a"]

            def b_slot() -> int | None:
                return next((s for s, p in sfu.worker.slots(CALL, "a").items() if p == "b"), None)

            await wait_until(lambda: b_slot() is not None, "b's video in a slot of a")
            slot = b_slot()
            assert slot is not None and a.answer is not None
            b_at_a = a.answer.slot_ssrcs[(slot, "video")]
            smallest = SIMULCAST_LAYERS[0][1]
            await wait_until(lambda: smallest in heights(call, "a", b_at_a), "a 180p key frame")
            assert max(heights(call, "a", b_at_a)) == smallest  # a 180 px tile gets the low layer
            for name, peer in call.peers.items():
                video = [s for s in peer.streams.values() if s.clock == 90000 and s.received]
                audio = [s for s in peer.streams.values() if s.clock == 48000 and s.received]
                assert len(video) == len(audio) == len(names) - 1, name
            await wait_until(
                lambda: all(set(p.layer_ssrcs) <= p.acked for p in call.peers.values()),
                "receiver reports on every layer (MID/RID no longer needed)",
            )
            assert counters.twcc_sent > 0
            assert counters.rr_sent > 0
            b = call.peers["b"]
            asked, sent = b.keyframe_requests, b.keyframes_sent
            top = SIMULCAST_LAYERS[-1][1]
            await sfu.set_view("a", {"b": top, "c": 180, "d": 180})
            await wait_until(lambda: top in heights(call, "a", b_at_a), "b's 720p key frame at a")
            assert b.keyframe_requests > asked and b.keyframes_sent > sent
            assert counters.simulcast_switches > 0
            stream = a.streams[b_at_a]
            assert stream.expected - stream.received <= 1  # one stream, no gap across the switch
            nursery.cancel_scope.cancel()
    finally:
        call.close()


@pytest.mark.parametrize("sfu", [2], indirect=True)
async def test_a_silent_peers_video_is_not_forwarded_when_last_n_is_full_of_speakers(
    sfu: Sfu, clip: SimulcastClip
) -> None:
    """Five peers, last-N 2, four video slots each, every page showing everyone: once d and e
    have each spoken (their levels rise in turns over room noise), a's two videos are d and e,
    and nothing arrives on its other slot lines, whatever b and c (silent) send."""
    names = ["a", "b", "c", "d", "e"]
    # Turns long enough for the detector's decision on a loaded machine (a switch is counted only
    # if the speaker's key frame arrives within its own turn).
    schedule = TurnSchedule(("d", "e"), time.monotonic() + 1.0, turn=2.5)
    call = LargeCall(clip, names, names, schedule, slots=4, audio_slots=4, tiles=4, tile_height=180)
    try:
        await call.connect(sfu.open_peer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.run, 60.0, sfu.set_view)
            await wait_until(
                lambda: set(sfu.worker.slots(CALL, "a").values()) == {"d", "e"},
                "a's last-N is the two speakers",
            )
            a = call.peers["a"]
            assert a.answer is not None
            used = set(sfu.worker.slots(CALL, "a"))
            idle = [a.answer.slot_ssrcs[(s, "video")] for s in range(4) if s not in used]
            busy = [a.answer.slot_ssrcs[(s, "video")] for s in used]

            def counts(ssrcs: list[int]) -> list[int]:
                return [a.streams[s].received if s in a.streams else 0 for s in ssrcs]

            await trio.sleep(0.3)  # packets forwarded before the switch have arrived
            idle_before, busy_before = counts(idle), counts(busy)
            await trio.sleep(1.0)
            assert set(sfu.worker.slots(CALL, "a").values()) == {"d", "e"}
            assert counts(idle) == idle_before
            assert all(
                after > before for after, before in zip(counts(busy), busy_before, strict=True)
            )
            assert "b" not in sfu.worker.slots(CALL, "a").values()
            nursery.cancel_scope.cancel()
        switches = speaker_switches(
            schedule.turns(time.monotonic()), sfu.events, call.results()["subscribers"]
        )
        # Every turn reached every subscriber: each either already received the speaker's video
        # (every page shows everyone here) or got their key frame after the turn began. Which of
        # the two depends on timing, so neither is required alone (it failed once under load).
        assert switches["missed"] == 0, switches
        assert switches["delays"] or switches["already_forwarded"], switches
        assert all(d > 0 for d in switches["delays"])
    finally:
        call.close()
