"""The sans-IO cores: golden round trips, then Hypothesis fuzzing of every wire parser.

Fuzz targets may raise only their documented error types; any other exception is a crash and its
input is kept below as an explicit regression case (`@example`).
"""

from __future__ import annotations

import contextlib
import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

from media import rtcp, rtpext, stun, twcc, vp8
from media.demux import Kind, classify
from media.dtls import split_records
from media.forward import KEYFRAME_INTERVAL, Consumer, KeyframeLimiter, PacketCache, Producer
from media.rtcp import RtcpError
from media.rtp import RtpError, header_length, parse_header, rewrite_extension_ids, seq_newer
from media.sdp import LocalParameters, SdpError, build_answer, parse_offer, plan_offer
from media.worker import Worker
from tests.media.fakepeer import offer_sdp

FUZZ = settings(max_examples=300, deadline=None)
FINGERPRINT = ":".join(["AB"] * 32)


def rtp_packet(seq: int = 1, ts: int = 1000, ssrc: int = 42, ext: bytes = b"") -> bytes:
    b0 = 0x80 | (0x10 if ext else 0)
    header = struct.pack("!BBHII", b0, 96, seq, ts, ssrc)
    if ext:
        header += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    return header + b"payload"


# ---- golden cases --------------------------------------------------------------------------


def test_rtp_header_with_one_byte_extensions_parses_and_ids_are_rewritten() -> None:
    ext = bytes([0x22, 1, 2, 3, 0x10, 9, 0, 0])  # id 2 len 3, id 1 len 1, padding
    packet = rtp_packet(ext=ext)
    header = parse_header(packet)
    assert header.extensions == {2: b"\x01\x02\x03", 1: b"\x09"}
    assert header.header_length == 12 + 4 + 8
    buf = bytearray(packet)
    rewrite_extension_ids(buf, {2: 5})
    assert parse_header(bytes(buf)).extensions == {5: b"\x01\x02\x03"}  # id 1 blanked


def test_sequence_comparison_wraps() -> None:
    assert seq_newer(0, 65535) and not seq_newer(65535, 0) and not seq_newer(7, 7)


def test_nack_round_trip_packs_bitmasks() -> None:
    lost = [100, 101, 105, 116, 117, 300]
    packet = rtcp.build_nack(1, 2, lost)
    assert sorted(rtcp.parse_nack(packet)) == lost
    # RFC 4585: sender SSRC is the server's, media SSRC the publisher's stream being NACKed.
    assert rtcp.parse_feedback_ssrcs(packet) == (1, 2)


def test_remb_round_trip() -> None:
    packet = rtcp.build_remb(7, 1_234_567, [11, 12])
    bitrate, ssrcs = rtcp.parse_remb(packet) or (0, [])
    assert ssrcs == [11, 12] and abs(bitrate - 1_234_567) < 1_234_567 / 2**17


def test_sr_and_rr_are_well_formed_compound_members() -> None:
    sr = rtcp.build_sr(5, (1 << 32) + 7, 1000, 3, 300)
    block = rtcp.ReportBlock(9, 0, 0, 70000, 0, 0, 0)
    compound = sr + rtcp.build_rr(5, [block]) + rtcp.build_pli(5, 9)
    kinds = [(pt, fmt) for pt, fmt, _ in rtcp.iter_packets(compound)]
    assert kinds == [(200, 0), (201, 1), (206, 1)]
    assert rtcp.parse_sr(sr) == rtcp.SenderReport(5, (1 << 32) + 7, 1000, 3, 300)


def test_keyframe_requests_are_coalesced_to_one_per_interval() -> None:
    limiter = KeyframeLimiter()
    assert limiter.request(10.0)
    assert not limiter.request(10.1) and not limiter.request(10.2)
    assert not limiter.due(10.3)
    assert limiter.due(10.0 + KEYFRAME_INTERVAL)
    assert not limiter.due(11.0), "one coalesced request, not one per ask"


