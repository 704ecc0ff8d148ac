"""What one ``/metrics`` scrape costs with 10 actors and with 10,000 (issue 17).

The scrape used to walk every mailbox (actors per kind, queued messages per kind); it now reads
tallies the registry keeps on every register, put and take. For each build (this tree and
``--reference``, exported with ``git archive``) a child process with that build's code registers
N mailboxes (rooms, connections, areas), queues a few messages and times ``Metrics.render()``:
the median of ``--repeat`` scrapes, in microseconds. Quick and single-threaded; still, run it on a
quiet machine: ``python bench/metrics_scrape.py --reference <commit>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import capacity  # bench/, the script's folder

SIZES = (10, 1_000, 10_000)
KINDS = ("room", "conn", "area", "call")


def scrape_micros(actors: int, repeat: int) -> float:
    """Median microseconds of one render with ``actors`` registered (this process's build)."""
    import time

    from runtime.kernel import Envelope, Mailbox
    from runtime.registry import Registry
    from waitroom.metrics import LoopLag, Metrics

    registry = Registry()
    for number in range(actors):
        mailbox = Mailbox(f"{KINDS[number % len(KINDS)]}/{number}", 16)
        registry.register(mailbox)
        if number % 3 == 0:
            mailbox.put(Envelope(number, None))
    metrics = Metrics(registry, lambda: (actors, actors), LoopLag())
    metrics.render()  # warm up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        metrics.render()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def measure(build: capacity.Build, repeat: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for actors in SIZES:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(actors), "--repeat", str(repeat)],
            check=True,
            capture_output=True,
            text=True,
            env=build.env(),
            timeout=300,
        )
        figures[str(actors)] = round(float(done.stdout.strip().splitlines()[-1]), 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default=None, help="commit measured beside this tree")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(scrape_micros(args.child, args.repeat))
        return 0
    results: dict[str, object] = {"load_average": os.getloadavg(), "microseconds": {}}
    with tempfile.TemporaryDirectory(prefix="waitroom-scrape-") as tmp:
        builds = [capacity.Build("this tree", capacity.ROOT)]
        if args.reference:
            builds.append(capacity.export_commit(args.reference, Path(tmp) / "reference"))
        table: dict[str, dict[str, float]] = {}
        for build in builds:
            table[build.name] = measure(build, args.repeat)
            print(f"{build.name}: {table[build.name]} us per scrape by actors", file=sys.stderr)
        results["microseconds"] = table
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
