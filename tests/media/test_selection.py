"""Last-N video and loudest-k audio in stable slots (`media.selection`), sans-IO."""

from __future__ import annotations

from media.selection import (
    MAX_PINNED,
    MAX_SHOWN,
    PREROLL_HEIGHT,
    UNKNOWN_HEIGHT,
    Selection,
    SelectionConfig,
    View,
)
from media.speaker import DominantSpeaker

VIDEO, AUDIO = 9, 5


def call(n: int, *, video: int = VIDEO, audio: int = AUDIO, **config: int) -> Selection:
    sel = Selection(SelectionConfig(**config))
    for i in range(n):
        sel.add(f"p{i}", video_slots=video, audio_slots=audio, audio=True, video=True)
    sel.assign()
    return sel


def video_of(sel: Selection, peer: str) -> set[str]:
    return set(sel.slots(peer).video.values())


def audio_of(sel: Selection, peer: str) -> set[str]:
    return set(sel.slots(peer).audio.values())


def test_a_small_call_forwards_everyone_with_audio_and_video_in_the_same_slot() -> None:
    sel = call(5, video=5, audio=5)
    slots = sel.slots("p0")
    assert slots.video == {0: "p1", 1: "p2", 2: "p3", 3: "p4"}
    assert slots.audio == slots.video
    assert sel.unwanted_video() == set()


def test_a_large_call_caps_video_at_last_n_and_audio_at_the_slots() -> None:
    sel = call(60, video=20, audio=AUDIO, last_n=9)
    for i in range(60):
        slots = sel.slots(f"p{i}")
        assert len(slots.video) == 9
        assert len(slots.audio) == AUDIO
        assert f"p{i}" not in slots.video.values()


def test_the_page_s_shown_tiles_and_pins_come_first_then_recent_speakers() -> None:
    sel = call(30)
    sel.speaker("p20")
    sel.speaker("p21")
    shown = {f"p{i}": 120 for i in range(10, 16)}
    assert sel.set_view("p0", View(shown, pinned=("p1",)))
    sel.assign()
    got = video_of(sel, "p0")
    assert got == {"p1", *shown, "p21", "p20"}
    # A new speaker pushes the oldest speaker out; the shown tiles and the pin stay.
    sel.speaker("p22")
    assert "p0" in sel.assign()
    assert video_of(sel, "p0") == {"p1", *shown, "p22", "p21"}


def test_a_shown_tile_that_is_also_a_speaker_is_counted_once() -> None:
    sel = call(30)
    sel.set_view("p0", View({f"p{i}": 90 for i in range(1, 4)}))
    sel.speaker("p2")
    sel.speaker("p25")
    sel.assign()
    assert video_of(sel, "p0") == {"p1", "p2", "p3", "p25"}


def test_a_page_of_the_gallery_replaces_the_last() -> None:
    sel = call(40)
    sel.set_view("p0", View({f"p{i}": 100 for i in range(1, 10)}))
    sel.assign()
    assert video_of(sel, "p0") == {f"p{i}" for i in range(1, 10)}
    sel.set_view("p0", View({f"p{i}": 100 for i in range(10, 19)}))
    assert sel.assign() == {"p0"}
    assert video_of(sel, "p0") == {f"p{i}" for i in range(10, 19)}


def test_slots_are_stable_while_a_publisher_stays_selected() -> None:
    sel = call(30)
    sel.set_view("p0", View({"p1": 100, "p2": 100, "p3": 100}))
    sel.speaker("p10")
    sel.assign()
    before = sel.slots("p0").video
    sel.speaker("p11")
    sel.speaker("p12")
    sel.assign()
    after = sel.slots("p0").video
    for slot, peer in before.items():
        if peer in after.values():
            assert after[slot] == peer
    # p11 and p12 took free slots; nothing that stayed moved.
    assert {"p11", "p12"} <= set(after.values())


def test_joins_and_leaves_keep_the_others_where_they_are() -> None:
    sel = call(4, video=3, audio=3)
    before = sel.slots("p0").video
    assert before == {0: "p1", 1: "p2", 2: "p3"}
    sel.remove("p2")
    sel.assign()
    assert sel.slots("p0").video == {0: "p1", 2: "p3"}
    sel.add("p9", video_slots=3, audio_slots=3, audio=True, video=True)
    sel.assign()
    assert sel.slots("p0").video == {0: "p1", 1: "p9", 2: "p3"}
    assert "p2" not in video_of(sel, "p9")


