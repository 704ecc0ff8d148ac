"""A node that joins takes over the areas and on-demand queues whose home it is (issue 18), with
no caller lost.

Node n1 runs alone and hosts both demo areas; a dashboard on n1 watches one, and callers keep
arriving through n1. Node n2 starts: both demo areas have n2 as their home (rendezvous hashing,
``cluster.spread``), so n1 hands them over. The dashboard gets ``queue.snapshot`` from the new
copy without watching again, every arrival made during the handover is taken and on the
dashboard (a submitted form waits for the area; a form page that found it busy asks again by
itself, as the browser's busy page does), and the next arrival through n1 reaches it through the
area on n2. The organisation's on-demand queue moves the same way, with the on-call
provider's list (``ondemand.snapshot``) and every Meet Now request made meanwhile.

Starts Redis and two servers: run under the heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_handover.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from actors import addresses
from cluster.spread import home
from tests.cluster.served_nodes import ServedNode
from tests.cluster.servers import RedisServer
from tests.cluster.test_desks_across_nodes import query
from tests.cluster.test_serve_nodes import (
    DEMO_AREAS,
    NODE_IDS,
    SETTLE_TIMEOUT,
    Events,
    post_arrival,
    queued,
    sign_in,
    wait_settled,
)
from waitroom.loadtest.client import connect
from waitroom.loadtest.http import Browser
from waitroom.loadtest.scenario import ROOM_TOKEN
from web.app import RETRY_AFTER

#: Arrivals still made through n1 after the dashboard had the new copy's snapshot.
ARRIVALS_AFTER = 5
#: The busy page (a form GET that got no answer in 5 s) asks again by itself, this many times.
BUSY_FORM_TRIES = 3
SERVICE_BUSY = 503
BUSY_FORM = 'id="retry-now"'


def seen_names(events: Events, area_id: int) -> set[str]:
    """The callers a dashboard was shown: the last snapshot and every caller event after it."""
    names: set[str] = set()
    for _, event, body in events.seen:
        if event == "queue.snapshot" and body["area"] == area_id:
            names = {c["name"] for c in body["callers"]}
        elif event == "queue.caller" and body["area"] == area_id:
            names.add(body["caller"]["name"])
    return names


@dataclass
class Admissions:
    """Patients admitted one at a time through n1 while n2 joins, as browsers are: a form page
    answered "Service busy" asks again by itself (js/retry.js); a submitted form is sent once."""

    submit: Callable[[str], Awaitable[tuple[int, str]]]
    taken: list[str] = field(default_factory=list)
    #: (seconds since n2 was started, status, the page's start) of each refused submission.
    refused: list[tuple[float, int, str]] = field(default_factory=list)
    busy_pages: int = 0
    handed_over: trio.Event = field(default_factory=trio.Event)
    started: float = field(default_factory=time.monotonic)

    async def keep_going(self) -> None:
        """Until ``ARRIVALS_AFTER`` more after the handover, about 15 a second."""
        after = 0
        while after < ARRIVALS_AFTER:
            name = f"During {len(self.taken) + len(self.refused)}"
            for _ in range(BUSY_FORM_TRIES):
                status, token = await self.submit(name)
                if not (status == SERVICE_BUSY and BUSY_FORM in token):
                    break
                self.busy_pages += 1
                await trio.sleep(RETRY_AFTER)
            if status == 200:
                self.taken.append(name)
            else:
                self.refused.append((time.monotonic() - self.started, status, token[:300]))
            if self.handed_over.is_set():
                after += 1
            await trio.sleep(0.05)

    async def while_n2_joins(
        self,
        redis: RedisServer,
        db: Path,
        tmp_path: Path,
        events: Events,
        moved: Callable[[str, dict[str, Any]], bool],
    ) -> tuple[ServedNode, float]:
        """Start n2 while admitting; n2 and the seconds until ``events`` showed ``moved``."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.keep_going)
            self.started = time.monotonic()
            n2 = await trio.to_thread.run_sync(ServedNode, redis.url, "n2", db, tmp_path)
            moved_at = await events.wait_for(moved, SETTLE_TIMEOUT)
            self.handed_over.set()
        return n2, moved_at - self.started


