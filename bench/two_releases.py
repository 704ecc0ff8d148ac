"""A cluster upgraded one node at a time: this tree's node beside a node of an older release.

    python bench/two_releases.py --reference COMMIT

Not a timing: a release check to run before shipping (issue 18), on demand because it needs
the older release's tree from git (``git archive``; a shallow clone may not have it). It starts
its own redis-server, a shared SQLite store, and walks docs/operations.md's "Upgrading a cluster
one node at a time" with two nodes:

1. One runs ``COMMIT`` (it seeds the demo), the other this tree. Every demo area is at its home.
   For each area, a caller arrives through the node that does not host it and a dashboard on
   that node shows them: messages cross in both directions between the releases.
2. Meet Now through each node reaches the on-call provider's list on the other, wherever the
   organisation's queue runs (an older node that claimed it keeps it).
3. The older node is stopped cleanly (the upgrade's step 2): its area and the queue start on
   the other, and arrivals go on. Then it starts again with this tree. Every
   dashboard, never watched again by its page, is shown each new arrival, and a new Meet Now
   request is on the provider's list; every area is at its home among the upgraded nodes.

Each step prints ``ok`` or ``FAILED`` with what it saw; the exit status is 1 if any failed. The
nodes' logs are kept in the printed directory when a step fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

# ruff: noqa: E402 (the imports below need the path set first)

BENCH = Path(__file__).resolve().parent
# bench/media.py would stand in for the media package the servers' code imports: the tree's
# modules are imported with bench/ off the path (and the root, for tests/ helpers, on it)...
sys.path[:] = [str(BENCH.parent), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

from actors import addresses
from cluster.spread import home
from tests.cluster.served_nodes import ServedNode
from tests.cluster.servers import RedisServer
from tests.cluster.test_handover import listed_names, meet_now
from tests.cluster.test_serve_nodes import DEMO_AREAS, Events, post_arrival, sign_in
from waitroom.loadtest.client import GatewayClient, connect

# ...and bench/'s own afterwards.
sys.path.append(str(BENCH))
import capacity

#: Seconds a step may take to show what it waits for (an area or queue moving: about 7 s).
STEP_TIMEOUT = 30.0
#: The older release's node and this tree's. Chosen so that, of the demo's areas and queue, one
#: area is homed on each node and the queue on the older one: messages cross both ways, and the
#: upgraded node takes back an area and the queue by handover (``cluster.spread``).
OLD, NEW = "n5", "n3"
NODE_IDS = (OLD, NEW)


class Check:
    """The steps' outcomes, printed as they come."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    async def step(self, what: str, run: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        try:
            with trio.fail_after(STEP_TIMEOUT):
                seen = await run()
        except (AssertionError, trio.TooSlowError) as exc:
            self.failed.append(what)
            print(f"FAILED  {what}: {exc!r}"[:2000], flush=True)
        else:
            print(f"ok      {what} ({time.monotonic() - started:.1f} s): {seen}", flush=True)


def owners(redis: RedisServer, names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: redis.get(f"waitroom:place:{name}") for name in names}


async def at_homes(redis: RedisServer, names: tuple[str, ...], nodes: tuple[str, ...]) -> str:
    while True:
        placed = owners(redis, names)
        if all(placed[name] == home(name, nodes) for name in names):
            return ", ".join(f"{name} on {owner}" for name, owner in placed.items())
        await trio.sleep(0.2)


async def arrive_and_see(
    via: ServedNode, slug: str, area_id: int, name: str, dashboard: Events
) -> str:
    status, token = await post_arrival(via, slug, name)
    assert status == 200, token[:500]
    room = token.partition(".")[0]
    await dashboard.wait_for(
        lambda event, body: event == "queue.caller" and body["caller"]["room"] == room,
        STEP_TIMEOUT,
    )
    return f"{name} through {via.node_id}, on the dashboard there (area/{area_id})"


async def meet_and_see(via: ServedNode, org_id: int, name: str, listing: Events) -> str:
    status, token = await meet_now(via, org_id, name)
    assert status == 200, token[:500]
    while name not in listed_names(listing, org_id):  # noqa: ASYNC110 (the client appends)
        await trio.sleep(0.05)
    return f"{name} through {via.node_id} is on the provider's list"


