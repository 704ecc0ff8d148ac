"""Probing up (media.probe): a line held down by its subscriber's estimate tries the layer above.

Chrome's REMB grows only with what arrives, so a line held on the low layer never saw an estimate
that admits the next one (the layer-pause browser test stalled on `q` with a 460 kbit/s estimate
and a 370 kbit/s `h`). Through the real worker with its own clock: the layers' rates and the
subscriber's estimate are set by hand at each step (what measure_bitrate and Chrome's REMB
would say), and the key frames that complete each switch come from the fake publisher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from media import feedback
from media.probe import PROBE_FIRST, PROBE_STALL
from media.worker import Worker, WorkerConfig
from tests.media.fakepeer import FakePeer
from tests.media.stepclock import StepClock
from tests.media.test_simulcast import CALL, Call, Publisher, start_layers

RATES = {"q": 150_000, "h": 500_000, "f": 1_700_000}
HELD = 230_000  # what Chrome's estimate stays near while only q (150 kbit/s) arrives


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Call, StepClock]]:
    monkeypatch.setattr(feedback, "measure_bitrate", lambda layer, now: None)  # set by hand
    clock = StepClock(10_000.0)
    worker = Worker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"), None, clock
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        pub, sub = Publisher("pub"), FakePeer("sub")
        await pub.connect(worker, CALL, "pub")
        await sub.connect(worker, CALL, "sub")
        yield Call(worker, pub, sub), clock
        nursery.cancel_scope.cancel()


def at(call: Call, clock: StepClock, when: float, remb: int, loss: float = 0.0) -> None:
    """Time `when`: every layer sending at its rate, the subscriber's estimate and loss, and
    the once-a-second choice."""
    clock.now = when
    for transport in call.worker._transports.values():
        transport.last_consent = when
    track = call.publisher.simulcast[0]
    for rid, layer in track.layers.items():
        layer.bitrate, layer.last_at = RATES[rid], when
    sub = call.worker._transports[(CALL, "sub")]
    sub.remb_bitrate, sub.loss_fraction = remb, loss
    track.reselect(when)


async def switched_to(call: Call, rid: str) -> None:
    """The layer's next key frame: the line moves onto it."""
    await call.pub.frames(rid, key=True)
    assert (await call.expect(1))[0].rid == rid
    assert call.line.layer is call.publisher.simulcast[0].layers[rid]


async def held_on_q(call: Call, clock: StepClock) -> float:
    """Start all three layers, then an estimate that holds the line on q; returns the time."""
    await start_layers(call)
    t = clock.now + 1.0
    at(call, clock, t, HELD)
    await switched_to(call, "q")
    return t


async def tried_h(call: Call, clock: StepClock) -> float:
    """Held on q, the line tries h PROBE_FIRST after it was first held there (not before) and
    moves onto it at h's key frame; returns the time of the try."""
    track = call.publisher.simulcast[0]
    t = await held_on_q(call, clock)
    at(call, clock, t + 0.5, HELD)  # held: the first try is set for PROBE_FIRST from now
    assert call.line.probe_at == t + 0.5 + PROBE_FIRST
    at(call, clock, t + 0.5 + PROBE_FIRST - 0.1, HELD)
    assert call.line.target is None and call.line.probe is None
    t += 0.5 + PROBE_FIRST
    at(call, clock, t, HELD)
    assert call.line.target is track.layers["h"] and call.line.probe is not None
    await switched_to(call, "h")
    return t


async def test_a_held_line_tries_the_layer_above_and_keeps_it_as_the_estimate_follows(
    rig: tuple[Call, StepClock],
) -> None:
    call, clock = rig
    track = call.publisher.simulcast[0]
    t = await tried_h(call, clock)
    for step, remb in enumerate((300_000, 380_000, 460_000), start=1):
        at(call, clock, t + step, remb)  # climbing toward h's 500 kbit/s: the probe stands
        assert call.line.layer is track.layers["h"] and call.line.target is None
    at(call, clock, t + 4, 520_000)  # h fits: the probe is over and the line stays
    assert call.line.probe is None and call.line.layer is track.layers["h"]
    assert call.line.probe_wait == PROBE_FIRST
    at(call, clock, t + 5, 600_000)  # still below f's 1.7 M: the next try is scheduled
    assert call.line.target is None and call.line.probe_at == t + 5 + PROBE_FIRST


async def test_a_try_into_loss_or_a_flat_estimate_goes_back_down_and_waits_longer(
    rig: tuple[Call, StepClock],
) -> None:
    call, clock = rig
    track = call.publisher.simulcast[0]
    t = await tried_h(call, clock)
    at(call, clock, t + 1, 260_000, loss=0.1)  # the try costs loss: back to q at once
    assert call.line.probe is None and call.line.target is track.layers["q"]
    assert call.line.probe_wait == 2 * PROBE_FIRST
    assert call.line.probe_at == t + 1 + 2 * PROBE_FIRST
    await switched_to(call, "q")
    at(call, clock, t + 1 + 2 * PROBE_FIRST - 0.1, HELD)
    assert call.line.target is None  # not before the doubled wait
    t += 1 + 2 * PROBE_FIRST
    at(call, clock, t, HELD)
    assert call.line.target is track.layers["h"]
    await switched_to(call, "h")
    t = clock.now
    at(call, clock, t, 300_000)  # one rise, then the estimate stays flat
    at(call, clock, t + PROBE_STALL, 300_000)
    assert call.line.probe is not None and call.line.target is None
    at(call, clock, t + PROBE_STALL + 0.2, 300_000)
    assert call.line.probe is None and call.line.target is track.layers["q"]
    assert call.line.probe_wait == 4 * PROBE_FIRST


async def test_no_try_while_loss_is_reported_or_when_the_tile_wants_no_more(
    rig: tuple[Call, StepClock],
) -> None:
    call, clock = rig
    t = await held_on_q(call, clock)
    at(call, clock, t + 0.5, HELD, loss=0.05)
    at(call, clock, t + 1 + 2 * PROBE_FIRST, HELD, loss=0.05)
    assert call.line.probe is None and call.line.target is None
    call.line.set_wanted(180, clock.now)  # a small tile: q is what it wants, nothing is held
    at(call, clock, t + 2 + 4 * PROBE_FIRST, HELD)
    assert call.line.probe is None and call.line.probe_at is None and call.line.target is None


async def test_a_line_short_of_headroom_tries_too_and_keeps_a_layer_that_fits(
    rig: tuple[Call, StepClock],
) -> None:
    """f fits a 1.9 M estimate but not with the headroom an up-switch wants, and an estimate
    capped by what arrives on h may never give it (the browser test stalled so on h, 790 k
    against a 743 k f): the line tries f, which fits at once, and stays on it."""
    call, clock = rig
    track = call.publisher.simulcast[0]
    await start_layers(call)
    t = clock.now + 1.0
    at(call, clock, t, 600_000)
    await switched_to(call, "h")
    at(call, clock, t + 0.5, 1_900_000)
    assert call.line.target is None and call.line.probe_at == t + 0.5 + PROBE_FIRST
    at(call, clock, t + 0.5 + PROBE_FIRST, 1_900_000)
    assert call.line.target is track.layers["f"]
    await switched_to(call, "f")
    at(call, clock, t + 1.5 + PROBE_FIRST, 1_900_000)
    assert call.line.probe is None and call.line.layer is track.layers["f"]
    assert call.line.probe_at is None and call.line.target is None
