"""One large call of simulated participants: simulcast, audio levels in turns, views, RTCP.

What a 60-person call asks of the SFU that two-party calls never do (issue 11): each peer
publishes three VP8 layers from the pre-encoded `SimulcastClip` on SSRCs it never signals (bound
by MID/RID), sends RFC 6464 audio levels (a few *speakers* talk in turns, everyone else is room
noise), reports what it receives (RTCP RR, REMB) and answers PLI/FIR with a key frame of the
asked layer, and says what its page shows (``media.view``: a gallery page of ``tiles`` tiles at
``tile_height`` px). The SFU then has to choose last-N videos and a layer per subscriber.

Kept apart from how peers reach the SFU: ``open_peer`` (offer -> answer) and ``set_view`` are
callbacks, so the tests drive an in-process `media.worker.Worker` and ``bench/large_call.py`` a
worker in another process. Figures come out as plain data (`LargeCall.results`), and
`speaker_switches` / `layer_switches` combine them with the worker's slot events, which may come
from another process: every time here is ``time.monotonic()``, one clock for the whole host.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from waitroom.loadtest.clip import SIMULCAST_LAYERS, SimulcastClip
from waitroom.loadtest.mediapeer import LevelSchedule, MediaPeer
from waitroom.loadtest.pacer import MediaPump
from waitroom.loadtest.peersdp import AUDIO_PTIME, VIDEO_CLOCK
from waitroom.loadtest.tally import MediaTally

#: -dBov: room noise, what every peer sends when not speaking (the SFU learns it as the floor).
NOISE_LEVEL = 90
#: -dBov: someone talking (varies packet to packet, as speech does).
SPEECH_LEVELS = (30, 36, 28, 40, 33)
#: Seconds each speaker talks before the next one takes over.
DEFAULT_TURN = 4.0
#: Seconds of room noise from everyone before the first turn.
DEFAULT_LEAD_IN = 2.0
#: media.js's receive lines (DEFAULT_VIDEO_SLOTS, DEFAULT_AUDIO_SLOTS).
DEFAULT_VIDEO_SLOTS = 9
DEFAULT_AUDIO_SLOTS = 5
#: A gallery page: this many tiles at this height (CSS px); fewer than last-N, so the rest of a
#: subscriber's videos are the recent speakers.
DEFAULT_TILES = 6
DEFAULT_TILE_HEIGHT = 360
#: REMB every subscriber reports (plenty), and what the layer-switch probe drops to.
HIGH_REMB = 20_000_000
LOW_REMB = 300_000
#: The smallest layer's height (SIMULCAST_LAYERS): a stream on it cannot go lower.
LOWEST_HEIGHT = 180
#: How long after the drop a stream is watched for its lower layer and for freezes.
LAYER_WINDOW = 4.0
#: Time for packets in flight to arrive after sending stops.
DRAIN = 0.3
#: Connections set up at once (each is an ICE check and a DTLS handshake).
CONNECT_CONCURRENCY = 8
SETUP_TIMEOUT = 30.0
SAMPLE_INTERVAL = 1.0

OpenPeer = Callable[[str, str], Awaitable[str]]
SetView = Callable[[str, dict[str, int]], Awaitable[None]]
#: (monotonic time, subscriber, video slot -> publisher): the worker's SlotsChanged events.
SlotEvent = tuple[float, str, dict[int, str]]
#: (monotonic time, peer): the worker's DominantSpeakerChanged events.
SpeakerEvent = tuple[float, str]
#: The simulated layers' heights, low to high (a key frame's height says its layer).
LAYER_HEIGHTS = tuple(height for _, height, _ in SIMULCAST_LAYERS)
#: The stages of a speaker switch, in order (`speaker_stages`).
STAGES = ("decided", "mapped", "asked", "keyframe")


@dataclass(frozen=True)
class TurnSchedule:
    """Speakers (peer names) talk in turns of ``turn`` seconds from ``start`` (monotonic)."""

    speakers: tuple[str, ...]
    start: float
    turn: float = DEFAULT_TURN

    def speaker_at(self, t: float) -> str | None:
        if not self.speakers or t < self.start:
            return None
        return self.speakers[int((t - self.start) // self.turn) % len(self.speakers)]

    def level_of(self, name: str, clock_offset: float) -> LevelSchedule:
        """The level function of one peer; it is called with Trio time (+offset = monotonic)."""
        if name not in self.speakers:
            return lambda _t: NOISE_LEVEL

        def level(t: float) -> int:
            mono = t + clock_offset
            if self.speaker_at(mono) != name:
                return NOISE_LEVEL
            return SPEECH_LEVELS[int(mono / AUDIO_PTIME) % len(SPEECH_LEVELS)]

        return level

    def turns(self, until: float) -> list[tuple[float, str]]:
        """(start, speaker) of every turn that begins before ``until``."""
        out: list[tuple[float, str]] = []
        t, n = self.start, 0
        while self.speakers and t < until:
            out.append((t, self.speakers[n % len(self.speakers)]))
            n += 1
            t = self.start + n * self.turn
        return out


def gallery(names: list[str], me: str, tiles: int, height: int) -> dict[str, int]:
    """The first page of a gallery: the first ``tiles`` others in join order at ``height``."""
    return {n: height for n in [n for n in names if n != me][:tiles]}


class LargeCall:
    """This process's share (``mine``) of one call of ``names`` (join order)."""

    def __init__(
        self,
        clip: SimulcastClip,
        names: list[str],
        mine: list[str],
        schedule: TurnSchedule,
        *,
        simulcast: bool = True,
        slots: int = DEFAULT_VIDEO_SLOTS,
        audio_slots: int = DEFAULT_AUDIO_SLOTS,
        tiles: int = DEFAULT_TILES,
        tile_height: int = DEFAULT_TILE_HEIGHT,
    ) -> None:
        self.clip = clip
        self.names = list(names)
        self.mine = list(mine)
        self.schedule = schedule
        self.slots = slots
        self.audio_slots = audio_slots
        self.tiles = tiles
        self.tile_height = tile_height
        self.tally = MediaTally()
        self.pump = MediaPump(clip, self.tally)
        self.peers: dict[str, MediaPeer] = {}
        for name in self.mine:
            peer = MediaPeer("peer", simulcast=simulcast, extensions=True)
            peer.light_receive = True
            peer.remb_bitrate = HIGH_REMB
            peer.bind()
            self.peers[name] = peer
        self.probe: tuple[str, float] | None = None

    async def connect(self, open_peer: OpenPeer) -> None:
        """Offer, answer, ICE and DTLS for every peer of this process, a few at a time."""
        limit = trio.CapacityLimiter(CONNECT_CONCURRENCY)

        async def one(name: str, peer: MediaPeer) -> None:
            async with limit:
                with trio.fail_after(SETUP_TIMEOUT):
                    peer.accept(await open_peer(name, peer.offer(self.slots, self.audio_slots)))
                    await peer.establish()
                self.tally.connected += 1

        async with trio.open_nursery() as nursery:
            for name, peer in self.peers.items():
                nursery.start_soon(one, name, peer)

    async def run(
        self, seconds: float, set_view: SetView | None, *, probe_at: float | None = None
    ) -> None:
        """Publish, receive and report for ``seconds``; say each page's view at the start.

        ``probe_at`` (monotonic): the first peer of this process drops its REMB to `LOW_REMB`
        then (the layer-switch figure).
        """
        offset = time.monotonic() - trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.pump.run)
            for name, peer in self.peers.items():
                peer.level_schedule = self.schedule.level_of(name, offset)
                nursery.start_soon(peer.receive, self.tally)
                self.pump.add(peer)
            if set_view is not None:
                for name in self.peers:
                    await set_view(name, gallery(self.names, name, self.tiles, self.tile_height))
            deadline = trio.current_time() + seconds
            if probe_at is not None and self.peers:
                await trio.sleep_until(min(deadline, probe_at - offset))
                name, peer = next(iter(self.peers.items()))
                peer.watch_gaps_from = time.monotonic()
                peer.remb_bitrate = LOW_REMB
                # Chrome sends a REMB at once when its estimate falls (libwebrtc: a drop of more
                # than 3 %), not only with its periodic reports.
                peer.send_receiver_report()
                self.probe = (name, peer.watch_gaps_from)
            while trio.current_time() < deadline:
                await trio.sleep(min(SAMPLE_INTERVAL, max(0.0, deadline - trio.current_time())))
                self.tally.sample()
            for peer in self.peers.values():
                peer.publishing = False
            await trio.sleep(DRAIN)
            nursery.cancel_scope.cancel()

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()

    def results(self) -> dict[str, Any]:
        """Per subscriber: what it received (packets, loss, jitter, bytes, key frames per
        stream), its slot SSRCs, and what it did as a publisher (key frames asked and sent)."""
        subscribers: dict[str, Any] = {}
        for name, peer in self.peers.items():
            assert peer.answer is not None
            video_ssrcs = {
                s: ssrc for (s, kind), ssrc in peer.answer.slot_ssrcs.items() if kind == "video"
            }
            streams = {}
            for ssrc, st in peer.streams.items():
                streams[str(ssrc)] = {
                    "kind": "video" if st.clock == VIDEO_CLOCK else "audio",
                    "received": st.received,
                    "expected": st.expected,
                    "octets": st.octets,
                    "jitter_ms": round(st.jitter_ms, 3),
                    "keyframes": st.keyframes,
                    "max_gap": round(st.max_gap, 4),
                }
            subscribers[name] = {
                "video_ssrcs": {str(k): v for k, v in video_ssrcs.items()},
                "streams": streams,
                "layered": peer.layered,
                "keyframe_requests": peer.keyframe_requests,
                "keyframes_sent": peer.keyframes_sent,
                "keyframe_request_log": list(peer.keyframe_request_log),
                "rtcp": dict(peer.rtcp_received),
            }
        sent = sum(f.sent for f in self.tally.flows.values())
        return {
            "subscribers": subscribers,
            "sent": sent,
            "send_dropped": sum(f.send_dropped for f in self.tally.flows.values()),
            "srtp_errors": self.tally.srtp_errors,
            "probe": self.probe,
        }


