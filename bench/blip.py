"""A network blip: every waiting caller's websocket drops at once and comes back.

A Wi-Fi access point restarting, a mobile network handing over, a load balancer reloading: the
pages of everyone waiting lose their connection in the same instant, and each reconnects after
wire.js's first back-off (0.5-1 s, jittered) with the room token it holds. What a clinic needs
to know: does everyone get back in, in their place, and how long does the node stall?

``--callers`` (2,000) arrive across ``--areas`` (10) at ``--rate`` a second and wait with a
dashboard watching every area. Then every caller's websocket closes at once; each waits a random
0.5-1.0 s and connects again: ``hello`` with its token, ``room.enter``. A try that fails in a way
a page would try again after (a refusal that is not final, a connection refused or timed out)
is tried again on wire.js's back-off (1, 2, 4 ... 30 s, each jittered to half of it), up to
``BACK_TIMEOUT`` after the drop. Reported per build:

* back in: seconds from the drop to each caller's ``room.enter`` reply (p50 / p99 / max), the
  callers that needed more than one try (and the failures they met, by kind), and those that
  could not get back (by their last failure);
* the dashboard: seconds until it shows every caller connected again, and how many callers it
  no longer lists (lost: the aim is none);
* the server: its longest loop lag and CPU over the blip, from ``/metrics`` and ``/proc``; the
  load tester's own CPU beside it (one process drives every caller).

    python bench/blip.py --callers 2000 --reference cca20ef
    python bench/blip.py --callers 3000 --py-spy blip.svg   # where the server's time goes

``--py-spy FILE`` records this tree's server (py-spy, 100 Hz) from the drop until the dashboard
shows everyone connected again: a flame graph for a ``.svg`` file, collapsed stacks otherwise.

The last line printed is one JSON object with those figures for each build.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity import PASSWORD, Build, Server, export_commit, percentile  # bench/, beside this

from actors import addresses
from waitroom.loadtest.client import GatewayRefused, connect
from waitroom.loadtest.http import Browser
from waitroom.loadtest.scenario import (
    ROOM_TOKEN,
    Recorder,
    Scenario,
    classify,
    discover_areas,
)

#: wire.js's first reconnect waits delay/2 + random * delay/2 with delay 1 s.
RECONNECT_AFTER = (0.5, 1.0)
#: wire.js: after the n-th failed try in a row it waits min(30, 2**n) s, jittered to half of it.
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0
#: Refusals after which wire.js stops (its FATAL_HELLO_CODES): the token will never work again.
FATAL_CODES = frozenset({"invalid_token", "unauthenticated", "forbidden"})
#: Bounds: an arrival's pages, a caller's way back, the dashboard's wait for everyone.
PAGES_TIMEOUT = 20.0
BACK_TIMEOUT = 60.0
#: Seconds to wait for every caller's outcome: a last try may begin at BACK_TIMEOUT, after a
#: back-off of up to BACKOFF_MAX, and take the client's connect and request limits.
SETTLE_TIMEOUT = 2 * BACK_TIMEOUT
#: Callers arriving at once at most (the arrival phase is not what is measured here).
ARRIVING_AT_ONCE = 20
#: Seconds py-spy gets to write its output once told to stop.
SPY_STOP_TIMEOUT = 30.0


class Dashboard:
    """Who the watching dashboard lists, and whether it shows them connected, by room."""

    def __init__(self) -> None:
        self.connected: dict[str, bool] = {}
        self._room_of: dict[str, str] = {}
        self.changed = trio.Event()

    def on_event(self, event: str, body: dict[str, Any]) -> None:
        if event == "queue.caller":
            caller = body.get("caller") or {}
            room = str(caller.get("room"))
            self._room_of[str(caller.get("id"))] = room
            self.connected[room] = bool(caller.get("connected"))
        elif event == "queue.removed":
            room = self._room_of.pop(str(body.get("id")), "")
            self.connected.pop(room, None)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_all_connected(self, rooms: set[str]) -> None:
        while not all(self.connected.get(room) for room in rooms):
            await self.changed.wait()


async def _arrive(base_url: str, slug: str, index: int) -> str:
    with trio.fail_after(PAGES_TIMEOUT):
        async with Browser(base_url, keep_alive=True) as browser:
            form = await browser.get(f"/w/{slug}")
            csrf = form.csrf_token()
            if form.status != 200 or csrf is None:
                raise RuntimeError(f"the form answered {form.status}")
            fields = {"name": f"Blip {index}", "reason": "bench", "consent": "yes"}
            page = await browser.post_form(f"/w/{slug}", {**fields, "csrf_token": csrf})
    match = ROOM_TOKEN.search(page.text)
    if page.status != 200 or match is None:
        raise RuntimeError(f"the arrival answered {page.status}")
    return match.group(1)


class Settled:
    """Counts the callers whose way back ended (in, or an error); ``all`` when everyone's did."""

    def __init__(self) -> None:
        self.expected = 0
        self.count = 0
        self.all = trio.Event()

    def one(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all.set()


class Caller:
    """One waiting caller's page: connected until the drop, then back after a random pause."""

    def __init__(self, ws_url: str, token: str, settled: Settled) -> None:
        self.ws_url = ws_url
        self.token = token
        self.settled = settled
        self.room = token.partition(".")[0]
        self.back_after: float | None = None
        self.error: str | None = None
        #: What each failed try met before the caller got back (or gave up).
        self.failures: list[str] = []

    async def wait(self, connected: trio.Event, drop: trio.Event, end: trio.Event) -> None:
        async with connect(self.ws_url, lambda *_: None, token=self.token) as client:
            await client.request("room.enter", {}, addresses.room(self.room))
            connected.set()
            await drop.wait()
        # The socket is closed (as a page's is when its network goes): back after a pause.
        dropped = time.monotonic()
        delay = random.uniform(*RECONNECT_AFTER)
        while True:
            await trio.sleep(delay)
            try:  # the client bounds its connect and each request
                async with connect(self.ws_url, lambda *_: None, token=self.token) as client:
                    entered = await client.request("room.enter", {}, addresses.room(self.room))
                    if entered.get("state") == "ended":
                        self.error = "room_ended"
                    self.back_after = time.monotonic() - dropped
                    self.settled.one()
                    await end.wait()
                    return
            except (GatewayRefused, OSError, trio.TooSlowError) as exc:
                if self.back_after is not None:
                    return  # the end of the run closed it
                failure = classify("caller", exc)
                self.failures.append(failure)
                final = isinstance(exc, GatewayRefused) and exc.code in FATAL_CODES
                if final or time.monotonic() - dropped > BACK_TIMEOUT:
                    self.error = failure
                    self.settled.one()
                    return
            backoff = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (len(self.failures) - 1))
            delay = random.uniform(backoff / 2, backoff)


