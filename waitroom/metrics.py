"""``GET /metrics``: what one node is doing, in the Prometheus text format (version 0.0.4).

Built on prometheus-client (its registry, metric families and exposition); Waitroom adds one
collector that reads the counters the runtime, gateway and media plane already keep. Raw ASGI beside the gateway rather than a Quart view: a scrape must stay cheap and must keep
answering when the pages are slow, and it needs the gateway's and media plane's counters, which
the web app does not hold. Everything here is read from in-process counters; nothing asks an
actor, so a scrape never queues behind a busy mailbox.

Only loopback clients are answered (operators scrape from the host or through their own tunnel):
the figures are not secret, but a public server has no reason to describe its load to everyone.
Behind a reverse proxy, do not forward ``/metrics``.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import trio
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import counters as gateway_counters
from runtime.kernel import MESSAGES_HANDLED
from runtime.registry import Registry
from waitroom.frozen_heap import FrozenHeap

METRICS_PATH = "/metrics"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: How often the lag probe sleeps; the overshoot of each sleep is the event-loop lag.
LAG_INTERVAL = 0.1
#: Samples kept for the windowed maximum (5 s at the interval above).
LAG_WINDOW = 50
#: Cyclic-GC collections whose pause is remembered for the windowed maximum.
GC_WINDOW = 50
#: Media counters that are gauges (current values), not ever-increasing totals.
MEDIA_GAUGES = frozenset({"peers", "peers_connected", "calls", "workers_up"})
#: Per media worker (label ``worker``): metric suffix, kind, help, stats key (None: dropped_* sum).
MEDIA_WORKER_FAMILIES: tuple[tuple[str, str, str, str | None], ...] = (
    ("rtp_packets_forwarded_total", "counter", "RTP packets this worker forwarded.", "forwarded"),
    ("rtp_packets_dropped_total", "counter", "Datagrams this worker dropped.", None),
    ("peers", "gauge", "Peers placed on this worker.", "peers"),
    ("calls", "gauge", "Calls placed on this worker.", "calls"),
    ("up", "gauge", "1 while the worker process runs.", "up"),
    ("restarts_total", "counter", "Times the worker process was restarted.", "restarts"),
    ("control_refused_total", "counter", "Control frames refused.", "control_refused"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
GatewayCounts = Callable[[], tuple[int, int]]
MediaStats = Callable[[], dict[str, int]]
#: Media stats keys that count datagrams dropped; the rest of the key is the reason label.
DROPPED_PREFIX = "dropped_"
#: Worker label -> that worker's stats (an in-process worker is worker "0").
MediaWorkerStats = Callable[[], dict[str, dict[str, int]]]


class LoopLag:
    """Measures how late ``trio.sleep`` wakes up: the time every task waits for a busy loop."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=LAG_WINDOW)
        self.last = 0.0

    async def run(self) -> None:
        """Run until cancelled (start it in the server's nursery)."""
        while True:
            start = trio.current_time()
            await trio.sleep(self.interval)
            self.last = max(0.0, trio.current_time() - start - self.interval)
            self.samples.append(self.last)

    @property
    def window_max(self) -> float:
        return max(self.samples, default=0.0)


class GcPauses:
    """Times each cyclic-GC collection: a full one walks the whole heap while the loop waits.

    With thousands of open connections that walk takes seconds (bench/README.md, "Loop stalls"),
    so the pause is exported beside the loop lag it causes.
    """

    def __init__(self) -> None:
        self._began = 0.0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=GC_WINDOW)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            pause = time.perf_counter() - self._began
            self.total += pause
            self.recent.append(pause)

    @contextlib.contextmanager
    def installed(self) -> Iterator[GcPauses]:
        """Time collections while the block runs (gc callbacks are process-wide)."""
        gc.callbacks.append(self._callback)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._callback)

    @property
    def recent_max(self) -> float:
        return max(self.recent, default=0.0)


