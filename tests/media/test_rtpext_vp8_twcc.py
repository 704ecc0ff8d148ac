"""Header extensions (RFC 8285), the VP8 payload descriptor (RFC 7741), transport-cc feedback.

Golden cases and round trips; the fuzzing of the same parsers is in test_parsers.py, with the
inputs worth keeping in tests/media/regressions/.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from media import rtpext, twcc, vp8
from media.rtpext import (
    ExtensionError,
    build_one_byte_block,
    build_two_byte_block,
    find_extension,
    parse_extensions,
    read_rid,
    read_transport_seq,
)

REGRESSIONS = Path(__file__).with_name("regressions") / "rtpext.txt"


def packet(block: bytes = b"", payload: bytes = b"\x10payload", csrcs: int = 0) -> bytes:
    b0 = 0x80 | (0x10 if block else 0) | csrcs
    return struct.pack("!BBHII", b0, 96, 1, 2, 3) + bytes(4 * csrcs) + block + payload


# ---- header extensions ------------------------------------------------------------------------


def test_one_byte_block_reads_mid_rid_and_transport_seq() -> None:
    block = build_one_byte_block([(4, b"1"), (10, b"h"), (3, b"\x01\x02")])
    data = packet(block)
    assert parse_extensions(data) == {4: b"1", 10: b"h", 3: b"\x01\x02"}
    assert read_rid(find_extension(data, 10)) == "h"
    assert read_rid(find_extension(data, 4)) == "1"
    assert read_transport_seq(find_extension(data, 3)) == 0x0102
    assert find_extension(data, 5) is None


def test_two_byte_block_with_appbits_padding_and_a_long_value() -> None:
    long_rid = b"abcdefghijklmnopqrstu"  # 21 bytes: only the two-byte form can carry it
    block = bytearray(build_two_byte_block([(20, b"f"), (200, long_rid), (3, b"")]))
    block[1] |= 0x07  # appbits are not ours to read
    data = packet(bytes(block), csrcs=2)
    assert parse_extensions(data) == {20: b"f", 200: long_rid, 3: b""}
    assert find_extension(data, 20) == b"f"
    assert read_rid(find_extension(data, 200)) is None  # longer than a rid may be


def test_rids_that_are_not_tokens_read_as_none() -> None:
    assert read_rid(b"q\x00\x00") == "q"  # RFC 8852 allows zero padding
    for bad in (b"", b"\x00", b"q h", b"\xff", b"a" * 17, None):
        assert read_rid(bad) is None
    assert read_transport_seq(b"\x01") is None


def test_malformed_blocks_raise_in_the_parser_and_read_as_absent_in_find() -> None:
    cases = [
        packet(struct.pack("!HH", 0xBEDE, 4) + b"\x10\x01"),  # block longer than the packet
        packet(struct.pack("!HH", 0xBEDE, 1) + b"\x1f\x01\x02\x03", payload=b""),  # element
        packet(struct.pack("!HH", 0x1000, 1) + b"\x05\x09\x01\x02", payload=b""),
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe",  # header cut inside the block
    ]
    for data in cases:
        with pytest.raises(ExtensionError):
            parse_extensions(data)
        assert find_extension(data, 1) is None


def test_a_stop_id_ends_a_one_byte_block_and_an_unknown_profile_has_no_elements() -> None:
    data = packet(struct.pack("!HH", 0xBEDE, 2) + bytes([0x10, 7, 0xF0, 0x20, 1, 0, 0, 0]))
    assert parse_extensions(data) == {1: b"\x07"}
    other = packet(struct.pack("!HH", 0xABCD, 1) + bytes([0x10, 7, 0, 0]))
    assert parse_extensions(other) == {} and find_extension(other, 1) is None


def test_kept_extension_inputs() -> None:
    """Each line: packet hex, id, expected value hex or "none" (never raises in find)."""
    for line in REGRESSIONS.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        hex_packet, ext_id, expected = line.split()
        value = find_extension(bytes.fromhex(hex_packet), int(ext_id))
        assert (value.hex() if value is not None else "none") == expected, line


# ---- VP8 ----------------------------------------------------------------------------------------


def test_descriptor_with_15_bit_picture_id_tl0_and_tid_and_key_frame_size() -> None:
    d = vp8.build_descriptor(picture_id=0x1234, tl0picidx=200, temporal_id=0)
    payload = d + vp8.key_frame_header(640, 360) + bytes(20)
    desc = vp8.parse_descriptor(payload)
    assert (desc.picture_id, desc.picture_id_bits, desc.tl0picidx) == (0x1234, 15, 200)
    assert desc.keyframe and (desc.width, desc.height) == (640, 360)
    assert desc.size == len(d) == 6 and desc.picture_id_offset == 2 and desc.tl0picidx_offset == 4


def test_descriptor_variants() -> None:
    seven = vp8.parse_descriptor(vp8.build_descriptor(picture_id=99, picture_id_bits=7) + b"\x01")
    assert (seven.picture_id, seven.picture_id_bits, seven.keyframe) == (99, 7, False)
    bare = vp8.parse_descriptor(b"\x10" + vp8.key_frame_header(320, 180))
    assert bare.picture_id is None and bare.keyframe and bare.height == 180
    middle = vp8.parse_descriptor(vp8.build_descriptor(start=False, picture_id=5) + b"\x00")
    assert not middle.start and not middle.keyframe  # only a partition's first packet says
    other = vp8.parse_descriptor(vp8.build_descriptor(partition=1, picture_id=5) + b"\x00")
    assert not other.keyframe
    delta = vp8.parse_descriptor(vp8.build_descriptor(picture_id=5) + b"\x01")
    assert not delta.keyframe  # P bit set: an inter frame


def test_truncated_descriptors_raise() -> None:
    for bad in (b"", b"\x90", b"\x90\x80", b"\x90\x80\x80", b"\x90\x40", b"\x90\x20"):
        with pytest.raises(vp8.Vp8Error):
            vp8.parse_descriptor(bad)


def test_picture_id_is_rewritten_in_place_in_its_own_width() -> None:
    buf = bytearray(vp8.build_descriptor(picture_id=0x7FFE, tl0picidx=1) + b"\x01")
    vp8.write_picture_id(buf, 2, 15, 0x7FFF + 3)  # wraps within 15 bits
    assert vp8.parse_descriptor(bytes(buf)).picture_id == 2
    short = bytearray(vp8.build_descriptor(picture_id=0x7F, picture_id_bits=7) + b"\x01")
    vp8.write_picture_id(short, 2, 7, 0x80)
    assert vp8.parse_descriptor(bytes(short)).picture_id == 0 and len(short) == 4


# ---- transport-cc -------------------------------------------------------------------------------


def arrivals_of(packets: list[bytes]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for p in packets:
        fb = twcc.parse_feedback(p)
        assert len(p) % 4 == 0 and len(p) <= 1200
        for seq, at in fb.packets:
            out.setdefault(seq, at)
    return out


def test_feedback_round_trips_arrivals_losses_and_the_sequence_wrap() -> None:
    recorder = twcc.TwccRecorder()
    times = {}
    now = 100.0
    for seq in [*range(65530, 65536), *range(0, 30)]:
        now += 0.0013
        if seq in (2, 3, 17):
            continue
        recorder.record(seq, now)
        times[seq] = int(now * twcc.TICKS_PER_SECOND)
    packets = recorder.build(sender_ssrc=1, media_ssrc=2, now=now)
    got = arrivals_of(packets)
    assert [s for s, at in got.items() if at is None] == [2, 3, 17]
    first = times[65530]
    for seq, at in times.items():
        assert got[seq] is not None
        assert got[seq] - got[65530] == at - first  # type: ignore[operator]
    fb = twcc.parse_feedback(packets[0])
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.fb_count) == (1, 2, 65530, 0)
    assert recorder.build(1, 2, now) == []  # nothing new
    recorder.record(30, now + 0.01)
    assert twcc.parse_feedback(recorder.build(1, 2, now + 0.01)[0]).fb_count == 1


def test_reordered_arrivals_are_large_negative_deltas_and_late_ones_are_dropped() -> None:
    recorder = twcc.TwccRecorder()
    recorder.record(10, 1.000)
    recorder.record(12, 1.002)
    recorder.record(11, 1.001 + 0.5)  # arrives after 12, half a second late
    got = arrivals_of(recorder.build(1, 2, 2.0))
    assert got[12] - got[10] == 8 and got[11] - got[10] == 2004  # type: ignore[operator]
    recorder.record(9, 2.1)  # older than what was reported: ignored
    assert recorder.build(1, 2, 2.2) == []


def test_a_long_pause_splits_the_feedback_and_many_packets_split_by_size() -> None:
    recorder = twcc.TwccRecorder()
    recorder.record(1, 1.0)
    recorder.record(2, 20.0)  # 19 s later: beyond a 16-bit delta of 250 us
    packets = recorder.build(1, 2, 20.0)
    assert len(packets) == 2 and set(arrivals_of(packets)) == {1, 2}
    for seq in range(1000):
        recorder.record(3 + seq, 21.0 + seq * 0.0005)
    packets = recorder.build(1, 2, 22.0)
    assert len(packets) == 3
    got = arrivals_of(packets)
    assert len(got) == 1000 and all(at is not None for at in got.values())


def test_chunks_use_runs_and_vectors() -> None:
    symbols = [1] * 20 + [0, 1, 2, 1] + [0] * 15
    chunks = twcc.encode_chunks(symbols)
    words = [int.from_bytes(chunks[i : i + 2], "big") for i in range(0, len(chunks), 2)]
    assert words[0] == (1 << 13) | 20  # run-length chunk of received-small
    assert words[1] >> 14 == 0b11  # two-bit vector for the mixed part
    assert (
        twcc.parse_feedback(
            struct.pack("!BBHIIHHI", 0x8F, 205, (20 + len(chunks)) // 4 - 1 + 1, 1, 2, 0, 0, 0)
            + chunks
            + bytes(-(20 + len(chunks)) % 4 + 4)
        ).packets
        == []
    )


def test_malformed_feedback_is_refused() -> None:
    good = twcc.TwccRecorder()
    good.record(5, 1.0)
    packet = good.build(1, 2, 1.0)[0]
    for bad in (packet[:19], packet[:-4], b"\x8f\xcd" + packet[2:20] + b"\x00\x00"):
        with pytest.raises(twcc.TwccError):
            twcc.parse_feedback(bad)
    assert rtpext.ONE_BYTE_PROFILE == 0xBEDE
