"""``/metrics`` over a real server: Prometheus text format, and figures that follow the traffic."""

from __future__ import annotations

import re

import trio
import trio.testing

from runtime import Registry
from tests.conftest import RunningServer
from tests.httpclient import HttpClient
from waitroom.loadtest.client import connect
from waitroom.loadtest.http import parse_prometheus
from waitroom.metrics import LoopLag, Metrics

LAG_INTERVAL = 0.01
"""The loop-lag probe's interval in the virtual-clock test."""
BLOCKED = 0.1
"""How long that test keeps the loop from running."""
EPSILON = 1e-9
"""Float slack for sums of virtual times."""

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$')


def check_format(text: str) -> None:
    """Every line is HELP, TYPE or a sample, and every sample's family was declared first."""
    declared: set[str] = set()
    for line in text.strip().splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter"), line
            declared.add(name)
            continue
        assert _SAMPLE.match(line), line
        sample = line.split("{")[0].split(" ")[0]
        # A counter family ``x`` has its samples named ``x_total`` (OpenMetrics naming).
        assert sample in declared or sample.removesuffix("_total") in declared, line


async def scrape(server: RunningServer) -> dict[str, float]:
    response = await HttpClient(server.base_url).get("/metrics")
    assert response.status == 200
    assert response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    check_format(response.text)
    return parse_prometheus(response.text)


async def test_metrics_follow_connections_and_messages(waitroom_server: RunningServer) -> None:
    before = await scrape(waitroom_server)
    for name in (
        "waitroom_ws_connections_open",
        "waitroom_event_loop_lag_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        'waitroom_actors{kind="area"}',
        'waitroom_mailbox_depth{kind="area"}',
    ):
        assert name in before, name
    assert before['waitroom_actors{kind="area"}'] == 2  # the demo's two areas
    assert before["process_resident_memory_bytes"] > 1_000_000
    # The server runs a media worker: its counters are exported, nothing forwarded yet.
    assert before["waitroom_rtp_packets_forwarded_total"] == 0
    assert before["waitroom_media_calls"] == 0
    echoed = 'waitroom_messages_handled_total{kind="system"}'
    ws_url = waitroom_server.base_url.replace("http://", "ws://") + "/ws"
    # A room token is the only way in without a session: arrive through the real form first.
    client = HttpClient(waitroom_server.base_url)
    slug = waitroom_server.demo.area_links[0][1].rsplit("/", 1)[1]
    form = await client.get(f"/w/{slug}")
    page = await client.post(
        f"/w/{slug}",
        {"name": "Ada", "consent": "yes", "csrf_token": form.csrf_token()},
    )
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    async with connect(ws_url, lambda _t, _b: None, token=token.group(1)) as ws:
        for _ in range(3):
            await ws.request("echo", {"data": 1})
        during = await scrape(waitroom_server)
        assert during["waitroom_ws_connections_open"] == before["waitroom_ws_connections_open"] + 1
        assert during['waitroom_actors{kind="conn"}'] == 1
        assert during.get(echoed, 0) >= before.get(echoed, 0) + 3
    with trio.fail_after(5):
        while (after := await scrape(waitroom_server))["waitroom_ws_connections_open"] != 0:  # noqa: ASYNC110 (polling the server over HTTP)
            await trio.sleep(0.05)
    assert after["waitroom_ws_connections_total"] == before["waitroom_ws_connections_total"] + 1


async def test_media_counters_and_loop_lag_when_present(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lag = LoopLag(interval=LAG_INTERVAL)
    stats = {"forwarded": 10, "dropped_unbound": 2, "dropped_unknown_type": 1, "peers": 3}
    metrics = Metrics(Registry(), lambda: (0, 0), lag, media_stats=lambda: stats)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lag.run)
        await trio.sleep(2 * LAG_INTERVAL)
        autojump_clock.jump(BLOCKED)  # time passes with no checkpoint: the loop is blocked
        await trio.sleep(3 * LAG_INTERVAL)
        nursery.cancel_scope.cancel()
    text = metrics.render()
    check_format(text)
    figures = parse_prometheus(text)
    assert figures["waitroom_rtp_packets_forwarded_total"] == 10
    assert figures["waitroom_rtp_packets_dropped_total"] == 3
    assert figures["waitroom_media_peers"] == 3
    # The probe sees the whole block, less the part of its interval it had already slept.
    worst = figures["waitroom_event_loop_lag_max_seconds"]
    assert BLOCKED - LAG_INTERVAL - EPSILON <= worst <= BLOCKED + EPSILON
