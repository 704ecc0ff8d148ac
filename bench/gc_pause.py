"""How long one full cyclic collection stops a node holding N waiting callers (issue 17).

CPython runs a full collection by itself every few hundred middle ones; in a node that walks every
tracked object, about 2.3 million at 10,000 waiting. This fills a fresh server of each build with
callers (form, POST, websocket, ``room.enter``), lets a tenth of them leave and as many new ones
arrive (the churn of a day), then asks the server, through a signal its start-up hook installs,
to time three full collections a few seconds apart and one audit (unfreeze, full collection,
freeze: waitroom/frozen_heap.py). What each found unreachable is reported too: for an audit, that
is what reference cycles kept among frozen objects.

    python bench/gc_pause.py --callers 10000 --reference fffc507

The hook is this script's own code in the server's process (``python -c``), beside the build's
``waitroom serve``; it needs nothing from the build but its CLI. Only the server's process is
timed. The last line printed is one JSON object: ``{build: figures}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arrival_stages import _arrive  # bench/, beside this
from capacity import PASSWORD, Build, Server, export_commit

from waitroom.loadtest.scenario import Recorder, Scenario, discover_areas

AREAS = 10
#: Arrivals in flight at once while filling the server.
CONCURRENCY = 16
#: Full collections timed, this many seconds apart.
COLLECTIONS, APART = 3, 2.0
#: Seconds after the churn before the first collection (the departures' teardown settles).
SETTLE = 8.0

#: Runs in the server's process before its CLI: SIGUSR1 times a full collection, SIGUSR2 an
#: audit; each writes every figure so far to the path given as the last argument.
HOOK = r"""
import gc, json, signal, sys, time
OUT = sys.argv.pop()
figures = {"full_ms": [], "full_found": [], "walked": []}

def _write():
    with open(OUT, "w") as out:
        json.dump(figures, out)

def full(*_):
    figures["walked"].append(len(gc.get_objects()))
    done = gc.get_stats()[2]["collections"]
    began = time.perf_counter()
    figures["full_found"].append(gc.collect())
    took = round((time.perf_counter() - began) * 1000, 1)
    # A signal handled inside a collection already running (in a gc callback) gets no
    # collection of its own: gc.collect returns at once. That is no reading (None).
    figures["full_ms"].append(took if gc.get_stats()[2]["collections"] > done else None)
    figures["frozen"] = gc.get_freeze_count()
    _write()

def audit(*_):
    done = gc.get_stats()[2]["collections"]
    began = time.perf_counter()
    gc.unfreeze()
    figures["audit_found"] = gc.collect()
    gc.freeze()
    took = round((time.perf_counter() - began) * 1000, 1)
    figures["audit_ms"] = took if gc.get_stats()[2]["collections"] > done else None
    figures["tracked"] = gc.get_freeze_count()
    _write()

signal.signal(signal.SIGUSR1, full)
signal.signal(signal.SIGUSR2, audit)
from waitroom.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def _callers(
    nursery: trio.Nursery, url: str, slugs: list[str], first: int, count: int, leave: trio.Event
) -> None:
    """``count`` callers, each waiting in a task of its own until ``leave``; returns once all
    are in."""
    limit = trio.CapacityLimiter(CONCURRENCY)
    arrived = trio.Semaphore(0)

    async def one(index: int) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with limit:
                await _arrive(url, slugs[index % len(slugs)], "websocket", index, stack, True)
            arrived.release()
            await leave.wait()

    for index in range(first, first + count):
        nursery.start_soon(one, index)
    for _ in range(count):
        await arrived.acquire()


async def _drive(url: str, process: subprocess.Popen[str], callers: int) -> None:
    _, areas = await discover_areas(Scenario(url, "provider", PASSWORD, areas=AREAS), Recorder())
    slugs = [slug for _, slug in areas]
    churn = callers // 10
    early, stay, late = trio.Event(), trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        await _callers(nursery, url, slugs, 0, churn, early)
        await _callers(nursery, url, slugs, churn, callers - churn, stay)
        early.set()
        await _callers(nursery, url, slugs, callers, churn, late)
        await trio.sleep(SETTLE)
        for _ in range(COLLECTIONS):
            process.send_signal(signal.SIGUSR1)
            await trio.sleep(APART)
        process.send_signal(signal.SIGUSR2)
        await trio.sleep(APART * 3)  # an audit at 10,000 takes about two seconds
        late.set()
        stay.set()


def measure(build: Build, work: Path, callers: int) -> dict[str, Any]:
    print(f"{build.name}:", file=sys.stderr)
    out = work.resolve() / "figures.json"
    with Server(build, work, AREAS, code=HOOK, extra=(str(out),)) as server:
        trio.run(_drive, server.url, server.process, callers)
    figures: dict[str, Any] = json.loads(out.read_text())
    print(f"  {figures}", file=sys.stderr)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=10_000, help="waiting at once (10,000)")
    parser.add_argument("--reference", help="a commit measured after this tree, in the same run")
    parser.add_argument("--quick", action="store_true", help="300 callers (under 30 s a build)")
    args = parser.parse_args()
    if args.quick:
        args.callers = 300
    results: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="waitroom-gc-") as tmp:
        work = Path(tmp)
        tree = Build("this tree", Path(__file__).resolve().parent.parent)
        results[tree.name] = measure(tree, work / "tree", args.callers)
        if args.reference:
            reference = export_commit(args.reference, work / "reference")
            results[reference.name] = measure(reference, work / "ref", args.callers)
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
