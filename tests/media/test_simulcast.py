"""Simulcast through the real worker: binding layers by MID/RID, one layer per subscriber,
switching at key frames with continuous numbering, and bad input that changes nothing.

The publisher is the load tester's fake browser with a Chrome-shaped simulcast offer (`a=rid`
send q/h/f, `a=simulcast:send`, the mid/rid/repaired-rid and transport-cc extensions, no SSRCs
for the layers). Its packets are real SRTP with a VP8 payload descriptor and, on key frames, the
VP8 key-frame header that declares the layer's size (320x180, 640x360, 1280x720); nothing else
of the frame is read by the server. The subscriber is the same fake browser, single-layer.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trio

from media import rtcp, twcc, vp8
from media.forward import KEYFRAME_INTERVAL, Consumer
from media.rtpext import build_one_byte_block
from media.sdp import (
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
    TWCC_URI,
    LocalParameters,
    build_answer,
    parse_offer,
    plan_offer,
)
from media.simulcast import LAYER_STALL, UP_SWITCH_HOLD
from media.transport import Transport
from media.worker import Worker, WorkerConfig
from tests.media.fakepeer import AUDIO_PT, VIDEO_PT, FakePeer, offer_sdp

CALL = "c-simulcast"
MID_ID, RID_ID, RRID_ID, TWCC_ID = 4, 10, 11, 3
SIZES = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
FRAME_TICKS = 3000  # 30 fps at 90 kHz
WAIT = 5.0


def simulcast_offer(sdp: str, video_ssrc: int, audio_ssrc: int, rids: str = "q;h;f") -> str:
    """Turn the fake's offer into Chrome's simulcast shape: mid on every line, transport-cc on
    the publish lines, and the video publish line's SSRC replaced by rids."""
    out: list[str] = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=mid:"):
            out += [line, f"a=extmap:{MID_ID} {MID_URI}"]
        elif line == f"a=ssrc:{video_ssrc} cname:fake":
            out += [
                f"a=extmap:{RID_ID} {RID_URI}",
                f"a=extmap:{RRID_ID} {REPAIRED_RID_URI}",
                f"a=extmap:{TWCC_ID} {TWCC_URI}",
                f"a=rtcp-fb:{VIDEO_PT} transport-cc",
            ]
            out += [f"a=rid:{rid} send" for rid in rids.split(";")]
            out.append(f"a=simulcast:send {rids}")
        elif line == f"a=ssrc:{audio_ssrc} cname:fake":
            out += [line, f"a=extmap:{TWCC_ID} {TWCC_URI}", f"a=rtcp-fb:{AUDIO_PT} transport-cc"]
        else:
            out.append(line)
    return "\r\n".join(out)


@dataclass
class Layer:
    ssrc: int
    seq: int
    ts: int
    picture_id: int
    tl0: int = 7
    announced: int = 0  # packets sent with MID/RID (Chrome: until the receiver reports)