def test_packet_cache_returns_only_the_exact_sequence() -> None:
    cache = PacketCache()
    cache.put(5, rtp_packet(seq=5))
    assert cache.get(5) is not None and cache.get(5 + 512) is None and cache.get(6) is None


def test_slot_switch_continues_the_subscriber_numbering() -> None:
    transport = object.__new__(Worker)  # any object: producers only keep a reference
    first = Producer(transport, "video", 1, 96, 90000, {})  # type: ignore[arg-type]
    second = Producer(transport, "video", 2, 96, 90000, {})  # type: ignore[arg-type]
    consumer = Consumer(transport, "video", 0, 99, 100, {})  # type: ignore[arg-type]
    first.start(1000, 5000, now=0.0)
    consumer.attach(first, now=0.0)
    first.last_seq, first.last_ts = 1010, 5300
    consumer.detach(now=0.0)  # the first publisher leaves; the slot stays empty for 1 s
    second.start(40000, 123456, now=1.0)
    consumer.attach(second, now=1.0)
    out_seq = (second.last_seq + 1 + consumer.seq_off) & 0xFFFF
    assert out_seq == 1011, "the next packet continues right after the last one sent"
    out_ts = (second.last_ts + consumer.ts_off) & 0xFFFFFFFF
    assert out_ts == 5300 + 90000, "timestamps advance by the time the slot was empty"
    assert consumer.original_seq(1011) == 40001 and consumer.original_seq(1009) is None


def test_answer_has_what_chrome_requires() -> None:
    offer = parse_offer(offer_sdp("uf", "p" * 22, FINGERPRINT, 1, 2, slots=2))
    counter = iter(range(100, 200))
    plan = plan_offer(offer, lambda: next(counter))
    local = LocalParameters("lu", "lp" * 12, FINGERPRINT, "203.0.113.5", 4000, "cn")
    answer = build_answer(offer, plan, local)
    assert "a=ice-lite" in answer and "a=group:BUNDLE 0 1 2 3 4 5" in answer
    assert answer.count("a=setup:passive") == 6 and answer.count("a=rtcp-mux") == 6
    assert "typ host" in answer and "203.0.113.5 4000" in answer
    assert "transport-cc" not in answer and "transport-wide-cc" not in answer
    assert [p.role for p in plan.lines] == ["publish", "publish", "slot", "slot", "slot", "slot"]
    assert "a=ssrc:100 " in answer and "a=rtcp-fb:96 nack pli" in answer


def test_offer_without_fingerprint_or_ice_is_refused() -> None:
    text = offer_sdp("uf", "p" * 22, FINGERPRINT, 1, 2, slots=1)
    for line in ("a=fingerprint", "a=ice-ufrag"):
        broken = "\r\n".join(x for x in text.split("\r\n") if not x.startswith(line))
        try:
            parse_offer(broken)
        except SdpError:
            continue
        raise AssertionError(f"accepted an offer without {line}")


# ---- fuzzing --------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=1600))
@example(b"\x90" + bytes(11))  # extension bit with no extension header
@example(bytes([0x90, 0, 0, 0]) + bytes(8) + b"\xbe\xde\x00\x01\xf0")
def test_fuzz_rtp_header(data: bytes) -> None:
    try:
        parse_header(data)
        header_length(data)
        rewrite_extension_ids(bytearray(data), {1: 2, 3: 0})
    except RtpError:
        pass


@FUZZ
@given(st.binary(max_size=600))
@example(b"\x80\xc9\x00\x00")  # RR with length 0: header only
@example(b"\x81\xcd\x00\x02" + bytes(8))  # NACK without FCI
@example(b"\x8f\xce\x00\x04" + bytes(8) + b"REMB" + b"\xff\x00\x00\x00")
def test_fuzz_rtcp(data: bytes) -> None:
    try:
        for pt, fmt, packet in rtcp.iter_packets(data):
            if pt == rtcp.PT_SR:
                rtcp.parse_sr(packet)
            elif pt in (rtcp.PT_RTPFB, rtcp.PT_PSFB):
                rtcp.parse_feedback_ssrcs(packet)
                rtcp.parse_nack(packet) if fmt == 1 else rtcp.parse_remb(packet)
                if fmt == rtcp.FMT_FIR:
                    rtcp.parse_fir_ssrcs(packet)
    except RtcpError:
        pass


