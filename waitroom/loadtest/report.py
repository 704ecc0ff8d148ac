"""Summaries of a run: figures, a text table, a JSON report and a PNG of latency and load."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

from waitroom.loadtest import mediaload

#: Latency target from the issue: arrival-to-dashboard p99 under this (seconds).
DASHBOARD_P99_TARGET = 0.250
#: Plot bucket width (seconds).
BUCKET = 1.0
_MS = 1000.0


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def _latency(samples: list[tuple[float, float]]) -> dict[str, float | int | None]:
    values = [lat for _, lat in samples]

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * _MS, 1)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 0.50)),
        "p95_ms": ms(percentile(values, 0.95)),
        "p99_ms": ms(percentile(values, 0.99)),
        "max_ms": ms(max(values, default=None)),
    }


def _delta(first: dict[str, float], last: dict[str, float], key: str) -> float | None:
    if key not in last:
        return None
    return round(last[key] - first.get(key, 0.0), 3)


def summarise(runs: list[dict[str, Any]], scenario: dict[str, Any]) -> dict[str, Any]:
    """Merge the raw samples of every worker process into one report."""
    arrival_http = [s for r in runs for s in r["arrival_http"]]
    dashboard = [s for r in runs for s in r["dashboard"]]
    join = [s for r in runs for s in r["join"]]
    errors: Counter[str] = Counter()
    for r in runs:
        errors.update(r["errors"])
    arrivals = sum(r["arrivals"] for r in runs)
    window = max((r["arrival_window"] for r in runs), default=0.0)
    # Every worker samples the same server; the first worker's series is the server's view.
    server = runs[0]["server"] if runs else []
    first = server[0][1] if server else {}
    last = server[-1][1] if server else {}
    wall = (server[-1][0] - server[0][0]) if len(server) > 1 else 0.0
    cpu = _delta(first, last, "process_cpu_seconds_total")
    lags = [s.get("waitroom_event_loop_lag_max_seconds", 0.0) for _, s in server]
    dash = _latency(dashboard)
    p99 = dash["p99_ms"]
    return {
        "scenario": scenario,
        "arrivals": arrivals,
        "arrivals_per_s": round(arrivals / window, 2) if window else 0.0,
        "arrival_http": _latency(arrival_http),
        "dashboard": dash,
        "dashboard_p99_target_ms": DASHBOARD_P99_TARGET * _MS,
        "dashboard_p99_met": p99 is not None and p99 < DASHBOARD_P99_TARGET * _MS,
        "join": _latency(join),
        "calls_started": sum(r["calls_started"] for r in runs),
        "calls_ended": sum(r["calls_ended"] for r in runs),
        "callers_connected": sum(r["callers_connected"] for r in runs),
        "client_ws_connections": sum(
            r["callers_connected"] + r["provider_connections"] for r in runs
        ),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "server": {
            "ws_connections_accepted": _delta(first, last, "waitroom_ws_connections_total"),
            "ws_connections_peak": max(
                (s.get("waitroom_ws_connections_open", 0.0) for _, s in server), default=0.0
            ),
            "cpu_seconds": cpu,
            "cpu_percent": round(100 * cpu / wall, 1) if cpu is not None and wall else None,
            "rss_mib_end": round(last.get("process_resident_memory_bytes", 0.0) / 2**20, 1),
            "loop_lag_max_ms": round(max(lags, default=0.0) * _MS, 1),
            "messages_handled": {
                key.split('"')[1]: _delta(first, last, key)
                for key in last
                if key.startswith("waitroom_messages_handled_total{")
            },
        },
        "media": mediaload.summarise(runs, server),
    }


def table(report: dict[str, Any]) -> str:
    def fmt(lat: dict[str, Any]) -> str:
        return (
            f"n={lat['count']:<6} p50={lat['p50_ms']} p95={lat['p95_ms']} "
            f"p99={lat['p99_ms']} max={lat['max_ms']} ms"
        )

    server = report["server"]
    rows = [
        ("arrivals", f"{report['arrivals']} ({report['arrivals_per_s']}/s sustained)"),
        ("arrival POST", fmt(report["arrival_http"])),
        ("arrival->dashboard", fmt(report["dashboard"])),
        ("  p99 < 250 ms", "yes" if report["dashboard_p99_met"] else "NO"),
        ("join (join+enter)", fmt(report["join"])),
        ("calls started/ended", f"{report['calls_started']}/{report['calls_ended']}"),
        ("errors", f"{report['error_count']} {report['errors']}"),
        ("server ws accepted", str(server["ws_connections_accepted"])),
        ("server ws peak", str(server["ws_connections_peak"])),
        ("server CPU", f"{server['cpu_seconds']} s ({server['cpu_percent']}%)"),
        ("server RSS (end)", f"{server['rss_mib_end']} MiB"),
        ("server loop lag max", f"{server['loop_lag_max_ms']} ms"),
        *_client_rows(report.get("client")),
        *mediaload.table_rows(report.get("media")),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


#: A load-generator process above this share of one core may have been what limited the run.
NEAR_LIMIT_PERCENT = 80.0


def client_cpu(
    cpu_seconds: float,
    wall_seconds: float,
    processes: int,
    per_process: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The load tester's own CPU (all its processes) over the run, beside the server's figure,
    and its busiest process's share of a core (one Python process cannot use more than one):
    ``near_limit`` says that process may have been the limit rather than the server."""
    shares = [
        100 * p["cpu_seconds"] / p["wall_seconds"]
        for p in per_process or []
        if p.get("wall_seconds")
    ]
    busiest = round(max(shares), 1) if shares else None
    return {
        "processes": processes,
        "cpu_seconds": round(cpu_seconds, 2),
        "cpu_percent": round(100 * cpu_seconds / wall_seconds, 1) if wall_seconds else None,
        "busiest_process_percent": busiest,
        "near_limit": busiest is not None and busiest >= NEAR_LIMIT_PERCENT,
    }


