"""Sign-in burst: N members of staff sign in and open their consoles at the same moment (issue 17).

A Monday morning: every provider of a clinic signs in within seconds. Each simulated member of
staff, all started together, does what a browser does: GET the sign-in form, POST it (argon2
verifies the password), GET the console, open the websocket, say ``hello`` with the session
cookie and ``area.watch`` every area the console lists. Reported: the time until the last console
was up, per-person p50/p99, ``hello`` timeouts, HTTP 503s and other errors, and the server's CPU.

Each build (this tree, and ``--reference`` exported with ``git archive``) gets a fresh database of
the demo clinic plus N providers and a server of its own; the client is always this tree's. Run
on a quiet machine: ``python bench/signin_burst.py --staff 100 --reference <commit>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import capacity  # bench/, the script's folder
import trio

PASSWORD = "burst-bench-password"
#: Every console must be up within this (the issue's aim: 100 staff within 10 s).
AIM_SECONDS = 10.0
#: What one person's whole sign-in may take before it counts as failed.
PERSON_TIMEOUT = 60.0
_AREA = re.compile(r'data-area-id="(\d+)"')


async def _prepare_staff(db: str, staff_count: int) -> None:
    """The demo clinic plus ``staff_count`` providers of both demo areas (one argon2 hash)."""
    from services.passwords import Passwords
    from storage import seed, staff
    from storage.db import open_store

    async with open_store(db) as store:
        password_hash = await Passwords().hash(PASSWORD)
        demo = await seed.seed_demo(store, password_hash)
        for number in range(staff_count):
            user = await staff.create_user(
                store, f"burst{number:03}", f"Burst Provider {number:03}", password_hash
            )
            for area in demo.areas:
                await staff.grant_role(store, user.id, "provider", "area", area.id)


def prepare(staff_count: int) -> Any:
    def _prepare(build: capacity.Build, db: Path, areas: int) -> None:
        import subprocess

        subprocess.run(
            [sys.executable, __file__, "--prepare", str(db), "--staff", str(staff_count)],
            check=True,
            env=build.env(),
            timeout=300,
        )

    return _prepare


async def one_person(base_url: str, number: int, outcome: dict[str, Any]) -> None:
    from waitroom.loadtest.client import GatewayRefused, connect
    from waitroom.loadtest.http import Browser, HttpError

    started = time.monotonic()
    browser = Browser(base_url)
    try:
        with trio.fail_after(PERSON_TIMEOUT):
            form = await browser.get("/sign-in")
            signed = await browser.post_form(
                "/sign-in",
                {
                    "username": f"burst{number:03}",
                    "password": PASSWORD,
                    "csrf_token": form.csrf_token() or "",
                },
            )
            if signed.status != 303:
                outcome["errors"].append(f"sign-in {signed.status}")
                return
            console = await browser.get("/dashboard")
            if console.status == 503:
                outcome["http_503"] += 1
            if console.status != 200:
                outcome["errors"].append(f"console {console.status}")
                return
            areas = sorted(set(_AREA.findall(console.text)))
            ws_url = base_url.replace("http://", "ws://") + "/ws"
            async with connect(ws_url, lambda _t, _b: None, cookie=browser.cookie_header()) as ws:
                for area in areas:
                    await ws.request("area.watch", {}, f"area/{area}")
                outcome["seconds"].append(time.monotonic() - started)
    except GatewayRefused as refused:
        key = "hello_timeouts" if refused.code == "timeout" else "errors"
        if key == "errors":
            outcome["errors"].append(f"ws {refused.code}")
        else:
            outcome[key] += 1
    except (HttpError, OSError, trio.TooSlowError) as error:
        outcome["errors"].append(type(error).__name__)


async def burst(base_url: str, staff_count: int) -> dict[str, Any]:
    outcome: dict[str, Any] = {"seconds": [], "errors": [], "hello_timeouts": 0, "http_503": 0}
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        for number in range(staff_count):
            nursery.start_soon(one_person, base_url, number, outcome)
    outcome["wall_seconds"] = time.monotonic() - started
    return outcome


def measure(build: capacity.Build, work: Path, staff_count: int) -> dict[str, Any]:
    # capacity.Server prepares its own database: with this burst's staff instead of its areas.
    capacity.prepare_database = prepare(staff_count)
    with capacity.Server(build, work, areas=2) as server:
        cpu_before = server.cpu_seconds()
        outcome = trio.run(burst, server.url, staff_count)
        cpu = server.cpu_seconds() - cpu_before
    seconds = sorted(outcome["seconds"])
    return {
        "staff": staff_count,
        "consoles_up": len(seconds),
        "all_up_seconds": round(seconds[-1], 2) if seconds else None,
        "p50_seconds": _round(capacity.percentile(seconds, 0.5)),
        "p99_seconds": _round(capacity.percentile(seconds, 0.99)),
        "hello_timeouts": outcome["hello_timeouts"],
        "http_503": outcome["http_503"],
        "errors": outcome["errors"][:10],
        "error_count": len(outcome["errors"]),
        "server_cpu_seconds": round(cpu, 2),
        "met_aim": len(seconds) == staff_count
        and bool(seconds)
        and seconds[-1] <= AIM_SECONDS
        and not outcome["hello_timeouts"]
        and not outcome["http_503"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=100)
    parser.add_argument("--reference", default=None, help="commit measured beside this tree")
    parser.add_argument("--quick", action="store_true", help="10 staff, no reference")
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        # The build's own code (its PYTHONPATH) seeds its database: the password hash is made
        # with that build's parameters, as its server will check them.
        trio.run(_prepare_staff, args.prepare, args.staff)
        return 0
    # The client is this tree's load-tester code; bench/gateway.py (a script beside this one)
    # must not shadow the gateway package it imports.
    sys.path.insert(0, str(capacity.ROOT))
    if args.quick:
        args.staff, args.reference = 10, None
    results: dict[str, Any] = {"load_average": os.getloadavg(), "builds": {}}
    with tempfile.TemporaryDirectory(prefix="waitroom-burst-") as tmp:
        builds = [capacity.Build("this tree", capacity.ROOT)]
        if args.reference:
            builds.append(capacity.export_commit(args.reference, Path(tmp) / "reference"))
        for build in builds:
            figures = measure(build, Path(tmp) / build.name.replace(" ", "-"), args.staff)
            results["builds"][build.name] = figures
            print(f"{build.name}: {figures}", file=sys.stderr)
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
