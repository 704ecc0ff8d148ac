"""``--media``: the simulated participants of each call publish and receive real RTP through the SFU.

When a provider joins a caller, both sides send ``media.offer`` on their room connection (as the
call page's ``media.js`` does), connect with :class:`~waitroom.loadtest.mediapeer.MediaPeer` and
publish the pre-encoded clip for the length of the call; each counts what it receives from the
other. Shortly before ending the call the provider stops both sides' sending and waits
``MEDIA_DRAIN`` so packets in flight are counted, not cut off by ``call.end``.

This module also summarises the media figures for the report (table, JSON, plot panel).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from waitroom.loadtest.clip import Clip, load_clip
from waitroom.loadtest.mediapeer import MediaPeer
from waitroom.loadtest.pacer import MediaPump
from waitroom.loadtest.peersdp import MediaPeerError
from waitroom.loadtest.tally import MediaTally

#: Time for packets in flight to arrive after sending stops, before the call is ended.
MEDIA_DRAIN = 0.3
#: How often live streams' jitter is sampled.
SAMPLE_INTERVAL = 1.0
#: The issue's target: two-party calls forwarded with under this much loss.
LOSS_TARGET_PERCENT = 1.0
#: Media setup gives up after this long (offer, ICE, DTLS); a browser keeps checking ~30 s, and a
#: loaded host can take seconds to answer, which is a figure (setup latency), not a failure.
SETUP_TIMEOUT = 30.0
ICE_TIMEOUT = 10.0
DTLS_TIMEOUT = 10.0
_MS = 1000.0

Signal = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class CallWatch:
    """The caller page's rule (room.js): start media once the call is on and staff are in it.

    Both facts are latched: the room.enter reply can be handled after newer events (the reply
    and the events race to the caller's task), so a stale "waiting" must not undo an "in_call"
    already seen. A simulated caller has one call, so nothing needs to reset.
    """

    def __init__(self) -> None:
        self.started = trio.Event()
        self._in_call = False
        self._staff = False

    def on_event(self, event: str, body: dict[str, Any]) -> None:
        if event not in ("room.state", "room.participants"):
            return
        if body.get("state") == "in_call":
            self._in_call = True
        participants = body.get("participants")
        if isinstance(participants, list) and any(
            isinstance(p, dict) and p.get("kind") == "staff" for p in participants
        ):
            self._staff = True
        if self._in_call and self._staff:
            self.started.set()


class MediaLoad:
    """The media side of one load-generator process: the clip, the pump and the tally."""

    def __init__(self, clip: Clip, now: Callable[[], float], on_error: Callable[[str], None]):
        self.clip = clip
        self.tally = MediaTally(now)
        self.pump = MediaPump(clip, self.tally)
        self.on_error = on_error
        self._done: dict[str, trio.Event] = {}

    @classmethod
    async def create(cls, now: Callable[[], float], on_error: Callable[[str], None]) -> MediaLoad:
        """Load (or encode once, in a thread) the clip and return the media side."""
        return cls(await trio.to_thread.run_sync(load_clip), now, on_error)

    async def run(self) -> None:
        """The pump and the once-a-second jitter sampler; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.pump.run)
            while True:
                await trio.sleep(SAMPLE_INTERVAL)
                self.tally.sample()

    def progress(self) -> str:
        """A piece of the progress line: packets so far and peers publishing now."""
        flows = self.tally.flows.values()
        sent = sum(f.sent for f in flows)
        received = sum(f.received for f in flows)
        return f" media sent={sent} recv={received} peers={len(self.tally.live)}"

    def call_done(self, room: str) -> trio.Event:
        """Set by the provider when the call's media should stop (both sides stop sending)."""
        event = self._done.get(room)
        if event is None:
            event = self._done[room] = trio.Event()
        return event

    @asynccontextmanager
    async def publish(self, role: str, signal: Signal) -> AsyncIterator[MediaPeer]:
        """Offer, connect and publish until the block exits; then retire the peer's counts."""
        peer = MediaPeer(role)
        peer.check_timeout, peer.handshake_timeout = ICE_TIMEOUT, DTLS_TIMEOUT
        peer.bind()
        try:
            started = time.monotonic()
            try:
                with trio.fail_after(SETUP_TIMEOUT):
                    reply = await signal("media.offer", {"sdp": peer.offer()})
                    sdp = reply.get("sdp")
                    if not isinstance(sdp, str):
                        raise MediaPeerError("no_answer")
                    peer.accept(sdp)
                    await peer.establish()
            except trio.Cancelled:
                # The call ended (or the run did) before media connected: a figure, not silence.
                self.on_error("media_setup_cancelled")
                raise
            self.tally.connected += 1
            self.tally.connect_latency.append((self.tally.now(), time.monotonic() - started))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.receive, self.tally)
                self.pump.add(peer)
                try:
                    yield peer
                finally:
                    self.pump.remove(peer)
                    nursery.cancel_scope.cancel()
        finally:
            peer.close()

    async def caller_side(self, room: str, signal: Signal, in_call: trio.Event) -> None:
        """The caller publishes from the moment a provider is in the call until it is done."""
        await in_call.wait()
        done = self.call_done(room)
        try:
            async with self.publish("caller", signal) as peer:
                await done.wait()
                peer.publishing = False
                await trio.sleep(MEDIA_DRAIN)
        except Exception as exc:
            self.on_error(media_error(exc))
        finally:
            self._done.pop(room, None)

    async def provider_side(self, room: str, signal: Signal, seconds: float) -> None:
        """The provider publishes for the call's length, then stops both sides and drains."""
        deadline = trio.current_time() + seconds
        done = self.call_done(room)
        try:
            async with self.publish("provider", signal) as peer:
                await trio.sleep_until(deadline)
                peer.publishing = False
                done.set()
                await trio.sleep(MEDIA_DRAIN)
        except Exception as exc:
            self.on_error(media_error(exc))
            done.set()
            await trio.sleep_until(deadline)
        finally:
            self._done.pop(room, None)


