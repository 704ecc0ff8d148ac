"""RFC 4571 framing: any split of a stream gives the same packets; garbage is refused, bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.tcpframing import MAX_FRAME, Deframer, FramingError, frame

packets = st.lists(st.binary(min_size=1, max_size=MAX_FRAME), max_size=20)


@given(packets, st.lists(st.integers(min_value=1, max_value=5000), max_size=40))
def test_any_split_of_the_stream_gives_back_the_packets(sent: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in sent)
    deframer = Deframer()
    got: list[bytes] = []
    at = 0
    for cut in cuts:
        got += deframer.feed(stream[at : at + cut])
        at += cut
    got += deframer.feed(stream[at:])
    assert got == sent
    assert deframer.pending == 0


@given(st.binary(max_size=6000))
def test_random_bytes_give_whole_packets_or_a_framing_error_never_more(data: bytes) -> None:
    deframer = Deframer()
    try:
        out = deframer.feed(data)
    except FramingError:
        assert deframer.pending == 0
        return
    assert all(1 <= len(p) <= MAX_FRAME for p in out)
    assert deframer.pending < 2 + MAX_FRAME


def test_an_oversized_frame_is_refused_from_its_length_alone() -> None:
    deframer = Deframer()
    with pytest.raises(FramingError):
        deframer.feed((MAX_FRAME + 1).to_bytes(2, "big"))  # no body needed to refuse it
    assert deframer.pending == 0


def test_an_empty_frame_is_garbage() -> None:
    with pytest.raises(FramingError):
        Deframer().feed(b"\x00\x00")


def test_packets_before_the_garbage_are_not_delivered_after_it() -> None:
    deframer = Deframer()
    with pytest.raises(FramingError):
        deframer.feed(frame(b"ok") + b"\xff\xff")
    assert deframer.pending == 0


def test_a_partial_frame_waits_for_its_rest() -> None:
    deframer = Deframer()
    assert deframer.feed(b"\x00\x05ab") == []
    assert deframer.pending == 4
    assert deframer.feed(b"cde\x00") == [b"abcde"]
    assert deframer.pending == 1


def test_frame_refuses_what_the_prefix_cannot_carry() -> None:
    with pytest.raises(FramingError):
        frame(b"")
    with pytest.raises(FramingError):
        frame(bytes(0x10000))