async def _metric(base_url: str, name: str) -> float:
    async with Browser(base_url) as browser:
        page = await browser.get("/metrics")
    for line in page.text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return math.nan


async def _blip(
    server: Server, callers: int, areas: int, rate: float, profile: str = ""
) -> dict[str, Any]:
    scenario = Scenario(server.url, "provider", PASSWORD, areas=areas)
    browser, found = await discover_areas(scenario, Recorder())
    dashboard = Dashboard()
    drop, end = trio.Event(), trio.Event()
    settled = Settled()
    waiting: list[Caller] = []
    ws_url = scenario.ws_url
    async with connect(ws_url, dashboard.on_event, cookie=browser.cookie_header()) as watching:
        for area_id, _ in found:
            snapshot = await watching.request("area.watch", {}, addresses.area(area_id))
            for entry in snapshot.get("callers", []):
                dashboard.on_event("queue.caller", {"area": area_id, "caller": entry})
        async with trio.open_nursery() as nursery:
            limit = trio.CapacityLimiter(ARRIVING_AT_ONCE)
            started = trio.current_time()

            async def arrive(index: int) -> None:
                async with limit:
                    slug = found[index % len(found)][1]
                    caller = Caller(ws_url, await _arrive(server.url, slug, index), settled)
                connected = trio.Event()
                waiting.append(caller)
                nursery.start_soon(caller.wait, connected, drop, end)
                await connected.wait()

            async with trio.open_nursery() as arrivals:
                for index in range(callers):
                    await trio.sleep_until(started + index / rate)
                    arrivals.start_soon(arrive, index)
            rooms = {c.room for c in waiting}
            settled.expected = len(waiting)
            with trio.fail_after(BACK_TIMEOUT):
                await dashboard.wait_all_connected(rooms)
            await trio.sleep(2)  # the arrivals' last work done: the lag below is the blip's
            lag_before = await _metric(server.url, "waitroom_event_loop_lag_max_seconds")
            cpu_before, client_before = server.cpu_seconds(), time.process_time()
            spy = _py_spy(server.process.pid, profile) if profile else None
            dropped = time.monotonic()
            drop.set()
            with trio.move_on_after(SETTLE_TIMEOUT):  # the last tries may start at BACK_TIMEOUT
                await settled.all.wait()
            everyone_back = time.monotonic() - dropped
            # Then the dashboard: everyone who got back is listed, and shown connected.
            with trio.move_on_after(BACK_TIMEOUT):
                await dashboard.wait_all_connected({c.room for c in waiting if c.error is None})
            dashboard_back = time.monotonic() - dropped
            if spy is not None:
                await trio.to_thread.run_sync(_stop_spy, spy)
            cpu = server.cpu_seconds() - cpu_before
            client_cpu = time.process_time() - client_before
            lag = await _metric(server.url, "waitroom_event_loop_lag_max_seconds")
            end.set()
    back = [c.back_after for c in waiting if c.back_after is not None]
    errors: dict[str, int] = {}
    failures: dict[str, int] = {}
    for c in waiting:
        if c.error is not None:
            errors[c.error] = errors.get(c.error, 0) + 1
        for failure in c.failures:
            failures[failure] = failures.get(failure, 0) + 1
    return {
        "callers": len(waiting),
        "back_in_s": {
            "p50": _round(percentile(back, 0.5)),
            "p99": _round(percentile(back, 0.99)),
            "max": _round(max(back, default=math.nan)),
        },
        "everyone_back_after_s": round(everyone_back, 2),
        "not_back": len(waiting) - len(back),
        "errors": errors,
        "tried_again": sum(1 for c in waiting if c.failures and c.back_after is not None),
        "failed_tries": failures,
        "dashboard_all_connected_after_s": round(dashboard_back, 2),
        "dashboard_lost": len(rooms - set(dashboard.connected)),
        "loop_lag_max_ms_before": round(1000 * lag_before, 1),
        "loop_lag_max_ms": round(1000 * lag, 1),
        "server_cpu_s": round(cpu, 2),
        # One process drives every caller: its CPU over the blip says whether it kept up.
        "client_cpu_s": round(client_cpu, 2),
        "blip_wall_s": round(dashboard_back, 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _py_spy(pid: int, into: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` into the flame graph ``into`` until :func:`_stop_spy`."""
    spy = Path(sys.executable).with_name("py-spy")
    kind = "flamegraph" if into.endswith(".svg") else "raw"
    command = [str(spy), "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    return subprocess.Popen(
        [*command, "--output", into, "--format", kind],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(SPY_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        spy.kill()


def measure(
    build: Build, work: Path, args: argparse.Namespace, profile: str = ""
) -> dict[str, Any]:
    with Server(build, work, args.areas) as server:
        return trio.run(_blip, server, args.callers, args.areas, args.rate, profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=2000)
    parser.add_argument("--areas", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="arrivals/s before the blip")
    parser.add_argument("--reference", help="a commit measured after this tree, in the same run")
    parser.add_argument("--py-spy", default="", help="flame graph of this tree's server's blip")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="waitroom-blip-") as tmp:
        work = Path(tmp)
        builds = [Build("this tree", Path(__file__).resolve().parent.parent)]
        if args.reference:
            builds.append(export_commit(args.reference, work / "reference"))
        for build in builds:
            profile = str(Path(args.py_spy).resolve()) if args.py_spy and build is builds[0] else ""
            figures = measure(build, work / build.name.replace(" ", "-"), args, profile)
            results[build.name] = figures
            print(f"{build.name}: {json.dumps(figures)}", file=sys.stderr)
    results["load_average_after"] = list(os.getloadavg())
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