class Publisher(FakePeer):
    """A fake Chrome publishing simulcast video."""

    def __init__(self, role: str = "peer", rids: str = "q;h;f") -> None:
        super().__init__(role)
        self.rid_spec = rids
        self.transport_seq = 0
        self.layers = {
            rid: Layer(ssrc=0x1000 + i, seq=100 * (i + 1), ts=10_000 * (i + 1), picture_id=50 * i)
            for i, rid in enumerate(("q", "h", "f", "x"))
        }

    def offer(self, slots: int = 2, audio_slots: int | None = None) -> str:
        return simulcast_offer(
            super().offer(slots, audio_slots), self.video_ssrc, self.audio_ssrc, self.rid_spec
        )

    def frame(
        self,
        rid: str,
        key: bool,
        announce: bool | None = None,
        *,
        mid: bytes = b"1",
        says: str | None = None,
        block: bytes | None = None,
        repairs: str | None = None,
    ) -> bytes:
        """One single-packet VP8 frame of layer `rid` (payload tagged with the rid). `says` is
        the RID its extension claims, `block` replaces the whole extension block."""
        layer = self.layers[rid]
        layer.seq = (layer.seq + 1) & 0xFFFF
        layer.ts = (layer.ts + FRAME_TICKS) & 0xFFFFFFFF
        layer.picture_id = (layer.picture_id + 1) & 0x7FFF
        if key:
            layer.tl0 = (layer.tl0 + 1) & 0xFF
        self.transport_seq = (self.transport_seq + 1) & 0xFFFF
        elements = [(TWCC_ID, self.transport_seq.to_bytes(2, "big"))]
        if announce if announce is not None else layer.announced < 3:
            if repairs is None:
                elements += [(MID_ID, mid), (RID_ID, (says or rid).encode())]
            else:  # an RTX packet names the layer it repairs, and has no RID of its own
                elements += [(MID_ID, mid), (RRID_ID, repairs.encode())]
            layer.announced += 1
        if block is None:
            block = build_one_byte_block(elements)
        header = struct.pack("!BBHII", 0x90, 0x80 | VIDEO_PT, layer.seq, layer.ts, layer.ssrc)
        desc = vp8.build_descriptor(picture_id=layer.picture_id, tl0picidx=layer.tl0)
        body = vp8.key_frame_header(*SIZES.get(rid, (99, 99))) if key else b"\x01\x00\x00"
        return header + block + desc + body + rid.encode() * 40

    async def send(self, packet: bytes) -> None:
        assert self.srtp is not None
        await self.sock.sendto(self.srtp.tx.protect(packet), self.server)

    async def frames(self, rids: str, key: bool = False) -> None:
        for rid in rids:
            await self.send(self.frame(rid, key))


@dataclass
class Received:
    seq: int
    ts: int
    picture_id: int
    tl0: int
    rid: str
    key: bool


def read(plain: bytes) -> Received:
    b0 = plain[0]
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        start += 4 + 4 * struct.unpack_from("!H", plain, start + 2)[0]
    desc = vp8.parse_descriptor(plain, start)
    seq, ts = struct.unpack_from("!HI", plain, 2)
    assert desc.picture_id is not None and desc.tl0picidx is not None
    return Received(seq, ts, desc.picture_id, desc.tl0picidx, chr(plain[-1]), desc.keyframe)


@dataclass
class Call:
    worker: Worker
    pub: Publisher
    sub: FakePeer
    got: list[Received] = field(default_factory=list)

    @property
    def line(self) -> Consumer:
        return self.worker._transports[(CALL, "sub")].slots[0]["video"]

    @property
    def publisher(self) -> Transport:
        return self.worker._transports[(CALL, "pub")]

    async def expect(self, count: int) -> list[Received]:
        """The next `count` video packets the subscriber receives on slot 0."""
        assert self.sub.answer is not None
        ssrc = self.sub.answer.slot_ssrcs[(0, "video")]
        out = [read(await self.sub.receive_media(ssrc, timeout=WAIT)) for _ in range(count)]
        self.got += out
        return out

    async def settle(self) -> None:
        """Let the worker read what was sent (loopback; no reply to wait for)."""
        await trio.sleep(0.05)


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    worker = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        pub, sub = Publisher("pub"), FakePeer("sub")
        await pub.connect(worker, CALL, "pub")
        await sub.connect(worker, CALL, "sub")
        yield Call(worker, pub, sub)
        nursery.cancel_scope.cancel()


def assert_continuous(packets: list[Received]) -> None:
    """What a decoder needs across a switch: no gap, no jump, nothing going backwards."""
    for a, b in itertools.pairwise(packets):
        assert b.seq == (a.seq + 1) & 0xFFFF, (a, b)
        assert b.picture_id == (a.picture_id + 1) & 0x7FFF, (a, b)
        assert 0 < (b.ts - a.ts) & 0xFFFFFFFF < 90000, (a, b)
        assert b.tl0 in (a.tl0, (a.tl0 + 1) & 0xFF), (a, b)


# ---- SDP ----------------------------------------------------------------------------------------


def chrome_offer() -> str:
    return simulcast_offer(offer_sdp("ufrag", "password", ":".join(["AB"] * 32), 11, 22, 2), 22, 11)


