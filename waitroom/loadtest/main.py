"""``waitroom loadtest URL``: options, the loopback guard, worker processes and the report.

With ``--processes N`` the arrivals and providers are split round-robin across N worker processes
(``python -m waitroom.loadtest.main`` with ``--worker``), each writing its raw samples to a file;
the parent merges them into one report. One Python process tops out at a few hundred websocket
clients per second, so the tester must not be what limits the figures: without ``--processes`` it
takes one process per ``ARRIVALS_PER_PROCESS`` arrivals a second (and per
``CONNECTIONS_PER_PROCESS`` callers left waiting), and the report names the busiest process's
share of a core, with a warning when one came close to a whole core.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import resource
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from waitroom.loadtest import group, report, scenario
from waitroom.loadtest.scenario import Scenario

QUICK = {"callers": 20, "rate": 4.0, "duration": 8.0, "providers": 2, "call_seconds": 1.0}
#: Bounds on what one command may ask for, so a typo cannot start a denial of service.
MAX_CALLERS = 20_000
MAX_RATE = 1000.0
MAX_DURATION = 3600.0
MAX_PROVIDERS = 500
MAX_PROCESSES = 16
#: Extra time a worker process gets beyond its scenario before it is killed.
WORKER_GRACE = 30.0
#: Automatic ``--processes``: one worker process per this many offered arrivals a second (a
#: process spends about 7 ms of CPU per arrival, so this keeps each under half a core and its
#: own loop from adding latency to what it measures) ...
ARRIVALS_PER_PROCESS = 60.0
#: ... and per this many callers left waiting at once (``--watch-only``: every caller stays).
CONNECTIONS_PER_PROCESS = 2500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--scenario",
        choices=("clinic", "group"),
        default="clinic",
        help="clinic: callers and providers (default); group: one group consultation with "
        "breakout rooms (issue 12, waitroom/loadtest/group.py)",
    )
    group.add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="a small run under 30 s")
    parser.add_argument("--areas", type=int, default=2, help="waiting areas used (%(default)s)")
    parser.add_argument("--callers", type=int, default=200, help="arrivals at most (%(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="arrivals per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    parser.add_argument("--providers", type=int, default=4, help="simulated providers")
    parser.add_argument("--call-seconds", type=float, default=3.0, help="length of each call")
    parser.add_argument(
        "--watch-only",
        action="store_true",
        help="providers watch their dashboards but join nobody (callers stay waiting)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="load generator processes (default: enough for the offered rate and callers)",
    )
    parser.add_argument("--username", default="provider", help="provider sign-in (demo: provider)")
    parser.add_argument("--password", default="", help="provider password (the demo's, printed)")
    parser.add_argument("--out", type=Path, default=Path("loadtest-results"), help="output dir")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a target that is not loopback"
    )
    parser.add_argument(
        "--media",
        action="store_true",
        help="both sides of each call publish Opus+VP8 through the SFU and count what arrives",
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--samples-out", type=Path, default=None, help=argparse.SUPPRESS)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    values: dict[str, Any] = {
        "callers": args.callers,
        "rate": args.rate,
        "duration": args.duration,
        "providers": args.providers,
        "call_seconds": args.call_seconds,
    }
    if args.quick:
        values.update(QUICK)
    if not 0 < values["callers"] <= MAX_CALLERS:
        raise SystemExit(f"loadtest: --callers must be 1..{MAX_CALLERS}")
    if not 0 < values["rate"] <= MAX_RATE or not 0 < values["duration"] <= MAX_DURATION:
        raise SystemExit(f"loadtest: --rate 0..{MAX_RATE}, --duration 0..{MAX_DURATION}")
    if not 0 <= values["providers"] <= MAX_PROVIDERS:
        raise SystemExit(f"loadtest: --providers must be 0..{MAX_PROVIDERS}")
    return Scenario(
        base_url=args.url.rstrip("/"),
        username=args.username,
        password=args.password,
        areas=max(1, args.areas),
        join=not args.watch_only,
        worker=args.worker or 0,
        workers=args.workers,
        media=args.media,
        # With media, calls in progress get their whole length before the run is cut.
        drain=scenario.DRAIN_SECONDS + (values["call_seconds"] if args.media else 0.0),
        **values,
    )


def auto_processes(spec: Scenario) -> int:
    """How many load-generator processes the scenario needs so that none is its limit: by the
    offered arrival rate and, when callers stay waiting, by the connections held; at most one
    per core (more would only compete for the same cores) and at most ``MAX_PROCESSES``."""
    by_rate = math.ceil(spec.rate / ARRIVALS_PER_PROCESS)
    by_connections = 0 if spec.join else math.ceil(spec.callers / CONNECTIONS_PER_PROCESS)
    cores = os.cpu_count() or 1
    return max(1, min(max(by_rate, by_connections), cores, MAX_PROCESSES))


async def _run_workers(args: argparse.Namespace, spec: Scenario, out: Path) -> list[dict[str, Any]]:
    processes = min(max(1, args.processes), MAX_PROCESSES)
    if processes == 1:
        recorder = await scenario.run(spec, progress=sys.stderr)
        return [recorder.to_json()]
    files = [out / f"worker-{i}.json" for i in range(processes)]
    passthrough = [a for a in sys.argv[sys.argv.index(args.url) :] if a != "--quick"]
    if args.quick:
        passthrough = [args.url, *_quick_flags(), *passthrough[1:]]
    limit = spec.duration + spec.drain + WORKER_GRACE
    with trio.fail_after(limit):
        async with trio.open_nursery() as nursery:
            for index, path in enumerate(files):
                command = [
                    sys.executable,
                    "-m",
                    "waitroom.loadtest.main",
                    *passthrough,
                    "--processes",
                    "1",
                    "--worker",
                    str(index),
                    "--workers",
                    str(processes),
                    "--samples-out",
                    str(path),
                ]
                nursery.start_soon(_run_process, command)
    runs: list[dict[str, Any]] = []
    for path in files:
        if await trio.Path(path).exists():
            runs.append(json.loads(await trio.Path(path).read_text()))
        else:
            failed = scenario.Recorder()
            failed.error("worker_failed")
            runs.append(failed.to_json())
    return runs


def _quick_flags() -> list[str]:
    flags: list[str] = []
    for key, value in QUICK.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


async def _run_process(command: list[str]) -> None:
    await trio.run_process(command, check=False, stdout=sys.stderr.fileno())


def _own_cpu_seconds() -> float:
    """CPU time of this process and its finished worker processes: the load tester's own cost,
    so a report shows whether the client or the server was the limit on shared cores."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run(args: argparse.Namespace) -> int:
    """Entry point of the ``loadtest`` subcommand; returns the exit status."""
    if not args.allow_remote and not is_loopback(args.url):
        print(
            "loadtest: the target is not a loopback address; pass --allow-remote", file=sys.stderr
        )
        return 2
    if args.scenario == "group":
        return group.run_cli(args)
    spec = scenario_from_args(args)
    if args.processes <= 0:
        args.processes = auto_processes(spec)
    if spec.providers and not spec.password:
        print(
            "loadtest: --password is required: the provider's password "
            "(./manage serve prints the demo's)",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(args, spec)
    except scenario.LoadtestError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"loadtest: cannot reach {args.url}: {error.strerror or error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, spec: Scenario) -> int:
    if args.worker is not None:
        assert args.samples_out is not None
        try:
            recorder = trio.run(scenario.run, spec, sys.stderr)
        except (scenario.LoadtestError, OSError) as error:
            # The parent reports what each process saw: say why this one could not run, rather
            # than leave it to count as a bare "worker_failed".
            recorder = scenario.Recorder()
            recorder.error(f"worker_could_not_run: {error}")
            args.samples_out.write_text(json.dumps(recorder.to_json()))
            raise
        args.samples_out.write_text(json.dumps(recorder.to_json()))
        return 0
    out: Path = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started, cpu_before = time.monotonic(), _own_cpu_seconds()
    runs = trio.run(_run_workers, args, spec, out)
    summary_scenario = {k: v for k, v in asdict(spec).items() if k != "password"}
    summary_scenario["processes"] = args.processes
    summary = report.summarise(runs, summary_scenario)
    summary["client"] = report.client_cpu(
        _own_cpu_seconds() - cpu_before,
        time.monotonic() - started,
        args.processes,
        [r["client_cpu"] for r in runs if r.get("client_cpu")],
    )
    if summary["client"]["near_limit"]:
        print(
            f"loadtest: warning: one load-generator process used "
            f"{summary['client']['busiest_process_percent']}% of a core, so it may have been the "
            f"limit; run again with --processes {args.processes + 1} or more",
            file=sys.stderr,
        )
    paths = report.write(runs, summary, out)
    print(report.table(summary))
    print(f"report: {paths['report']}  plot: {paths['plot']}")
    print(json.dumps(summary, separators=(",", ":")))
    return 0 if summary["error_count"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="waitroom loadtest")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