def subscriber_figures(sub: dict[str, Any], seconds: float) -> dict[str, float | None]:
    """Loss (%), mean jitter (ms) and received bytes per second of one subscriber."""
    streams = sub["streams"].values()
    received = sum(s["received"] for s in streams)
    expected = sum(s["expected"] for s in streams)
    jitter = [s["jitter_ms"] for s in streams if s["received"] > 1]
    return {
        "loss_percent": 100 * max(0, expected - received) / expected if expected else None,
        "jitter_ms": sum(jitter) / len(jitter) if jitter else None,
        "bytes_per_second": sum(s["octets"] for s in streams) / seconds if seconds else None,
        "packets": received,
    }


def _map_at(events: list[SlotEvent], sub: str, t: float) -> dict[int, str]:
    current: dict[int, str] = {}
    for at, who, video in events:
        if at > t:
            break
        if who == sub:
            current = video
    return current


def speaker_switches(
    turns: list[tuple[float, str]], events: list[SlotEvent], subscribers: dict[str, Any]
) -> dict[str, Any]:
    """Seconds from a speaker's turn beginning (its level rising) to the first key frame of its
    video at each subscriber that was not already receiving it; misses are counted.

    ``events`` are the worker's SlotsChanged (monotonic times, in order)."""
    events = sorted(events, key=lambda e: e[0])
    delays: list[float] = []
    already = missed = 0
    for i, (t0, speaker) in enumerate(turns):
        until = turns[i + 1][0] if i + 1 < len(turns) else float("inf")
        for name, sub in subscribers.items():
            if name == speaker:
                continue
            if speaker in _map_at(events, name, t0).values():
                already += 1
                continue
            found = None
            for at, who, video in events:
                if at <= t0 or who != name or speaker not in video.values():
                    continue
                if at >= until:
                    break
                slot = next(s for s, p in video.items() if p == speaker)
                ssrc = sub["video_ssrcs"].get(str(slot))
                stream = sub["streams"].get(str(ssrc))
                if stream is not None:
                    found = next((k[0] for k in stream["keyframes"] if at <= k[0] < until), None)
                break
            if found is None:
                missed += 1
            else:
                delays.append(found - t0)
    return {"delays": delays, "already_forwarded": already, "missed": missed}