def test_the_answer_accepts_chromes_simulcast_and_transport_cc_on_the_publish_line_only() -> None:
    offer = parse_offer(chrome_offer())
    video = offer.media[1]
    assert video.rids == ["q", "h", "f"] and video.ssrc is None
    plan = plan_offer(offer, iter(range(1, 100)).__next__)
    assert [p.role for p in plan.lines] == ["publish", "publish", "slot", "slot", "slot", "slot"]
    local = LocalParameters("u", "p", ":".join(["AB"] * 32), "127.0.0.1", 9, "c")
    sections = build_answer(offer, plan, local).split("m=")[1:]
    audio, video_answer, *slots = sections
    for line in ("a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f"):
        assert line in video_answer
    for uri, ext_id in ((MID_URI, 4), (RID_URI, 10), (REPAIRED_RID_URI, 11), (TWCC_URI, 3)):
        assert f"a=extmap:{ext_id} {uri}" in video_answer
    assert f"a=rtcp-fb:{VIDEO_PT} transport-cc" in video_answer
    assert f"a=extmap:3 {TWCC_URI}" in audio and f"a=rtcp-fb:{AUDIO_PT} transport-cc" in audio
    assert MID_URI not in audio  # only a simulcast line needs MID to bind its layers
    for section in slots:  # subscribers demultiplex by the declared SSRC, never by our mid
        assert MID_URI not in section and TWCC_URI not in section and "transport-cc" not in section


def test_rids_not_listed_in_simulcast_or_without_the_rid_extension_are_one_stream() -> None:
    text = chrome_offer().replace("a=simulcast:send q;h;f", "a=simulcast:send q;~h,x;zz")
    assert parse_offer(text).media[1].rids == ["q", "h"]  # paused ones too, first alternative
    no_ext = chrome_offer().replace(f"a=extmap:{RID_ID} {RID_URI}\r\n", "")
    offer = parse_offer(no_ext)
    assert offer.media[1].rids == []
    plan = plan_offer(offer, iter(range(1, 100)).__next__)
    assert plan.lines[1].role == "reject"  # no SSRC and no bindable rids: it cannot publish
    four = chrome_offer().replace("a=simulcast:send q;h;f", "a=simulcast:send q;h;f;q2")
    four = four.replace("a=rid:q send", "a=rid:q send\r\na=rid:q2 send")
    assert parse_offer(four).media[1].rids == ["q", "h", "f"]  # at most three layers


# ---- the worker -----------------------------------------------------------------------------


async def start_layers(call: Call, rids: str = "qhf") -> None:
    """Every layer starts with a key frame (as Chrome's do): as each binds, the subscriber is
    moved up to it at once, so it sees each one's key frame in turn, numbered continuously."""
    await call.pub.frames(rids, key=True)
    started = await call.expect(len(rids))
    assert [(r.rid, r.key) for r in started] == [(rid, True) for rid in rids]


async def test_layers_bind_by_rid_and_a_full_size_tile_gets_the_top_layer(call: Call) -> None:
    await start_layers(call)
    track = call.publisher.simulcast[0]
    assert {rid: layer.ssrc for rid, layer in track.layers.items()} == {
        rid: call.pub.layers[rid].ssrc for rid in "qhf"
    }
    assert [(track.layers[r].width, track.layers[r].height) for r in "qhf"] == list(SIZES.values())
    assert call.worker.counters.simulcast_layers_bound == 3
    for _ in range(3):
        await call.pub.frames("qhf")
    assert [r.rid for r in await call.expect(3)] == ["f"] * 3
    assert track.paused() == ["q", "h"]  # nobody forwards them
    assert_continuous(call.got)