def test_report_blocks_of_sr_and_rr_round_trip() -> None:
    blocks = [rtcp.ReportBlock(9, 64, -3, 70000, 5, 6, 7), rtcp.ReportBlock(10, 0, 100, 1, 0, 0, 0)]
    rr = rtcp.build_rr(5, blocks)
    assert rtcp.parse_report_blocks(rr, len(blocks), 8) == blocks
    sr = rtcp.build_sr(5, 1, 2, 3, 4)
    assert rtcp.parse_report_blocks(sr, 0, 28) == []


@FUZZ
@given(st.binary(max_size=300))
@example(b"\x81\xc9\x00\x01" + bytes(4))  # RR that says one block and carries none
@example(b"\x81\xc8\x00\x07" + bytes(24))  # SR that says one block and carries none
def test_fuzz_report_blocks(data: bytes) -> None:
    try:
        for pt, count, packet in rtcp.iter_packets(data):
            if pt in (rtcp.PT_SR, rtcp.PT_RR):
                rtcp.parse_report_blocks(packet, count, 28 if pt == rtcp.PT_SR else 8)
    except RtcpError:
        pass


@FUZZ
@given(st.binary(max_size=400))
@example(b"\x00\x01\x00\x00!\x12\xa4B" + bytes(12))  # empty binding request
@example(b"\x00\x01\x00\x08!\x12\xa4B" + bytes(12) + b"\x00\x06\x00\x04\xff\xfe\xfd\xfc")
def test_fuzz_stun_responder(data: bytes) -> None:
    outcome = stun.handle_datagram(data, ("127.0.0.1", 9), {"abc": "password"}.get)
    assert outcome.verdict in stun.Verdict
    if outcome.verdict is stun.Verdict.ACCEPTED:
        raise AssertionError("random bytes authenticated")


@FUZZ
@given(st.text(max_size=800))
@example("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF x\r\n")
@example("m=video 1 RTP/AVP 300\r\n")
def test_fuzz_sdp_offer(text: str) -> None:
    with contextlib.suppress(SdpError):
        parse_offer(text)


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_dtls_record_splitting(data: bytes) -> None:
    out = split_records(data, mtu=1200)
    assert b"".join(out) == data[: len(b"".join(out))]


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_worker_dispatch_never_raises(datagrams: list[bytes]) -> None:
    worker = Worker()
    for i, data in enumerate(datagrams):
        worker._on_datagram(data, ("127.0.0.1", 1000 + i))
    stats = worker.stats()
    assert stats["internal_errors"] == 0
    assert stats["forwarded"] == 0


_RTP_FIXED = struct.pack("!BBHII", 0x90, 96, 1, 2, 3)


@FUZZ
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=255))
@example(_RTP_FIXED, 1)  # extension bit, no extension header
@example(_RTP_FIXED + b"\xbe\xde\x00\x02\x11\xab\xcd\x00", 1)  # block past the datagram
@example(_RTP_FIXED + b"\x10\x00\x00\x01\x01\x09\x00\x00", 1)  # two-byte element too long
@example(_RTP_FIXED + b"\x10\x00\x00\x01\x00\x00\x00\x01", 1)  # two-byte id at the end
def test_fuzz_header_extensions(data: bytes, ext_id: int) -> None:
    """find_extension never raises; parse_extensions raises only ExtensionError; they agree."""
    found = rtpext.find_extension(data, ext_id)
    rtpext.read_rid(found)
    rtpext.read_transport_seq(found)
    try:
        parsed = rtpext.parse_extensions(data)
    except rtpext.ExtensionError:
        return
    if found is not None:
        assert parsed.get(ext_id) == found


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=6))
def test_fuzz_one_byte_blocks_round_trip(elements: list[tuple[int, bytes]]) -> None:
    data = _RTP_FIXED + rtpext.build_one_byte_block(elements) + b"payload"
    parsed = rtpext.parse_extensions(data)
    first = dict(reversed(elements))  # a repeated id: the first element wins
    assert parsed == first
    for ext_id in first:
        assert rtpext.find_extension(data, ext_id) == first[ext_id]


