"""What the worker asks a publisher for again when the answer does not come (issue 11).

A keyframe request (PLI) and a NACK can be lost on the way, and so can what answers them; no
browser sends a key frame or a resend unasked. Through the real worker on an injected clock, as
tests/media/test_probe.py runs it: the worker's ticker asks again until the answer arrives, a
bounded number of times for NACKs, and not once it has.
"""

from __future__ import annotations

import trio

from media import rtcp
from media.forward import KEYFRAME_RETRY, NACK_RETRY, NACK_TRIES, Producer
from tests.media.stepclock import StepClock
from tests.media.test_probe import at, rig, switched_to  # noqa: F401 (rig: the fixture)
from tests.media.test_simulcast import Call, start_layers

ESTIMATE = 10_000_000  # wide: nothing here is held back by the budget


# ---- a key frame that does not come ------------------------------------------------------------


async def asked_at(call: Call, layer: Producer, when: float) -> None:
    """The worker's ticker (every 50 ms, at the injected clock's time) asked `layer` for a key
    frame at `when`."""
    with trio.fail_after(5.0):
        while layer.keyframes.last_sent != when:
            await call.settle()


async def test_a_switch_whose_key_frame_does_not_come_asks_again_until_it_does(
    rig: tuple[Call, StepClock],  # noqa: F811
) -> None:
    """A PLI can be lost, and no browser sends a key frame unasked: a line waiting to switch
    would keep its old layer for good. The ticker asks again each KEYFRAME_RETRY until the
    layer's key frame comes, and not once it has."""
    call, clock = rig
    await start_layers(call)
    q = call.publisher.simulcast[0].layers["q"]
    t = clock.now + 1.0
    at(call, clock, t, ESTIMATE)
    call.line.set_wanted(180, t)  # a small tile: the line waits for q's key frame
    assert call.line.target is q
    await asked_at(call, q, t)
    at(call, clock, t + KEYFRAME_RETRY - 0.1, ESTIMATE)
    await trio.sleep(0.2)  # four ticks: not yet
    assert q.keyframes.last_sent == t
    at(call, clock, t + KEYFRAME_RETRY, ESTIMATE)
    await asked_at(call, q, t + KEYFRAME_RETRY)
    await switched_to(call, "q")
    at(call, clock, t + 4 * KEYFRAME_RETRY, ESTIMATE)
    await trio.sleep(0.2)  # on q now: nothing more to ask
    assert q.keyframes.last_sent == t + KEYFRAME_RETRY


# ---- a packet that does not come --------------------------------------------------------------


async def nacked(call: Call, ssrc: int, seq: int, within: float = 2.0) -> bool:
    """Whether the publisher is sent a NACK for `seq` of `ssrc` within `within` seconds (other
    RTCP it is sent meanwhile, receiver reports and PLIs, is passed over)."""
    assert call.pub.srtp is not None
    with trio.move_on_after(within):
        while True:
            data = await call.pub.recv_kind(range(128, 192))
            plain = call.pub.srtp.rx.unprotect_rtcp(data)
            for pt, fmt, packet in rtcp.iter_packets(plain):
                if pt != rtcp.PT_RTPFB or fmt != rtcp.FMT_NACK:
                    continue
                if rtcp.parse_feedback_ssrcs(packet)[1] == ssrc and seq in rtcp.parse_nack(packet):
                    return True
    return False


async def lose_one(call: Call, clock: StepClock) -> tuple[float, int, Producer, int, bytes]:
    """All layers started, then a packet of q lost on the way in: the next one opens the gap and
    the data path NACKs it at once. Returns the time, q's SSRC and layer, the seq and packet."""
    await start_layers(call)
    t = clock.now + 1.0
    at(call, clock, t, ESTIMATE)
    lost = call.pub.frame("q", key=False)
    await call.pub.frames("q")
    ssrc, seq = call.pub.layers["q"].ssrc, int.from_bytes(lost[2:4], "big")
    assert await nacked(call, ssrc, seq)
    return t, ssrc, call.publisher.simulcast[0].layers["q"], seq, lost


async def test_a_nack_left_unanswered_is_sent_again_then_given_up(
    rig: tuple[Call, StepClock],  # noqa: F811
) -> None:
    call, clock = rig
    t, ssrc, q, seq, _ = await lose_one(call, clock)
    at(call, clock, t + NACK_RETRY - 0.05, ESTIMATE)
    assert not await nacked(call, ssrc, seq, within=0.2)  # not before NACK_RETRY
    for attempt in range(2, NACK_TRIES + 1):
        at(call, clock, t + (attempt - 1) * NACK_RETRY, ESTIMATE)
        assert await nacked(call, ssrc, seq), f"try {attempt}"
    at(call, clock, t + NACK_TRIES * NACK_RETRY, ESTIMATE)
    assert not await nacked(call, ssrc, seq, within=0.2)  # NACK_TRIES spent: given up
    assert q.nacked == {}
    assert call.worker.counters.nack_upstream_retries == NACK_TRIES - 1


async def test_a_nack_answered_is_not_sent_again(
    rig: tuple[Call, StepClock],  # noqa: F811
) -> None:
    call, clock = rig
    t, ssrc, q, seq, packet = await lose_one(call, clock)
    await call.pub.send(packet)  # the resend
    await call.settle()
    assert q.nacked == {}
    at(call, clock, t + 2 * NACK_RETRY, ESTIMATE)
    assert not await nacked(call, ssrc, seq, within=0.3)
    assert call.worker.counters.nack_upstream_retries == 0