def test_loudest_k_audio_plus_pins_and_a_challenger_needs_more_than_a_holder() -> None:
    sel = call(20, audio=5, loudest=3)
    sel.set_view("p0", View({}, pinned=("p19",)))
    sel.set_activity({"p5": 60, "p6": 50, "p7": 40, "p8": 10})
    sel.assign()
    assert {"p19", "p5", "p6", "p7"} <= audio_of(sel, "p0")
    assert len(audio_of(sel, "p0")) == 5
    # p9 is a bit louder than p7 now: not enough to take its place from it.
    sel.set_activity({"p5": 60, "p6": 50, "p7": 40, "p9": 45})
    sel.assign()
    loud = audio_of(sel, "p0")
    assert {"p5", "p6", "p7"} <= loud
    # Much louder: it does.
    sel.set_activity({"p5": 60, "p6": 50, "p7": 40, "p9": 90})
    sel.assign()
    assert "p9" in audio_of(sel, "p0")
    assert {"p19", "p5", "p6"} <= audio_of(sel, "p0")


def test_audio_goes_in_the_slot_of_the_same_publisher_s_video_when_free() -> None:
    sel = call(20, video=9, audio=3, loudest=3)
    sel.set_view("p0", View({f"p{i}": 100 for i in range(1, 10)}))
    sel.set_activity({"p2": 60})
    sel.assign()
    slots = sel.slots("p0")
    assert slots.video[1] == "p2"
    assert slots.audio == {0: "p1", 1: "p2", 2: "p3"}


def test_ids_not_in_the_call_and_oversized_views_are_cut_down() -> None:
    sel = call(10)
    shown = {f"x{i}": 100 for i in range(500)} | {"p1": 100, "p0": 100}
    pinned = ("nobody", "p2", "p2", "p3", "p4", "p5", "p6")
    assert sel.set_view("p0", View(shown, pinned))
    sel.assign()
    got = video_of(sel, "p0")
    assert "p0" not in got and not any(p.startswith("x") for p in got)
    assert {"p2", "p3"} <= got  # within the first MAX_PINNED of what was sent
    assert len(shown) > MAX_SHOWN and len(pinned) > MAX_PINNED
    # A view of a peer that is not in the call changes nothing.
    assert not sel.set_view("stranger", View({"p1": 100}))


def test_wanted_heights_and_video_wanted_by_nobody() -> None:
    sel = call(30, video=3, audio=3)
    sel.set_view("p0", View({"p1": 90}, pinned=("p2",)))
    sel.speaker("p3")
    for i in range(1, 30):
        sel.set_view(f"p{i}", View({"p1": 300}))
    sel.assign()
    assert sel.wanted_height("p0", "p1") == 90
    assert sel.wanted_height("p0", "p2") == UNKNOWN_HEIGHT
    assert sel.wanted_height("p0", "p3") == PREROLL_HEIGHT
    assert sel.wanted_height("p5", "p1") == 300
    assert sel.wanted_height("p0", "p20") is None
    unwanted = sel.unwanted_video()
    assert "p20" in unwanted and "p1" not in unwanted and "p3" not in unwanted


def test_a_peer_without_a_view_fills_by_join_order_and_speakers() -> None:
    sel = call(15, video=5, audio=5)
    assert video_of(sel, "p0") == {"p1", "p2", "p3", "p4", "p5"}
    sel.speaker("p12")
    sel.assign()
    got = video_of(sel, "p0")
    assert "p12" in got and len(got) == 5


def test_a_lying_publisher_takes_no_loud_place_from_the_detector_s_activity() -> None:
    """Activity comes from `DominantSpeaker`: a constant claimed 0 -dBov reads as silence."""
    detector: DominantSpeaker[str] = DominantSpeaker()
    t = 0.0
    for _ in range(100):
        t += 0.02
        detector.add_sample("liar", 0, t)
        detector.add_sample("quiet", 90, t)
    for k in range(20):
        t += 0.02
        detector.add_sample("liar", 0, t)
        detector.add_sample("quiet", 90, t)
        detector.add_sample("talker", (30, 36, 28, 40)[k % 4], t)
    activity = detector.activity()
    assert activity["liar"] == 0 and activity["quiet"] == 0 and activity["talker"] > 0
    sel = Selection(SelectionConfig(loudest=1))
    for p in ("sub", "liar", "quiet", "talker", "x1", "x2"):
        sel.add(p, video_slots=2, audio_slots=1, audio=True, video=True)
    sel.set_activity(activity)
    sel.assign()
    assert sel.slots("sub").audio == {0: "talker"}


def test_a_shown_peer_who_joins_after_the_view_is_selected_when_it_arrives() -> None:
    sel = call(12, video=3, audio=3)
    sel.set_view("p0", View({"p1": 100, "late": 100}))
    sel.assign()
    assert video_of(sel, "p0") == {"p1"}
    sel.add("late", video_slots=3, audio_slots=3, audio=True, video=True)
    sel.assign()
    assert video_of(sel, "p0") == {"p1", "late"}
