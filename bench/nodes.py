"""Arrivals per second on one node against two on this machine, sharing Redis and PostgreSQL.

    python bench/nodes.py [--rates 50,100,150] [--step-seconds 10] [--areas 50]
                          [--reference COMMIT] [--quick]

One Waitroom node uses one core for the control plane (Python runs one thread at a time), so on a
2-core machine a second node is the way to the second core (issue 18). For each arrival rate this
starts its own redis-server and PostgreSQL (Debian's, loopback, as the cluster tests do), a fresh
database prepared with ``--areas`` always-open areas, then:

* ``1 node``: one ``waitroom serve --redis --database`` and the arrival ramp of
  ``bench/capacity.py`` against it (callers arrive, dashboards watch, providers join some);
* ``2 nodes``: two such nodes on the same Redis and database, and the same load split in half,
  each half arriving and watching through its own node. The load starts once every area is on
  its home node (``cluster.spread``: about half on each). An area lives on one node, so about
  half the arrivals reach an area hosted on the other node and their dashboard events cross
  through Redis;
* with ``--reference COMMIT``, ``2 nodes`` of that commit too, in the same run (and ``1 node``
  with ``--reference-nodes 1,2``).

A step passes with arrival-to-dashboard p99 under 250 ms, no error and the offered rate kept up;
the ramp stops at the first step that fails on both. Also per step: each node's CPU per arrival,
Redis commands per arrival (``INFO commandstats`` before and after, background work included,
in total and by command).
The load tester shares the two cores: its CPU is printed beside the servers'. The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity import (  # bench/, the script's folder
    MAX_RAMP_PROVIDERS,
    MIN_RAMP_PROVIDERS,
    Build,
    ServeProcess,
    export_commit,
    free_port,
    loadtest,
    percentile,
    step_passed,
)

from cluster.spread import home
from tests.cluster.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parent.parent


class Node(ServeProcess):
    """One ``waitroom serve`` of this tree in cluster mode, in a process of its own."""

    def __init__(
        self, node_id: str, redis: str, database: str, workdir: Path, build: Build
    ) -> None:
        self.node_id = node_id
        workdir = workdir.resolve()  # the node runs in its build's directory, not ours
        port = free_port()
        command = [
            sys.executable, "-m", "waitroom.cli", "serve",
            "--port", str(port),
            "--db", str(workdir / "unused.sqlite3"),
            "--database", database,
            "--redis", redis,
            "--node-id", node_id,
            "--media-workers", "0",
            "--media-port", str(free_port(socket.SOCK_DGRAM)),
            "--log-level", "WARNING",
        ]  # fmt: skip
        super().__init__(
            command,
            build,
            workdir / f"node-{node_id}.log",
            f"http://127.0.0.1:{port}",
            f"node {node_id}",
        )


def redis_commands(port: int) -> dict[str, int]:
    """Commands Redis has run since it started, by command (``INFO commandstats``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            header, _, rest = data.partition(b"\r\n")
            if header.startswith(b"$") and len(rest) >= int(header[1:]):
                break
    counts: dict[str, int] = {}
    for line in data.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, stats = line.removeprefix("cmdstat_").partition(":")
            fields = dict(part.split("=") for part in stats.split(","))
            counts[name] = int(fields["calls"])
    return counts


def commands_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What Redis ran between two ``redis_commands`` readings, by command, the most first."""
    ran = {name: after[name] - before.get(name, 0) for name in after}
    return dict(sorted(((n, c) for n, c in ran.items() if c), key=lambda nc: -nc[1]))


#: Seconds the areas may take to reach their homes once every node has started.
SETTLE_TIMEOUT = 60.0


def settle(redis: RedisServer, node_ids: list[str], spread: bool = True) -> None:
    """Wait until every area is placed on its home among ``node_ids`` (the later nodes take
    theirs over from the first, a few dozen every couple of seconds), so the load meets the
    spread a running cluster has, not the handover. A build that does not spread (a reference
    older than the spread) leaves them where the first node put them: ``spread=False``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        keys = redis.keys("waitroom:place:area/*")
        away = [
            k
            for k in keys
            if spread and redis.get(k) != home(k.removeprefix("waitroom:place:"), node_ids)
        ]
        if keys and not away:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(away)} of {len(keys)} areas not at their homes in time")
        time.sleep(0.2)


def spreads(build: Build) -> bool:
    """Whether ``build`` spreads the areas over the nodes (``cluster/spread.py``, session 13 on).
    A reference that does must be settled too, or its load meets the handover and the pair is
    unfair to it (before session 23 every reference was taken for one that does not)."""
    return (build.root / "cluster" / "spread.py").exists()


def prepare(database: str, areas: int) -> None:
    """The demo organisation and ``areas`` always-open areas, as `bench/capacity.py` prepares them."""
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("capacity.py")), "--prepare", database,
         "--areas", str(areas)],
        check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=180,
    )  # fmt: skip


