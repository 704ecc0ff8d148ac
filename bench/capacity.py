"""Arrival capacity of one node: the standard load-test scenarios, each beside a reference build.

For every build measured (this working tree and, as the reference, the same code at an older
commit exported with ``git archive``), a fresh database gets the demo clinic plus enough always-open
waiting areas, ``waitroom serve`` starts on a free loopback port, and ``waitroom loadtest`` (always
this tree's) drives it. Scenarios:

* ``hold``: ``--waiting`` callers (5,000) arrive across ``--areas`` (50) and stay, while providers
  watch every area's dashboard: arrival-to-dashboard p50/p95/p99, overall and for the last fifth of
  the arrivals (when the queue is nearly full);
* ``sustained``: ``--sustained-rate`` (200) arrivals/s offered for a step, providers watching:
  how many arrivals per second the server admits when offered more than it can take;
* ``ramp``: a fresh server per step, arrival rate (and providers joining callers, so concurrent
  calls) raised step by step until arrival-to-dashboard p99 passes 250 ms, errors appear or the
  server stops keeping up with the offered rate; the last step that passed is the capacity;
* ``signin``: ``bench/signin_burst.py`` (``--staff`` members of staff sign in and open their
  consoles at once), run for the same builds, its figures put beside the others.

Issue 17's aims, one scenario per command (each under 5 minutes for both builds):
``--scenarios ramp`` (50 to 250 arrivals/s, 10 s steps), ``--scenarios hold`` (10,000 callers
across 50 areas at 100/s, 10 dashboards; memory per waiting caller and the longest loop stall
while they wait) and ``--scenarios signin`` (100 staff). Every row has server CPU per arrival.

Every report carries the load tester's own CPU next to the server's, so a reader sees which side
of the shared cores was the limit. ``--profile`` records the server with py-spy (raw stacks) during
the hold scenario and the first failing ramp step and prints the functions it spent most time in.

``python bench/capacity.py`` (full) or ``--quick`` (under 30 s: 2 areas, one 4 s ramp step at
10 arrivals/s, no reference). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from procstat import cpu_seconds  # bench/, the script's folder

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "capacity-bench-password"
#: Latency target of issue 6: arrival-to-dashboard p99 under this (ms).
P99_TARGET_MS = 250.0
#: A ramp step fails when the server sustains less than this share of the offered arrival rate.
KEEP_UP = 0.9
#: Bounds on waiting for a server to start and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
#: Extra time a load-test run gets beyond its scenario before it is killed.
RUN_GRACE = 60.0
#: Ramp: providers joining callers (each watches every area, so each arrival is pushed to all of
#: them): a tenth of the arrival rate, within these bounds. Concurrent calls are at most this many.
MIN_RAMP_PROVIDERS = 4
MAX_RAMP_PROVIDERS = 20
#: Profiling rate (samples per second) and how many functions the summary names.
PROFILE_RATE = 100
PROFILE_TOP = 12


@dataclass(frozen=True)
class Build:
    name: str
    root: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.root)}


def export_commit(commit: str, into: Path) -> Build:
    """The tree of ``commit`` in a directory of its own (the repository is not touched)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    tar_path.unlink()
    return Build(f"reference {commit[:10]}", into)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- preparing a database (runs in a child process with the build's own code on the path) -------


async def _prepare(db: str, areas: int, password: str) -> None:
    from services.passwords import Passwords
    from storage import areas as area_store
    from storage import seed, staff
    from storage.db import open_store

    async with open_store(db) as store:
        demo = await seed.seed_demo(store, await Passwords().hash(password))
        for number in range(len(demo.areas), areas):
            area = await area_store.create_area(
                store,
                demo.unit_id,
                f"Load area {number + 1:03}",
                time_zone="UTC",
                opening_hours=seed.ALWAYS_OPEN,
                form_fields=seed.DEMO_FORM,
                consent_text=seed.DEMO_CONSENT,
            )
            await staff.grant_role(store, demo.provider_user_id, "provider", "area", area.id)


def prepare_database(build: Build, db: Path, areas: int) -> None:
    subprocess.run(
        [sys.executable, __file__, "--prepare", str(db), "--areas", str(areas)],
        check=True,
        env=build.env(),
        timeout=120,
    )


# -- a server --------------------------------------------------------------------------------------


class ServeProcess:
    """A ``waitroom serve`` child process: started, waited for until it serves, then stopped."""

    def __init__(self, command: list[str], build: Build, log: Path, url: str, what: str) -> None:
        self.url = url
        self.log = log.open("w")
        # In the build's own directory: ``python -c`` and ``-m`` put the working directory first
        # on the path, ahead of PYTHONPATH, so a reference started from this tree's root ran this
        # tree's code (until 2026-12-04; bench/README.md, "Session 17").
        self.process = subprocess.Popen(
            command,
            env=build.env(),
            cwd=build.root,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("Serving on"):
                return
        self.stop()
        raise RuntimeError(f"{what}: the server did not start (see {log})")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


#: What a served process runs: the build's CLI (bench/gc_pause.py runs a hook before it).
SERVE_CODE = "import sys; from waitroom.cli import main; sys.exit(main(sys.argv[1:]))"


class Server(ServeProcess):
    """``waitroom serve`` of one build on a fresh database, in a process of its own; ``code``
    replaces the ``python -c`` program, ``extra`` is appended to its arguments."""

    def __init__(
        self,
        build: Build,
        workdir: Path,
        areas: int,
        code: str = SERVE_CODE,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.build = build
        workdir = workdir.resolve()  # the server runs in its build's directory, not ours
        workdir.mkdir(parents=True, exist_ok=True)
        self.db = workdir / "waitroom.sqlite3"
        prepare_database(build, self.db, areas)
        port = free_port()
        command = [
            sys.executable,
            "-c",
            code,
            "serve",
            "--db",
            str(self.db),
            "--port",
            str(port),
            "--media-port",
            str(free_port(socket.SOCK_DGRAM)),
            "--log-level",
            "WARNING",
            *extra,
        ]
        super().__init__(
            command, build, workdir / "serve.log", f"http://127.0.0.1:{port}", build.name
        )


# -- a load-test run -------------------------------------------------------------------------------


class Served(Protocol):
    """What a load test needs of the server it drives (one `Server`, or a node of bench/nodes.py)."""

    url: str

    def cpu_seconds(self) -> float: ...


def loadtest(server: Served, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Run this tree's ``waitroom loadtest`` against ``server``; its summary plus our extras."""
    args = [
        sys.executable,
        "-m",
        "waitroom.loadtest.main",
        server.url,
        "--password",
        PASSWORD,
        "--out",
        str(out),
    ]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, str(value)]
    limit = float(options["duration"]) + RUN_GRACE
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    with CpuSeries(server) as series:
        done = subprocess.run(
            args,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadtest printed no report:\n{done.stdout}\n{done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    server_cpu = server.cpu_seconds() - cpu_before
    summary["server_process_cpu_percent"] = round(100 * server_cpu / wall, 1)
    # The run's average hides the arrivals' window (a drain and sign-ins follow it): the busiest
    # second says whether the server's one core was full while the callers came.
    summary["server_cpu_busiest_second_percent"] = series.busiest_percent()
    # Includes the server's idle work over the run (timers, pings of waiting callers): an upper
    # bound on the cost of one arrival, from the process's own CPU clock (/proc).
    summary["server_cpu_ms_per_arrival"] = (
        round(1000 * server_cpu / summary["arrivals"], 2) if summary["arrivals"] else None
    )
    report_line = next((x for x in done.stdout.splitlines() if x.startswith("report: ")), "")
    if report_line:
        samples_path = Path(report_line.split()[1]).parent / "samples.json"
        samples = json.loads(samples_path.read_text())
        summary["dashboard_tail"] = tail_latency(samples)
        summary["while_waiting"] = while_waiting(samples)
        summary["out_dir"] = str(samples_path.parent)
    return summary


class CpuSeries:
    """The server's CPU share second by second while a load test runs (a thread reading /proc)."""

    def __init__(self, server: Served, every: float = 1.0) -> None:
        self.server = server
        self.every = every
        self.shares: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu series", daemon=True)

    def _sample(self) -> None:
        last, at = self.server.cpu_seconds(), time.monotonic()
        while not self._stop.wait(self.every):
            try:
                now_cpu = self.server.cpu_seconds()
            except OSError:  # the server has gone
                return
            now = time.monotonic()
            self.shares.append(100 * (now_cpu - last) / (now - at))
            last, at = now_cpu, now

    def busiest_percent(self) -> float | None:
        return round(max(self.shares), 1) if self.shares else None

    def __enter__(self) -> CpuSeries:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def tail_latency(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Arrival-to-dashboard of the last fifth of the arrivals (the queue at its fullest)."""
    samples = sorted(s for r in runs for s in r["dashboard"])
    last = [lat * 1000 for _, lat in samples[len(samples) * 4 // 5 :]]
    return {
        "count": len(last),
        "p50_ms": _round(percentile(last, 0.5)),
        "p95_ms": _round(percentile(last, 0.95)),
        "p99_ms": _round(percentile(last, 0.99)),
    }


def while_waiting(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Server memory per connected caller and the longest loop stall while they were connected.

    From the server's /metrics series: RSS growth from the first sample to the largest, over the
    most websocket connections open at once; the loop lag over the samples up to the last one
    with 99 % of those connections still open (closing thousands of sockets at the end of the
    run is not a stall a waiting caller sees).
    """
    series = runs[0]["server"] if runs else []
    if len(series) < 2:
        return {}
    opened = [s.get("waitroom_ws_connections_open", 0.0) for _, s in series]
    peak = max(opened)
    rss = [s.get("process_resident_memory_bytes", 0.0) for _, s in series]
    held = [i for i, n in enumerate(opened) if n >= 0.99 * peak]
    lags = [s.get("waitroom_event_loop_lag_max_seconds", 0.0) for _, s in series[: held[-1] + 1]]
    return {
        "peak_connections": int(peak),
        "rss_growth_mib": round((max(rss) - rss[0]) / 2**20, 1),
        "kib_per_connection": round((max(rss) - rss[0]) / 1024 / peak, 1) if peak else None,
        "loop_lag_max_ms": round(1000 * max(lags, default=0.0), 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- profiles --------------------------------------------------------------------------------------


def py_spy() -> str:
    """py-spy from the PATH, else the one installed beside this Python (a virtualenv that was
    not activated)."""
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


class Profile:
    """py-spy recording the server for ``seconds`` (raw stacks), summarised afterwards."""

    def __init__(self, server: ServeProcess, path: Path, seconds: float) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(server.process.pid),
                "--rate",
                str(PROFILE_RATE),
                "--duration",
                str(max(1, int(seconds))),
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def summary(self) -> dict[str, Any]:
        try:
            self.process.wait(STOP_TIMEOUT + RUN_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        if not self.path.exists():
            return {"error": "py-spy wrote nothing (ptrace not permitted?)"}
        return summarise_profile(self.path)


#: Where the server's samples go, by the first matching rule over a stack's frames (inclusive:
#: a stack counts once for every category it touches).
PROFILE_CATEGORIES = (
    ("HTTP server (hypercorn, h11)", ("hypercorn/", "/h11/")),
    ("web framework (quart, werkzeug)", ("quart/", "quart_trio/", "werkzeug/")),
    ("page templates (jinja2)", ("jinja2/", ".html:")),
    ("websocket gateway", ("gateway/", "wsproto/")),
    ("actors", ("actors/",)),
    ("storage thread (SQLite)", ("storage/", "sqlite_utils/")),
    ("argon2 (staff sign-in)", ("argon2/",)),
    ("waiting in epoll", ("_io_epoll.py",)),
)


def summarise_profile(path: Path) -> dict[str, Any]:
    """Share of samples per thread and per category, and the project's own busiest functions."""
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads["worker threads" if frames[0].startswith("Thread") else "event loop"] += count
        for name, needles in PROFILE_CATEGORIES:
            if any(needle in frame for frame in frames for needle in needles):
                categories[name] += count
        packages = ("actors/", "storage/", "web/", "gateway/")
        for frame in {f for f in frames if f.rpartition("(")[2].startswith(packages)}:
            own[frame] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "path": str(path),
        "thread_share_pct": {k: pct(v) for k, v in threads.items()},
        "category_pct": {name: pct(n) for name, n in categories.most_common()},
        "top_own_pct": [(name, pct(n)) for name, n in own.most_common(PROFILE_TOP)],
    }


# -- scenarios -------------------------------------------------------------------------------------


def hold(build: Build, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    duration = args.waiting / args.hold_rate
    with Server(build, work, args.areas) as server:
        profile = Profile(server, work / "hold-profile.txt", duration) if args.profile else None
        result = loadtest(
            server,
            work / "runs",
            {
                "areas": args.areas,
                "callers": args.waiting,
                "rate": args.hold_rate,
                "duration": duration + 1,
                "providers": args.providers,
                "watch_only": True,
                "processes": args.processes,
            },
        )
        if profile is not None:
            result["profile"] = profile.summary()
    return result


def sustained(build: Build, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Offer more arrivals than the server takes (watch-only) and count what it admits."""
    with Server(build, work, args.areas) as server:
        return loadtest(
            server,
            work / "runs",
            {
                "areas": args.areas,
                "callers": int(args.sustained_rate * args.step_seconds),
                "rate": args.sustained_rate,
                "duration": args.step_seconds,
                "providers": args.providers,
                "watch_only": True,
                "processes": args.processes,
            },
        )


def step_passed(result: dict[str, Any], rate: float) -> tuple[bool, str]:
    p99 = result["dashboard"]["p99_ms"]
    if result["error_count"]:
        return False, f"errors {result['errors']}"
    if p99 is None or p99 >= P99_TARGET_MS:
        return False, f"arrival->dashboard p99 {p99} ms"
    if result["arrivals_per_s"] < KEEP_UP * rate:
        return False, f"sustained {result['arrivals_per_s']}/s of {rate}/s offered"
    return True, "ok"


def ramp(build: Build, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for rate in args.rates:
        step_dir = work / f"ramp-{rate:g}"
        step_dir.mkdir(parents=True, exist_ok=True)
        providers = min(MAX_RAMP_PROVIDERS, max(MIN_RAMP_PROVIDERS, int(rate / 10)))
        with Server(build, step_dir, args.areas) as server:
            profile = (
                Profile(server, step_dir / "profile.txt", args.step_seconds)
                if args.profile
                else None
            )
            result = loadtest(
                server,
                step_dir / "runs",
                {
                    "areas": args.areas,
                    "callers": int(rate * args.step_seconds),
                    "rate": rate,
                    "duration": args.step_seconds,
                    "providers": providers,
                    "call_seconds": args.call_seconds,
                    "processes": args.processes,
                },
            )
            profile_summary = profile.summary() if profile is not None else None
        passed, why = step_passed(result, rate)
        step = {"rate": rate, "providers": providers, "passed": passed, "why": why, **result}
        if profile_summary is not None and not passed:
            step["profile"] = profile_summary
        steps.append(step)
        print(row_text(build.name, step), file=sys.stderr, flush=True)
        if not passed:
            break
    return steps


def signin(args: argparse.Namespace) -> dict[str, Any]:
    """``bench/signin_burst.py`` for this tree (and the reference), in a process of its own: its
    figures per build name (the same names as the other scenarios')."""
    command = [sys.executable, str(Path(__file__).with_name("signin_burst.py"))]
    command += ["--staff", str(args.staff)]
    if args.reference:
        command += ["--reference", args.reference]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300 + RUN_GRACE, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"signin_burst printed no figures:\n{done.stderr[-2000:]}")
    builds: dict[str, Any] = json.loads(lines[-1])["builds"]
    return builds


def row_text(name: str, r: dict[str, Any]) -> str:
    d = r["dashboard"]
    return (
        f"{name}: offered {r.get('rate', r['scenario']['rate'])}/s -> {r['arrivals_per_s']}/s, "
        f"dash p50/p95/p99 {d['p50_ms']}/{d['p95_ms']}/{d['p99_ms']} ms, "
        f"calls {r['calls_started']}, errors {r['error_count']}, "
        f"server CPU {r['server']['cpu_percent']}% ({r.get('server_cpu_ms_per_arrival')} ms per "
        f"arrival, busiest second {r.get('server_cpu_busiest_second_percent')}%), load tester CPU {r.get('client', {}).get('cpu_percent')}% "
        f"(busiest process {r.get('client', {}).get('busiest_process_percent')}%)"
        + (
            f", waiting: {w['peak_connections']} connected, {w['kib_per_connection']} KiB each, "
            f"loop lag max {w['loop_lag_max_ms']} ms"
            if (w := r.get("while_waiting"))
            else ""
        )
        + f" ({r.get('why', '')})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run under 30 s")
    parser.add_argument(
        "--scenarios",
        default="hold,sustained,ramp,signin",
        help="comma list: hold, sustained, ramp, signin",
    )
    parser.add_argument("--reference", default=None, help="commit measured beside this tree")
    parser.add_argument("--areas", type=int, default=50)
    parser.add_argument("--waiting", type=int, default=10_000, help="hold: callers waiting")
    parser.add_argument("--hold-rate", type=float, default=100.0, help="hold: arrivals/s")
    parser.add_argument("--providers", type=int, default=10, help="hold: dashboards watching")
    parser.add_argument("--staff", type=int, default=100, help="signin: staff signing in at once")
    parser.add_argument(
        "--sustained-rate", type=float, default=200.0, help="sustained: arrivals/s offered"
    )
    parser.add_argument(
        "--rates", default="50,100,150,200,250", help="ramp: arrivals/s, comma list"
    )
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--call-seconds", type=float, default=3.0)
    parser.add_argument(
        "--processes", type=int, default=0, help="load-tester processes (0: as many as needed)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the server")
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        import trio

        trio.run(_prepare, args.prepare, args.areas, PASSWORD)
        return 0
    if args.quick:
        args.areas, args.rates, args.step_seconds, args.scenarios = 2, "10", 4.0, "ramp"
        args.reference, args.processes, args.call_seconds = None, 1, 1.0
    args.rates = [float(r) for r in args.rates.split(",")]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="waitroom-capacity-") as tmp:
        builds = [Build("this tree", ROOT)]
        if args.reference:
            builds.append(export_commit(args.reference, Path(tmp) / "reference"))
        keep = Path("loadtest-results") / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}"
        results: dict[str, Any] = {
            "load_average": os.getloadavg(),
            "scenarios": scenarios,
            "builds": {},
        }
        for build in builds:
            figures: dict[str, Any] = {}
            slug = "tree" if build.root == ROOT else "reference"
            if "hold" in scenarios:
                figures["hold"] = hold(build, keep / slug / "hold", args)
                print(row_text(build.name + " hold", figures["hold"]), file=sys.stderr)
            if "sustained" in scenarios:
                figures["sustained"] = sustained(build, keep / slug / "sustained", args)
                print(row_text(build.name + " sustained", figures["sustained"]), file=sys.stderr)
            if "ramp" in scenarios:
                steps = ramp(build, keep / slug, args)
                passed = [s["rate"] for s in steps if s["passed"]]
                figures["ramp"] = steps
                figures["capacity_arrivals_per_s"] = max(passed, default=0.0)
            results["builds"][build.name] = figures
        if "signin" in scenarios:
            for name, figures in signin(args).items():
                results["builds"].setdefault(name, {})["signin"] = figures
                print(f"{name} signin: {figures}", file=sys.stderr)
        results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
