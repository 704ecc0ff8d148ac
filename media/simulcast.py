"""Simulcast: a publisher's video in up to three layers, one layer per subscriber, sans-IO.

Chrome sends each layer (`a=rid`) on an SSRC it never signals; the first packets of each carry
the `sdes:mid` and `rtp-stream-id` header extensions, and `bind` ties the SSRC to its layer then
(`repaired-rtp-stream-id` names a layer's RTX stream, which is only recorded: the answer does not
accept RTX). Each layer is a `Producer` of its own (sequence bookkeeping, NACK cache, SRs), all
under the *track* producer that the router attaches subscribers to.

Each consumer forwards exactly one layer. `select` picks it from what the subscriber shows (the
smallest layer at least `max_height` tall, by the sizes its key frames declare) and from the
subscriber's bandwidth budget (lower while the layer's measured bitrate exceeds it; up again only
with headroom and not within `UP_SWITCH_HOLD` of the budget last holding it down, or by trying
the layer above when the budget has held it down a while: media.probe says why and how). Choices are
made when the view changes (`set_wanted`), when the subscriber's estimate moves (at most every
200 ms, `media.feedback`), and once a second with the layers' measured bit rates. A change
never takes effect at once: the consumer waits on the new layer's `pending` list, the track owes
a PLI (sent by the worker's ticker to the layers that need one), and `switch` moves the consumer
when that layer's next key frame starts. Sequence numbers, timestamps, VP8 picture ids and
TL0PICIDX then continue from the last values the subscriber saw, so its decoder sees one stream
with no gap and no jump. A layer nobody forwards or waits for is *paused*: nothing of it is sent.

The publisher is told too (`LayerPause`, the worker's `LayersWanted` event, the call's
`media.layers` push, `RTCRtpSender.setParameters` in media.js): a layer no subscriber's view wants
for `PAUSE_AFTER` is deactivated at the publisher, saving its uplink and encoder; it is active
again at once when someone's view wants it. What a view wants is judged by the layers' declared
heights, not by which layers are sending now (a paused layer sends nothing, yet must be wanted
again). The lowest layer is never paused: the server falls back on it and asks it for key frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.forward import NO_ADDRESS, Consumer, Producer
from media.probe import PROBE_FIRST, PROBE_LIMIT, Probe, Verdict, next_wait
from media.rtp import SEQ_MASK, TS_MASK
from media.sdp import MID_URI, REPAIRED_RID_URI, RID_URI
from media.vp8 import Vp8Descriptor, picture_id_mask

if TYPE_CHECKING:
    from media.transport import Transport

# A layer that sent nothing for this long is not offered to subscribers (Chrome stops sending
# its top layers when its estimate of the uplink falls); consumers on it move down.
LAYER_TIMEOUT = 1.5
# A layer this far behind the newest packet of its track, while the others go on, has been
# stopped by the publisher (Chrome stops its top layers when its uplink estimate falls): it is
# left at once, not after LAYER_TIMEOUT. Several frame intervals even at a low frame rate.
LAYER_STALL = 0.5
# Up-switches wait until the layer fits the budget with this much to spare (no flapping).
UP_SWITCH_HEADROOM = 0.8
# ... and until the estimate has not held the line below the layer its tile wants for this long
# (each up-switch costs a key frame of the higher layer; Chrome's estimate climbs back in steps).
UP_SWITCH_HOLD = 2.0
# The subscriber's estimate is reduced by its reported loss above this fraction.
LOSS_THRESHOLD = 0.02
# A layer no subscriber's view has wanted for this long is paused at the publisher; wanted again,
# it resumes at once. Longer than a view's debounce and a layer switch: a tile that shrinks and
# grows back (a re-layout, a scroll) costs no pause and no resume.
PAUSE_AFTER = 2.0
# Bind attempts (unknown SSRCs unprotected to read their RID) per transport before giving up.
MAX_BIND_FAILURES = 64
MIN_TS_GAP = 1


class Simulcast:
    """One simulcast track: its layers in the offer's order (low to high for the call page)."""

    __slots__ = ("layers", "mid", "mid_id", "pause", "rid_id", "rids", "rrid_id", "track")

    def __init__(self, track: Producer, mid: str, rids: list[str], ext_ids: dict[str, int]) -> None:
        self.track = track
        self.mid = mid
        self.rids = list(rids)
        self.mid_id = ext_ids.get(MID_URI)
        self.rid_id = ext_ids.get(RID_URI)
        self.rrid_id = ext_ids.get(REPAIRED_RID_URI)
        self.layers: dict[str, Producer] = {}
        self.pause = LayerPause(self.rids)

    @property
    def unbound(self) -> bool:
        return len(self.layers) < len(self.rids)

    def bind(self, transport: Transport, ssrc: int, rid: str, now: float) -> Producer | None:
        """A new SSRC said it carries layer `rid`: make its producer (None: unknown or taken)."""
        if rid not in self.rids or rid in self.layers:
            return None
        track = self.track
        layer = Producer(
            transport, "video", ssrc, track.payload_type, track.clock_rate, track.ext_ids
        )
        layer.simulcast = self
        layer.rid = rid
        layer.last_at = now
        layer.rate_at = now
        self.layers[rid] = layer
        return layer

    def bind_rtx(self, ssrc: int, rid: str) -> bool:
        layer = self.layers.get(rid)
        if layer is None or layer.rtx_ssrc is not None:
            return False
        layer.rtx_ssrc = ssrc
        return True

    # ---- choice ---------------------------------------------------------------------------

    def candidates(self, now: float) -> list[Producer]:
        """Layers sending now, low to high (by key-frame height once every one has declared it).

        Sending: a packet within LAYER_TIMEOUT, and not LAYER_STALL behind the track's newest
        packet (the others go on: Chrome's allocator stopped this one)."""
        bound = [self.layers[rid] for rid in self.rids if rid in self.layers]
        newest = max((layer.last_at for layer in bound), default=float("-inf"))
        live = [
            layer
            for layer in bound
            if now - layer.last_at <= LAYER_TIMEOUT and newest - layer.last_at <= LAYER_STALL
        ]
        if live and all(layer.height for layer in live):
            live.sort(key=lambda layer: layer.height)
        return live

    def choose(self, consumer: Consumer, now: float) -> Producer | None:
        """The layer `consumer` should forward, or None (not wanted, or nothing is sending)."""
        if not consumer.wanted:
            return None
        live = self.candidates(now)
        if not live:
            return None
        wanted = consumer.max_height or 0
        index = len(live) - 1
        if all(layer.height for layer in live):
            index = next((i for i, layer in enumerate(live) if layer.height >= wanted), index)
        budget = subscriber_budget(consumer.transport)
        if budget is None:
            return live[index]
        fits = index
        if consumer.probe is not None:
            probed = self._judge_probe(consumer, live, fits, budget, now)
            if probed is not None:
                return probed
        while index > 0 and live[index].bitrate > budget:
            index -= 1
        if index < fits:
            consumer.budget_limited_at = now
        current = consumer.layer
        if current not in live:
            return live[index]
        floor = live.index(current)
        if floor < index:
            # Going up only with headroom, so a layer at the edge of the budget stays put,
            # and not within UP_SWITCH_HOLD of the estimate last holding this line down: an
            # estimate that wobbles (choices every 200 ms) does not flap between layers.
            if now - consumer.budget_limited_at < UP_SWITCH_HOLD:
                index = floor
            while index > floor and live[index].bitrate > budget * UP_SWITCH_HEADROOM:
                index -= 1
        if index >= fits:
            consumer.probe_at, consumer.probe_wait = None, PROBE_FIRST
        elif index == floor:
            # Held on the layer it has, below what its tile wants (by the budget or for want of
            # headroom, which an estimate capped by what arrives may never give): try the next?
            if consumer.probe_at is None:
                consumer.probe_at = now + consumer.probe_wait
            elif now >= consumer.probe_at and self._may_probe(consumer):
                step = live[floor + 1]
                consumer.probe, consumer.probe_at = Probe(step, budget, now), None
                return step
        return live[index]

    @staticmethod
    def _may_probe(consumer: Consumer) -> bool:
        """No loss reported, and no other line of this subscriber probing now."""
        transport = consumer.transport
        if transport.loss_fraction > LOSS_THRESHOLD:
            return False
        return all(c.probe is None for c in transport.consumers.values() if c is not consumer)

    @staticmethod
    def _judge_probe(
        consumer: Consumer, live: list[Producer], fits: int, budget: int, now: float
    ) -> Producer | None:
        """The probed layer while the probe stands; None once it is over (or moot)."""
        probe = consumer.probe
        assert probe is not None
        layer = probe.layer
        if (
            layer not in live
            or live.index(layer) > fits
            or (consumer.layer is not layer and consumer.target is not layer)
        ):
            consumer.probe = None  # the view or the layers changed: the choice starts afresh
            return None
        lossy = consumer.transport.loss_fraction > LOSS_THRESHOLD
        if consumer.layer is not layer and not lossy and now - probe.started_at <= PROBE_LIMIT:
            probe.rose_at = now  # still waiting for its key frame: nothing to judge yet
            return layer
        verdict = probe.verdict(budget, lossy, layer.bitrate, now)
        if verdict is None:
            return layer
        consumer.probe = None
        if verdict is Verdict.FAILED:
            consumer.probe_wait = next_wait(consumer.probe_wait)
            consumer.probe_at = now + consumer.probe_wait
            consumer.budget_limited_at = now
            return None
        consumer.probe_wait = PROBE_FIRST
        return layer

    def select(self, consumer: Consumer, now: float) -> None:
        """Re-choose `consumer`'s layer; a change waits for the new layer's next key frame."""
        best = self.choose(consumer, now)
        if best is None and not consumer.wanted:
            self._pause(consumer, now)
            return
        if best is None or best is consumer.layer:
            self._cancel_target(consumer)
            return
        if consumer.target is best:
            return
        self._cancel_target(consumer)
        consumer.target = best
        best.pending.append(consumer)
        # Owed: the worker asks at once for a line it attached, otherwise its ticker within
        # 50 ms (each layer at most once per KEYFRAME_INTERVAL; a key frame meanwhile settles it).
        best.keyframes.pending = True

    def reselect(self, now: float) -> None:
        for consumer in list(self.track.consumers):
            self.select(consumer, now)

    def stalled(self) -> bool:
        """A layer someone forwards or waits for is LAYER_STALL behind the track's newest packet:
        the worker's ticker then chooses again (the consumers on it would freeze otherwise)."""
        layers = self.layers.values()
        newest = max((layer.last_at for layer in layers), default=float("-inf"))
        return any(
            (layer.consumers or layer.pending) and newest - layer.last_at > LAYER_STALL
            for layer in layers
        )

    def keyframe_layers(self) -> list[Producer]:
        """Layers a keyframe request is for: those waited for, and those being forwarded."""
        return [layer for layer in self.layers.values() if layer.pending or layer.consumers]

    def paused(self) -> list[str]:
        """Rids of bound layers that nobody forwards or waits for (not sent to anyone)."""
        return [
            rid for rid, layer in self.layers.items() if not layer.consumers and not layer.pending
        ]

    def wanted_rids(self) -> set[str]:
        """Rids some subscriber's view wants now, whether or not the layer is sending.

        Per wanted line, the smallest layer at least as tall as its tile (or the tallest), by
        the heights the layers' key frames declared. A bound layer that has declared none, or a
        layer that has not arrived yet (Chrome's allocator may hold its top layer back), might be
        the one a line needs: every layer from the lowest such one up counts as wanted for a line
        that no known layer below it fits (the offer lists layers low to high, as the call page
        and the load tester send them, so a layer above one that fits is only larger). Layers
        being forwarded or waited for count too. The bandwidth budget is not applied: it is the
        publisher's own estimator (transport-cc) that drops layers for a narrow uplink, and a
        line held down by its subscriber's downlink comes back up."""
        wanted = {rid for rid, layer in self.layers.items() if layer.consumers or layer.pending}
        # Each tile height once: a 60-person call has ~59 lines per track and few distinct sizes.
        tiles = {
            c.max_height or 0 for c in self.track.consumers if c.wanted and c.producer is self.track
        }
        if not tiles:
            return wanted
        heights = {rid: layer.height for rid, layer in self.layers.items() if layer.height}
        first = next((i for i, rid in enumerate(self.rids) if rid not in heights), None)
        below = [heights[rid] for rid in self.rids[:first]] if first is not None else []
        known = sorted((height, rid) for rid, height in heights.items())
        for tile in tiles:
            if first is not None and not any(height >= tile for height in below):
                wanted.update(self.rids[first:])  # an unknown layer may be the one that fits
            pick = next((rid for height, rid in known if height >= tile), None)
            if pick is None and known:
                pick = known[-1][1]
            if pick is not None:
                wanted.add(pick)
        return wanted

    # ---- switching --------------------------------------------------------------------------

    def switch(self, layer: Producer, seq: int, ts: int, desc: Vp8Descriptor, now: float) -> int:
        """`layer`'s key frame starts with this packet: move its waiting consumers onto it.

        Returns how many switched."""
        waiting, layer.pending = layer.pending, []
        switched = 0
        for consumer in waiting:
            consumer.target = None
            if consumer.producer is not self.track or not consumer.wanted:
                continue
            old = consumer.layer
            if old is not None:
                consumer.remember(now)
                _remove(old, consumer)
                elapsed = now - old.last_at
            else:
                elapsed = now - consumer.detached_at
            if consumer.last_out_seq is None:
                consumer.seq_off = consumer.ts_off = 0
                consumer.picture_id_off = consumer.tl0_off = 0
            else:
                gap = max(MIN_TS_GAP, int(elapsed * layer.clock_rate))
                consumer.seq_off = (consumer.last_out_seq + 1 - seq) & SEQ_MASK
                consumer.ts_off = (consumer.last_out_ts + gap - ts) & TS_MASK
                consumer.picture_id_off = 0
                if consumer.last_out_picture_id is not None and desc.picture_id is not None:
                    mask = picture_id_mask(desc.picture_id_bits)
                    consumer.picture_id_off = (
                        consumer.last_out_picture_id + 1 - desc.picture_id
                    ) & mask
                consumer.tl0_off = 0
                if consumer.last_out_tl0 is not None and desc.tl0picidx is not None:
                    consumer.tl0_off = (consumer.last_out_tl0 + 1 - desc.tl0picidx) & 0xFF
            consumer.layer = layer
            consumer.sync_out_seq = (seq + consumer.seq_off) & SEQ_MASK
            consumer.base_packets = layer.packets
            consumer.base_octets = layer.octets
            consumer.synced = True
            layer.consumers.append(consumer)
            # The router's fan-out rule (Router._targets): nothing of a publisher on hold, nothing
            # to a subscriber on hold or not connected. A later refresh rebuilds the same tuple.
            if (
                layer.transport.publishing
                and consumer.transport.can_receive
                and consumer.addr != NO_ADDRESS
            ):
                layer.targets = (*layer.targets, consumer)
            switched += 1
        return switched

    def leave(self, consumer: Consumer) -> None:
        """`consumer` is detached from the track: off its layer, off any pending list."""
        self._cancel_target(consumer)
        if consumer.layer is not None:
            _remove(consumer.layer, consumer)
            consumer.layer = None

    def _pause(self, consumer: Consumer, now: float) -> None:
        self._cancel_target(consumer)
        if consumer.layer is not None:
            consumer.remember(now)
            _remove(consumer.layer, consumer)
            consumer.layer = None
            consumer.synced = False

    @staticmethod
    def _cancel_target(consumer: Consumer) -> None:
        target = consumer.target
        if target is not None:
            if consumer in target.pending:
                target.pending.remove(consumer)
            consumer.target = None


