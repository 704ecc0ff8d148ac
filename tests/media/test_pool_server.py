"""The whole server with media worker processes: per-worker metrics, and no orphans after it."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import trio

from tests.conftest import DEMO_PASSWORD
from tests.httpclient import HttpClient
from waitroom.loadtest.http import parse_prometheus
from waitroom.server import ServerConfig, ServerInfo, run_server

WORKERS = 2
STOP_TIMEOUT = 15.0


def media_children() -> list[int]:
    """Live (not zombie) `media.process` children of this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(") ", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == os.getpid() and state != "Z" and b"media.process" in command:
            found.append(int(entry))
    return found


async def test_server_with_two_media_workers_exports_each_and_leaves_no_orphans(
    tmp_path: Path,
) -> None:
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        media_workers=WORKERS,
        db_path=tmp_path / "waitroom.sqlite3",
        demo_password=DEMO_PASSWORD,
    )
    assert media_children() == []
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        assert len(media_children()) == WORKERS
        response = await HttpClient(info.url).get("/metrics")
        assert response.status == 200
        figures = parse_prometheus(response.text)
        for worker in range(WORKERS):
            assert figures[f'waitroom_media_worker_up{{worker="{worker}"}}'] == 1
            assert (
                figures[f'waitroom_media_worker_rtp_packets_forwarded_total{{worker="{worker}"}}']
                == 0
            )
        assert figures["waitroom_media_workers_up"] == WORKERS
        assert figures["waitroom_rtp_packets_forwarded_total"] == 0
        info.shutdown()
    with trio.fail_after(STOP_TIMEOUT):
        while media_children():  # noqa: ASYNC110 (processes, not Trio tasks)
            await trio.sleep(0.05)  # real time: OS processes exiting, not a Trio timer