@FUZZ
@given(st.binary(max_size=40))
@example(b"\x90")  # X set, extension byte missing
@example(b"\x90\x80\x80")  # 15-bit picture id cut after its first byte
@example(b"\x90\x30")  # T and K: TID/KEYIDX byte missing
@example(b"\x10\x00\x00\x00\x9d\x01\x2a\x01")  # key frame header cut short: no size
def test_fuzz_vp8_descriptor(data: bytes) -> None:
    try:
        desc = vp8.parse_descriptor(data)
    except vp8.Vp8Error:
        return
    assert desc.size <= len(data)
    if desc.picture_id is not None:
        buf = bytearray(data)
        vp8.write_picture_id(buf, desc.picture_id_offset, desc.picture_id_bits, desc.picture_id + 1)
        again = vp8.parse_descriptor(bytes(buf))
        mask = vp8.picture_id_mask(desc.picture_id_bits)
        assert again.picture_id == (desc.picture_id + 1) & mask and len(buf) == len(data)


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xaf\xcd\x00\x04" + bytes(16))  # padding bit with a zero pad count
@example(b"\x8f\xcd\x00\x04" + bytes(8) + b"\x00\x00\x00\x05" + bytes(4))  # run of 0
@example(b"\x8f\xcd\x00\x05" + bytes(8) + b"\x00\x00\x00\x01" + bytes(4) + b"\x60\x01\x00\x00")
def test_fuzz_transport_cc_feedback(data: bytes) -> None:
    with contextlib.suppress(twcc.TwccError):
        twcc.parse_feedback(data)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.floats(0, 30, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_fuzz_transport_cc_recorder_reports_what_it_recorded(
    arrivals: list[tuple[int, float]],
) -> None:
    """Whatever order and spacing packets arrive in, the feedback parses and every packet the
    recorder kept is reported as received, at its arrival time relative to the first."""
    recorder = twcc.TwccRecorder()
    for seq, at in arrivals:
        recorder.record(seq, 100.0 + at)
    kept = dict(recorder.arrivals)
    packets = recorder.build(1, 2, 200.0)
    reported: dict[int, int] = {}
    for packet in packets:
        assert len(packet) % 4 == 0
        for seq16, arrived in twcc.parse_feedback(packet).packets:
            if arrived is not None:
                reported[seq16] = arrived
    assert {s & 0xFFFF: ticks for s, ticks in kept.items()} == reported


def test_demux_classifies_by_rfc7983_first_byte_and_rfc5761_packet_type() -> None:
    assert classify(b"") is Kind.UNKNOWN
    assert [classify(bytes([b, 0])) for b in (0, 3)] == [Kind.STUN, Kind.STUN]
    assert [classify(bytes([b, 0])) for b in (4, 19, 64, 127, 192, 255)] == [Kind.UNKNOWN] * 6
    assert [classify(bytes([b, 0])) for b in (20, 63)] == [Kind.DTLS, Kind.DTLS]
    assert classify(bytes([128, 96])) is Kind.RTP
    assert classify(bytes([191, 96 | 0x80])) is Kind.RTP  # marker set, payload type 96
    assert [classify(bytes([0x80, pt])) for pt in (200, 205, 206)] == [Kind.RTCP] * 3