async def test_a_small_tile_switches_down_at_a_key_frame_without_a_gap(call: Call) -> None:
    await start_layers(call)
    await call.pub.frames("qhf")
    await call.expect(1)
    call.line.set_wanted(180)
    # Until q's key frame the subscriber keeps f (no frozen video); the worker asks for one.
    await call.pub.frames("qhf")
    assert (await call.expect(1))[0].rid == "f"
    with trio.fail_after(WAIT):
        while True:  # the ticker sends the PLI to the layer the switch waits for
            data = await call.pub.recv_kind(range(128, 192))
            assert call.pub.srtp is not None
            plain = call.pub.srtp.rx.unprotect_rtcp(data)
            pli = [
                rtcp.parse_feedback_ssrcs(p)[1]
                for pt, fmt, p in rtcp.iter_packets(plain)
                if pt == rtcp.PT_PSFB and fmt == rtcp.FMT_PLI
            ]
            if call.pub.layers["q"].ssrc in pli:
                break
    await call.pub.frames("hf")  # f still forwarded, h never
    await call.pub.frames("q", key=True)
    await call.pub.frames("qhf")
    tail = await call.expect(3)
    assert [(r.rid, r.key) for r in tail] == [("f", False), ("q", True), ("q", False)]
    assert_continuous(call.got)
    assert call.worker.counters.simulcast_switches >= 2  # the first attach and this one


async def test_switching_up_and_back_keeps_numbering_and_picture_ids_continuous(
    call: Call,
) -> None:
    await start_layers(call)
    for wanted, rid in ((360, "h"), (180, "q"), (720, "f"), (1080, "f"), (200, "h")):
        call.line.set_wanted(wanted)
        await call.pub.frames("qhf")
        await call.pub.frames(rid, key=True)
        await call.pub.frames("qhf")
        await call.settle()
    await drain(call)
    assert_continuous(call.got)
    # Each switch lands on its layer's key frame; 1080 wants no more than f already is.
    assert [r.rid for r in call.got if r.key] == ["q", "h", "f", "h", "q", "f", "f", "h"]
    assert len(call.got) == 3 + 5 * 3


async def drain(call: Call) -> list[Received]:
    """Everything the subscriber has been sent so far on slot 0."""
    out: list[Received] = []
    with trio.move_on_after(0.5):
        while True:
            out += await call.expect(1)
    return out


async def test_a_paused_line_gets_nothing_and_resumes_continuously(call: Call) -> None:
    await start_layers(call)
    call.line.set_wanted(None)
    await call.pub.frames("qhf", key=True)
    await call.pub.frames("qhf")
    await call.settle()
    assert await drain(call) == []
    assert sorted(call.publisher.simulcast[0].paused()) == ["f", "h", "q"]
    call.line.set_wanted(360)
    await call.pub.frames("h", key=True)
    resumed = await call.expect(1)
    assert resumed[0].rid == "h" and resumed[0].key
    assert_continuous(call.got)


async def test_a_switch_completing_while_the_publisher_is_on_hold_forwards_nothing(
    call: Call,
) -> None:
    await start_layers(call)
    call.worker.set_publishing(CALL, "pub", False)
    call.line.set_wanted(180)
    await call.pub.frames("q", key=True)  # the switch completes at q's key frame ...
    await call.pub.frames("qhf")
    await call.settle()
    assert call.line.layer is call.publisher.simulcast[0].layers["q"]
    assert await drain(call) == []  # ... and still nothing of a held publisher goes out
    call.worker.set_publishing(CALL, "pub", True)
    await call.pub.frames("q", key=True)
    assert [(r.rid, r.key) for r in await call.expect(1)] == [("q", True)]


async def test_a_layer_that_never_arrives_is_not_chosen(call: Call) -> None:
    await start_layers(call, rids="qh")  # f is offered but never sent: h is the tallest
    await call.pub.frames("qh")
    assert [r.rid for r in await call.expect(1)] == ["h"]
    # While a layer is unbound, an RTX stream naming a layer is noted (RTX is not negotiated).
    x = call.pub.layers["x"]
    await call.pub.send(call.pub.frame("x", True, True, repairs="q"))
    await call.settle()
    assert call.publisher.simulcast[0].layers["q"].rtx_ssrc == x.ssrc
    assert call.publisher.simulcast[0].layers.keys() == {"q", "h"}


