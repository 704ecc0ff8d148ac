"""The worker's dominant-speaker wiring, end to end: RFC 6464 levels in SRTP, an event out.

Fake publishers (the load tester's peer, with the audio-level extension added to its offer) send
one audio packet per 20 ms of the worker's clock. The worker gets a clock the test steps: each
round every peer sends one packet, the test waits until the worker has read them all, then moves
the clock on by one packet time, so the detector sees exactly the timestamps a browser's stream
would give it, however slowly the machine runs. The last test passes the event through the
worker process's frame writer and the pool's frame reader (without processes: their code only).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

import pytest
import trio

from media.control import FrameReader
from media.events import DominantSpeakerChanged, MediaEvent
from media.pool import MediaPool, _Call
from media.process import WorkerProcess
from media.sdp import AUDIO_LEVEL_URI
from media.speaker import SAMPLE_PERIOD
from media.worker import Worker, WorkerConfig
from tests.media.fakepeer import AUDIO_PT, FakePeer
from tests.media.stepclock import StepClock

CALL = "c-speaker"
#: The extension id the fake offers use (a browser picks its own; the worker reads the offer's).
LEVEL_ID = 7
NOISE = 90  # -dBov: a quiet room
SPEECH = (30, 36, 28, 40, 33)  # -dBov: someone talking
LOUD = 0  # the loudest level the field can say: what a lying publisher claims throughout
LEAD_IN = 25  # rounds (0.5 s) of room noise before anyone speaks
WAIT = 5.0  # real seconds a round may take to reach the worker on a loaded machine
POLL = 0.001
_HEADER = struct.Struct("!BBHII")

Script = Callable[[str, int], int]  # (peer, round) -> level in -dBov


class LevelPeer(FakePeer):
    """A fake browser whose offer negotiates the audio level and whose audio carries one."""

    def offer(self, slots: int = 2, audio_slots: int | None = None) -> str:
        sdp = super().offer(slots, audio_slots)
        audio = f"a=rtpmap:{AUDIO_PT} opus/48000/2\r\n"
        first = sdp.index(audio) + len(audio)  # the sendonly audio line comes first
        return sdp[:first] + f"a=extmap:{LEVEL_ID} {AUDIO_LEVEL_URI}\r\n" + sdp[first:]

    def audio_with_level(self, level: int) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        header = _HEADER.pack(0x90, AUDIO_PT, self.seq, self.seq * 960, self.audio_ssrc)
        # RFC 8285 one-byte block: one element (id, L=0), the V bit and level, two padding bytes.
        block = struct.pack("!HH", 0xBEDE, 1) + bytes([LEVEL_ID << 4, 0x80 | level, 0, 0])
        return header + block + b"\xfc" + bytes(40)


@pytest.fixture
async def stepped() -> AsyncIterator[tuple[Worker, list[MediaEvent], StepClock]]:
    events: list[MediaEvent] = []
    clock = StepClock()
    worker = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        on_event=events.append,
        clock=clock,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield worker, events, clock
        nursery.cancel_scope.cancel()


async def join(worker: Worker, names: list[str]) -> dict[str, LevelPeer]:
    peers = {name: LevelPeer(name) for name in names}
    for name, peer in peers.items():
        await peer.connect(worker, CALL, name)
    return peers


async def read_up_to(worker: Worker, packets: int) -> None:
    """Poll until the worker has read `packets` RTP packets (real sockets, real time)."""
    for _ in range(int(WAIT / POLL)):
        if worker.counters.rtp_in >= packets:
            return
        await trio.sleep(POLL)
    raise AssertionError(f"the worker read {worker.counters.rtp_in} of {packets} packets")


async def play(
    worker: Worker, clock: StepClock, peers: dict[str, LevelPeer], script: Script, rounds: range
) -> None:
    for i in rounds:
        expected = worker.counters.rtp_in + len(peers)
        for name, peer in peers.items():
            assert peer.srtp is not None
            packet = peer.srtp.tx.protect(peer.audio_with_level(script(name, i)))
            await peer.sock.sendto(packet, peer.server)
        await read_up_to(worker, expected)
        clock.now += SAMPLE_PERIOD


def speakers(events: list[MediaEvent]) -> list[str]:
    return [e.peer_id for e in events if isinstance(e, DominantSpeakerChanged)]


def speaking(i: int) -> int:
    return SPEECH[i % len(SPEECH)]


async def test_a_publisher_who_speaks_after_room_noise_becomes_dominant(
    stepped: tuple[Worker, list[MediaEvent], StepClock],
) -> None:
    worker, events, clock = stepped
    peers = await join(worker, ["a", "b"])
    try:
        await play(worker, clock, peers, lambda p, i: NOISE, range(LEAD_IN))
        assert speakers(events) == []  # room noise elects nobody
        await play(
            worker,
            clock,
            peers,
            lambda p, i: speaking(i) if p == "b" else NOISE,
            range(LEAD_IN, LEAD_IN + 75),
        )
        assert speakers(events) == ["b"]
        assert DominantSpeakerChanged(CALL, "b") in events
        # b leaves: the detector forgets it, and a who speaks next takes the floor.
        worker.close_peer(CALL, "b")
        del peers["b"]
        await play(
            worker, clock, peers, lambda p, i: speaking(i), range(LEAD_IN + 75, LEAD_IN + 150)
        )
        assert speakers(events) == ["b", "a"]
    finally:
        for peer in peers.values():
            peer.close()


async def test_a_publisher_claiming_a_constant_loud_level_takes_nothing_from_the_others(
    stepped: tuple[Worker, list[MediaEvent], StepClock],
) -> None:
    worker, events, clock = stepped
    peers = await join(worker, ["a", "b", "liar"])

    def script(peer: str, i: int) -> int:
        if peer == "liar":
            return LOUD
        if peer == "a" and LEAD_IN <= i < LEAD_IN + 75:
            return speaking(i)
        return NOISE

    try:
        await play(worker, clock, peers, script, range(LEAD_IN + 150))
        # a spoke and was elected; the liar was never, neither while a spoke nor after.
        assert speakers(events) == ["a"]
    finally:
        for peer in peers.values():
            peer.close()


async def test_an_offer_without_the_extension_reads_no_levels(
    stepped: tuple[Worker, list[MediaEvent], StepClock],
) -> None:
    worker, events, clock = stepped
    plain = FakePeer("plain")
    other = FakePeer("other")
    try:
        await plain.connect(worker, CALL, "plain")
        await other.connect(worker, CALL, "other")
        # The same bytes a speaker sends, but the offer never negotiated id 7: no level is read.
        sender = LevelPeer("x")
        sender.audio_ssrc, sender.seq = plain.audio_ssrc, plain.seq
        for i in range(LEAD_IN + 75):
            assert plain.srtp is not None
            level = NOISE if i < LEAD_IN else speaking(i)
            await plain.sock.sendto(
                plain.srtp.tx.protect(sender.audio_with_level(level)), plain.server
            )
            clock.now += SAMPLE_PERIOD
            await trio.sleep(0.001)
        await read_up_to(worker, LEAD_IN + 75)
        assert speakers(events) == []
        sender.close()
    finally:
        plain.close()
        other.close()


def test_the_event_crosses_the_pool_pipe_for_a_peer_the_pool_has_in_the_call() -> None:
    """Worker process -> frame -> pool: the same event comes out, about a peer still there."""
    child = WorkerProcess(WorkerConfig(bind_address="127.0.0.1"), -1, -1)
    child._on_event(DominantSpeakerChanged(CALL, "a"))
    child._on_event(DominantSpeakerChanged(CALL, "gone"))
    frames = FrameReader().feed(
        child._outbox_receive.receive_nowait() + child._outbox_receive.receive_nowait()
    )
    assert frames[0] == {"ev": "speaker", "call": CALL, "peer": "a"}
    events: list[MediaEvent] = []
    pool = MediaPool(WorkerConfig(bind_address="127.0.0.1"), on_event=events.append)
    slot = pool._workers[0]
    pool._calls[CALL] = _Call(slot, peers={"a"})
    slot.calls.add(CALL)
    send, _ = trio.open_memory_channel[bytes](1)
    for frame in frames:
        assert isinstance(frame, dict)
        pool._on_frame(slot, frame, send)
    assert events == [DominantSpeakerChanged(CALL, "a")]