def media_error(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return media_error(exc.exceptions[0])
    if isinstance(exc, MediaPeerError):
        return f"media_{exc.kind}"
    code = getattr(exc, "code", None)  # GatewayRefused: the server's error code
    if isinstance(code, str):
        return f"media_{code}"
    if isinstance(exc, trio.TooSlowError):
        return "media_setup_timeout"
    return f"media_{type(exc).__name__}"


# -- report -------------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summarise(
    runs: list[dict[str, Any]], server: list[tuple[float, dict[str, float]]]
) -> dict[str, Any] | None:
    """Merge the media tallies of every process; compare with the server's RTP counters."""
    tallies = [r["media"] for r in runs if r.get("media")]
    if not tallies:
        return None
    merged: dict[str, dict[str, Any]] = {}
    for tally in tallies:
        for key, flow in tally["flows"].items():
            into = merged.setdefault(
                key,
                {k: 0 for k in ("sent", "sent_bytes", "send_dropped", "received", "expected")}
                | {"streams": 0, "jitter_ms": []},
            )
            for name in ("sent", "sent_bytes", "send_dropped", "received", "expected", "streams"):
                into[name] += flow[name]
            into["jitter_ms"] += flow["jitter_ms"]
    flows: dict[str, dict[str, Any]] = {}
    for key, f in sorted(merged.items()):
        lost = max(0, f["expected"] - f["received"])
        flows[key] = {
            "sent": f["sent"],
            "received": f["received"],
            "expected": f["expected"],
            "lost": lost,
            "loss_percent": _round(100 * lost / f["expected"], 3) if f["expected"] else None,
            "send_dropped": f["send_dropped"],
            "streams": f["streams"],
            "jitter_p50_ms": _round(_percentile(f["jitter_ms"], 0.5)),
            "jitter_p95_ms": _round(_percentile(f["jitter_ms"], 0.95)),
        }
    sent = sum(f["sent"] for f in flows.values())
    received = sum(f["received"] for f in flows.values())
    expected = sum(f["expected"] for f in flows.values())
    lost = sum(f["lost"] for f in flows.values())
    jitter = [j for f in merged.values() for j in f["jitter_ms"]]
    setup = [lat for t in tallies for _, lat in t["connect_latency"]]
    first = server[0][1] if server else {}
    last = server[-1][1] if server else {}

    def delta(name: str) -> float | None:
        return None if name not in last else last[name] - first.get(name, 0.0)

    forwarded = delta("waitroom_rtp_packets_forwarded_total")
    loss = 100 * lost / expected if expected else None
    return {
        "flows": flows,
        "sent": sent,
        "received": received,
        "expected": expected,
        "lost": lost,
        "loss_percent": _round(loss, 3),
        "loss_target_percent": LOSS_TARGET_PERCENT,
        "loss_target_met": loss is not None and loss < LOSS_TARGET_PERCENT,
        "delivered_of_sent_percent": _round(100 * received / sent, 2) if sent else None,
        "jitter_p50_ms": _round(_percentile(jitter, 0.5)),
        "jitter_p95_ms": _round(_percentile(jitter, 0.95)),
        "peers_connected": sum(t["connected"] for t in tallies),
        "setup_p50_ms": _round(_ms(_percentile(setup, 0.5)), 1),
        "setup_p95_ms": _round(_ms(_percentile(setup, 0.95)), 1),
        "send_dropped": sum(f["send_dropped"] for f in flows.values()),
        "srtp_errors": sum(t["srtp_errors"] for t in tallies),
        # Loss the load generator caused itself: its sockets' receive buffers overflowed.
        "receiver_socket_drops": sum(t.get("socket_drops", 0) for t in tallies),
        "rtcp_in": sum(t["rtcp_in"] for t in tallies),
        "peak_live_peers": max((live for t in tallies for *_, live in t["timeline"]), default=0),
        "server": {
            "rtp_in": delta("waitroom_media_rtp_in_total"),
            "forwarded": forwarded,
            "dropped": delta("waitroom_rtp_packets_dropped_total"),
            "calls_peak": max((s.get("waitroom_media_calls", 0.0) for _, s in server), default=0.0),
            "received_of_forwarded_percent": _round(100 * received / forwarded, 2)
            if forwarded
            else None,
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * _MS


def table_rows(media: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows for the report's text table (none without ``--media``)."""
    if not media:
        return []
    server = media["server"]
    rows = [
        (
            "media packets",
            f"sent={media['sent']} received={media['received']} lost={media['lost']} "
            f"({media['loss_percent']}% by sequence gaps)",
        ),
        ("  loss < 1 %", "yes" if media["loss_target_met"] else "NO"),
        (
            "media jitter",
            f"p50={media['jitter_p50_ms']} p95={media['jitter_p95_ms']} ms "
            f"(RFC 3550, live streams sampled 1/s)",
        ),
        (
            "media peers",
            f"{media['peers_connected']} connected (peak live {media['peak_live_peers']}), "
            f"setup p50={media['setup_p50_ms']} p95={media['setup_p95_ms']} ms",
        ),
        (
            "media tester drops",
            f"{media['receiver_socket_drops']} datagrams dropped at the load generator's own "
            f"sockets; {media['send_dropped']} sends refused",
        ),
    ]
    for key, f in media["flows"].items():
        rows.append(
            (
                f"  {key}",
                f"sent={f['sent']} recv={f['received']} lost={f['lost']} "
                f"({f['loss_percent']}%) jitter p50={f['jitter_p50_ms']} "
                f"p95={f['jitter_p95_ms']} ms",
            )
        )
    rows.append(
        (
            "server RTP (metrics)",
            f"in={server['rtp_in']} forwarded={server['forwarded']} "
            f"dropped={server['dropped']} calls peak={server['calls_peak']}; "
            f"clients received {server['received_of_forwarded_percent']}% of forwarded",
        )
    )
    return rows


def plot(axis: Any, runs: list[dict[str, Any]]) -> None:
    """A panel: media packets sent and received per second (all processes) and live peers."""
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    live: dict[int, float] = {}
    for run in runs:
        timeline = (run.get("media") or {}).get("timeline") or []
        for (t0, s0, r0, _), (t1, s1, r1, l1) in itertools.pairwise(timeline):
            second = int(t1)
            span = max(t1 - t0, 1e-9)
            sent[second] = sent.get(second, 0.0) + (s1 - s0) / span
            received[second] = received.get(second, 0.0) + (r1 - r0) / span
            live[second] = live.get(second, 0.0) + l1
    xs = sorted(sent)
    axis.plot(xs, [sent[x] for x in xs], label="media sent pkt/s")
    axis.plot(xs, [received[x] for x in xs], label="media received pkt/s")
    axis.set_ylabel("packets/s")
    axis.legend(loc="upper left", fontsize="small")
    peers = axis.twinx()
    peers.plot(xs, [live[x] for x in xs], color="tab:green", label="live media peers")
    peers.set_ylabel("peers")
    peers.legend(loc="upper right", fontsize="small")