async def test_unknown_rids_and_garbage_extensions_bind_nothing_and_change_nothing(
    call: Call,
) -> None:
    await start_layers(call)
    before = dict(call.publisher.simulcast[0].layers)
    x = call.pub.layers["x"]
    # On fresh SSRCs: an unknown rid, a known rid under another MID, an element that runs past
    # its block, and a bound layer's rid said again (it cannot be taken over).
    for kwargs in (
        {},
        {"mid": b"7", "says": "q"},
        {"block": b"\xbe\xde\x00\x01\xaf\x00\x00\x00"},
        {"says": "f"},
    ):
        x.ssrc += 1
        await call.pub.send(call.pub.frame("x", True, True, **kwargs))  # type: ignore[arg-type]
    await call.settle()
    await call.pub.frames("qhf")
    got = await call.expect(1)
    assert got[0].rid == "f"
    assert call.publisher.simulcast[0].layers == before
    assert call.worker.counters.dropped_unknown_ssrc == 4
    assert call.worker.counters.dropped_srtp_auth == 0
    assert_continuous(call.got)


async def test_the_publisher_gets_transport_cc_feedback_for_what_arrived(call: Call) -> None:
    await start_layers(call)
    for _ in range(5):
        await call.pub.frames("qhf")
    await trio.sleep(0.15)
    await call.pub.frames("q")  # a packet after the interval brings the feedback out
    reported: dict[int, int | None] = {}
    with trio.fail_after(WAIT):
        while len([s for s, at in reported.items() if at is not None]) < 19:
            data = await call.pub.recv_kind(range(128, 192))
            if data[1] not in range(192, 224):
                continue
            assert call.pub.srtp is not None
            plain = call.pub.srtp.rx.unprotect_rtcp(data)
            for pt, fmt, p in rtcp.iter_packets(plain):
                if pt == rtcp.PT_RTPFB and fmt == rtcp.FMT_TWCC:
                    for seq, at in twcc.parse_feedback(p).packets:
                        reported[seq] = at
    assert {s for s, at in reported.items() if at is not None} == set(range(1, 20))
    assert call.worker.counters.twcc_sent >= 1


async def test_a_low_bandwidth_subscriber_gets_a_lower_layer(call: Call) -> None:
    await start_layers(call)
    sub = call.worker._transports[(CALL, "sub")]
    track = call.publisher.simulcast[0]
    q, h, f = (track.layers[rid] for rid in "qhf")

    def rates() -> None:  # what measure_bitrate would say of a real Chrome's layers
        q.bitrate, h.bitrate, f.bitrate = 150_000, 500_000, 1_700_000

    now = call.worker._clock()
    rates()
    sub.remb_bitrate = 600_000
    track.reselect(now)
    assert call.line.layer is f and call.line.target is h
    sub.loss_fraction = 0.5  # its receiver reports say half is lost: 300 kbit/s left
    track.reselect(now)
    assert call.line.target is q
    call.line.set_wanted(180)
    await call.pub.frames("q", key=True)
    assert (await call.expect(1))[0].rid == "q"
    sub.loss_fraction, sub.remb_bitrate = 0.0, 1_900_000  # 1.7 M fits, but not with headroom
    rates()
    call.line.set_wanted(720)
    assert call.line.layer is q and call.line.target is h
    sub.remb_bitrate = 3_000_000
    rates()
    track.reselect(now)
    assert call.line.target is f


async def test_an_estimate_drop_lowers_the_layer_at_once_bounded_and_without_flapping(
    call: Call,
) -> None:
    """Layer choice follows the subscriber's REMB as it arrives (issue 11; it used to wait for
    the once-a-second report tick): a drop re-chooses at once, a second change within 200 ms is
    owed and made by the ticker when the interval has passed, and once the line went down an
    estimate that bounces back does not take it up again for UP_SWITCH_HOLD."""
    await start_layers(call)
    worker = call.worker
    sub = worker._transports[(CALL, "sub")]
    track = call.publisher.simulcast[0]
    q, h, f = (track.layers[rid] for rid in "qhf")
    # Times far ahead of the worker's own clock: its ticker never makes an owed choice here.
    t = worker._clock() + 1000.0

    def remb(bitrate: int, at: float) -> None:
        q.bitrate, h.bitrate, f.bitrate = 150_000, 500_000, 1_700_000  # as measured
        q.last_at = h.last_at = f.last_at = at  # all three sending
        packet = rtcp.build_remb(1234, bitrate, [call.line.ssrc])
        worker._feedback._on_payload_feedback(sub, rtcp.FMT_AFB, packet, at)

    def tick(at: float) -> None:
        for transport in worker._transports.values():
            transport.last_consent = at  # consent is not what this is about
        worker._tick(at, False)

    assert call.line.layer is f
    remb(600_000, t)
    assert call.line.target is h  # at once
    remb(300_000, t + 0.05)
    assert call.line.target is h and sub.layer_choice_owed  # bounded: owed, not made
    tick(t + 0.1)
    assert call.line.target is h  # not yet
    tick(t + 0.2)
    assert call.line.target is q and not sub.layer_choice_owed
    await call.pub.frames("q", key=True)
    assert (await call.expect(1))[0].rid == "q"
    remb(20_000_000, t + 0.5)  # the estimate bounces back at once: held
    assert call.line.layer is q and call.line.target is None
    remb(21_000_000, t + 0.2 + UP_SWITCH_HOLD)  # held long enough: up, to what the tile wants
    assert call.line.target is f


