"""``GET /metrics``: what one node is doing, in the Prometheus text format (version 0.0.4).

Raw ASGI beside the gateway rather than a Quart view: a scrape must stay cheap and must keep
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
import ipaddress
import os
import resource
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import trio

from runtime.kernel import MESSAGES_HANDLED
from runtime.registry import Registry

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


def process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def process_rss_bytes() -> int:
    """Resident set size now (Linux ``/proc``), else the peak from ``getrusage``."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        number = float(value)
        text = str(int(number)) if number.is_integer() else repr(number)
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(f"{name}{{{inner}}} {text}")
        else:
            self.lines.append(f"{name} {text}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text)
        self.sample(name, value)


class Metrics:
    """Collects the figures at scrape time from the objects that already count them."""

    def __init__(
        self,
        registry: Registry,
        gateway_counts: GatewayCounts,
        lag: LoopLag,
        media_stats: MediaStats | None = None,
        media_worker_stats: MediaWorkerStats | None = None,
        gc_pauses: GcPauses | None = None,
    ) -> None:
        self.registry = registry
        self.gateway_counts = gateway_counts
        self.lag = lag
        self.gc_pauses = gc_pauses
        self.media_stats = media_stats
        self.media_worker_stats = media_worker_stats
        self.started = time.time()

    def render(self) -> str:
        out = _Writer()
        open_now, total = self.gateway_counts()
        out.one("waitroom_ws_connections", "gauge", "Open websocket connections.", open_now)
        out.one(
            "waitroom_ws_connections_total", "counter", "Websocket connections accepted.", total
        )
        out.family("waitroom_actors", "gauge", "Running actors by address kind.")
        for kind, count in sorted(self.registry.count_by_kind().items()):
            out.sample("waitroom_actors", count, kind=kind)
        out.family("waitroom_mailbox_depth", "gauge", "Queued messages by actor kind.")
        for kind, depth in sorted(self.registry.mailbox_depths().items()):
            out.sample("waitroom_mailbox_depth", depth, kind=kind)
        out.family("waitroom_messages_handled_total", "counter", "Messages handled by actor kind.")
        for kind, handled in sorted(MESSAGES_HANDLED.items()):
            out.sample("waitroom_messages_handled_total", handled, kind=kind or "unnamed")
        out.one(
            "waitroom_event_loop_lag_seconds",
            "gauge",
            "Overshoot of the last periodic trio.sleep.",
            self.lag.last,
        )
        out.one(
            "waitroom_event_loop_lag_max_seconds",
            "gauge",
            f"Largest overshoot over the last {LAG_WINDOW} probes.",
            self.lag.window_max,
        )
        self._gc(out)
        if self.media_stats is not None:
            self._media(out, self.media_stats())
        if self.media_worker_stats is not None:
            _media_workers(out, self.media_worker_stats())
        out.one(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time.",
            process_cpu_seconds(),
        )
        out.one("process_resident_memory_bytes", "gauge", "Resident memory.", process_rss_bytes())
        out.one("process_start_time_seconds", "gauge", "Start time (Unix epoch).", self.started)
        return "\n".join(out.lines) + "\n"

    def _gc(self, out: _Writer) -> None:
        stats = gc.get_stats()
        out.family("python_gc_collections_total", "counter", "Cyclic-GC collections by generation.")
        for generation, figures in enumerate(stats):
            out.sample(
                "python_gc_collections_total", figures["collections"], generation=str(generation)
            )
        out.family(
            "python_gc_objects_collected_total",
            "counter",
            "Objects the cyclic GC freed, by generation.",
        )
        for generation, figures in enumerate(stats):
            out.sample(
                "python_gc_objects_collected_total",
                figures["collected"],
                generation=str(generation),
            )
        if self.gc_pauses is not None:
            out.one(
                "waitroom_gc_pause_seconds_total",
                "counter",
                "Time the event loop spent stopped in cyclic-GC collections.",
                self.gc_pauses.total,
            )
            out.one(
                "waitroom_gc_pause_max_seconds",
                "gauge",
                f"Longest of the last {GC_WINDOW} cyclic-GC collections.",
                self.gc_pauses.recent_max,
            )

    @staticmethod
    def _media(out: _Writer, stats: dict[str, int]) -> None:
        out.one(
            "waitroom_rtp_packets_forwarded_total",
            "counter",
            "RTP packets forwarded by the SFU.",
            stats.get("forwarded", 0),
        )
        out.one(
            "waitroom_rtp_packets_dropped_total",
            "counter",
            "Datagrams the SFU dropped (every dropped_* counter).",
            sum(v for k, v in stats.items() if k.startswith("dropped_")),
        )
        name = "waitroom_media_datagrams_dropped_total"
        out.family(name, "counter", "Datagrams the SFU dropped, by reason.")
        for reason, value in _dropped_by_reason(stats):
            out.sample(name, value, reason=reason)
        for key, value in sorted(stats.items()):
            if key in MEDIA_GAUGES:
                out.one(f"waitroom_media_{key}", "gauge", f"Media plane {key}.", value)
            else:
                out.one(f"waitroom_media_{key}_total", "counter", f"Media plane {key}.", value)


def _media_workers(out: _Writer, workers: dict[str, dict[str, int]]) -> None:
    """The same figures per worker process, so one hot or restarting worker shows."""
    for suffix, kind, help_text, key in MEDIA_WORKER_FAMILIES:
        name = f"waitroom_media_worker_{suffix}"
        out.family(name, kind, help_text)
        for label, stats in sorted(workers.items()):
            if key is None:
                value = sum(v for k, v in stats.items() if k.startswith("dropped_"))
            else:
                value = stats.get(key, 1 if key == "up" else 0)
            out.sample(name, value, worker=label)
    name = "waitroom_media_worker_datagrams_dropped_total"
    out.family(name, "counter", "Datagrams this worker dropped, by reason.")
    for label, stats in sorted(workers.items()):
        for reason, value in _dropped_by_reason(stats):
            out.sample(name, value, reason=reason, worker=label)


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


class MetricsEndpoint:
    """ASGI app for ``GET /metrics`` (the router sends it only that path)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") or ("", 0)
        if not _is_loopback(str(client[0])):
            status, body = 403, b"metrics are served to loopback clients only\n"
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
