"""The large-call figures from plain records (`waitroom.loadtest.largecall`), no sockets."""

from __future__ import annotations

from typing import Any

from waitroom.loadtest.largecall import (
    NOISE_LEVEL,
    SPEECH_LEVELS,
    TurnSchedule,
    gallery,
    layer_switches,
    speaker_switches,
)


def sub(video_ssrcs: dict[int, int], keyframes: dict[int, list[tuple[float, int, int]]]) -> Any:
    streams = {
        str(ssrc): {"kind": "video", "keyframes": kfs, "max_gap": 0.05}
        for ssrc, kfs in keyframes.items()
    }
    return {"video_ssrcs": {str(k): v for k, v in video_ssrcs.items()}, "streams": streams}


def test_turns_and_levels_follow_the_schedule() -> None:
    schedule = TurnSchedule(("x", "y"), start=10.0, turn=2.0)
    assert schedule.speaker_at(9.9) is None
    assert [s for _, s in schedule.turns(16.0)] == ["x", "y", "x"]
    x, quiet = schedule.level_of("x", 0.0), schedule.level_of("q", 0.0)
    assert x(10.5) in SPEECH_LEVELS and x(12.5) == NOISE_LEVEL
    assert {quiet(t) for t in (9.0, 10.5, 12.5)} == {NOISE_LEVEL}
    assert gallery(["a", "b", "c", "d"], "b", 2, 180) == {"a": 180, "c": 180}


def test_speaker_switch_runs_from_the_turn_to_the_first_key_frame_on_the_new_slot() -> None:
    turns = [(10.0, "x"), (14.0, "y")]
    events = [
        (1.0, "s", {0: "a"}),
        (10.6, "s", {0: "a", 1: "x"}),  # x reaches s's slot 1
        (14.5, "s", {0: "y", 1: "x"}),  # y takes slot 0
        (1.0, "t", {0: "x"}),  # t had x already
    ]
    subscribers = {
        "s": sub({0: 100, 1: 101}, {101: [(10.2, 320, 180), (10.7, 320, 180)], 100: []}),
        "t": sub({0: 200}, {200: [(11.0, 320, 180)]}),
        "x": sub({}, {}),
    }
    out = speaker_switches(turns, events, subscribers)
    assert [round(d, 3) for d in out["delays"]] == [0.7]  # not the key frame before the switch
    assert out["already_forwarded"] == 1  # t for x
    assert out["missed"] == 3  # s for y (no key frame), t and x for y (never switched)


def test_layer_switch_counts_streams_above_the_lowest_layer() -> None:
    subscribers = {
        "p": sub(
            {0: 1, 1: 2},
            {1: [(1.0, 640, 360), (5.4, 320, 180)], 2: [(1.0, 320, 180)]},
        )
    }
    out = layer_switches(("p", 5.0), subscribers)
    assert out["streams"] == 1 and [round(d, 3) for d in out["delays"]] == [0.4]
    assert out["max_gap"] == 0.05
    assert layer_switches(None, subscribers)["streams"] == 0