async def test_a_layer_the_publisher_stops_is_left_at_once_not_after_the_timeout(
    call: Call,
) -> None:
    """Chrome stops its top layer when its uplink estimate falls, and sends the others on. A
    line on that layer would show a frozen picture until LAYER_TIMEOUT (1.5 s) and the next
    choice (up to 1 s more); now the worker's ticker sees the layer LAYER_STALL behind the
    others, chooses again, asks for the next one's key frame and the line goes on there."""
    await start_layers(call)
    worker = call.worker
    track = call.publisher.simulcast[0]
    h, f = track.layers["h"], track.layers["f"]
    assert call.line.layer is f
    await call.pub.frames("qh")  # f has stopped
    await call.settle()
    now = worker._clock()
    f.last_at = now - LAYER_STALL - 0.2  # as if its last packet came that long before the others
    assert track.stalled()
    asked = worker.counters.keyframe_requests
    worker._tick(now, False)
    assert call.line.target is h  # chosen again at once, and h's key frame owed
    with trio.fail_after(2 * KEYFRAME_INTERVAL):  # asked within the layer's keyframe interval
        while worker.counters.keyframe_requests == asked:
            await call.settle()
    await call.pub.frames("h", key=True)
    assert (await call.expect(1))[0].rid == "h"
    assert_continuous(call.got)


# ---- real VP8 through a switch --------------------------------------------------------------


REAL_SIZES = {"q": (80, 48), "h": (160, 96), "f": (320, 192)}


class EncodingPublisher(Publisher):
    """Three real libvpx encoders (aiortc's, as the load tester uses) for three layer sizes."""

    def __init__(self, role: str = "peer") -> None:
        super().__init__(role)
        from aiortc.codecs.vpx import Vp8Encoder

        self.encoders = {rid: Vp8Encoder() for rid in "qhf"}
        self.frame_index = 0

    def encoded(self, rid: str, key: bool) -> list[bytes]:
        """The RTP packets of the next frame of layer `rid`, with a moving test picture."""
        from fractions import Fraction

        import av
        import numpy

        width, height = REAL_SIZES[rid]
        picture = numpy.zeros((height, width, 3), numpy.uint8)
        picture[:, (self.frame_index * 3) % width] = 255
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = self.frame_index * FRAME_TICKS
        frame.time_base = Fraction(1, 90000)
        payloads, _ = self.encoders[rid].encode(frame, force_keyframe=key)
        layer = self.layers[rid]
        layer.ts = (layer.ts + FRAME_TICKS) & 0xFFFFFFFF
        out = []
        for i, payload in enumerate(payloads):
            layer.seq = (layer.seq + 1) & 0xFFFF
            self.transport_seq = (self.transport_seq + 1) & 0xFFFF
            elements = [(TWCC_ID, self.transport_seq.to_bytes(2, "big"))]
            if layer.announced < 3:
                elements += [(MID_ID, b"1"), (RID_ID, rid.encode())]
                layer.announced += 1
            marker = 0x80 if i == len(payloads) - 1 else 0
            header = struct.pack("!BBHII", 0x90, marker | VIDEO_PT, layer.seq, layer.ts, layer.ssrc)
            out.append(header + build_one_byte_block(elements) + payload)
        return out

    async def round(self, key: str = "") -> None:
        """One frame on every layer; layers named in `key` send a key frame."""
        for rid in "qhf":
            for packet in self.encoded(rid, rid in key):
                await self.send(packet)
        self.frame_index += 1


