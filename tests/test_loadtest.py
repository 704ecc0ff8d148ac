"""``waitroom loadtest`` against a real server in-process: its figures agree with ``/metrics``."""

from __future__ import annotations

import argparse

from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from waitroom.loadtest import main as loadtest
from waitroom.loadtest import report, scenario
from waitroom.loadtest.http import parse_prometheus

CALLERS = 4


async def test_small_scenario_matches_the_servers_metrics(waitroom_server: RunningServer) -> None:
    spec = scenario.Scenario(
        base_url=waitroom_server.base_url,
        username=waitroom_server.demo.provider_username,
        password=DEMO_PASSWORD,
        callers=CALLERS,
        rate=4.0,
        duration=2.0,
        providers=1,
        call_seconds=0.2,
        drain=8.0,
    )
    recorder = await scenario.run(spec)
    runs = [recorder.to_json()]
    summary = report.summarise(runs, {"callers": CALLERS})
    assert summary["errors"] == {}
    assert summary["arrivals"] == CALLERS
    assert summary["dashboard"]["count"] == CALLERS
    assert summary["calls_started"] == summary["calls_ended"] == CALLERS
    # Each caller, the dashboard and one provider connection per call: all seen by the server.
    assert summary["client_ws_connections"] == 2 * CALLERS + 1
    assert summary["server"]["ws_connections_accepted"] == summary["client_ws_connections"]
    # The report's last sample is the server's own count: nobody else connected to this server.
    final = parse_prometheus((await HttpClient(waitroom_server.base_url).get("/metrics")).text)
    assert final["waitroom_ws_connections_total"] == summary["client_ws_connections"]
    assert summary["server"]["messages_handled"]["area"] >= CALLERS
    assert summary["server"]["cpu_seconds"] is not None and summary["server"]["cpu_seconds"] > 0
    assert "Load 0-0" not in report.table(summary)  # the table is figures, not caller data


def test_a_remote_target_is_refused_without_allow_remote() -> None:
    parser = argparse.ArgumentParser()
    loadtest.add_arguments(parser)
    args = parser.parse_args(["http://192.0.2.1:8080", "--quick"])
    assert loadtest.run(args) == 2
    assert loadtest.is_loopback("http://127.0.0.1:8080")
    assert not loadtest.is_loopback("http://192.0.2.1:8080")
