"""Cross-node ask latency: an actor on node A asks an actor on node B (another process) through Redis.

    python bench/cross_node.py [--quick] [--asks N] [--concurrency K]

Starts its own redis-server (Debian's, loopback, a free port, a temporary directory, no
persistence) and node B as a separate process (``tests.cluster.node_process``) hosting one echo
actor; this process is node A. Three figures, each after a warm-up:

* ``local``: the same ask to an echo actor on node A itself (the floor: no Redis at all);
* ``cross``: one ask in flight at a time from A to B and its reply back (two stream appends, two
  reads, two acks): p50/p90/p99/max in milliseconds;
* ``cross_k``: K asks in flight at once (``--concurrency``), so batching in the outbox shows:
  asks per second and p50/p99.

Redis commands per cross-node ask come from ``INFO commandstats`` before and after the sequential
run (background refreshes included, which are few at this rate). The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from procstat import cpu_seconds  # bench/, the script's folder

from cluster import open_node
from runtime import ActorRef, ChildSpec, Supervisor
from tests.cluster.echo import Echo, Ping, echo_types
from tests.cluster.servers import NodeProcess, RedisServer

PREFIX = "bench"


def percentiles(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99 and max of ``samples`` (seconds)."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def sequential(ref: ActorRef, count: int) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await ref.ask(Ping(n), timeout=5)
        samples.append(time.perf_counter() - started)
    return samples


async def concurrent(ref: ActorRef, count: int, width: int) -> tuple[list[float], float]:
    samples: list[float] = []
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            started = time.perf_counter()
            await ref.ask(Ping(n), timeout=5)
            samples.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(width):
            nursery.start_soon(worker)
    return samples, time.perf_counter() - started


async def commands(client: Any) -> int:
    stats = await client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


async def measure(redis: RedisServer, asks: int, width: int, warmup: int) -> dict[str, Any]:
    b = NodeProcess(redis.url, "b", "--prefix", PREFIX, "--host", "room/bench")
    try:
        if b.read() != {"ready": "b"}:
            raise SystemExit("node b did not start")
        async with (
            open_node(redis.url, echo_types(), node_id="a", prefix=PREFIX) as node,
            trio.open_nursery() as nursery,
        ):
            supervisor = await nursery.start(Supervisor(node.registry, "bench").run)
            await node.host(supervisor, ChildSpec("room/local", partial(Echo, "a")))
            local = node.registry.ref("room/local")
            cross = node.registry.ref("room/bench")
            await sequential(local, warmup)
            local_samples = await sequential(local, asks)
            await sequential(cross, warmup)
            before = await commands(node.client)
            cross_samples = await sequential(cross, asks)
            after = await commands(node.client)
            await concurrent(cross, warmup, width)
            cpu_a, cpu_b = time.process_time(), cpu_seconds(b.process.pid)
            wide_samples, wide_seconds = await concurrent(cross, asks, width)
            cpu_a, cpu_b = time.process_time() - cpu_a, cpu_seconds(b.process.pid) - cpu_b
            nursery.cancel_scope.cancel(reason="bench over")
        return {
            "local": percentiles(local_samples),
            "cross": percentiles(cross_samples),
            "cross_k": {
                "concurrency": width,
                "asks_per_s": round(len(wide_samples) / wide_seconds, 1),
                **percentiles(wide_samples),
                # CPU of each side per ask in the concurrent run: A sends the ask and reads the
                # reply, B reads the ask and sends the reply (the transport's cost per message).
                "cpu_us_per_ask_a": round(cpu_a / len(wide_samples) * 1e6, 1),
                "cpu_us_per_ask_b": round(cpu_b / len(wide_samples) * 1e6, 1),
            },
            # The two INFO calls themselves are subtracted.
            "redis_commands_per_cross_ask": round((after - before - 1) / asks, 2),
            "node_a": {
                "sent": node.transport.counts.sent,
                "batches": node.transport.counts.batches,
            },
        }
    finally:
        b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 asks each, for a smoke run")
    parser.add_argument("--asks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asks = 200 if args.quick else args.asks
    warmup = 50 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="waitroom-bench-redis-") as directory:
        redis = RedisServer(Path(directory))
        try:
            report = trio.run(measure, redis, asks, args.concurrency, warmup)
        finally:
            redis.stop()
    for name in ("local", "cross"):
        figures = report[name]
        print(
            f"{name:6} ask: p50 {figures['p50_ms']:.3f} ms  p90 {figures['p90_ms']:.3f} ms  "
            f"p99 {figures['p99_ms']:.3f} ms  max {figures['max_ms']:.3f} ms  (n={figures['n']})"
        )
    wide = report["cross_k"]
    print(
        f"cross  ask, {wide['concurrency']} in flight: {wide['asks_per_s']:.0f} asks/s  "
        f"p50 {wide['p50_ms']:.3f} ms  p99 {wide['p99_ms']:.3f} ms  CPU per ask "
        f"{wide['cpu_us_per_ask_a']:.0f} us (A) + {wide['cpu_us_per_ask_b']:.0f} us (B)"
    )
    print(f"redis commands per cross-node ask: {report['redis_commands_per_cross_ask']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