def step(
    nodes: int, rate: float, args: argparse.Namespace, work: Path, build: Build
) -> dict[str, Any]:
    """``rate`` arrivals/s through ``nodes`` fresh nodes of ``build`` (the load split evenly)."""
    work.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(work)
    postgres = PostgresServer()
    started: list[Node] = []
    try:
        prepare(postgres.url, args.areas)
        for n in range(nodes):
            started.append(Node(f"n{n + 1}", redis.url, postgres.url, work, build))
        settle(redis, [node.node_id for node in started], spread=spreads(build))
        providers = min(MAX_RAMP_PROVIDERS, max(MIN_RAMP_PROVIDERS, int(rate / 10)))
        share = {
            "areas": args.areas,
            "callers": int(rate * args.step_seconds / nodes),
            "rate": rate / nodes,
            "duration": args.step_seconds,
            "providers": max(2, providers // nodes),
            "call_seconds": args.call_seconds,
            "processes": 0,
        }
        commands_before = redis_commands(redis.port)
        results: list[dict[str, Any] | BaseException] = [RuntimeError("no result")] * nodes

        def drive(index: int) -> None:
            try:
                results[index] = loadtest(started[index], work / f"runs-{index + 1}", share)
            except BaseException as error:  # reported below with the others
                results[index] = error

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(nodes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        commands = commands_between(commands_before, redis_commands(redis.port))
    finally:
        for node in started:
            node.stop()
        redis.stop()
        postgres.stop()
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"a load tester failed: {failed[0]}")
    result = combine(nodes, rate, [r for r in results if isinstance(r, dict)], commands)
    return {"build": build.name, **result}


def combine(
    nodes: int, rate: float, parts: list[dict[str, Any]], commands: dict[str, int]
) -> dict[str, Any]:
    """One step's figures over every node's load tester: latencies from the samples merged."""
    dashboard: list[float] = []
    for part in parts:
        samples = json.loads((Path(part["out_dir"]) / "samples.json").read_text())
        dashboard += [lat * 1000 for run in samples for _, lat in run["dashboard"]]
    arrivals = sum(p["arrivals"] for p in parts)
    errors: dict[str, int] = {}
    for part in parts:
        for kind, count in part["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    result: dict[str, Any] = {
        "nodes": nodes,
        "rate": rate,
        "arrivals": arrivals,
        "arrivals_per_s": round(sum(p["arrivals_per_s"] for p in parts), 2),
        "dashboard": {
            "count": len(dashboard),
            "p50_ms": percentile(dashboard, 0.5),
            "p95_ms": percentile(dashboard, 0.95),
            "p99_ms": percentile(dashboard, 0.99),
        },
        "errors": errors,
        "error_count": sum(errors.values()),
        "server_cpu_percent": [p["server_process_cpu_percent"] for p in parts],
        "server_cpu_ms_per_arrival": [p["server_cpu_ms_per_arrival"] for p in parts],
        "server_cpu_busiest_second_percent": [
            p["server_cpu_busiest_second_percent"] for p in parts
        ],
        "tester_cpu_percent": round(sum(p["client"]["cpu_percent"] for p in parts), 1),
        "redis_commands_per_arrival": (
            round(sum(commands.values()) / arrivals, 1) if arrivals else None
        ),
        "redis_commands_by_name_per_arrival": {
            name: round(count / arrivals, 2) for name, count in commands.items() if arrivals
        },
    }
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        value = result["dashboard"][key]
        result["dashboard"][key] = None if value is None else round(value, 1)
    passed, why = step_passed(result, rate)
    result["passed"], result["why"] = passed, why
    return result


def row_text(r: dict[str, Any]) -> str:
    d = r["dashboard"]
    return (
        f"{r['build']}, {r['nodes']} node(s): offered {r['rate']:g}/s -> {r['arrivals_per_s']}/s, dash "
        f"p50/p95/p99 {d['p50_ms']}/{d['p95_ms']}/{d['p99_ms']} ms, errors {r['error_count']}, "
        f"server CPU {r['server_cpu_percent']} % ({r['server_cpu_ms_per_arrival']} ms/arrival, "
        f"busiest second {r['server_cpu_busiest_second_percent']} %), "
        f"tester {r['tester_cpu_percent']} %, Redis {r['redis_commands_per_arrival']} "
        f"commands/arrival ({r['why']})\n    Redis per arrival: "
        + ", ".join(
            f"{n} {c:g}" for n, c in list(r["redis_commands_by_name_per_arrival"].items())[:8]
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,150", help="arrivals/s, comma list")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--call-seconds", type=float, default=3.0)
    parser.add_argument("--areas", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="one small step each, under a minute")
    parser.add_argument(
        "--reference", default=None, help="commit whose 2 nodes are measured beside this tree's"
    )
    parser.add_argument(
        "--reference-nodes", default="2", help="node counts run of the reference, comma list"
    )
    args = parser.parse_args()
    if args.quick:
        args.rates, args.step_seconds, args.areas = "10", 4.0, 4
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[str, Any] = {"load_average": os.getloadavg(), "steps": []}
    with tempfile.TemporaryDirectory(prefix="waitroom-nodes-") as tmp:
        tree = Build("tree", ROOT)
        runs = [(1, tree), (2, tree)]
        if args.reference:
            reference = export_commit(args.reference, Path(tmp) / "reference")
            runs += [(int(n), reference) for n in args.reference_nodes.split(",")]
        for rate in rates:
            passed_any = False
            for nodes, build in runs:
                slug = "tree" if build is tree else "reference"
                r = step(nodes, rate, args, Path(tmp) / f"{slug}-{nodes}-nodes-{rate:g}", build)
                results["steps"].append(r)
                print(row_text(r), file=sys.stderr, flush=True)
                passed_any = passed_any or r["passed"]
            if not passed_any:
                break
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