async def run(reference: str, work: Path) -> list[str]:
    old = capacity.export_commit(reference, work / "reference")
    redis = RedisServer(work)
    db = work / "shared.sqlite3"
    nodes: dict[str, ServedNode] = {}
    check = Check()
    try:
        nodes[OLD] = ServedNode(redis.url, OLD, db, work, code=old.root)
        nodes[NEW] = await trio.to_thread.run_sync(ServedNode, redis.url, NEW, db, work)
        print(f"{OLD} runs {reference[:10]}, {NEW} runs this tree; logs in {work}", flush=True)
        await check.step("every area at its home", lambda: at_homes(redis, DEMO_AREAS, NODE_IDS))
        browsers: dict[str, Any] = {}
        areas: list[tuple[str, str]] = []
        for node_id, node in nodes.items():
            browsers[node_id], areas = await sign_in(node)
        org_id = 1
        queue = addresses.ondemand(org_id)
        dashboards = {node_id: Events() for node_id in nodes}
        listings = {node_id: Events() for node_id in nodes}
        async with (
            connect(nodes[OLD].ws_url, dashboards[OLD], cookie=browsers[OLD].cookie_header()) as d1,
            connect(nodes[NEW].ws_url, dashboards[NEW], cookie=browsers[NEW].cookie_header()) as d2,
            connect(nodes[OLD].ws_url, listings[OLD], cookie=browsers[OLD].cookie_header()) as l1,
            connect(nodes[NEW].ws_url, listings[NEW], cookie=browsers[NEW].cookie_header()) as l2,
        ):  # fmt: skip
            desks: dict[str, GatewayClient] = {OLD: d1, NEW: d2}
            lists: dict[str, GatewayClient] = {OLD: l1, NEW: l2}
            for node_id in nodes:
                for area, _ in areas:
                    await desks[node_id].request("area.watch", {}, addresses.area(int(area)))
            await lists[NEW].request("ondemand.oncall", {"on": True}, queue)
            for node_id in nodes:
                await lists[node_id].request("ondemand.watch", {}, queue)
            for area, slug in areas:
                host = owners(redis, (addresses.area(int(area)),))[addresses.area(int(area))]
                other = OLD if host == NEW else NEW
                await check.step(
                    f"arrival through {other} ({'old' if other == OLD else 'new'}) to "
                    f"area/{area} on {host}",
                    partial(
                        arrive_and_see,
                        nodes[other],
                        slug,
                        int(area),
                        f"Mixed {area}",
                        dashboards[other],
                    ),
                )
            print(f"the on-demand queue runs on {owners(redis, (queue,))[queue]}", flush=True)
            for via, seen in ((OLD, NEW), (NEW, OLD)):
                await check.step(
                    f"Meet Now through {via}, listed on {seen}",
                    partial(meet_and_see, nodes[via], org_id, f"Meet {via}", listings[seen]),
                )
            nodes[OLD].stop()
            await check.step(
                f"{OLD} stopped cleanly: every area and the queue on {NEW}",
                lambda: at_homes(redis, (*DEMO_AREAS, queue), (NEW,)),
            )
            await check.step(
                f"while {OLD} is away: arrival through {NEW} to area/{areas[0][0]}",
                partial(
                    arrive_and_see,
                    nodes[NEW],
                    areas[0][1],
                    int(areas[0][0]),
                    "Away",
                    dashboards[NEW],
                ),
            )
            print(f"{OLD} starts again with this tree", flush=True)
            nodes[OLD] = await trio.to_thread.run_sync(ServedNode, redis.url, OLD, db, work)
            await check.step(
                "every area and the queue at their homes among the upgraded nodes",
                lambda: at_homes(redis, (*DEMO_AREAS, queue), NODE_IDS),
            )
            for area, slug in areas:
                await check.step(
                    f"after the upgrade: arrival through {NEW} to area/{area}, on {NEW}'s dashboard",
                    partial(
                        arrive_and_see,
                        nodes[NEW],
                        slug,
                        int(area),
                        f"After {area}",
                        dashboards[NEW],
                    ),
                )
            await check.step(
                f"after the upgrade: Meet Now through {OLD}, on {NEW}'s list",
                lambda: meet_and_see(nodes[OLD], org_id, "Meet after", listings[NEW]),
            )
    finally:
        for node in nodes.values():
            node.stop()
        redis.stop()
    return check.failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="the older release's commit")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="waitroom-two-releases-"))
    failed = trio.run(run, args.reference, work)
    print(
        f"{'all steps passed' if not failed else f'{len(failed)} step(s) failed'} ({capacity.ROOT})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