class _Collector(Collector):
    """Reads Waitroom's own counters at scrape time; each read is O(kinds), never O(actors)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        open_now, total = m.gateway_counts()
        yield GaugeMetricFamily(
            "waitroom_ws_connections_open", "Open websocket connections.", value=open_now
        )
        yield CounterMetricFamily(
            "waitroom_ws_connections", "Websocket connections accepted.", value=total
        )
        yield from _gateway_refusals()
        actors = GaugeMetricFamily(
            "waitroom_actors", "Running actors by address kind.", labels=["kind"]
        )
        for kind, count in sorted(m.registry.count_by_kind().items()):
            actors.add_metric([kind], count)
        yield actors
        depth = GaugeMetricFamily(
            "waitroom_mailbox_depth", "Queued messages by actor kind.", labels=["kind"]
        )
        for kind, queued in sorted(m.registry.mailbox_depths().items()):
            depth.add_metric([kind], queued)
        yield depth
        handled = CounterMetricFamily(
            "waitroom_messages_handled", "Messages handled by actor kind.", labels=["kind"]
        )
        for kind, count in sorted(MESSAGES_HANDLED.items()):
            handled.add_metric([kind or "unnamed"], count)
        yield handled
        yield GaugeMetricFamily(
            "waitroom_event_loop_lag_seconds",
            "Overshoot of the last periodic trio.sleep.",
            value=m.lag.last,
        )
        yield GaugeMetricFamily(
            "waitroom_event_loop_lag_max_seconds",
            f"Largest overshoot over the last {LAG_WINDOW} probes.",
            value=m.lag.window_max,
        )
        if m.gc_pauses is not None:
            yield CounterMetricFamily(
                "waitroom_gc_pause_seconds",
                "Time the event loop spent stopped in cyclic-GC collections.",
                value=m.gc_pauses.total,
            )
            yield GaugeMetricFamily(
                "waitroom_gc_pause_max_seconds",
                f"Longest of the last {GC_WINDOW} cyclic-GC collections.",
                value=m.gc_pauses.recent_max,
            )
        if m.heap is not None:
            yield from _heap(m.heap)
        if m.media_stats is not None:
            yield from _media(m.media_stats())
        if m.media_worker_stats is not None:
            yield from _media_workers(m.media_worker_stats())


class Metrics:
    """Waitroom's figures on a prometheus-client registry of its own (not the process-global
    one, so that tests and several servers in one process never collide), with the library's
    process and GC collectors beside ours."""

    def __init__(
        self,
        registry: Registry,
        gateway_counts: GatewayCounts,
        lag: LoopLag,
        media_stats: MediaStats | None = None,
        media_worker_stats: MediaWorkerStats | None = None,
        gc_pauses: GcPauses | None = None,
        heap: FrozenHeap | None = None,
    ) -> None:
        self.registry = registry
        self.gateway_counts = gateway_counts
        self.lag = lag
        self.gc_pauses = gc_pauses
        self.heap = heap
        self.media_stats = media_stats
        self.media_worker_stats = media_worker_stats
        self.prometheus = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.prometheus)
        GCCollector(registry=self.prometheus)
        self.prometheus.register(_Collector(self))

    def render(self) -> str:
        """The exposition text (format 0.0.4)."""
        return generate_latest(self.prometheus).decode()


def _heap(heap: FrozenHeap) -> Iterator[Metric]:
    """The frozen heap (waitroom/frozen_heap.py): its size, and what its audits found and cost."""
    yield GaugeMetricFamily(
        "waitroom_gc_frozen_objects",
        "Objects kept out of cyclic collections, counted after the last audit or start-up.",
        value=heap.frozen_after,
    )
    yield CounterMetricFamily(
        "waitroom_gc_audits", "Full walks of the frozen heap.", value=heap.audits
    )
    yield CounterMetricFamily(
        "waitroom_gc_audit_freed_objects",
        "Unreachable objects the audits freed (what reference cycles kept).",
        value=heap.found,
    )
    yield CounterMetricFamily(
        "waitroom_gc_audit_seconds",
        "Time the event loop spent stopped in audits.",
        value=heap.audit_seconds,
    )


def _gateway_refusals() -> Iterator[Metric]:
    """What the gateway refused (gateway.counters, issue 15): labels from its fixed sets only."""
    refusals = CounterMetricFamily(
        "waitroom_ws_refusals",
        "Websockets the gateway closed (or served without their cookie) for cause, by reason.",
        labels=["reason"],
    )
    for reason, count in gateway_counters.REFUSALS.items():
        refusals.add_metric([reason], count)
    yield refusals
    errors = CounterMetricFamily(
        "waitroom_ws_errors",
        "Error frames the gateway sent (hellos, frames and requests refused), by refusal code.",
        labels=["code"],
    )
    for code, count in gateway_counters.ERRORS.items():
        errors.add_metric([code], count)
    yield errors
    yield CounterMetricFamily(
        "waitroom_ws_batched_frames",
        "Server frames that carried several queued events at once (protocol version 2).",
        value=gateway_counters.BATCHED["frames"],
    )
    yield CounterMetricFamily(
        "waitroom_ws_batched_events",
        "Events sent in those frames.",
        value=gateway_counters.BATCHED["events"],
    )
    yield CounterMetricFamily(
        "waitroom_ws_rooms_entered_again",
        "Rooms the gateway entered again for a page after the room restarted and forgot it.",
        value=gateway_counters.ENTERED_AGAIN["rooms"],
    )


def _media(stats: dict[str, int]) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "waitroom_rtp_packets_forwarded",
        "RTP packets forwarded by the SFU.",
        value=stats.get("forwarded", 0),
    )
    yield CounterMetricFamily(
        "waitroom_rtp_packets_dropped",
        "Datagrams the SFU dropped (every dropped_* counter).",
        value=sum(v for k, v in stats.items() if k.startswith(DROPPED_PREFIX)),
    )
    reasons = CounterMetricFamily(
        "waitroom_media_datagrams_dropped",
        "Datagrams the SFU dropped, by reason.",
        labels=["reason"],
    )
    for reason, value in _dropped_by_reason(stats):
        reasons.add_metric([reason], value)
    yield reasons
    for key, value in sorted(stats.items()):
        if key in MEDIA_GAUGES:
            yield GaugeMetricFamily(f"waitroom_media_{key}", f"Media plane {key}.", value=value)
        else:
            yield CounterMetricFamily(f"waitroom_media_{key}", f"Media plane {key}.", value=value)


def _media_workers(workers: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """The same figures per worker process, so one hot or restarting worker shows."""
    for suffix, kind, help_text, key in MEDIA_WORKER_FAMILIES:
        name = f"waitroom_media_worker_{suffix}".removesuffix("_total")
        family: Metric = (
            CounterMetricFamily(name, help_text, labels=["worker"])
            if kind == "counter"
            else GaugeMetricFamily(name, help_text, labels=["worker"])
        )
        for label, stats in sorted(workers.items()):
            if key is None:
                value = sum(v for k, v in stats.items() if k.startswith(DROPPED_PREFIX))
            else:
                value = stats.get(key, 1 if key == "up" else 0)
            family.add_metric([label], value)  # type: ignore[attr-defined]
        yield family
    reasons = CounterMetricFamily(
        "waitroom_media_worker_datagrams_dropped",
        "Datagrams this worker dropped, by reason.",
        labels=["reason", "worker"],
    )
    for label, stats in sorted(workers.items()):
        for reason, value in _dropped_by_reason(stats):
            reasons.add_metric([reason, label], value)
    yield reasons


def _dropped_by_reason(stats: dict[str, int]) -> list[tuple[str, int]]:
    """(reason, count) of every dropped_<reason> counter: each dropped datagram has one."""
    return sorted(
        (key.removeprefix(DROPPED_PREFIX), value)
        for key, value in stats.items()
        if key.startswith(DROPPED_PREFIX)
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bearer(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return bytes(value[7:]).strip()
    return b""


class MetricsEndpoint:
    """ASGI app for ``GET /metrics`` (the router sends it only that path).

    Loopback clients always; others only with ``Authorization: Bearer <token>`` when a token is
    configured (``WAITROOM_METRICS_TOKEN``), so a Prometheus on another host can scrape without the
    figures being public. Behind a trusted proxy the client is the real one (waitroom.trusted_proxy),
    so the proxy's loopback address does not make ``/metrics`` public."""

    def __init__(self, metrics: Metrics, token: str = "") -> None:
        self.metrics = metrics
        self.token = token.encode()

    def _allowed(self, scope: Scope) -> bool:
        client = scope.get("client") or ("", 0)
        if _is_loopback(str(client[0])):
            return True
        return bool(self.token) and hmac.compare_digest(_bearer(scope), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._allowed(scope):
            status, body = 403, b"metrics need a loopback client or the metrics token\n"
        elif scope.get("method") not in ("GET", "HEAD"):
            status, body = 405, b"GET only\n"
        else:
            status, body = 200, self.metrics.render().encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", CONTENT_TYPE),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