def speaker_stages(
    turns: list[tuple[float, str]],
    speaker_events: list[SpeakerEvent],
    events: list[SlotEvent],
    subscribers: dict[str, Any],
    heights: tuple[int, ...] = LAYER_HEIGHTS,
) -> dict[str, Any]:
    """Where a speaker switch's time goes: for each switch `speaker_switches` times, seconds
    from the turn's start to

    * ``decided``: the worker's detector names the speaker dominant (its DominantSpeakerChanged),
    * ``mapped``: the worker puts the speaker's video in a slot of this subscriber (SlotsChanged),
    * ``asked``: the speaker receives the key-frame request for the layer this subscriber then
      gets (None when the key frame it got was asked for earlier, e.g. for another subscriber),
    * ``keyframe``: that layer's key frame arrives at the subscriber on the slot.

    ``stages`` holds every switch's four times; ``p50`` the median of each and of each step
    (``decide`` = decided, ``map`` = mapped - decided, ``ask`` = asked - mapped, ``deliver`` =
    keyframe - asked, or keyframe - mapped when nothing was asked). Publishers' request times
    come from each subscriber entry's ``keyframe_request_log`` (the same peers publish)."""
    events = sorted(events, key=lambda e: e[0])
    decided_at = sorted(speaker_events)
    stages: list[dict[str, float | None]] = []
    for i, (t0, speaker) in enumerate(turns):
        until = turns[i + 1][0] if i + 1 < len(turns) else float("inf")
        decided = next((t for t, who in decided_at if who == speaker and t0 < t < until), None)
        requests = subscribers.get(speaker, {}).get("keyframe_request_log", [])
        for name, sub in subscribers.items():
            if name == speaker or speaker in _map_at(events, name, t0).values():
                continue
            for at, who, video in events:
                if at <= t0 or who != name or speaker not in video.values():
                    continue
                if at >= until:
                    break
                slot = next(s for s, p in video.items() if p == speaker)
                stream = sub["streams"].get(str(sub["video_ssrcs"].get(str(slot))))
                key = None
                if stream is not None:
                    key = next((k for k in stream["keyframes"] if at <= k[0] < until), None)
                if key is not None:
                    layer = heights.index(key[2]) if key[2] in heights else 0
                    start = decided if decided is not None else at
                    asked = next(
                        (t for t, lay in requests if lay == layer and start <= t <= key[0]), None
                    )
                    stages.append(
                        {
                            "decided": None if decided is None else decided - t0,
                            "mapped": at - t0,
                            "asked": None if asked is None else asked - t0,
                            "keyframe": key[0] - t0,
                        }
                    )
                break
    steps: dict[str, list[float]] = {"decide": [], "map": [], "ask": [], "deliver": []}
    for st in stages:
        decided_s, mapped_s, asked_s, key_s = (st[k] for k in STAGES)
        assert mapped_s is not None and key_s is not None
        if decided_s is not None:
            steps["decide"].append(decided_s)
            steps["map"].append(mapped_s - decided_s)
        if asked_s is not None:
            steps["ask"].append(asked_s - mapped_s)
        steps["deliver"].append(key_s - (asked_s if asked_s is not None else mapped_s))
    p50 = {k: percentile([v for s in stages if (v := s[k]) is not None], 0.5) for k in STAGES}
    p50.update({k: percentile(v, 0.5) for k, v in steps.items()})
    return {
        "stages": stages,
        "p50": p50,
        "asked_elsewhere": sum(1 for s in stages if s["asked"] is None),
    }


def layer_switches(
    probe: tuple[str, float] | None, subscribers: dict[str, Any], lowest: int = LOWEST_HEIGHT
) -> dict[str, Any]:
    """After the probe subscriber's estimate dropped: per video stream that was on a layer above
    the lowest, seconds to the first key frame of a smaller layer, and the longest gap between
    packets on it in the window (frozen video)."""
    if probe is None or probe[0] not in subscribers:
        return {"delays": [], "max_gap": None, "streams": 0}
    name, t0 = probe
    delays: list[float] = []
    gaps: list[float] = []
    streams = 0
    for stream in subscribers[name]["streams"].values():
        if stream["kind"] != "video":
            continue
        before = [k for k in stream["keyframes"] if k[0] < t0]
        if not before or before[-1][2] <= lowest:
            continue
        streams += 1
        height = before[-1][2]
        lower = next(
            (
                k[0]
                for k in stream["keyframes"]
                if t0 <= k[0] <= t0 + LAYER_WINDOW and k[2] < height
            ),
            None,
        )
        if lower is not None:
            delays.append(lower - t0)
        gaps.append(stream["max_gap"])
    return {"delays": delays, "max_gap": max(gaps) if gaps else None, "streams": streams}


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]
