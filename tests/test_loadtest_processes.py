"""The load tester must not be the limit (issue 17): it takes enough processes for the offered load
by itself, measures each process's own CPU, and says when one came close to a whole core."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_PASSWORD, RunningServer
from waitroom.loadtest import main, report, scenario
from waitroom.loadtest.scenario import Scenario


def _spec(**values: object) -> Scenario:
    return Scenario(base_url="http://127.0.0.1:1", username="p", password="x", **values)  # type: ignore[arg-type]


def test_processes_follow_the_offered_rate_and_the_callers_left_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert main.auto_processes(_spec(rate=10.0)) == 1
    assert main.auto_processes(_spec(rate=150.0)) == 3
    # Watch-only: every caller stays connected; 10,000 of them need four processes.
    assert main.auto_processes(_spec(rate=50.0, callers=10_000, join=False)) == 4
    assert main.auto_processes(_spec(rate=50.0, callers=10_000, join=True)) == 1
    # Never more processes than cores: they would only compete for the same ones.
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main.auto_processes(_spec(rate=600.0)) == 2


def test_the_report_names_the_busiest_process_and_warns_when_it_was_near_a_core() -> None:
    calm = report.client_cpu(3.0, 10.0, 2, [{"cpu_seconds": 2.0, "wall_seconds": 10.0}] * 2)
    assert calm["busiest_process_percent"] == 20.0 and calm["near_limit"] is False
    busy = report.client_cpu(
        12.0,
        10.0,
        2,
        [{"cpu_seconds": 3.0, "wall_seconds": 10.0}, {"cpu_seconds": 9.0, "wall_seconds": 10.0}],
    )
    assert busy["busiest_process_percent"] == 90.0 and busy["near_limit"] is True
    summary = report.summarise([scenario.Recorder().to_json()], {"rate": 1.0})
    summary["client"] = busy
    assert "busiest process 90.0% of a core" in report.table(summary)
    assert "NEAR ITS LIMIT" in report.table(summary)
    # Worker files from before this field existed (no per-process figure): nothing claimed.
    assert report.client_cpu(1.0, 10.0, 1)["near_limit"] is False


async def test_a_run_records_its_own_process_cpu(waitroom_server: RunningServer) -> None:
    spec = Scenario(
        base_url=waitroom_server.base_url,
        username=waitroom_server.demo.provider_username,
        password=DEMO_PASSWORD,
        callers=2,
        rate=4.0,
        duration=0.5,
        providers=0,
        drain=1.0,
    )
    recorder = await scenario.run(spec)
    assert recorder.arrivals == 2
    own = recorder.to_json()["client_cpu"]
    assert own is not None and own["cpu_seconds"] > 0 and own["wall_seconds"] >= 0.5
