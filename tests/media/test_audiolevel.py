"""RFC 6464 audio levels: the parser, its fuzzing and kept cases, and the SDP that negotiates it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from media import audiolevel
from media.audiolevel import AudioLevel, find_one_byte_element, parse_audio_level
from media.sdp import AUDIO_LEVEL_URI, LocalParameters, build_answer, parse_offer, plan_offer
from tests.media.fakepeer import offer_sdp

FUZZ = settings(max_examples=500, deadline=None)
FINGERPRINT = ":".join(["AB"] * 32)
REGRESSIONS = Path(__file__).with_name("regressions") / "audiolevel.txt"
REGRESSION_EXT_ID = 1


def rtp_with_block(block: bytes, csrcs: int = 0) -> bytes:
    """An RTP packet with a one-byte extension block (padded to 32-bit words) and a payload."""
    block += bytes(-len(block) % 4)
    header = bytes([0x90 | csrcs, 111]) + bytes(6) + (42).to_bytes(4, "big")
    ext = (0xBEDE).to_bytes(2, "big") + (len(block) // 4).to_bytes(2, "big") + block
    return header + bytes(4 * csrcs) + ext + b"\xaa" * 20


def test_level_and_voice_flag_are_read_under_the_negotiated_id() -> None:
    packet = rtp_with_block(bytes([0x20, 0xD5, 0x50, 0x01]))  # id 2 len 1: V=1, 85 -dBov
    assert parse_audio_level(packet, 2) == AudioLevel(level=85, voice=True)
    assert parse_audio_level(packet, 5) == AudioLevel(level=1, voice=False)
    assert parse_audio_level(packet, 3) is None
    assert parse_audio_level(rtp_with_block(bytes([0x20, 0x00]), csrcs=2), 2) == AudioLevel(
        0, False
    )


def test_ids_outside_the_one_byte_range_find_nothing() -> None:
    block = bytes([0x10, 0x7F])
    assert find_one_byte_element(block, 0) is None and find_one_byte_element(block, 15) is None
    assert find_one_byte_element(block, 1) == b"\x7f"


def _regression_cases() -> list[tuple[bytes, AudioLevel | None]]:
    cases = []
    for line in REGRESSIONS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        hex_packet, *expected = line.split()
        want = None if expected == ["none"] else AudioLevel(int(expected[0]), expected[1] == "1")
        cases.append((bytes.fromhex(hex_packet), want))
    return cases


def test_kept_regression_cases() -> None:
    cases = _regression_cases()
    assert len(cases) >= 10
    for packet, want in cases:
        assert parse_audio_level(packet, REGRESSION_EXT_ID) == want, packet.hex()


@FUZZ
@given(st.binary(max_size=200), st.integers(min_value=-1, max_value=16))
def test_fuzz_never_raises_on_any_bytes(data: bytes, ext_id: int) -> None:
    result = parse_audio_level(data, ext_id)
    assert result is None or 0 <= result.level <= audiolevel.SILENCE
    block = audiolevel.extension_block(data)
    assert block is None or len(block) % 4 == 0


@FUZZ
@given(st.binary(max_size=64), st.integers(min_value=1, max_value=14))
def test_fuzz_block_walk_stays_inside_the_block(block: bytes, ext_id: int) -> None:
    found = find_one_byte_element(block, ext_id)
    assert found is None or (1 <= len(found) <= 16 and found in block)


_ELEMENT = st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16))


@FUZZ
@given(
    st.lists(_ELEMENT, max_size=6),
    st.integers(0, 255),
    st.integers(1, 14),
    st.integers(0, 3),
    st.integers(0, 15),
)
def test_fuzz_well_formed_blocks_round_trip(
    others: list[tuple[int, bytes]], value: int, ext_id: int, padding: int, csrcs: int
) -> None:
    """A level written among other elements and padding is read back exactly."""
    body = b"".join(bytes([(i << 4) | (len(d) - 1)]) + d for i, d in others if i != ext_id)
    block = bytes(padding) + body + bytes([(ext_id << 4), value])
    assert parse_audio_level(rtp_with_block(block, csrcs), ext_id) == audiolevel.decode(value)


def test_answer_negotiates_audio_level_with_the_offers_id() -> None:
    text = offer_sdp("uf", "p" * 22, FINGERPRINT, 1, 2, slots=1)
    ids = iter((9, 4))  # the publish line and the slot line use different ids
    lines = []
    for line in text.split("\r\n"):
        lines.append(line)
        if line.startswith("m=audio"):
            lines.append(f"a=extmap:{next(ids)} {AUDIO_LEVEL_URI}")
    offer = parse_offer("\r\n".join(lines))
    counter = iter(range(100, 200))
    plan = plan_offer(offer, lambda: next(counter))
    local = LocalParameters("lu", "lp" * 12, FINGERPRINT, "203.0.113.5", 4000, "cn")
    answer = build_answer(offer, plan, local)
    sections = answer.split("m=")[1:]
    audio = [s for s in sections if s.startswith("audio")]
    assert f"a=extmap:9 {AUDIO_LEVEL_URI}" in audio[0]
    assert f"a=extmap:4 {AUDIO_LEVEL_URI}" in audio[1]
    assert all(AUDIO_LEVEL_URI not in s for s in sections if s.startswith("video"))
    assert offer.media[0].extensions == {AUDIO_LEVEL_URI: 9}
