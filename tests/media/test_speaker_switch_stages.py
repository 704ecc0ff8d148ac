"""Where a speaker switch's time goes, measured through the real worker (issue 11).

The large-call figure "speaker switch" runs from the moment a new speaker's level rises to the
first key frame of their video at a subscriber that was not receiving it. It is the sum of four
steps, timed here per switch with the load tester's simulated peers (`LargeCall`) against an
in-process worker: the detector's decision (DominantSpeakerChanged), the slot re-mapping
(SlotsChanged), the key-frame request arriving at the speaker, and the key frame arriving at the
subscriber. `bench/large_call.py` reports the same stages at 6 to 60 participants; this test
keeps the breakdown honest at 6 (last-N 3, one tile shown, so every turn is a switch) and prints
it (``pytest -s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import trio

from media.events import DominantSpeakerChanged, MediaEvent, SlotsChanged
from media.worker import Worker, WorkerConfig
from waitroom.loadtest.clip import SimulcastClip, make_simulcast_clip
from waitroom.loadtest.largecall import (
    STAGES,
    LargeCall,
    SlotEvent,
    SpeakerEvent,
    TurnSchedule,
    speaker_stages,
    speaker_switches,
)

CALL = "c-stages"
PEERS = 6
SPEAKERS = 4
TURN = 1.2
LEAD_IN = 0.8
#: Bounds with room for a loaded machine (measured 0.19-0.27 s and 0.21-0.29 s at load 7-10; the
#: build before the issue-11 tuning took 0.55 s and 0.74 s: Jitsi's 300 ms decisions and C3, and a
#: layer's PLI held back by the publisher's previous one).
DECIDE_BOUND = 0.45
SWITCH_BOUND = 0.6


@pytest.fixture(scope="module")
def clip() -> SimulcastClip:
    return make_simulcast_clip(0.5)


def recorder(slots: list[SlotEvent], speakers: list[SpeakerEvent]) -> Callable[[MediaEvent], None]:
    def on_event(event: MediaEvent) -> None:
        if isinstance(event, SlotsChanged):
            slots.append((time.monotonic(), event.peer_id, dict(event.slots)))
        elif isinstance(event, DominantSpeakerChanged):
            speakers.append((time.monotonic(), event.peer_id))

    return on_event


async def test_speaker_switch_stages_each_switch_is_decided_mapped_asked_and_delivered(
    clip: SimulcastClip,
) -> None:
    """Four speakers in turns over room noise in a call of six: each turn moves the speaker into
    every other page's last-N (one tile shown, two recent speakers). Every switch is timed by
    stage; they come in order, none is missed, and the median switch stays within bounds."""
    slot_events: list[SlotEvent] = []
    speaker_events: list[SpeakerEvent] = []
    config = WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1", last_n=3)
    worker = Worker(config, on_event=recorder(slot_events, speaker_events))
    names = [f"p{n}" for n in range(PEERS)]
    placeholder = TurnSchedule(tuple(names[-SPEAKERS:]), float("inf"), TURN)
    call = LargeCall(
        clip, names, names, placeholder, slots=3, audio_slots=3, tiles=1, tile_height=180
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)

            async def open_peer(name: str, offer: str) -> str:
                return await worker.open_peer(CALL, name, offer)

            async def set_view(name: str, shown: dict[str, int]) -> None:
                worker.set_view(CALL, name, shown, [])

            await call.connect(open_peer)
            start = time.monotonic() + LEAD_IN
            call.schedule = TurnSchedule(tuple(names[-SPEAKERS:]), start, TURN)
            await call.run(LEAD_IN + SPEAKERS * TURN, set_view)
            nursery.cancel_scope.cancel()
    finally:
        call.close()
    subscribers = call.results()["subscribers"]
    turns = call.schedule.turns(start + SPEAKERS * TURN)
    switches = speaker_switches(turns, slot_events, subscribers)
    stages = speaker_stages(turns, speaker_events, slot_events, subscribers)
    p50 = stages["p50"]
    print(
        "\nspeaker switch stages, p50 ms (from the level rising):",
        ", ".join(f"{k} {1000 * v:.0f}" for k, v in p50.items() if v is not None),
        f"| {len(stages['stages'])} switches, {stages['asked_elsewhere']} on a key frame "
        f"asked earlier, {switches['missed']} missed",
    )
    assert switches["missed"] == 0, switches
    assert len(stages["stages"]) == len(switches["delays"]) >= (SPEAKERS - 1) * (PEERS - 2)
    for st in stages["stages"]:
        times = [st[k] for k in STAGES if st[k] is not None]
        assert times == sorted(times), st
        assert st["decided"] is not None, st
    assert p50["decided"] is not None and p50["decided"] < DECIDE_BOUND, p50
    assert p50["keyframe"] is not None and p50["keyframe"] < SWITCH_BOUND, p50