class LayerPause:
    """Which layers the publisher should send: debounced, so a layer is not flapped.

    `update` is given the rids wanted now (`Simulcast.wanted_rids`); a layer is active while it
    was wanted within `PAUSE_AFTER`, and the lowest (the offer's first) always is. It returns the
    new active set when that differs from the last one it returned (the first call always
    returns: a replaced transport's page may still have layers paused from before), else None.
    """

    __slots__ = ("rids", "told", "wanted_at")

    def __init__(self, rids: list[str]) -> None:
        self.rids = list(rids)
        self.wanted_at: dict[str, float] = {}
        self.told: tuple[str, ...] | None = None

    def update(self, wanted: set[str], now: float) -> tuple[str, ...] | None:
        for rid in self.rids:
            if rid in wanted or rid not in self.wanted_at:
                self.wanted_at[rid] = now  # a layer starts out wanted: PAUSE_AFTER to show
        active = tuple(
            rid
            for i, rid in enumerate(self.rids)
            if i == 0 or now - self.wanted_at[rid] < PAUSE_AFTER
        )
        if active == self.told:
            return None
        self.told = active
        return active


def _remove(layer: Producer, consumer: Consumer) -> None:
    if consumer in layer.consumers:
        layer.consumers.remove(consumer)
    layer.targets = tuple(c for c in layer.targets if c is not consumer)


def subscriber_budget(transport: Transport) -> int | None:
    """Bit/s one forwarded video may use at this subscriber, or None if it sent no estimate.

    The estimate is the subscriber's own REMB (Chrome's receive-side estimate of its downlink),
    lowered by the loss its receiver reports show above LOSS_THRESHOLD, split equally over the
    video slots it is being sent.
    """
    remb = transport.remb_bitrate
    if not remb:
        return None
    loss = transport.loss_fraction
    if loss > LOSS_THRESHOLD:
        remb = int(remb * (1.0 - loss))
    return remb // max(1, transport.video_slots_in_use())