async def test_real_vp8_stays_decodable_across_layer_switches() -> None:
    """aiortc's libvpx decoder at the subscriber decodes every frame, before and after each
    switch: the switch lands on a key frame and the numbering has no gap."""
    import av
    from aiortc.codecs.vpx import Vp8Decoder, vp8_depayload
    from aiortc.jitterbuffer import JitterFrame

    worker = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        pub, sub = EncodingPublisher("pub"), FakePeer("sub")
        await pub.connect(worker, CALL, "pub")
        await sub.connect(worker, CALL, "sub")
        assert sub.answer is not None
        ssrc = sub.answer.slot_ssrcs[(0, "video")]
        line = worker._transports[(CALL, "sub")].slots[0]["video"]
        decoder = Vp8Decoder()
        sizes: list[tuple[int, int]] = []
        last_seq: int | None = None
        pending = b""

        async def receive_frames(count: int) -> None:
            nonlocal last_seq, pending
            while count:
                plain = await sub.receive_media(ssrc, timeout=WAIT)
                seq = struct.unpack_from("!H", plain, 2)[0]
                assert last_seq is None or seq == (last_seq + 1) & 0xFFFF
                last_seq = seq
                start = 12 + 4 + 4 * struct.unpack_from("!H", plain, 14)[0]
                pending += vp8_depayload(plain[start:])
                if plain[1] & 0x80:  # the frame's last packet
                    ts = struct.unpack_from("!I", plain, 4)[0]
                    for picture in decoder.decode(JitterFrame(pending, ts)):
                        assert isinstance(picture, av.VideoFrame)
                        sizes.append((picture.width, picture.height))
                    pending = b""
                    count -= 1

        await pub.round(key="qhf")  # every layer starts with a key frame: q, h, f in turn
        await receive_frames(3)
        for _ in range(3):
            await pub.round()
        await receive_frames(3)
        line.set_wanted(48)
        await pub.round()  # f until q's key frame
        await pub.round(key="q")
        await pub.round()
        await receive_frames(3)
        line.set_wanted(96)
        await pub.round(key="h")  # its q frame is sent before h's key frame
        await pub.round()
        await receive_frames(3)
        nursery.cancel_scope.cancel()
    q, h, f = REAL_SIZES.values()
    assert sizes == [q, h, f, f, f, f, f, q, q, q, h, h]


async def test_a_single_layer_line_pauses_and_resumes_with_continuous_numbering() -> None:
    """set_wanted(None) on a line of a publisher without simulcast forwards nothing; showing it
    again continues the line's sequence numbers (no gap for the receiver to NACK)."""
    worker = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        pub, sub = FakePeer("pub"), FakePeer("sub")
        await pub.connect(worker, CALL, "pub")
        await sub.connect(worker, CALL, "sub")
        assert sub.answer is not None
        ssrc = sub.answer.slot_ssrcs[(0, "video")]
        line = worker._transports[(CALL, "sub")].slots[0]["video"]

        async def seqs(count: int) -> list[int]:
            out = []
            for _ in range(count):
                plain = await sub.receive_media(ssrc, timeout=WAIT)
                out.append(struct.unpack_from("!H", plain, 2)[0])
            return out

        await pub.send_media(3)
        before = await seqs(3)
        line.set_wanted(None)
        await pub.send_media(5)
        await trio.sleep(0.05)
        with trio.move_on_after(0.3):
            await sub.receive_media(ssrc, timeout=WAIT)
            raise AssertionError("a line nobody shows was forwarded")
        line.set_wanted(360)
        await pub.send_media(2)
        after = await seqs(2)
        nursery.cancel_scope.cancel()
    assert before == [(before[0] + i) & 0xFFFF for i in range(3)]
    assert after == [(before[-1] + 1 + i) & 0xFFFF for i in range(2)]