def _client_rows(client: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not client:
        return []
    busiest = client.get("busiest_process_percent")
    each = "" if busiest is None else f"; busiest process {busiest}% of a core"
    warning = " NEAR ITS LIMIT: use more --processes" if client.get("near_limit") else ""
    return [
        (
            "load tester CPU",
            f"{client['cpu_seconds']} s ({client['cpu_percent']}% of one core, "
            f"{client['processes']} processes{each}){warning}",
        )
    ]


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Latency percentiles per second and load (waiting callers, server CPU) over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = [s for r in runs for s in r["dashboard"]]
    buckets: dict[int, list[float]] = {}
    for t, lat in dashboard:
        buckets.setdefault(int(t // BUCKET), []).append(lat * _MS)
    times = sorted(buckets)
    with_media = any(r.get("media") for r in runs)
    fig, axes = plt.subplots(
        3 if with_media else 2, 1, figsize=(9, 9 if with_media else 6), sharex=True
    )
    top, bottom = axes[0], axes[1]
    if with_media:
        mediaload.plot(axes[2], runs)
    for fraction, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        top.plot(
            [t * BUCKET for t in times],
            [percentile(buckets[t], fraction) for t in times],
            label=f"arrival->dashboard {label}",
        )
    top.axhline(DASHBOARD_P99_TARGET * _MS, color="red", linestyle=":", label="p99 target")
    top.set_ylabel("latency (ms)")
    top.legend(loc="upper left", fontsize="small")
    server = runs[0]["server"] if runs else []
    xs = [t for t, _ in server]
    bottom.plot(xs, [s.get("waitroom_ws_connections_open", 0) for _, s in server], label="open ws")
    bottom.set_ylabel("connections")
    bottom.set_xlabel("seconds")
    cpu_axis = bottom.twinx()
    cpu = [
        100
        * (b[1].get("process_cpu_seconds_total", 0) - a[1].get("process_cpu_seconds_total", 0))
        / max(b[0] - a[0], 1e-9)
        for a, b in itertools.pairwise(server)
    ]
    cpu_axis.plot(xs[1:], cpu, color="tab:orange", label="server CPU %")
    cpu_axis.set_ylabel("server CPU %")
    bottom.legend(loc="upper left", fontsize="small")
    cpu_axis.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(runs: list[dict[str, Any]], report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out_dir / "report.json",
        "samples": out_dir / "samples.json",
        "table": out_dir / "report.txt",
        "plot": out_dir / "latency.png",
    }
    paths["report"].write_text(json.dumps(report, indent=2))
    paths["samples"].write_text(json.dumps(runs))
    paths["table"].write_text(table(report) + "\n")
    plot(runs, paths["plot"])
    return paths
