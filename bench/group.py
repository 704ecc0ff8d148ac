"""One group consultation of 60 with breakout rooms of 6, on a fresh server (issue 12).

    python bench/group.py                 # 60 participants over 60 s, rooms of 6, ~3 minutes
    python bench/group.py --quick         # 8 participants over 2 s, rooms of 3 (a smoke run)

A fresh database and ``waitroom serve`` as an operator starts it (the embedded SQLite store, the
default media workers: one per core), then ``waitroom loadtest URL --scenario group`` as a user
runs it (``waitroom/loadtest/group.py``: the moderator creates the session on its pages, the
participants arrive by its link, are admitted all at once, go into rooms of 6 with a second
websocket and a simulcast media peer each, and come back after the product's 60-second closing
countdown). Figures: lobby update (arrival POST to the moderator's ``group.lobby``), admission to
media (the admit frame to each participant's first forwarded RTP), breakout open (the open frame
to each participant's first forwarded RTP in their room; the aim is p99 under 2 s at 60), breakout
close (the countdown's end to each participant's first forwarded RTP back in the main call), the
server's CPU (the server and its media workers) and the load generator's, and the load average at
the start and the end. It prints one Markdown table row for bench/README.md, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from procstat import tree_cpu_seconds  # noqa: E402  (bench/, the script's folder)

PASSWORD = "group-bench-password"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
#: The load test's own bound (the scenario's hard limit is under this at the defaults).
RUN_TIMEOUT = 420.0
QUICK = ["--participants", "8", "--arrival-seconds", "2", "--room-size", "3"]


def free_port(kind: int = socket.SOCK_STREAM, span: int = 1) -> int:
    """A loopback port with ``span`` free ports from it (media workers take one each)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        taken = []
        try:
            for offset in range(span):
                sock = socket.socket(socket.AF_INET, kind)
                taken.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise RuntimeError("no free ports")


class Server:
    """``waitroom serve`` on a new database in ``workdir``, in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "serve.log").open("w")
        command = [
            sys.executable,
            "-m",
            "waitroom.cli",
            "serve",
            "--db",
            str(workdir / "waitroom.sqlite3"),
            "--port",
            str(port),
            "--media-port",
            str(free_port(socket.SOCK_DGRAM, span=os.cpu_count() or 1)),
            "--demo-password",
            PASSWORD,
            "--log-level",
            "WARNING",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("Demo admin sign-in"):
                return
        self.stop()
        raise RuntimeError(f"the server did not start (see {workdir}/serve.log)")

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self.log.close()


def warm_clip() -> None:
    """Encode the simulcast clip once (cached in the temp directory) before anything is timed."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from waitroom.loadtest.clip import load_simulcast_clip; load_simulcast_clip()",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _ms(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key)
    return "-" if value is None else f"{value:,.0f}"


def row(figures: dict[str, Any], server_cpu: float, wall: float, load_start: str) -> str:
    lobby, admit = figures["lobby_update"], figures["admission_to_media"]
    opened, closed = figures["breakout_open"], figures["breakout_close"]
    client = sum(figures["client_cpu_seconds"])
    return (
        f"| {figures['participants']} | {figures['rooms']} x {figures['room_size']} | "
        f"{_ms(lobby, 'p50_ms')} / {_ms(lobby, 'p99_ms')} | "
        f"{_ms(admit, 'p50_ms')} / {_ms(admit, 'p99_ms')} | "
        f"{_ms(opened, 'p50_ms')} / {_ms(opened, 'p99_ms')} / {_ms(opened, 'max_ms')} | "
        f"{_ms(closed, 'p50_ms')} / {_ms(closed, 'p99_ms')} / {_ms(closed, 'max_ms')} | "
        f"{figures['in_the_assigned_room']} / {figures['room_video_from_outside']} | "
        f"{figures['error_count']} | "
        f"{100 * server_cpu / wall:.0f} | {100 * client / wall:.0f} | {load_start} -> {load()} |"
    )


HEADER = (
    "| N | rooms | lobby p50 / p99 ms | admission to media p50 / p99 ms | "
    "open p50 / p99 / max ms | close p50 / p99 / max ms | in assigned room / video from "
    "outside | errors | "
    "server %CPU | tester %CPU | load average start -> end |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 participants, a smoke run")
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--arrival-seconds", type=float, default=60.0)
    parser.add_argument("--room-size", type=int, default=6)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    args = parser.parse_args()
    sizes = (
        QUICK
        if args.quick
        else [
            "--participants",
            str(args.participants),
            "--arrival-seconds",
            str(args.arrival_seconds),
            "--room-size",
            str(args.room_size),
        ]
    )
    warm_clip()
    with tempfile.TemporaryDirectory(prefix="waitroom-group-bench-") as tmp:
        workdir = Path(tmp)
        load_start = load()
        server = Server(workdir)
        try:
            cpu_start, started = server.cpu_seconds(), time.monotonic()
            command = [
                sys.executable,
                "-m",
                "waitroom.cli",
                "loadtest",
                server.url,
                "--scenario",
                "group",
                "--password",
                PASSWORD,
                "--processes",
                str(args.processes),
                "--out",
                str(workdir / "results"),
                *sizes,
            ]
            done = subprocess.run(
                command, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT
            )
            wall = time.monotonic() - started
            server_cpu = server.cpu_seconds() - cpu_start
        finally:
            server.stop()
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("{"):
        print("\n".join(lines), file=sys.stderr)
        print(f"the load test printed no figures (exit {done.returncode})", file=sys.stderr)
        return 1
    figures = json.loads(lines[-1])
    print("\n".join(lines[:-2]))  # the load tester's own table
    print()
    print(HEADER)
    print(row(figures, server_cpu, wall, load_start))
    figures["server_cpu_seconds"] = round(server_cpu, 2)
    figures["bench_wall_seconds"] = round(wall, 2)
    figures["load_average_start"], figures["load_average_end"] = load_start, load()
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