async def test_a_joining_node_takes_its_areas_and_no_arrival_or_dashboard_is_lost(
    tmp_path: Path,
) -> None:
    assert all(home(area, NODE_IDS) == "n2" for area in DEMO_AREAS)
    redis = RedisServer(tmp_path)
    db = tmp_path / "shared.sqlite3"
    nodes: list[ServedNode] = []
    try:
        n1 = ServedNode(redis.url, "n1", db, tmp_path)
        nodes.append(n1)
        wait_settled(redis, DEMO_AREAS, ("n1",))
        browser, areas = await sign_in(n1)
        area, slug = areas[0]
        area_id = int(area)
        dashboard = Events()
        async with connect(n1.ws_url, dashboard, cookie=browser.cookie_header()) as desk:
            await desk.request("area.watch", {}, addresses.area(area_id))
            status, token = await post_arrival(n1, slug, "Before")
            assert status == 200, token
            await dashboard.wait_for(queued(token.partition(".")[0]), 5)

            admissions = Admissions(partial(post_arrival, n1, slug))

            def snapshot(event: str, body: dict[str, Any]) -> bool:
                return event == "queue.snapshot" and body["area"] == area_id

            n2, after = await admissions.while_n2_joins(redis, db, tmp_path, dashboard, snapshot)
            nodes.append(n2)
            taken = admissions.taken
            print(
                f"dashboard on n1 had the area's queue from n2 {after:.1f} s after n2 was "
                f"started; {len(taken)} arrivals during the handover, "
                f"{admissions.busy_pages} form pages busy (asked again)"
            )
            await trio.to_thread.run_sync(wait_settled, redis, DEMO_AREAS, NODE_IDS)
            # A submitted form is never answered "Service busy": it waits for the area.
            assert admissions.refused == [], (admissions.refused, n1.tail(6000), n2.tail(6000))
            assert len(taken) > ARRIVALS_AFTER
            # Every arrival made during the handover is on the dashboard, which never watched
            # again, and in the area's queue.
            status, token = await post_arrival(n1, slug, "After")
            assert status == 200, token
            await dashboard.wait_for(queued(token.partition(".")[0]), 5)
            expected = {"Before", "After", *taken}
            assert expected <= seen_names(dashboard, area_id)
            listed = await desk.request("area.watch", {}, addresses.area(area_id))
            assert expected == {c["name"] for c in listed["callers"]}
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


async def meet_now(node: ServedNode, org_id: int, name: str) -> tuple[int, str]:
    """Meet Now posted through ``node``: (status, the room token or the page)."""
    patient = Browser(node.url)
    form = await patient.get(f"/o/{org_id}/meet")
    csrf = form.csrf_token()
    if csrf is None:
        return form.status, form.text
    page = await patient.post_form(
        f"/o/{org_id}/meet", {"csrf_token": csrf, "name": name, "region": "Kent"}
    )
    found = ROOM_TOKEN.search(page.text)
    return page.status, found.group(1) if found else page.text


def listed_names(events: Events, org_id: int) -> set[str]:
    """The requests a provider's list was shown: the last snapshot and every upsert after it."""
    names: set[str] = set()
    for _, event, body in events.seen:
        if event == "ondemand.snapshot" and body["org"]["id"] == org_id:
            names = {r["name"] for r in body["requests"]}
        elif event == "ondemand.request" and body["org"] == org_id:
            names.add(body["request"]["name"])
    return names


async def test_a_joining_node_takes_the_on_demand_queue_and_the_list_stays_live(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path)
    db = tmp_path / "shared.sqlite3"
    nodes: list[ServedNode] = []
    try:
        n1 = ServedNode(redis.url, "n1", db, tmp_path)
        nodes.append(n1)
        ((org_id,),) = query(tmp_path, "SELECT id FROM organisations ORDER BY id LIMIT 1")
        queue = addresses.ondemand(org_id)
        assert home(queue, NODE_IDS) == "n2"
        wait_settled(redis, (queue,), ("n1",))
        browser, _ = await sign_in(n1)
        listing = Events()
        async with connect(n1.ws_url, listing, cookie=browser.cookie_header()) as desk:
            await desk.request("ondemand.oncall", {"on": True}, queue)
            await desk.request("ondemand.watch", {}, queue)
            status, token = await meet_now(n1, org_id, "Before")
            assert status == 200, token[:2000]

            admissions = Admissions(partial(meet_now, n1, org_id))

            def snapshot(event: str, body: dict[str, Any]) -> bool:
                return event == "ondemand.snapshot" and body["org"]["id"] == org_id

            n2, after = await admissions.while_n2_joins(redis, db, tmp_path, listing, snapshot)
            nodes.append(n2)
            taken = admissions.taken
            print(
                f"the provider's list on n1 had the queue from n2 {after:.1f} s after n2 was "
                f"started; {len(taken)} Meet Now requests during the handover"
            )
            await trio.to_thread.run_sync(wait_settled, redis, (queue,), NODE_IDS)
            assert admissions.refused == [], (admissions.refused, n1.tail(6000), n2.tail(6000))
            assert len(taken) > ARRIVALS_AFTER
            status, token = await meet_now(n1, org_id, "After")
            assert status == 200, token[:2000]

            def listed_after(event: str, body: dict[str, Any]) -> bool:
                return event == "ondemand.request" and body["request"]["name"] == "After"

            await listing.wait_for(listed_after, 5)
            expected = {"Before", "After", *taken}
            assert expected <= listed_names(listing, org_id)
            relisted = await desk.request("ondemand.watch", {}, queue)
            assert expected == {r["name"] for r in relisted["requests"]}
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
